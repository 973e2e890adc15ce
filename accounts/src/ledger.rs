//! The ledger's state: every account, and what folding account events does.

use std::collections::{BTreeMap, HashMap};

use orderbook::{AccountId, OrderId, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::event::{AccountEvent, TradeSettled};

/// One asset in one account. Available is `total - reserved`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub total: Decimal,
    pub reserved: Decimal,
}

impl Balance {
    pub fn available(&self) -> Decimal {
        self.total - self.reserved
    }
}

/// Funds held for one open order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub symbol: String,
    pub order_id: OrderId,
    pub asset: String,
    /// What is still held.
    pub amount: Decimal,
}

/// One trader's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub username: String,
    pub password_hash: String,
    pub balances: BTreeMap<String, Balance>,
    /// Open reservations by market and order id.
    pub reservations: BTreeMap<(String, OrderId), Reservation>,
    /// Per market, the last market stream revision settled into this account.
    pub settled: BTreeMap<String, u64>,
    /// Per asset, what the faucet has credited so far.
    pub faucet_received: BTreeMap<String, Decimal>,
    /// Hashes of the session tokens that are logged in.
    pub sessions: Vec<String>,
    /// Every fill, oldest first.
    pub trades: Vec<TradeSettled>,
    /// How many events of the account's own stream are folded in.
    pub stream_events: u64,
}

impl Account {
    pub fn balance(&self, asset: &str) -> Balance {
        self.balances.get(asset).copied().unwrap_or_default()
    }

    /// Whether a market event at this revision is already in this account.
    pub fn has_settled(&self, symbol: &str, revision: u64) -> bool {
        self.settled.get(symbol).is_some_and(|&r| r >= revision)
    }

    fn mark_settled(&mut self, symbol: &str, revision: Option<u64>) {
        if let Some(revision) = revision {
            let r = self.settled.entry(symbol.to_string()).or_insert(revision);
            *r = (*r).max(revision);
        }
    }

    fn balance_mut(&mut self, asset: &str) -> &mut Balance {
        self.balances.entry(asset.to_string()).or_default()
    }
}

/// Every account, the fees collected and the deposits made.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub(crate) accounts: BTreeMap<AccountId, Account>,
    pub(crate) by_username: HashMap<String, AccountId>,
    /// Each logged-in token hash: its account and when its session began.
    pub(crate) sessions: HashMap<String, (AccountId, Timestamp)>,
    /// Fees collected, per asset.
    pub fees: BTreeMap<String, Decimal>,
    /// Money that came in from outside, per asset.
    pub deposits: BTreeMap<String, Decimal>,
    /// Per market, the highest order id any reservation named: a restarted
    /// book must not hand out an id whose reservation already exists.
    pub(crate) highest_order_id: HashMap<String, OrderId>,
    /// How many accounts the registry stream holds.
    pub registry_events: u64,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    pub fn account(&self, id: AccountId) -> Option<&Account> {
        self.accounts.get(&id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn by_username(&self, username: &str) -> Option<&Account> {
        let id = self.by_username.get(&username.to_lowercase())?;
        self.accounts.get(id)
    }

    /// The account a session token hash is logged in to.
    pub fn session(&self, token_hash: &str) -> Option<AccountId> {
        self.sessions.get(token_hash).map(|s| s.0)
    }

    /// The account a session token hash is logged in to, and when that
    /// session began (so the shell can end sessions that are too old).
    pub fn session_since(&self, token_hash: &str) -> Option<(AccountId, Timestamp)> {
        self.sessions.get(token_hash).copied()
    }

    pub fn highest_order_id(&self, symbol: &str) -> OrderId {
        self.highest_order_id.get(symbol).copied().unwrap_or(0)
    }

    /// Folds one event in. Events come from the decide methods or the log of
    /// earlier decisions; an event for an unknown account is ignored.
    pub fn apply(&mut self, event: &AccountEvent) {
        if let AccountEvent::AccountOpened {
            account,
            username,
            password_hash,
            ..
        } = event
        {
            self.registry_events += 1;
            self.by_username.insert(username.to_lowercase(), *account);
            self.accounts.insert(
                *account,
                Account {
                    id: *account,
                    username: username.clone(),
                    password_hash: password_hash.clone(),
                    balances: BTreeMap::new(),
                    reservations: BTreeMap::new(),
                    settled: BTreeMap::new(),
                    faucet_received: BTreeMap::new(),
                    sessions: Vec::new(),
                    trades: Vec::new(),
                    stream_events: 0,
                },
            );
            return;
        }
        let Some(acc) = self.accounts.get_mut(&event.account()) else {
            return;
        };
        acc.stream_events += 1;
        match event {
            AccountEvent::AccountOpened { .. } => {}
            AccountEvent::FundsDeposited { asset, amount, .. } => {
                acc.balance_mut(asset).total += amount;
                *acc.faucet_received.entry(asset.clone()).or_default() += amount;
                *self.deposits.entry(asset.clone()).or_default() += amount;
            }
            AccountEvent::FundsReserved {
                symbol,
                order_id,
                asset,
                amount,
                ..
            } => {
                acc.balance_mut(asset).reserved += amount;
                acc.reservations.insert(
                    (symbol.clone(), *order_id),
                    Reservation {
                        symbol: symbol.clone(),
                        order_id: *order_id,
                        asset: asset.clone(),
                        amount: *amount,
                    },
                );
                let high = self.highest_order_id.entry(symbol.clone()).or_default();
                *high = (*high).max(*order_id);
            }
            AccountEvent::FundsReleased {
                symbol,
                order_id,
                asset,
                amount,
                market_revision,
                ..
            } => {
                acc.balance_mut(asset).reserved -= amount;
                acc.reservations.remove(&(symbol.clone(), *order_id));
                acc.mark_settled(symbol, *market_revision);
            }
            AccountEvent::ReservationChanged {
                symbol,
                order_id,
                asset,
                change,
                market_revision,
                ..
            } => {
                acc.balance_mut(asset).reserved += change;
                if let Some(r) = acc.reservations.get_mut(&(symbol.clone(), *order_id)) {
                    r.amount += change;
                }
                acc.mark_settled(symbol, *market_revision);
            }
            AccountEvent::TradeSettled(t) => {
                let paid = acc.balance_mut(&t.paid_asset);
                paid.total -= t.paid;
                paid.reserved -= t.paid;
                acc.balance_mut(&t.received_asset).total += t.received - t.fee;
                let key = (t.symbol.clone(), t.order_id);
                if let Some(r) = acc.reservations.get_mut(&key) {
                    r.amount -= t.paid;
                }
                acc.mark_settled(&t.symbol, Some(t.market_revision));
                acc.trades.push(t.clone());
                *self.fees.entry(t.received_asset.clone()).or_default() += t.fee;
            }
            // History only: nothing was held, nothing moves.
            AccountEvent::OrderRefused { .. } => {}
            AccountEvent::SessionStarted { token_hash, at, .. } => {
                acc.sessions.push(token_hash.clone());
                self.sessions.insert(token_hash.clone(), (acc.id, *at));
            }
            AccountEvent::SessionEnded { token_hash, .. } => {
                acc.sessions.retain(|t| t != token_hash);
                self.sessions.remove(token_hash);
            }
        }
    }

    /// The reservations of one market, for reconciling with its book.
    pub fn reservations(&self, symbol: &str) -> Vec<(AccountId, OrderId)> {
        self.accounts
            .values()
            .flat_map(|a| {
                a.reservations
                    .values()
                    .filter(move |r| r.symbol == symbol)
                    .map(move |r| (a.id, r.order_id))
            })
            .collect()
    }
}
