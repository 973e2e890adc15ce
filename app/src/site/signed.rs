//! Requests signed with an API key, the way Binance's API signs them (and
//! so the way `ccxt` and Binance's own clients do): the key id in the
//! `X-MBX-APIKEY` header, `timestamp` (ms, or µs) and an optional
//! `recvWindow` among the parameters, and `signature` last, over the query
//! string and the body exactly as sent with the signature taken out. An
//! HMAC key signs with the hex of HMAC-SHA256, an Ed25519 key with the
//! base64 of its signature.
//!
//! The native API (`/api/v1`) signs the same keys its own way, in headers:
//! `X-API-KEY`, `X-API-TIMESTAMP` (ms), an optional `X-API-RECV-WINDOW`,
//! and `X-API-SIGNATURE` over `timestamp`, the method, the path, the query
//! and the body, each followed by a newline but the last
//! (`{timestamp}\n{METHOD}\n{path}\n{query}\n{body}`): unlike Binance's, the
//! signature covers the method and the path too.
//!
//! A session cookie never authenticates such a request: only the key does.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use accounts::api_key::Scope;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use orderbook::AccountId;

use crate::server::{Exchange, KeyRefusal, SignedRequest};

/// The header carrying the key id.
pub const KEY_HEADER: &str = "x-mbx-apikey";
/// `recvWindow` when the request gives none, in ms.
pub const DEFAULT_RECV_WINDOW_MS: u64 = 5_000;
/// The largest `recvWindow` a request may give, in ms.
pub const MAX_RECV_WINDOW_MS: u64 = 60_000;
/// How far ahead of the server's clock a timestamp may be, in ms.
const AHEAD_MS: u64 = 1_000;

/// A request's parameters (query first, then body), decoded, in order.
#[derive(Clone, Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The query string and a form body, as sent. A malformed escape or
    /// bytes that are not UTF-8 are refused, never read as something else.
    pub fn parse(query: &str, body: &str) -> Result<Params, String> {
        let mut all = Vec::new();
        for pair in [query, body].iter().flat_map(|p| p.split('&')) {
            if pair.is_empty() {
                continue;
            }
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            all.push((decoded(k)?, decoded(v)?));
        }
        Ok(Params(all))
    }

    /// A parameter's value; empty counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }
}

/// One form-encoded word: `+` is a space, `%XX` a byte, and the bytes
/// must be UTF-8.
fn decoded(word: &str) -> Result<String, String> {
    let bad = || format!("{word:?} is not form-encoded UTF-8");
    let mut bytes = Vec::with_capacity(word.len());
    let mut rest = word.bytes();
    while let Some(b) = rest.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [rest.next().ok_or_else(bad)?, rest.next().ok_or_else(bad)?];
                let hex = std::str::from_utf8(&hex).map_err(|_| bad())?;
                bytes.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| bad())
}

/// Why a signed request is refused, before anything it asks is done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignedRefusal {
    #[error(
        "an API key is required: in the X-MBX-APIKEY header (the Binance-compatible API) or \
         X-API-KEY (/api/v1)"
    )]
    NoKey,
    #[error(
        "this request must be signed: the signature parameter (the Binance-compatible API) or \
         X-API-SIGNATURE (/api/v1)"
    )]
    NoSignature,
    #[error(
        "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed (on /api/v1: \
         the X-API-TIMESTAMP header, in ms)."
    )]
    NoTimestamp,
    #[error("recvWindow must be 1 to {MAX_RECV_WINDOW_MS} ms")]
    BadRecvWindow,
    #[error(
        "Timestamp for this request is outside of the recvWindow: it is {0} ms from the server's \
         clock (GET /time tells the server's time)"
    )]
    Timestamp(i64),
    #[error("{0}")]
    Key(#[from] KeyRefusal),
}

/// The raw pieces of a request the signature is over.
pub struct RawRequest<'a> {
    pub query: &'a str,
    pub body: &'a str,
}

/// The address a request came from: the connection's peer. Without one
/// (the router driven in-process) it is the unspecified address, which no
/// allow-list entry but `::/0` admits.
pub fn peer(parts: &Parts) -> IpAddr {
    peer_ip(&parts.extensions)
}

/// The same, from a request's extensions.
pub fn peer_ip(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The account a signed request acts for, with its key checked for
/// `scope`, its timestamp checked against `now_ms` and its signature
/// checked over exactly what was sent.
pub fn authenticate(
    exchange: &Exchange,
    parts: &Parts,
    raw: &RawRequest<'_>,
    params: &Params,
    scope: Scope,
    now_ms: u64,
) -> Result<AccountId, SignedRefusal> {
    let key_id = parts
        .headers
        .get(KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
        .ok_or(SignedRefusal::NoKey)?;
    let signature = params.get("signature").ok_or(SignedRefusal::NoSignature)?;
    let timestamp = params.get("timestamp").ok_or(SignedRefusal::NoTimestamp)?;
    fresh(timestamp, params.get("recvWindow"), now_ms)?;
    let mut payload = without_signature(raw.query);
    payload.push_str(&without_signature(raw.body));
    let account = exchange.authenticate(&SignedRequest {
        key_id,
        payload: payload.as_bytes(),
        signature,
        from: peer(parts),
        scope,
    })?;
    Ok(account)
}

/// Checks a request's timestamp (ms, or µs told apart by size, as Binance
/// does) against the server's clock: at most 1 s ahead, and at most the
/// request's window (5 s unless it says, 60 s at most) behind.
pub fn fresh(timestamp: &str, window: Option<&str>, now_ms: u64) -> Result<(), SignedRefusal> {
    let timestamp: u64 = timestamp.parse().map_err(|_| SignedRefusal::NoTimestamp)?;
    let timestamp_ms = if timestamp > 100_000_000_000_000 {
        timestamp / 1000
    } else {
        timestamp
    };
    let window = match window {
        None => DEFAULT_RECV_WINDOW_MS,
        Some(w) => w
            .split('.')
            .next()
            .and_then(|w| w.parse().ok())
            .filter(|w| (1..=MAX_RECV_WINDOW_MS).contains(w))
            .ok_or(SignedRefusal::BadRecvWindow)?,
    };
    let skew = timestamp_ms as i64 - now_ms as i64;
    if skew >= AHEAD_MS as i64 || -skew > window as i64 {
        return Err(SignedRefusal::Timestamp(skew));
    }
    Ok(())
}

/// The native API's headers.
pub const NATIVE_KEY: &str = "x-api-key";
pub const NATIVE_TIMESTAMP: &str = "x-api-timestamp";
pub const NATIVE_WINDOW: &str = "x-api-recv-window";
pub const NATIVE_SIGNATURE: &str = "x-api-signature";

/// What the native API's signature is over.
pub fn native_payload(
    timestamp: &str,
    method: &str,
    path: &str,
    query: &str,
    body: &str,
) -> String {
    format!("{timestamp}\n{method}\n{path}\n{query}\n{body}")
}

/// The account a request to the native API acts for, and its key id, once
/// its key allows `scope`, its timestamp is fresh and its signature holds
/// over exactly what was sent.
pub fn authenticate_native(
    exchange: &Exchange,
    parts: &Parts,
    path: &str,
    body: &str,
    scope: Scope,
    now_ms: u64,
) -> Result<(AccountId, String), SignedRefusal> {
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
    };
    let key_id = header(NATIVE_KEY).ok_or(SignedRefusal::NoKey)?;
    let timestamp = header(NATIVE_TIMESTAMP).ok_or(SignedRefusal::NoTimestamp)?;
    let signature = header(NATIVE_SIGNATURE).ok_or(SignedRefusal::NoSignature)?;
    fresh(timestamp, header(NATIVE_WINDOW), now_ms)?;
    let query = parts.uri.query().unwrap_or_default();
    let payload = native_payload(timestamp, parts.method.as_str(), path, query, body);
    let account = exchange.authenticate(&SignedRequest {
        key_id,
        payload: payload.as_bytes(),
        signature,
        from: peer(parts),
        scope,
    })?;
    Ok((account, key_id.to_string()))
}

/// Parameters as sent, with the `signature` one taken out.
fn without_signature(raw: &str) -> String {
    raw.split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("signature="))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_taken_out_of_what_was_signed() {
        assert_eq!(
            without_signature("symbol=BTCUSD&timestamp=1&signature=ab"),
            "symbol=BTCUSD&timestamp=1"
        );
        assert_eq!(without_signature("signature=ab"), "");
        assert_eq!(without_signature(""), "");
    }

    #[test]
    fn parameters_are_decoded_from_query_and_body() {
        let p = Params::parse("symbol=BTCUSD&price=1%2E5", "quantity=2&note=").unwrap();
        assert_eq!(p.get("symbol"), Some("BTCUSD"));
        assert_eq!(p.get("price"), Some("1.5"));
        assert_eq!(p.get("quantity"), Some("2"));
        assert_eq!(p.get("note"), None);
        // Malformed escapes and bytes that are not UTF-8 are refused.
        for bad in ["a=%ff", "a=%zz", "a=%4"] {
            assert!(Params::parse(bad, "").is_err(), "{bad}");
        }
        let spaced = Params::parse("note=a+b%20c", "").unwrap();
        assert_eq!(spaced.get("note"), Some("a b c"));
    }
}
