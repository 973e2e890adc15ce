//! `/keys`: where a trader creates, lists and revokes the API keys their
//! programs sign with. Plain HTML the server renders, with no script (like
//! `/history`): a create form, the list, and a revoke button per key. The
//! forms post to this site only (the same-origin check of `security`
//! covers them, and the session cookie is `SameSite=Lax`).
//!
//! An HMAC key's secret is shown once, on the page that answers its
//! creation, and never again: the server keeps it only sealed.

use axum::extract::{Extension, Form};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use leptos::prelude::*;
use serde::Deserialize;

use crate::server::clock::now_micros;
use crate::server::{CreatedKey, Exchange, KeyListing, NewKey};
use crate::site::trader::Trader;
use crate::time_format::utc_time;
use accounts::api_key::Scope;

/// The create form, as posted.
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    label: String,
    #[serde(default)]
    read: Option<String>,
    #[serde(default)]
    trade: Option<String>,
    /// Addresses or networks, separated by commas, spaces or lines.
    #[serde(default)]
    allowed_ips: String,
    /// Days the key lasts; empty for no expiry.
    #[serde(default)]
    expires_in_days: String,
    /// An Ed25519 public key (PEM); empty for an HMAC key.
    #[serde(default)]
    public_key: String,
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    key_id: String,
}

/// `GET /keys`.
pub async fn show(Extension(x): Extension<Exchange>, trader: Option<Trader>) -> Response {
    let Some(trader) = trader else {
        return logged_out();
    };
    page(StatusCode::OK, keys(&x, trader.account, None, None))
}

/// `POST /keys`: a new key, shown with its secret (HMAC) this once.
pub async fn create(
    Extension(x): Extension<Exchange>,
    trader: Option<Trader>,
    Form(form): Form<CreateForm>,
) -> Response {
    let Some(trader) = trader else {
        return logged_out();
    };
    let new = match new_key(&form) {
        Ok(new) => new,
        Err(why) => {
            return page(
                StatusCode::BAD_REQUEST,
                keys(&x, trader.account, None, Some(why)),
            );
        }
    };
    match x.create_api_key(trader.account, new).await {
        Ok(created) => page(
            StatusCode::OK,
            keys(&x, trader.account, Some(created), None),
        ),
        Err(e) => page(
            StatusCode::BAD_REQUEST,
            keys(&x, trader.account, None, Some(e.to_string())),
        ),
    }
}

/// `POST /keys/revoke`.
pub async fn revoke(
    Extension(x): Extension<Exchange>,
    trader: Option<Trader>,
    Form(form): Form<RevokeForm>,
) -> Response {
    let Some(trader) = trader else {
        return logged_out();
    };
    match x.revoke_api_key(trader.account, &form.key_id).await {
        Ok(()) => Redirect::to("/keys").into_response(),
        Err(e) => page(
            StatusCode::BAD_REQUEST,
            keys(&x, trader.account, None, Some(e.to_string())),
        ),
    }
}

/// The form read as a new key's terms.
fn new_key(form: &CreateForm) -> Result<NewKey, String> {
    let mut scopes = Vec::new();
    if form.read.is_some() {
        scopes.push(Scope::Read);
    }
    if form.trade.is_some() {
        scopes.push(Scope::Trade);
    }
    let allowed_ips = form
        .allowed_ips
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let expires_at = match form.expires_in_days.trim() {
        "" => None,
        days => {
            let days: u64 = days
                .parse()
                .ok()
                .filter(|d| (1..=3650).contains(d))
                .ok_or("a key lasts 1 to 3650 days, or leave it empty for no expiry")?;
            Some(now_micros() + days * 86_400_000_000)
        }
    };
    let public_key = form.public_key.trim();
    Ok(NewKey {
        label: form.label.clone(),
        scopes,
        allowed_ips,
        expires_at,
        ed25519_public_key: (!public_key.is_empty()).then(|| public_key.to_string()),
    })
}

fn logged_out() -> Response {
    let body = view! {
        <p role="alert">"Log in on the trading terminal to manage your API keys."</p>
    };
    page(StatusCode::UNAUTHORIZED, body.into_any())
}

/// The list, the create form, and what the last action said.
fn keys(
    x: &Exchange,
    account: orderbook::AccountId,
    created: Option<CreatedKey>,
    problem: Option<String>,
) -> AnyView {
    let listed = x.api_keys(account);
    let created = created.map(|c| {
        let secret = c.secret.map(|s| {
            view! {
                <p>"Secret (shown this once; the exchange keeps it only sealed): "
                    <code data-secret="">{s}</code></p>
            }
        });
        view! {
            <section class="key-created" role="status">
                <h2>"Key created"</h2>
                <p>"API key: " <code data-key-id="">{c.key_id}</code></p>
                {secret}
            </section>
        }
    });
    let problem = problem.map(|p| view! { <p role="alert">{p}</p> });
    let rows: Vec<_> = listed.into_iter().map(key_row).collect();
    view! {
        {problem}
        {created}
        <form method="post" action="/keys" class="key-form">
            <h2>"New key"</h2>
            <label>"Label " <input name="label" required maxlength="64" /></label>
            <fieldset>
                <legend>"Scopes"</legend>
                <label><input type="checkbox" name="read" checked /> " read"</label>
                <label><input type="checkbox" name="trade" /> " trade"</label>
            </fieldset>
            <label>"Allowed addresses (optional: IPs or networks, comma-separated) "
                <input name="allowed_ips" placeholder="203.0.113.7, 10.0.0.0/8" /></label>
            <label>"Expires in days (optional) " <input name="expires_in_days" inputmode="numeric" /></label>
            <label>"Ed25519 public key (optional, PEM; without one the exchange makes an HMAC secret) "
                <textarea name="public_key" rows="3"></textarea></label>
            <button type="submit">"Create key"</button>
        </form>
        <table class="keys">
            <thead><tr>
                <th>"Label"</th><th>"Key"</th><th>"Kind"</th><th>"Scopes"</th>
                <th>"Addresses"</th><th>"Expires"</th><th>"Created"</th><th>"Last used"</th><th></th>
            </tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

fn key_row(k: KeyListing) -> impl IntoView {
    let key = k.record.key;
    let when = |us: u64| utc_time(us / 1000);
    let ips = if key.allowed_ips.is_empty() {
        "any".to_string()
    } else {
        key.allowed_ips.join(", ")
    };
    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
    let action = match k.record.revoked_at {
        Some(at) => view! { <span>"revoked " {when(at)}</span> }.into_any(),
        None => view! {
            <form method="post" action="/keys/revoke">
                <input type="hidden" name="key_id" value=key.key_id.clone() />
                <button type="submit">"Revoke"</button>
            </form>
        }
        .into_any(),
    };
    view! {
        <tr>
            <td>{key.label}</td>
            <td><code>{key.key_id}</code></td>
            <td>{key.credential.kind()}</td>
            <td>{scopes.join(", ")}</td>
            <td>{ips}</td>
            <td>{key.expires_at.map_or("never".to_string(), when)}</td>
            <td>{when(key.created_at)}</td>
            <td>{k.last_used_ms.map_or("not here yet".to_string(), utc_time)}</td>
            <td>{action}</td>
        </tr>
    }
}

fn page(status: StatusCode, body: AnyView) -> Response {
    super::plain_page::page(status, "API keys", "API keys", body)
}
