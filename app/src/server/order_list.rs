//! One account's orders, oldest first, as the order history keeps them
//! (`order_history.rs`), packed. A history of millions of orders is mostly
//! closed ones, and a closed order never changes, so each run of [`RUN`]
//! places is packed: its closed orders ([`ClosedOrder`]) as rows of a
//! compact table (`compact_table.rs`), about 20 bytes an order where a
//! [`ClosedOrder`] takes 80. The orders of a run that were not closed
//! with their first terms when it was packed (open ones, refusals, amended
//! orders) are kept whole beside it, by place, and so are the newest
//! orders, up to two runs of them: most of those still open are among
//! them, and an order packed as a row has closed for good.
//!
//! An order kept whole (every order that can still change) is found by
//! its market and id without looking through the list. A run remembers,
//! for each market among its rows, the lowest and highest order id and
//! how many filled and were cancelled, and when its orders were placed,
//! so a read unpacks only the runs that can hold what it looks for (a run
//! unpacks in tens of microseconds), and a count takes a run placed wholly
//! in its range from these.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::{ControlFlow, Range};

use accounts::compact_table::{TableReader, TableWriter};
use orderbook::{OrderId, Symbol, Timestamp};

use super::order_record::{ClosedOrder, OrderEntry};

/// How many places one packed run covers.
pub const RUN: usize = 1024;

/// How many of the newest orders are kept as they are: when there are
/// this many, the oldest [`RUN`] of them are packed. The run more that
/// stays gives the orders just placed time to close before their run is
/// packed.
const KEPT: usize = 2 * RUN;

/// How many orders kept whole beside a run may close before the run is
/// packed again with them as rows.
const REPACK: u16 = 64;

/// One account's orders: see the module docs.
#[derive(Debug, Default)]
pub struct OrderList {
    runs: Vec<ClosedRun>,
    /// The orders in the runs' places that are not rows, by place.
    beside: BTreeMap<usize, OrderEntry>,
    /// The orders after the runs, fewer than [`KEPT`].
    newest: Vec<OrderEntry>,
    /// Where each order kept whole is, by market and id (see
    /// [`OrderEntry::whole_key`]): every order that can still change,
    /// and those that closed but are not [`ClosedOrder`]s.
    whole: HashMap<(Symbol, OrderId), usize>,
}

/// What a read knows of a packed run's rows without unpacking it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunBounds {
    markets: Box<[MarketRows]>,
    /// When the first and last of its rows' orders were placed.
    earliest: Timestamp,
    latest: Timestamp,
}

/// A run's rows in one market (by its place in the history's list).
#[derive(Clone, Debug, PartialEq, Eq)]
struct MarketRows {
    market: u16,
    /// The lowest and highest id of its orders there.
    lowest: OrderId,
    highest: OrderId,
    /// How many of them filled, and how many were cancelled.
    filled: u16,
    cancelled: u16,
}

impl RunBounds {
    /// Whether any row is in market `market`.
    pub fn has(&self, market: u16) -> bool {
        self.markets.iter().any(|m| m.market == market)
    }

    /// Whether a row can be order `id` of market `market`.
    pub fn can_hold(&self, market: u16, id: OrderId) -> bool {
        (self.markets.iter()).any(|m| m.market == market && (m.lowest..=m.highest).contains(&id))
    }

    /// Whether a row in market `market` has an id of `id` or more.
    pub fn reaches(&self, market: u16, id: OrderId) -> bool {
        self.markets
            .iter()
            .any(|m| m.market == market && m.highest >= id)
    }

    /// Whether a row can have been placed in `placed` (microseconds).
    pub fn placed_in(&self, placed: &Range<Timestamp>) -> bool {
        self.latest >= placed.start && self.earliest < placed.end
    }

    /// Whether every row was placed in `placed` (microseconds).
    pub fn placed_within(&self, placed: &Range<Timestamp>) -> bool {
        self.earliest >= placed.start && self.latest < placed.end
    }

    /// How many rows are in market `market` (in any, without one) and,
    /// with `cancelled`, were cancelled (`true`) or filled (`false`).
    pub fn rows(&self, market: Option<u16>, cancelled: Option<bool>) -> usize {
        let of_market = self.markets.iter();
        let of_market = of_market.filter(|m| market.is_none_or(|want| m.market == want));
        of_market
            .map(|m| match cancelled {
                Some(true) => usize::from(m.cancelled),
                Some(false) => usize::from(m.filled),
                None => usize::from(m.filled) + usize::from(m.cancelled),
            })
            .sum()
    }
}

#[derive(Clone, Debug)]
struct ClosedRun {
    /// Bit `i % 64` of word `i / 64` is set if the run's place `i` is a
    /// row (else its order is kept beside the run).
    rows_at: [u64; RUN / 64],
    /// The rows, as [`ClosedOrder::write_row`] writes them, from zeros.
    rows: Box<[u8]>,
    bounds: RunBounds,
    /// How many of the orders beside it have closed since it was packed.
    closed_since: u16,
}

impl ClosedRun {
    /// The run of `slots` (at most [`RUN`]): a closed order is a row, and
    /// `None` a place kept beside it.
    fn pack<'a>(slots: impl Iterator<Item = Option<&'a ClosedOrder>>) -> ClosedRun {
        let mut rows = TableWriter::default();
        let mut last = [0; 3];
        let mut rows_at = [0; RUN / 64];
        let mut markets: Vec<MarketRows> = Vec::new();
        let (mut earliest, mut latest) = (Timestamp::MAX, 0);
        for (i, slot) in slots.enumerate() {
            let Some(c) = slot else { continue };
            rows_at[i / 64] |= 1 << (i % 64);
            c.write_row(&mut rows, &mut last);
            let at = match markets.iter().position(|m| m.market == c.market) {
                Some(at) => at,
                None => {
                    markets.push(MarketRows {
                        market: c.market,
                        lowest: c.order_id,
                        highest: c.order_id,
                        filled: 0,
                        cancelled: 0,
                    });
                    markets.len() - 1
                }
            };
            let m = &mut markets[at];
            (m.lowest, m.highest) = (m.lowest.min(c.order_id), m.highest.max(c.order_id));
            match c.cancelled {
                Some(_) => m.cancelled += 1,
                None => m.filled += 1,
            }
            (earliest, latest) = (earliest.min(c.placed_at), latest.max(c.placed_at));
        }
        ClosedRun {
            rows_at,
            rows: rows.finish().0.into_boxed_slice(),
            bounds: RunBounds {
                markets: markets.into_boxed_slice(),
                earliest,
                latest,
            },
            closed_since: 0,
        }
    }

    fn is_row(&self, i: usize) -> bool {
        self.rows_at[i / 64] & (1 << (i % 64)) != 0
    }

    /// Its rows, in the order of their places.
    fn unpack(&self) -> Vec<ClosedOrder> {
        let count = self.rows_at.iter().map(|w| w.count_ones() as usize).sum();
        let mut rows = TableReader::of_bytes(&self.rows);
        let mut last = [0; 3];
        let mut orders = Vec::with_capacity(count);
        for _ in 0..count {
            let order = ClosedOrder::read_row(&mut rows, &mut last, usize::from(u16::MAX) + 1);
            orders.push(order.expect("a run this list packed unpacks"));
        }
        orders
    }
}

impl OrderList {
    pub fn len(&self) -> usize {
        self.packed() + self.newest.len()
    }

    /// How many places the runs cover.
    fn packed(&self) -> usize {
        self.runs.len() * RUN
    }

    /// Adds the newest order, at place [`OrderList::len`].
    pub fn push(&mut self, entry: OrderEntry) {
        if let Some(key) = entry.whole_key() {
            self.whole.insert(key, self.len());
        }
        self.newest.push(entry);
        if self.newest.len() == KEPT {
            let from = self.packed();
            let oldest: Vec<OrderEntry> = self.newest.drain(..RUN).collect();
            let rows = oldest.iter().map(|o| match o {
                OrderEntry::Closed(c) => Some(c),
                OrderEntry::Whole { .. } => None,
            });
            self.runs.push(ClosedRun::pack(rows));
            let kept = oldest.into_iter().enumerate();
            let kept = kept.filter(|(_, o)| matches!(o, OrderEntry::Whole { .. }));
            self.beside.extend(kept.map(|(i, o)| (from + i, o)));
        }
    }

    /// The order at `place` if it is not a row (only rows are packed).
    fn kept(&self, place: usize) -> Option<&OrderEntry> {
        match place.checked_sub(self.packed()) {
            Some(i) => self.newest.get(i),
            None => self.beside.get(&place),
        }
    }

    /// [`OrderList::kept`], to change.
    fn kept_mut(&mut self, place: usize) -> Option<&mut OrderEntry> {
        match place.checked_sub(self.packed()) {
            Some(i) => self.newest.get_mut(i),
            None => self.beside.get_mut(&place),
        }
    }

    /// The order of market `symbol` with id `id`, if it is kept whole.
    pub fn whole(&self, symbol: Symbol, id: OrderId) -> Option<&OrderEntry> {
        self.kept(*self.whole.get(&(symbol, id))?)
    }

    /// The order of market `symbol` with id `id`, to change, if it is
    /// kept whole.
    pub fn whole_mut(&mut self, symbol: Symbol, id: OrderId) -> Option<&mut OrderEntry> {
        let place = *self.whole.get(&(symbol, id))?;
        self.kept_mut(place)
    }

    /// The order of market `symbol` with id `id`, kept whole, closes:
    /// `close` changes it, into a [`ClosedOrder`] if it can be, and then
    /// it is no longer kept whole. A run that has had [`REPACK`] of the
    /// orders beside it become closed orders is packed again with them.
    pub fn close(&mut self, symbol: Symbol, id: OrderId, close: impl FnOnce(&mut OrderEntry)) {
        let Some(&place) = self.whole.get(&(symbol, id)) else {
            return;
        };
        let Some(order) = self.kept_mut(place) else {
            return;
        };
        close(order);
        if !matches!(order, OrderEntry::Closed(_)) {
            return;
        }
        self.whole.remove(&(symbol, id));
        if place >= self.packed() {
            return;
        }
        let run = place / RUN;
        self.runs[run].closed_since += 1;
        if self.runs[run].closed_since >= REPACK {
            self.repack(run);
        }
    }

    /// Packs run `run` again, the closed orders beside it as rows.
    fn repack(&mut self, run: usize) {
        let from = run * RUN;
        let closed: Vec<usize> = (self.beside.range(from..from + RUN))
            .filter(|(_, o)| matches!(o, OrderEntry::Closed(_)))
            .map(|(p, _)| *p)
            .collect();
        let mut rows = self.runs[run].unpack().into_iter();
        let mut slots: Vec<Option<ClosedOrder>> = vec![None; RUN];
        for (i, slot) in slots.iter_mut().enumerate() {
            if self.runs[run].is_row(i) {
                *slot = rows.next();
            }
        }
        for place in closed {
            if let Some(OrderEntry::Closed(c)) = self.beside.remove(&place) {
                slots[place - from] = Some(c);
            }
        }
        self.runs[run] = ClosedRun::pack(slots.iter().map(Option::as_ref));
    }

    /// Visits the orders at `places` with their places, oldest first or
    /// newest first, until `visit` breaks (and then breaks). The rows of a
    /// run whose bounds `wanted` refuses are not unpacked nor visited; the
    /// orders beside it are.
    pub fn walk(
        &self,
        places: Range<usize>,
        newest_first: bool,
        wanted: impl Fn(&RunBounds) -> bool,
        mut visit: impl FnMut(usize, &OrderEntry) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let end = places.end.min(self.len());
        let start = places.start.min(end);
        let packed = self.packed();
        let newest = start.max(packed)..end;
        let runs = (start / RUN)..end.min(packed).div_ceil(RUN);
        let newest_part = |visit: &mut dyn FnMut(usize, &OrderEntry) -> ControlFlow<()>| {
            let mut each = newest.clone().map(|p| (p, &self.newest[p - packed]));
            match newest_first {
                true => each.rev().try_for_each(|(p, o)| visit(p, o)),
                false => each.try_for_each(|(p, o)| visit(p, o)),
            }
        };
        if newest_first {
            newest_part(&mut visit)?;
            for run in runs.rev() {
                self.walk_run(run, &(start..end), true, &wanted, &mut visit)?;
            }
        } else {
            for run in runs {
                self.walk_run(run, &(start..end), false, &wanted, &mut visit)?;
            }
            newest_part(&mut visit)?;
        }
        ControlFlow::Continue(())
    }

    /// [`OrderList::walk`] over the places of one run.
    fn walk_run(
        &self,
        run: usize,
        places: &Range<usize>,
        newest_first: bool,
        wanted: &impl Fn(&RunBounds) -> bool,
        visit: &mut impl FnMut(usize, &OrderEntry) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let r = &self.runs[run];
        let from = run * RUN;
        let within = places.start.max(from)..places.end.min(from + RUN);
        let mut orders: Vec<(usize, Cow<'_, OrderEntry>)> = Vec::new();
        if wanted(&r.bounds) {
            let mut rows = r.unpack().into_iter();
            for place in from..within.end {
                let order = match r.is_row(place - from) {
                    true => rows.next().map(|c| Cow::Owned(OrderEntry::Closed(c))),
                    false => self.beside.get(&place).map(Cow::Borrowed),
                };
                if let Some(order) = order.filter(|_| place >= within.start) {
                    orders.push((place, order));
                }
            }
        } else {
            let beside = self.beside.range(within);
            orders.extend(beside.map(|(p, o)| (*p, Cow::Borrowed(o))));
        }
        let mut each = orders.iter().map(|(p, o)| (*p, &**o));
        match newest_first {
            true => each.rev().try_for_each(|(p, o)| visit(p, o)),
            false => each.try_for_each(|(p, o)| visit(p, o)),
        }
    }
}

/// Two lists are equal when they hold the same orders at the same places,
/// however they are packed.
impl PartialEq for OrderList {
    fn eq(&self, other: &OrderList) -> bool {
        let orders = |list: &OrderList| {
            let mut all = Vec::with_capacity(list.len());
            let _ = list.walk(
                0..list.len(),
                false,
                |_| true,
                |p, o| {
                    all.push((p, o.clone()));
                    ControlFlow::Continue(())
                },
            );
            all
        };
        self.len() == other.len() && orders(self) == orders(other)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use orderbook::sim::Rng;
    use orderbook::{CancelReason, OrderTerms, OrderType, Side};
    use rust_decimal::Decimal;

    use super::*;
    use crate::server::order_record::{OrderRecord, OrderState};

    const MARKETS: [&str; 3] = ["BTC-USD", "ETH-USD", "ETH-BTC"];

    /// An order just accepted in market `market` (by place in
    /// [`MARKETS`]); one accepted without its revision stays whole once
    /// it closes, as an amended order does.
    fn accepted(market: usize, id: OrderId, at: Timestamp, revision: Option<u64>) -> OrderEntry {
        let record = OrderRecord {
            symbol: Arc::from(MARKETS[market]),
            order_id: Some(id),
            terms: OrderTerms {
                side: Side::Buy,
                order_type: OrderType::Limit,
                price: Some(Decimal::new(30_000, 0)),
                quantity: Some(Decimal::new(id as i64 % 97 + 1, 3)),
                quote_amount: None,
                time_in_force: None,
                post_only: false,
                self_trade_prevention: Default::default(),
                trigger: None,
            },
            client_order_id: id
                .is_multiple_of(5)
                .then(|| format!("c{id}").try_into().unwrap()),
            filled: Decimal::ZERO,
            filled_quote: Decimal::ZERO,
            state: OrderState::Open,
            triggered_at: None,
            placed_at: at,
            updated_at: at,
        };
        OrderEntry::Whole {
            record: Box::new(record),
            accepted_revision: revision,
        }
    }

    /// A refusal: never found by a market and id.
    fn refused(at: Timestamp) -> OrderEntry {
        let OrderEntry::Whole { mut record, .. } = accepted(0, 1, at, None) else {
            unreachable!()
        };
        record.order_id = None;
        record.state = OrderState::Rejected("not enough USD".into());
        OrderEntry::Whole {
            record,
            accepted_revision: None,
        }
    }

    /// Closes an order as the history does: filled or cancelled at `at`,
    /// then kept as a closed order if it can be.
    fn close(o: &mut OrderEntry, market: usize, at: Timestamp, cancelled: bool) {
        if let Some(r) = o.whole_mut() {
            r.filled = Decimal::new(at as i64 % 1000, 4);
            r.filled_quote = r.filled * Decimal::new(30_001, 0);
            r.state = match cancelled {
                true => OrderState::Cancelled(CancelReason::User),
                false => OrderState::Filled,
            };
            r.updated_at = at;
        }
        o.settle(market as u16);
    }

    fn walked(
        list: &OrderList,
        places: Range<usize>,
        newest_first: bool,
        wanted: impl Fn(&RunBounds) -> bool,
    ) -> Vec<(usize, OrderEntry)> {
        let mut seen = Vec::new();
        let _ = list.walk(places, newest_first, wanted, |p, o| {
            seen.push((p, o.clone()));
            ControlFlow::Continue(())
        });
        seen
    }

    /// Orders pushed, changed and closed in a random order (most soon,
    /// some long after their run was packed) read back as a plain list
    /// does: walks over any places either way, walks that pass over runs,
    /// and the orders that can still change, found by market and id.
    #[test]
    fn a_packed_list_reads_as_a_plain_list() {
        let mut rng = Rng::new(11);
        let mut list = OrderList::default();
        let mut plain: Vec<OrderEntry> = Vec::new();
        let mut open: Vec<(usize, Symbol, OrderId)> = Vec::new();
        let mut resting = Vec::new();
        let mut closes = Vec::new();
        let mut next_id = [1u64; 3];
        let mut at = 1_700_000_000_000_000;
        let mut closed_late = 0;
        for _ in 0..30_000 {
            at += 1 + rng.below(5_000_000);
            if rng.chance(3) {
                list.push(refused(at));
                plain.push(refused(at));
            } else {
                let market = rng.below(3) as usize;
                let id = next_id[market];
                next_id[market] += 1 + rng.below(3);
                let revision = (!rng.chance(4)).then_some(plain.len() as u64 * 3);
                let o = accepted(market, id, at, revision);
                open.push((plain.len(), Symbol::new(MARKETS[market]).unwrap(), id));
                list.push(o.clone());
                plain.push(o);
            }
            // Most orders close soon; some rest for thousands of others.
            if rng.chance(20)
                && let Some(o) = open.pop()
            {
                resting.push(o);
            }
            while !open.is_empty() && rng.chance(60) {
                let i = open.len() - 1 - rng.below(open.len().min(8) as u64) as usize;
                let (place, symbol, id) = open.swap_remove(i);
                closes.push((place, symbol, id));
            }
            if !resting.is_empty() && (resting.len() > 600 || rng.chance(10)) {
                let i = rng.below(resting.len() as u64) as usize;
                closes.push(resting.swap_remove(i));
            }
            for (place, symbol, id) in closes.drain(..) {
                let market = MARKETS.iter().position(|m| *m == symbol.as_str()).unwrap();
                let cancelled = rng.chance(50);
                let late = place < list.packed();
                list.close(symbol, id, |o| close(o, market, at, cancelled));
                close(&mut plain[place], market, at, cancelled);
                closed_late += usize::from(late && matches!(plain[place], OrderEntry::Closed(_)));
                let kept = list.whole(symbol, id);
                assert_eq!(kept.is_some(), plain[place].whole().is_some());
                assert!(kept.is_none_or(|o| o == &plain[place]));
            }
            if let Some(&(place, symbol, id)) = resting.first() {
                assert_eq!(list.whole(symbol, id), Some(&plain[place]));
                if let Some(OrderEntry::Whole { record, .. }) = list.whole_mut(symbol, id) {
                    record.updated_at = at;
                }
                if let OrderEntry::Whole { record, .. } = &mut plain[place] {
                    record.updated_at = at;
                }
            }
        }
        assert_eq!(list.len(), plain.len());
        assert!(list.runs.len() >= 8, "{} runs", list.runs.len());
        assert!(
            closed_late > 2 * usize::from(REPACK),
            "{closed_late} closed late"
        );
        // Orders that closed beside a run went into its rows again.
        let beside_closed = (list.beside.values())
            .filter(|o| matches!(o, OrderEntry::Closed(_)))
            .count();
        assert!(
            beside_closed < closed_late,
            "{beside_closed} of {closed_late}"
        );
        let whole = (list.beside.values()).filter(|o| o.whole().is_some());
        assert!(whole.count() > 1_000, "refusals and orders kept whole");

        let every: Vec<(usize, OrderEntry)> = plain.iter().cloned().enumerate().collect();
        assert_eq!(walked(&list, 0..usize::MAX, false, |_| true), every);
        for _ in 0..200 {
            let a = rng.below(plain.len() as u64 + 10) as usize;
            let b = rng.below(plain.len() as u64 + 10) as usize;
            let places = a.min(b)..a.max(b);
            let within = places.start.min(plain.len())..places.end.min(plain.len());
            let expected = &every[within];
            assert_eq!(walked(&list, places.clone(), false, |_| true), expected);
            let mut back = walked(&list, places.clone(), true, |_| true);
            back.reverse();
            assert_eq!(back, expected);
            // Passing over the runs with rows of market 1 leaves out
            // exactly their rows, not the orders kept beside them.
            let no_eth = |b: &RunBounds| !b.has(1);
            let passed_over = |p: usize| {
                let run = list.runs.get(p / RUN);
                run.is_some_and(|r| r.bounds.has(1) && r.is_row(p % RUN))
            };
            let some: Vec<_> = (expected.iter())
                .filter(|(p, _)| !passed_over(*p))
                .collect();
            assert!(some.len() < expected.len() || expected.len() < RUN);
            assert!(walked(&list, places, false, no_eth).iter().eq(some));
        }
        // A walk stops where its visit breaks.
        let mut seen = 0;
        let stopped = list.walk(
            0..plain.len(),
            true,
            |_| true,
            |_, _| {
                seen += 1;
                match seen {
                    3_000 => ControlFlow::Break(()),
                    _ => ControlFlow::Continue(()),
                }
            },
        );
        assert_eq!((stopped, seen), (ControlFlow::Break(()), 3_000));
        for (place, symbol, id) in open.into_iter().chain(resting) {
            assert_eq!(list.whole(symbol, id), Some(&plain[place]));
        }
    }

    /// A run's bounds hold each of its rows' market and id, and when they
    /// were placed.
    #[test]
    fn a_runs_bounds_hold_its_rows() {
        let mut list = OrderList::default();
        let mut at = 1_000;
        for i in 0..KEPT as u64 {
            at += 10;
            let market = (i % 2) as usize;
            let mut o = accepted(market, 100 + i, at, Some(i));
            close(&mut o, market, at, false);
            list.push(o);
        }
        let b = &list.runs[0].bounds;
        assert_eq!(list.runs.len(), 1);
        assert!(b.has(0) && b.has(1) && !b.has(2));
        assert!(b.can_hold(0, 100) && b.can_hold(1, 101) && b.can_hold(1, 100 + RUN as u64 - 1));
        assert!(!b.can_hold(0, 99) && !b.can_hold(1, 100 + RUN as u64));
        assert!(b.placed_in(&(1_010..1_011)) && b.placed_in(&(0..u64::MAX)));
        assert!(b.placed_within(&(1_010..1_011 + 10 * RUN as u64)));
        assert!(!b.placed_within(&(1_011..u64::MAX)));
        assert!(!b.placed_within(&(0..1_000 + 10 * RUN as u64)));
        assert_eq!(b.rows(None, None), RUN);
        assert_eq!(b.rows(Some(1), None), RUN / 2);
        assert_eq!(b.rows(Some(0), Some(false)), RUN / 2);
        assert_eq!(b.rows(Some(0), Some(true)), 0);
        assert_eq!(b.rows(Some(2), None), 0);
        assert!(
            !b.placed_in(&(0..1_010)) && !b.placed_in(&(1_000 + 10 * RUN as u64 + 1..u64::MAX))
        );
    }
}
