//! A Binance-compatible surface (spot, REST), for the trading programs
//! that exist: `ccxt.binance` and bots written against Binance's API work
//! here unchanged once pointed at `/compat/binance/api/v3`. It is a thin
//! adapter over the same [`Exchange`](crate::server::Exchange) methods the
//! pages use; it holds no state of its own.
//!
//! - `market`: the public endpoints;
//! - `orders`: the signed ones (orders, trades, the account);
//! - `wire`: Binance's JSON shapes and words, made from ours;
//! - `weights`: what each request costs from its address's limit;
//! - `reply`: refusals as `{"code","msg"}` with Binance's codes, and
//!   market ids without the dash (`BTCUSD`).
//!
//! Signing is Binance's (see `site::signed`). What is supported and what
//! differs is in `docs/api.md`.

use axum::Router;
use axum::routing::{get, post};

mod market;
mod market_streams;
mod orders;
mod reply;
mod weights;
mod wire;
mod ws_api;

/// Where the surface is mounted.
pub const PREFIX: &str = "/compat/binance/api/v3";

/// The surface's routes, relative to [`PREFIX`].
pub fn routes() -> Router {
    Router::new()
        .route("/ping", get(market::ping))
        .route("/time", get(market::time))
        .route("/exchangeInfo", get(market::exchange_info))
        .route("/depth", get(market::depth))
        .route("/trades", get(market::trades))
        .route("/aggTrades", get(market::agg_trades))
        .route("/klines", get(market::klines))
        .route("/ticker/24hr", get(market::ticker_24hr))
        .route("/ticker/price", get(market::ticker_price))
        .route("/ticker/bookTicker", get(market::book_ticker))
        .route(
            "/order",
            post(orders::place).get(orders::get).delete(orders::cancel),
        )
        .route("/order/test", post(orders::test))
        .route("/order/cancelReplace", post(orders::cancel_replace))
        .route(
            "/openOrders",
            get(orders::open_orders).delete(orders::cancel_all),
        )
        .route("/allOrders", get(orders::all_orders))
        .route("/myTrades", get(orders::my_trades))
        .route("/account", get(orders::account))
        // Every request spends its weight from its address's bucket first.
        .route_layer(axum::middleware::from_fn(weights::by_address))
}

/// Where the market streams are served (a websocket; any path under it).
pub const STREAMS: &str = "/compat/binance/ws";

/// The market streams' routes, absolute.
pub fn stream_routes() -> Router {
    Router::new()
        .route(STREAMS, get(market_streams::serve))
        .route(&format!("{STREAMS}/{{*rest}}"), get(market_streams::serve))
        .route(ws_api::WS_API, get(ws_api::serve))
}

/// Whether a request to the surface changes orders: a follower passes
/// those on to the leader.
pub fn is_order_action(method: &axum::http::Method, path: &str) -> bool {
    use axum::http::Method;
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return false;
    };
    matches!(
        (method.clone(), rest),
        (Method::POST, "/order" | "/order/cancelReplace")
            | (Method::DELETE, "/order" | "/openOrders")
    )
}
