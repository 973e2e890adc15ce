//! The order form ([`OrderForm`]) as the server reads it: text fields into
//! an order's [`OrderTerms`], refusals into messages beside the right
//! field, and an order's events into one sentence.

use orderbook::{
    CancelReason, Event, MarketSpec, OrderKind, OrderTerms, RejectReason, SelfTradePrevention,
    Side, TimeInForce, Trigger, UnknownWord,
};
use rust_decimal::Decimal;

use super::exchange_error::ExchangeError;
use super::market_task::CommandOutcome;
use crate::api::OrderForm;
use crate::error::UserError;

/// What a field that took an unknown word says: `choose a, b or c`.
fn choose(e: &UnknownWord) -> String {
    match e.expected.split_last() {
        Some((last, [])) => format!("choose {last}"),
        Some((last, rest)) => format!("choose {} or {last}", rest.join(", ")),
        None => "choose one".to_string(),
    }
}

/// A decimal field: empty is absent; anything else must be a plain number.
fn decimal(field: &str, value: &Option<String>) -> Result<Option<Decimal>, UserError> {
    let Some(text) = value.as_deref().map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let valid = text
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.' || c == '-');
    match text.parse::<Decimal>() {
        Ok(d) if valid => Ok(Some(d)),
        _ => Err(UserError::field(field, format!("{text:?} is not a number"))),
    }
}

impl OrderForm {
    /// Reads the form. A market order ignores the fields the form hides
    /// for it (price, post-only, good-till-cancelled); a limit order
    /// ignores the quote amount; an order without a trigger ignores the
    /// trigger price.
    ///
    /// A stop or take-profit market order must reserve at placement what
    /// it may spend, before anyone knows the prices it will trade at: a buy
    /// is sized by the quote amount to spend, a sell by its quantity.
    pub fn parse(&self) -> Result<OrderTerms, UserError> {
        let side: Side = self
            .side
            .parse()
            .map_err(|e: UnknownWord| UserError::field("side", choose(&e)))?;
        let kind: OrderKind = self.order_type.parse().map_err(|e: UnknownWord| {
            let msg = format!("choose an order type of {}", e.expected.join(", "));
            UserError::field("order_type", msg)
        })?;
        let (order_type, trigger_kind) = (kind.order_type(), kind.trigger());
        let market = kind.is_market();
        let time_in_force = match self.time_in_force.as_deref().unwrap_or("") {
            "" if market => None,
            "" => Some(TimeInForce::GoodTillCancelled),
            word => match word.parse() {
                Ok(TimeInForce::GoodTillCancelled) if market => None,
                Ok(tif) => Some(tif),
                Err(e) => return Err(UserError::field("time_in_force", choose(&e))),
            },
        };
        let price = if market {
            None
        } else {
            decimal("price", &self.price)?
        };
        let quantity = decimal("quantity", &self.quantity)?;
        let quote_amount = if market {
            decimal("quote_amount", &self.quote_amount)?
        } else {
            None
        };
        if !market && price.is_none() {
            return Err(UserError::field("price", "enter a limit price"));
        }
        let trigger = match trigger_kind {
            None => None,
            Some(kind) => match decimal("trigger_price", &self.trigger_price)? {
                Some(price) => Some(Trigger { kind, price }),
                None => return Err(UserError::field("trigger_price", "enter a trigger price")),
            },
        };
        let (quantity, quote_amount) = match (trigger, market, side) {
            (Some(_), true, Side::Buy) => match quote_amount {
                Some(q) => (None, Some(q)),
                None => {
                    return Err(UserError::field(
                        "quote_amount",
                        "a stop-market or take-profit market buy is sized by the amount to \
                         spend (its prices are not known until it fires, and the amount is \
                         held until then)",
                    ));
                }
            },
            (Some(_), true, Side::Sell) => (quantity, None),
            _ => (quantity, quote_amount),
        };
        if quantity.is_none() && quote_amount.is_none() {
            let msg = if market && side == Side::Buy {
                "enter a quantity or an amount to spend"
            } else {
                "enter a quantity"
            };
            return Err(UserError::field("quantity", msg));
        }
        let self_trade_prevention = match self.self_trade_prevention.as_deref().unwrap_or("") {
            "" => SelfTradePrevention::default(),
            word => word
                .parse()
                .map_err(|e: UnknownWord| UserError::field("self_trade_prevention", choose(&e)))?,
        };
        Ok(OrderTerms {
            side,
            order_type,
            price,
            quantity,
            quote_amount,
            time_in_force,
            post_only: !market && self.post_only.as_deref().is_some_and(|v| !v.is_empty()),
            self_trade_prevention,
            trigger,
        })
    }
}

/// What an amendment changes.
type Amendment = (Option<Decimal>, Option<Decimal>, Option<Decimal>);

/// An amendment's fields: a new price, a new open quantity and (for an
/// order waiting for its trigger) a new trigger price, at least one.
pub fn amendment(
    price: &Option<String>,
    quantity: &Option<String>,
    trigger_price: &Option<String>,
) -> Result<Amendment, UserError> {
    let (price, quantity) = (decimal("price", price)?, decimal("quantity", quantity)?);
    let trigger_price = decimal("trigger_price", trigger_price)?;
    if price.is_none() && quantity.is_none() && trigger_price.is_none() {
        return Err(UserError::field("price", "enter a new price or quantity"));
    }
    Ok((price, quantity, trigger_price))
}

/// A refusal, as a message beside the field that caused it (for an order
/// sized by quote amount, funds are that field's business).
pub fn field_error(
    e: ExchangeError,
    sized_by_quote: bool,
    market: Option<MarketSpec>,
) -> UserError {
    use RejectReason as R;
    match (&e, market) {
        (ExchangeError::Rejected(r), Some(m)) => {
            let field = match r {
                R::PriceNotPositive | R::PriceOffTick | R::PriceTooHigh | R::MissingPrice => {
                    "price"
                }
                R::PriceOnMarketOrder => "price",
                R::QuoteAmountNotPositive | R::QuoteAmountOffGrid | R::QuoteAmountTooLarge => {
                    "quote_amount"
                }
                R::FillOrKillNeedsQuantity | R::MarketOrderCannotRest => "time_in_force",
                R::PostOnlyNeedsGtcLimit | R::PostOnlyWouldTake | R::PostOnlyWithTrigger => {
                    "post_only"
                }
                R::NoLastPrice | R::TriggerAlreadyReached => "trigger_price",
                // About the order as a whole, not one of its fields.
                R::UnknownOrder
                | R::NotOrderOwner
                | R::AmendmentChangesNothing
                | R::NotATriggerOrder => {
                    return UserError::new(r.to_string());
                }
                _ => "quantity",
            };
            let message = match r {
                R::PriceOffTick => {
                    format!("price must be a multiple of {}", m.tick_size.normalize())
                }
                R::QuantityOffLot => {
                    format!("quantity must be a multiple of {}", m.lot_size.normalize())
                }
                R::QuantityBelowMinimum => {
                    format!(
                        "the smallest order is {} {}",
                        m.min_quantity.normalize(),
                        m.base
                    )
                }
                other => other.to_string(),
            };
            UserError::field(field, message)
        }
        (ExchangeError::Account(accounts::AccountError::InsufficientFunds { .. }), _) => {
            UserError::field(
                if sized_by_quote {
                    "quote_amount"
                } else {
                    "quantity"
                },
                e.to_string(),
            )
        }
        _ => e.into(),
    }
}

/// What happened to a new order, in one sentence.
pub fn describe(outcome: &CommandOutcome, market: Option<MarketSpec>) -> String {
    let id = outcome.order_id;
    let base = market.map(|m| m.base).unwrap_or_default();
    let (mut filled, mut quote) = (Decimal::ZERO, Decimal::ZERO);
    let mut end = None;
    let mut waiting = None;
    for e in &outcome.events {
        match e {
            Event::OrderAccepted(a) if a.order_id == id => {
                waiting = a.trigger.as_deref().map(|t| (*t, a.side));
            }
            Event::TradeExecuted(t) if t.taker_order_id == id => {
                filled += t.quantity;
                quote += t.price * t.quantity;
            }
            Event::OrderFilled(f) if f.order_id == id => end = Some(None),
            Event::OrderCancelled(c) if c.order_id == id => end = Some(Some(c.reason)),
            _ => {}
        }
    }
    if let Some((t, side)) = waiting {
        let how = if t.kind.fires_rising(side) {
            "at or above"
        } else {
            "at or below"
        };
        return format!(
            "Order {id} waits for its trigger: it enters when a trade is {how} {}.",
            t.price.normalize()
        );
    }
    let traded = if filled.is_zero() {
        String::new()
    } else {
        format!(
            "{} {base} traded at an average price of {}",
            filled.normalize(),
            (quote / filled).round_dp(8).normalize()
        )
    };
    match end {
        Some(None) => format!("Order {id} filled: {traded}."),
        Some(Some(reason)) => {
            let why = match reason {
                CancelReason::User => "cancelled",
                CancelReason::ImmediateOrCancelRemainder => {
                    "the rest was cancelled (immediate or cancel)"
                }
                CancelReason::FillOrKillUnfilled => {
                    "not filled: the book could not fill all of it at once"
                }
                CancelReason::MarketOrderRemainder => {
                    "the rest was cancelled: not enough liquidity"
                }
                CancelReason::SelfTradePrevention => {
                    "cancelled: it would have traded with your own order"
                }
            };
            if traded.is_empty() {
                format!("Order {id} {why}.")
            } else {
                format!("Order {id}: {traded}; {why}.")
            }
        }
        None if traded.is_empty() => format!("Order {id} is on the book."),
        None => format!("Order {id}: {traded}; the rest is on the book."),
    }
}

/// What an amendment did, in one sentence.
pub fn describe_amendment(outcome: &CommandOutcome, market: Option<MarketSpec>) -> String {
    let amended = outcome.events.iter().find_map(|e| match e {
        Event::OrderAmended(a) => Some(a),
        _ => None,
    });
    let Some(a) = amended else {
        if let Some(Event::StopAmended(a)) = outcome.events.first() {
            let price = a.price.map(|p| format!(", limit {}", p.normalize()));
            let quantity = a.quantity.map(|q| format!(", quantity {}", q.normalize()));
            return format!(
                "Order {} now waits for {}{}{}.",
                a.order_id,
                a.trigger_price.normalize(),
                price.unwrap_or_default(),
                quantity.unwrap_or_default()
            );
        }
        return describe(outcome, market);
    };
    let head = format!(
        "Order {} amended to {} at {}",
        a.order_id,
        a.quantity.normalize(),
        a.price.normalize()
    );
    if outcome
        .events
        .iter()
        .any(|e| matches!(e, Event::TradeExecuted(_)))
    {
        return format!("{head}. {}", describe(outcome, market));
    }
    let place = if a.priority_kept {
        "it keeps its place in the queue"
    } else {
        "it goes to the back of the queue"
    };
    format!("{head}: {place}.")
}
