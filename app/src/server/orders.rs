//! The order form ([`OrderForm`]) as the server reads it: text fields into an
//! [`OrderRequest`], refusals into messages beside the right field, and an
//! order's events into one sentence.

use orderbook::{
    CancelReason, Event, MarketSpec, OrderType, RejectReason, SelfTradePrevention, Side,
    TimeInForce,
};
use rust_decimal::Decimal;

use super::exchange_error::ExchangeError;
use super::market_task::{CommandOutcome, OrderRequest};
use crate::api::OrderForm;
use crate::error::UserError;

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
    /// ignores the quote amount.
    pub fn parse(&self) -> Result<OrderRequest, UserError> {
        let side = match self.side.as_str() {
            "buy" => Side::Buy,
            "sell" => Side::Sell,
            _ => return Err(UserError::field("side", "choose buy or sell")),
        };
        let order_type = match self.order_type.as_str() {
            "limit" => OrderType::Limit,
            "market" => OrderType::Market,
            _ => return Err(UserError::field("order_type", "choose limit or market")),
        };
        let market = order_type == OrderType::Market;
        let time_in_force = match self.time_in_force.as_deref().unwrap_or("") {
            "" | "GTC" if market => None,
            "" | "GTC" => Some(TimeInForce::GoodTillCancelled),
            "IOC" => Some(TimeInForce::ImmediateOrCancel),
            "FOK" => Some(TimeInForce::FillOrKill),
            _ => return Err(UserError::field("time_in_force", "choose GTC, IOC or FOK")),
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
        if quantity.is_none() && quote_amount.is_none() {
            let msg = if market && side == Side::Buy {
                "enter a quantity or an amount to spend"
            } else {
                "enter a quantity"
            };
            return Err(UserError::field("quantity", msg));
        }
        let self_trade_prevention = match self.self_trade_prevention.as_deref().unwrap_or("") {
            "" | "cancel_taker" => SelfTradePrevention::CancelTaker,
            "cancel_maker" => SelfTradePrevention::CancelMaker,
            "cancel_both" => SelfTradePrevention::CancelBoth,
            _ => {
                return Err(UserError::field(
                    "self_trade_prevention",
                    "choose cancel_taker, cancel_maker or cancel_both",
                ));
            }
        };
        Ok(OrderRequest {
            side,
            order_type,
            price,
            quantity,
            quote_amount,
            time_in_force,
            post_only: !market && self.post_only.as_deref().is_some_and(|v| !v.is_empty()),
            self_trade_prevention,
        })
    }
}

/// An amendment's fields: a new price and/or a new open quantity, at least
/// one of them.
pub fn amendment(
    price: &Option<String>,
    quantity: &Option<String>,
) -> Result<(Option<Decimal>, Option<Decimal>), UserError> {
    let (price, quantity) = (decimal("price", price)?, decimal("quantity", quantity)?);
    if price.is_none() && quantity.is_none() {
        return Err(UserError::field("price", "enter a new price or quantity"));
    }
    Ok((price, quantity))
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
                R::PostOnlyNeedsGtcLimit | R::PostOnlyWouldTake => "post_only",
                // About the order as a whole, not one of its fields.
                R::UnknownOrder | R::NotOrderOwner | R::AmendmentChangesNothing => {
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
    for e in &outcome.events {
        match e {
            Event::TradeExecuted(t) if t.taker_order_id == id => {
                filled += t.quantity;
                quote += t.price * t.quantity;
            }
            Event::OrderFilled(f) if f.order_id == id => end = Some(None),
            Event::OrderCancelled(c) if c.order_id == id => end = Some(Some(c.reason)),
            _ => {}
        }
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
