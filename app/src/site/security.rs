//! The site's guards on every request: the page's content security
//! policy, the headers every answer carries, and the refusal of websockets
//! and server function calls from other sites' pages.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use leptos::prelude::*;

/// The page's content security policy, with the nonce of the page being
/// rendered (Leptos puts it on the scripts it writes): scripts only from
/// this site or with that nonce, WebAssembly allowed, connections (the
/// server functions and the market feed's websocket) only to this site, no
/// framing by any page, no plugins, forms posting only here. Inline styles
/// stay allowed: the chart's crosshair and last-price line are placed with
/// `style` attributes.
pub(super) fn content_security_policy() {
    let (Some(answer), Some(nonce)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        leptos::nonce::use_nonce(),
    ) else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        answer.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Headers on every answer: no type sniffing, no framing (also for answers
/// that carry no page policy), and no full address sent to other sites.
/// Behind HTTPS (`--secure-cookies`, so `behind_tls`), also HSTS: the
/// browser comes back over TLS only, for a year, so nobody on the way can
/// strip TLS from its next visit.
pub(super) async fn security_headers(
    State(behind_tls): State<bool>,
    mut response: Response,
) -> Response {
    let headers = response.headers_mut();
    if behind_tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    response
}

/// Private answers are not kept by browsers or caches on the way
/// (`Cache-Control: no-store`): every answer to a request carrying a
/// session (the terminal with its account, server functions, `/history`,
/// its CSV downloads, `/keys`) and every signed API request's, except
/// the site's static files.
pub(super) async fn private_no_store(request: Request, next: Next) -> Response {
    let path = request.uri().path();
    let headers = request.headers();
    let static_file = path.starts_with("/pkg/") || path == "/favicon.ico";
    let private = headers.get_all(header::COOKIE).iter().any(|c| {
        use crate::server::credentials::{COOKIE, SECURE_COOKIE, token_from_cookies};
        c.to_str().is_ok_and(|c| {
            token_from_cookies(c, COOKIE).is_some()
                || token_from_cookies(c, SECURE_COOKIE).is_some()
        })
    }) || headers.contains_key("x-mbx-apikey")
        || headers.contains_key("x-api-key")
        || path.starts_with("/history")
        || path.starts_with("/keys");
    let no_store = private && !static_file;
    let mut response = next.run(request).await;
    if no_store {
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Whether a request came from a page of another origin than this site's
/// (and not one of the origins allowed besides it). Browsers send `Origin`
/// on every websocket and every cross-origin post; a client that sends
/// none is not a page of another site.
fn foreign_origin<'a>(headers: &'a HeaderMap, allowed: &[String]) -> Option<&'a str> {
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or_default();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let own = host.is_some_and(|h| {
        origin.strip_prefix("http://") == Some(h) || origin.strip_prefix("https://") == Some(h)
    });
    (!own && !allowed.iter().any(|a| a == origin)).then_some(origin)
}

/// What a server function's body may be: what the page's forms and the
/// server functions' own client send. Anything else (`text/plain` above
/// all, which a page of any site can post without asking) is refused.
const SERVER_FN_BODIES: [&str; 2] = ["application/x-www-form-urlencoded", "application/json"];

/// Keeps other sites from acting in a visitor's name, since every request
/// carries the visitor's cookies: a websocket upgrade or a server function
/// call from a page of another origin is refused with 403, and so is a
/// server function posted with a body type no page of this site sends.
pub(super) async fn same_origin_only(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok());
    let socket = upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let path = request.uri().path();
    // The server functions, and the key page's forms.
    let server_fn = request.method() == Method::POST
        && (path.starts_with("/api/") || path.starts_with("/keys"));
    if (socket || server_fn)
        && let Some(origin) = foreign_origin(headers, &allowed)
    {
        let what = if socket { "a websocket" } else { "a request" };
        tracing::info!(origin, "refused {what} from another site");
        let why = format!(
            "{what} from {origin} is refused: only this site's own pages may make one \
             (the server allows more with --allowed-origins)"
        );
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    if server_fn {
        let body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let essence = body.map(|b| b.split(';').next().unwrap_or_default().trim());
        let accepted =
            essence.is_some_and(|e| SERVER_FN_BODIES.iter().any(|a| e.eq_ignore_ascii_case(a)));
        if !accepted {
            let why = format!(
                "a request with a body of type {} is refused: send {}",
                body.unwrap_or("(none)"),
                SERVER_FN_BODIES.join(" or ")
            );
            return (StatusCode::FORBIDDEN, why).into_response();
        }
    }
    next.run(request).await
}
