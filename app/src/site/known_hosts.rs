//! The host names this server answers for.
//!
//! DNS rebinding: a page of `attacker.example` whose name the attacker
//! then points at 127.0.0.1 is, to the browser, still its own origin, so
//! the same-origin guard (see `security`) lets its calls through to an
//! exchange listening on the visitor's loopback or network. What gives
//! it away is the `Host` it sends: the attacker's name. So a request
//! naming any other host than this server's own is refused with 421.
//!
//! Known: `localhost`, any address written as an address (a page served
//! from an address is the server's own origin; nobody can rebind one),
//! the host of `--advertise-url` and of each `--allowed-origins`, and
//! each of `--allowed-hosts` (the public name behind a reverse proxy).
//! Names are compared without their port, ignoring case. A request
//! without `Host` (HTTP/1.0, a program) is no browser's and passes.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The names besides `localhost` and addresses.
#[derive(Clone, Debug, Default)]
pub struct KnownHosts(Arc<Vec<String>>);

impl KnownHosts {
    /// From `--allowed-hosts` (names) and the URLs a server is reached at
    /// (`--advertise-url`, `--allowed-origins`).
    pub fn new<'a>(names: &[String], urls: impl IntoIterator<Item = &'a str>) -> KnownHosts {
        let from_urls = urls.into_iter().filter_map(|url| {
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let authority = rest.split(['/', '?', '#']).next()?;
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            Some(host.to_string())
        });
        let all = names.iter().cloned().chain(from_urls);
        KnownHosts(Arc::new(all.map(|h| name(&h)).collect()))
    }

    /// Whether `host` (a `Host` header's value) is this server's.
    pub fn knows(&self, host: &str) -> bool {
        let name = name(host);
        name == "localhost"
            || name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
            || self.0.contains(&name)
    }
}

/// A host without its port, in lower case (`[::1]:3000` gives `[::1]`).
fn name(host: &str) -> String {
    let host = host.trim();
    let bare = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| {
            if port.bytes().all(|b| b.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
    };
    bare.trim_end_matches('.').to_ascii_lowercase()
}

/// The layer: see the module docs.
pub async fn known_host_only(
    State(known): State<KnownHosts>,
    request: Request,
    next: Next,
) -> Response {
    let host = request.headers().get(header::HOST);
    if let Some(host) = host
        && !host.to_str().is_ok_and(|h| known.knows(h))
    {
        let host = String::from_utf8_lossy(host.as_bytes()).into_owned();
        tracing::info!(host, "refused a request for another host");
        let why = format!(
            "this server does not answer for the host {host:?}; if that is its public name, \
             start it with --allowed-hosts naming it\n"
        );
        return (StatusCode::MISDIRECTED_REQUEST, why).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_names_and_addresses_are_known_and_others_are_not() {
        let known = KnownHosts::new(
            &["exchange.example.com".to_string()],
            ["https://Trade.Example.org:8443/x", "http://10.0.0.5:3000"],
        );
        for host in [
            "localhost",
            "localhost:3000",
            "LOCALHOST.",
            "127.0.0.1:3000",
            "[::1]:3000",
            "[2001:db8::1]",
            "192.0.2.7",
            "exchange.example.com",
            "Exchange.Example.com:443",
            "trade.example.org:8443",
        ] {
            assert!(known.knows(host), "{host}");
        }
        for host in [
            "attacker.example",
            "attacker.example:3000",
            "localhost.attacker.example",
            "exchange.example.com.attacker.example",
            "127.0.0.1.nip.io",
            "",
        ] {
            assert!(!known.knows(host), "{host}");
        }
    }
}
