//! Every change of a market's whole book, as diffs programs can keep a
//! local book with: one task per market folds the market's stream (from
//! the live tail, in order, none skipped) into its own book and publishes,
//! for each run of events it reads, the price levels those events touched
//! with their new open quantity (zero: gone), numbered by the stream's
//! revision, the same counter the REST depth reports as its update id.
//! The trades of the run go with it. A subscriber that falls too far
//! behind is told so (it lagged) and must start again from a fresh depth.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use orderbook::{Book, Event, Market, Side, TradeExecuted};
use rust_decimal::Decimal;
use tokio::sync::broadcast;

use super::live_tail::{LiveTail, Streams};
use super::streams::{load_market, market_stream, until_answered};
use super::supervise::supervise;
use crate::api::FeedPosition;

/// Diffs a subscriber may fall behind by before it lags.
const KEPT: usize = 4096;

/// The book's changes over a run of its stream's events.
#[derive(Clone, Debug, PartialEq)]
pub struct BookDiff {
    /// The update id after the first event of the run (its revision + 1).
    pub first_update: u64,
    /// The update id after the last: what a depth read after it reports.
    pub last_update: u64,
    /// Each touched level's open quantity now, best first (zero: gone).
    pub bids: Vec<(Decimal, Decimal)>,
    pub asks: Vec<(Decimal, Decimal)>,
    /// The run's trades, in order.
    pub trades: Vec<TradeExecuted>,
    /// When the last event of the run happened (ms).
    pub at_ms: u64,
}

/// Diffs gathered for one send: a socket that sends every 100 ms or
/// every second adds each diff as it comes and takes their sum when due.
#[derive(Debug, Default)]
pub struct DiffSum {
    first_update: Option<u64>,
    last_update: u64,
    bids: BTreeMap<Decimal, Decimal>,
    asks: BTreeMap<Decimal, Decimal>,
}

impl DiffSum {
    pub fn add(&mut self, diff: &BookDiff) {
        self.first_update.get_or_insert(diff.first_update);
        self.last_update = diff.last_update;
        self.bids.extend(diff.bids.iter().copied());
        self.asks.extend(diff.asks.iter().copied());
    }

    /// The diffs added since the last take, as one (levels best first; no
    /// trades), or none when nothing was added.
    pub fn take(&mut self) -> Option<BookDiff> {
        let first_update = self.first_update.take()?;
        let bids = std::mem::take(&mut self.bids).into_iter().rev().collect();
        let asks = std::mem::take(&mut self.asks).into_iter().collect();
        Some(BookDiff {
            first_update,
            last_update: self.last_update,
            bids,
            asks,
            trades: Vec::new(),
            at_ms: 0,
        })
    }
}

/// Where one market's diffs are published.
pub type BookDiffs = broadcast::Sender<Arc<BookDiff>>;

/// Starts the supervised publisher of one market's diffs from `book`, the
/// fold of the stream as it was when the tail stood at `from`. After a
/// panic it folds the stream again from the store.
pub fn start(market: Market, book: Book, tail: LiveTail, from: Option<FeedPosition>) -> BookDiffs {
    let (tx, _) = broadcast::channel(KEPT);
    let out = tx.clone();
    let symbol = market.symbol.to_string();
    let mut first = Some((book, from));
    supervise(format!("book diffs of {symbol}"), move || {
        let (tx, tail, market) = (tx.clone(), tail.clone(), market.clone());
        let start = first.take();
        async move {
            let (book, from) = match start {
                Some(s) => s,
                None => reload(&tail, &market).await,
            };
            publish(book, tail, from, tx).await
        }
    });
    out
}

/// The market's book folded from the store, and where the tail stood
/// before the read (so following it from there misses nothing).
async fn reload(tail: &LiveTail, market: &Market) -> (Book, Option<FeedPosition>) {
    let from = tail.reached();
    let symbol = market.symbol.to_string();
    let client = tail.client();
    let events = until_answered("reading a market", || load_market(&client, &symbol))
        .await
        .unwrap_or_default();
    (Book::replay(market.clone(), events.iter()), from)
}

async fn publish(mut book: Book, tail: LiveTail, from: Option<FeedPosition>, tx: BookDiffs) {
    let stream = market_stream(book.symbol().as_str());
    let mut reader = tail.reader(Streams::Market(stream), from);
    loop {
        let progress = match reader.next().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("the book diffs cannot read the store, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let mut touched: BTreeMap<(bool, Decimal), ()> = BTreeMap::new();
        let mut trades = Vec::new();
        let (mut first_update, mut at_ms) = (None, 0);
        for e in &progress.events {
            let Some(event) = e.book() else { continue };
            // Each event once, in order: the reader may start before the
            // book's last event.
            if e.revision != book.events_applied() {
                continue;
            }
            for (side, price) in levels_touched(&book, event) {
                touched.insert((side == Side::Buy, price), ());
            }
            if let Event::TradeExecuted(t) = event {
                trades.push(t.clone());
            }
            book.apply(event);
            first_update.get_or_insert(book.events_applied());
            at_ms = event.at() / 1000;
        }
        let Some(first_update) = first_update else {
            continue;
        };
        let level = |side: Side, price: Decimal| (price, book.quantity_at(side, price));
        let mut bids: Vec<_> = touched
            .keys()
            .filter(|(b, _)| *b)
            .map(|(_, p)| level(Side::Buy, *p))
            .collect();
        bids.reverse();
        let asks = touched
            .keys()
            .filter(|(b, _)| !*b)
            .map(|(_, p)| level(Side::Sell, *p))
            .collect();
        // Nobody listening is no error.
        let _ = tx.send(Arc::new(BookDiff {
            first_update,
            last_update: book.events_applied(),
            bids,
            asks,
            trades,
            at_ms,
        }));
    }
}

/// The price levels an event changes, read from the book before it.
fn levels_touched(book: &Book, event: &Event) -> Vec<(Side, Decimal)> {
    let resting = |id| book.order(id).map(|o| (o.side, o.price));
    match event {
        Event::OrderAccepted(a) if a.trigger.is_none() => {
            a.price.map(|p| (a.side, p)).into_iter().collect()
        }
        Event::TradeExecuted(t) => vec![(t.taker_side.opposite(), t.price)],
        Event::OrderCancelled(c) => resting(c.order_id).into_iter().collect(),
        Event::OrderFilled(f) => resting(f.order_id).into_iter().collect(),
        Event::OrderAmended(a) => vec![(a.side, a.old_price), (a.side, a.price)],
        Event::StopTriggered(s) => book
            .stop_order(s.order_id)
            .and_then(|o| o.price.map(|p| (o.side, p)))
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orderbook::{Command, OrderType, PlaceOrder, SelfTradePrevention, Symbol};

    fn place(id: u64, side: Side, price: &str, qty: &str) -> Command {
        Command::Place(PlaceOrder {
            symbol: Symbol::new("BTC-USD"),
            order_id: id,
            account: id,
            side,
            order_type: OrderType::Limit,
            price: Some(price.parse().unwrap()),
            quantity: Some(qty.parse().unwrap()),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::CancelTaker,
            trigger: None,
            client_order_id: None,
            at: id,
        })
    }

    #[test]
    fn an_events_touched_levels_are_those_whose_quantity_it_changes() {
        let mut book = Book::new(Market::defaults().remove(0));
        for c in [
            place(1, Side::Sell, "101", "1"),
            place(2, Side::Sell, "102", "1"),
        ] {
            book.execute(&c);
        }
        let taker = book.decide(&place(3, Side::Buy, "102", "1.5"));
        let mut touched = Vec::new();
        for e in &taker {
            touched.extend(levels_touched(&book, e));
            book.apply(e);
        }
        let mut touched: Vec<(bool, Decimal)> = touched
            .into_iter()
            .map(|(s, p)| (s == Side::Buy, p))
            .collect();
        touched.sort();
        touched.dedup();
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        // Both asks changed; the buy's own price counts too (it rests
        // nowhere: it filled, and its level reads zero).
        assert_eq!(
            touched,
            [(false, d("101")), (false, d("102")), (true, d("102"))]
        );
        assert_eq!(book.quantity_at(Side::Sell, d("101")), Decimal::ZERO);
        assert_eq!(book.quantity_at(Side::Sell, d("102")), d("0.5"));
    }
}
