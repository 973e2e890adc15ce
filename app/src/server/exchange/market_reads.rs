//! What anyone may see of a market: its terms, book, depth, ticker, tape
//! and candles, live or replayed to a moment of its history.

use std::collections::VecDeque;
use std::sync::Arc;

use orderbook::{Book, Event, TradeExecuted};
use tokio::sync::watch;

use super::Exchange;
use crate::api::{
    CandleHistory, DepthView, MarketSnapshot, MarketView, ReplayView, TAPE, TickerView, TradeView,
};
use crate::candles::Interval;
use crate::server::book_history::TradesFrom;
use crate::server::book_snapshots::latest_within;
use crate::server::clock::now_ms;
use crate::server::depth_updates::{DEPTH_LEVELS, DepthUpdate};
use crate::server::exact_candles::ExactCandle;
use crate::server::exchange_error::ExchangeError;
use crate::server::market_data::CANDLES_SENT;
use crate::server::streams::{Direction, StreamError, read_market};
use crate::server::views::{depth_view, market_view, trade_view};

/// The most events one trade read takes from the store.
const TRADE_READ_BUDGET: u64 = 20_000;

/// Events a replay reads from the store at a time.
const REPLAY_PAGE: u64 = 4096;

/// Events read back from a replayed moment to find its tape's trades.
const REPLAY_TAPE_READ: u64 = 2_000;

/// How far [`Exchange::replay`] goes into a market's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayTo {
    /// Its stream's first this many events.
    Events(u64),
    /// Every event up to this time (milliseconds since the Unix epoch).
    Time(u64),
}

impl Exchange {
    /// Every market's terms, in symbol order.
    pub fn market_specs(&self) -> Vec<orderbook::MarketSpec> {
        let markets = self.0.markets.values();
        markets.map(|m| m.market.spec.clone()).collect()
    }

    pub fn market_spec(&self, symbol: &str) -> Option<orderbook::MarketSpec> {
        self.0.markets.get(symbol).map(|m| m.market.spec.clone())
    }

    /// A market's whole-book diffs and trades, from the next one on.
    pub fn book_diffs(&self, symbol: &str) -> Option<crate::server::book_diffs::BookDiffs> {
        self.0.book_diffs.get(symbol).cloned()
    }

    /// A market's published depth and ticker, to follow as it moves.
    /// The receiver has seen the update published last.
    pub fn depth_updates(&self, symbol: &str) -> Option<watch::Receiver<Arc<DepthUpdate>>> {
        self.0.depth_updates.get(symbol).map(|u| u.subscribe())
    }

    /// The best levels of a market's book, with running totals.
    pub fn depth(&self, symbol: &str) -> Option<DepthView> {
        let book = self.book(symbol)?;
        Some(depth_view(book.depth(DEPTH_LEVELS)))
    }

    pub fn ticker(&self, symbol: &str) -> Option<TickerView> {
        self.0
            .market_data
            .read(symbol, |tape, _| tape.ticker(now_ms()))
    }

    /// What a market page shows first, as of the position the market data
    /// has reached.
    pub fn snapshot(&self, symbol: &str) -> Option<MarketSnapshot> {
        let depth = self.depth(symbol)?;
        self.0
            .market_data
            .read(symbol, |tape, position| MarketSnapshot {
                symbol: symbol.to_string(),
                position,
                trades: tape.trades.iter().rev().take(TAPE).cloned().collect(),
                series: tape.recent(CANDLES_SENT),
                ticker: tape.ticker(now_ms()),
                depth,
            })
    }

    /// Up to `limit` candles of a market that start before `before_ms`.
    pub fn candles_before(
        &self,
        symbol: &str,
        interval: Interval,
        before_ms: u64,
        limit: usize,
    ) -> Option<CandleHistory> {
        self.0
            .market_data
            .read(symbol, |tape, _| tape.history(interval, before_ms, limit))
    }

    /// A market as it was after its first events (see [`ReplayTo`]): the
    /// book from the newest stored snapshot before that moment and the
    /// events after it (both read from the store: about one to two
    /// `--snapshot-every` of events), the tape from the events just
    /// before, the candles from the trades up to then.
    pub async fn replay(&self, symbol: &str, to: ReplayTo) -> Result<ReplayView, ExchangeError> {
        let unknown = || ExchangeError::UnknownMarket(symbol.to_string());
        let market = &self.0.markets.get(symbol).ok_or_else(unknown)?.market;
        let (events, total, at_ms, series) = self
            .0
            .market_data
            .read(symbol, |tape, _| {
                let h = &tape.history;
                let events = match to {
                    ReplayTo::Events(n) => n.min(h.events()),
                    ReplayTo::Time(at_ms) => h.events_at(at_ms),
                };
                let series = tape.series_at(events, CANDLES_SENT);
                (events, h.events(), h.time_after(events), series)
            })
            .ok_or_else(unknown)?;
        let client = &self.0.client;
        let unavailable = |e: StreamError| {
            tracing::warn!("replay of {symbol} cannot read the store: {e}");
            ExchangeError::Unavailable
        };
        let (_, mut book) = latest_within(client, market, self.0.snapshot_every, events)
            .await
            .map_err(unavailable)?;
        // A page at a time: with snapshots missing (a history the leader
        // has not written them for yet) this may be a long way. The newest
        // trades folded are kept for the tape.
        let start = book.events_applied();
        let mut newest = VecDeque::with_capacity(TAPE + 1);
        while book.events_applied() < events {
            let from = book.events_applied();
            let count = (events - from).min(REPLAY_PAGE);
            let page = read_market(client, symbol, from, count, Direction::Forwards)
                .await
                .map_err(unavailable)?;
            if page.is_empty() {
                break;
            }
            for e in &page {
                let revision = book.events_applied();
                book.apply(e);
                if let Some(t) = trade_view(e) {
                    newest.push_back((revision, t));
                    if newest.len() > TAPE {
                        newest.pop_front();
                    }
                }
            }
        }
        // The tape: the trades among the moment's last REPLAY_TAPE_READ
        // events, newest first. Those the fold went through are at hand;
        // the store is read only for older ones, before the snapshot the
        // fold started from (a replay used to read them all back, which
        // was half of what it read).
        let floor = events.saturating_sub(REPLAY_TAPE_READ);
        let at_hand = newest.into_iter().rev().filter(|(r, _)| *r >= floor);
        let mut trades: Vec<TradeView> = at_hand.map(|(_, t)| t).collect();
        if trades.len() < TAPE && start > floor {
            let before = read_market(
                client,
                symbol,
                start - 1,
                start - floor,
                Direction::Backwards,
            )
            .await
            .map_err(unavailable)?;
            let older = before.iter().filter_map(trade_view);
            trades.extend(older.take(TAPE - trades.len()));
        }
        Ok(ReplayView {
            symbol: symbol.to_string(),
            events,
            total,
            at_ms,
            depth: depth_view(book.depth(DEPTH_LEVELS)),
            trades,
            series,
        })
    }

    /// Up to `limit` of a market's trades, oldest first, from `from` and
    /// none after `until_ms`: read from the store, at most
    /// `TRADE_READ_BUDGET` events per call however the trades are spread.
    pub async fn trades(
        &self,
        symbol: &str,
        from: TradesFrom,
        until_ms: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TradeExecuted>, ExchangeError> {
        let unknown = || ExchangeError::UnknownMarket(symbol.to_string());
        let start = self
            .0
            .market_data
            .read(symbol, |tape, _| tape.history.trades_from(from))
            .ok_or_else(unknown)?;
        let Some((mut revision, available)) = start else {
            return Ok(Vec::new());
        };
        let want = limit.min(available);
        let mut trades = Vec::with_capacity(want);
        let mut read = 0;
        while trades.len() < want && read < TRADE_READ_BUDGET {
            let chunk = read_market(&self.0.client, symbol, revision, 1000, Direction::Forwards)
                .await
                .map_err(|e| {
                    tracing::warn!("a trade read of {symbol} cannot read the store: {e}");
                    ExchangeError::Unavailable
                })?;
            if chunk.is_empty() {
                break;
            }
            read += chunk.len() as u64;
            revision += chunk.len() as u64;
            for e in chunk {
                if let Event::TradeExecuted(t) = e {
                    if until_ms.is_some_and(|u| t.executed_at / 1000 > u) {
                        return Ok(trades);
                    }
                    trades.push(t);
                    if trades.len() == want {
                        break;
                    }
                }
            }
        }
        Ok(trades)
    }

    /// A market's candles of `interval` in exact decimals (see
    /// `exact_candles::MinuteCandles::candles`); none for an unknown market.
    pub fn exact_candles(
        &self,
        symbol: &str,
        interval: Interval,
        start_ms: Option<u64>,
        end_ms: Option<u64>,
        limit: usize,
    ) -> Option<Vec<ExactCandle>> {
        self.0.market_data.read(symbol, |tape, _| {
            tape.history
                .minutes
                .candles(interval, start_ms, end_ms, limit)
        })
    }

    /// How many of a market's stream events its candles hold (they fold
    /// the stream apart from the book's diffs, so a diff can come first);
    /// none for an unknown market.
    pub fn candle_events(&self, symbol: &str) -> Option<u64> {
        self.0
            .market_data
            .read(symbol, |tape, _| tape.history.events())
    }

    /// A market's last 24 hours as one exact candle: none for an unknown
    /// market, `Some(None)` when it did not trade in them.
    pub fn last_day(&self, symbol: &str) -> Option<Option<ExactCandle>> {
        self.0
            .market_data
            .read(symbol, |tape, _| tape.history.minutes.day(now_ms()))
    }

    /// The book of a market as of its last append.
    pub fn book(&self, symbol: &str) -> Option<Arc<Book>> {
        self.0.markets.get(symbol).map(|m| m.book())
    }

    pub fn markets(&self) -> Vec<MarketView> {
        let markets = self.0.markets.values();
        markets.map(|m| market_view(&m.market.spec)).collect()
    }
}
