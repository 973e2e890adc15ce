//! Events: the book's published vocabulary, and the only thing its state is
//! made of. Other programs read these from the event store, so their JSON is
//! a contract: fields are only ever added, and every event written carries
//! `schema_version` so a reader knows which contract it holds.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::client_ids::ClientOrderId;
use crate::command::OrderTerms;
use crate::market::Symbol;
use crate::order::{
    AccountId, OrderId, OrderType, SelfTradePrevention, Side, TimeInForce, Timestamp, TradeId,
    Trigger,
};
use crate::reason::{CancelReason, RejectReason};

/// The version of the event JSON this crate writes. Readers accept this
/// version and every earlier one. Version 2 added stop and take-profit
/// orders: `trigger` on `OrderAccepted`, and `StopTriggered` and
/// `StopAmended`; a version-1 log has none of them and reads the same.
/// Version 3 added `fees` on `TradeExecuted` (the exchange writes what each
/// side paid); a trade without them was settled by the ledger's own events.
/// Version 4 added `StreamFenced`, which changes no book.
/// Version 5 added `client_order_id` on `OrderAccepted`.
/// Version 6 added `OrderRefused`, which changes no book.
pub const SCHEMA_VERSION: u32 = 6;

/// The matching loop moves many events, and the compiler copies a value of
/// at most 128 bytes inline but calls `memcpy` for a larger one (which cost
/// an eighth of the engine's time when an event was 144 bytes). Rare fields
/// are boxed, and the symbol and client id are sized, to stay within it.
const _: () = assert!(std::mem::size_of::<Event>() <= 128);

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
    StopTriggered(StopTriggered),
    /// Boxed: it is the largest event and a rare one, and every event is
    /// as large as the largest kind (the matching loop moves many).
    StopAmended(Box<StopAmended>),
    StreamFenced(StreamFenced),
    /// Boxed, like `StopAmended`: it carries the order's whole terms.
    OrderRefused(Box<OrderRefused>),
}

/// An order passed validation and entered the book. Limit orders join the
/// back of their price level at once; any trades follow as further events.
/// An order with a `trigger` is instead held off the book until
/// [`StopTriggered`] enters it.
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
    /// Present for a stop or take-profit order (schema version 2). Boxed:
    /// every event is as large as the largest kind, and the matching loop
    /// moves many; few orders have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Box<Trigger>>,
    /// The trader's own id for the order, when they gave one (schema
    /// version 5): unique among their open orders in this market.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    pub at: Timestamp,
}

impl OrderAccepted {
    /// The terms the order was accepted with, the book's defaults filled in
    /// (its time in force).
    pub fn terms(&self) -> OrderTerms {
        OrderTerms {
            side: self.side,
            order_type: self.order_type,
            price: self.price,
            quantity: self.quantity,
            quote_amount: self.quote_amount,
            time_in_force: Some(self.time_in_force),
            post_only: self.post_only,
            self_trade_prevention: self.self_trade_prevention,
            trigger: self.trigger.as_deref().copied(),
        }
    }
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
    /// What each side paid the exchange (schema version 3). The book leaves
    /// it empty: fees are the exchange's business, which sets them before
    /// the trade is written. Boxed, like the other rare fields, so every
    /// event stays small.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fees: Option<Box<TradeFees>>,
}

/// The fees of one trade, each in the asset its side received.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeFees {
    pub maker: Decimal,
    pub taker: Decimal,
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

/// A held order's trigger fired: a trade's price reached its trigger price,
/// and the order enters the book now as the market or limit order it
/// describes. Its trades and final event follow, as for an order just
/// accepted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopTriggered {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub trigger: Trigger,
    /// The trade whose price fired the trigger, and that price.
    pub trade_id: TradeId,
    pub last_price: Decimal,
    pub at: Timestamp,
}

/// An order held for its trigger changed its terms. Only what the order
/// has is present: a limit price for a stop-limit, a quantity for an order
/// sized by base quantity.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StopAmended {
    pub symbol: Symbol,
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub old_trigger_price: Decimal,
    pub trigger_price: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_quantity: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    pub at: Timestamp,
}

/// From here on the market's stream is written by the exchange's
/// sequencer of `term` (a leader newly elected writes this first, into
/// every market's stream): a writer of an earlier term that still appends
/// at the revision it knew finds the stream moved on, and steps down. No
/// book or balance changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamFenced {
    pub symbol: Symbol,
    pub term: u64,
    pub at: Timestamp,
}

/// A placement the exchange refused (version 6): by the book's rules, the
/// account's funds or a cap. Nothing was held and no book changed. It is
/// written with the batch it was decided in, so the refusal costs no write
/// of its own and its trader's history shows it with the words they were
/// answered with. (Before version 6 refusals were kept in the account's
/// own stream, as the ledger's `OrderRefused`, with the same meaning.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderRefused {
    pub symbol: Symbol,
    pub account: AccountId,
    pub terms: OrderTerms,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    /// Why, in the words the trader was answered with.
    pub reason: String,
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

/// What an event's line says before its body: its version and its kind.
/// The other fields are passed over here and read by the kind's own type.
#[derive(Deserialize)]
struct EventHeader<'a> {
    schema_version: u32,
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
}

/// The kinds, each named once: an event's name ([`Event::kind`], whose
/// match the compiler holds to every variant), the names for the error
/// naming an unknown one, and reading a kind's fields straight from the
/// line into the kind's own type (a struct passes over the `type` and
/// `schema_version` it does not name).
macro_rules! kinds {
    ($($kind:ident),* $(,)?) => {
        const KINDS: &[&str] = &[$(stringify!($kind)),*];

        impl Event {
            /// The event's name, as used for its `type` and its event-store
            /// type.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Event::$kind(_) => stringify!($kind),)*
                }
            }

            /// The event of kind `kind` from `json`'s fields; `None` for a
            /// kind this program does not know.
            fn body(kind: &str, json: &str) -> Option<Result<Event, serde_json::Error>> {
                match kind {
                    $(stringify!($kind) => Some(serde_json::from_str(json).map(Event::$kind)),)*
                    _ => None,
                }
            }
        }
    };
}

kinds!(
    OrderAccepted,
    OrderRejected,
    TradeExecuted,
    OrderCancelled,
    OrderAmended,
    OrderFilled,
    StopTriggered,
    StopAmended,
    StreamFenced,
    OrderRefused,
);

impl Event {
    /// The accounts whose money or holds the event moves: a trade's two,
    /// any other order event's one, none for a rejection (nothing held).
    pub fn accounts(&self) -> impl Iterator<Item = AccountId> {
        let (first, second) = match self {
            Event::TradeExecuted(t) => (Some(t.maker_account), Some(t.taker_account)),
            Event::OrderAccepted(a) => (Some(a.account), None),
            Event::OrderCancelled(c) => (Some(c.account), None),
            Event::OrderAmended(a) => (Some(a.account), None),
            Event::OrderFilled(f) => (Some(f.account), None),
            Event::StopTriggered(t) => (Some(t.account), None),
            Event::StopAmended(a) => (Some(a.account), None),
            Event::OrderRejected(_) | Event::StreamFenced(_) | Event::OrderRefused(_) => {
                (None, None)
            }
        };
        first.into_iter().chain(second)
    }

    pub fn symbol(&self) -> &Symbol {
        match self {
            Event::OrderAccepted(e) => &e.symbol,
            Event::OrderRejected(e) => &e.symbol,
            Event::TradeExecuted(e) => &e.symbol,
            Event::OrderCancelled(e) => &e.symbol,
            Event::OrderAmended(e) => &e.symbol,
            Event::OrderFilled(e) => &e.symbol,
            Event::StopTriggered(e) => &e.symbol,
            Event::StopAmended(e) => &e.symbol,
            Event::StreamFenced(e) => &e.symbol,
            Event::OrderRefused(e) => &e.symbol,
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
            Event::StopTriggered(e) => e.at,
            Event::StopAmended(e) => e.at,
            Event::StreamFenced(e) => e.at,
            Event::OrderRefused(e) => e.at,
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
    ///
    /// The header first, then the kind's fields into the kind's own type:
    /// the derived reading of a tagged, flattened enum buffers every field
    /// of the line as an owned value twice before it builds the event, and
    /// every event the server reads (the live tail, start-up, the start
    /// snapshots' folds) passes through here.
    pub fn from_json(json: &str) -> Result<Event, EventDecodeError> {
        let header: EventHeader = serde_json::from_str(json)?;
        if header.schema_version > SCHEMA_VERSION {
            return Err(EventDecodeError::NewerSchema(header.schema_version));
        }
        match Event::body(&header.kind, json) {
            Some(event) => Ok(event?),
            None => {
                let error =
                    <serde_json::Error as serde::de::Error>::unknown_variant(&header.kind, KINDS);
                Err(error.into())
            }
        }
    }
}
