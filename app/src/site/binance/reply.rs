//! What the Binance-compatible surface answers with when it refuses: a
//! JSON `{"code", "msg"}` with Binance's code for the case (so clients map
//! it to the same exception as Binance's own), and how its market ids
//! (`BTCUSD`) name ours (`BTC-USD`).

use accounts::AccountError;
use axum::Json;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderbook::{MarketSpec, RejectReason};
use serde_json::json;

use crate::server::request_limits::OverLimit;
use crate::server::{Exchange, ExchangeError, KeyRefusal};
use crate::site::signed::SignedRefusal;

/// A refusal: nothing the request asked for was done.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub code: i32,
    pub msg: String,
    /// For a request over a limit: when to try again.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    pub fn new(status: StatusCode, code: i32, msg: impl Into<String>) -> Refusal {
        Refusal {
            status,
            code,
            msg: msg.into(),
            retry_after: None,
        }
    }

    /// A request that cannot be read: a parameter missing or malformed.
    pub fn bad(code: i32, msg: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, code, msg)
    }

    /// A mandatory parameter is missing.
    pub fn missing(name: &str) -> Refusal {
        Refusal::bad(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }

    /// A parameter has a value that cannot be used.
    pub fn illegal(name: &str, why: impl std::fmt::Display) -> Refusal {
        Refusal::bad(
            -1100,
            format!("Illegal characters found in parameter '{name}': {why}"),
        )
    }

    pub fn unknown_symbol(symbol: &str) -> Refusal {
        Refusal::bad(-1121, format!("Invalid symbol: {symbol}"))
    }

    pub fn unknown_order() -> Refusal {
        Refusal::bad(-2013, "Order does not exist.")
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let body = Json(json!({ "code": self.code, "msg": self.msg }));
        let mut response = (self.status, body).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<OverLimit> for Refusal {
    fn from(o: OverLimit) -> Refusal {
        let msg = format!("{o}.");
        Refusal {
            retry_after: Some(o.retry_after),
            ..Refusal::new(StatusCode::TOO_MANY_REQUESTS, -1003, msg)
        }
    }
}

impl From<SignedRefusal> for Refusal {
    fn from(e: SignedRefusal) -> Refusal {
        let unauthorized = StatusCode::UNAUTHORIZED;
        match &e {
            SignedRefusal::NoKey => Refusal::new(unauthorized, -2014, e.to_string()),
            SignedRefusal::NoSignature => Refusal::bad(-1102, e.to_string()),
            SignedRefusal::NoTimestamp => Refusal::bad(-1102, e.to_string()),
            SignedRefusal::BadRecvWindow => Refusal::bad(-1131, e.to_string()),
            SignedRefusal::Timestamp(_) => Refusal::bad(-1021, e.to_string()),
            SignedRefusal::Key(KeyRefusal::BadSignature) => Refusal::new(
                unauthorized,
                -1022,
                "Signature for this request is not valid.",
            ),
            SignedRefusal::Key(k) => Refusal::new(
                unauthorized,
                -2015,
                format!("Invalid API-key, IP, or permissions for action: {k}."),
            ),
        }
    }
}

impl From<ExchangeError> for Refusal {
    fn from(e: ExchangeError) -> Refusal {
        use RejectReason as R;
        let msg = e.to_string();
        match &e {
            ExchangeError::UnknownMarket(s) => Refusal::unknown_symbol(s),
            ExchangeError::Rejected(R::UnknownOrder | R::NotOrderOwner) => {
                Refusal::bad(-2011, "Unknown order sent.")
            }
            ExchangeError::Rejected(R::DuplicateClientOrderId) => {
                Refusal::bad(-2010, format!("Duplicate order sent: {msg}."))
            }
            ExchangeError::Rejected(
                R::PriceNotPositive
                | R::PriceOffTick
                | R::PriceTooHigh
                | R::QuantityNotPositive
                | R::QuantityOffLot
                | R::QuantityBelowMinimum
                | R::QuantityTooLarge
                | R::QuoteAmountNotPositive
                | R::QuoteAmountOffGrid
                | R::QuoteAmountTooLarge
                | R::ValueTooLarge,
            ) => Refusal::bad(-1013, format!("Filter failure: {msg}.")),
            // Binance's own words where clients match them exactly.
            ExchangeError::Rejected(R::TriggerAlreadyReached) => {
                Refusal::bad(-2010, "Stop price would trigger immediately.")
            }
            ExchangeError::Rejected(R::PostOnlyWouldTake) => {
                Refusal::bad(-2010, "Order would immediately match and take.")
            }
            ExchangeError::Rejected(_) => Refusal::bad(-2010, msg),
            ExchangeError::Account(AccountError::InsufficientFunds { .. }) => {
                tracing::debug!("refused for funds: {msg}");
                Refusal::bad(
                    -2010,
                    "Account has insufficient balance for requested action.",
                )
            }
            ExchangeError::NoLiquidity { .. }
            | ExchangeError::TooManyOpenOrders(_)
            | ExchangeError::TooManyStopOrders(_)
            | ExchangeError::TooLarge(_) => Refusal::bad(-2010, msg),
            ExchangeError::Unavailable
            | ExchangeError::MarketPaused(_)
            | ExchangeError::NotLeader => Refusal::new(StatusCode::SERVICE_UNAVAILABLE, -1001, msg),
            ExchangeError::NameLocked(_) | ExchangeError::AddressLocked(_) => {
                Refusal::new(StatusCode::TOO_MANY_REQUESTS, -1003, msg)
            }
            ExchangeError::NotLoggedIn | ExchangeError::BadCredentials => {
                Refusal::new(StatusCode::UNAUTHORIZED, -2015, msg)
            }
            ExchangeError::Account(_) | ExchangeError::BadPublicKey => Refusal::bad(-1000, msg),
        }
    }
}

/// A market's id here: its symbol without the dash (`BTCUSD`), as
/// Binance's are, and as ccxt needs (an id with a dash reads as an option
/// contract there).
pub fn market_id(spec: &MarketSpec) -> String {
    spec.symbol.replace('-', "")
}

/// The market a request's `symbol` names (`BTCUSD`, or `BTC-USD`).
pub fn market(exchange: &Exchange, id: Option<&str>) -> Result<MarketSpec, Refusal> {
    let id = id.ok_or_else(|| Refusal::missing("symbol"))?;
    exchange
        .market_specs()
        .into_iter()
        .find(|m| market_id(m).eq_ignore_ascii_case(id) || m.symbol == id)
        .ok_or_else(|| Refusal::unknown_symbol(id))
}
