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
//!
//! Here are the handle, the task's loop and its append; how a batch is
//! decided is in `batch_decision`, how the task keeps level with its stream
//! in `stream_sync`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use accounts::Fees;
use eventstore::{Client, EventData};
use orderbook::{AccountId, Book, ClientOrderId, Event, Market, OrderId, OrderTerms};
use rust_decimal::Decimal;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

use super::accounts_task::AccountsHandle;
use super::exchange_error::ExchangeError;
use super::leadership::Leadership;
use super::live_tail::{LiveTail, Streams};
use super::lock::unpoisoned;
use super::streams::{StreamError, append, market_stream};
use super::supervise::supervise;
use crate::api::FeedPosition;

mod batch_decision;
mod stream_sync;

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

/// What a trader asks one market to do.
pub enum Action {
    /// A new order, under the trader's own id when they gave one.
    Place(OrderTerms, Option<ClientOrderId>),
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
    /// Why a placement was refused: its `OrderRefused` is in the batch,
    /// and the trader is told once it landed (so their history shows the
    /// refusal as soon as they hear of it).
    refused: Option<ExchangeError>,
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
                        let answer = match d.refused {
                            Some(why) => Err(why),
                            None => Ok(CommandOutcome {
                                order_id: d.order_id,
                                events: batch.events[d.events].to_vec(),
                            }),
                        };
                        let _ = d.request.reply.send(answer);
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
}
