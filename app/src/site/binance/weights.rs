//! What each request costs from its address's bucket, in Binance's
//! weights (a depth of many levels or every market's ticker costs more),
//! and the middleware that spends it before the request is read further.

use std::time::Instant;

use axum::extract::Request;
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::reply::Refusal;
use crate::server::request_limits::RequestLimits;
use crate::site::signed::Params;

/// A request's weight, from its method, path (under the surface's prefix)
/// and parameters.
pub fn weight(method: &Method, path: &str, params: &Params) -> u32 {
    let all_markets = params.get("symbol").is_none();
    match (method.as_str(), path) {
        ("GET", "/depth") => match params.get("limit").and_then(|l| l.parse::<u32>().ok()) {
            None | Some(0..=100) => 5,
            Some(101..=500) => 25,
            Some(501..=1000) => 50,
            Some(_) => 250,
        },
        ("GET", "/trades") => 25,
        ("GET", "/aggTrades" | "/klines" | "/ticker/price" | "/ticker/bookTicker") => 4,
        ("GET", "/ticker/24hr") if all_markets => 80,
        ("GET", "/ticker/24hr") => 2,
        ("GET", "/exchangeInfo" | "/allOrders" | "/myTrades" | "/account") => 20,
        ("GET", "/openOrders") if all_markets => 80,
        ("GET", "/openOrders") => 6,
        ("GET", "/order") => 4,
        _ => 1,
    }
}

/// Spends a request's weight from its address's bucket; over the limit it
/// is answered 429 with `Retry-After`, and nothing else is done.
pub async fn by_address(request: Request, next: Next) -> Response {
    let Some(limits) = request.extensions().get::<RequestLimits>().cloned() else {
        return next.run(request).await;
    };
    let ip = crate::site::signed::peer_ip(request.extensions());
    let params = Params::parse(request.uri().query().unwrap_or_default(), "").unwrap_or_default();
    let weight = weight(request.method(), request.uri().path(), &params);
    match limits.address(ip, weight, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(over) => Refusal::from(over).into_response(),
    }
}
