//! The market data projection: recent trades, candles and the 24-hour
//! ticker of every market, built from every trade ever made (the log as
//! start read it) and kept current by the live tail. Pages take
//! their first paint from it, at the position it has reached, and each
//! page's own feed goes on from there.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use orderbook::{Book, Event, Market};
use serde::{Deserialize, Serialize};

use super::book_history::{BookHistory, BookHistorySnapshot};
use super::live_tail::{LiveTail, Streams, TailEvent};
use super::lock::unpoisoned;
use super::log_read::LogFold;
use super::streams::StreamError;
use super::supervise::supervise;
use super::views::ticker_view;
use crate::api::{CandleHistory, FeedPosition, TickerView, TradeView};
use crate::candles::{Candle, Interval, Series};

/// Trades kept per market for the tape.
pub const TRADES_KEPT: usize = 100;
/// Candles a page receives per interval.
pub const CANDLES_SENT: usize = 200;
/// The most candles one history request may ask for.
pub const HISTORY_LIMIT: usize = 1000;

/// Milliseconds in the minutes the 24-hour ticker is made of.
const MINUTE_MS: u64 = 60_000;

/// One market's projected data.
#[derive(Debug)]
pub struct MarketTape {
    /// Oldest first.
    pub trades: VecDeque<TradeView>,
    /// Every candle of every interval since the market's first trade: a
    /// chart can be scrolled back to the beginning. A year of one-minute
    /// candles is about 25 MB a market.
    pub series: Vec<Series>,
    /// What replaying the market to a moment starts from.
    pub history: BookHistory,
    /// The newest leader's term that fenced the market's stream (0: none
    /// has): where this server's term must start if it leads.
    pub fenced_term: u64,
    /// The ticker last worked out and the minute it holds for. Every viewer
    /// asks for the ticker after every change of the book, and working it
    /// out reads a day of minutes; it changes only with a trade or when a
    /// minute leaves the 24-hour window, which happens on a minute boundary.
    ticker: Mutex<Option<(u64, TickerView)>>,
}

impl MarketTape {
    fn new(market: Market) -> MarketTape {
        MarketTape {
            history: BookHistory::new(market),
            fenced_term: 0,
            trades: VecDeque::new(),
            series: Interval::ALL
                .iter()
                .map(|&i| Series::new(i, usize::MAX))
                .collect(),
            ticker: Mutex::new(None),
        }
    }

    pub fn add(&mut self, trade: TradeView) {
        let (price, quantity) = trade.amounts();
        for s in &mut self.series {
            s.add(trade.at_ms, price, quantity);
        }
        if self.trades.len() == TRADES_KEPT {
            self.trades.pop_front();
        }
        self.trades.push_back(trade);
        *unpoisoned(self.ticker.get_mut()) = None;
    }

    /// The newest `limit` candles of `interval` that start before
    /// `before_ms`.
    pub fn history(&self, interval: Interval, before_ms: u64, limit: usize) -> CandleHistory {
        let candles = self.candles(interval);
        let end = candles.partition_point(|c| c.start_ms < before_ms);
        let start = end.saturating_sub(limit);
        CandleHistory {
            candles: candles[start..end].to_vec(),
            earlier: start > 0,
        }
    }

    /// The newest `count` candles of each interval made of the trades among
    /// the market's first `events` events: the chart as it was then.
    ///
    /// Bounded however long the history: the candles of an interval that
    /// closed before the moment's own are the live ones (every trade in
    /// them came before it); the moment's own candle is the live candles
    /// of the next finer interval that closed inside it, then that
    /// interval's own candle made the same way, down to the minute, whose
    /// trades up to the moment are the only ones walked. Intervals nest
    /// (a week is Monday-aligned days, a day is 4-hour candles, and so on),
    /// so that covers the moment's candle exactly.
    pub fn series_at(&self, events: u64, count: usize) -> Vec<Series> {
        let trades = self.history.trades_within(events);
        let Some(last) = trades.last() else {
            return Interval::ALL
                .iter()
                .map(|&i| Series::new(i, count))
                .collect();
        };
        let moment = self.history.time_of(last);
        let minute = Interval::M1.start(moment);
        let mut own: Option<Candle> = None;
        let in_minute = trades.partition_point(|t| self.history.time_of(t) < minute);
        for t in &trades[in_minute..] {
            own = Some(joined(own, &point_candle(minute, t.price, t.quantity)));
        }
        let mut out = Vec::with_capacity(Interval::ALL.len());
        for (i, &interval) in Interval::ALL.iter().enumerate() {
            let start = interval.start(moment);
            if let Some(finer) = i.checked_sub(1) {
                // The finer interval's candles that closed inside this one.
                let candles = &self.series[finer].candles;
                let own_finer = Interval::ALL[finer].start(moment);
                let from = candles.partition_point(|c| c.start_ms < start);
                let to = candles.partition_point(|c| c.start_ms < own_finer);
                let mut closed: Option<Candle> = None;
                for c in &candles[from..to] {
                    closed = Some(joined(closed, c));
                }
                own = match (closed, own) {
                    (Some(c), Some(o)) => Some(joined(Some(c), &o)),
                    (c, o) => c.or(o),
                };
            }
            let candles = &self.series[i].candles;
            let end = candles.partition_point(|c| c.start_ms < start);
            let mut series = Series::new(interval, count);
            let before = count.saturating_sub(usize::from(own.is_some()));
            series
                .candles
                .extend_from_slice(&candles[end.saturating_sub(before)..end]);
            series.candles.extend(own.map(|c| Candle {
                start_ms: start,
                ..c
            }));
            out.push(series);
        }
        out
    }

    /// The newest `count` candles of each interval: what a page starts with.
    pub fn recent(&self, count: usize) -> Vec<Series> {
        self.series
            .iter()
            .map(|s| Series {
                interval: s.interval,
                candles: s.candles[s.candles.len().saturating_sub(count)..].to_vec(),
                capacity: count,
            })
            .collect()
    }

    fn candles(&self, interval: Interval) -> &[Candle] {
        self.series
            .iter()
            .find(|s| s.interval == interval)
            .map_or(&[], |s| &s.candles)
    }

    /// The last 24 hours as of `now_ms`.
    pub fn ticker(&self, now_ms: u64) -> TickerView {
        let minute = now_ms / MINUTE_MS;
        let mut cached = unpoisoned(self.ticker.lock());
        match &*cached {
            Some((m, ticker)) if *m == minute => ticker.clone(),
            _ => {
                let ticker = ticker_view(&self.series[0], self.trades.back(), now_ms);
                *cached = Some((minute, ticker.clone()));
                ticker
            }
        }
    }
}

/// One trade as a candle of its own.
fn point_candle(start_ms: u64, price: f64, quantity: f64) -> Candle {
    Candle {
        start_ms,
        open: price,
        high: price,
        low: price,
        close: price,
        volume: quantity,
    }
}

/// `earlier` and `later` (of later trades) as one candle, starting where
/// `earlier` does.
fn joined(earlier: Option<Candle>, later: &Candle) -> Candle {
    match earlier {
        None => *later,
        Some(e) => Candle {
            start_ms: e.start_ms,
            open: e.open,
            high: e.high.max(later.high),
            low: e.low.min(later.low),
            close: later.close,
            volume: e.volume + later.volume,
        },
    }
}

/// Every market's tape, and the log position they are the fold of.
pub struct Projection {
    position: Option<FeedPosition>,
    markets: HashMap<String, MarketTape>,
}

impl Projection {
    /// The tapes of these markets, before any event.
    pub fn new(markets: Vec<Market>) -> Projection {
        let markets = markets
            .into_iter()
            .map(|m| (m.spec.symbol.to_string(), MarketTape::new(m)));
        Projection {
            position: None,
            markets: markets.collect(),
        }
    }

    /// Folds in events of the market streams, in the store's order (others
    /// are passed over).
    fn fold(&mut self, events: &[Arc<TailEvent>]) {
        for e in events {
            let Some(event) = e.book() else { continue };
            let Some(m) = self.markets.get_mut(event.symbol().as_str()) else {
                continue;
            };
            if let Event::StreamFenced(f) = event
                && e.revision == m.history.events()
            {
                m.fenced_term = m.fenced_term.max(f.term);
            }
            m.history.apply(e.revision, event);
            if let Some(view) = &e.trade {
                m.add(TradeView::clone(view));
            }
        }
    }
}

/// The market data written down for a start to take up
/// (`start_snapshots.rs`): each market's tape, candles and history. The
/// candles' prices and volumes are the bits of their `f64`s, so they read
/// back exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectionSnapshot {
    markets: Vec<TapeSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct TapeSnapshot {
    symbol: String,
    trades: VecDeque<TradeView>,
    /// Each interval's candles, in [`Interval::ALL`]'s order: start and
    /// the bits of open, high, low, close and volume.
    series: Vec<Vec<(u64, [u64; 5])>>,
    history: BookHistorySnapshot,
    fenced_term: u64,
}

impl Projection {
    /// Written down, if every book is between two orders (see
    /// [`BookHistory::snapshot`]); markets in order of their names.
    pub fn snapshot(&self) -> Option<ProjectionSnapshot> {
        let mut markets = Vec::with_capacity(self.markets.len());
        for (symbol, m) in &self.markets {
            let candles = |s: &Series| {
                let c = s.candles.iter();
                c.map(|c| {
                    (
                        c.start_ms,
                        [c.open, c.high, c.low, c.close, c.volume].map(f64::to_bits),
                    )
                })
                .collect()
            };
            markets.push(TapeSnapshot {
                symbol: symbol.clone(),
                trades: m.trades.clone(),
                series: m.series.iter().map(candles).collect(),
                history: m.history.snapshot()?,
                fenced_term: m.fenced_term,
            });
        }
        markets.sort_by(|a, b| a.symbol.cmp(&b.symbol));
        Some(ProjectionSnapshot { markets })
    }

    /// Takes up what a snapshot wrote down. A market it does not have
    /// stays as it is (a market added since starts empty, and the fold
    /// goes on from the snapshot's position, where that market had no
    /// events); a market it has that this server does not trade is an
    /// error, as its events would be folded nowhere.
    pub fn restore(&mut self, s: ProjectionSnapshot) -> Result<(), String> {
        for t in s.markets {
            let Some(m) = self.markets.get_mut(&t.symbol) else {
                return Err(format!(
                    "it holds market {}, which is not traded here",
                    t.symbol
                ));
            };
            if t.series.len() != Interval::ALL.len() {
                return Err(format!("{} has {} candle series", t.symbol, t.series.len()));
            }
            let market = m.history.book().market().clone();
            m.history = BookHistory::from_snapshot(market, t.history)
                .map_err(|e| format!("{}: {e}", t.symbol))?;
            for (series, candles) in m.series.iter_mut().zip(t.series) {
                series.candles = (candles.into_iter())
                    .map(|(start_ms, bits)| {
                        let [open, high, low, close, volume] = bits.map(f64::from_bits);
                        Candle {
                            start_ms,
                            open,
                            high,
                            low,
                            close,
                            volume,
                        }
                    })
                    .collect();
            }
            m.trades = t.trades;
            m.fenced_term = t.fenced_term;
            *unpoisoned(m.ticker.get_mut()) = None;
        }
        Ok(())
    }
}

impl LogFold for Projection {
    fn fold_page(&mut self, events: &[Arc<TailEvent>]) -> Result<(), StreamError> {
        self.fold(events);
        Ok(())
    }
}

/// A handle on the projection. Cheap to clone.
#[derive(Clone)]
pub struct MarketData {
    state: Arc<RwLock<Projection>>,
}

impl MarketData {
    /// Starts the supervised task that follows the tail from `position`
    /// (where start's read of the log ended), on the projection folded
    /// from the log up to there.
    pub fn start(
        tail: LiveTail,
        mut projection: Projection,
        position: Option<FeedPosition>,
    ) -> MarketData {
        projection.position = position;
        let state = Arc::new(RwLock::new(projection));
        let data = MarketData { state };
        let task = data.clone();
        supervise("market data".into(), move || task.clone().run(tail.clone()));
        data
    }

    /// A market's tape as of the position reached, and that position.
    pub fn read<T>(
        &self,
        symbol: &str,
        f: impl FnOnce(&MarketTape, Option<FeedPosition>) -> T,
    ) -> Option<T> {
        let p = unpoisoned(self.state.read());
        p.markets.get(symbol).map(|m| f(m, p.position))
    }

    /// A market's book after every event folded in so far.
    pub fn book(&self, symbol: &str) -> Option<Book> {
        self.read(symbol, |tape, _| tape.history.book().clone())
    }

    async fn run(self, tail: LiveTail) {
        let from = unpoisoned(self.state.read()).position;
        let mut reader = tail.reader(Streams::Markets, from);
        loop {
            match reader.next().await {
                Ok(progress) => {
                    let mut p = unpoisoned(self.state.write());
                    p.fold(&progress.events);
                    p.position = progress.position;
                }
                Err(e) => {
                    tracing::warn!("market data cannot read the store, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::book_history::tests::spaced_events;

    fn trade(trade_id: u64, price: &str, at_ms: u64) -> TradeView {
        TradeView {
            trade_id,
            price: price.into(),
            quantity: "1".into(),
            taker_side: "buy".into(),
            at_ms,
        }
    }

    /// The remembered ticker is always the one worked out afresh: after a
    /// trade in the same minute, and when a minute leaves the window.
    #[test]
    fn the_ticker_is_remembered_only_while_it_holds() {
        let day = 86_400_000;
        let fresh =
            |tape: &MarketTape, now: u64| ticker_view(&tape.series[0], tape.trades.back(), now);
        let mut tape = MarketTape::new(Market::defaults().remove(0));
        tape.add(trade(1, "50", MINUTE_MS));
        tape.add(trade(2, "40", 3 * MINUTE_MS + 5));
        let now = day + MINUTE_MS + 10;
        assert_eq!(tape.ticker(now), fresh(&tape, now));
        assert_eq!(tape.ticker(now).high, Some(50.0));

        // A trade within the same minute shows at once.
        tape.add(trade(3, "45", now - 1));
        assert_eq!(tape.ticker(now + 1).last.as_deref(), Some("45"));
        assert_eq!(tape.ticker(now + 1), fresh(&tape, now + 1));

        // The first minute leaves the window at the next minute boundary:
        // the last millisecond before it still counts the 50, the first
        // millisecond after it does not.
        let boundary = day + 2 * MINUTE_MS;
        assert_eq!(tape.ticker(boundary - 1).high, Some(50.0));
        assert_eq!(tape.ticker(boundary).high, Some(45.0));
        for now in [
            boundary - 1,
            boundary,
            boundary + MINUTE_MS - 1,
            boundary + 3 * MINUTE_MS,
        ] {
            assert_eq!(tape.ticker(now), fresh(&tape, now), "at {now}");
        }
    }

    /// The chart of any moment, made of the live candles that closed before
    /// it and the moment's own candles, is the chart of that moment's
    /// trades added one by one, for every interval: the same opens, highs,
    /// lows and closes, and the same volumes to rounding.
    #[test]
    fn the_candles_of_a_moment_are_its_trades_added_one_by_one() {
        // Seconds, most of an hour, hours or days between commands.
        let gap_s = |i: u64| [7, 3_000, 18_000, 170_000][(i * 7 % 11 % 4) as usize];
        let events = spaced_events(1500, |i| gap_s(i) * 1_000_000 + i % 1000);
        let mut tape = MarketTape::new(Market::defaults().remove(0));
        for (revision, e) in events.iter().enumerate() {
            tape.history.apply(revision as u64, e);
            if let Some(view) = crate::server::views::trade_view(e) {
                tape.add(view);
            }
        }
        let weeks = (events.last().unwrap().at() - events[0].at()) / 604_800_000_000;
        assert!(weeks >= 8, "{weeks} weeks");
        for count in [1, 5, 200] {
            for n in (0..=events.len()).step_by(7) {
                let mut naive: Vec<Series> = Interval::ALL
                    .iter()
                    .map(|&i| Series::new(i, count))
                    .collect();
                for view in events[..n]
                    .iter()
                    .filter_map(crate::server::views::trade_view)
                {
                    let (price, quantity) = view.amounts();
                    for s in &mut naive {
                        s.add(view.at_ms, price, quantity);
                    }
                }
                let got = tape.series_at(n as u64, count);
                for (g, w) in got.iter().zip(&naive) {
                    assert_eq!(g.interval, w.interval);
                    assert_eq!(
                        g.candles.len(),
                        w.candles.len(),
                        "{:?} after {n}",
                        g.interval
                    );
                    for (a, b) in g.candles.iter().zip(&w.candles) {
                        let at = format!("{:?} after {n}: {a:?} {b:?}", g.interval);
                        assert_eq!(
                            (a.start_ms, a.open, a.high, a.low, a.close),
                            (b.start_ms, b.open, b.high, b.low, b.close),
                            "{at}"
                        );
                        assert!(
                            (a.volume - b.volume).abs() <= 1e-9 * b.volume.max(1.0),
                            "{at}"
                        );
                    }
                }
            }
        }
    }
}
