//! The site's accept loop: what one client can hold of the server.
//!
//! A client that opens connections and never finishes a request (a
//! slowloris) would otherwise keep each one open for ever, until the
//! server runs out of sockets for everyone. So:
//! - a request's head must arrive within `header_timeout` of the
//!   connection waiting for it, or the connection is closed;
//! - a request's body must arrive within `body_timeout` once a handler
//!   reads it, or the request fails (and nothing it asked is done);
//! - at most `max_connections` are open at once, and at most
//!   `per_address` from one address (IPv6 by its /64); a connection past
//!   either cap is closed as soon as it is accepted. A trusted reverse
//!   proxy's address is exempt from the per-address cap (every client
//!   behind it shares it), not from the total.
//!
//! A connection that becomes a websocket leaves these counts when it is
//! upgraded: the feed's own per-address socket cap counts it from then on.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower_http::timeout::RequestBodyTimeoutLayer;

use crate::server::key_crypto::in_networks;
use crate::server::lock::unpoisoned;
use crate::server::request_limits::grouped;

/// The bounds, as the server's flags set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub per_address: usize,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> ConnectionLimits {
        ConnectionLimits {
            max_connections: 20_000,
            per_address: 128,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
        }
    }
}

/// The open connections, in all and per address.
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection's place in the counts, given back when it ends.
struct Place {
    open: Arc<Mutex<Open>>,
    address: Option<IpAddr>,
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut open = unpoisoned(self.open.lock());
        open.total -= 1;
        if let Some(a) = self.address
            && let Some(n) = open.by_address.get_mut(&a)
        {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&a);
            }
        }
    }
}

/// Counts a new connection from `peer` in, or says it is over a cap.
fn admit(
    open: &Arc<Mutex<Open>>,
    limits: &ConnectionLimits,
    trusted: &[String],
    peer: IpAddr,
) -> Option<Place> {
    let address = (!in_networks(trusted, peer)).then(|| grouped(peer));
    let mut counts = unpoisoned(open.lock());
    if counts.total >= limits.max_connections {
        return None;
    }
    if let Some(a) = address {
        let n = counts.by_address.entry(a).or_default();
        if *n >= limits.per_address {
            return None;
        }
        *n += 1;
    }
    counts.total += 1;
    Some(Place {
        open: Arc::clone(open),
        address,
    })
}

/// Serves `app` on `listener` under `limits` until `shutdown` resolves,
/// then waits for the requests under way to be answered. Each request
/// carries its peer's address (`ConnectInfo`).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    trusted_proxies: Vec<String>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let open = Arc::new(Mutex::new(Open::default()));
    // Every connection holds a receiver: when all are gone, every request
    // under way at the shutdown has been answered.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let body_timeout = RequestBodyTimeoutLayer::new(limits.body_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: the connection is the
                    // client's to retry; the loop goes on.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(place) = admit(&open, &limits, &trusted_proxies, peer.ip()) else {
            tracing::debug!(%peer, "connection over the caps: closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = tower::ServiceBuilder::new()
            .layer(body_timeout.clone())
            .map_request(move |mut request: Request<_>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(peer));
                request
            })
            .service(app.clone());
        let connection = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                _ = async { stopping.wait_for(|stop| *stop).await.is_ok() } => {
                    // Answer what is under way, then close.
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            // A client gone or too slow ends its own connection; nothing
            // to report beyond it.
            if let Err(e) = ended {
                tracing::debug!(%peer, "connection ended: {e}");
            }
            drop(place);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    drop(stopping);
    stop.closed().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caps_count_per_address_and_in_all_and_give_places_back() {
        let limits = ConnectionLimits {
            max_connections: 3,
            per_address: 2,
            ..Default::default()
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let trusted = vec!["10.0.0.1".to_string()];
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let a_neighbour: IpAddr = "2001:db8::1".parse().unwrap();
        let a_same_64: IpAddr = "2001:db8::2".parse().unwrap();
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let first = admit(&open, &limits, &trusted, a).unwrap();
        let _second = admit(&open, &limits, &trusted, a).unwrap();
        assert!(
            admit(&open, &limits, &trusted, a).is_none(),
            "a third from one address"
        );
        drop(first);
        let _third = admit(&open, &limits, &trusted, a).unwrap();
        // Another address takes the last place; then not even a new
        // address gets in.
        let _v6 = admit(&open, &limits, &trusted, a_neighbour).unwrap();
        assert!(admit(&open, &limits, &trusted, a_same_64).is_none());
        assert!(admit(&open, &limits, &trusted, proxy).is_none());
        // A proxy is not held to the per-address cap.
        let roomy = ConnectionLimits {
            max_connections: 100,
            per_address: 1,
            ..Default::default()
        };
        let open = Arc::new(Mutex::new(Open::default()));
        let proxied: Vec<Place> = (0..5)
            .map(|_| admit(&open, &roomy, &trusted, proxy).unwrap())
            .collect();
        assert_eq!(unpoisoned(open.lock()).total, 5);
        let _one = admit(&open, &roomy, &trusted, a_neighbour).unwrap();
        assert!(
            admit(&open, &roomy, &trusted, a_same_64).is_none(),
            "one /64"
        );
        drop(proxied);
        assert_eq!(unpoisoned(open.lock()).total, 1);
    }
}
