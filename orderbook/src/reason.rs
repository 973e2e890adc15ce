//! Why a command was refused or an order left the book without filling.

use serde::{Deserialize, Serialize};

/// Why a command was rejected. Rejected commands change nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    #[error("the order is for another market")]
    WrongMarket,
    #[error("order ids must increase: this id was already used")]
    DuplicateOrderId,
    #[error("price must be greater than zero")]
    PriceNotPositive,
    #[error("price is not a multiple of the tick size")]
    PriceOffTick,
    #[error("price is too high")]
    PriceTooHigh,
    #[error("quantity must be greater than zero")]
    QuantityNotPositive,
    #[error("quantity is not a multiple of the lot size")]
    QuantityOffLot,
    #[error("quantity is below the market's minimum order size")]
    QuantityBelowMinimum,
    #[error("quantity is too large")]
    QuantityTooLarge,
    #[error("quote amount must be greater than zero")]
    QuoteAmountNotPositive,
    #[error("quote amount has more decimal places than the market trades")]
    QuoteAmountOffGrid,
    #[error("quote amount is too large")]
    QuoteAmountTooLarge,
    #[error("a limit order needs a price")]
    MissingPrice,
    #[error("market orders take no price")]
    PriceOnMarketOrder,
    #[error("fill-or-kill orders must be sized by quantity")]
    FillOrKillNeedsQuantity,
    #[error("give either a quantity or a quote amount, not both or neither")]
    QuantityOrQuoteAmount,
    #[error("only market orders can be sized by quote amount")]
    QuoteAmountNeedsMarketOrder,
    #[error("market orders cannot rest on the book: use IOC or FOK")]
    MarketOrderCannotRest,
    #[error("post-only applies to limit orders resting on the book")]
    PostOnlyNeedsGtcLimit,
    #[error("post-only order would take liquidity")]
    PostOnlyWouldTake,
    #[error("no open order with this id")]
    UnknownOrder,
    #[error("the order belongs to another account")]
    NotOrderOwner,
    #[error("the amendment changes nothing")]
    AmendmentChangesNothing,
    #[error(
        "a stop or take-profit needs a last trade price to trigger from: this market has not traded yet"
    )]
    NoLastPrice,
    #[error(
        "the trigger price is already reached by the last trade price: place the order itself instead"
    )]
    TriggerAlreadyReached,
    #[error("post-only does not apply to stop and take-profit orders")]
    PostOnlyWithTrigger,
    #[error("only an order held for its trigger has a trigger price to change")]
    NotATriggerOrder,
    /// A market order into an empty side would do nothing: it is refused
    /// instead of accepted and cancelled at once. (A stop-market order
    /// waits for its trigger, and enters whatever the book holds then.)
    #[error(
        "there is nothing on the other side of the book to trade with: place a limit order instead"
    )]
    NoLiquidity,
    #[error("another open order of yours in this market has this client order id")]
    DuplicateClientOrderId,
    /// Price × quantity past 28 digits: more than a decimal holds exactly.
    #[error("price × quantity is too large: an order's value must fit in 28 digits")]
    ValueTooLarge,
}

/// Why an accepted order left the book before it filled completely.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The owner cancelled it.
    User,
    /// Immediate-or-cancel: what did not fill at once.
    ImmediateOrCancelRemainder,
    /// Fill-or-kill: the book could not fill all of it at once.
    FillOrKillUnfilled,
    /// A market order ran out of liquidity (or of quote amount for one lot).
    MarketOrderRemainder,
    /// It would have traded with an order of the same account.
    SelfTradePrevention,
}
