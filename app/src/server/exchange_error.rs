//! What can go wrong when a trader asks the exchange for something, in
//! words that can be shown to them.

use accounts::AccountError;
use orderbook::RejectReason;

use super::streams::StreamError;

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error(transparent)]
    Account(#[from] AccountError),
    /// A rule of the book refused it. Someone else's order reads as no
    /// order at all (see the `From` below).
    #[error("{0}")]
    Rejected(RejectReason),
    #[error("wrong username or password")]
    BadCredentials,
    #[error("too many failed log-ins for this name; try again in {} s", .0.as_millis().div_ceil(1000).max(1))]
    NameLocked(std::time::Duration),
    #[error("too many attempts from your address; try again in {} s", .0.as_millis().div_ceil(1000).max(1))]
    AddressLocked(std::time::Duration),
    #[error("please log in first")]
    NotLoggedIn,
    #[error("there is no market {0}")]
    UnknownMarket(String),
    #[error(
        "there is nothing to {} on {symbol} right now: the book has no {}; place a limit order instead",
        if matches!(side, orderbook::Side::Buy) { "buy" } else { "sell to" },
        if matches!(side, orderbook::Side::Buy) { "asks" } else { "bids" }
    )]
    NoLiquidity {
        symbol: String,
        side: orderbook::Side,
    },
    #[error("you have {0} open orders, the most an account may have; cancel some first")]
    TooManyOpenOrders(usize),
    #[error(
        "you have {0} stop orders waiting for their trigger, the most an account may have; \
         cancel some first"
    )]
    TooManyStopOrders(usize),
    #[error("the exchange could not record this just now; nothing was changed, please try again")]
    Unavailable,
    #[error(
        "market {0} is paused: the event store has not yet confirmed its last write; \
         nothing was changed, please try again shortly"
    )]
    MarketPaused(String),
    #[error(
        "this server is not taking orders right now: another exchange server leads, or one is \
         taking over; nothing was changed, please try again shortly"
    )]
    NotLeader,
    #[error(
        "this order would write {0} events at once, more than one write to the log can hold; \
         place a smaller order"
    )]
    TooLarge(usize),
    #[error(
        "not an Ed25519 public key: paste the PEM (-----BEGIN PUBLIC KEY-----), \
         or base64 of its 32 bytes"
    )]
    BadPublicKey,
}

impl ExchangeError {
    /// Whether this is the exchange refusing an order for what it asks (the
    /// book's rules, the funds, a cap): the trader's history keeps those.
    /// Faults and unknown markets are not orders refused.
    pub fn refuses_order(&self) -> bool {
        matches!(
            self,
            ExchangeError::Rejected(_)
                | ExchangeError::Account(AccountError::InsufficientFunds { .. })
                | ExchangeError::NoLiquidity { .. }
                | ExchangeError::TooManyOpenOrders(_)
                | ExchangeError::TooManyStopOrders(_)
                | ExchangeError::TooLarge(_)
        )
    }

    /// A trader's history (`what`) that could not be read back from the
    /// store: logged, as an error where the stream disagrees with what the
    /// server folded from it, and answered as unavailable.
    pub fn history_unreadable(what: &str, e: StreamError) -> ExchangeError {
        match e {
            StreamError::Corrupt { .. } => tracing::error!("{what} cannot be read back: {e}"),
            _ => tracing::warn!("{what} cannot be read from the store: {e}"),
        }
        ExchangeError::Unavailable
    }
}

impl From<RejectReason> for ExchangeError {
    /// A book's refusal, as the trader is told it: an order of someone
    /// else's is answered as unknown, like an id nobody holds, so the
    /// answer does not tell a stranger which ids are live orders. (The
    /// log keeps the book's own reason.)
    fn from(reason: RejectReason) -> ExchangeError {
        ExchangeError::Rejected(match reason {
            RejectReason::NotOrderOwner => RejectReason::UnknownOrder,
            other => other,
        })
    }
}
