//! What server functions need from the request they serve: the exchange,
//! the trader the request comes from ([`Trader`]), and for the market feed
//! the socket limits and the client's address.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, header};
use leptos::prelude::*;
use orderbook::AccountId;

use super::trader::Trader;
use crate::api::AccountView;
use crate::error::UserError;
use crate::server::credentials;
use crate::server::feed_limits::{FeedLimits, SocketCounts};
use crate::server::request_limits::{OverLimit, RequestLimits};
use crate::server::{Exchange, ExchangeError};

impl From<ExchangeError> for UserError {
    fn from(e: ExchangeError) -> Self {
        use accounts::AccountError as A;
        let field = match &e {
            ExchangeError::Account(A::InvalidUsername | A::UsernameTaken) => Some("username"),
            ExchangeError::Account(A::InvalidPassword) => Some("password"),
            _ => None,
        };
        if matches!(e, ExchangeError::Unavailable) {
            tracing::warn!("answered a request with: {e}");
        }
        let status = match &e {
            ExchangeError::NotLoggedIn | ExchangeError::BadCredentials => 401,
            ExchangeError::UnknownMarket(_) => 404,
            ExchangeError::NameLocked(_) | ExchangeError::AddressLocked(_) => 429,
            // The exchange's side: try again later.
            ExchangeError::Unavailable
            | ExchangeError::MarketPaused(_)
            | ExchangeError::NotLeader => 503,
            ExchangeError::Account(_)
            | ExchangeError::Rejected(_)
            | ExchangeError::NoLiquidity { .. }
            | ExchangeError::TooManyOpenOrders(_)
            | ExchangeError::TooManyStopOrders(_)
            | ExchangeError::TooLarge(_)
            | ExchangeError::BadPublicKey => 400,
        };
        UserError::answering(status, field, e.to_string())
    }
}

pub fn exchange() -> Result<Exchange, UserError> {
    use_context::<Exchange>()
        .ok_or_else(|| UserError::answering(503, None, "the exchange is not running"))
}

/// The feed limits, the open sockets per address, and the address of the
/// client asking. Without the site's limits (a test serving the router
/// alone) the defaults hold; without a known address (no connection info)
/// every such client counts as one.
pub async fn feed_admission() -> (FeedLimits, SocketCounts, IpAddr) {
    let limits = use_context::<FeedLimits>().unwrap_or_default();
    let counts = use_context::<SocketCounts>().unwrap_or_default();
    (limits, counts, client_address().await)
}

/// The address of the client asking; without connection info (a test
/// serving the router alone) every client is the same one.
pub async fn client_address() -> IpAddr {
    leptos_axum::extract::<ConnectInfo<SocketAddr>>()
        .await
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The trader the request being served comes from (a server function's
/// call, a page being rendered, a socket's upgrade), if logged in.
pub fn current_trader() -> Option<Trader> {
    Trader::of_parts(&use_context::<axum::http::request::Parts>()?)
}

/// The logged-in account of the page being rendered: what the trader's
/// panel paints first.
pub fn account_view_now() -> Option<AccountView> {
    let trader = current_trader()?;
    exchange().ok()?.view(trader.account)
}

/// The logged-in account, or a "please log in" error.
pub fn current_account() -> Result<(Exchange, AccountId), UserError> {
    let exchange = exchange()?;
    let trader = current_trader().ok_or_else(|| UserError::from(ExchangeError::NotLoggedIn))?;
    Ok((exchange, trader.account))
}

/// Counts one new order of `account` against its order rate (the bucket
/// its API orders spend too) before any work is done for it; over the
/// rate, a 429 with `Retry-After`. Without the site's limits (a test
/// serving the router alone) nothing is counted.
pub fn count_new_order(account: AccountId) -> Result<(), UserError> {
    let Some(limits) = request_limits() else {
        return Ok(());
    };
    limits.order(account, Instant::now()).map_err(over_limit)
}

/// Spends `weight` of the asking address's request weight (the bucket its
/// API requests spend too) and of its costly reads' burst before any work:
/// the reads that cost the server most are paced per address (see
/// `RequestLimits::costly`). Over either, a 429 with `Retry-After`.
pub async fn spend_weight(weight: u32) -> Result<(), UserError> {
    let Some(limits) = request_limits() else {
        return Ok(());
    };
    let address = client_address().await;
    limits
        .costly(address, weight, Instant::now())
        .map_err(over_limit)
}

/// The site's request buckets (none for a router served without them).
pub fn request_limits() -> Option<RequestLimits> {
    use_context::<axum::http::request::Parts>()
        .and_then(|p| p.extensions.get::<RequestLimits>().cloned())
}

/// A limit's refusal as the page is told it.
fn over_limit(over: OverLimit) -> UserError {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.insert_header(header::RETRY_AFTER, HeaderValue::from(over.retry_after_s()));
    }
    UserError::answering(429, None, over.to_string())
}

/// Sets (or, with `None`, clears) the session cookie on the response.
pub fn set_session_cookie(token: Option<&str>) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>()
        && let Ok(exchange) = exchange()
        && let Ok(value) =
            HeaderValue::from_str(&credentials::set_cookie(token, &exchange.session_policy()))
    {
        response.append_header(header::SET_COOKIE, value);
    }
}
