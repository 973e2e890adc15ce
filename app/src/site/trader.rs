//! Who a request of the site comes from: the [`Trader`] extractor. Every
//! way into a trader's account from the site starts here (the pages'
//! server functions, the history and keys pages, the CSV downloads, the
//! market feed's socket), so there is one place that reads the session
//! cookie. Programs come in through API keys instead (`signed.rs`), never
//! through the cookie.

use std::convert::Infallible;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use orderbook::AccountId;

use crate::server::Exchange;
use crate::server::credentials;

/// The trader a request comes from: the account its session cookie is
/// logged in to, while the session lasts. Finding one counts as a use of
/// the session (see [`Exchange::use_session`]).
///
/// As an extractor it reads the exchange the site's router puts in every
/// request's extensions; `Trader` answers 401 without a live session, and
/// `Option<Trader>` lets the handler say it its own way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trader {
    pub account: AccountId,
    /// The session's token: to end it (log out), or to check it again
    /// later (a socket that outlives the request).
    pub session: String,
}

impl Trader {
    /// The trader of a request's headers on `exchange`.
    pub fn of(exchange: &Exchange, headers: &HeaderMap) -> Option<Trader> {
        let session = session_token(
            headers,
            credentials::cookie_name(&exchange.session_policy()),
        )?;
        let account = exchange.use_session(&session)?;
        Some(Trader { account, session })
    }

    /// The trader of a request's parts, on the exchange they carry.
    pub fn of_parts(parts: &Parts) -> Option<Trader> {
        let exchange = parts.extensions.get::<Exchange>()?;
        Trader::of(exchange, &parts.headers)
    }
}

/// The session token among a request's cookies (the one called `name`),
/// logged in or not.
pub fn session_token(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| credentials::token_from_cookies(c, name))
        .map(str::to_string)
}

/// A request without a live session.
#[derive(Debug)]
pub struct NotLoggedIn;

impl IntoResponse for NotLoggedIn {
    fn into_response(self) -> Response {
        (StatusCode::UNAUTHORIZED, "please log in first\n").into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Trader {
    type Rejection = NotLoggedIn;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Trader, NotLoggedIn> {
        Trader::of_parts(parts).ok_or(NotLoggedIn)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Trader {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Trader>, Infallible> {
        Ok(Trader::of_parts(parts))
    }
}
