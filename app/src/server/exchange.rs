//! The exchange as the web server sees it: start it on an event store, then
//! sign traders up and in, route their orders to the markets, and hand out
//! what the books, the ledger and the market data hold (as wire types, made
//! in `views`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use accounts::{AccountEvent, validate_password, validate_username};
use eventstore::{Client, ClientSettings};
use orderbook::{AccountId, Book, OrderId};
use rust_decimal::Decimal;
use store::EmbeddedStore;
use tokio::sync::watch;

use super::accounts_task::{AccountsHandle, AccountsRequest, Preloaded};
use super::clock::{now_micros, now_ms};
use super::depth_updates::{self, DEPTH_LEVELS, DepthUpdate, DepthUpdates};
use super::exchange_error::ExchangeError;
use super::leadership::{Leadership, Role, fenced_term};
use super::live_tail::LiveTail;
use super::lock::unpoisoned;
use super::login_limits::{LoginLimits, Refusal};
use super::market_data::{CANDLES_SENT, MarketData};
use super::market_task::{Action, Caps, CommandOutcome, MarketHandle, OrderRequest, Replayed};
use super::order_history::{OrderFilter, OrderRecord, newest_first};
use super::order_history_task::OrderHistoryHandle;
use super::session::{self, SessionPolicy};
use super::settings::Settings;
use super::streams::{
    Direction, StreamError, last_position, load_market, market_stream, read_market, until_answered,
};
use super::views::{
    account_view, depth_view, fill_view, market_view, open_order_view, order_record_view,
    stop_order_view, trade_view,
};
use crate::api::{
    AccountView, CandleHistory, DepthView, MarketSnapshot, MarketView, OrderHistoryPage,
    OrderRecordView, ReplayView, TAPE, TickerView, TradeHistoryPage,
};
use crate::candles::Interval;

/// Events read back from a replayed moment to find its tape's trades.
const REPLAY_TAPE_READ: u64 = 2_000;

/// A refused try, as the trader reads it.
fn locked(refusal: Refusal) -> ExchangeError {
    match refusal {
        Refusal::Name(wait) => ExchangeError::NameLocked(wait),
        Refusal::Address(wait) => ExchangeError::AddressLocked(wait),
    }
}

/// A password hash no password matches in practice, checked for names
/// that have no account (made once, at the first such log-in).
fn unknown_name_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| session::hash_password(&session::new_token()))
}

/// How far [`Exchange::replay`] goes into a market's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayTo {
    /// Its stream's first this many events.
    Events(u64),
    /// Every event up to this time (milliseconds since the Unix epoch).
    Time(u64),
}

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
    /// How often each name and address may try to log in or sign up.
    login_limits: std::sync::Mutex<LoginLimits>,
    sessions: SessionPolicy,
    /// When each session (by token hash) was last used on this server.
    /// Not in the log: after a restart a session's idle time starts again.
    last_seen: std::sync::Mutex<HashMap<String, Instant>>,
}

impl Exchange {
    /// Connects (starting the embedded store if asked), rebuilds every
    /// account and book from the events, starts the tasks, and returns
    /// once this server leads or knows who does. A store that does not
    /// answer is asked again for a while; a damaged log stops the start.
    pub async fn start(settings: Settings, connection: Connection) -> Result<Exchange, StartError> {
        let (client, embedded) = connection.open().await?;
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
        let followed_from = tail.reached();
        // Each market stream is read once here; the accounts task folds
        // the ledger from these events, and each market task starts from
        // the book replayed here.
        let mut preloaded = Preloaded::new();
        for market in &settings.markets {
            let symbol = market.symbol.to_string();
            let events =
                until_answered("reading a market", || load_market(&client, &symbol)).await?;
            preloaded.insert(symbol, Arc::new(events));
        }
        let ledger = AccountsHandle::start(
            client.clone(),
            settings.markets.clone(),
            settings.fees,
            settings.faucet.clone(),
            preloaded.clone(),
            tail.clone(),
            followed_from,
        );
        ledger.loaded().await;
        let symbols = settings.markets.iter().map(|m| m.symbol.clone()).collect();
        let leadership = Leadership::start(
            client.clone(),
            settings.leader.clone(),
            symbols,
            ledger.clone(),
        );
        let mut markets = BTreeMap::new();
        for market in &settings.markets {
            let symbol = market.symbol.to_string();
            let book = Book::replay(market.clone(), preloaded[&symbol].iter());
            let term = fenced_term(preloaded[&symbol].iter());
            let caps = Caps {
                max_open_orders: settings.max_open_orders,
                max_stop_orders: settings.max_stop_orders,
            };
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
            markets.insert(symbol, handle);
        }
        let market_data = MarketData::start(tail.clone(), settings.markets.clone());
        let order_history = OrderHistoryHandle::start(tail.clone());
        let depth_updates = markets
            .iter()
            .map(|(symbol, m)| {
                let updates = depth_updates::start(m.clone(), market_data.clone());
                (symbol.clone(), updates)
            })
            .collect();
        // Leading, or knowing who leads, before the first request.
        leadership.settled().await;
        Ok(Exchange(Arc::new(Inner {
            leadership,
            client,
            tail,
            ledger,
            market_data,
            order_history,
            login_limits: Default::default(),
            sessions: settings.sessions,
            last_seen: Default::default(),
            markets,
            store: std::sync::Mutex::new(embedded),
            depth_updates,
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
                })
                .collect(),
            tail_readers: self.0.tail.readers(),
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
        let store = unpoisoned(self.0.store.lock()).take();
        if let Some(store) = store
            && let Err(e) = store.stop().await
        {
            tracing::warn!("stopping the embedded store: {e}");
        }
    }

    /// Opens an account and logs it in; returns the session token.
    pub async fn sign_up(&self, username: &str, password: &str) -> Result<String, ExchangeError> {
        validate_username(username)?;
        validate_password(password)?;
        if self.0.ledger.read(|l| l.by_username(username).is_some()) {
            return Err(accounts::AccountError::UsernameTaken.into());
        }
        let password = password.to_string();
        let password_hash = tokio::task::spawn_blocking(move || session::hash_password(&password))
            .await
            .map_err(|_| ExchangeError::Unavailable)?;
        let username = username.to_string();
        let at = now_micros();
        let account = self
            .0
            .ledger
            .ask(|reply| AccountsRequest::Open {
                username,
                password_hash,
                at,
                reply,
            })
            .await?;
        self.start_session(account).await
    }

    /// [`Exchange::sign_up`] for a visitor at `address`, within the
    /// sign-ups an address may make (`login_limits`).
    pub async fn sign_up_from(
        &self,
        username: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<String, ExchangeError> {
        let admitted = unpoisoned(self.0.login_limits.lock()).sign_up(address, Instant::now());
        admitted.map_err(locked)?;
        self.sign_up(username, password).await
    }

    /// [`Exchange::log_in`] for a visitor at `address`, within the tries a
    /// name and an address may make (`login_limits`).
    pub async fn log_in_from(
        &self,
        username: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<String, ExchangeError> {
        let admitted =
            unpoisoned(self.0.login_limits.lock()).may_log_in(username, address, Instant::now());
        admitted.map_err(locked)?;
        let result = self.log_in(username, password).await;
        let failed = matches!(result, Err(ExchangeError::BadCredentials));
        if failed || result.is_ok() {
            let mut limits = unpoisoned(self.0.login_limits.lock());
            limits.logged_in(username, address, !failed, Instant::now());
        }
        result
    }

    /// Checks a password and starts a session; returns the session token.
    /// An unknown name costs the same check as a known one, so the time of
    /// the answer does not tell which names exist.
    pub async fn log_in(&self, username: &str, password: &str) -> Result<String, ExchangeError> {
        let found = self.0.ledger.read(|l| {
            l.by_username(username)
                .map(|a| (a.id, a.password_hash.clone()))
        });
        let hash = found
            .as_ref()
            .map_or_else(|| unknown_name_hash().to_string(), |f| f.1.clone());
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || session::verify_password(&password, &hash))
            .await
            .map_err(|_| ExchangeError::Unavailable)?;
        match found {
            Some((account, _)) if ok => self.start_session(account).await,
            _ => Err(ExchangeError::BadCredentials),
        }
    }

    /// Starts a session; past the sessions an account may hold, its oldest
    /// ones end.
    async fn start_session(&self, account: AccountId) -> Result<String, ExchangeError> {
        let token = session::new_token();
        let token_hash = session::token_hash(&token);
        self.session_event(account, token_hash.clone(), true)
            .await?;
        unpoisoned(self.0.last_seen.lock()).insert(token_hash, Instant::now());
        let held = self.0.ledger.read(|l| {
            l.account(account)
                .map(|a| a.sessions.clone())
                .unwrap_or_default()
        });
        let beyond = held
            .len()
            .saturating_sub(self.0.sessions.per_account.max(1));
        for oldest in held.into_iter().take(beyond) {
            self.end_session(account, oldest).await?;
        }
        Ok(token)
    }

    async fn session_event(
        &self,
        account: AccountId,
        token_hash: String,
        start: bool,
    ) -> Result<(), ExchangeError> {
        let at = now_micros();
        self.0
            .ledger
            .ask(|reply| AccountsRequest::Session {
                account,
                token_hash,
                start,
                at,
                reply,
            })
            .await
    }

    async fn end_session(
        &self,
        account: AccountId,
        token_hash: String,
    ) -> Result<(), ExchangeError> {
        unpoisoned(self.0.last_seen.lock()).remove(&token_hash);
        self.session_event(account, token_hash, false).await
    }

    /// Ends a session; a token that is not logged in is already logged out.
    pub async fn log_out(&self, token: &str) -> Result<(), ExchangeError> {
        let Some(account) = self.account_for(token) else {
            return Ok(());
        };
        self.end_session(account, session::token_hash(token)).await
    }

    /// Ends every session of the account a token is logged in to: "log out
    /// everywhere", for a trader who fears another has their session.
    pub async fn log_out_everywhere(&self, token: &str) -> Result<(), ExchangeError> {
        let Some(account) = self.account_for(token) else {
            return Ok(());
        };
        let held = self.0.ledger.read(|l| {
            l.account(account)
                .map(|a| a.sessions.clone())
                .unwrap_or_default()
        });
        for token_hash in held {
            self.end_session(account, token_hash).await?;
        }
        Ok(())
    }

    pub fn session_policy(&self) -> SessionPolicy {
        self.0.sessions
    }

    /// The account with a username, if there is one.
    pub fn account_id(&self, username: &str) -> Option<AccountId> {
        self.0
            .ledger
            .read(|l| l.by_username(username).map(|a| a.id))
    }

    /// The account a session token is logged in to, counting this as a use
    /// of the session. A session past its idle or absolute limit (see
    /// [`SessionPolicy`]) is over: it answers `None`, and its end is
    /// written to the log.
    pub fn account_for(&self, token: &str) -> Option<AccountId> {
        let hash = session::token_hash(token);
        let (account, began) = self.0.ledger.read(|l| l.session_since(&hash))?;
        let policy = self.0.sessions;
        let age = Duration::from_micros(now_micros().saturating_sub(began));
        let mut seen = unpoisoned(self.0.last_seen.lock());
        let idle = seen.get(&hash).is_some_and(|t| t.elapsed() > policy.idle);
        if age > policy.absolute || idle {
            seen.remove(&hash);
            drop(seen);
            let exchange = self.clone();
            tokio::spawn(async move {
                if let Err(e) = exchange.end_session(account, hash).await {
                    tracing::warn!("could not record the end of an expired session: {e}");
                }
            });
            return None;
        }
        seen.insert(hash, Instant::now());
        Some(account)
    }

    pub async fn claim_faucet(&self, account: AccountId) -> Result<(), ExchangeError> {
        // Money comes in through the leader only.
        if self.0.leadership.term().is_none() {
            return Err(ExchangeError::NotLeader);
        }
        let at = now_micros();
        self.0
            .ledger
            .ask(|reply| AccountsRequest::Faucet { account, at, reply })
            .await
    }

    fn market(&self, symbol: &str) -> Result<&MarketHandle, ExchangeError> {
        self.0
            .markets
            .get(symbol)
            .ok_or_else(|| ExchangeError::UnknownMarket(symbol.to_string()))
    }

    pub async fn place(
        &self,
        account: AccountId,
        symbol: &str,
        order: OrderRequest,
    ) -> Result<CommandOutcome, ExchangeError> {
        let market = self.market(symbol)?;
        // The caps and the funds are checked by the market's sequencer,
        // in the same decision as the order.
        let result = market.send(account, Action::Place(order.clone())).await;
        if let Err(e) = &result
            && e.refuses_order()
        {
            self.record_refusal(account, symbol, &order, e).await;
        }
        result
    }

    /// Writes a refused order to its account's stream for the history. The
    /// trader is answered either way: when this cannot be written, the
    /// history misses the refusal, and the log says so.
    async fn record_refusal(
        &self,
        account: AccountId,
        symbol: &str,
        order: &OrderRequest,
        why: &ExchangeError,
    ) {
        let refusal = AccountEvent::OrderRefused {
            account,
            symbol: symbol.to_string(),
            side: order.side,
            order_type: order.order_type,
            price: order.price,
            quantity: order.quantity,
            quote_amount: order.quote_amount,
            trigger: order.trigger,
            reason: why.to_string(),
            at: now_micros(),
        };
        let written = self
            .0
            .ledger
            .ask(|reply| AccountsRequest::RecordRefusal { refusal, reply })
            .await;
        if let Err(e) = written {
            tracing::warn!(
                account,
                symbol,
                "a refused order is missing from its history: {e}"
            );
        }
    }

    /// Cancels every open order of the account in one market, or in all of
    /// them; answers how many were cancelled. An order that filled or was
    /// cancelled meanwhile is passed over.
    pub async fn cancel_all(
        &self,
        account: AccountId,
        symbol: Option<&str>,
    ) -> Result<usize, ExchangeError> {
        if let Some(s) = symbol {
            self.market(s)?;
        }
        // One decision per market, of the orders open when it is decided.
        let mut cancelled = 0;
        let markets = self.0.markets.iter();
        for (_, market) in markets.filter(|(s, _)| symbol.is_none_or(|wanted| wanted == *s)) {
            let outcome = market.send(account, Action::CancelAll).await?;
            let events = outcome.events.iter();
            cancelled += events
                .filter(|e| matches!(e, orderbook::Event::OrderCancelled(_)))
                .count();
        }
        Ok(cancelled)
    }

    pub async fn cancel(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
    ) -> Result<CommandOutcome, ExchangeError> {
        self.market(symbol)?
            .send(account, Action::Cancel(order_id))
            .await
    }

    /// Gives a resting order a new price and/or open quantity; an order
    /// waiting for its trigger a new trigger price too.
    pub async fn amend(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
        price: Option<Decimal>,
        quantity: Option<Decimal>,
        trigger_price: Option<Decimal>,
    ) -> Result<CommandOutcome, ExchangeError> {
        let action = Action::Amend {
            order_id,
            price,
            quantity,
            trigger_price,
        };
        self.market(symbol)?.send(account, action).await
    }

    pub fn market_spec(&self, symbol: &str) -> Option<orderbook::MarketSpec> {
        self.0.markets.get(symbol).map(|m| m.market.spec.clone())
    }

    /// The event store client.
    pub fn client(&self) -> Client {
        self.0.client.clone()
    }

    /// The server's one live subscription, for a reader of one's own.
    pub fn tail(&self) -> &LiveTail {
        &self.0.tail
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
    /// book from the nearest checkpoint and the events after it (read from
    /// the store, at most `CHECKPOINT_EVERY`), the tape from the events
    /// just before, the candles from the trades up to then.
    pub async fn replay(&self, symbol: &str, to: ReplayTo) -> Result<ReplayView, ExchangeError> {
        let unknown = || ExchangeError::UnknownMarket(symbol.to_string());
        let (events, total, at_ms, (from, start), series) = self
            .0
            .market_data
            .read(symbol, |tape, _| {
                let h = &tape.history;
                let events = match to {
                    ReplayTo::Events(n) => n.min(h.events()),
                    ReplayTo::Time(at_ms) => h.events_at(at_ms),
                };
                let series = h.series(events, CANDLES_SENT);
                (
                    events,
                    h.events(),
                    h.time_after(events),
                    h.checkpoint(events),
                    series,
                )
            })
            .ok_or_else(unknown)?;
        let client = &self.0.client;
        let unavailable = |e: StreamError| {
            tracing::warn!("replay of {symbol} cannot read the store: {e}");
            ExchangeError::Unavailable
        };
        let after = read_market(client, symbol, from, events - from, Direction::Forwards)
            .await
            .map_err(unavailable)?;
        let mut book = Book::clone(&start);
        for e in &after {
            book.apply(e);
        }
        let mut trades = Vec::new();
        if let Some(last) = events.checked_sub(1) {
            let before = read_market(client, symbol, last, REPLAY_TAPE_READ, Direction::Backwards)
                .await
                .map_err(unavailable)?;
            trades = before.iter().filter_map(trade_view).take(TAPE).collect();
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

    /// The book of a market as of its last append.
    pub fn book(&self, symbol: &str) -> Option<Arc<Book>> {
        self.0.markets.get(symbol).map(|m| m.book())
    }

    pub fn markets(&self) -> Vec<MarketView> {
        let markets = self.0.markets.values();
        markets.map(|m| market_view(&m.market.spec)).collect()
    }

    /// A page of the account's orders, newest first: up to `limit` that
    /// `filter` keeps, from just before the cursor `before`; each with its
    /// fills from the ledger.
    pub fn order_history(
        &self,
        account: AccountId,
        filter: &OrderFilter,
        before: Option<u64>,
        limit: usize,
    ) -> OrderHistoryPage {
        let page = self
            .0
            .order_history
            .read(|h| h.page(account, filter, before, limit));
        OrderHistoryPage {
            orders: self.with_fills(account, &page.orders),
            next: page.next,
        }
    }

    /// Every order of the account that `filter` keeps, newest first.
    pub fn all_orders(&self, account: AccountId, filter: &OrderFilter) -> Vec<OrderRecordView> {
        let orders = self.0.order_history.read(|h| h.all(account, filter));
        self.with_fills(account, &orders)
    }

    fn with_fills(&self, account: AccountId, orders: &[OrderRecord]) -> Vec<OrderRecordView> {
        self.0.ledger.read(|l| {
            let trades = l.account(account).map_or(&[][..], |a| a.trades.as_slice());
            let mut fills: HashMap<(&str, OrderId), Vec<&accounts::TradeSettled>> = orders
                .iter()
                .filter_map(|o| Some(((o.symbol.as_str(), o.order_id?), Vec::new())))
                .collect();
            for t in trades {
                if let Some(f) = fills.get_mut(&(t.symbol.as_str(), t.order_id)) {
                    f.push(t);
                }
            }
            orders
                .iter()
                .map(|o| {
                    let key = o.order_id.map(|id| (o.symbol.as_str(), id));
                    let of = key.and_then(|k| fills.remove(&k)).unwrap_or_default();
                    order_record_view(o, of)
                })
                .collect()
        })
    }

    /// A page of the account's trades (one market's, or all), newest
    /// first, from just before the cursor `before`.
    pub fn trade_history(
        &self,
        account: AccountId,
        symbol: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> TradeHistoryPage {
        self.0.ledger.read(|l| {
            let trades = l.account(account).map_or(&[][..], |a| a.trades.as_slice());
            let keep = |t: &accounts::TradeSettled| symbol.is_none_or(|s| s == t.symbol);
            let (page, next) = newest_first(trades, before, limit, keep);
            TradeHistoryPage {
                trades: page.into_iter().map(fill_view).collect(),
                next,
            }
        })
    }

    /// Everything a trader sees of their own account.
    pub fn view(&self, account: AccountId) -> Option<AccountView> {
        // The account's reservations name its open orders: look just those
        // up in the books instead of scanning every resting order.
        let reserved: Vec<(String, OrderId)> = self.0.ledger.read(|l| {
            l.account(account)
                .map(|a| a.reservations.keys().cloned().collect())
                .unwrap_or_default()
        });
        let mut books: BTreeMap<&str, Arc<Book>> = BTreeMap::new();
        let mut open_orders = Vec::new();
        for (symbol, order_id) in &reserved {
            let Some(market) = self.0.markets.get(symbol) else {
                continue;
            };
            let book = books.entry(symbol).or_insert_with(|| market.book());
            // Reserved but not in the book: still on its way, or already
            // done and waiting for settlement. Either way not resting.
            if let Some(o) = book.order(*order_id).filter(|o| o.account == account) {
                open_orders.push(open_order_view(symbol, &o));
            } else if let Some(o) = book.stop_order(*order_id).filter(|o| o.account == account) {
                open_orders.push(stop_order_view(symbol, &o));
            }
        }
        self.0
            .ledger
            .read(|l| Some(account_view(l.account(account)?, open_orders)))
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
