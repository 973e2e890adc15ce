//! Account events: the published vocabulary of the ledger. Fields are only
//! ever added; every event written carries `schema_version`.

use std::sync::Arc;

use orderbook::{AccountId, OrderId, OrderTerms, OrderType, Side, Timestamp, TradeId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::api_key::ApiKey;
use crate::config::Role;

/// The version of the event JSON this crate writes. Version 2 added
/// `ReservationChanged` and `OrderRefused` (with the optional `trigger` of
/// a refused stop order; without it, none); version 1 logs read unchanged.
/// Version 3 writes no event about orders (`FundsReserved`,
/// `FundsReleased`, `ReservationChanged`, `TradeSettled`): the market
/// streams say it all. Earlier logs' events still read. Version 4 added
/// `ApiKeyCreated` and `ApiKeyRevoked`.
pub const SCHEMA_VERSION: u32 = 4;

/// Something that happened to an account. In JSON, `type` names the variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AccountEvent {
    AccountOpened {
        account: AccountId,
        username: String,
        /// The argon2 hash in PHC string form; never the password.
        password_hash: String,
        at: Timestamp,
    },
    FundsDeposited {
        account: AccountId,
        asset: String,
        amount: Decimal,
        source: DepositSource,
        at: Timestamp,
    },
    /// Funds set aside for an order before it reached the book (logs
    /// before version 3).
    FundsReserved {
        account: AccountId,
        symbol: String,
        order_id: OrderId,
        asset: String,
        amount: Decimal,
        at: Timestamp,
    },
    /// What was left of an order's reservation went back to available
    /// (logs before version 3).
    FundsReleased {
        account: AccountId,
        symbol: String,
        order_id: OrderId,
        asset: String,
        amount: Decimal,
        reason: ReleaseReason,
        /// The market event that closed the order, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        market_revision: Option<u64>,
        at: Timestamp,
    },
    TradeSettled(TradeSettled),
    /// An open order's reservation grew (before an amendment that needs
    /// more reaches the book) or shrank (once an amendment that needs less
    /// is in the book, or when one that needed more never got there).
    /// `change` is signed: what was added to the reservation. (Logs of
    /// version 2 only.)
    ReservationChanged {
        account: AccountId,
        symbol: String,
        order_id: OrderId,
        asset: String,
        change: Decimal,
        /// The market event (an `OrderAmended`) that let it shrink, if one did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        market_revision: Option<u64>,
        at: Timestamp,
    },
    /// An order the exchange refused (the book, the funds or a cap): it
    /// never reached the book, and nothing was held for it. Kept so the
    /// trader's order history shows it with its reason. Written by logs
    /// before market schema version 6 only: refusals now go into the
    /// market's stream with the batch they were decided in (the book's
    /// `OrderRefused`); these still read.
    OrderRefused {
        account: AccountId,
        symbol: String,
        side: Side,
        order_type: OrderType,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        price: Option<Decimal>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quantity: Option<Decimal>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quote_amount: Option<Decimal>,
        /// The trigger of a refused stop or take-profit order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trigger: Option<orderbook::Trigger>,
        /// Why, in the words the trader was answered with.
        reason: String,
        at: Timestamp,
    },
    SessionStarted {
        account: AccountId,
        token_hash: String,
        at: Timestamp,
    },
    SessionEnded {
        account: AccountId,
        token_hash: String,
        at: Timestamp,
    },
    /// A new API key for the account (version 4). Boxed: the largest
    /// variant, and a rare one.
    ApiKeyCreated(Box<ApiKey>),
    /// The key is refused from now on (version 4).
    ApiKeyRevoked {
        account: AccountId,
        key_id: String,
        at: Timestamp,
    },
}

/// One side of a trade, settled into one account: `paid` left the order's
/// reservation, `received - fee` arrived, `fee` went to the exchange. As an
/// event, the settlement of a trade written without fees (logs before
/// version 3); the ledger keeps every fill in this shape either way, and
/// its fills share one copy of each market's and asset's name (the JSON is
/// the same strings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeSettled {
    pub account: AccountId,
    pub symbol: Arc<str>,
    pub trade_id: TradeId,
    pub order_id: OrderId,
    pub role: Role,
    pub side: Side,
    pub price: Decimal,
    pub quantity: Decimal,
    pub paid_asset: Arc<str>,
    pub paid: Decimal,
    pub received_asset: Arc<str>,
    pub received: Decimal,
    pub fee: Decimal,
    pub market_revision: u64,
    pub at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DepositSource {
    Faucet,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseReason {
    /// The order filled or was cancelled.
    OrderClosed,
    /// The order never reached the book (its append failed or the server
    /// stopped in between).
    OrderNotPlaced,
}

/// Why a stored event could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AccountEventDecodeError {
    #[error("not a valid account event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("account event schema version {0} is newer than this program reads ({SCHEMA_VERSION})")]
    NewerSchema(u32),
}

#[derive(Serialize)]
struct VersionedAccountEventRef<'a> {
    schema_version: u32,
    #[serde(flatten)]
    event: &'a AccountEvent,
}

#[derive(Deserialize)]
struct VersionedAccountEvent {
    schema_version: u32,
    #[serde(flatten)]
    event: AccountEvent,
}

impl AccountEvent {
    /// The terms of a refused order, as far as its event keeps them (not
    /// its time in force, post-only or self-trade prevention: those are
    /// left at the book's defaults).
    pub fn refused_terms(&self) -> Option<OrderTerms> {
        let AccountEvent::OrderRefused {
            side,
            order_type,
            price,
            quantity,
            quote_amount,
            trigger,
            ..
        } = self
        else {
            return None;
        };
        Some(OrderTerms {
            side: *side,
            order_type: *order_type,
            price: *price,
            quantity: *quantity,
            quote_amount: *quote_amount,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: Default::default(),
            trigger: *trigger,
        })
    }

    /// The variant name: the JSON `type` and the event-store event type.
    pub fn kind(&self) -> &'static str {
        match self {
            AccountEvent::AccountOpened { .. } => "AccountOpened",
            AccountEvent::FundsDeposited { .. } => "FundsDeposited",
            AccountEvent::FundsReserved { .. } => "FundsReserved",
            AccountEvent::FundsReleased { .. } => "FundsReleased",
            AccountEvent::TradeSettled(_) => "TradeSettled",
            AccountEvent::ReservationChanged { .. } => "ReservationChanged",
            AccountEvent::OrderRefused { .. } => "OrderRefused",
            AccountEvent::SessionStarted { .. } => "SessionStarted",
            AccountEvent::SessionEnded { .. } => "SessionEnded",
            AccountEvent::ApiKeyCreated(_) => "ApiKeyCreated",
            AccountEvent::ApiKeyRevoked { .. } => "ApiKeyRevoked",
        }
    }

    /// The account the event belongs to.
    pub fn account(&self) -> AccountId {
        match self {
            AccountEvent::AccountOpened { account, .. }
            | AccountEvent::FundsDeposited { account, .. }
            | AccountEvent::FundsReserved { account, .. }
            | AccountEvent::FundsReleased { account, .. }
            | AccountEvent::ReservationChanged { account, .. }
            | AccountEvent::OrderRefused { account, .. }
            | AccountEvent::SessionStarted { account, .. }
            | AccountEvent::SessionEnded { account, .. }
            | AccountEvent::ApiKeyRevoked { account, .. } => *account,
            AccountEvent::TradeSettled(t) => t.account,
            AccountEvent::ApiKeyCreated(k) => k.account,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(&VersionedAccountEventRef {
            schema_version: SCHEMA_VERSION,
            event: self,
        })
        .expect("account events always serialise")
    }

    pub fn from_json(json: &[u8]) -> Result<AccountEvent, AccountEventDecodeError> {
        let v: VersionedAccountEvent = serde_json::from_slice(json)?;
        if v.schema_version > SCHEMA_VERSION {
            return Err(AccountEventDecodeError::NewerSchema(v.schema_version));
        }
        Ok(v.event)
    }
}
