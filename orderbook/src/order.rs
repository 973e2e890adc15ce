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

/// A word of the wire that names none of an enum's values (say `"hold"` for
/// a side): what the form parsers answer the trader.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{word:?} is not one of {}", .expected.join(", "))]
pub struct UnknownWord {
    pub word: String,
    pub expected: Vec<&'static str>,
}

/// The wire's words for an enum's values: the same words its serde form
/// uses, as the forms, the views and the CSV files spell them.
macro_rules! words {
    ($type:ident { $($value:ident => $word:literal),+ $(,)? }) => {
        impl $type {
            /// Every value, in the order the forms list them.
            pub const ALL: &'static [$type] = &[$($type::$value),+];

            /// The value's word on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($type::$value => $word),+
                }
            }
        }

        impl std::str::FromStr for $type {
            type Err = UnknownWord;

            fn from_str(word: &str) -> Result<$type, UnknownWord> {
                $type::ALL.iter().copied().find(|v| v.as_str() == word).ok_or_else(|| UnknownWord {
                    word: word.to_string(),
                    expected: $type::ALL.iter().map(|v| v.as_str()).collect(),
                })
            }
        }
    };
}

words!(Side { Buy => "buy", Sell => "sell" });
words!(OrderType { Limit => "limit", Market => "market" });
words!(TimeInForce {
    GoodTillCancelled => "GTC",
    ImmediateOrCancel => "IOC",
    FillOrKill => "FOK",
});
words!(SelfTradePrevention {
    CancelTaker => "cancel_taker",
    CancelMaker => "cancel_maker",
    CancelBoth => "cancel_both",
});
words!(TriggerKind { Stop => "stop", TakeProfit => "take_profit" });
words!(OrderKind {
    Limit => "limit",
    Market => "market",
    StopLimit => "stop_limit",
    StopMarket => "stop_market",
    TakeProfitLimit => "take_profit_limit",
    TakeProfitMarket => "take_profit_market",
});

/// Every kind of order a trader may place: what it enters the book as
/// ([`OrderType`]) and the trigger it waits for first, if any, in one word.
/// A new kind of order is a new value here; the compiler then finds every
/// place that must know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    Limit,
    Market,
    StopLimit,
    StopMarket,
    TakeProfitLimit,
    TakeProfitMarket,
}

impl OrderKind {
    /// The kind of an order of `order_type` waiting for a `trigger` kind.
    pub fn new(order_type: OrderType, trigger: Option<TriggerKind>) -> OrderKind {
        match (order_type, trigger) {
            (OrderType::Limit, None) => OrderKind::Limit,
            (OrderType::Market, None) => OrderKind::Market,
            (OrderType::Limit, Some(TriggerKind::Stop)) => OrderKind::StopLimit,
            (OrderType::Market, Some(TriggerKind::Stop)) => OrderKind::StopMarket,
            (OrderType::Limit, Some(TriggerKind::TakeProfit)) => OrderKind::TakeProfitLimit,
            (OrderType::Market, Some(TriggerKind::TakeProfit)) => OrderKind::TakeProfitMarket,
        }
    }

    /// What the order enters the book as.
    pub fn order_type(self) -> OrderType {
        if self.is_market() {
            OrderType::Market
        } else {
            OrderType::Limit
        }
    }

    /// The trigger it waits for before it enters, if any.
    pub fn trigger(self) -> Option<TriggerKind> {
        match self {
            OrderKind::Limit | OrderKind::Market => None,
            OrderKind::StopLimit | OrderKind::StopMarket => Some(TriggerKind::Stop),
            OrderKind::TakeProfitLimit | OrderKind::TakeProfitMarket => {
                Some(TriggerKind::TakeProfit)
            }
        }
    }

    /// Whether it trades at whatever the book offers (no limit price).
    pub fn is_market(self) -> bool {
        matches!(
            self,
            OrderKind::Market | OrderKind::StopMarket | OrderKind::TakeProfitMarket
        )
    }

    /// Whether it waits for a trigger price before it enters.
    pub fn has_trigger(self) -> bool {
        self.trigger().is_some()
    }

    /// Its name as the order form shows it.
    pub fn label(self) -> &'static str {
        match self {
            OrderKind::Limit => "Limit",
            OrderKind::Market => "Market",
            OrderKind::StopLimit => "Stop-limit",
            OrderKind::StopMarket => "Stop-market",
            OrderKind::TakeProfitLimit => "Take-profit limit",
            OrderKind::TakeProfitMarket => "Take-profit market",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each word parses back to its value and is the value's serde name,
    /// so the forms, the views and the stored events spell it alike.
    fn words_round_trip<T>(all: &[T])
    where
        T: Copy + PartialEq + std::fmt::Debug + Serialize + std::str::FromStr,
        T::Err: std::fmt::Debug,
    {
        for &value in all {
            let word = serde_json::to_value(value).unwrap();
            let word = word.as_str().unwrap();
            assert_eq!(word.parse::<T>().unwrap(), value);
        }
    }

    #[test]
    fn every_word_is_its_serde_name_and_parses_back() {
        words_round_trip(Side::ALL);
        words_round_trip(OrderType::ALL);
        words_round_trip(TimeInForce::ALL);
        words_round_trip(SelfTradePrevention::ALL);
        words_round_trip(TriggerKind::ALL);
        words_round_trip(OrderKind::ALL);
        let unknown = "hold".parse::<Side>().unwrap_err();
        assert_eq!(unknown.to_string(), r#""hold" is not one of buy, sell"#);
    }

    #[test]
    fn an_order_kind_is_its_type_and_trigger() {
        for &kind in OrderKind::ALL {
            assert_eq!(OrderKind::new(kind.order_type(), kind.trigger()), kind);
            assert_eq!(kind.is_market(), kind.order_type() == OrderType::Market);
            // The wire names a kind with a trigger `stop_*` or `take_profit_*`.
            assert_eq!(kind.has_trigger(), kind.as_str().contains('_'));
        }
        assert_eq!(
            OrderKind::TakeProfitMarket.trigger(),
            Some(TriggerKind::TakeProfit)
        );
        assert!(!OrderKind::Limit.has_trigger());
    }
}
