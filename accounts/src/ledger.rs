//! The ledger's state: every account, and what folding the log does to it.
//!
//! Two kinds of stream fold in. The account streams bring identities,
//! sessions and deposits ([`Ledger::apply`]). The market streams bring
//! everything orders do to money ([`Ledger::apply_market`]): what an open
//! order holds is its open cost, kept from its terms and fills as the
//! book's events say them, and a trade moves both sides' funds with the
//! fees written in it. Nothing about an order is written to an account
//! stream, so the two can never disagree.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use orderbook::{AccountId, Event, MarketSpec, OrderId, Side, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::api_key::KeyRecord;
use crate::cost::{fills, open_cost};
use crate::event::{AccountEvent, TradeSettled};
use crate::fill_log::{FillLog, FillRef, FillSource};

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

/// What one open order holds (resting on its book, or waiting for its
/// trigger), and the terms it is computed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reservation {
    pub symbol: String,
    pub order_id: OrderId,
    pub asset: String,
    /// What is held: always the open cost of the terms below.
    pub amount: Decimal,
    pub side: Side,
    /// The limit price; none for a market order.
    pub price: Option<Decimal>,
    /// What is still open of its base quantity; none when sized by quote.
    pub open_quantity: Option<Decimal>,
    /// What is still unspent of its quote amount; only when sized so.
    pub open_quote: Option<Decimal>,
    /// Held off the book until a trade reaches its trigger.
    pub waiting: bool,
}

impl Reservation {
    /// What these terms hold: a buy its price times its open quantity (or
    /// the quote it may still spend), a sell its open quantity; a market
    /// buy sized by base quantity holds nothing (its cost is checked
    /// against the trades of its one decision).
    fn cost(&self) -> Decimal {
        open_cost(self.side, self.price, self.open_quantity, self.open_quote).unwrap_or_default()
    }
}

/// How many of an account's newest fills it keeps whole; the others are
/// read back from the log when a page of history asks for them.
pub const RECENT_FILLS: usize = 200;

/// One trader's account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub username: String,
    pub password_hash: String,
    pub balances: BTreeMap<String, Balance>,
    /// Open orders by market and order id, with what each holds.
    pub reservations: BTreeMap<(String, OrderId), Reservation>,
    /// Per market, the last market revision a ledger event of a log
    /// written before schema 3 settled into this account (such logs
    /// settled trades with `TradeSettled`; see `Ledger::legacy_settlement`).
    pub settled: BTreeMap<String, u64>,
    /// Per asset, what the faucet has credited so far.
    pub faucet_received: BTreeMap<String, Decimal>,
    /// Hashes of the session tokens that are logged in.
    pub sessions: Vec<String>,
    /// Every fill, in the order the log has them, packed.
    pub fills: FillLog,
    /// The newest [`RECENT_FILLS`] of them whole, oldest first.
    pub recent_fills: VecDeque<TradeSettled>,
    /// The fills a log before schema 3 settled in this account's stream,
    /// whole: their trades in the market streams carry no fees, so they
    /// cannot be read back from there.
    pub settled_fills: Vec<TradeSettled>,
    /// How many events of the account's own stream are folded in.
    pub stream_events: u64,
    /// How many events (of any stream) changed this account: a reader
    /// that kept what it made of the account knows it is still current
    /// while this has not moved.
    pub changes: u64,
}

impl Account {
    /// An account just opened: nothing held, nothing traded.
    pub fn new(id: AccountId, username: String, password_hash: String) -> Account {
        Account {
            id,
            username,
            password_hash,
            balances: BTreeMap::new(),
            reservations: BTreeMap::new(),
            settled: BTreeMap::new(),
            faucet_received: BTreeMap::new(),
            sessions: Vec::new(),
            fills: FillLog::default(),
            recent_fills: VecDeque::new(),
            settled_fills: Vec::new(),
            stream_events: 0,
            changes: 0,
        }
    }

    pub fn balance(&self, asset: &str) -> Balance {
        self.balances.get(asset).copied().unwrap_or_default()
    }

    /// Whether a market event at this revision was settled into this
    /// account by a ledger event (logs before schema 3).
    pub fn has_settled(&self, symbol: &str, revision: u64) -> bool {
        self.settled.get(symbol).is_some_and(|&r| r >= revision)
    }

    /// The fill at `index` of [`Account::fills`] whole (`r` is its place
    /// there), if the account keeps it (one of the newest, or one a log
    /// before schema 3 settled here); the others are in their market
    /// streams.
    pub fn kept_fill(&self, index: usize, r: &FillRef) -> Option<&TradeSettled> {
        if let FillSource::Settled { index } = r.written() {
            return self.settled_fills.get(index);
        }
        let recent_from = self.fills.len() - self.recent_fills.len();
        index
            .checked_sub(recent_from)
            .and_then(|i| self.recent_fills.get(i))
    }

    /// Remembers a fill: where it is written, and the fill whole while it
    /// is among the newest.
    fn add_fill(&mut self, fill: TradeSettled, written: FillSource) {
        self.fills.push(FillRef::new(
            fill.symbol.clone(),
            fill.trade_id,
            fill.order_id,
            fill.at,
            written,
        ));
        if self.recent_fills.len() == RECENT_FILLS {
            self.recent_fills.pop_front();
        }
        self.recent_fills.push_back(fill);
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

    /// Puts an order's new terms in place (or takes it away), keeping the
    /// balance's reserved the sum of what the open orders hold.
    fn set_reservation(&mut self, key: (String, OrderId), new: Option<Reservation>) {
        let old = match &new {
            Some(r) => self.reservations.insert(key, r.clone()),
            None => self.reservations.remove(&key),
        };
        if let Some(old) = old {
            self.balance_mut(&old.asset).reserved -= old.amount;
        }
        if let Some(new) = new {
            self.balance_mut(&new.asset).reserved += new.amount;
        }
    }

    /// Changes an open order's terms with `change`, then holds their cost.
    fn amend_reservation(
        &mut self,
        symbol: &str,
        order_id: OrderId,
        change: impl FnOnce(&mut Reservation),
    ) {
        let key = (symbol.to_string(), order_id);
        let Some(mut r) = self.reservations.get(&key).cloned() else {
            return;
        };
        change(&mut r);
        r.amount = r.cost();
        self.set_reservation(key, Some(r));
    }
}

/// A market event that does not follow the last one folded for its market.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{symbol}: the ledger has folded {folded} events, so it cannot fold revision {revision}")]
pub struct LedgerGap {
    pub symbol: String,
    pub folded: u64,
    pub revision: u64,
}

/// Every account, the fees collected and the deposits made.
#[derive(Clone, Debug, Default)]
pub struct Ledger {
    pub(crate) accounts: BTreeMap<AccountId, Account>,
    pub(crate) by_username: HashMap<String, AccountId>,
    /// Each logged-in token hash: its account and when its session began.
    pub(crate) sessions: HashMap<String, (AccountId, Timestamp)>,
    /// Every API key ever created, by key id, revoked or not.
    pub(crate) api_keys: HashMap<String, KeyRecord>,
    /// Fees collected, per asset.
    pub fees: BTreeMap<String, Decimal>,
    /// Money that came in from outside, per asset.
    pub deposits: BTreeMap<String, Decimal>,
    /// How many accounts the registry stream holds.
    pub registry_events: u64,
    /// Per market, how many of its stream's events are folded in.
    pub(crate) market_events: BTreeMap<String, u64>,
    /// The one copy of each market's and asset's name that every fill
    /// kept shares: millions of fills, a handful of names.
    pub(crate) names: HashSet<Arc<str>>,
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

    /// The API key of this id, revoked or not.
    pub fn api_key(&self, key_id: &str) -> Option<&KeyRecord> {
        self.api_keys.get(key_id)
    }

    /// An account's API keys, revoked ones too, oldest first.
    pub fn api_keys_of(&self, account: AccountId) -> Vec<&KeyRecord> {
        let mut keys: Vec<&KeyRecord> = self
            .api_keys
            .values()
            .filter(|k| k.key.account == account)
            .collect();
        keys.sort_by(|a, b| {
            (a.key.created_at, &a.key.key_id).cmp(&(b.key.created_at, &b.key.key_id))
        });
        keys
    }

    /// How many events of a market's stream are folded in: the revision
    /// the next one must have.
    pub fn market_events(&self, symbol: &str) -> u64 {
        self.market_events.get(symbol).copied().unwrap_or(0)
    }

    /// Folds one account event in. An event for an unknown account is
    /// ignored.
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
                Account::new(*account, username.clone(), password_hash.clone()),
            );
            return;
        }
        let Some(acc) = changed(&mut self.accounts, event.account()) else {
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
            // Logs before schema 3 held and released funds with their own
            // events; what an order holds now follows from the market
            // stream alone, which those logs have too.
            AccountEvent::FundsReserved { .. } => {}
            AccountEvent::FundsReleased {
                symbol,
                market_revision,
                ..
            }
            | AccountEvent::ReservationChanged {
                symbol,
                market_revision,
                ..
            } => acc.mark_settled(symbol, *market_revision),
            // A trade of a log before schema 3: its money moved here (its
            // market event carries no fees).
            AccountEvent::TradeSettled(t) => {
                acc.balance_mut(&t.paid_asset).total -= t.paid;
                acc.balance_mut(&t.received_asset).total += t.received - t.fee;
                acc.mark_settled(&t.symbol, Some(t.market_revision));
                let fill = share_names(&mut self.names, t.clone());
                let index = acc.settled_fills.len();
                acc.settled_fills.push(fill.clone());
                acc.add_fill(fill, FillSource::Settled { index });
                *self.fees.entry(t.received_asset.to_string()).or_default() += t.fee;
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
            AccountEvent::ApiKeyCreated(key) => {
                let record = KeyRecord {
                    key: (**key).clone(),
                    revoked_at: None,
                };
                self.api_keys.insert(key.key_id.clone(), record);
            }
            AccountEvent::ApiKeyRevoked { key_id, at, .. } => {
                if let Some(k) = self.api_keys.get_mut(key_id)
                    && k.key.account == acc.id
                {
                    k.revoked_at.get_or_insert(*at);
                }
            }
        }
    }

    /// Folds in one event of a market's stream, at its revision there.
    /// A revision already folded is passed over (answers `false`); one
    /// past the next is a gap, and an error.
    pub fn apply_market(
        &mut self,
        market: &MarketSpec,
        revision: u64,
        event: &Event,
    ) -> Result<bool, LedgerGap> {
        let symbol = market.symbol.as_str();
        let folded = self.market_events(symbol);
        if revision < folded {
            return Ok(false);
        }
        if revision > folded {
            return Err(LedgerGap {
                symbol: symbol.to_string(),
                folded,
                revision,
            });
        }
        self.market_events.insert(symbol.to_string(), folded + 1);
        self.fold_market(market, revision, event);
        Ok(true)
    }

    fn fold_market(&mut self, market: &MarketSpec, revision: u64, event: &Event) {
        let symbol = market.symbol.as_str();
        match event {
            Event::OrderAccepted(a) => {
                let Some(acc) = changed(&mut self.accounts, a.account) else {
                    return;
                };
                let asset = match a.side {
                    Side::Buy => &market.quote,
                    Side::Sell => &market.base,
                };
                let mut r = Reservation {
                    symbol: symbol.to_string(),
                    order_id: a.order_id,
                    asset: asset.clone(),
                    amount: Decimal::ZERO,
                    side: a.side,
                    price: a.price,
                    open_quantity: a.quantity,
                    open_quote: a.quote_amount,
                    waiting: a.trigger.is_some(),
                };
                r.amount = r.cost();
                acc.set_reservation((symbol.to_string(), a.order_id), Some(r));
            }
            Event::TradeExecuted(t) => {
                let quote = (t.price * t.quantity).normalize();
                for (account, order_id) in [
                    (t.maker_account, t.maker_order_id),
                    (t.taker_account, t.taker_order_id),
                ] {
                    if let Some(acc) = changed(&mut self.accounts, account) {
                        acc.amend_reservation(symbol, order_id, |r| {
                            r.open_quantity = r.open_quantity.map(|q| q - t.quantity);
                            r.open_quote = r.open_quote.map(|q| q - quote);
                        });
                    }
                }
                // A trade written before schema 3 has no fees: its money
                // moved through `TradeSettled` in the accounts.
                if t.fees.is_some() {
                    for fill in fills(market, revision, t) {
                        let Some(acc) = changed(&mut self.accounts, fill.account) else {
                            continue;
                        };
                        acc.balance_mut(&fill.paid_asset).total -= fill.paid;
                        acc.balance_mut(&fill.received_asset).total += fill.received - fill.fee;
                        let fee = self
                            .fees
                            .entry(fill.received_asset.to_string())
                            .or_default();
                        *fee += fill.fee;
                        acc.add_fill(
                            share_names(&mut self.names, fill),
                            FillSource::Trade {
                                market_revision: revision,
                            },
                        );
                    }
                }
            }
            Event::OrderAmended(a) => {
                if let Some(acc) = changed(&mut self.accounts, a.account) {
                    acc.amend_reservation(symbol, a.order_id, |r| {
                        r.price = Some(a.price);
                        r.open_quantity = Some(a.quantity);
                    });
                }
            }
            Event::StopAmended(a) => {
                if let Some(acc) = changed(&mut self.accounts, a.account) {
                    acc.amend_reservation(symbol, a.order_id, |r| {
                        r.price = a.price.or(r.price);
                        r.open_quantity = a.quantity.or(r.open_quantity);
                    });
                }
            }
            Event::OrderFilled(_) | Event::OrderCancelled(_) => {
                let (account, order_id) = match event {
                    Event::OrderFilled(e) => (e.account, e.order_id),
                    Event::OrderCancelled(e) => (e.account, e.order_id),
                    _ => unreachable!("matched just above"),
                };
                if let Some(acc) = changed(&mut self.accounts, account) {
                    acc.set_reservation((symbol.to_string(), order_id), None);
                }
            }
            // A fired stop enters with the terms it held for.
            Event::StopTriggered(t) => {
                if let Some(acc) = changed(&mut self.accounts, t.account) {
                    acc.amend_reservation(symbol, t.order_id, |r| r.waiting = false);
                }
            }
            Event::OrderRejected(_) | Event::StreamFenced(_) | Event::OrderRefused(_) => {}
        }
    }
}

/// The fill with its names replaced by the ledger's shared copies.
pub(crate) fn share_names(names: &mut HashSet<Arc<str>>, mut fill: TradeSettled) -> TradeSettled {
    let mut shared = |name: &Arc<str>| match names.get(&**name) {
        Some(kept) => kept.clone(),
        None => {
            names.insert(name.clone());
            name.clone()
        }
    };
    fill.symbol = shared(&fill.symbol);
    fill.paid_asset = shared(&fill.paid_asset);
    fill.received_asset = shared(&fill.received_asset);
    fill
}

/// The account to change, counted as changed: every change to an account
/// goes through here, so `Account::changes` misses none.
fn changed(accounts: &mut BTreeMap<AccountId, Account>, id: AccountId) -> Option<&mut Account> {
    let acc = accounts.get_mut(&id)?;
    acc.changes += 1;
    Some(acc)
}
