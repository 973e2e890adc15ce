//! The accounts task: the one writer of the account streams, and the
//! keeper of the ledger every other part reads.
//!
//! It handles requests one at a time (accounts opened, sessions, the
//! faucet, API keys): decide on the current
//! ledger, append the events to the account streams with the expected
//! revision, and only then fold them in. Orders never come here: what they
//! hold and what their trades move is the fold of the market streams,
//! which each market's task folds into the same ledger as it decides (see
//! `market_task`).
//!
//! It also follows every account and market stream through the live tail,
//! in the store's order, so what another exchange server on the same store
//! wrote reaches this ledger (and with it the balances and open orders
//! this server shows) as soon as the tail delivers it. When the task
//! starts it folds the whole log; a trade of a log written before fees
//! were in trades whose settlement a crash took away is settled then.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex as StdMutex, RwLock};
use std::time::Duration;

use accounts::{AccountEvent, Fees, Ledger};
use eventstore::Client;
use orderbook::{AccountId, Event, Market, MarketSpec, Timestamp};
use rust_decimal::Decimal;
use tokio::sync::{Mutex, mpsc, oneshot};

use super::exchange_error::ExchangeError;
use super::live_tail::{LiveTail, Streams, TailEvent};
use super::lock::unpoisoned;
use super::preloaded::Preloaded;
use super::streams::{
    ACCOUNTS_STREAM, Decoded, StreamError, account_event_data, account_stream, append, load_ledger,
    market_stream,
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
    CreateKey {
        key: accounts::api_key::ApiKey,
        reply: Reply<()>,
    },
    RevokeKey {
        account: AccountId,
        key_id: String,
        at: Timestamp,
        reply: Reply<()>,
    },
    /// Answered once every request sent before it has been: the task
    /// takes requests one at a time, in order.
    Barrier { reply: Reply<()> },
}

/// What batches on their way to the store made available, per account and
/// asset. A market's decisions may spend what its own earlier decisions
/// made available (its stream orders them), but not what another market's
/// unwritten batch did: if that batch never lands, it was never there.
#[derive(Default)]
pub struct InFlight(StdMutex<HashMap<(AccountId, String), Decimal>>);

impl InFlight {
    /// What is not to be spent yet of the account's `asset`.
    pub fn credit(&self, account: AccountId, asset: &str) -> Decimal {
        let credits = unpoisoned(self.0.lock());
        credits
            .get(&(account, asset.to_string()))
            .copied()
            .unwrap_or_default()
    }

    /// A batch is on its way with these credits.
    pub fn add(&self, batch: &HashMap<(AccountId, String), Decimal>) {
        let mut credits = unpoisoned(self.0.lock());
        for (key, amount) in batch {
            *credits.entry(key.clone()).or_default() += amount;
        }
    }

    /// A batch's fate is known (in the stream, or not): its credits are
    /// the ledger's business again.
    pub fn settle(&self, batch: &HashMap<(AccountId, String), Decimal>) {
        let mut credits = unpoisoned(self.0.lock());
        for (key, amount) in batch {
            if let Some(c) = credits.get_mut(key) {
                *c -= amount;
                if *c <= Decimal::ZERO {
                    credits.remove(key);
                }
            }
        }
    }
}

/// The way into the accounts task, and the ledger.
#[derive(Clone)]
pub struct AccountsHandle {
    tx: mpsc::Sender<AccountsRequest>,
    state: Arc<RwLock<Ledger>>,
    in_flight: Arc<InFlight>,
    client: Client,
    markets: Arc<Vec<Market>>,
    /// True once the task has folded the log at its start.
    loaded: tokio::sync::watch::Receiver<bool>,
    /// How far the task has read each market stream, in the store's order
    /// (see [`AccountsHandle::read_past`]).
    read: tokio::sync::watch::Receiver<HashMap<String, u64>>,
}

impl AccountsHandle {
    /// Starts the supervised accounts task on the ledger folded from the
    /// whole log (`preloaded`: the log as read at start; the task follows
    /// the tail from where that read ended).
    pub fn start(
        client: Client,
        markets: Vec<Market>,
        (fees, faucet): (Fees, accounts::Faucet),
        preloaded: Arc<Preloaded>,
        tail: LiveTail,
    ) -> AccountsHandle {
        let (tx, rx) = mpsc::channel(1024);
        let state = Arc::new(RwLock::new(Ledger::new()));
        let markets = Arc::new(markets);
        let (loaded_tx, loaded) = tokio::sync::watch::channel(false);
        let (read_tx, read) = tokio::sync::watch::channel(HashMap::new());
        let handle = AccountsHandle {
            tx,
            state,
            in_flight: Arc::default(),
            client: client.clone(),
            markets: markets.clone(),
            loaded,
            read,
        };
        let task = Arc::new(AccountsTask {
            loaded: loaded_tx,
            read: read_tx,
            client,
            ledger: handle.clone(),
            fees,
            faucet,
            requests: Mutex::new(rx),
            preloaded: std::sync::Mutex::new(Some(preloaded)),
            tail,
            specs: markets
                .iter()
                .map(|m| (market_stream(m.symbol.as_str()), m.spec.clone()))
                .collect(),
        });
        supervise("accounts".into(), move || task.clone().run());
        handle
    }

    /// Waits until the task has folded the log at its start.
    pub async fn loaded(&self) {
        let mut loaded = self.loaded.clone();
        let _ = loaded.wait_for(|l| *l).await;
    }

    /// Waits until the task has read each of these market streams (by
    /// stream name) up to the revision given. It reads the log in the
    /// store's order, so the ledger then holds every event the store had
    /// before those: what a new leader waits for after fencing the
    /// streams, instead of folding the whole log again.
    pub async fn read_past(&self, revisions: &[(String, u64)]) {
        let mut read = self.read.clone();
        let _ = read
            .wait_for(|read| {
                let past = |(stream, revision): &(String, u64)| {
                    read.get(stream).is_some_and(|r| r >= revision)
                };
                revisions.iter().all(past)
            })
            .await;
    }

    /// Reads the ledger as it is now.
    pub fn read<T>(&self, f: impl FnOnce(&Ledger) -> T) -> T {
        let ledger = unpoisoned(self.state.read());
        f(&ledger)
    }

    /// Changes the ledger, holding it throughout (a market's task decides
    /// a batch so).
    pub fn write<T>(&self, f: impl FnOnce(&mut Ledger) -> T) -> T {
        let mut ledger = unpoisoned(self.state.write());
        f(&mut ledger)
    }

    /// What batches on their way to the store credited.
    pub fn in_flight(&self) -> Arc<InFlight> {
        self.in_flight.clone()
    }

    /// Folds one market event in at its revision (once; one past the next
    /// is left for the market's task to fill from the stream).
    pub fn fold_market(&self, market: &MarketSpec, revision: u64, event: &Event) {
        if let Err(gap) = self.write(|l| l.apply_market(market, revision, event)) {
            tracing::debug!("{gap}; the market's task reads what is missing");
        }
    }

    /// Folds the whole log again, retrying until the store answers: after
    /// a batch that was folded in never reached its stream.
    pub async fn reload(&self) {
        let mut pause = Duration::from_millis(50);
        loop {
            match load_ledger(&self.client, &self.markets).await {
                Ok(ledger) => {
                    *unpoisoned(self.state.write()) = ledger;
                    return;
                }
                Err(e) => {
                    tracing::warn!("loading the ledger failed, retrying: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Waits until every request sent before this one has been answered
    /// (written, or refused).
    pub async fn barrier(&self) {
        let _ = self.ask(|reply| AccountsRequest::Barrier { reply }).await;
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
    loaded: tokio::sync::watch::Sender<bool>,
    read: tokio::sync::watch::Sender<HashMap<String, u64>>,
    client: Client,
    ledger: AccountsHandle,
    fees: Fees,
    faucet: accounts::Faucet,
    requests: Mutex<mpsc::Receiver<AccountsRequest>>,
    /// The log as the exchange read it at start, used once so the first
    /// start does not read it again.
    preloaded: std::sync::Mutex<Option<Arc<Preloaded>>>,
    tail: LiveTail,
    /// Each market's spec by its stream's name, for folding what the tail
    /// delivers.
    specs: HashMap<String, MarketSpec>,
}

impl AccountsTask {
    async fn run(self: Arc<Self>) {
        let mut requests = self.requests.lock().await;
        // Only the first start has the log read; a restart reads it again.
        let preloaded = unpoisoned(self.preloaded.lock()).take();
        let from = self.recover(preloaded).await;
        let mut following = self
            .tail
            .reader(Streams::MarketsAndAccounts, from)
            .into_stream();
        self.loaded.send_replace(true);
        loop {
            tokio::select! {
                request = requests.recv() => match request {
                    Some(request) => self.handle(request).await,
                    None => return,
                },
                progress = futures::StreamExt::next(&mut following) => match progress {
                    Some(Ok(progress)) => {
                        self.apply_others(&progress.events).await;
                        self.mark_read(&progress.events);
                    }
                    Some(Err(e)) => {
                        tracing::warn!("following the account streams failed, retrying: {e}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    None => {}
                },
            }
        }
    }

    /// Notes how far the market streams have been read: up to the newest of
    /// `events`' of each.
    fn mark_read(&self, events: &[Arc<TailEvent>]) {
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for e in events.iter().filter(|e| self.specs.contains_key(&e.stream)) {
            let revision = newest.entry(&e.stream).or_insert(e.revision);
            *revision = e.revision.max(*revision);
        }
        if newest.is_empty() {
            return;
        }
        self.read.send_modify(|read| {
            for (stream, revision) in newest {
                let known = read.entry(stream.to_string()).or_insert(revision);
                *known = revision.max(*known);
            }
        });
    }

    /// Folds in what the tail delivers, in the store's order: each stream's
    /// events from the revision the ledger is at (what this server wrote
    /// is folded already and passed over). A gap in an account stream
    /// means the ledger missed something: the log is folded again.
    async fn apply_others(&self, events: &[Arc<TailEvent>]) {
        let mut gap = false;
        self.ledger.write(|ledger| {
            for e in events {
                match &e.event {
                    Decoded::Account(event) => {
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
                    Decoded::Book(event) => {
                        if let Some(spec) = self.specs.get(&e.stream)
                            && ledger.apply_market(spec, e.revision, event).is_err()
                        {
                            gap = true;
                            break;
                        }
                    }
                }
            }
        });
        if gap {
            tracing::warn!("a stream moved on past this ledger; folding the log again");
            self.ledger.reload().await;
        }
    }

    /// Folds the whole log (`preloaded`, or read now) into the ledger and
    /// settles what a log written before fees were in trades left
    /// unsettled, retrying until the store answers: the position the
    /// ledger is the fold of, to follow the tail from.
    async fn recover(&self, mut preloaded: Option<Arc<Preloaded>>) -> Option<FeedPosition> {
        let mut pause = Duration::from_millis(50);
        loop {
            let recovered = async {
                let log = match preloaded.take() {
                    Some(log) => log,
                    None => Arc::new(Preloaded::read(&self.client).await?),
                };
                self.try_recover(&log).await?;
                self.mark_read(&log.events);
                Ok::<_, StreamError>(log.position)
            };
            match recovered.await {
                Ok(position) => return position,
                Err(e) => {
                    tracing::warn!("loading accounts failed, retrying: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn try_recover(&self, log: &Preloaded) -> Result<(), StreamError> {
        let markets = self.ledger.markets.clone();
        let ledger = log.ledger(&markets)?;
        let mut due = Vec::new();
        for market in markets.iter() {
            for (revision, e) in log.market(market) {
                due.extend(ledger.legacy_settlement(&market.spec, &self.fees, revision, e));
            }
        }
        *unpoisoned(self.ledger.state.write()) = ledger;
        if !due.is_empty() {
            tracing::info!(
                settlements = due.len(),
                "settling trades a crash left unsettled (a log from before fees were in trades)"
            );
            self.commit(|_| Ok((due.clone(), ())))
                .await
                .map_err(|e| StreamError::Unavailable(e.to_string()))?;
        }
        tracing::info!(
            accounts = self.ledger.read(|l| l.accounts().count()),
            "accounts loaded"
        );
        Ok(())
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
            AccountsRequest::CreateKey { key, reply } => {
                let result = self
                    .commit(|l| Ok((vec![l.create_api_key(key.clone())?], ())))
                    .await;
                let _ = reply.send(result);
            }
            AccountsRequest::Barrier { reply } => {
                let _ = reply.send(Ok(()));
            }
            AccountsRequest::RevokeKey {
                account,
                key_id,
                at,
                reply,
            } => {
                let result = self
                    .commit(|l| {
                        let revoked = l.revoke_api_key(account, &key_id, at)?;
                        Ok((revoked.into_iter().collect(), ()))
                    })
                    .await;
                let _ = reply.send(result);
            }
        }
    }

    /// Decides on the current ledger and appends what was decided; folds in
    /// each stream's events once its append succeeded. When another writer
    /// got there first the ledger is reloaded and the decision made again.
    async fn commit<T>(
        &self,
        mut decide: impl FnMut(&Ledger) -> Result<(Vec<AccountEvent>, T), ExchangeError>,
    ) -> Result<T, ExchangeError> {
        for _ in 0..5 {
            let (events, out) = self.ledger.read(&mut decide)?;
            match self.write(events).await {
                Ok(()) => return Ok(out),
                Err(StreamError::WrongExpectedVersion) => {
                    tracing::info!("an account stream moved on elsewhere; reloading accounts");
                    self.ledger.reload().await;
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
            let count = self.ledger.read(|l| {
                if stream == ACCOUNTS_STREAM {
                    l.registry_events
                } else {
                    l.account(events[0].account())
                        .map_or(0, |a| a.stream_events)
                }
            });
            let data = events.iter().map(account_event_data).collect();
            append(&self.client, &stream, count, data).await?;
            self.ledger.write(|ledger| {
                for e in &events {
                    ledger.apply(e);
                }
            });
        }
        Ok(())
    }
}
