//! One market's task: the one writer of that market's stream.
//!
//! Commands for the market queue up in a channel and are handled in order.
//! Under load the task takes everything queued (up to [`MAX_BATCH`]) and
//! decides it against its book in one go: each new order first gets its
//! funds reserved by the accounts task, then the book decides. All the
//! batch's events go to the market stream in one append with the expected
//! revision, and only when that append succeeded are the orders answered
//! and their trades sent for settlement. If another writer appended first,
//! the task releases the batch's reservations, reloads the book from the
//! stream and decides the batch again. The task is supervised: when it
//! panics it is started again from the stream, and no other market notices.
//!
//! The task also follows its stream through the live tail: what another
//! exchange server on the same store appended reaches this book (and so
//! its depth, the viewers and the open orders shown) as soon as the tail
//! delivers it, not only when this task's own append conflicts. Those
//! events are that server's to settle.
//!
//! Settlement follows the stream in revision order with no gap: what the
//! accounts task could not write yet stays in the task's backlog. While it
//! is there the market is paused (new requests get
//! [`ExchangeError::MarketPaused`]) and the task keeps retrying, so a trade
//! on the book always reaches its accounts, and no later trade is settled
//! before it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use accounts::{amend_cost, order_cost};
use eventstore::Client;
use orderbook::{
    AccountId, AmendOrder, Book, CancelOrder, Command, Event, Market, OrderId, OrderType,
    PlaceOrder, SelfTradePrevention, Side, TimeInForce, Trigger,
};
use rust_decimal::Decimal;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use super::accounts_task::{AccountsHandle, AccountsRequest};
use super::clock::now_micros;
use super::exchange_error::ExchangeError;
use super::live_tail::{LiveTail, Streams, TailEvent};
use super::lock::unpoisoned;
use super::streams::{StreamError, append, load_market, market_event_data, market_stream};
use super::supervise::supervise;
use crate::api::FeedPosition;

/// The most commands decided together and written in one append.
pub const MAX_BATCH: usize = 256;
/// How long a paused market waits between settlement retries, at most.
const SETTLE_RETRY_MAX: Duration = Duration::from_secs(2);

/// A new order as a trader asks for it; the exchange adds the id and time.
#[derive(Clone, Debug)]
pub struct OrderRequest {
    pub side: Side,
    pub order_type: OrderType,
    pub price: Option<Decimal>,
    pub quantity: Option<Decimal>,
    pub quote_amount: Option<Decimal>,
    pub time_in_force: Option<TimeInForce>,
    pub post_only: bool,
    /// What happens when it would trade with the same account's order.
    pub self_trade_prevention: SelfTradePrevention,
    /// A stop or take-profit: held off the book until a trade reaches it.
    pub trigger: Option<Trigger>,
}

/// What a trader asks one market to do.
pub enum Action {
    Place(OrderRequest),
    Cancel(OrderId),
    /// A new price and/or open quantity for a resting order (and a new
    /// trigger price for one held for its trigger).
    Amend {
        order_id: OrderId,
        price: Option<Decimal>,
        quantity: Option<Decimal>,
        trigger_price: Option<Decimal>,
    },
}

/// The events one command produced, once they are in the stream.
#[derive(Clone, Debug)]
pub struct CommandOutcome {
    pub order_id: OrderId,
    pub events: Vec<Event>,
}

struct MarketRequest {
    account: AccountId,
    action: Action,
    reply: oneshot::Sender<Result<CommandOutcome, ExchangeError>>,
}

/// The way into one market's task, and the book as of its last append.
#[derive(Clone)]
pub struct MarketHandle {
    pub market: Market,
    tx: mpsc::Sender<MarketRequest>,
    book: Arc<RwLock<Arc<Book>>>,
    /// The published book's revision (events applied), for viewers to wait on.
    revision: watch::Receiver<u64>,
    appends: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
}

impl MarketHandle {
    /// Starts the market's supervised task; its first run starts from
    /// `replayed` (the stream as the exchange read and replayed it at
    /// start, after the tail had reached `followed_from`).
    pub fn start(
        client: Client,
        market: Market,
        ledger: AccountsHandle,
        replayed: Book,
        tail: LiveTail,
        followed_from: Option<FeedPosition>,
    ) -> MarketHandle {
        let (tx, rx) = mpsc::channel(4096);
        let book = Arc::new(RwLock::new(Arc::new(Book::new(market.clone()))));
        let (revision_tx, revision) = watch::channel(0);
        let appends = Arc::new(AtomicU64::new(0));
        let paused = Arc::new(AtomicBool::new(false));
        let task = Arc::new(MarketTask {
            client,
            market: market.clone(),
            ledger,
            requests: Mutex::new(rx),
            published: book.clone(),
            revision: revision_tx,
            appends: appends.clone(),
            paused: paused.clone(),
            preloaded: std::sync::Mutex::new(Some((replayed, followed_from))),
            tail,
        });
        supervise(format!("market {}", market.symbol), move || {
            task.clone().run()
        });
        MarketHandle {
            market,
            tx,
            book,
            revision,
            appends,
            paused,
        }
    }

    /// The published book's revision, to wait for it to change.
    pub fn revision(&self) -> watch::Receiver<u64> {
        self.revision.clone()
    }

    /// Whether the market is paused because settlement is behind.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// How many appends this market's task has written since start.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::Relaxed)
    }

    /// The book as of the last successful append.
    pub fn book(&self) -> Arc<Book> {
        unpoisoned(self.book.read()).clone()
    }

    /// Sends an action and waits until it is decided and recorded.
    pub async fn send(
        &self,
        account: AccountId,
        action: Action,
    ) -> Result<CommandOutcome, ExchangeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(MarketRequest {
                account,
                action,
                reply,
            })
            .await
            .map_err(|_| ExchangeError::Unavailable)?;
        answer.await.map_err(|_| ExchangeError::Unavailable)?
    }
}

struct MarketTask {
    client: Client,
    market: Market,
    ledger: AccountsHandle,
    requests: Mutex<mpsc::Receiver<MarketRequest>>,
    published: Arc<RwLock<Arc<Book>>>,
    revision: watch::Sender<u64>,
    appends: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    /// The book replayed at start and the tail position it holds all
    /// before, for the first run only (a restart after a panic reads the
    /// stream again).
    preloaded: std::sync::Mutex<Option<(Book, Option<FeedPosition>)>>,
    tail: LiveTail,
}

/// The task's own state: the book and where the stream is.
struct State {
    book: Book,
    /// Events in the stream (so the next one's revision).
    revision: u64,
    next_order_id: OrderId,
    /// Events in the stream not known to be settled, in revision order.
    /// Not empty: the market is paused.
    unsettled: Vec<(u64, Event)>,
}

/// A command decided in this batch, waiting for the append.
struct Decided {
    request: MarketRequest,
    order_id: OrderId,
    events: std::ops::Range<usize>,
    reserved: bool,
    /// What was held more for an amendment, to give back if it never lands.
    reserved_more: Decimal,
}

impl MarketTask {
    fn symbol(&self) -> &str {
        self.market.symbol.as_str()
    }

    async fn run(self: Arc<Self>) {
        let mut requests = self.requests.lock().await;
        let preloaded = unpoisoned(self.preloaded.lock()).take();
        // The first run starts after recovery settled the whole stream; a
        // restart after a panic cannot know what the panic left unsettled,
        // so it has the whole stream settled again (what is settled is
        // skipped).
        let (mut state, unsettled, from) = match preloaded {
            Some((book, from)) => (self.state_of(book), Vec::new(), from),
            None => {
                // Follow from before the read, so nothing falls between.
                let from = self.tail.reached();
                let events = self.read_stream().await;
                let numbered = events.iter().cloned().enumerate();
                let unsettled = numbered.map(|(i, e)| (i as u64, e)).collect();
                (self.state_from(&events), unsettled, from)
            }
        };
        let mut following = self
            .tail
            .reader(Streams::Market(market_stream(self.symbol())), from)
            .into_stream();
        state.unsettled = unsettled;
        self.settle_backlog(&mut state).await;
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut pause = Duration::from_millis(50);
        loop {
            let paused = !state.unsettled.is_empty();
            if !paused {
                pause = Duration::from_millis(50);
            }
            tokio::select! {
                n = requests.recv_many(&mut batch, MAX_BATCH) => {
                    if n == 0 {
                        return;
                    }
                    self.handle(&mut state, std::mem::take(&mut batch)).await;
                }
                progress = futures::StreamExt::next(&mut following) => match progress {
                    Some(Ok(progress)) => self.apply_others(&mut state, &progress.events).await,
                    Some(Err(e)) => {
                        tracing::warn!(symbol = self.symbol(), "following the stream failed, retrying: {e}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    None => {}
                },
                // Paused: retry settlement now and then, requests or not.
                () = tokio::time::sleep(pause), if paused => {
                    pause = (pause * 2).min(SETTLE_RETRY_MAX);
                    self.settle_backlog(&mut state).await;
                }
            }
        }
    }

    /// Applies what another writer appended to the stream: events at the
    /// task's revision and on, in order (its own come back through the tail
    /// too, and are behind it by then). A gap means the tail and the task
    /// disagree about the stream: the stream decides.
    async fn apply_others(&self, state: &mut State, events: &[Arc<TailEvent>]) {
        let mut applied = Vec::new();
        for e in events {
            let Some(event) = e.book() else { continue };
            if e.revision < state.revision {
                continue;
            }
            if e.revision > state.revision {
                tracing::warn!(
                    symbol = self.symbol(),
                    at = state.revision,
                    seen = e.revision,
                    "the stream moved on past this book; reloading it"
                );
                let now = self.read_stream().await;
                let unsettled = std::mem::take(&mut state.unsettled);
                *state = self.state_from(&now);
                state.unsettled = unsettled;
                return;
            }
            state.book.apply(event);
            state.revision += 1;
            applied.push(event.clone());
        }
        if applied.is_empty() {
            return;
        }
        state.next_order_id = state.next_order_id.max(state.book.last_order_id() + 1);
        self.publish_batch(state, &applied);
    }

    /// Sends the backlog for settlement; what was settled leaves it. The
    /// accounts task stops at the first event it cannot write, and those
    /// before it are skipped next time, so the whole backlog is sent again
    /// until it all goes through.
    async fn settle_backlog(&self, state: &mut State) {
        if state.unsettled.is_empty() {
            return;
        }
        let symbol = self.symbol().to_string();
        let events = state.unsettled.clone();
        let settled = self
            .ledger
            .ask(|reply| AccountsRequest::Settle {
                symbol,
                events,
                reply,
            })
            .await;
        match settled {
            Ok(()) => {
                if self.paused.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        symbol = self.symbol(),
                        "settled; the market takes orders again"
                    );
                }
                state.unsettled.clear();
            }
            Err(e) => {
                if !self.paused.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        symbol = self.symbol(),
                        from = state.unsettled[0].0,
                        "settlement cannot be written; the market is paused and retrying: {e}"
                    );
                }
            }
        }
    }

    async fn read_stream(&self) -> Vec<Event> {
        let mut pause = Duration::from_millis(50);
        loop {
            match load_market(&self.client, self.symbol()).await {
                Ok(events) => return events,
                Err(e) => {
                    tracing::warn!(
                        symbol = self.symbol(),
                        "loading the book failed, retrying: {e}"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn state_from(&self, events: &[Event]) -> State {
        self.state_of(Book::replay(self.market.clone(), events))
    }

    /// The task's state around a book holding the whole stream.
    fn state_of(&self, book: Book) -> State {
        let reserved = self.ledger.read(|l| l.highest_order_id(self.symbol()));
        let state = State {
            next_order_id: book.last_order_id().max(reserved) + 1,
            revision: book.events_applied(),
            book,
            unsettled: Vec::new(),
        };
        self.publish(&state);
        state
    }

    /// Makes the task's book the one readers see (at start and after a
    /// reload: a copy of the whole book).
    fn publish(&self, state: &State) {
        *unpoisoned(self.published.write()) = Arc::new(state.book.clone());
        self.revision.send_replace(state.book.events_applied());
    }

    /// Brings the readers' book up to the task's after a batch landed, by
    /// applying the batch's events to it: copying the whole book after every
    /// append cost time in the size of the book (77 us at 10,000 resting
    /// orders, 1.3 ms at 100,000). A reader still holding the old book
    /// keeps it; only then is a copy made.
    fn publish_batch(&self, state: &State, events: &[Event]) {
        let mut published = unpoisoned(self.published.write());
        let book = Arc::make_mut(&mut published);
        for e in events {
            book.apply(e);
        }
        debug_assert_eq!(book.events_applied(), state.book.events_applied());
        drop(published);
        self.revision.send_replace(state.book.events_applied());
    }

    async fn handle(&self, state: &mut State, mut batch: Vec<MarketRequest>) {
        self.settle_backlog(state).await;
        if !state.unsettled.is_empty() {
            for request in batch {
                let paused = ExchangeError::MarketPaused(self.symbol().to_string());
                let _ = request.reply.send(Err(paused));
            }
            return;
        }
        for _attempt in 0..5 {
            let mut events = Vec::new();
            let mut decided = Vec::new();
            for request in batch.drain(..) {
                if let Some(d) = self.decide(state, request, &mut events).await {
                    decided.push(d);
                }
            }
            if decided.is_empty() {
                return;
            }
            let first = state.revision;
            let data = events.iter().map(market_event_data).collect();
            let result = append(&self.client, &market_stream(self.symbol()), first, data).await;
            let landed = match &result {
                Ok(()) => true,
                // An append that failed may still have been written (a lost
                // answer): the stream says which.
                Err(_) => {
                    let now = self.read_stream().await;
                    let ours = now.get(first as usize..first as usize + events.len());
                    let landed = ours == Some(&events[..]);
                    if !landed {
                        *state = self.state_from(&now);
                    }
                    landed
                }
            };
            if landed {
                self.appends.fetch_add(1, Ordering::Relaxed);
                state.revision = first + events.len() as u64;
                self.publish_batch(state, &events);
                let numbered = events.iter().cloned().enumerate();
                let numbered = numbered.map(|(i, e)| (first + i as u64, e));
                state.unsettled.extend(numbered);
                self.settle_backlog(state).await;
                for d in decided {
                    let outcome = CommandOutcome {
                        order_id: d.order_id,
                        events: events[d.events].to_vec(),
                    };
                    let _ = d.request.reply.send(Ok(outcome));
                }
                return;
            }
            self.release(&decided).await;
            // Reservations are known now: order ids go on after them.
            state.next_order_id = state
                .next_order_id
                .max(self.ledger.read(|l| l.highest_order_id(self.symbol())) + 1);
            match result {
                Err(StreamError::WrongExpectedVersion) => {
                    tracing::info!(
                        symbol = self.symbol(),
                        "stream moved on elsewhere; deciding again"
                    );
                    batch = decided.into_iter().map(|d| d.request).collect();
                }
                e => {
                    tracing::warn!(symbol = self.symbol(), "append failed: {e:?}");
                    for d in decided {
                        let _ = d.request.reply.send(Err(ExchangeError::Unavailable));
                    }
                    return;
                }
            }
        }
        for request in batch {
            let _ = request.reply.send(Err(ExchangeError::Unavailable));
        }
    }

    /// Gives back the reservations of a batch that did not reach the stream.
    async fn release(&self, decided: &[Decided]) {
        let orders: Vec<_> = decided
            .iter()
            .filter(|d| d.reserved)
            .map(|d| (d.request.account, d.order_id))
            .collect();
        let amended: Vec<_> = decided
            .iter()
            .filter(|d| d.reserved_more > Decimal::ZERO)
            .map(|d| (d.request.account, d.order_id, d.reserved_more))
            .collect();
        if orders.is_empty() && amended.is_empty() {
            return;
        }
        let symbol = self.symbol().to_string();
        let at = now_micros();
        if let Err(e) = self
            .ledger
            .ask(|reply| AccountsRequest::ReleaseUnplaced {
                symbol,
                orders,
                amended,
                at,
                reply,
            })
            .await
        {
            tracing::error!(
                symbol = self.symbol(),
                "releasing unplaced orders failed; the next start will: {e}"
            );
        }
    }

    /// Decides one request on the book and applies its events to it, or
    /// answers it at once when it is refused.
    async fn decide(
        &self,
        state: &mut State,
        request: MarketRequest,
        events: &mut Vec<Event>,
    ) -> Option<Decided> {
        let at = now_micros();
        let symbol = self.market.symbol.clone();
        let (command, order_id) = match &request.action {
            Action::Place(o) => {
                let order_id = state.next_order_id;
                let command = Command::Place(PlaceOrder {
                    symbol,
                    order_id,
                    account: request.account,
                    side: o.side,
                    order_type: o.order_type,
                    price: o.price,
                    quantity: o.quantity,
                    quote_amount: o.quote_amount,
                    time_in_force: o.time_in_force,
                    post_only: o.post_only,
                    self_trade_prevention: o.self_trade_prevention,
                    at,
                    trigger: o.trigger,
                });
                (command, order_id)
            }
            Action::Cancel(order_id) => {
                let command = Command::Cancel(CancelOrder {
                    symbol,
                    order_id: *order_id,
                    account: request.account,
                    at,
                });
                (command, *order_id)
            }
            Action::Amend {
                order_id,
                price,
                quantity,
                trigger_price,
            } => {
                let command = Command::Amend(AmendOrder {
                    symbol,
                    order_id: *order_id,
                    account: request.account,
                    price: *price,
                    quantity: *quantity,
                    at,
                    trigger_price: *trigger_price,
                });
                (command, *order_id)
            }
        };
        // A market order with nothing on the other side would reserve
        // nothing and do nothing: refuse it instead of accepting it empty.
        // (A stop-market waits for its trigger, and is sized so that it
        // reserves what it may spend: see `OrderForm::parse`.)
        if let Action::Place(o) = &request.action
            && o.order_type == OrderType::Market
            && o.trigger.is_none()
        {
            let depth = state.book.depth(1);
            let other = match o.side {
                Side::Buy => &depth.asks,
                Side::Sell => &depth.bids,
            };
            if other.is_empty() {
                let refused = ExchangeError::NoLiquidity {
                    symbol: self.symbol().to_string(),
                    side: o.side,
                };
                let _ = request.reply.send(Err(refused));
                return None;
            }
        }
        let decision = state.book.decide(&command);
        if let Some(Event::OrderRejected(r)) = decision.first() {
            let _ = request.reply.send(Err(ExchangeError::Rejected(r.reason)));
            return None;
        }
        let mut reserved = false;
        if let Command::Place(place) = &command {
            let (asset, amount) = order_cost(&self.market.spec, place, &decision);
            let account = request.account;
            let symbol = self.symbol().to_string();
            // The id is spent unless the ledger refused outright: a
            // reservation that reached the store unacknowledged must never
            // meet another order.
            state.next_order_id += 1;
            let result = self
                .ledger
                .ask(|reply| AccountsRequest::Reserve {
                    account,
                    symbol,
                    order_id,
                    asset,
                    amount,
                    at,
                    reply,
                })
                .await;
            if let Err(e) = result {
                if matches!(e, ExchangeError::Account(_)) {
                    state.next_order_id -= 1;
                }
                let _ = request.reply.send(Err(e));
                return None;
            }
            reserved = true;
        }
        // An amendment that needs more holds it before it reaches the book;
        // what it no longer needs is given back when it is settled.
        let mut reserved_more = Decimal::ZERO;
        if let Some((_, need)) = decision
            .first()
            .and_then(|first| amend_cost(&self.market.spec, first))
        {
            let account = request.account;
            let symbol = self.symbol().to_string();
            let result = self
                .ledger
                .ask(|reply| AccountsRequest::ReserveMore {
                    account,
                    symbol,
                    order_id,
                    need,
                    at,
                    reply,
                })
                .await;
            match result {
                Ok(more) => reserved_more = more,
                Err(e) => {
                    let _ = request.reply.send(Err(e));
                    return None;
                }
            }
        }
        let start = events.len();
        for e in &decision {
            state.book.apply(e);
        }
        events.extend(decision);
        Some(Decided {
            request,
            order_id,
            events: start..events.len(),
            reserved,
            reserved_more,
        })
    }
}
