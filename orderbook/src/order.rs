//! The words an order is made of: ids, sides, types and the rules it trades by.

use serde::{Deserialize, Serialize};

/// An order id, assigned by the exchange; strictly increasing per market.
pub type OrderId = u64;
/// The account that owns an order.
pub type AccountId = u64;
/// A trade id, sequential per market from 1.
pub type TradeId = u64;
/// Microseconds since the Unix epoch. It comes in with the command: the
/// book never reads a clock.
pub type Timestamp = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderType {
    /// Trades at the given price or better; may rest on the book.
    Limit,
    /// Trades at whatever the book offers; never rests.
    Market,
}

/// How long an order stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeInForce {
    /// Good till cancelled: the remainder rests on the book.
    #[serde(rename = "GTC")]
    GoodTillCancelled,
    /// Immediate or cancel: what does not fill at once is cancelled.
    #[serde(rename = "IOC")]
    ImmediateOrCancel,
    /// Fill or kill: fills completely at once, or not at all.
    #[serde(rename = "FOK")]
    FillOrKill,
}

/// What happens when an order would trade with one of its own account.
/// The taker's mode decides.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SelfTradePrevention {
    /// Cancel the rest of the incoming order.
    #[default]
    CancelTaker,
    /// Cancel the resting order and keep matching.
    CancelMaker,
    /// Cancel both.
    CancelBoth,
}
