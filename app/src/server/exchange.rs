//! The exchange as the web server sees it: start it on an event store, then
//! sign traders up and in, and route their orders to the markets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use accounts::{validate_password, validate_username};
use eventstore::{Client, ClientSettings};
use orderbook::{AccountId, Book, OrderId};
use store::EmbeddedStore;

use super::auth;
use super::error::ExchangeError;
use super::ledger::{LedgerHandle, Preloaded, Request as LedgerRequest, load_market};
use super::market::{Action, MarketHandle, OrderRequest, Outcome};
use super::market_data::{CANDLES_SENT, MarketData, now_micros, now_ms};
use super::settings::Settings;
use crate::feed::{DepthView, LevelView, MarketSnapshot, TickerView};
use crate::trading::{AccountView, BalanceView, FillView, MarketView, OpenOrderView};

/// Price levels shown per side of the depth view.
pub const DEPTH_LEVELS: usize = 20;

/// Where the events live.
#[derive(Clone, Debug)]
pub enum Connection {
    /// Our own store, started in this process on a loopback port.
    Embedded { data: PathBuf },
    /// An EventStoreDB/KurrentDB connection string.
    External(String),
}

/// Why the exchange could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start the embedded event store: {0}")]
    Store(#[from] store::StoreError),
    #[error("invalid event store connection string: {0}")]
    ConnectionString(String),
    #[error("cannot read the event store: {0}")]
    Read(#[from] super::events::StoreError),
    #[error("the accounts task is not answering")]
    Ledger,
}

/// A running exchange. Cheap to clone: every clone is the same exchange.
#[derive(Clone)]
pub struct Exchange(Arc<Inner>);

struct Inner {
    client: Client,
    ledger: LedgerHandle,
    market_data: MarketData,
    markets: BTreeMap<String, MarketHandle>,
    store: std::sync::Mutex<Option<EmbeddedStore>>,
    /// Each market's depth as of a book revision: every viewer of a market
    /// asks for it after every change, so it is worked out once.
    depths: std::sync::Mutex<HashMap<String, (u64, Arc<DepthView>)>>,
}

impl Exchange {
    /// Connects (starting the embedded store if asked), rebuilds every
    /// account and book from the events, gives back the funds of orders
    /// that never reached their book, and starts the tasks.
    pub async fn start(settings: Settings, connection: Connection) -> Result<Exchange, StartError> {
        let (url, embedded) = match connection {
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
        let client = Client::new(client_settings)
            .map_err(|e| StartError::ConnectionString(e.to_string()))?;
        // Each market stream is read once here; the accounts task settles
        // from these events, and each market task starts from the book
        // replayed here for reconciling.
        let mut preloaded = Preloaded::new();
        for market in &settings.markets {
            let symbol = market.symbol.to_string();
            let events = load_market(&client, &symbol).await?;
            preloaded.insert(symbol, Arc::new(events));
        }
        let ledger = LedgerHandle::start(
            client.clone(),
            settings.markets.clone(),
            settings.fees,
            settings.faucet.clone(),
            preloaded.clone(),
        );
        let mut markets = BTreeMap::new();
        for market in &settings.markets {
            let symbol = market.symbol.to_string();
            let book = Book::replay(market.clone(), preloaded[&symbol].iter());
            let resting: HashSet<(AccountId, OrderId)> = book
                .resting_orders()
                .iter()
                .map(|o| (o.account, o.order_id))
                .collect();
            let at = now_micros();
            let reconcile = symbol.clone();
            ledger
                .ask(|reply| LedgerRequest::Reconcile {
                    symbol: reconcile,
                    resting,
                    at,
                    reply,
                })
                .await
                .map_err(|_| StartError::Ledger)?;
            let handle = MarketHandle::start(client.clone(), market.clone(), ledger.clone(), book);
            markets.insert(symbol, handle);
        }
        let symbols = settings
            .markets
            .iter()
            .map(|m| m.symbol.to_string())
            .collect();
        let market_data = MarketData::start(client.clone(), symbols);
        Ok(Exchange(Arc::new(Inner {
            client,
            ledger,
            market_data,
            markets,
            store: std::sync::Mutex::new(embedded),
            depths: std::sync::Mutex::default(),
        })))
    }

    /// The markets paused because their settlement is behind (they refuse
    /// orders until it is written).
    pub fn paused_markets(&self) -> Vec<String> {
        let markets = self.0.markets.iter();
        markets
            .filter(|(_, m)| m.paused())
            .map(|(symbol, _)| symbol.clone())
            .collect()
    }

    /// Stops the embedded store, if this exchange started one.
    pub async fn stop(&self) {
        for (symbol, market) in &self.0.markets {
            let paused = market.paused();
            tracing::info!(%symbol, appends = market.appends(), paused, "market stopping");
        }
        let store = self
            .0
            .store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
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
        let password_hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
            .await
            .map_err(|_| ExchangeError::Unavailable)?;
        let username = username.to_string();
        let at = now_micros();
        let account = self
            .0
            .ledger
            .ask(|reply| LedgerRequest::Open {
                username,
                password_hash,
                at,
                reply,
            })
            .await?;
        self.start_session(account).await
    }

    /// Checks a password and starts a session; returns the session token.
    pub async fn log_in(&self, username: &str, password: &str) -> Result<String, ExchangeError> {
        let found = self.0.ledger.read(|l| {
            l.by_username(username)
                .map(|a| (a.id, a.password_hash.clone()))
        });
        let Some((account, hash)) = found else {
            return Err(ExchangeError::BadCredentials);
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &hash))
            .await
            .map_err(|_| ExchangeError::Unavailable)?;
        if !ok {
            return Err(ExchangeError::BadCredentials);
        }
        self.start_session(account).await
    }

    async fn start_session(&self, account: AccountId) -> Result<String, ExchangeError> {
        let token = auth::new_token();
        let token_hash = auth::token_hash(&token);
        let at = now_micros();
        self.0
            .ledger
            .ask(|reply| LedgerRequest::Session {
                account,
                token_hash,
                start: true,
                at,
                reply,
            })
            .await?;
        Ok(token)
    }

    /// Ends a session; a token that is not logged in is already logged out.
    pub async fn log_out(&self, token: &str) -> Result<(), ExchangeError> {
        let Some(account) = self.account_for(token) else {
            return Ok(());
        };
        let token_hash = auth::token_hash(token);
        let at = now_micros();
        self.0
            .ledger
            .ask(|reply| LedgerRequest::Session {
                account,
                token_hash,
                start: false,
                at,
                reply,
            })
            .await
    }

    /// The account with a username, if there is one.
    pub fn account_id(&self, username: &str) -> Option<AccountId> {
        self.0
            .ledger
            .read(|l| l.by_username(username).map(|a| a.id))
    }

    /// The account a session token is logged in to.
    pub fn account_for(&self, token: &str) -> Option<AccountId> {
        let hash = auth::token_hash(token);
        self.0.ledger.read(|l| l.session(&hash))
    }

    pub async fn claim_faucet(&self, account: AccountId) -> Result<(), ExchangeError> {
        let at = now_micros();
        self.0
            .ledger
            .ask(|reply| LedgerRequest::Faucet { account, at, reply })
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
    ) -> Result<Outcome, ExchangeError> {
        self.market(symbol)?
            .send(account, Action::Place(order))
            .await
    }

    pub async fn cancel(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
    ) -> Result<Outcome, ExchangeError> {
        self.market(symbol)?
            .send(account, Action::Cancel(order_id))
            .await
    }

    /// Sends any action, test-only ones included.
    #[cfg(test)]
    pub(crate) async fn send(
        &self,
        symbol: &str,
        account: AccountId,
        action: Action,
    ) -> Result<Outcome, ExchangeError> {
        self.market(symbol)?.send(account, action).await
    }

    /// Reserves funds for an order and stops there: what a crash between
    /// the reservation and the market append leaves behind.
    #[cfg(test)]
    pub(crate) async fn reserve_only(
        &self,
        symbol: &str,
        account: AccountId,
        order_id: OrderId,
        asset: &str,
        amount: rust_decimal::Decimal,
    ) {
        let (symbol, asset) = (symbol.to_string(), asset.to_string());
        self.0
            .ledger
            .ask(|reply| LedgerRequest::Reserve {
                account,
                symbol,
                order_id,
                asset,
                amount,
                at: 1,
                reply,
            })
            .await
            .unwrap();
    }

    #[cfg(test)]
    pub(crate) fn appends(&self, symbol: &str) -> u64 {
        self.0.markets[symbol].appends()
    }

    /// Live subscriptions the embedded store is serving.
    #[cfg(test)]
    pub(crate) fn live_subscribers(&self) -> usize {
        let store = self.0.store.lock().unwrap();
        store.as_ref().map_or(0, |s| s.store().live_subscribers())
    }

    /// Subscriptions the embedded store has opened since it started.
    #[cfg(test)]
    pub(crate) fn subscriptions_opened(&self) -> u64 {
        let store = self.0.store.lock().unwrap();
        store
            .as_ref()
            .map_or(0, |s| s.store().subscriptions_opened())
    }

    /// Every account as the store has it now.
    #[cfg(test)]
    pub(crate) async fn reload_ledger(&self) -> accounts::Ledger {
        super::ledger::load(&self.0.client).await.unwrap()
    }

    pub fn market_spec(&self, symbol: &str) -> Option<orderbook::MarketSpec> {
        self.0.markets.get(symbol).map(|m| m.market.spec.clone())
    }

    /// The event store client, for subscriptions of one's own.
    pub fn client(&self) -> Client {
        self.0.client.clone()
    }

    /// The best levels of a market's book, with running totals.
    pub fn depth(&self, symbol: &str) -> Option<DepthView> {
        let book = self.book(symbol)?;
        let revision = book.events_applied();
        let cached = self
            .0
            .depths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(symbol)
            .cloned();
        if let Some((_, depth)) = cached.filter(|(r, _)| *r == revision) {
            return Some(DepthView::clone(&depth));
        }
        let depth = book.depth(DEPTH_LEVELS);
        let side = |levels: Vec<orderbook::PriceLevel>| {
            let mut total = rust_decimal::Decimal::ZERO;
            levels
                .into_iter()
                .map(|l| {
                    total += l.quantity;
                    LevelView {
                        price: l.price.normalize().to_string(),
                        quantity: l.quantity.normalize().to_string(),
                        cumulative: total.normalize().to_string(),
                    }
                })
                .collect()
        };
        let view = DepthView {
            bids: side(depth.bids),
            asks: side(depth.asks),
        };
        self.0
            .depths
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(symbol.to_string(), (revision, Arc::new(view.clone())));
        Some(view)
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
                trades: tape.trades.iter().rev().take(50).cloned().collect(),
                series: tape
                    .series
                    .iter()
                    .map(|s| {
                        let mut s = s.clone();
                        let skip = s.candles.len().saturating_sub(CANDLES_SENT);
                        s.candles.drain(..skip);
                        s
                    })
                    .collect(),
                ticker: tape.ticker(now_ms()),
                depth,
            })
    }

    /// The book of a market as of its last append.
    pub fn book(&self, symbol: &str) -> Option<Arc<Book>> {
        self.0.markets.get(symbol).map(|m| m.book())
    }

    pub fn markets(&self) -> Vec<MarketView> {
        self.0
            .markets
            .values()
            .map(|m| {
                let s = &m.market.spec;
                MarketView {
                    symbol: s.symbol.clone(),
                    base: s.base.clone(),
                    quote: s.quote.clone(),
                    tick_size: s.tick_size.normalize().to_string(),
                    lot_size: s.lot_size.normalize().to_string(),
                    min_quantity: s.min_quantity.normalize().to_string(),
                }
            })
            .collect()
    }

    /// Everything a trader sees of their own account.
    pub fn view(&self, account: AccountId) -> Option<AccountView> {
        let mut view = self.0.ledger.read(|l| {
            let a = l.account(account)?;
            Some(AccountView {
                username: a.username.clone(),
                balances: a
                    .balances
                    .iter()
                    .map(|(asset, b)| BalanceView {
                        asset: asset.clone(),
                        available: b.available().normalize().to_string(),
                        reserved: b.reserved.normalize().to_string(),
                        total: b.total.normalize().to_string(),
                    })
                    .collect(),
                open_orders: Vec::new(),
                fills: a
                    .trades
                    .iter()
                    .rev()
                    .take(200)
                    .map(|t| FillView {
                        symbol: t.symbol.clone(),
                        trade_id: t.trade_id,
                        order_id: t.order_id,
                        side: format!("{:?}", t.side).to_lowercase(),
                        role: format!("{:?}", t.role).to_lowercase(),
                        price: t.price.normalize().to_string(),
                        quantity: t.quantity.normalize().to_string(),
                        fee: t.fee.normalize().to_string(),
                        fee_asset: t.received_asset.clone(),
                        at_ms: t.at / 1000,
                    })
                    .collect(),
            })
        })?;
        // The account's reservations name its open orders: look just those
        // up in the books instead of scanning every resting order.
        let reserved: Vec<(String, OrderId)> = self.0.ledger.read(|l| {
            l.account(account)
                .map(|a| a.reservations.keys().cloned().collect())
                .unwrap_or_default()
        });
        let mut books: BTreeMap<&str, Arc<Book>> = BTreeMap::new();
        for (symbol, order_id) in &reserved {
            let Some(market) = self.0.markets.get(symbol) else {
                continue;
            };
            let book = books.entry(symbol).or_insert_with(|| market.book());
            // Reserved but not in the book: still on its way, or already
            // done and waiting for settlement. Either way not resting.
            let Some(o) = book.order(*order_id).filter(|o| o.account == account) else {
                continue;
            };
            view.open_orders.push(OpenOrderView {
                symbol: symbol.clone(),
                order_id: o.order_id,
                side: format!("{:?}", o.side).to_lowercase(),
                price: o.price.normalize().to_string(),
                quantity: (o.remaining_quantity + o.filled_quantity)
                    .normalize()
                    .to_string(),
                filled: o.filled_quantity.normalize().to_string(),
                status: match o.status {
                    orderbook::OrderStatus::Open => "open",
                    orderbook::OrderStatus::PartiallyFilled => "partially filled",
                }
                .to_string(),
                at_ms: o.accepted_at / 1000,
            });
        }
        view.open_orders
            .sort_by(|a, b| b.at_ms.cmp(&a.at_ms).then(b.order_id.cmp(&a.order_id)));
        Some(view)
    }
}
