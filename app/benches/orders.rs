//! Orders per second through the real HTTP order path of one server.
//!
//! The bench starts the `exchange` binary (its own embedded store in a
//! temporary folder, fsync on), signs up TRADERS accounts (each from its
//! own loopback address, as the per-address sign-up limit wants) with the
//! faucet's whole allowance (32 by default: with 16, at 16,000 orders a
//! second, accounts reached the cap of 200 open orders within 10 s and a
//! third of the orders were refused for it), and keeps that many
//! HTTP/1.1 keep-alive connections posting `place_order` for SECONDS
//! seconds: crossing limit
//! orders on BTC-USD (buys at 100.5 and sells at 99.5 of 0.001 BTC,
//! alternating), so most orders trade. It does so once for each number of
//! requests in flight in INFLIGHT, each on a fresh server and traders (no
//! level inherits the books, open orders and spent funds of another).
//! Each order is timed from its request's first byte to its answer's last.
//! Beside it, in the same run, the rate of the session-checked
//! `my_account` at the highest INFLIGHT on a fresh server: what the
//! server's HTTP side does when no order is written. Also reported: the
//! server process's CPU per request, and why the first refused request of
//! each level was refused.
//!
//! ```sh
//! INFLIGHT=2,32,128 SECONDS=10 cargo bench -p app --features ssr --bench orders
//! ```
//!
//! `EXCHANGE_BIN` runs another build of the server instead (the HTTP API
//! is the same), to measure before and after a change in one session.
//!
//! With `API=1` (the default) each level also runs the same crossing
//! orders through the Binance-compatible REST API (`POST
//! /compat/binance/api/v3/order`, `newOrderRespType=ACK`), each signed
//! with the trader's HMAC key, on a fresh server with the API's per-key
//! and per-account limits raised out of the way: what checking a key, a
//! timestamp and a signature adds to the order path. `KEYS` says which
//! kinds of key sign, each a run of its own (`hmac,ed25519` by default;
//! an Ed25519 key's pair is made here and only its public half given to
//! the keys page). With `SESSION=1` (the default) each level also sends
//! the orders as `order.place` over WebSocket API connections, one per
//! request in flight, each logged on once with an Ed25519 key
//! (`session.logon`): what trading with such a key costs when its
//! signature is checked once per connection. `API=0` leaves all of these
//! out (a build without the API).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpSocket;

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};

mod figures;
mod keep_alive;
mod process;
use figures::{env_list, percentile};
use keep_alive::Connection;
use process::{Server, start_server, usage};

/// A trader's loopback address: one each, so sign-ups stay under the
/// per-address limit.
fn address(trader: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, 1 + trader as u8)
}

/// A signed-up trader: their session, and an API key of theirs.
#[derive(Clone)]
struct Trader {
    cookie: String,
    key: Option<(String, Signer)>,
}

/// The kinds of key a signed run may use.
#[derive(Clone, Copy, Debug, PartialEq)]
enum KeyKind {
    Hmac,
    Ed25519,
}

/// What the client signs with.
#[derive(Clone)]
enum Signer {
    Hmac(String),
    Ed25519(Arc<Ed25519KeyPair>),
}

impl Signer {
    /// The `signature` parameter's value for `payload`.
    fn sign(&self, payload: &str) -> String {
        match self {
            Signer::Hmac(secret) => hmac_hex(secret, payload),
            Signer::Ed25519(pair) => {
                let b64 = base64::engine::general_purpose::STANDARD;
                let sig = b64.encode(pair.sign(payload.as_bytes()).as_ref());
                sig.replace('+', "%2B")
                    .replace('/', "%2F")
                    .replace('=', "%3D")
            }
        }
    }
}

/// Makes the trader a key of `kind` on the keys page: its id, and what
/// signs for it.
async fn api_key(
    server: SocketAddr,
    trader: usize,
    cookie: &str,
    kind: KeyKind,
) -> (String, Signer) {
    let mut c = Connection::open(server, address(trader)).await;
    let headers = format!("Cookie: session={cookie}\r\n");
    let mut form = "label=bench&read=on&trade=on".to_string();
    let pair = match kind {
        KeyKind::Hmac => None,
        KeyKind::Ed25519 => {
            let rng = ring::rand::SystemRandom::new();
            let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).expect("a key pair");
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("a key pair");
            let b64 = base64::engine::general_purpose::STANDARD;
            let public = b64.encode(pair.public_key().as_ref());
            let public = public
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D");
            form.push_str(&format!("&public_key={public}"));
            Some(Arc::new(pair))
        }
    };
    let (status, _, page) = c.form("/keys", &headers, &form).await;
    assert_eq!(status, 200, "{page}");
    let marked = |a: &str| {
        let at = page.find(a).expect("the key on the page");
        let start = at + page[at..].find('>').unwrap() + 1;
        page[start..start + page[start..].find('<').unwrap()].to_string()
    };
    let signer = match pair {
        Some(pair) => Signer::Ed25519(pair),
        None => Signer::Hmac(marked("data-secret")),
    };
    (marked("data-key-id"), signer)
}

/// Signs a trader up and claims the faucet's whole allowance.
async fn sign_up(server: SocketAddr, trader: usize) -> String {
    let mut c = Connection::open(server, address(trader)).await;
    let form = format!("username=bench{trader}&password=correct+horse+battery");
    let (status, cookie, body) = c.post("sign_up", None, &form).await;
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.expect("a session cookie");
    for _ in 0..10 {
        let (status, _, body) = c.post("claim_faucet", Some(&cookie), "").await;
        assert_eq!(status, 200, "{body}");
    }
    cookie
}

/// What one level measured: each request's latency, and the answers that
/// were not 200.
struct Run {
    latencies: Vec<Duration>,
    refused: usize,
    /// The first answer that was not 200, to say why.
    first_refusal: Option<String>,
    elapsed: Duration,
    server_cpu: Duration,
}

/// What a level posts: a server function with the trader's cookie, a
/// signed order to the Binance-compatible API with the trader's key, or
/// an order over a WebSocket API connection logged on with that key.
#[derive(Clone, Copy)]
enum Post {
    Web(&'static str, fn(usize, u64) -> String),
    Signed(fn(usize, u64) -> String),
    Session,
}

/// A WebSocket API connection logged on with a trader's key.
struct Session {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
}

impl Session {
    async fn open(server: SocketAddr, from: Ipv4Addr, key: &str, signer: &Signer) -> Session {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
        let stream = socket.connect(server).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let url = format!("ws://{server}/compat/binance/ws-api/v3");
        let (ws, _) = tokio_tungstenite::client_async(url, stream).await.unwrap();
        let mut session = Session { ws };
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        let payload = format!("apiKey={key}&timestamp={stamp}");
        // The socket's parameters are JSON: the signature as it is.
        let sig = signer
            .sign(&payload)
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        let logon = format!(
            r#"{{"id":0,"method":"session.logon","params":{{"apiKey":"{key}","timestamp":{stamp},"signature":"{sig}"}}}}"#
        );
        let (status, answer) = session.ask(logon).await;
        assert_eq!(status, 200, "{answer}");
        session
    }

    /// Sends a request and waits for its answer: its status and text.
    async fn ask(&mut self, request: String) -> (u16, String) {
        use futures::{SinkExt, StreamExt};
        use tokio_tungstenite::tungstenite::Message;
        self.ws.send(Message::Text(request.into())).await.unwrap();
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let answer: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                    let status = answer["status"].as_u64().unwrap_or(0) as u16;
                    return (status, t.to_string());
                }
                Some(Ok(_)) => continue,
                other => panic!("the WebSocket API connection ended: {other:?}"),
            }
        }
    }
}

/// The crossing order as an `order.place` request.
fn crossing_socket_order(connection: usize, request: u64) -> String {
    let (side, price) = if (connection as u64 + request).is_multiple_of(2) {
        ("BUY", "100.5")
    } else {
        ("SELL", "99.5")
    };
    format!(
        r#"{{"id":{request},"method":"order.place","params":{{"symbol":"BTCUSD","side":"{side}","type":"LIMIT","timeInForce":"GTC","price":"{price}","quantity":"0.001","newOrderRespType":"ACK"}}}}"#
    )
}

/// Keeps `inflight` connections posting for `seconds`, each as the
/// trader `i % traders` (forms from `form(connection, request)`).
async fn run(
    server: &Server,
    traders: &[Trader],
    inflight: usize,
    seconds: u64,
    post: Post,
) -> Run {
    let pid = server.child.id();
    let cpu_before = usage(pid).1;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers = (0..inflight).map(|i| {
        let trader = i % traders.len();
        let who = traders[trader].clone();
        let addr = server.addr;
        tokio::spawn(async move {
            let mut c = Connection::open(addr, address(trader)).await;
            let mut session = match (post, &who.key) {
                (Post::Session, Some((key, signer))) => {
                    Some(Session::open(addr, address(trader), key, signer).await)
                }
                _ => None,
            };
            let (mut latencies, mut refused, mut first) = (Vec::new(), 0, None);
            let mut n = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let (status, _, answer) = match post {
                    Post::Web(name, form) => c.post(name, Some(&who.cookie), &form(i, n)).await,
                    Post::Signed(form) => {
                        // Signing is the client's work, timed with the request.
                        let (key, signer) = who.key.as_ref().expect("a key");
                        let stamp = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_millis();
                        let body = format!("{}&timestamp={stamp}", form(i, n));
                        let sig = signer.sign(&body);
                        let headers = format!("X-MBX-APIKEY: {key}\r\n");
                        c.form(ORDER_API, &headers, &format!("{body}&signature={sig}"))
                            .await
                    }
                    Post::Session => {
                        let s = session.as_mut().expect("a logged-on session");
                        let (status, answer) = s.ask(crossing_socket_order(i, n)).await;
                        (status, None, answer)
                    }
                };
                n += 1;
                latencies.push(sent.elapsed());
                if status != 200 {
                    refused += 1;
                    first.get_or_insert(format!("{status} {answer}"));
                }
            }
            (latencies, refused, first)
        })
    });
    let mut out = Run {
        latencies: Vec::new(),
        refused: 0,
        first_refusal: None,
        elapsed: Duration::ZERO,
        server_cpu: Duration::ZERO,
    };
    for w in futures::future::join_all(workers).await {
        let (latencies, refused, first) = w.unwrap();
        out.latencies.extend(latencies);
        out.refused += refused;
        out.first_refusal = out.first_refusal.or(first);
    }
    out.elapsed = started.elapsed();
    out.server_cpu = usage(pid).1 - cpu_before;
    out.latencies.sort();
    out
}

/// A crossing limit order: buys at 100.5 and sells at 99.5, alternating.
fn crossing_order(connection: usize, request: u64) -> String {
    let (side, price) = if (connection as u64 + request).is_multiple_of(2) {
        ("buy", "100.5")
    } else {
        ("sell", "99.5")
    };
    format!(
        "symbol=BTC-USD&side={side}&order_type=limit&price={price}&quantity=0.001&time_in_force=GTC"
    )
}

fn no_form(_: usize, _: u64) -> String {
    String::new()
}

/// Where the signed orders go.
const ORDER_API: &str = "/compat/binance/api/v3/order";

/// The same crossing order in Binance's words, answered with ids only.
fn crossing_api_order(connection: usize, request: u64) -> String {
    let (side, price) = if (connection as u64 + request).is_multiple_of(2) {
        ("BUY", "100.5")
    } else {
        ("SELL", "99.5")
    };
    format!(
        "symbol=BTCUSD&side={side}&type=LIMIT&timeInForce=GTC&price={price}&quantity=0.001&\
         newOrderRespType=ACK"
    )
}

/// The lower-case hex of HMAC-SHA256: how the client signs.
fn hmac_hex(secret: &str, payload: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, payload.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The request and order limits, raised out of the way of the measurement
/// (the order rate by its old name, which a baseline build knows too).
const UNLIMITED: [&str; 6] = [
    "--api-weight-per-minute",
    "4000000000",
    "--api-key-weight-per-minute",
    "4000000000",
    "--api-orders-per-10s",
    "4000000000",
];

fn report(what: &str, inflight: usize, r: &Run) {
    let rate = r.latencies.len() as f64 / r.elapsed.as_secs_f64();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {what} | {inflight} | {rate:.0}/s | {:.2} ms | {:.2} ms | {:.2} ms | {} of {} | {:.0} µs |",
        ms(percentile(&r.latencies, 0.5)),
        ms(percentile(&r.latencies, 0.99)),
        ms(*r.latencies.last().unwrap()),
        r.refused,
        r.latencies.len(),
        r.server_cpu.as_secs_f64() * 1e6 / r.latencies.len() as f64,
    );
}

#[tokio::main]
async fn main() {
    let levels: Vec<usize> = env_list("INFLIGHT", "2,32,128");
    let seconds: u64 = env_list("SECONDS", "10").first().copied().unwrap_or(10);
    let traders: usize = env_list("TRADERS", "32").first().copied().unwrap_or(32);
    println!("| request | in flight | rate | p50 | p99 | max | not 200 | server CPU per request |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    // A fresh server and traders for each level, so no level inherits the
    // books, open orders and spent funds of the one before.
    let api = env_list("API", "1").first().copied().unwrap_or(1) == 1;
    let kinds: Vec<KeyKind> = std::env::var("KEYS")
        .unwrap_or_else(|_| "hmac,ed25519".into())
        .split(',')
        .map(|k| match k.trim() {
            "hmac" => KeyKind::Hmac,
            "ed25519" => KeyKind::Ed25519,
            other => panic!("KEYS lists hmac and ed25519, not {other}"),
        })
        .collect();
    let session = env_list("SESSION", "1").first().copied().unwrap_or(1) == 1;
    let mut refusals = Vec::new();
    for &inflight in &levels {
        let (server, who) = fresh(traders, &UNLIMITED, None).await;
        let post = Post::Web("place_order", crossing_order);
        let r = run(&server, &who, inflight, seconds, post).await;
        report("place_order (crossing limit)", inflight, &r);
        refusals.extend(r.first_refusal.map(|why| (inflight, why)));
        drop(server);
        for &kind in kinds.iter().filter(|_| api) {
            let (server, who) = fresh(traders, &UNLIMITED, Some(kind)).await;
            let r = run(
                &server,
                &who,
                inflight,
                seconds,
                Post::Signed(crossing_api_order),
            )
            .await;
            let what = match kind {
                KeyKind::Hmac => "signed API order, HMAC (crossing limit)",
                KeyKind::Ed25519 => "signed API order, Ed25519 (crossing limit)",
            };
            report(what, inflight, &r);
            refusals.extend(r.first_refusal.map(|why| (inflight, why)));
        }
        if api && session {
            let (server, who) = fresh(traders, &UNLIMITED, Some(KeyKind::Ed25519)).await;
            let r = run(&server, &who, inflight, seconds, Post::Session).await;
            report("WebSocket API session order, Ed25519", inflight, &r);
            refusals.extend(r.first_refusal.map(|why| (inflight, why)));
        }
    }
    let most = levels.iter().copied().max().unwrap_or(128);
    let (server, who) = fresh(traders, &UNLIMITED, None).await;
    let r = run(
        &server,
        &who,
        most,
        seconds,
        Post::Web("my_account", no_form),
    )
    .await;
    report("my_account", most, &r);
    for (inflight, why) in refusals {
        println!("\nFirst refusal at {inflight} in flight: {why}");
    }
}

/// A server just started with `args`, with `traders` signed up and
/// funded (and each given an API key of the kind given).
async fn fresh(traders: usize, args: &[&str], keys: Option<KeyKind>) -> (Server, Vec<Trader>) {
    let bin =
        std::env::var("EXCHANGE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_exchange").into());
    let server = start_server(&bin, args).await;
    let mut who = Vec::new();
    for t in 0..traders {
        let cookie = sign_up(server.addr, t).await;
        let key = match keys {
            Some(kind) => Some(api_key(server.addr, t, &cookie, kind).await),
            None => None,
        };
        who.push(Trader { cookie, key });
    }
    (server, who)
}
