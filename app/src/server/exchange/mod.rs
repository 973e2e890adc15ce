//! The exchange as the web server sees it: start it on an event store, then
//! sign traders up and in, route their orders to the markets, and hand out
//! what the books, the ledger and the market data hold (as wire types, made
//! in `views`).
//!
//! One type, [`Exchange`], in six files, one per kind of caller: this one
//! starts and stops it and reports its stats; `sessions` signs traders up,
//! in and out; `api_keys` makes, lists and revokes programs' keys and
//! checks their requests; `trading` routes orders to the markets;
//! `market_reads` and `account_reads` answer what anyone may see of a
//! market and what a trader may see of their own account.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use eventstore::{Client, ClientSettings};
use orderbook::Book;
use store::EmbeddedStore;

use super::accounts_task::AccountsHandle;
use super::book_diffs::{self, BookDiffs};
use super::depth_updates::{self, DepthUpdates};
use super::key_crypto::SealingKey;
use super::leadership::{Leadership, Role};
use super::live_tail::LiveTail;
use super::lock::unpoisoned;
use super::login_limits::LoginLimits;
use super::market_data::MarketData;
use super::market_task::{Action, Caps, MarketHandle, Replayed};
use super::order_history_task::OrderHistoryHandle;
use super::settings::{SessionPolicy, Settings};
use super::snapshot_writer::SnapshotWriter;
use super::start_snapshot_writer::StartSnapshotWriter;
use super::start_snapshots;
use super::streams::{StreamError, last_position, market_stream, until_answered};

pub(super) mod account_reads;
pub(super) mod api_keys;
mod fill_reads;
pub(super) mod market_reads;
mod order_reads;
mod sessions;
mod trading;

/// Where the events live.
#[derive(Clone, Debug)]
pub enum Connection {
    /// Our own store, started in this process on a loopback port.
    Embedded { data: PathBuf },
    /// An EventStoreDB/KurrentDB connection string.
    External(String),
}

impl Connection {
    /// A client of the store, starting the embedded one (returned: it
    /// runs until it is stopped or dropped) if that is the store.
    pub async fn open(self) -> Result<(Client, Option<EmbeddedStore>), StartError> {
        let (url, embedded) = match self {
            Connection::Embedded { data } => {
                let store = EmbeddedStore::start(&data, ([127, 0, 0, 1], 0).into()).await?;
                tracing::info!(data = %data.display(), "embedded event store at {}", store.public_connection_string());
                (store.connection_string(), Some(store))
            }
            Connection::External(url) => (url, None),
        };
        let client_settings: ClientSettings =
            url.parse()
                .map_err(|e: eventstore::ClientSettingsParseError| {
                    StartError::ConnectionString(e.to_string())
                })?;
        let client = reached(&client_settings).await?;
        Ok((client, embedded))
    }
}

/// A client that has reached the store, asking again while it does not
/// answer (as [`until_answered`] does). Each try is a new client:
/// the official client (4.0.0) gives up for good when its first call to
/// the store fails midway, and every later call then fails with
/// "connection is closed" although the store is back.
async fn reached(settings: &ClientSettings) -> Result<Client, StartError> {
    let new = || Client::new(settings.clone());
    // A mistake in the settings shows at once, not after the patience.
    new().map_err(|e| StartError::ConnectionString(e.to_string()))?;
    let client = until_answered("reaching the event store", || async {
        let client = new().map_err(|e| StreamError::Unavailable(e.to_string()))?;
        last_position(&client).await?;
        Ok(client)
    })
    .await?;
    Ok(client)
}

/// Why the exchange could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the embedded event store: {0}")]
    EmbeddedStore(#[from] store::StoreError),
    #[error("invalid event store connection string: {0}")]
    ConnectionString(String),
    #[error("cannot read the event store: {0}")]
    Read(#[from] StreamError),
}

/// What this server keeps about sessions beside the log: how long they
/// last, when each was last used here, and how often each name and
/// address may try to log in or sign up. None of it is in the log: after
/// a restart a session's idle time starts again, and so do the counts.
struct Sessions {
    policy: SessionPolicy,
    /// When each session (by token hash) was last used on this server.
    last_seen: Mutex<HashMap<String, Instant>>,
    login_limits: Mutex<LoginLimits>,
    /// Password hashes made or checked at once: each takes argon2's
    /// 19 MiB and a core, so a crowd of tries waits here instead of
    /// filling the blocking pool's 512 threads.
    password_checks: tokio::sync::Semaphore,
}

/// A running exchange. Cheap to clone: every clone is the same exchange.
#[derive(Clone)]
pub struct Exchange(Arc<Inner>);

struct Inner {
    leadership: Leadership,
    client: Client,
    tail: LiveTail,
    ledger: AccountsHandle,
    market_data: MarketData,
    order_history: OrderHistoryHandle,
    markets: BTreeMap<String, MarketHandle>,
    store: std::sync::Mutex<Option<EmbeddedStore>>,
    /// Each market's published depth and ticker, which its viewers follow.
    depth_updates: BTreeMap<String, DepthUpdates>,
    /// Who is logged in here, and how often one may try.
    sessions: Sessions,
    /// Each market's whole-book diffs, for programs' depth streams.
    book_diffs: BTreeMap<String, BookDiffs>,
    /// Seals API keys' HMAC secrets.
    sealing: Arc<SealingKey>,
    /// When each API key was last used here (ms).
    key_last_used: Mutex<HashMap<String, u64>>,
    /// Each market's newest book snapshot this server knows is stored.
    snapshots: BTreeMap<String, Arc<AtomicU64>>,
    /// Events between two stored snapshots of a book.
    snapshot_every: u64,
    /// What [`Stats::start_snapshot`] says.
    start_snapshot: Arc<AtomicU64>,
    /// True once the start snapshot writer has stopped.
    start_snapshots_stopped: tokio::sync::watch::Receiver<bool>,
}

impl Exchange {
    /// Connects (starting the embedded store if asked), rebuilds every
    /// account and book from the events, starts the tasks, and returns
    /// once this server leads or knows who does. A store that does not
    /// answer is asked again for a while; a damaged log stops the start.
    pub async fn start(settings: Settings, connection: Connection) -> Result<Exchange, StartError> {
        let mut took = Phases::new();
        let (client, embedded) = connection.open().await?;
        took.mark("connected");
        // The tail first: every stream read below is read after the
        // position it starts from, so following it from there misses
        // nothing another server appends meanwhile.
        let market_streams = settings.markets.iter();
        let market_streams = market_streams.map(|m| market_stream(m.symbol.as_str()));
        let market_streams: Vec<String> = market_streams.collect();
        let tail = until_answered("following the log", || {
            LiveTail::start(client.clone(), market_streams.clone())
        })
        .await?;
        // What start folds, from the newest snapshot stored and the log
        // after it, read once after the tail started, a page at a time
        // into every fold, each on a thread of its own. Each then follows
        // the tail from where the read ended. The market data's fold is
        // the books' one fold: each market's task and its book diffs start
        // from the book it reached.
        let from = start_snapshots::FoldFrom::NewestSnapshot;
        took.mark("tail started");
        let folds = start_snapshots::fold_log(&client, &settings.markets, from, None).await?;
        took.mark("log folded");
        let start_snapshot = Arc::new(AtomicU64::new(
            (folds.from.as_ref()).map_or(0, |a| a.taken.covers.commit),
        ));
        let every = settings.start_snapshot_every;
        let (folds, written_down) = start_snapshots::written_down_if_due(folds, every).await;
        took.mark("snapshot written down");
        let followed_from = folds.position;
        let market_data = folds.market_data;
        let order_history = folds.order_history;
        let ledger = folds.ledger;
        let ledger = AccountsHandle::start(
            client.clone(),
            settings.markets.clone(),
            (settings.fees, settings.faucet.clone()),
            (ledger, followed_from),
            tail.clone(),
        );
        let market_data = MarketData::start(tail.clone(), market_data, followed_from);
        let order_history = OrderHistoryHandle::start(tail.clone(), order_history, followed_from);
        ledger.loaded().await;
        took.mark("accounts loaded");
        let symbols = settings.markets.iter().map(|m| m.symbol).collect();
        let leadership = Leadership::start(
            client.clone(),
            settings.leader.clone(),
            symbols,
            ledger.clone(),
        );
        let start_snapshots_stopped = StartSnapshotWriter {
            client: client.clone(),
            markets: settings.markets.clone(),
            every: settings.start_snapshot_every,
            leadership: leadership.clone(),
            written: start_snapshot.clone(),
            first: std::sync::Mutex::new(written_down),
        }
        .start();
        let mut markets = BTreeMap::new();
        let mut book_diffs = BTreeMap::new();
        let mut snapshots = BTreeMap::new();
        for market in &settings.markets {
            let symbol = market.symbol.to_string();
            let book = market_data
                .book(&symbol)
                .unwrap_or_else(|| Book::new(market.clone()));
            let term = market_data.read(&symbol, |t, _| t.fenced_term).unwrap_or(0);
            let caps = Caps {
                max_open_orders: settings.max_open_orders,
                max_stop_orders: settings.max_stop_orders,
            };
            let diffs =
                book_diffs::start(market.clone(), book.clone(), tail.clone(), followed_from);
            book_diffs.insert(symbol.clone(), diffs);
            let handle = MarketHandle::start(
                client.clone(),
                market.clone(),
                ledger.clone(),
                (settings.fees, caps),
                Replayed {
                    book,
                    term,
                    followed_from,
                },
                tail.clone(),
                leadership.clone(),
            );
            let published = handle.revision();
            let writer = SnapshotWriter {
                client: client.clone(),
                market: market.clone(),
                every: settings.snapshot_every,
                leadership: leadership.clone(),
                events: Arc::new(move || *published.borrow()),
            };
            snapshots.insert(symbol.clone(), writer.start());
            markets.insert(symbol, handle);
        }
        let depth_updates = markets
            .iter()
            .map(|(symbol, m)| {
                let updates = depth_updates::start(m.clone(), market_data.clone());
                (symbol.clone(), updates)
            })
            .collect();
        took.mark("markets started");
        // Leading, or knowing who leads, before the first request.
        leadership.settled().await;
        took.mark("leadership settled");
        tracing::info!("started in {took}");
        Ok(Exchange(Arc::new(Inner {
            leadership,
            client,
            tail,
            ledger,
            market_data,
            order_history,
            sessions: Sessions::new(settings.sessions),
            markets,
            store: std::sync::Mutex::new(embedded),
            depth_updates,
            sealing: settings.sealing.clone(),
            book_diffs,
            snapshots,
            snapshot_every: settings.snapshot_every,
            start_snapshot,
            start_snapshots_stopped,
            key_last_used: Mutex::new(HashMap::new()),
        })))
    }

    /// This server's part: leading (and deciding every order), or
    /// following the leader (whose address it knows once it has seen its
    /// claim).
    pub fn role(&self) -> Role {
        self.0.leadership.role()
    }

    /// What an operator watches: each market's appends, viewers and
    /// whether it is paused, and the embedded store's subscriptions.
    pub fn stats(&self) -> Stats {
        let markets = self.0.markets.iter();
        let store = unpoisoned(self.0.store.lock());
        Stats {
            markets: markets
                .map(|(symbol, m)| MarketStats {
                    symbol: symbol.clone(),
                    appends: m.appends(),
                    unanswered: m.unanswered(),
                    paused: m.paused(),
                    viewers: self.0.depth_updates[symbol].receiver_count(),
                    snapshots: self.0.snapshots[symbol].load(Ordering::Relaxed),
                })
                .collect(),
            tail_readers: self.0.tail.readers(),
            start_snapshot: self.0.start_snapshot.load(Ordering::Relaxed),
            store: store.as_ref().map(|s| StoreStats {
                live_subscribers: s.store().live_subscribers(),
                subscriptions_opened: s.store().subscriptions_opened(),
            }),
        }
    }

    /// Stops the embedded store, if this exchange started one.
    pub async fn stop(&self) {
        for m in self.stats().markets {
            tracing::info!(symbol = %m.symbol, appends = m.appends, unanswered = m.unanswered, paused = m.paused, "market stopping");
        }
        // Every order already asked for is decided and written first: a
        // cancel-all of nobody's orders queues behind them and writes
        // nothing.
        for market in self.0.markets.values() {
            let _ = market.send(0, Action::CancelAll).await;
        }
        // Then whatever the accounts task was asked (a sign-up, a session),
        // the leader's claim renewals, and a start snapshot being written.
        self.0.ledger.barrier().await;
        self.0.leadership.stop().await;
        let mut start_snapshots = self.0.start_snapshots_stopped.clone();
        let _ = start_snapshots.wait_for(|stopped| *stopped).await;
        // Then the live subscription, so the store does not go down under
        // it (and its client log the loss as an error).
        self.0.tail.stop().await;
        let store = unpoisoned(self.0.store.lock()).take();
        if let Some(store) = store
            && let Err(e) = store.stop().await
        {
            tracing::warn!("stopping the embedded store: {e}");
        }
    }

    /// The event store client.
    pub fn client(&self) -> Client {
        self.0.client.clone()
    }

    /// The server's one live subscription, for a reader of one's own.
    pub fn tail(&self) -> &LiveTail {
        &self.0.tail
    }
}

/// What [`Exchange::stats`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub markets: Vec<MarketStats>,
    /// Readers of the live tail: one per viewer's feed, the market data,
    /// the accounts task and one per market task.
    pub tail_readers: usize,
    /// `None` when the exchange runs on an external store.
    pub store: Option<StoreStats>,
    /// The `$all` commit position the newest start snapshot this server
    /// started from or wrote covers (0: none).
    pub start_snapshot: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketStats {
    pub symbol: String,
    /// Appends the market's task has written since start.
    pub appends: u64,
    /// Tries of an append the store did not answer since start (each tried
    /// again identically).
    pub unanswered: u64,
    /// Refusing orders because settlement is behind.
    pub paused: bool,
    /// Feeds watching the market now.
    pub viewers: usize,
    /// The newest snapshot of its book this server knows is stored
    /// (snapshot `k` is taken at about `k * --snapshot-every` events), as
    /// of when it last led; 0 if it has not led or found none.
    pub snapshots: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreStats {
    /// Live subscriptions the embedded store is serving now.
    pub live_subscribers: usize,
    /// Subscriptions it has opened since it started.
    pub subscriptions_opened: u64,
}

impl Stats {
    /// The markets paused because their settlement is behind (they refuse
    /// orders until it is written).
    pub fn paused(&self) -> Vec<String> {
        let markets = self.markets.iter().filter(|m| m.paused);
        markets.map(|m| m.symbol.clone()).collect()
    }
}

/// How long each step of a start took, for the log.
struct Phases {
    began: std::time::Instant,
    last: std::time::Instant,
    steps: Vec<(&'static str, std::time::Duration)>,
}

impl Phases {
    fn new() -> Phases {
        let now = std::time::Instant::now();
        Phases {
            began: now,
            last: now,
            steps: Vec::new(),
        }
    }

    /// The step that ends now.
    fn mark(&mut self, step: &'static str) {
        let now = std::time::Instant::now();
        self.steps.push((step, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.1?}:", self.last - self.began)?;
        for (step, took) in &self.steps {
            write!(f, " {step} {took:.1?};")?;
        }
        Ok(())
    }
}
