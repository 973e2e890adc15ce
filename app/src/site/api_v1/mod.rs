//! The native API, `/api/v1`: our own contract for programs, documented
//! by an OpenAPI 3.1 document made from its handlers (each registered
//! once, for routing and for the document alike, so the two cannot
//! drift). Served at `/api/v1/openapi.json`, and readable as a page at
//! `/api/docs`.
//!
//! - `public`: market data anyone may read;
//! - `private`: a trader's orders, fills and balances, signed with an API
//!   key (see `site::signed` for how);
//! - `schema`: the wire types, every amount an exact decimal string;
//! - `refusal`: errors as `{"code", "message"}`;
//! - `channels`: the websocket at `/api/v1/ws` (trades, candles, ticker,
//!   depth diffs, and the account after a login).

use std::time::Instant;

use axum::extract::Request;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::server::request_limits::RequestLimits;

mod channels;
mod private;
mod public;
mod refusal;
mod schema;

/// Where the API is mounted.
pub const PREFIX: &str = "/api/v1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Satoshi Exchange API",
        version = "1",
        description = "The exchange's own API for programs. Amounts are exact decimal strings, \
            times milliseconds since the Unix epoch.\n\nSigned endpoints take an API key made on \
            the site's /keys page: send `X-API-KEY`, `X-API-TIMESTAMP` (ms; within 5 s of the \
            server's clock, or within `X-API-RECV-WINDOW` ms, at most 60,000) and \
            `X-API-SIGNATURE`, over `{timestamp}\\n{METHOD}\\n{path}\\n{query}\\n{body}`: the \
            lower-case hex of HMAC-SHA256 with the key's secret, or the base64 of an Ed25519 \
            signature with the key's private half. Over a limit the answer is 429 with \
            `Retry-After`."
    ),
    modifiers(&Security),
    tags(
        (name = "market data", description = "Public: anyone may call these."),
        (name = "orders", description = "Signed: `read` to look, `trade` to place and cancel."),
        (name = "account", description = "Signed, `read`.")
    )
)]
struct Document;

/// The API key header scheme, named in the document.
struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-KEY"))),
        );
    }
}

/// The API's routes and its document, from the same registrations.
fn api() -> (Router, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(Document::openapi())
        .routes(routes!(public::time))
        .routes(routes!(public::markets))
        .routes(routes!(public::depth))
        .routes(routes!(public::trades))
        .routes(routes!(public::candles))
        .routes(routes!(public::ticker))
        .routes(routes!(
            private::place,
            private::open_orders,
            private::cancel_all
        ))
        .routes(routes!(private::get_order, private::cancel, private::amend))
        .routes(routes!(
            private::get_by_client_id,
            private::cancel_by_client_id
        ))
        .routes(routes!(private::order_history))
        .routes(routes!(private::fill_history))
        .routes(routes!(private::balances))
        .split_for_parts()
}

/// The OpenAPI document as served.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = api().1;
    doc.servers = Some(vec![utoipa::openapi::Server::new(PREFIX)]);
    doc
}

/// The routes under [`PREFIX`], with the document at `/openapi.json`.
pub fn routes() -> Router {
    let (router, _) = api();
    let doc = document();
    router
        .route("/openapi.json", get(move || async move { Json(doc) }))
        .route_layer(axum::middleware::from_fn(by_address))
        // The socket counts against the feed's sockets per address instead.
        .route(channels::PATH, get(channels::serve))
}

/// `/api/docs`: the document as a page to read, with no script.
pub async fn docs_page() -> Response {
    let doc = document();
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><meta name=\"color-scheme\" content=\"dark\">\
         <title>API · Satoshi Exchange</title><link rel=\"stylesheet\" href=\"/pkg/exchange.css\"></head>\
         <body><main class=\"history api-docs\"><div class=\"history-head\"><h1>",
    );
    html.push_str(&escape(&doc.info.title));
    html.push_str("</h1><a href=\"/api/v1/openapi.json\">OpenAPI document</a></div>");
    if let Some(d) = &doc.info.description {
        for p in d.split("\n\n") {
            html.push_str(&format!("<p>{}</p>", escape(p)));
        }
    }
    html.push_str(
        "<p>Binance-compatible REST for existing bots: <code>/compat/binance/api/v3</code> \
         (see the README's \"Trading from a program\").</p>",
    );
    for (path, item) in &doc.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ];
        for (method, op) in operations
            .into_iter()
            .filter_map(|(m, op)| Some((m, op.as_ref()?)))
        {
            html.push_str(&format!(
                "<section><h2><code>{} {}{}</code></h2>",
                method,
                PREFIX,
                escape(path)
            ));
            if let Some(s) = &op.description.as_ref().or(op.summary.as_ref()) {
                html.push_str(&format!("<p>{}</p>", escape(s)));
            }
            if let Some(params) = &op.parameters {
                html.push_str("<ul>");
                for p in params {
                    let utoipa::openapi::RefOr::T(p) = p else {
                        continue;
                    };
                    let about = p.description.as_deref().unwrap_or_default();
                    html.push_str(&format!(
                        "<li><code>{}</code> (in {}{}) {}</li>",
                        escape(&p.name),
                        match p.parameter_in {
                            utoipa::openapi::path::ParameterIn::Path => "path",
                            utoipa::openapi::path::ParameterIn::Query
                            | utoipa::openapi::path::ParameterIn::QueryString => "query",
                            utoipa::openapi::path::ParameterIn::Header => "header",
                            utoipa::openapi::path::ParameterIn::Cookie => "cookie",
                        },
                        if matches!(p.required, utoipa::openapi::Required::True) {
                            ", required"
                        } else {
                            ""
                        },
                        escape(about)
                    ));
                }
                html.push_str("</ul>");
            }
            html.push_str("</section>");
        }
    }
    html.push_str("</main></body></html>");
    let mut response = Html(html).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What each request costs from its address's bucket.
fn weight(method: &Method, path: &str) -> u32 {
    match (method.as_str(), path) {
        ("GET", p) if p.ends_with("/depth") || p.ends_with("/trades") => 10,
        ("GET", p) if p.starts_with("/history") => 10,
        ("GET", "/openapi.json" | "/markets") => 5,
        _ => 1,
    }
}

/// Spends a request's weight from its address's bucket first.
async fn by_address(request: Request, next: Next) -> Response {
    let Some(limits) = request.extensions().get::<RequestLimits>().cloned() else {
        return next.run(request).await;
    };
    let ip = crate::site::signed::peer_ip(request.extensions());
    let weight = weight(request.method(), request.uri().path());
    match limits.address(ip, weight, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(over) => refusal::Refused::from(over).into_response(),
    }
}

/// Whether a request to the API changes orders: a follower passes those
/// on to the leader.
pub fn is_order_action(method: &Method, path: &str) -> bool {
    path.strip_prefix(PREFIX)
        .is_some_and(|rest| rest.starts_with("/orders") && method != Method::GET)
}
