//! One market's task: the sequencer of that market's stream.
//!
//! Commands for the market queue up in a channel and are handled in order.
//! Under load the task takes everything queued (up to [`MAX_BATCH`]) and
//! decides it in one go, holding the ledger while it does: for each
//! command the book decides, the ledger says what it needs available
//! ([`accounts::Ledger::needs`]) with every earlier decision folded in
//! (this batch's too), the caps are counted, and only then are its events
//! (with their fees stamped in) applied to the book and folded into the
//! ledger. So what an order holds always follows from the book, and no
//! decision can spend what an earlier one already took.
//!
//! All the batch's events go to the market stream in one append with the
//! expected revision, cut so that it fits in one write; that append is the
//! only write an order makes. Only when it landed are the orders answered.
//! An append whose answer is lost is retried identically (the same event
//! ids, the same expected revision) until the store answers definitely,
//! and the market is paused meanwhile (new requests are told so). If the
//! stream moved on (a new leader fenced it), the task reloads the book and
//! the ledger from the log; it decides the batch again only while this
//! server still leads the newest term fenced into the stream, and
//! otherwise refuses it ("not taking orders") and this server steps down
//! (see `leadership`). What a batch credits
//! (a fill's proceeds, a cancelled order's release) cannot be spent in
//! another market until the batch is in the store ([`InFlight`]): only
//! this market's stream orders it before that market's decisions.
//!
//! The task is supervised: when it panics it is started again from the
//! stream, and no other market notices. It also follows its stream
//! through the live tail, so what another exchange server on the same
//! store appended reaches this book as soon as the tail delivers it (and
//! the ledger through the accounts task's fold of the same tail).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use accounts::{Fees, Ledger};
use eventstore::{Client, EventData};
use orderbook::{
    AccountId, AmendOrder, Book, CancelOrder, Command, Event, Market, OrderId, OrderType,
    PlaceOrder, SelfTradePrevention, Side, TimeInForce, Trigger,
};
use rust_decimal::Decimal;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use super::accounts_task::{AccountsHandle, InFlight};
use super::clock::now_micros;
use super::exchange_error::ExchangeError;
use super::leadership::{Leadership, fenced_term};
use super::live_tail::{LiveTail, Streams, TailEvent};
use super::lock::unpoisoned;
use super::streams::{
    Direction, StreamError, append, load_market, market_event_payload, market_stream, read_market,
};
use super::supervise::supervise;
use crate::api::FeedPosition;

/// The most commands decided together and written in one append.
pub const MAX_BATCH: usize = 256;
/// The most bytes of event JSON one append carries: well inside the
/// store's 1 MiB limit on an append, with room for each event's record
/// header, stream name and type.
pub const MAX_APPEND_BYTES: usize = 768 * 1024;
/// What each event costs an append besides its JSON (record header, stream
/// name, type), counted generously.
const EVENT_OVERHEAD: usize = 160;
/// How long an unanswered append waits before it is tried again, at most.
const RETRY_MAX: Duration = Duration::from_secs(2);

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
    /// Cancels every open order of the account in this market, in one
    /// decision: an order placed after it is not touched.
    CancelAll,
}

/// The events one command produced, once they are in the stream.
#[derive(Clone, Debug)]
pub struct CommandOutcome {
    pub order_id: OrderId,
    pub events: Vec<Event>,
}

/// The per-account caps the sequencer keeps, counted in the ledger with
/// every earlier decision in (so concurrent placements cannot pass them).
#[derive(Clone, Copy, Debug)]
pub struct Caps {
    pub max_open_orders: usize,
    pub max_stop_orders: usize,
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
    appends: Arc<Appends>,
    paused: Arc<AtomicBool>,
    leadership: Leadership,
}

/// A market's stream as the exchange read it at start: its book, the
/// newest term fenced into it, and the tail position the read came after.
pub struct Replayed {
    pub book: Book,
    pub term: u64,
    pub followed_from: Option<FeedPosition>,
}

/// What a market's task has done with the store since start, for the
/// operator: appends written, and tries the store did not answer (each
/// tried again, identically).
#[derive(Debug, Default)]
struct Appends {
    written: AtomicU64,
    unanswered: AtomicU64,
}

impl MarketHandle {
    /// Starts the market's supervised task; its first run starts from
    /// `replayed` (the stream as the exchange read it at start). It
    /// decides only while `leadership` says this server leads.
    pub fn start(
        client: Client,
        market: Market,
        ledger: AccountsHandle,
        rules: (Fees, Caps),
        replayed: Replayed,
        tail: LiveTail,
        leadership: Leadership,
    ) -> MarketHandle {
        let Replayed {
            book: replayed,
            term,
            followed_from,
        } = replayed;
        let (tx, rx) = mpsc::channel(4096);
        // Readers see the replayed book from the start, not an empty one
        // until the task first runs.
        let book = Arc::new(RwLock::new(Arc::new(replayed.clone())));
        let (revision_tx, revision) = watch::channel(replayed.events_applied());
        let appends = Arc::new(Appends::default());
        let paused = Arc::new(AtomicBool::new(false));
        let task = Arc::new(MarketTask {
            client,
            market: market.clone(),
            ledger,
            fees: rules.0,
            caps: rules.1,
            requests: Mutex::new(rx),
            published: book.clone(),
            revision: revision_tx,
            appends: appends.clone(),
            paused: paused.clone(),
            preloaded: std::sync::Mutex::new(Some((replayed, term, followed_from))),
            tail,
            leadership: leadership.clone(),
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
            leadership,
        }
    }

    /// The published book's revision, to wait for it to change.
    pub fn revision(&self) -> watch::Receiver<u64> {
        self.revision.clone()
    }

    /// Whether the market is paused: its last append has no definite
    /// answer from the store yet, and is being tried again.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// How many appends this market's task has written since start.
    pub fn appends(&self) -> u64 {
        self.appends.written.load(Ordering::Relaxed)
    }

    /// How many tries of an append the store has not answered since start
    /// (each was tried again).
    pub fn unanswered(&self) -> u64 {
        self.appends.unanswered.load(Ordering::Relaxed)
    }

    /// The book as of the last successful append.
    pub fn book(&self) -> Arc<Book> {
        unpoisoned(self.book.read()).clone()
    }

    /// Sends an action and waits until it is decided and recorded. While
    /// the market is paused it is refused at once, changing nothing.
    pub async fn send(
        &self,
        account: AccountId,
        action: Action,
    ) -> Result<CommandOutcome, ExchangeError> {
        if self.leadership.term().is_none() {
            return Err(ExchangeError::NotLeader);
        }
        if self.paused() {
            return Err(ExchangeError::MarketPaused(self.market.symbol.to_string()));
        }
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
    fees: Fees,
    caps: Caps,
    requests: Mutex<mpsc::Receiver<MarketRequest>>,
    published: Arc<RwLock<Arc<Book>>>,
    revision: watch::Sender<u64>,
    appends: Arc<Appends>,
    paused: Arc<AtomicBool>,
    /// The book replayed at start and the tail position it holds all
    /// before, for the first run only (a restart after a panic reads the
    /// stream again).
    preloaded: std::sync::Mutex<Option<(Book, u64, Option<FeedPosition>)>>,
    tail: LiveTail,
    leadership: Leadership,
}

/// The task's own state: the book and where the stream is.
struct State {
    book: Book,
    /// Events in the stream (so the next one's revision).
    revision: u64,
    /// The newest term fenced into the stream: only that term's leader
    /// may append.
    term: u64,
}

/// A command decided in this batch, waiting for the append.
struct Decided {
    request: MarketRequest,
    order_id: OrderId,
    events: std::ops::Range<usize>,
}

/// One append's worth of decisions.
#[derive(Default)]
struct Batch {
    decided: Vec<Decided>,
    events: Vec<Event>,
    /// The events as they are appended: built once, so a retry is the
    /// same append (the same ids).
    data: Vec<EventData>,
    bytes: usize,
    /// What the batch made available to each account, per asset.
    credits: HashMap<(AccountId, String), Decimal>,
}

/// How an append ended, once the store said so.
enum Written {
    Landed,
    /// Another writer appended first: this batch is not in the stream.
    Conflict,
}

impl MarketTask {
    fn symbol(&self) -> &str {
        self.market.symbol.as_str()
    }

    async fn run(self: Arc<Self>) {
        let mut requests = self.requests.lock().await;
        let preloaded = unpoisoned(self.preloaded.lock()).take();
        let (mut state, from) = match preloaded {
            Some((book, term, from)) => (self.state_of(book, term), from),
            None => {
                // Follow from before the read, so nothing falls between.
                let from = self.tail.reached();
                let events = self.read_stream().await;
                (self.state_from(&events), from)
            }
        };
        let mut following = self
            .tail
            .reader(Streams::Market(market_stream(self.symbol())), from)
            .into_stream();
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
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
                *state = self.state_from(&now);
                return;
            }
            // The ledger takes another writer's events from the accounts
            // task, which folds every stream in the store's order (so an
            // account is opened before its trades are folded).
            state.book.apply(event);
            state.revision += 1;
            if let Event::StreamFenced(f) = event {
                state.term = state.term.max(f.term);
                self.leadership.fenced_at(f.term);
            }
            applied.push(event.clone());
        }
        if !applied.is_empty() {
            self.publish_batch(state, &applied);
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
        let term = fenced_term(events);
        self.leadership.fenced_at(term);
        self.state_of(Book::replay(self.market.clone(), events), term)
    }

    /// The task's state around a book holding the whole stream, fenced at
    /// `term`.
    fn state_of(&self, book: Book, term: u64) -> State {
        let state = State {
            revision: book.events_applied(),
            book,
            term,
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

    /// Makes the ledger hold exactly this market's stream up to the book:
    /// what the tail has not folded yet is read from the store. (The
    /// ledger may be behind after it was reloaded while this market's last
    /// append was on its way; it can be ahead only of a book that missed
    /// another writer's events, which the stream then gives.)
    async fn sync_ledger(&self, state: &mut State) {
        loop {
            let folded = self.ledger.read(|l| l.market_events(self.symbol()));
            if folded == state.revision {
                return;
            }
            if folded > state.revision {
                let now = self.read_stream().await;
                *state = self.state_from(&now);
                if self.ledger.read(|l| l.market_events(self.symbol())) > state.revision {
                    // The ledger holds revisions the stream does not: a
                    // batch of ours that never landed. Fold the log again.
                    self.ledger.reload().await;
                }
                continue;
            }
            let missing = state.revision - folded;
            match read_market(
                &self.client,
                self.symbol(),
                folded,
                missing,
                Direction::Forwards,
            )
            .await
            {
                Ok(events) => {
                    for (i, e) in events.iter().enumerate() {
                        self.ledger
                            .fold_market(&self.market.spec, folded + i as u64, e);
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        symbol = self.symbol(),
                        "reading the stream failed, retrying: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }

    async fn handle(&self, state: &mut State, batch: Vec<MarketRequest>) {
        let mut queue: VecDeque<MarketRequest> = batch.into();
        let mut conflicts = 0;
        while !queue.is_empty() {
            // Only this term's leader decides: a stream fenced at a newer
            // term means another server leads now.
            if self.leadership.term().is_none_or(|term| term < state.term) {
                self.leadership.fenced_at(state.term);
                for r in queue.drain(..) {
                    let _ = r.reply.send(Err(ExchangeError::NotLeader));
                }
                return;
            }
            self.sync_ledger(state).await;
            let batch = self.decide_batch(state, &mut queue);
            if batch.events.is_empty() {
                // Nothing to write (a cancel-all with nothing open).
                for d in batch.decided {
                    let outcome = CommandOutcome {
                        order_id: d.order_id,
                        events: Vec::new(),
                    };
                    let _ = d.request.reply.send(Ok(outcome));
                }
                continue;
            }
            let first = state.revision;
            let written = self.write(first, &batch).await;
            // In the stream or not, the batch's credits are no longer on
            // their way.
            self.ledger.in_flight().settle(&batch.credits);
            match written {
                Written::Landed => {
                    self.appends.written.fetch_add(1, Ordering::Relaxed);
                    state.revision = first + batch.events.len() as u64;
                    self.publish_batch(state, &batch.events);
                    for d in batch.decided {
                        let outcome = CommandOutcome {
                            order_id: d.order_id,
                            events: batch.events[d.events].to_vec(),
                        };
                        let _ = d.request.reply.send(Ok(outcome));
                    }
                }
                Written::Conflict => {
                    tracing::info!(
                        symbol = self.symbol(),
                        "stream moved on elsewhere; deciding again"
                    );
                    // The book and the ledger hold decisions that are not
                    // in the stream: both come from the log again.
                    let now = self.read_stream().await;
                    *state = self.state_from(&now);
                    self.ledger.reload().await;
                    conflicts += 1;
                    let requests = batch.decided.into_iter().map(|d| d.request);
                    if conflicts >= 5 {
                        for r in requests {
                            let _ = r.reply.send(Err(ExchangeError::Unavailable));
                        }
                    } else {
                        for r in requests.rev() {
                            queue.push_front(r);
                        }
                    }
                }
            }
        }
    }

    /// Appends a batch at `first`, trying again identically while the
    /// store's answer is unknown (a lost answer, a timeout, a reset
    /// connection): the append may have landed, and only the store can
    /// say. The market is paused meanwhile.
    async fn write(&self, first: u64, batch: &Batch) -> Written {
        let stream = market_stream(self.symbol());
        let mut pause = Duration::from_millis(25);
        loop {
            match append(&self.client, &stream, first, batch.data.clone()).await {
                Ok(()) => {
                    self.resume();
                    return Written::Landed;
                }
                Err(StreamError::WrongExpectedVersion) => {
                    self.resume();
                    return Written::Conflict;
                }
                Err(e) => {
                    self.appends.unanswered.fetch_add(1, Ordering::Relaxed);
                    if !self.paused.swap(true, Ordering::Relaxed) {
                        tracing::error!(
                            symbol = self.symbol(),
                            revision = first,
                            "the store has not answered an append; the market is paused \
                             and the same append is tried again until it does: {e}"
                        );
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(RETRY_MAX);
                }
            }
        }
    }

    fn resume(&self) {
        if self.paused.swap(false, Ordering::Relaxed) {
            tracing::info!(
                symbol = self.symbol(),
                "the store answered; the market takes orders again"
            );
        }
    }

    /// Decides requests from the front of the queue against the book and
    /// the ledger until the batch is full or the next would not fit one
    /// append; refusals are answered at once. Holds the ledger throughout,
    /// so no other market decides on what this batch spends.
    fn decide_batch(&self, state: &mut State, queue: &mut VecDeque<MarketRequest>) -> Batch {
        let mut batch = Batch::default();
        let in_flight = self.ledger.in_flight();
        self.ledger.write(|ledger| {
            while let Some(request) = queue.pop_front() {
                let at = now_micros();
                let command = self.command(state, &request, at);
                match self.decide(state, ledger, &in_flight, &request, command.as_ref(), at) {
                    Err(e) => {
                        let _ = request.reply.send(Err(e));
                    }
                    Ok(mut events) => {
                        let payloads: Vec<(EventData, usize)> = events
                            .iter_mut()
                            .map(|e| {
                                self.fees.stamp(e);
                                market_event_payload(e)
                            })
                            .collect();
                        let bytes: usize = payloads.iter().map(|(_, n)| n + EVENT_OVERHEAD).sum();
                        if bytes > MAX_APPEND_BYTES {
                            let _ = request
                                .reply
                                .send(Err(ExchangeError::TooLarge(events.len())));
                            continue;
                        }
                        if batch.bytes + bytes > MAX_APPEND_BYTES {
                            // The next append takes it, decided again then.
                            queue.push_front(request);
                            break;
                        }
                        let order_id = command.as_ref().map_or(0, Command::order_id);
                        let before = available(ledger, &self.market, &events);
                        let start = batch.events.len();
                        for e in &events {
                            let revision = state.revision + batch.events.len() as u64;
                            state.book.apply(e);
                            if let Err(gap) = ledger.apply_market(&self.market.spec, revision, e) {
                                // sync_ledger ran just before: cannot be.
                                tracing::error!(symbol = self.symbol(), "{gap}");
                            }
                            batch.events.push(e.clone());
                        }
                        for (key, was) in before {
                            let now = ledger
                                .account(key.0)
                                .map_or(Decimal::ZERO, |a| a.balance(&key.1).available());
                            if now > was {
                                *batch.credits.entry(key).or_default() += now - was;
                            }
                        }
                        batch.data.extend(payloads.into_iter().map(|(d, _)| d));
                        batch.bytes += bytes;
                        batch.decided.push(Decided {
                            request,
                            order_id,
                            events: start..batch.events.len(),
                        });
                        if batch.decided.len() >= MAX_BATCH {
                            break;
                        }
                    }
                }
            }
        });
        in_flight.add(&batch.credits);
        batch
    }

    /// The book's command a request asks for, with the next order id and
    /// the time; none for a cancel-all, which is decided order by order.
    fn command(&self, state: &State, request: &MarketRequest, at: u64) -> Option<Command> {
        let symbol = self.market.symbol.clone();
        let account = request.account;
        let command = match &request.action {
            Action::Place(o) => Command::Place(PlaceOrder {
                symbol,
                order_id: state.book.last_order_id() + 1,
                account,
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
            }),
            Action::Cancel(order_id) => Command::Cancel(CancelOrder {
                symbol,
                order_id: *order_id,
                account,
                at,
            }),
            Action::Amend {
                order_id,
                price,
                quantity,
                trigger_price,
            } => Command::Amend(AmendOrder {
                symbol,
                order_id: *order_id,
                account,
                price: *price,
                quantity: *quantity,
                at,
                trigger_price: *trigger_price,
            }),
            Action::CancelAll => return None,
        };
        Some(command)
    }

    /// Decides one request on the book as the batch has left it, and
    /// checks it against the ledger: the caps, then the funds. Changes
    /// nothing; answers the events to write, or why it is refused.
    fn decide(
        &self,
        state: &State,
        ledger: &Ledger,
        in_flight: &InFlight,
        request: &MarketRequest,
        command: Option<&Command>,
        at: u64,
    ) -> Result<Vec<Event>, ExchangeError> {
        let Some(command) = command else {
            return Ok(self.cancel_all(state, request.account, at));
        };
        let account = request.account;
        if let Action::Place(o) = &request.action {
            let open = ledger.account(account).map(|a| &a.reservations);
            let count = open.map_or(0, |r| r.len());
            if count >= self.caps.max_open_orders {
                return Err(ExchangeError::TooManyOpenOrders(count));
            }
            let waiting = open.map_or(0, |r| r.values().filter(|r| r.waiting).count());
            if o.trigger.is_some() && waiting >= self.caps.max_stop_orders {
                return Err(ExchangeError::TooManyStopOrders(waiting));
            }
            // A market order with nothing on the other side would do
            // nothing: refuse it instead of accepting it empty. (A
            // stop-market waits for its trigger.)
            if o.order_type == OrderType::Market && o.trigger.is_none() {
                let depth = state.book.depth(1);
                let other = match o.side {
                    Side::Buy => &depth.asks,
                    Side::Sell => &depth.bids,
                };
                if other.is_empty() {
                    return Err(ExchangeError::NoLiquidity {
                        symbol: self.symbol().to_string(),
                        side: o.side,
                    });
                }
            }
        }
        let decision = state.book.decide(command);
        if let Some(Event::OrderRejected(r)) = decision.first() {
            return Err(ExchangeError::Rejected(r.reason));
        }
        if let Some((who, asset, amount)) = ledger.needs(&self.market.spec, command, &decision) {
            let unusable = in_flight.credit(who, &asset);
            ledger.check_available(who, &asset, amount, unusable)?;
        }
        Ok(decision)
    }

    /// Every open order of the account in this market cancelled, as one
    /// decision on the book as it is now.
    fn cancel_all(&self, state: &State, account: AccountId, at: u64) -> Vec<Event> {
        let mut book = state.book.clone();
        let mut ids: Vec<OrderId> = book
            .resting_orders()
            .iter()
            .filter(|o| o.account == account)
            .map(|o| o.order_id)
            .collect();
        ids.extend(
            book.stop_orders()
                .iter()
                .filter(|o| o.account == account)
                .map(|o| o.order_id),
        );
        ids.sort_unstable();
        let mut events = Vec::new();
        for order_id in ids {
            let cancel = Command::Cancel(CancelOrder {
                symbol: self.market.symbol.clone(),
                order_id,
                account,
                at,
            });
            for e in book.decide(&cancel) {
                if !matches!(e, Event::OrderRejected(_)) {
                    book.apply(&e);
                    events.push(e);
                }
            }
        }
        events
    }
}

/// The available balance of every account the events name, in the
/// market's two assets, before they are folded in.
fn available(
    ledger: &Ledger,
    market: &Market,
    events: &[Event],
) -> Vec<((AccountId, String), Decimal)> {
    let mut accounts: Vec<AccountId> = events.iter().flat_map(Event::accounts).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let spec = &market.spec;
    accounts
        .into_iter()
        .flat_map(|a| [(a, spec.base.clone()), (a, spec.quote.clone())])
        .map(|(a, asset)| {
            let now = ledger
                .account(a)
                .map_or(Decimal::ZERO, |acc| acc.balance(&asset).available());
            ((a, asset), now)
        })
        .collect()
}
