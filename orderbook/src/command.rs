//! Commands: what a trader asks the book to do. Each carries the time it was
//! received and the ids the exchange assigned, so deciding is pure.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::client_ids::ClientOrderId;
use crate::market::Symbol;
use crate::order::{
    AccountId, OrderId, OrderKind, OrderType, SelfTradePrevention, Side, TimeInForce, Timestamp,
    Trigger,
};

/// A command for one market's book, as one JSON object tagged by `command`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    Place(PlaceOrder),
    Cancel(CancelOrder),
    Amend(AmendOrder),
}

impl Command {
    pub fn symbol(&self) -> &Symbol {
        match self {
            Command::Place(c) => &c.symbol,
            Command::Cancel(c) => &c.symbol,
            Command::Amend(c) => &c.symbol,
        }
    }

    /// The order it places, cancels or amends.
    pub fn order_id(&self) -> OrderId {
        match self {
            Command::Place(c) => c.order_id,
            Command::Cancel(c) => c.order_id,
            Command::Amend(c) => c.order_id,
        }
    }

    /// When the command was received.
    pub fn at(&self) -> Timestamp {
        match self {
            Command::Place(c) => c.at,
            Command::Cancel(c) => c.at,
            Command::Amend(c) => c.at,
        }
    }
}

/// Place a new order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrder {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// Limit price; required for limit orders, refused for market orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// Base quantity. Exactly one of `quantity` and `quote_amount` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    /// Quote amount to spend (buy) or receive (sell); market orders only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_amount: Option<Decimal>,
    /// Defaults to GTC for limit orders and IOC for market orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<TimeInForce>,
    #[serde(default)]
    pub post_only: bool,
    #[serde(default)]
    pub self_trade_prevention: SelfTradePrevention,
    /// A stop or take-profit: the order is held off the book until its
    /// trigger fires, then enters as the market or limit order it
    /// describes. Without one the order enters at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The trader's own id for the order: refused while another open order
    /// of the account in this market has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    pub at: Timestamp,
}

impl PlaceOrder {
    /// The command that places an order of these `terms`.
    pub fn new(
        symbol: Symbol,
        order_id: OrderId,
        account: AccountId,
        terms: OrderTerms,
        at: Timestamp,
    ) -> PlaceOrder {
        let OrderTerms {
            side,
            order_type,
            price,
            quantity,
            quote_amount,
            time_in_force,
            post_only,
            self_trade_prevention,
            trigger,
        } = terms;
        PlaceOrder {
            symbol,
            order_id,
            account,
            side,
            order_type,
            price,
            quantity,
            quote_amount,
            time_in_force,
            post_only,
            self_trade_prevention,
            trigger,
            client_order_id: None,
            at,
        }
    }

    /// The same order, under the trader's own id too.
    pub fn with_client_order_id(mut self, id: Option<ClientOrderId>) -> PlaceOrder {
        self.client_order_id = id;
        self
    }

    /// What the order asks for.
    pub fn terms(&self) -> OrderTerms {
        OrderTerms {
            side: self.side,
            order_type: self.order_type,
            price: self.price,
            quantity: self.quantity,
            quote_amount: self.quote_amount,
            time_in_force: self.time_in_force,
            post_only: self.post_only,
            self_trade_prevention: self.self_trade_prevention,
            trigger: self.trigger,
        }
    }
}

/// An order's terms: everything a trader asks of a new order, written once.
/// The order form parses into them; the command that places the order, a
/// refusal kept in the trader's history and the history's record of the
/// order are all made from them. What the book makes of them (the defaults,
/// the rules) is [`Book::decide`](crate::Book::decide)'s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderTerms {
    pub side: Side,
    #[serde(rename = "type")]
    pub order_type: OrderType,
    /// The limit price: for limit orders only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// The base quantity. Exactly one of `quantity` and `quote_amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    /// The quote amount to spend or receive: market orders only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_amount: Option<Decimal>,
    /// `None`: GTC for a limit order, IOC for a market order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_in_force: Option<TimeInForce>,
    #[serde(default)]
    pub post_only: bool,
    #[serde(default)]
    pub self_trade_prevention: SelfTradePrevention,
    /// A stop or take-profit order's trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

impl OrderTerms {
    /// The kind of order these terms describe.
    pub fn kind(&self) -> OrderKind {
        OrderKind::new(self.order_type, self.trigger.map(|t| t.kind))
    }
}

/// Cancel an open order (resting, or held waiting for its trigger).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelOrder {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub at: Timestamp,
}

/// Change an open order's price and/or remaining quantity.
///
/// Reducing the quantity at the same price keeps time priority; a new price
/// or a larger quantity sends the order to the back of its level, and a new
/// price that crosses the book trades at once. An order held for its
/// trigger can also change its trigger price; it is not on the book, so it
/// has no place to keep or lose.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmendOrder {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// The new open (unfilled) quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    /// The new trigger price: only for an order held for its trigger.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_price: Option<Decimal>,
    pub at: Timestamp,
}
