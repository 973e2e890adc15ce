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
use super::ledger_fold::{LedgerFold, fold_in_log_order, specs_by_stream};
use super::live_tail::{LiveTail, Streams, TailEvent};
use super::lock::unpoisoned;
use super::log_read::{LOG_PAGE, LogRead};
use super::start_snapshots;
use super::streams::{ACCOUNTS_STREAM, StreamError, account_event_data, account_stream, append};
use super::supervise::supervise;
use crate::api::FeedPosition;

type Reply<T> = oneshot::Sender<Result<T, ExchangeError>>;

/// The ledger folded from the whole log, and where that read ended.
pub type Folded = (LedgerFold, Option<FeedPosition>);

/// Folds the ledger alone from the newest start snapshot and the log
/// after it (what a restarted accounts task does, and one whose ledger
/// folded a batch that never reached the log; start folds the ledger
/// beside the other read models in its one read).
async fn fold_ledger(
    client: &Client,
    specs: HashMap<String, MarketSpec>,
) -> Result<Folded, StreamError> {
    let mut fold = LedgerFold::new(specs);
    let from = start_snapshots::newest_ledger(client).await?;
    let after = from.map(|(ledger, announced)| {
        fold.ledger = ledger;
        announced.taken.covers
    });
    let mut read = LogRead::new(LOG_PAGE).after(after);
    let ledger = read.fold(fold);
    read.run(client).await?;
    ledger.finish().await
}

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
    /// whole log at start (`folded`; the task follows the tail from where
    /// that read ended).
    pub fn start(
        client: Client,
        markets: Vec<Market>,
        (fees, faucet): (Fees, accounts::Faucet),
        folded: Folded,
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
            folded: std::sync::Mutex::new(Some(folded)),
            tail,
            specs: specs_by_stream(&markets),
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

    /// Folds the ledger again (from the newest start snapshot and the log
    /// after it), retrying until the store answers: after a batch that was
    /// folded in never reached its stream.
    pub async fn reload(&self) {
        let mut pause = Duration::from_millis(50);
        loop {
            match fold_ledger(&self.client, specs_by_stream(&self.markets)).await {
                Ok((fold, _)) => {
                    *unpoisoned(self.state.write()) = fold.ledger;
                    return;
                }
                Err(e) => {
                    tracing::warn!("loading the ledger failed, retrying: {e}");
                    tokio::time::sleep(pause).await;
                    // At most a second apart: a leader taking over waits
                    // on this fold, and a flaky link fails many tries.
                    pause = (pause * 2).min(Duration::from_secs(1));
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
    /// The ledger folded from the log as the exchange read it at start,
    /// taken once so the first start does not read it again.
    folded: std::sync::Mutex<Option<Folded>>,
    tail: LiveTail,
    /// Each market's spec by its stream's name, for folding what the tail
    /// delivers.
    specs: HashMap<String, MarketSpec>,
}

impl AccountsTask {
    async fn run(self: Arc<Self>) {
        let mut requests = self.requests.lock().await;
        // Only the first start has the log read; a restart reads it again.
        let folded = unpoisoned(self.folded.lock()).take();
        let from = self.recover(folded).await;
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
                        let read = progress.events.iter();
                        self.mark_read(read.map(|e| (e.stream.as_str(), e.revision)));
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

    /// Notes how far the market streams have been read: up to the newest
    /// revision given of each (those of other streams are passed over).
    fn mark_read<'a>(&self, revisions: impl IntoIterator<Item = (&'a str, u64)>) {
        self.read.send_if_modified(|read| {
            let mut moved = false;
            for (stream, revision) in revisions {
                if !self.specs.contains_key(stream) {
                    continue;
                }
                match read.get_mut(stream) {
                    Some(known) if *known >= revision => continue,
                    Some(known) => *known = revision,
                    None => {
                        read.insert(stream.to_string(), revision);
                    }
                }
                moved = true;
            }
            moved
        });
    }

    /// Folds in what the tail delivers, in the store's order, as start
    /// folded the log (what this server wrote is folded already and passed
    /// over). A gap means the ledger missed something: the log is folded
    /// again.
    async fn apply_others(&self, events: &[Arc<TailEvent>]) {
        let folded = self
            .ledger
            .write(|ledger| fold_in_log_order(ledger, &self.specs, events));
        if let Err(gap) = folded {
            tracing::warn!("a stream moved on past this ledger ({gap}); folding the log again");
            self.ledger.reload().await;
        }
    }

    /// Takes the ledger folded from the whole log (`folded` at start, or
    /// read now) and settles what a log written before fees were in
    /// trades left unsettled, retrying until the store answers: the
    /// position the ledger is the fold of, to follow the tail from.
    async fn recover(&self, mut folded: Option<Folded>) -> Option<FeedPosition> {
        let mut pause = Duration::from_millis(50);
        loop {
            let recovered = async {
                let (fold, position) = match folded.take() {
                    Some(folded) => folded,
                    None => fold_ledger(&self.client, self.specs.clone()).await?,
                };
                self.try_recover(fold).await?;
                Ok::<_, StreamError>(position)
            };
            match recovered.await {
                Ok(position) => return position,
                Err(e) => {
                    tracing::warn!("loading accounts failed, retrying: {e}");
                    tokio::time::sleep(pause).await;
                    // At most a second apart: a leader taking over waits
                    // on this fold, and a flaky link fails many tries.
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    async fn try_recover(&self, fold: LedgerFold) -> Result<(), StreamError> {
        let due = fold.legacy_settlements(&self.ledger.markets, &self.fees);
        self.mark_read(fold.read());
        *unpoisoned(self.ledger.state.write()) = fold.ledger;
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
