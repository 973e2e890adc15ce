//! What the time machine remembers of one market so that any moment of its
//! history can be rebuilt quickly and exactly: the time of every event, and
//! every trade's price and size for the candles. The books it starts from
//! are the snapshots the leader stores (`book_snapshots`), not copies kept
//! here.
//!
//! Memory is about 24 bytes a trade and 16 a millisecond in which events
//! happened: the events of one decision share their time, and a busy
//! market has many in a millisecond.

use accounts::compact_table::{CompactTable, TableReader, TableWriter};
use orderbook::{Book, Event, Market, SNAPSHOT_VERSION, Snapshot};
use serde::{Deserialize, Serialize};

use super::exact_candles::MinuteCandles;

/// One trade, as the candles need it (its time is its event's: see
/// [`BookHistory::time_of`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TradePoint {
    /// The market's events up to and including this trade.
    pub events: u64,
    pub price: f64,
    pub quantity: f64,
}

/// Which trades a read of the tape starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TradesFrom {
    /// The trade of this id (ids run from 1).
    Id(u64),
    /// The first trade at or after this time (ms).
    Time(u64),
    /// The newest this many.
    Newest(usize),
}

/// One market's history: see the module docs.
#[derive(Debug)]
pub struct BookHistory {
    book: Book,
    events: u64,
    /// The time of every event as runs in order: the first event of each
    /// run of events in one millisecond, and that millisecond.
    times_ms: Vec<(u64, u64)>,
    trades: Vec<TradePoint>,
    /// The same trades as exact candles, a minute each.
    pub minutes: MinuteCandles,
}

impl BookHistory {
    pub fn new(market: Market) -> BookHistory {
        let book = Book::new(market);
        BookHistory {
            book,
            events: 0,
            times_ms: Vec::new(),
            trades: Vec::new(),
            minutes: MinuteCandles::default(),
        }
    }

    /// The book after every event folded in so far.
    pub fn book(&self) -> &Book {
        &self.book
    }

    /// Events folded in so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Folds in the event at `revision` of the market's stream. One seen
    /// already is passed over; the stream is read in order, so no event is
    /// skipped.
    pub fn apply(&mut self, revision: u64, event: &Event) {
        if revision != self.events() {
            return;
        }
        self.book.apply(event);
        let at_ms = event.at() / 1000;
        if self.times_ms.last().is_none_or(|&(_, t)| t != at_ms) {
            self.times_ms.push((self.events, at_ms));
        }
        self.events += 1;
        if let Event::TradeExecuted(t) = event {
            self.minutes.add(at_ms, t.price, t.quantity);
            self.trades.push(TradePoint {
                events: self.events(),
                price: t.price.try_into().unwrap_or(0.0),
                quantity: t.quantity.try_into().unwrap_or(0.0),
            });
        }
    }

    /// Where in the stream (its revision) the first trade a trade read
    /// asks for is, and how many trades there are from it on: the trade of
    /// id `from` (ids run from 1), the first at or after a time, or the
    /// newest `newest` trades.
    pub fn trades_from(&self, from: TradesFrom) -> Option<(u64, usize)> {
        let index = match from {
            TradesFrom::Id(id) => usize::try_from(id.checked_sub(1)?).ok()?,
            TradesFrom::Time(at_ms) => self.trades.partition_point(|t| self.time_of(t) < at_ms),
            TradesFrom::Newest(n) => self.trades.len().saturating_sub(n),
        };
        let first = self.trades.get(index)?;
        Some((first.events - 1, self.trades.len() - index))
    }

    /// The market's events up to `at_ms`: how far a replay to that time goes.
    pub fn events_at(&self, at_ms: u64) -> u64 {
        let after = self.times_ms.partition_point(|&(_, t)| t <= at_ms);
        self.times_ms
            .get(after)
            .map_or(self.events, |&(first, _)| first)
    }

    /// The time of the last of the first `events` events.
    pub fn time_after(&self, events: u64) -> Option<u64> {
        let last = events.checked_sub(1).filter(|&l| l < self.events)?;
        let run = self.times_ms.partition_point(|&(first, _)| first <= last);
        Some(self.times_ms[run.checked_sub(1)?].1)
    }

    /// When a trade was made (ms).
    pub fn time_of(&self, trade: &TradePoint) -> u64 {
        self.time_after(trade.events).unwrap_or_default()
    }

    /// The trades among the first `events` events, oldest first.
    pub fn trades_within(&self, events: u64) -> &[TradePoint] {
        &self.trades[..self.trades.partition_point(|t| t.events <= events)]
    }
}

/// A market's [`BookHistory`] written down for a start to take up
/// (`start_snapshots.rs`). Prices and sizes of the trades are the bits of
/// their `f64`: a decimal rendering would read back a hair off, and the
/// candles made from them with it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BookHistorySnapshot {
    book: Snapshot,
    times_ms: Vec<(u64, u64)>,
    /// Each trade's events up to it, price bits and quantity bits, as the
    /// change from the trade before: a row of a compact table.
    trades: CompactTable,
    minutes: MinuteCandles,
}

impl BookHistory {
    /// Written down, if its book is between two orders (where a book's
    /// snapshot may be taken): a start fold's page or a tail's batch can
    /// end part-way through a decision's events.
    pub fn snapshot(&self) -> Option<BookHistorySnapshot> {
        if !self.book.between_orders() {
            return None;
        }
        let mut trades = TableWriter::default();
        let mut last = [0; 3];
        for t in &self.trades {
            let columns = [t.events, t.price.to_bits(), t.quantity.to_bits()];
            for (n, last) in columns.into_iter().zip(&mut last) {
                trades.delta(n, last);
            }
        }
        Some(BookHistorySnapshot {
            book: self.book.snapshot(),
            times_ms: self.times_ms.clone(),
            trades: trades.finish(),
            minutes: self.minutes.clone(),
        })
    }

    /// The history a snapshot wrote down, of `market`.
    pub fn from_snapshot(market: Market, s: BookHistorySnapshot) -> Result<BookHistory, String> {
        if s.book.schema_version != SNAPSHOT_VERSION {
            return Err(format!(
                "its book is of snapshot version {}, not {SNAPSHOT_VERSION}",
                s.book.schema_version
            ));
        }
        let book = Book::from_snapshot(market, &s.book).map_err(|e| e.to_string())?;
        let mut rows = TableReader::new(&s.trades);
        let mut trades = Vec::new();
        let mut last = [0; 3];
        while !rows.is_empty() {
            let mut column = |i: usize| rows.delta(&mut last[i]).map_err(|e| e.to_string());
            let (events, price, quantity) = (column(0)?, column(1)?, column(2)?);
            trades.push(TradePoint {
                events,
                price: f64::from_bits(price),
                quantity: f64::from_bits(quantity),
            });
        }
        Ok(BookHistory {
            events: book.events_applied(),
            book,
            times_ms: s.times_ms,
            trades,
            minutes: s.minutes,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use orderbook::{Command, OrderType, PlaceOrder, SelfTradePrevention, Side};
    use rust_decimal::Decimal;

    fn market() -> Market {
        Market::defaults().remove(0)
    }

    /// A market's events: orders on both sides, a trade every fourth, a
    /// command each 7 s.
    fn events(n: u64) -> Vec<Event> {
        spaced_events(n, |_| 7_000_000)
    }

    /// A market's first `n` events: orders on both sides, a trade every
    /// fourth, command `i` coming `gap_us(i)` after the one before.
    pub(crate) fn spaced_events(n: u64, gap_us: impl Fn(u64) -> u64) -> Vec<Event> {
        let market = market();
        let mut at = 1_700_000_000_000_000;
        let mut book = Book::new(market.clone());
        let mut out = Vec::new();
        let mut i = 0u64;
        while (out.len() as u64) < n {
            let side = if i % 4 == 3 { Side::Buy } else { Side::Sell };
            let price = if side == Side::Buy {
                30_010
            } else {
                30_000 + (i % 7) as i64
            };
            at += gap_us(i);
            let command = Command::Place(PlaceOrder {
                client_order_id: None,
                symbol: market.symbol,
                order_id: book.last_order_id() + 1,
                account: 1 + i % 3,
                side,
                order_type: OrderType::Limit,
                price: Some(Decimal::from(price)),
                quantity: Some(Decimal::new(1, 2)),
                quote_amount: None,
                time_in_force: None,
                post_only: false,
                self_trade_prevention: SelfTradePrevention::default(),
                at,
                trigger: None,
            });
            for e in book.decide(&command) {
                book.apply(&e);
                out.push(e);
            }
            i += 1;
        }
        out.truncate(n as usize);
        out
    }

    #[test]
    fn each_event_is_folded_once_and_a_time_finds_the_events_up_to_it() {
        let all = events(3000);
        let mut history = BookHistory::new(market());
        for (revision, e) in all.iter().enumerate() {
            history.apply(revision as u64, e);
            // Seen twice (a reader that resumed): nothing changes.
            history.apply(revision as u64, e);
        }
        assert_eq!(history.events(), all.len() as u64);
        let replayed = Book::replay(market(), &all);
        assert_eq!(history.book().snapshot(), replayed.snapshot());
        // Time finds the events up to it.
        let t = history.time_after(1000).unwrap();
        let n = history.events_at(t);
        assert!(n >= 1000 && history.time_after(n) == Some(t));
        assert_eq!(history.events_at(0), 0);
        assert_eq!(history.time_after(0), None);
    }

    /// Kept as runs of one millisecond, the times answer as every
    /// event's time would: events close together, far apart, and both.
    #[test]
    fn times_kept_as_runs_answer_as_every_events_time() {
        let all = spaced_events(2000, |i| match i % 5 {
            0 => 1_500_000,
            1 => 300,
            _ => 0,
        });
        let mut history = BookHistory::new(market());
        for (revision, e) in all.iter().enumerate() {
            history.apply(revision as u64, e);
        }
        let times: Vec<u64> = all.iter().map(|e| e.at() / 1000).collect();
        assert!(history.times_ms.len() < times.len() / 2);
        for n in 0..=times.len() as u64 + 1 {
            let expected = n
                .checked_sub(1)
                .and_then(|l| times.get(l as usize).copied());
            assert_eq!(history.time_after(n), expected, "after {n}");
        }
        let (first, last) = (times[0], times[times.len() - 1]);
        for at_ms in (first - 2..last + 2)
            .step_by(97)
            .chain([first - 1, first, last])
        {
            let expected = times.partition_point(|&t| t <= at_ms) as u64;
            assert_eq!(history.events_at(at_ms), expected, "at {at_ms}");
        }
    }
}
