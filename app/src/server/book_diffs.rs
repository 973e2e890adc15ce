//! Every change of a market's whole book, as diffs programs can keep a
//! local book with: one task per market folds the market's stream (from
//! the live tail, in order, none skipped) into its own book and publishes,
//! for each run of events it reads, the price levels those events touched
//! with their new open quantity (zero: gone), numbered by the stream's
//! revision, the same counter the REST depth reports as its update id.
//! The trades of the run go with it. A subscriber that falls too far
//! behind is told so (it lagged) and must start again from a fresh depth.
//!
//! The newest [`RECENT`] diffs are also kept, so a program that lost its
//! connection can resume from the update id (or trade id) it reached
//! instead of reading the whole depth again: [`BookDiffs::follow`] hands
//! it the kept diffs after that point and the live ones from there, with
//! nothing missed between them. Further back than that it is told so.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use orderbook::{Book, Event, Market, Side, TradeExecuted};
use rust_decimal::Decimal;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::live_tail::{LiveTail, Streams};
use super::streams::{load_market, market_stream, until_answered};
use super::supervise::supervise;
use crate::api::FeedPosition;

/// Diffs a subscriber may fall behind by before it lags.
const KEPT: usize = 4096;

/// Diffs kept for subscribers that resume.
pub const RECENT: usize = 2048;

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
    /// The id of the market's last trade before the run (0: none).
    pub trades_before: u64,
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
            trades_before: 0,
            at_ms: 0,
        })
    }
}

/// Where a resumed subscription starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// After this update id: the kept diffs whose runs end past it.
    Update(u64),
    /// After this trade id: the kept diffs whose runs hold a later trade.
    Trade(u64),
}

/// A resume from further back than the kept diffs reach.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("that is further back than the {RECENT} changes kept; read it over REST")]
pub struct TooFarBack;

/// A market's diffs from now on.
pub type DiffReceiver = broadcast::Receiver<Arc<BookDiff>>;

/// Where one market's diffs are published, with the newest kept.
#[derive(Clone, Debug)]
pub struct BookDiffs(Arc<Mutex<Published>>);

#[derive(Debug)]
struct Published {
    tx: broadcast::Sender<Arc<BookDiff>>,
    recent: VecDeque<Arc<BookDiff>>,
    /// The update id and the trade id the kept diffs start after.
    after: (u64, u64),
}

impl BookDiffs {
    /// Diffs to be published from `book` on.
    fn new(book: &Book) -> BookDiffs {
        BookDiffs(Arc::new(Mutex::new(Published {
            tx: broadcast::channel(KEPT).0,
            recent: VecDeque::with_capacity(RECENT),
            after: (book.events_applied(), book.last_trade_id()),
        })))
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The diffs from now on.
    pub fn subscribe(&self) -> DiffReceiver {
        self.published().tx.subscribe()
    }

    /// The kept diffs after each of `from` (in order, each once, from the
    /// earliest any of them needs), and the diffs published after those.
    pub fn follow(
        &self,
        from: &[Resume],
    ) -> Result<(Vec<Arc<BookDiff>>, DiffReceiver), TooFarBack> {
        // One lock for the kept diffs and the subscription, the one the
        // publisher takes to keep and send: the receiver starts exactly
        // after the last kept diff.
        let p = self.published();
        let (recent, (after_update, after_trade)) = (&p.recent, p.after);
        let mut start = recent.len();
        for resume in from {
            let (covered, first) = match *resume {
                Resume::Update(u) => (
                    u >= after_update,
                    recent.partition_point(|d| d.last_update <= u),
                ),
                Resume::Trade(t) => (
                    t >= after_trade,
                    recent.partition_point(|d| d.trades_before + d.trades.len() as u64 <= t),
                ),
            };
            if !covered {
                return Err(TooFarBack);
            }
            start = start.min(first);
        }
        Ok((recent.range(start..).cloned().collect(), p.tx.subscribe()))
    }

    fn publish(&self, diff: BookDiff) {
        let diff = Arc::new(diff);
        let mut p = self.published();
        if p.recent.len() == RECENT
            && let Some(gone) = p.recent.pop_front()
        {
            let trades = gone.trades_before + gone.trades.len() as u64;
            p.after = (gone.last_update, trades);
        }
        p.recent.push_back(diff.clone());
        // Nobody listening is no error.
        let _ = p.tx.send(diff);
    }

    /// After the publisher folded the stream again into `book`: what was
    /// published no longer joins what comes, so every subscriber is
    /// closed (and syncs again) and a resume is offered only what comes
    /// after `book`.
    fn restart(&self, book: &Book) {
        let mut p = self.published();
        p.tx = broadcast::channel(KEPT).0;
        p.recent.clear();
        p.after = (book.events_applied(), book.last_trade_id());
    }
}

/// Hands each diff `rx` gets to `out`, made into a socket's message by
/// `wrap`, until either end goes. A subscriber that fell behind, or whose
/// publisher started again, is handed `wrap(None)` last: it must sync
/// again from a fresh depth.
pub fn forward<T: Send + 'static>(
    mut rx: DiffReceiver,
    out: mpsc::Sender<T>,
    wrap: impl Fn(Option<Arc<BookDiff>>) -> T + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let diff = rx.recv().await.ok();
            let behind = diff.is_none();
            if out.send(wrap(diff)).await.is_err() || behind {
                return;
            }
        }
    })
}

/// Starts the supervised publisher of one market's diffs from `book`, the
/// fold of the stream as it was when the tail stood at `from`. After a
/// panic it folds the stream again from the store.
pub fn start(market: Market, book: Book, tail: LiveTail, from: Option<FeedPosition>) -> BookDiffs {
    let tx = BookDiffs::new(&book);
    let out = tx.clone();
    let symbol = market.symbol.to_string();
    let mut first = Some((book, from));
    supervise(format!("book diffs of {symbol}"), move || {
        let (tx, tail, market) = (tx.clone(), tail.clone(), market.clone());
        let start = first.take();
        async move {
            let (book, from) = match start {
                Some(s) => s,
                None => {
                    let (book, from) = reload(&tail, &market).await;
                    tx.restart(&book);
                    (book, from)
                }
            };
            follow_stream(book, tail, from, tx).await
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

async fn follow_stream(mut book: Book, tail: LiveTail, from: Option<FeedPosition>, tx: BookDiffs) {
    let stream = market_stream(book.symbol().as_str());
    let mut reader = tail.reader(Streams::Market(stream), from);
    loop {
        let progress = reader.next_retrying("the book diffs").await;
        let mut touched: BTreeMap<(bool, Decimal), ()> = BTreeMap::new();
        let mut trades = Vec::new();
        let trades_before = book.last_trade_id();
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
        tx.publish(BookDiff {
            first_update,
            last_update: book.events_applied(),
            bids,
            asks,
            trades,
            trades_before,
            at_ms,
        });
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
            symbol: Symbol::new("BTC-USD").unwrap(),
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

    /// A run of `events` events from update `first` holding `trades` trades
    /// after `trades_before`.
    fn run(first: u64, events: u64, trades_before: u64, trades: u64) -> BookDiff {
        let trade = |id| TradeExecuted {
            trade_id: id,
            ..serde_json::from_value(serde_json::json!({
                "symbol": "BTC-USD", "trade_id": 0, "maker_order_id": 1, "taker_order_id": 2,
                "maker_account": 1, "taker_account": 2, "taker_side": "buy",
                "price": "1", "quantity": "1", "executed_at": 0
            }))
            .unwrap()
        };
        BookDiff {
            first_update: first,
            last_update: first + events - 1,
            bids: Vec::new(),
            asks: Vec::new(),
            trades: (trades_before + 1..=trades_before + trades)
                .map(trade)
                .collect(),
            trades_before,
            at_ms: 0,
        }
    }

    #[tokio::test]
    async fn a_resume_gets_the_kept_diffs_after_its_point_and_then_the_live_ones() {
        let diffs = BookDiffs::new(&Book::new(Market::defaults().remove(0)));
        // Updates 1..=3 (trades 1, 2), 4..=5 (none), 6..=8 (trade 3).
        diffs.publish(run(1, 3, 0, 2));
        diffs.publish(run(4, 2, 2, 0));
        diffs.publish(run(6, 3, 2, 1));
        let firsts = |from: &[Resume]| -> Vec<u64> {
            let (kept, _) = diffs.follow(from).unwrap();
            kept.iter().map(|d| d.first_update).collect()
        };
        assert_eq!(firsts(&[Resume::Update(0)]), [1, 4, 6]);
        // Mid-run: the run that ends past it (its levels are absolute).
        assert_eq!(firsts(&[Resume::Update(4)]), [4, 6]);
        assert_eq!(firsts(&[Resume::Update(5)]), [6]);
        assert_eq!(firsts(&[Resume::Update(8)]), Vec::<u64>::new());
        assert_eq!(firsts(&[Resume::Trade(1)]), [1, 4, 6]);
        assert_eq!(firsts(&[Resume::Trade(2)]), [6]);
        assert_eq!(firsts(&[Resume::Trade(2), Resume::Update(2)]), [1, 4, 6]);
        // The receiver starts after the last kept diff.
        let (_, mut rx) = diffs.follow(&[Resume::Update(8)]).unwrap();
        diffs.publish(run(9, 1, 3, 0));
        assert_eq!(rx.recv().await.unwrap().first_update, 9);
        // Only RECENT are kept: further back is refused, not cut short.
        for i in 0..RECENT as u64 {
            diffs.publish(run(10 + i, 1, 3, 0));
        }
        assert_eq!(diffs.follow(&[Resume::Update(8)]).unwrap_err(), TooFarBack);
        assert_eq!(diffs.follow(&[Resume::Trade(2)]).unwrap_err(), TooFarBack);
        assert_eq!(firsts(&[Resume::Update(9)]).len(), RECENT);
        // A restarted publisher closes its subscribers, and offers only
        // what comes after the book it starts from.
        let mut book = Book::new(Market::defaults().remove(0));
        book.execute(&place(1, Side::Sell, "101", "1"));
        diffs.restart(&book);
        let mut before_restart = 0;
        while rx.recv().await.is_ok() {
            before_restart += 1;
        }
        assert_eq!(before_restart, RECENT);
        assert_eq!(diffs.follow(&[Resume::Update(0)]).unwrap_err(), TooFarBack);
        assert_eq!(diffs.follow(&[Resume::Update(1)]).unwrap().0.len(), 0);
    }
}
