//! The client's address when the exchange runs behind reverse proxies.
//!
//! Every per-address limit (log-ins, sign-ups, API weights, sockets) keys
//! on the address a request came from. Behind a proxy that is the proxy's,
//! so one client's misuse would lock out everyone. With `--trusted-proxies`
//! (addresses or networks), a request whose peer is one of them is taken
//! to come from the address the proxies say: `Forwarded`'s `for=` (RFC
//! 7239) or else `X-Forwarded-For`, read from the right, the first address
//! that is not itself a trusted proxy. A client can put anything on the
//! left of those headers, so nothing left of that address is believed,
//! and a hop that is no address (`unknown`, an obfuscated name) ends the
//! walk with no word on the client. A request from anyone else keeps its
//! peer address, whatever it claims.
//!
//! The address found replaces the connection's (`ConnectInfo`) for
//! everything after this layer, so every limit and every allow-list sees
//! the client.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;

use crate::server::key_crypto::in_networks;

/// The proxies whose word on the client's address is taken.
pub type TrustedProxies = Arc<Vec<String>>;

/// The layer: see the module docs.
pub async fn resolve(
    State(trusted): State<TrustedProxies>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(ConnectInfo(peer)) = request.extensions().get::<ConnectInfo<SocketAddr>>()
        && in_networks(&trusted, peer.ip())
        && let Some(client) = forwarded_client(request.headers(), &trusted)
    {
        let client = SocketAddr::new(client, peer.port());
        request.extensions_mut().insert(ConnectInfo(client));
    }
    next.run(request).await
}

/// The client the proxies name: see the module docs.
fn forwarded_client(headers: &HeaderMap, trusted: &[String]) -> Option<IpAddr> {
    let forwarded: Vec<Option<IpAddr>> = all(headers, "forwarded")
        .iter()
        .flat_map(|line| line.split(','))
        .map(|element| {
            let value = element
                .split(';')
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| k.eq_ignore_ascii_case("for"))?
                .1;
            address(value.trim().trim_matches('"'))
        })
        .collect();
    let hops = if forwarded.is_empty() {
        all(headers, "x-forwarded-for")
            .iter()
            .flat_map(|line| line.split(','))
            .map(|hop| address(hop.trim()))
            .collect()
    } else {
        forwarded
    };
    for hop in hops.into_iter().rev() {
        match hop {
            Some(ip) if in_networks(trusted, ip) => continue,
            found => return found,
        }
    }
    None
}

/// Every line of a header, in order.
fn all(headers: &HeaderMap, name: &str) -> Vec<String> {
    let lines = headers.get_all(name).iter();
    lines
        .filter_map(|v| v.to_str().ok().map(str::to_string))
        .collect()
}

/// An address as a proxy writes it: bare, `[v6]`, `[v6]:port` or
/// `v4:port`.
fn address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    text.parse::<SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn the_client_is_the_rightmost_address_that_is_not_a_trusted_proxy() {
        let trusted = vec!["10.0.0.0/8".to_string(), "2001:db8:ffff::/48".to_string()];
        // A client's own claim on the left is not believed.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.2")]);
        assert_eq!(forwarded_client(&h, &trusted), ip("198.51.100.7"));
        // Several lines read as one list, in order.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7:4711, 10.1.2.3"),
        ]);
        assert_eq!(forwarded_client(&h, &trusted), ip("198.51.100.7"));
        // `Forwarded` first, with its quoting, brackets and ports.
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.1"),
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, for=2001:db8:ffff::1",
            ),
        ]);
        assert_eq!(forwarded_client(&h, &trusted), ip("2001:db8:cafe::17"));
        // Only proxies, or a hop that is no address: no word on the client.
        let h = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.8")]);
        assert_eq!(forwarded_client(&h, &trusted), None);
        let h = headers(&[("x-forwarded-for", "6.6.6.6, unknown, 10.0.0.9")]);
        assert_eq!(forwarded_client(&h, &trusted), None);
        assert_eq!(forwarded_client(&HeaderMap::new(), &trusted), None);
    }
}
