//! The accounts task: the one writer of the account streams.
//!
//! It owns the [`Ledger`] (readers see it through a lock, only this task
//! writes it) and handles requests one at a time: decide on the current
//! state, append the events to the account streams with the expected
//! revision, and only then fold them in. Settlement requests carry market
//! events with their stream revisions; the ledger skips what an account has
//! already settled, and derived event ids let the store drop a retried
//! append, so every trade is settled exactly once. When the task starts (or
//! restarts after a panic) it reloads every account and settles whatever
//! the market streams hold that the accounts do not yet.
//!
//! It also follows the account streams through the live tail, so what
//! another exchange server on the same store wrote (accounts opened,
//! reservations, settlements, sessions) reaches this ledger, and with it
//! the balances and open orders this server shows, without waiting for a
//! conflict.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use accounts::{AccountEvent, Fees, Ledger, ReleaseReason};
use eventstore::Client;
use orderbook::{AccountId, Event, Market, OrderId, Timestamp};
use rust_decimal::Decimal;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::exchange_error::ExchangeError;
use super::live_tail::{Decoded, LiveTail, Streams, TailEvent};
use super::lock::unpoisoned;
use super::streams::{
    ACCOUNTS_STREAM, StreamError, account_event_data, account_stream, append, load_accounts,
    load_market,
};
use super::supervise::supervise;
use crate::api::FeedPosition;

type Reply<T> = oneshot::Sender<Result<T, ExchangeError>>;

/// What the accounts task is asked to do.
pub enum AccountsRequest {
    Open {
        username: String,
        password_hash: String,
        at: Timestamp,
        reply: Reply<AccountId>,
    },
    Session {
        account: AccountId,
        token_hash: String,
        start: bool,
        at: Timestamp,
        reply: Reply<()>,
    },
    Faucet {
        account: AccountId,
        at: Timestamp,
        reply: Reply<()>,
    },
    Reserve {
        account: AccountId,
        symbol: String,
        order_id: OrderId,
        asset: String,
        amount: Decimal,
        at: Timestamp,
        reply: Reply<()>,
    },
    /// Holds more for an open order before an amendment needing `need` in
    /// all goes to the book; answers what was added (zero when it already
    /// held enough).
    ReserveMore {
        account: AccountId,
        symbol: String,
        order_id: OrderId,
        need: Decimal,
        at: Timestamp,
        reply: Reply<Decimal>,
    },
    /// Gives back the reservations of orders that never reached the book,
    /// and what was held more for amendments that never did.
    ReleaseUnplaced {
        symbol: String,
        orders: Vec<(AccountId, OrderId)>,
        amended: Vec<(AccountId, OrderId, Decimal)>,
        at: Timestamp,
        reply: Reply<()>,
    },
    /// At start, before the market's task runs (and after every event of
    /// its stream is settled): releases the reservations of this market's
    /// orders that are not open on its book, and what an open order holds
    /// beyond what it can still cost (`open`: each open order's cost, where
    /// its terms say; an amendment's extra held just before a crash, say).
    Reconcile {
        symbol: String,
        open: HashMap<(AccountId, OrderId), Option<Decimal>>,
        at: Timestamp,
        reply: Reply<()>,
    },
    /// Keeps a refused order (an `OrderRefused`) in its account's history.
    RecordRefusal {
        refusal: AccountEvent,
        reply: Reply<()>,
    },
    /// Settles market events, each with its revision in the market stream.
    Settle {
        symbol: String,
        events: Vec<(u64, Event)>,
        reply: Reply<()>,
    },
}

/// The way into the accounts task, and a read view of its ledger.
#[derive(Clone)]
pub struct AccountsHandle {
    tx: mpsc::Sender<AccountsRequest>,
    state: Arc<RwLock<Ledger>>,
}

impl AccountsHandle {
    /// Starts the supervised accounts task.
    /// `followed_from` is the tail's position before the accounts are read.
    pub fn start(
        client: Client,
        markets: Vec<Market>,
        fees: Fees,
        faucet: accounts::Faucet,
        preloaded: Preloaded,
        tail: LiveTail,
        followed_from: Option<FeedPosition>,
    ) -> AccountsHandle {
        let (tx, rx) = mpsc::channel(1024);
        let state = Arc::new(RwLock::new(Ledger::new()));
        let task = Arc::new(AccountsTask {
            client,
            markets,
            fees,
            faucet,
            state: state.clone(),
            requests: Mutex::new(rx),
            preloaded: std::sync::Mutex::new(Some((preloaded, followed_from))),
            tail,
        });
        supervise("accounts".into(), move || task.clone().run());
        AccountsHandle { tx, state }
    }

    /// Reads the ledger as it is now.
    pub fn read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        let ledger = unpoisoned(self.state.read());
        f(&ledger)
    }

    /// Sends a request and waits for its answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> AccountsRequest,
    ) -> Result<T, ExchangeError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| ExchangeError::Unavailable)?;
        answer.await.map_err(|_| ExchangeError::Unavailable)?
    }
}

struct AccountsTask {
    client: Client,
    markets: Vec<Market>,
    fees: Fees,
    faucet: accounts::Faucet,
    state: Arc<RwLock<Ledger>>,
    requests: Mutex<mpsc::Receiver<AccountsRequest>>,
    /// The market streams as the exchange read them at start, and the
    /// tail's position before that, used once so the first recovery does
    /// not read them again.
    preloaded: std::sync::Mutex<Option<(Preloaded, Option<FeedPosition>)>>,
    tail: LiveTail,
}

/// Every market's events by symbol, read once at start and shared.
pub type Preloaded = BTreeMap<String, Arc<Vec<Event>>>;

impl AccountsTask {
    async fn run(self: Arc<Self>) {
        let mut requests = self.requests.lock().await;
        // Only the first start has them; a restart reads the streams again,
        // following from before it reads them.
        let (preloaded, from) = unpoisoned(self.preloaded.lock())
            .take()
            .unwrap_or_else(|| (Preloaded::new(), self.tail.reached()));
        let mut following = self.tail.reader(Streams::Accounts, from).into_stream();
        self.recover(&preloaded).await;
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => return,
                },
                progress = futures::StreamExt::next(&mut following) => match progress {
                    Some(Ok(progress)) => self.apply_others(&progress.events).await,
                    Some(Err(e)) => {
                        tracing::warn!("following the account streams failed, retrying: {e}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    None => {}
                },
            }
        }
    }

    /// Folds in what another writer appended to the account streams: each
    /// stream's events from the revision the ledger is at, in order (this
    /// task's own come back through the tail too, and are behind it by
    /// then). A gap means the ledger missed something: it is reloaded.
    async fn apply_others(&self, events: &[Arc<TailEvent>]) {
        let mut gap = false;
        {
            let mut ledger = unpoisoned(self.state.write());
            for e in events {
                let Decoded::Account(event) = &e.event else {
                    continue;
                };
                let known = if e.stream == ACCOUNTS_STREAM {
                    ledger.registry_events
                } else {
                    ledger
                        .account(event.account())
                        .map_or(0, |a| a.stream_events)
                };
                if e.revision < known {
                    continue;
                }
                if e.revision > known {
                    gap = true;
                    break;
                }
                ledger.apply(event);
            }
        }
        if gap {
            tracing::warn!("an account stream moved on past this ledger; reloading accounts");
            match load_accounts(&self.client).await {
                Ok(ledger) => *unpoisoned(self.state.write()) = ledger,
                Err(e) => tracing::warn!("reloading accounts failed: {e}"),
            }
        }
    }

    /// Loads the ledger and settles what the market streams hold beyond it,
    /// retrying until the store answers.
    async fn recover(&self, preloaded: &Preloaded) {
        let mut pause = Duration::from_millis(50);
        loop {
            match self.try_recover(preloaded).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!("loading accounts failed, retrying: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn try_recover(&self, preloaded: &Preloaded) -> Result<(), StreamError> {
        let ledger = load_accounts(&self.client).await?;
        *unpoisoned(self.state.write()) = ledger;
        for market in &self.markets {
            let symbol = market.symbol.as_str();
            let events = match preloaded.get(symbol) {
                Some(events) => events.to_vec(),
                None => load_market(&self.client, symbol).await?,
            };
            let events = events
                .into_iter()
                .enumerate()
                .map(|(i, e)| (i as u64, e))
                .collect();
            self.settle(market.symbol.as_str(), events)
                .await
                .map_err(|e| StreamError::Unavailable(e.to_string()))?;
        }
        tracing::info!(
            accounts = self.read(|l| l.accounts().count()),
            "accounts loaded"
        );
        Ok(())
    }

    fn read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        let ledger = unpoisoned(self.state.read());
        f(&ledger)
    }

    async fn handle(&self, request: AccountsRequest) {
        match request {
            AccountsRequest::Open {
                username,
                password_hash,
                at,
                reply,
            } => {
                let result = self
                    .commit(|l| {
                        let e = l.open_account(&username, &password_hash, at)?;
                        let id = e.account();
                        Ok((vec![e], id))
                    })
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::Session {
                account,
                token_hash,
                start,
                at,
                reply,
            } => {
                let result = self
                    .commit(|l| {
                        l.account(account)
                            .ok_or(accounts::AccountError::UnknownAccount)?;
                        let token_hash = token_hash.clone();
                        let e = if start {
                            AccountEvent::SessionStarted {
                                account,
                                token_hash,
                                at,
                            }
                        } else {
                            AccountEvent::SessionEnded {
                                account,
                                token_hash,
                                at,
                            }
                        };
                        Ok((vec![e], ()))
                    })
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::Faucet { account, at, reply } => {
                let faucet = &self.faucet;
                let result = self
                    .commit(|l| Ok((l.claim_faucet(account, faucet, at)?, ())))
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::Reserve {
                account,
                symbol,
                order_id,
                asset,
                amount,
                at,
                reply,
            } => {
                let result = self
                    .commit(|l| {
                        Ok((
                            vec![l.reserve(account, &symbol, order_id, &asset, amount, at)?],
                            (),
                        ))
                    })
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::ReserveMore {
                account,
                symbol,
                order_id,
                need,
                at,
                reply,
            } => {
                let result = self
                    .commit(|l| {
                        let more = l.reserve_more(account, &symbol, order_id, need, at)?;
                        let added = match &more {
                            Some(AccountEvent::ReservationChanged { change, .. }) => *change,
                            _ => Decimal::ZERO,
                        };
                        Ok((Vec::from_iter(more), added))
                    })
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::ReleaseUnplaced {
                symbol,
                orders,
                amended,
                at,
                reply,
            } => {
                let result = self
                    .commit(|l| {
                        let mut events = release_unplaced(l, &symbol, &orders, at);
                        events.extend(amended.iter().filter_map(|&(account, order_id, amount)| {
                            l.unreserve(account, &symbol, order_id, amount, at)
                        }));
                        Ok((events, ()))
                    })
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::Reconcile {
                symbol,
                open,
                at,
                reply,
            } => {
                let result = self
                    .commit(|l| {
                        let orders = unplaced(l, &symbol, &open);
                        let mut events = release_unplaced(l, &symbol, &orders, at);
                        events.extend(excess_held(l, &symbol, &open, at));
                        Ok((events, ()))
                    })
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::RecordRefusal { refusal, reply } => {
                let result = self
                    .commit(|l| {
                        l.account(refusal.account())
                            .ok_or(accounts::AccountError::UnknownAccount)?;
                        Ok((vec![refusal.clone()], ()))
                    })
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::Settle {
                symbol,
                events,
                reply,
            } => {
                let _ = reply.send(self.settle(&symbol, events).await);
            }
        }
    }

    /// Settles market events in revision order and stops at the first that
    /// cannot be written, so no account settles a later revision before an
    /// earlier one (its mark would then pass the missed one for good). The
    /// caller keeps what is unsettled and asks again: the market task
    /// pauses its market meanwhile, and recovery retries until it is done.
    async fn settle(&self, symbol: &str, events: Vec<(u64, Event)>) -> Result<(), ExchangeError> {
        let Some(market) = self.markets.iter().find(|m| m.symbol.as_str() == symbol) else {
            return Err(ExchangeError::UnknownMarket(symbol.to_string()));
        };
        for (revision, event) in &events {
            self.commit(|l| Ok((l.settle(&market.spec, &self.fees, *revision, event), ())))
                .await
                .inspect_err(|e| {
                    tracing::warn!(%symbol, revision, "settlement could not be written yet: {e}")
                })?;
        }
        Ok(())
    }

    /// Decides on the current ledger and appends what was decided; folds in
    /// each stream's events once its append succeeded. When another writer
    /// got there first the ledger is reloaded and the decision made again.
    async fn commit<T>(
        &self,
        mut decide: impl FnMut(&Ledger) -> Result<(Vec<AccountEvent>, T), ExchangeError>,
    ) -> Result<T, ExchangeError> {
        for _ in 0..5 {
            let (events, out) = self.read(&mut decide)?;
            match self.write(events).await {
                Ok(()) => return Ok(out),
                Err(StreamError::WrongExpectedVersion) => {
                    tracing::info!("an account stream moved on elsewhere; reloading accounts");
                    match load_accounts(&self.client).await {
                        Ok(ledger) => *unpoisoned(self.state.write()) = ledger,
                        Err(e) => {
                            tracing::warn!("reloading accounts failed: {e}");
                            return Err(ExchangeError::Unavailable);
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("account append failed: {e}");
                    return Err(ExchangeError::Unavailable);
                }
            }
        }
        Err(ExchangeError::Unavailable)
    }

    /// Appends events grouped by stream, one atomic append per stream.
    async fn write(&self, events: Vec<AccountEvent>) -> Result<(), StreamError> {
        let mut streams: BTreeMap<String, Vec<AccountEvent>> = BTreeMap::new();
        for e in events {
            let stream = match e {
                AccountEvent::AccountOpened { .. } => ACCOUNTS_STREAM.to_string(),
                _ => account_stream(e.account()),
            };
            streams.entry(stream).or_default().push(e);
        }
        for (stream, events) in streams {
            let count = self.read(|l| {
                if stream == ACCOUNTS_STREAM {
                    l.registry_events
                } else {
                    l.account(events[0].account())
                        .map_or(0, |a| a.stream_events)
                }
            });
            let data = events.iter().map(account_event_data).collect();
            append(&self.client, &stream, count, data).await?;
            let mut ledger = unpoisoned(self.state.write());
            for e in &events {
                ledger.apply(e);
            }
        }
        Ok(())
    }
}

/// The orders of a market that hold a reservation but are not on its book.
pub fn unplaced(
    ledger: &Ledger,
    symbol: &str,
    open: &HashMap<(AccountId, OrderId), Option<Decimal>>,
) -> Vec<(AccountId, OrderId)> {
    ledger
        .reservations(symbol)
        .into_iter()
        .filter(|key| !open.contains_key(key))
        .collect()
}

/// Gives back what open orders hold beyond what they can still cost.
fn excess_held(
    ledger: &Ledger,
    symbol: &str,
    open: &HashMap<(AccountId, OrderId), Option<Decimal>>,
    at: Timestamp,
) -> Vec<AccountEvent> {
    let mut keys: Vec<_> = open.iter().collect();
    keys.sort_by_key(|(key, _)| **key);
    keys.into_iter()
        .filter_map(|(&(account, order_id), need)| {
            let r = ledger
                .account(account)?
                .reservations
                .get(&(symbol.to_string(), order_id))?;
            let excess = r.amount - (*need)?;
            ledger.unreserve(account, symbol, order_id, excess, at)
        })
        .collect()
}

/// The releases of orders that never reached the book.
fn release_unplaced(
    ledger: &Ledger,
    symbol: &str,
    orders: &[(AccountId, OrderId)],
    at: Timestamp,
) -> Vec<AccountEvent> {
    orders
        .iter()
        .filter_map(|&(account, order_id)| {
            let reason = ReleaseReason::OrderNotPlaced;
            ledger.release(account, symbol, order_id, reason, None, at)
        })
        .collect()
}
