//! What server functions need from the request they serve: the exchange,
//! and the account whose session cookie came with the request.

use axum::http::{HeaderMap, HeaderValue, header};
use leptos::prelude::*;
use orderbook::AccountId;

use super::exchange::Exchange;
use super::exchange_error::ExchangeError;
use super::session;
use crate::error::UserError;

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
        UserError {
            field: field.map(str::to_string),
            message: e.to_string(),
        }
    }
}

pub fn exchange() -> Result<Exchange, UserError> {
    use_context::<Exchange>().ok_or_else(|| UserError::new("the exchange is not running"))
}

/// The session token the browser sent, if any.
pub async fn session_token() -> Option<String> {
    let headers: HeaderMap = leptos_axum::extract().await.ok()?;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(session::token_from_cookies)
        .map(str::to_string)
}

/// The logged-in account, or a "please log in" error.
pub async fn current_account() -> Result<(Exchange, AccountId), UserError> {
    let exchange = exchange()?;
    let account = session_token()
        .await
        .and_then(|t| exchange.account_for(&t))
        .ok_or_else(|| UserError::from(ExchangeError::NotLoggedIn))?;
    Ok((exchange, account))
}

/// Sets (or, with `None`, clears) the session cookie on the response.
pub fn set_session_cookie(token: Option<&str>) {
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>()
        && let Ok(value) = HeaderValue::from_str(&session::set_cookie(token))
    {
        response.append_header(header::SET_COOKIE, value);
    }
}
