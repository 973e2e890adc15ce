//! How the native API refuses: a status and an [`ApiError`] with a stable
//! code word, from every reason a request can fail.

use accounts::AccountError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::schema::ApiError;
use crate::server::request_limits::OverLimit;
use crate::server::{ExchangeError, KeyRefusal};
use crate::site::signed::SignedRefusal;

/// A refused request: nothing it asked for was done.
#[derive(Debug)]
pub struct Refused {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl Refused {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    pub fn bad(message: impl Into<String>) -> Refused {
        Refused::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn not_found(message: impl Into<String>) -> Refused {
        Refused::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = ApiError {
            code: self.code.to_string(),
            message: self.message,
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(s) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        response
    }
}

impl From<ExchangeError> for Refused {
    fn from(e: ExchangeError) -> Refused {
        let message = e.to_string();
        let (status, code) = match &e {
            ExchangeError::UnknownMarket(_) => (StatusCode::NOT_FOUND, "not_found"),
            ExchangeError::Account(AccountError::InsufficientFunds { .. }) => {
                (StatusCode::BAD_REQUEST, "insufficient_funds")
            }
            ExchangeError::Rejected(orderbook::RejectReason::UnknownOrder) => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            ExchangeError::Rejected(_)
            | ExchangeError::NoLiquidity { .. }
            | ExchangeError::TooManyOpenOrders(_)
            | ExchangeError::TooManyStopOrders(_)
            | ExchangeError::TooLarge(_) => (StatusCode::BAD_REQUEST, "rejected"),
            ExchangeError::Unavailable
            | ExchangeError::MarketPaused(_)
            | ExchangeError::NotLeader => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ExchangeError::NameLocked(_) | ExchangeError::AddressLocked(_) => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_requests")
            }
            ExchangeError::NotLoggedIn | ExchangeError::BadCredentials => {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            }
            ExchangeError::Account(_) | ExchangeError::BadPublicKey => {
                (StatusCode::BAD_REQUEST, "bad_request")
            }
        };
        Refused::new(status, code, message)
    }
}

impl From<SignedRefusal> for Refused {
    fn from(e: SignedRefusal) -> Refused {
        let status = match &e {
            SignedRefusal::Key(KeyRefusal::MissingScope(_)) => StatusCode::FORBIDDEN,
            SignedRefusal::Key(_) | SignedRefusal::NoKey => StatusCode::UNAUTHORIZED,
            _ => StatusCode::BAD_REQUEST,
        };
        let code = if status == StatusCode::BAD_REQUEST {
            "bad_request"
        } else {
            "unauthorized"
        };
        Refused::new(status, code, e.to_string())
    }
}

impl From<OverLimit> for Refused {
    fn from(o: OverLimit) -> Refused {
        Refused {
            retry_after_s: Some(o.retry_after_s()),
            ..Refused::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                o.to_string(),
            )
        }
    }
}
