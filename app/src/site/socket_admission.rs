//! What every socket of the APIs passes first: the
//! exchange running, the upgrade itself, and a place among the sockets
//! its address may hold (the feed's `--feed-sockets-per-address`).

use std::net::IpAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::server::Exchange;
use crate::server::feed_limits::{FeedLimits, SocketCounts, SocketSlot};
use crate::server::request_limits::RequestLimits;
use crate::site::signed::peer_ip;

/// A socket let in: the exchange, the client's address, the feed's limits
/// (requests per second, how far back a resume may read), its place (held
/// while the socket lives) and the upgrade.
pub struct Admitted {
    pub exchange: Exchange,
    pub ip: IpAddr,
    pub limits: FeedLimits,
    /// The API's request limits, for sockets that take orders.
    pub request_limits: Option<RequestLimits>,
    pub slot: SocketSlot,
    pub upgrade: WebSocketUpgrade,
}

/// Lets a socket in, or answers why not.
pub async fn admit(request: Request) -> Result<Admitted, Response> {
    let ext = request.extensions();
    let (Some(exchange), Some(counts), Some(limits)) = (
        ext.get::<Exchange>().cloned(),
        ext.get::<SocketCounts>().cloned(),
        ext.get::<FeedLimits>().copied(),
    ) else {
        let why = "the exchange is not running";
        return Err((StatusCode::SERVICE_UNAVAILABLE, why).into_response());
    };
    let ip = peer_ip(ext);
    let request_limits = ext.get::<RequestLimits>().cloned();
    let upgrade = WebSocketUpgrade::from_request(request, &())
        .await
        .map_err(IntoResponse::into_response)?;
    let Some(slot) = counts.admit(ip, limits.sockets_per_address) else {
        let why = format!(
            "this address already has {} sockets open, the most it may",
            limits.sockets_per_address
        );
        return Err((StatusCode::TOO_MANY_REQUESTS, why).into_response());
    };
    Ok(Admitted {
        exchange,
        ip,
        limits,
        request_limits,
        slot,
        upgrade,
    })
}
