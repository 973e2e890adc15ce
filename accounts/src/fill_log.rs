//! Every fill of one account as the ledger remembers it ([`FillRef`]:
//! where it is written), packed. A history of millions of fills is most of
//! what a ledger holds, and a fill never changes once made, so each run of
//! [`RUN`] fills is packed as rows of a compact table (`compact_table.rs`):
//! about 6 bytes a fill where a [`FillRef`] takes 48. The newest fills,
//! up to a run of them, are kept as they are.
//!
//! A run also remembers the lowest and highest order id among its fills, so
//! the fills of some orders (a history page's) are looked for only in the
//! runs that can hold them. A read unpacks the runs it looks in, one at a
//! time (a run unpacks in a few microseconds).

use std::borrow::Cow;
use std::ops::RangeInclusive;
use std::sync::Arc;

use orderbook::{OrderId, Timestamp, TradeId};

use crate::compact_table::{TableReader, TableWriter};

/// One of an account's fills as the ledger remembers it: where it is
/// written, and what finding it by market, order, trade or time needs.
/// The fill itself (its amounts and fee) is kept whole only while it is
/// among the account's newest (`RECENT_FILLS`); a history of millions of
/// fills keeps these, packed, instead of the whole fill's 180 bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FillRef {
    /// The market's name, one copy shared by every fill of it.
    pub symbol: Arc<str>,
    pub trade_id: TradeId,
    pub order_id: OrderId,
    pub at: Timestamp,
    /// [`FillSource`] in one word: a revision, or with the top bit set an
    /// index into the settled fills.
    written: u64,
}

/// The top bit of [`FillRef::written`]: the rest is an index into the
/// account's settled fills, not a market revision (no stream reaches 2^63
/// events).
const SETTLED: u64 = 1 << 63;

impl FillRef {
    pub fn new(
        symbol: Arc<str>,
        trade_id: TradeId,
        order_id: OrderId,
        at: Timestamp,
        written: FillSource,
    ) -> FillRef {
        let written = match written {
            FillSource::Trade { market_revision } => market_revision,
            FillSource::Settled { index } => index as u64 | SETTLED,
        };
        FillRef::from_word(symbol, trade_id, order_id, at, written)
    }

    /// A fill's place from its parts, `written` in one word (see
    /// [`FillRef::written`]).
    pub(crate) fn from_word(
        symbol: Arc<str>,
        trade_id: TradeId,
        order_id: OrderId,
        at: Timestamp,
        written: u64,
    ) -> FillRef {
        FillRef {
            symbol,
            trade_id,
            order_id,
            at,
            written,
        }
    }

    /// Writes this fill as a row: its market's `place` (in a list the
    /// reader has), then the change in its trade id, order id, time and
    /// where it is written from `last`, the row before's (zeros for the
    /// first), which become this one's.
    pub(crate) fn write_row(&self, rows: &mut TableWriter, place: usize, last: &mut [u64; 4]) {
        rows.number(place as u64);
        let columns = [self.trade_id, self.order_id, self.at, self.written];
        for (n, last) in columns.into_iter().zip(last) {
            rows.delta(n, last);
        }
    }

    /// Reads a row [`FillRef::write_row`] wrote, its market named by
    /// `market` from its place.
    pub(crate) fn read_row(
        rows: &mut TableReader,
        last: &mut [u64; 4],
        market: impl FnOnce(u64) -> Result<Arc<str>, String>,
    ) -> Result<FillRef, String> {
        let text = |e: crate::compact_table::TableError| e.to_string();
        let symbol = market(rows.number().map_err(text)?)?;
        let mut column = |i: usize| rows.delta(&mut last[i]).map_err(text);
        let (trade_id, order_id, at, written) = (column(0)?, column(1)?, column(2)?, column(3)?);
        Ok(FillRef::from_word(symbol, trade_id, order_id, at, written))
    }

    /// Where the fill's amounts are written.
    pub fn written(&self) -> FillSource {
        match self.written & SETTLED {
            0 => FillSource::Trade {
                market_revision: self.written,
            },
            _ => FillSource::Settled {
                index: (self.written & !SETTLED) as usize,
            },
        }
    }
}

/// Where a fill's amounts are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillSource {
    /// In the trade at this revision of the market's stream, with its
    /// fees: the fill is that trade's side for this account (see
    /// [`crate::fills`]).
    Trade { market_revision: u64 },
    /// In a `TradeSettled` of the account's own stream (logs before
    /// schema 3, whose trades carry no fees): kept whole in the account's
    /// settled fills at this index.
    Settled { index: usize },
}

/// How many fills one packed run holds.
pub const RUN: usize = 1024;

/// An account's fills, oldest first: see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FillLog {
    runs: Vec<PackedRun>,
    /// The fills after the last run, fewer than [`RUN`].
    newest: Vec<FillRef>,
    /// The markets the runs' rows name, by place.
    markets: Vec<Arc<str>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PackedRun {
    /// Each fill's market's place, then from the fill before (0 for the
    /// run's first), the change in its trade id, order id, time and where
    /// it is written.
    rows: Box<[u8]>,
    lowest: OrderId,
    highest: OrderId,
    earliest: Timestamp,
    latest: Timestamp,
    /// How many of its fills each market has, by place.
    counts: Box<[(usize, usize)]>,
}

impl FillLog {
    pub fn len(&self) -> usize {
        self.runs.len() * RUN + self.newest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Remembers the newest fill.
    pub fn push(&mut self, fill: FillRef) {
        self.newest.push(fill);
        if self.newest.len() == RUN {
            let run = self.pack();
            self.runs.push(run);
            self.newest.clear();
        }
    }

    fn pack(&mut self) -> PackedRun {
        let mut rows = TableWriter::default();
        let mut last = [0; 4];
        let mut counts: Vec<(usize, usize)> = Vec::new();
        for f in &self.newest {
            let place = match self.markets.iter().position(|m| *m == f.symbol) {
                Some(place) => place,
                None => {
                    self.markets.push(f.symbol.clone());
                    self.markets.len() - 1
                }
            };
            f.write_row(&mut rows, place, &mut last);
            match counts.iter_mut().find(|(p, _)| *p == place) {
                Some((_, n)) => *n += 1,
                None => counts.push((place, 1)),
            }
        }
        let ids = self.newest.iter().map(|f| f.order_id);
        let times = self.newest.iter().map(|f| f.at);
        PackedRun {
            rows: rows.finish().0.into_boxed_slice(),
            lowest: ids.clone().min().unwrap_or(0),
            highest: ids.max().unwrap_or(0),
            earliest: times.clone().min().unwrap_or(0),
            latest: times.max().unwrap_or(0),
            counts: counts.into_boxed_slice(),
        }
    }

    /// The fills of run `run`, unpacked.
    fn unpack(&self, run: usize) -> Vec<FillRef> {
        let mut rows = TableReader::of_bytes(&self.runs[run].rows);
        let mut fills = Vec::with_capacity(RUN);
        let mut last = [0; 4];
        for _ in 0..RUN {
            let market = |place| Ok(self.markets[place as usize].clone());
            let fill = FillRef::read_row(&mut rows, &mut last, market);
            fills.push(fill.expect("a run this log packed unpacks"));
        }
        fills
    }

    /// The fills of run `run` (the newest just past the packed ones, none
    /// further), and the place of its first.
    fn run(&self, run: usize) -> (Cow<'_, [FillRef]>, usize) {
        let from = run * RUN;
        match run.cmp(&self.runs.len()) {
            std::cmp::Ordering::Less => (self.unpack(run).into(), from),
            std::cmp::Ordering::Equal => (self.newest.as_slice().into(), from),
            std::cmp::Ordering::Greater => (Vec::new().into(), from),
        }
    }

    /// How many runs there are, the newest fills counting as one.
    fn run_count(&self) -> usize {
        self.runs.len() + usize::from(!self.newest.is_empty())
    }

    /// The fill at `place`.
    pub fn get(&self, place: usize) -> Option<FillRef> {
        let (fills, from) = self.run(place / RUN);
        fills.get(place - from).cloned()
    }

    /// The fills at `places` (`None` past the end), each run unpacked
    /// once for a run of places in it.
    pub fn get_many(&self, places: &[usize]) -> Vec<Option<FillRef>> {
        let mut unpacked: Option<(usize, Cow<'_, [FillRef]>)> = None;
        let mut found = Vec::with_capacity(places.len());
        for &place in places {
            let run = place / RUN;
            if unpacked.as_ref().is_none_or(|(r, _)| *r != run) {
                unpacked = Some((run, self.run(run).0));
            }
            let (_, fills) = unpacked.as_ref().expect("unpacked above");
            found.push(fills.get(place - run * RUN).cloned());
        }
        found
    }

    /// Each fill with its place, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (usize, FillRef)> + '_ {
        self.iter_between(0..=Timestamp::MAX)
    }

    /// Each fill made in `at` (microseconds) with its place, oldest
    /// first: a run wholly out of it is passed over without being
    /// unpacked, a run is unpacked only once the one before it has been
    /// read, and a fill is copied out only as it is reached.
    pub fn iter_between(
        &self,
        at: RangeInclusive<Timestamp>,
    ) -> impl Iterator<Item = (usize, FillRef)> + '_ {
        let (start, end) = (*at.start(), *at.end());
        let wanted = (0..self.run_count()).filter(move |run| {
            (self.runs.get(*run)).is_none_or(|r| r.latest >= start && r.earliest <= end)
        });
        wanted.flat_map(move |run| {
            let (fills, from) = self.run(run);
            (0..fills.len()).filter_map(move |i| {
                let f = &fills[i];
                (start..=end).contains(&f.at).then(|| (from + i, f.clone()))
            })
        })
    }

    /// Each fill with its place, newest first.
    pub fn iter_newest_first(&self) -> impl Iterator<Item = (usize, FillRef)> + '_ {
        self.newest_before(self.len())
    }

    /// Each fill before the place `end` with its place, newest first: only
    /// the runs reached are unpacked, and a fill is copied out only as it
    /// is reached (the newest fills, kept as they are, are not copied
    /// whole for a look at the last few).
    fn newest_before(&self, end: usize) -> impl Iterator<Item = (usize, FillRef)> + '_ {
        let end = end.min(self.len());
        (0..end.div_ceil(RUN)).rev().flat_map(move |run| {
            let (fills, from) = self.run(run);
            let upto = (end - from).min(fills.len());
            (0..upto).rev().map(move |i| (from + i, fills[i].clone()))
        })
    }

    /// The fills whose order ids are in `ids` (of any market) with their
    /// places, oldest first, looked for only in the runs that can hold
    /// them.
    pub fn of_orders(&self, ids: RangeInclusive<OrderId>) -> Vec<(usize, FillRef)> {
        let (lo, hi) = (*ids.start(), *ids.end());
        let mut found = Vec::new();
        for run in 0..self.run_count() {
            if let Some(r) = self.runs.get(run)
                && (r.highest < lo || r.lowest > hi)
            {
                continue;
            }
            let (fills, from) = self.run(run);
            let of = fills.iter().enumerate();
            let of = of.filter(|(_, f)| ids.contains(&f.order_id));
            found.extend(of.map(|(i, f)| (from + i, f.clone())));
        }
        found
    }

    /// How many fills (of `symbol`, or of any market) were made in `at`
    /// (microseconds): a run wholly in it or wholly out of it is counted
    /// without being unpacked.
    pub fn count(&self, symbol: Option<&str>, at: &std::ops::Range<Timestamp>) -> usize {
        let of_market = |f: &FillRef| symbol.is_none_or(|s| *s == *f.symbol);
        let counted = |fills: &[FillRef]| {
            let of = fills.iter().filter(|f| of_market(f));
            of.filter(|f| at.contains(&f.at)).count()
        };
        let mut n = counted(&self.newest);
        for (i, r) in self.runs.iter().enumerate() {
            if r.latest < at.start || r.earliest >= at.end {
                continue;
            }
            if at.start <= r.earliest && r.latest < at.end {
                let counts = r.counts.iter();
                let of = counts.filter(|(p, _)| symbol.is_none_or(|s| *s == *self.markets[*p]));
                n += of.map(|(_, c)| c).sum::<usize>();
                continue;
            }
            n += counted(&self.unpack(i));
        }
        n
    }

    /// Up to `limit` of the places of the fills that `keep` keeps, newest
    /// first, from just before the place `before` (the end without one),
    /// and the cursor of the next, older page if there is more (a place:
    /// the log only grows, so cursors stay valid).
    pub fn newest_first(
        &self,
        before: Option<u64>,
        limit: usize,
        keep: impl Fn(&FillRef) -> bool,
    ) -> (Vec<usize>, Option<u64>) {
        let end = before.map_or(self.len(), |b| (b as usize).min(self.len()));
        let mut page = Vec::new();
        for (i, f) in self.newest_before(end) {
            if !keep(&f) {
                continue;
            }
            if page.len() == limit {
                return (page, Some(i as u64 + 1));
            }
            page.push(i);
        }
        (page, None)
    }
}

#[cfg(test)]
mod tests {
    use orderbook::sim::Rng;

    use super::*;

    /// Fills over several runs and two markets, mostly of the newest
    /// orders and now and then of one that rested (so runs' ids overlap),
    /// some settled in an account stream (the top bit of where they are
    /// written), and the same fills as a plain list.
    fn logged(n: u64) -> (FillLog, Vec<FillRef>, u64) {
        let mut rng = Rng::new(3);
        let markets: [Arc<str>; 2] = ["BTC-USD".into(), "ETH-USD".into()];
        let (mut log, mut all) = (FillLog::default(), Vec::new());
        let mut newest = 1u64;
        for trade_id in 1..=n {
            newest += rng.below(3);
            let order_id = match rng.chance(5) {
                true => 1 + rng.below(newest),
                false => newest,
            };
            let written = match rng.chance(2) {
                true => (1 << 63) | rng.below(100),
                false => trade_id * 3,
            };
            let symbol = markets[rng.below(2) as usize].clone();
            let at = 1_700_000_000_000_000 + trade_id * 1_000 - rng.below(2_000);
            let f = FillRef::from_word(symbol, trade_id, order_id, at, written);
            log.push(f.clone());
            all.push(f);
        }
        (log, all, newest)
    }

    /// Whatever is read, packed or not, is what was pushed: one fill,
    /// many at once, all oldest or newest first.
    #[test]
    fn a_log_reads_back_what_was_pushed() {
        let (log, all, _) = logged(5_000);
        assert_eq!((log.len(), log.runs.len()), (5_000, 4));
        for (i, f) in all.iter().enumerate() {
            assert_eq!(log.get(i).as_ref(), Some(f), "fill {i}");
        }
        assert_eq!(log.get(5_000), None);
        let read: Vec<FillRef> = log.iter().map(|(_, f)| f).collect();
        assert_eq!(read, all);
        assert!(log.iter().enumerate().all(|(i, (place, _))| i == place));
        let newest: Vec<(usize, FillRef)> = log.iter_newest_first().collect();
        let expected: Vec<(usize, FillRef)> = all.iter().cloned().enumerate().rev().collect();
        assert_eq!(newest, expected);
        let places = [4_999, 0, 1, 1_023, 1_024, 2_500, 2_501, 7_000, 3];
        let many = log.get_many(&places);
        let wanted: Vec<Option<FillRef>> = places.iter().map(|&p| all.get(p).cloned()).collect();
        assert_eq!(many, wanted);
    }

    /// The fills of any range of order ids, found through the runs'
    /// lowest and highest ids, are those a look at every fill finds,
    /// ranges that begin or end exactly at a run's bounds too.
    #[test]
    fn the_fills_of_some_orders_are_found_through_the_runs() {
        let (log, all, newest) = logged(5_000);
        let every = |lo: u64, hi: u64| -> Vec<(usize, FillRef)> {
            let of = all.iter().cloned().enumerate();
            of.filter(|(_, f)| (lo..=hi).contains(&f.order_id))
                .collect()
        };
        let mut rng = Rng::new(9);
        let mut looked = 0;
        for _ in 0..300 {
            let lo = rng.below(newest + 2);
            let hi = lo + rng.below(40);
            let found = log.of_orders(lo..=hi);
            assert_eq!(found, every(lo, hi), "{lo}..={hi}");
            looked += found.len();
        }
        assert!(looked > 300, "the ranges hold fills: {looked}");
        for r in &log.runs {
            let (min, max) = (r.lowest, r.highest);
            for (lo, hi) in [(min, min), (max, max), (0, min), (max, u64::MAX)] {
                assert_eq!(log.of_orders(lo..=hi), every(lo, hi), "{lo}..={hi}");
            }
        }
        assert_eq!(log.of_orders(0..=u64::MAX).len(), 5_000);
        assert_eq!(log.of_orders(newest + 1..=u64::MAX), Vec::new());
    }

    /// Counts by market and time are those of the plain list, for ranges
    /// that hold whole runs, cut runs, or nothing.
    #[test]
    fn counts_and_fills_by_time_are_those_of_every_fill() {
        let (log, all, _) = logged(5_000);
        let first = all[0].at;
        let mut rng = Rng::new(4);
        let mut ranges = vec![
            0..u64::MAX,
            0..first,
            first..first + 1,
            u64::MAX - 1..u64::MAX,
        ];
        for _ in 0..200 {
            let start = first + rng.below(5_200_000);
            ranges.push(start..start + rng.below(3_000_000));
        }
        for at in ranges {
            let inclusive = at.start..=at.end - 1;
            let between: Vec<(usize, FillRef)> = log.iter_between(inclusive).collect();
            let plain: Vec<(usize, FillRef)> = (all.iter().cloned().enumerate())
                .filter(|(_, f)| at.contains(&f.at))
                .collect();
            assert_eq!(between, plain, "{at:?}");
            for symbol in [None, Some("BTC-USD"), Some("ETH-USD"), Some("XRP-USD")] {
                let plain = (all.iter())
                    .filter(|f| symbol.is_none_or(|s| s == &*f.symbol) && at.contains(&f.at))
                    .count();
                assert_eq!(log.count(symbol, &at), plain, "{symbol:?} {at:?}");
            }
        }
    }

    /// Pages newest first are those of the plain list, from any cursor,
    /// with any filter, across runs and into the newest unpacked fills.
    #[test]
    fn pages_walk_back_as_a_list_does() {
        use std::collections::VecDeque;
        let (log, all, _) = logged(3_000);
        let plain = |before: Option<u64>, limit: usize, keep: &dyn Fn(&FillRef) -> bool| {
            let end = before.map_or(all.len(), |b| (b as usize).min(all.len()));
            let mut page = Vec::new();
            for i in (0..end).rev() {
                if !keep(&all[i]) {
                    continue;
                }
                if page.len() == limit {
                    return (page, Some(i as u64 + 1));
                }
                page.push(i);
            }
            (page, None)
        };
        let btc = |f: &FillRef| &*f.symbol == "BTC-USD";
        let any = |_: &FillRef| true;
        let keeps: [&dyn Fn(&FillRef) -> bool; 2] = [&btc, &any];
        for keep in keeps {
            for limit in [1, 7, 500, 5_000] {
                let mut cursors = VecDeque::from([None, Some(2_048), Some(1_024), Some(9_999)]);
                let mut walked = 0;
                while let Some(before) = cursors.pop_front() {
                    let page = log.newest_first(before, limit, keep);
                    assert_eq!(page, plain(before, limit, keep), "{before:?} {limit}");
                    walked += 1;
                    if let (Some(next), true) = (page.1, walked < 40) {
                        cursors.push_back(Some(next));
                    }
                }
            }
        }
    }
}
