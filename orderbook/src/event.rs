//! Events: the book's published vocabulary, and the only thing its state is
//! made of. Other programs read these from the event store, so their JSON is
//! a contract: fields are only ever added, and every event written carries
//! `schema_version` so a reader knows which contract it holds.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::market::Symbol;
use crate::order::{
    AccountId, OrderId, OrderType, SelfTradePrevention, Side, TimeInForce, Timestamp, TradeId,
};
use crate::reason::{CancelReason, RejectReason};

/// The version of the event JSON this crate writes. Readers accept this
/// version and every earlier one.
pub const SCHEMA_VERSION: u32 = 1;

/// Something that happened to a book. In JSON, `type` names the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    OrderAccepted(OrderAccepted),
    OrderRejected(OrderRejected),
    TradeExecuted(TradeExecuted),
    OrderCancelled(OrderCancelled),
    OrderAmended(OrderAmended),
    OrderFilled(OrderFilled),
}

/// An order passed validation and entered the book. Limit orders join the
/// back of their price level at once; any trades follow as further events.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderAccepted {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub order_type: OrderType,
    /// The limit price; absent for market orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// The base quantity; absent for orders sized by quote amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    /// The quote amount to spend or receive; only for market orders sized so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_amount: Option<Decimal>,
    pub time_in_force: TimeInForce,
    pub post_only: bool,
    pub self_trade_prevention: SelfTradePrevention,
    pub at: Timestamp,
}

/// A command was refused; nothing changed. `order_id` is the order the
/// command named (new for a placement, existing for a cancel or amend).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderRejected {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub reason: RejectReason,
    pub at: Timestamp,
}

/// Two orders traded. The price is always the resting (maker) order's; the
/// quote amount that changed hands is exactly `price * quantity`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TradeExecuted {
    pub symbol: Symbol,
    /// Sequential per market, from 1.
    pub trade_id: TradeId,
    pub price: Decimal,
    /// Base quantity traded.
    pub quantity: Decimal,
    pub maker_order_id: OrderId,
    pub taker_order_id: OrderId,
    pub maker_account: AccountId,
    pub taker_account: AccountId,
    /// The incoming order's side: `buy` means the taker bought.
    pub taker_side: Side,
    pub executed_at: Timestamp,
}

/// An order left the book with something unfilled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderCancelled {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    /// The order's limit price (what its reservation was made at); absent
    /// for market orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// Unfilled base quantity released; absent for orders sized by quote amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_quantity: Option<Decimal>,
    /// Unspent quote amount released; only for orders sized by quote amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_quote_amount: Option<Decimal>,
    pub reason: CancelReason,
    pub at: Timestamp,
}

/// An open order's price or open quantity changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderAmended {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub old_price: Decimal,
    pub old_quantity: Decimal,
    pub price: Decimal,
    /// The new open quantity.
    pub quantity: Decimal,
    /// True when only the quantity went down, so the order kept its place.
    pub priority_kept: bool,
    pub at: Timestamp,
}

/// An order filled completely and left the book.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderFilled {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub at: Timestamp,
}

/// Why a line of event JSON could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EventDecodeError {
    #[error("not a valid event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("event schema version {0} is newer than this program reads ({SCHEMA_VERSION})")]
    NewerSchema(u32),
}

#[derive(Serialize)]
struct VersionedEventRef<'a> {
    schema_version: u32,
    #[serde(flatten)]
    event: &'a Event,
}

#[derive(Deserialize)]
struct VersionedEvent {
    schema_version: u32,
    #[serde(flatten)]
    event: Event,
}

impl Event {
    /// The event's name, as used for its `type` and its event-store type.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::OrderAccepted(_) => "OrderAccepted",
            Event::OrderRejected(_) => "OrderRejected",
            Event::TradeExecuted(_) => "TradeExecuted",
            Event::OrderCancelled(_) => "OrderCancelled",
            Event::OrderAmended(_) => "OrderAmended",
            Event::OrderFilled(_) => "OrderFilled",
        }
    }

    pub fn symbol(&self) -> &Symbol {
        match self {
            Event::OrderAccepted(e) => &e.symbol,
            Event::OrderRejected(e) => &e.symbol,
            Event::TradeExecuted(e) => &e.symbol,
            Event::OrderCancelled(e) => &e.symbol,
            Event::OrderAmended(e) => &e.symbol,
            Event::OrderFilled(e) => &e.symbol,
        }
    }

    /// When it happened: the time of the command that made it.
    pub fn at(&self) -> Timestamp {
        match self {
            Event::OrderAccepted(e) => e.at,
            Event::OrderRejected(e) => e.at,
            Event::TradeExecuted(e) => e.executed_at,
            Event::OrderCancelled(e) => e.at,
            Event::OrderAmended(e) => e.at,
            Event::OrderFilled(e) => e.at,
        }
    }

    /// One line of JSON with `schema_version` and `type`.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&VersionedEventRef {
            schema_version: SCHEMA_VERSION,
            event: self,
        })
        .expect("events always serialise")
    }

    /// Reads an event written by this or an earlier schema version.
    pub fn from_json(json: &str) -> Result<Event, EventDecodeError> {
        let v: VersionedEvent = serde_json::from_str(json)?;
        if v.schema_version > SCHEMA_VERSION {
            return Err(EventDecodeError::NewerSchema(v.schema_version));
        }
        Ok(v.event)
    }
}
