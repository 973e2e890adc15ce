//! A follower passes order actions on to the leader: the server that
//! decides every order (see `server::leadership`). The request goes on as
//! it came (its cookie, form and `Host`, so the leader checks the same
//! session and origin) and its answer comes back as the leader gave it. A
//! request passed on once is not passed on again: a server that is not the
//! leader when it arrives answers "not taking orders" (503) instead, so
//! two servers that disagree about who leads cannot bounce a request
//! between them. The follower adds the client's address to
//! `X-Forwarded-For`: a leader that lists its followers in
//! `--trusted-proxies` then limits and checks allow-lists by the client's
//! address, not the follower's.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::error::UserError;
use crate::server::Exchange;
use crate::server::leadership::Role;

/// The header marking a request one server passed on to another.
pub const FORWARDED: &str = "x-exchange-forwarded";

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The server functions that change orders or move money: only the leader
/// decides them.
const ORDER_ACTIONS: [&str; 5] = [
    "/api/place_order",
    "/api/cancel_order",
    "/api/amend_order",
    "/api/cancel_all",
    "/api/claim_faucet",
];

/// How long the leader may take to answer a request passed on to it.
const LEADER_DEADLINE: Duration = Duration::from_secs(15);

/// What the middleware needs: the exchange (for the role) and a client.
#[derive(Clone)]
pub struct Forwarding {
    exchange: Exchange,
    client: Client<HttpConnector, Body>,
}

impl Forwarding {
    pub fn new(exchange: Exchange) -> Forwarding {
        let client = Client::builder(TokioExecutor::new()).build_http();
        Forwarding { exchange, client }
    }
}

/// The middleware: an order action on a follower goes to the leader.
pub async fn to_leader(State(f): State<Forwarding>, request: Request, next: Next) -> Response {
    let (method, path) = (request.method(), request.uri().path());
    let action = ((method == Method::POST && ORDER_ACTIONS.contains(&path))
        || super::binance::is_order_action(method, path)
        || super::api_v1::is_order_action(method, path))
        && !request.headers().contains_key(FORWARDED);
    let leader = match f.exchange.role() {
        Role::Follower { leader: Some(url) } if action => url,
        _ => return next.run(request).await,
    };
    match pass_on(&f.client, &leader, request).await {
        Ok(response) => response,
        Err(why) => {
            tracing::warn!(%leader, "passing an order action on to the leader failed: {why}");
            let message = format!(
                "the exchange's leading server did not answer ({why}); nothing is known to have \
                 changed: check your open orders, then try again"
            );
            let error = UserError {
                field: None,
                message,
            };
            let body = serde_json::to_string(&error).unwrap_or_default();
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response()
        }
    }
}

async fn pass_on(
    client: &Client<HttpConnector, Body>,
    leader: &str,
    request: Request,
) -> Result<Response, String> {
    let (mut parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let uri: Uri = format!("{}{path}", leader.trim_end_matches('/'))
        .parse()
        .map_err(|e| format!("the leader's address {leader} is not a URL: {e}"))?;
    parts.uri = uri;
    parts
        .headers
        .insert(FORWARDED, HeaderValue::from_static("1"));
    let from = super::signed::peer_ip(&parts.extensions);
    let mut hops: Vec<String> = (parts.headers.get_all(X_FORWARDED_FOR).iter())
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect();
    hops.push(from.to_string());
    let hops = hops.join(", ");
    parts.headers.remove(X_FORWARDED_FOR);
    if let Ok(hops) = HeaderValue::from_str(&hops) {
        parts.headers.insert(X_FORWARDED_FOR, hops);
    }
    let request = Request::from_parts(parts, body);
    let answer = tokio::time::timeout(LEADER_DEADLINE, client.request(request))
        .await
        .map_err(|_| format!("no answer in {} s", LEADER_DEADLINE.as_secs()))?
        .map_err(|e| e.to_string())?;
    Ok(answer.map(Body::new))
}
