//! The market data projection: recent trades, candles and the 24-hour
//! ticker of every market, built from every trade ever made (the log as
//! start read it) and kept current by the live tail. Pages take
//! their first paint from it, at the position it has reached, and each
//! page's own feed goes on from there.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use orderbook::{Book, Market};

use super::book_history::BookHistory;
use super::live_tail::{LiveTail, Streams, TailEvent};
use super::lock::unpoisoned;
use super::preloaded::Preloaded;
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

#[derive(Default)]
struct Projection {
    position: Option<FeedPosition>,
    markets: HashMap<String, MarketTape>,
}

impl Projection {
    /// Folds in events of the market streams, in the store's order (others
    /// are passed over).
    fn fold(&mut self, events: &[Arc<TailEvent>]) {
        for e in events {
            let Some(event) = e.book() else { continue };
            let Some(m) = self.markets.get_mut(event.symbol().as_str()) else {
                continue;
            };
            m.history.apply(e.revision, event);
            if let Some(view) = &e.trade {
                m.add(TradeView::clone(view));
            }
        }
    }
}

/// A handle on the projection. Cheap to clone.
#[derive(Clone)]
pub struct MarketData {
    state: Arc<RwLock<Projection>>,
}

impl MarketData {
    /// Folds the log as start read it, then starts the supervised task
    /// that follows the tail from there.
    pub fn start(tail: LiveTail, markets: Vec<Market>, preloaded: &Preloaded) -> MarketData {
        let mut projection = Projection::default();
        for m in markets {
            projection
                .markets
                .insert(m.spec.symbol.to_string(), MarketTape::new(m));
        }
        projection.fold(&preloaded.events);
        projection.position = preloaded.position;
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
}
