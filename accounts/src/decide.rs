//! Decisions: what a request does to the ledger, as events, without
//! changing it.

use orderbook::{AccountId, Event, MarketSpec, OrderId, Side, Timestamp};
use rust_decimal::Decimal;

use crate::config::{Faucet, Fees, Role};
use crate::event::{AccountEvent, DepositSource, ReleaseReason, TradeSettled};
use crate::ledger::Ledger;

/// Why a request was refused, in words a trader can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("usernames are 3 to 32 letters, digits, '.', '_' or '-'")]
    InvalidUsername,
    #[error("that username is taken")]
    UsernameTaken,
    #[error("passwords are 8 to 128 characters")]
    InvalidPassword,
    #[error("no such account")]
    UnknownAccount,
    #[error("insufficient {asset}: {available} available, {needed} needed")]
    InsufficientFunds {
        asset: String,
        available: Decimal,
        needed: Decimal,
    },
    #[error("order {0} holds no reservation: it is not open")]
    UnknownOrder(OrderId),
    #[error("the faucet limit for this account is reached")]
    FaucetLimitReached,
}

/// Checks a username's shape (uniqueness is the ledger's business).
pub fn validate_username(username: &str) -> Result<(), AccountError> {
    let ok_len = (3..=32).contains(&username.chars().count());
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(AccountError::InvalidUsername)
    }
}

pub fn validate_password(password: &str) -> Result<(), AccountError> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(AccountError::InvalidPassword)
    }
}

impl Ledger {
    /// Opens an account with the next id. The password is already hashed.
    pub fn open_account(
        &self,
        username: &str,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<AccountEvent, AccountError> {
        validate_username(username)?;
        if self.by_username(username).is_some() {
            return Err(AccountError::UsernameTaken);
        }
        Ok(AccountEvent::AccountOpened {
            account: self.registry_events + 1,
            username: username.to_string(),
            password_hash: password_hash.to_string(),
            at,
        })
    }

    /// Credits one faucet claim: each asset's grant, cut to what is left of
    /// its limit. Refused once nothing is left of any.
    pub fn claim_faucet(
        &self,
        account: AccountId,
        faucet: &Faucet,
        at: Timestamp,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        let acc = self.account(account).ok_or(AccountError::UnknownAccount)?;
        let events: Vec<AccountEvent> = faucet
            .iter()
            .filter_map(|(asset, grant)| {
                let received = acc.faucet_received.get(asset).copied().unwrap_or_default();
                let amount = grant.amount.min(grant.limit - received);
                (amount > Decimal::ZERO).then(|| AccountEvent::FundsDeposited {
                    account,
                    asset: asset.clone(),
                    amount,
                    source: DepositSource::Faucet,
                    at,
                })
            })
            .collect();
        if events.is_empty() {
            return Err(AccountError::FaucetLimitReached);
        }
        Ok(events)
    }

    /// Holds funds for an order before it goes to the book.
    pub fn reserve(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
        asset: &str,
        amount: Decimal,
        at: Timestamp,
    ) -> Result<AccountEvent, AccountError> {
        let acc = self.account(account).ok_or(AccountError::UnknownAccount)?;
        let available = acc.balance(asset).available();
        if amount > available {
            return Err(AccountError::InsufficientFunds {
                asset: asset.to_string(),
                available,
                needed: amount,
            });
        }
        Ok(AccountEvent::FundsReserved {
            account,
            symbol: symbol.to_string(),
            order_id,
            asset: asset.to_string(),
            amount,
            at,
        })
    }

    /// Holds more for an open order before an amendment that needs `need`
    /// in all (see [`amend_cost`]) goes to the book; `None` when its
    /// reservation already holds that much (what it holds beyond is given
    /// back when the amendment is settled).
    pub fn reserve_more(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
        need: Decimal,
        at: Timestamp,
    ) -> Result<Option<AccountEvent>, AccountError> {
        let acc = self.account(account).ok_or(AccountError::UnknownAccount)?;
        let Some(r) = acc.reservations.get(&(symbol.to_string(), order_id)) else {
            return Err(AccountError::UnknownOrder(order_id));
        };
        let more = need - r.amount;
        if more <= Decimal::ZERO {
            return Ok(None);
        }
        let available = acc.balance(&r.asset).available();
        if more > available {
            return Err(AccountError::InsufficientFunds {
                asset: r.asset.clone(),
                available,
                needed: more,
            });
        }
        Ok(Some(AccountEvent::ReservationChanged {
            account,
            symbol: symbol.to_string(),
            order_id,
            asset: r.asset.clone(),
            change: more,
            market_revision: None,
            at,
        }))
    }

    /// Takes back what [`Ledger::reserve_more`] added for an amendment that
    /// never reached the book.
    pub fn unreserve(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
        amount: Decimal,
        at: Timestamp,
    ) -> Option<AccountEvent> {
        let acc = self.account(account)?;
        let r = acc.reservations.get(&(symbol.to_string(), order_id))?;
        let amount = amount.min(r.amount);
        (amount > Decimal::ZERO).then(|| AccountEvent::ReservationChanged {
            account,
            symbol: symbol.to_string(),
            order_id,
            asset: r.asset.clone(),
            change: -amount,
            market_revision: None,
            at,
        })
    }

    /// Gives back what is left of an order's reservation, if anything is.
    pub fn release(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
        reason: ReleaseReason,
        market_revision: Option<u64>,
        at: Timestamp,
    ) -> Option<AccountEvent> {
        let acc = self.account(account)?;
        let r = acc.reservations.get(&(symbol.to_string(), order_id))?;
        Some(AccountEvent::FundsReleased {
            account,
            symbol: symbol.to_string(),
            order_id,
            asset: r.asset.clone(),
            amount: r.amount,
            reason,
            market_revision,
            at,
        })
    }

    /// What one market event (at its stream revision) does to the accounts
    /// in it: a trade settles both sides, a fill or cancel releases what is
    /// left of the order's reservation. Accounts that already settled this
    /// revision get nothing, so a replay after a crash changes nothing twice.
    pub fn settle(
        &self,
        market: &MarketSpec,
        fees: &Fees,
        revision: u64,
        event: &Event,
    ) -> Vec<AccountEvent> {
        let symbol = market.symbol.as_str();
        let fresh = |account: AccountId| {
            self.account(account)
                .is_some_and(|a| !a.has_settled(symbol, revision))
        };
        match event {
            Event::TradeExecuted(t) => {
                let quote_amount = (t.price * t.quantity).normalize();
                let sides = [
                    (
                        t.maker_account,
                        t.maker_order_id,
                        Role::Maker,
                        t.taker_side.opposite(),
                    ),
                    (t.taker_account, t.taker_order_id, Role::Taker, t.taker_side),
                ];
                sides
                    .into_iter()
                    .filter(|(account, ..)| fresh(*account))
                    .map(|(account, order_id, role, side)| {
                        let (paid_asset, paid, received_asset, received) = match side {
                            Side::Buy => (&market.quote, quote_amount, &market.base, t.quantity),
                            Side::Sell => (&market.base, t.quantity, &market.quote, quote_amount),
                        };
                        AccountEvent::TradeSettled(TradeSettled {
                            account,
                            symbol: symbol.to_string(),
                            trade_id: t.trade_id,
                            order_id,
                            role,
                            side,
                            price: t.price,
                            quantity: t.quantity,
                            paid_asset: paid_asset.clone(),
                            paid,
                            received_asset: received_asset.clone(),
                            received,
                            fee: fees.fee(role, received),
                            market_revision: revision,
                            at: t.executed_at,
                        })
                    })
                    .collect()
            }
            // The order now needs what its new terms cost; it was made to
            // hold at least that before the amendment went to the book, and
            // what it holds beyond goes back. (A held stop order amended the
            // same way: its reservation follows its terms too.)
            Event::OrderAmended(_) | Event::StopAmended(_) => {
                let (account, order_id, at) = match event {
                    Event::OrderAmended(a) => (a.account, a.order_id, a.at),
                    Event::StopAmended(a) => (a.account, a.order_id, a.at),
                    _ => unreachable!("matched just above"),
                };
                if !fresh(account) {
                    return Vec::new();
                }
                let Some(r) = self
                    .account(account)
                    .and_then(|acc| acc.reservations.get(&(symbol.to_string(), order_id)))
                else {
                    return Vec::new();
                };
                let Some((_, need)) = amend_cost(market, event) else {
                    return Vec::new();
                };
                let excess = r.amount - need;
                if excess <= Decimal::ZERO {
                    return Vec::new();
                }
                vec![AccountEvent::ReservationChanged {
                    account,
                    symbol: symbol.to_string(),
                    order_id,
                    asset: r.asset.clone(),
                    change: -excess,
                    market_revision: Some(revision),
                    at,
                }]
            }
            // The order closed: whatever its reservation still holds goes back.
            Event::OrderFilled(_) | Event::OrderCancelled(_) => {
                let (account, order_id, at) = match event {
                    Event::OrderFilled(e) => (e.account, e.order_id, e.at),
                    Event::OrderCancelled(e) => (e.account, e.order_id, e.at),
                    _ => unreachable!("matched just above"),
                };
                if !fresh(account) {
                    return Vec::new();
                }
                let reason = ReleaseReason::OrderClosed;
                self.release(account, symbol, order_id, reason, Some(revision), at)
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// What an open order must hold once amended by `event` (an
/// `OrderAmended`, or a `StopAmended` of an order held for its trigger):
/// `(asset, amount)`. A buy holds its new price times its new open
/// quantity in quote, a sell its new open quantity of base. `None` for any
/// other event, and for a held order whose cost the amendment cannot
/// change (a stop-market buy holds the quote amount it will spend).
pub fn amend_cost(market: &MarketSpec, event: &Event) -> Option<(String, Decimal)> {
    let (side, price, quantity) = match event {
        Event::OrderAmended(a) => (a.side, Some(a.price), Some(a.quantity)),
        Event::StopAmended(a) => (a.side, a.price, a.quantity),
        _ => return None,
    };
    let need = open_cost(side, price, quantity, None)?;
    let asset = match side {
        Side::Buy => &market.quote,
        Side::Sell => &market.base,
    };
    Some((asset.clone(), need))
}

/// What an open order (resting, or held for its trigger) must still hold:
/// a buy its limit price times its open quantity (a stop-market buy the
/// quote amount it will spend), a sell its open quantity. `None` when its
/// terms do not say (a market order).
pub fn open_cost(
    side: Side,
    price: Option<Decimal>,
    open_quantity: Option<Decimal>,
    quote_amount: Option<Decimal>,
) -> Option<Decimal> {
    match (side, price, open_quantity, quote_amount) {
        (Side::Buy, Some(price), Some(quantity), _) => Some((price * quantity).normalize()),
        (Side::Buy, None, None, Some(quote)) => Some(quote),
        (Side::Sell, _, Some(quantity), _) => Some(quantity),
        _ => None,
    }
}

/// What an order must hold before it reaches the book: `(asset, amount)`.
///
/// A limit buy holds its limit price times its quantity in quote; a sell
/// sized by quantity holds that quantity of base; a market buy sized by
/// quote holds that quote amount. A market order sized the other way holds
/// exactly what the book's decision (`decided`, the events the same command
/// gives on the same state) will trade.
pub fn order_cost(
    market: &MarketSpec,
    order: &orderbook::PlaceOrder,
    decided: &[Event],
) -> (String, Decimal) {
    let traded = || {
        decided.iter().filter_map(|e| match e {
            Event::TradeExecuted(t) if t.taker_order_id == order.order_id => Some(t),
            _ => None,
        })
    };
    match (order.side, order.price, order.quantity, order.quote_amount) {
        (Side::Buy, Some(price), Some(quantity), _) => {
            (market.quote.clone(), (price * quantity).normalize())
        }
        (Side::Buy, _, _, Some(quote)) => (market.quote.clone(), quote),
        (Side::Buy, ..) => (
            market.quote.clone(),
            traded()
                .map(|t| t.price * t.quantity)
                .sum::<Decimal>()
                .normalize(),
        ),
        (Side::Sell, _, Some(quantity), _) => (market.base.clone(), quantity),
        (Side::Sell, ..) => (
            market.base.clone(),
            traded().map(|t| t.quantity).sum::<Decimal>().normalize(),
        ),
    }
}
