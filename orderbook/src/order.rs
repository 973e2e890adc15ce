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

/// What kind of trigger holds an order off the book until the market's
/// last trade price reaches its trigger price.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// A stop: a buy enters when the last price rises to the trigger or
    /// above, a sell when it falls to the trigger or below (to limit a loss
    /// or to follow a breakout).
    Stop,
    /// A take-profit: the other way round. A buy enters when the last price
    /// falls to the trigger or below, a sell when it rises to it or above.
    TakeProfit,
}

impl TriggerKind {
    /// Whether an order of this kind on `side` fires when it waits for the
    /// price to rise (`true`) or to fall (`false`) to its trigger.
    pub fn fires_rising(self, side: Side) -> bool {
        matches!(
            (self, side),
            (TriggerKind::Stop, Side::Buy) | (TriggerKind::TakeProfit, Side::Sell)
        )
    }

    /// Whether a last price of `last` ticks fires a trigger at `trigger`
    /// ticks for an order of this kind on `side`.
    pub fn fires(self, side: Side, trigger: u64, last: u64) -> bool {
        if self.fires_rising(side) {
            last >= trigger
        } else {
            last <= trigger
        }
    }
}

/// A stop or take-profit condition: the order waits off the book until a
/// trade at a price that reaches `price` (see [`TriggerKind`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    pub kind: TriggerKind,
    pub price: rust_decimal::Decimal,
}
