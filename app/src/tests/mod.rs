//! The exchange's rules, exercised through its server functions over the
//! router (as a browser calls them) with the embedded store on disk, and
//! the live feed driven as its websocket server function drives it. One
//! test binary; a file per feature, and here the helpers they share: a
//! [`Server`] on a store in a temporary folder, and a [`Browser`] that
//! keeps cookies and calls server functions as a page does.

mod candles_and_replays;
mod feed_sockets;
mod history_pages;
mod live_feed;
mod log_ins;
mod native_api;
mod programs;
mod restarts;
mod security;
mod snapshots;
mod start_snapshots;
mod stops_and_amends;
mod trading_rules;

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use orderbook::OrderTerms;
use rust_decimal::Decimal;
use tower::ServiceExt;

use crate::api::AccountView;
use crate::error::UserError;
use crate::server::streams::{account_event_data, account_stream, load_market, market_event_data};
use crate::server::*;
use crate::site::router;

fn settings() -> Settings {
    Settings::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/exchange.json"
    )))
    .unwrap()
}

struct Server {
    exchange: Exchange,
    router: Router,
}

impl Server {
    /// The same exchange with the costly reads' burst as large as an
    /// address's minute of weight: for tests whose many quick replays and
    /// history pages are not about that limit.
    fn unpaced(self) -> Server {
        self.with_policy(crate::site::SocketPolicy {
            api: crate::server::request_limits::ApiLimits {
                costly_burst_per_address: 6000,
                ..Default::default()
            },
            ..Default::default()
        })
    }

    /// The same exchange served under other socket and request limits.
    fn with_policy(self, policy: crate::site::SocketPolicy) -> Server {
        Server {
            router: router(
                Path::new("target/site"),
                "127.0.0.1:0".parse().unwrap(),
                self.exchange.clone(),
                policy,
            ),
            exchange: self.exchange,
        }
    }
}

async fn start_on(connection: Connection) -> Server {
    start_on_with(settings(), connection).await
}

async fn start_on_with(settings: Settings, connection: Connection) -> Server {
    let exchange = Exchange::start(settings, connection).await.unwrap();
    Server {
        router: router(
            Path::new("target/site"),
            "127.0.0.1:0".parse().unwrap(),
            exchange.clone(),
            Default::default(),
        ),
        exchange,
    }
}

/// A server that listens on a port of its own (other servers pass order
/// actions to it when it leads), named by that address, with a short
/// lease so a follower takes over soon.
async fn start_listening(connection: Connection) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = settings();
    config.leader = leadership::LeaderSettings {
        url: format!("http://{addr}"),
        lease: std::time::Duration::from_millis(600),
    };
    let s = start_on_with(config, connection).await;
    serve_on(listener, s.router.clone(), Default::default());
    s
}

/// Serves `app` on `listener` through the binary's own accept loop, with
/// its caps and timeouts, until the test ends.
fn serve_on(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: crate::site::connections::ConnectionLimits,
) {
    tokio::spawn(crate::site::connections::serve(
        listener,
        app,
        limits,
        Vec::new(),
        std::future::pending(),
    ));
}

async fn start(dir: &Path) -> Server {
    start_on(Connection::Embedded {
        data: dir.join("events"),
    })
    .await
}

fn encode(form: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A browser: remembers its session cookie between calls, and the status
/// of the last answer.
#[derive(Default)]
struct Browser {
    cookie: Option<String>,
    /// The cookie came as `__Host-session` (a server behind HTTPS).
    host_cookie: bool,
    status: Option<StatusCode>,
}

impl Browser {
    /// Calls a server function; returns its JSON answer or its error.
    async fn call<T: serde::de::DeserializeOwned>(
        &mut self,
        server: &Server,
        name: &str,
        form: &[(&str, &str)],
    ) -> Result<T, UserError> {
        let mut request = Request::post(format!("/api/{name}"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(c) = &self.cookie {
            let name = match self.host_cookie {
                true => credentials::SECURE_COOKIE,
                false => credentials::COOKIE,
            };
            request = request.header(header::COOKIE, format!("{name}={c}"));
        }
        let response = server
            .router
            .clone()
            .oneshot(request.body(Body::from(encode(form))).unwrap())
            .await
            .unwrap();
        let status = response.status();
        self.status = Some(status);
        for value in response.headers().get_all(header::SET_COOKIE) {
            let pair = value.to_str().unwrap().split(';').next().unwrap();
            self.host_cookie = pair.starts_with(credentials::SECURE_COOKIE);
            let name = match self.host_cookie {
                true => credentials::SECURE_COOKIE,
                false => credentials::COOKIE,
            };
            self.cookie = credentials::token_from_cookies(pair, name).map(str::to_string);
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        if status == StatusCode::OK {
            Ok(serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{name}: {e}: {body:?}")))
        } else {
            Err(serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{name} {status}: {e}: {body:?}")))
        }
    }

    async fn sign_up(server: &Server, name: &str) -> Browser {
        let mut b = Browser::default();
        b.call::<()>(
            server,
            "sign_up",
            &[("username", name), ("password", "correct horse")],
        )
        .await
        .unwrap();
        b.call::<()>(server, "claim_faucet", &[]).await.unwrap();
        b
    }

    async fn account(&mut self, server: &Server) -> Option<AccountView> {
        self.call(server, "my_account", &[]).await.unwrap()
    }

    async fn balance(&mut self, server: &Server, asset: &str) -> (Decimal, Decimal) {
        let view = self.account(server).await.unwrap();
        let b = view.balances.iter().find(|b| b.asset == asset).unwrap();
        (b.available.parse().unwrap(), b.reserved.parse().unwrap())
    }

    async fn limit(
        &mut self,
        server: &Server,
        side: &str,
        price: &str,
        qty: &str,
    ) -> Result<String, UserError> {
        self.call(
            server,
            "place_order",
            &[
                ("symbol", "BTC-USD"),
                ("side", side),
                ("order_type", "limit"),
                ("price", price),
                ("quantity", qty),
                ("time_in_force", "GTC"),
            ],
        )
        .await
    }
}

impl Browser {
    /// Buys 1 ETH at 2,000 USD: an order on the other market.
    async fn buy_one_eth(&mut self, server: &Server) -> Result<String, UserError> {
        let order = [
            ("symbol", "ETH-USD"),
            ("side", "buy"),
            ("order_type", "limit"),
            ("price", "2000"),
            ("quantity", "1"),
        ];
        self.call(server, "place_order", &order).await
    }
}

pub(super) fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// A limit order's terms; the book's defaults for the rest.
fn limit_terms(side: orderbook::Side, price: &str, quantity: &str) -> OrderTerms {
    OrderTerms {
        side,
        order_type: orderbook::OrderType::Limit,
        price: Some(d(price)),
        quantity: Some(d(quantity)),
        quote_amount: None,
        time_in_force: None,
        post_only: false,
        self_trade_prevention: Default::default(),
        trigger: None,
    }
}

/// The whole seconds an answer's `Retry-After` says to wait.
fn retry_after(headers: &axum::http::HeaderMap) -> u64 {
    headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The ledger as the store's whole log folds to now, read stream by
/// stream (every account, then every market's stream): the reference for
/// what the ledger is, folded otherwise than the server's read of `$all`.
async fn reload_ledger(server: &Server) -> accounts::Ledger {
    let client = server.exchange.client();
    let mut ledger = load_accounts(&client).await;
    for market in settings().markets {
        let events = load_market(&client, market.symbol.as_str()).await.unwrap();
        for (revision, e) in events.iter().enumerate() {
            let _ = ledger.apply_market(&market.spec, revision as u64, e);
        }
    }
    ledger
}

/// Every account as the registry and the account streams fold to, read
/// stream by stream.
async fn load_accounts(client: &eventstore::Client) -> accounts::Ledger {
    use futures::StreamExt;
    let decode = |b: &[u8]| accounts::AccountEvent::from_json(b).map_err(|e| e.to_string());
    let mut ledger = accounts::Ledger::new();
    let registry = streams::read_stream(client, streams::ACCOUNTS_STREAM, decode);
    for e in registry.await.unwrap() {
        ledger.apply(&e);
    }
    let ids: Vec<u64> = ledger.accounts().map(|a| a.id).collect();
    let mut reads = futures::stream::iter(ids)
        .map(|id| async move { streams::read_stream(client, &account_stream(id), decode).await })
        .buffered(16);
    while let Some(events) = reads.next().await {
        for e in events.unwrap() {
            ledger.apply(&e);
        }
    }
    ledger
}

/// The embedded store in `dir` (where a server there keeps it), opened by
/// itself: to write into a stopped exchange's store the events a crash
/// would have left behind, or to make a store for one to start on.
async fn open_stopped(dir: &Path) -> (store::EmbeddedStore, eventstore::Client) {
    let store = store::EmbeddedStore::start(&dir.join("events"), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = eventstore::Client::new(store.connection_string().parse().unwrap()).unwrap();
    (store, client)
}

/// Appends account events as the accounts task writes them (its event ids,
/// the account's expected revision); gives the ledger with them folded in.
async fn append_account_events(
    client: &eventstore::Client,
    events: &[accounts::AccountEvent],
) -> accounts::Ledger {
    let mut ledger = load_accounts(client).await;
    for e in events {
        let account = ledger.account(e.account()).unwrap();
        let data = account_event_data(e);
        streams::append(
            client,
            &account_stream(e.account()),
            account.stream_events,
            vec![data],
        )
        .await
        .unwrap();
        ledger.apply(e);
    }
    ledger
}

/// Folds the whole log through the operator's check (`exchange check`):
/// every ledger rule holds event by event, every order holds what its book
/// says; and each market's book as readers see it is its stream replayed.
async fn check_store(server: &Server) {
    let markets = settings().markets;
    let client = server.exchange.client();
    for market in &markets {
        let symbol = market.symbol.as_str();
        // A batch still in flight (its caller gone, as an aborted bot's)
        // lands and is published: wait for the two to agree.
        let mut books = (None, None);
        for _ in 0..400 {
            let seen = server.exchange.book(symbol).unwrap().snapshot();
            let events = streams::load_market(&client, symbol).await.unwrap();
            let replayed = orderbook::Book::replay(market.clone(), &events).snapshot();
            if seen == replayed {
                books = (Some(seen), Some(replayed));
                break;
            }
            books = (Some(seen), Some(replayed));
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        // The book readers see is the stream's, replayed.
        assert_eq!(books.0, books.1, "{symbol}");
    }
    // The operator's check, event by event over the whole log.
    let audit = crate::server::audit::audit(&client, &markets)
        .await
        .unwrap();
    let findings: Vec<String> = audit.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(findings, Vec::<String>::new(), "exchange check");
    assert!(audit.events > 0, "the check read the log");
}

async fn download(
    s: &Server,
    b: &Browser,
    path: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let mut request = Request::get(path);
    if let Some(c) = &b.cookie {
        request = request.header(header::COOKIE, format!("session={c}"));
    }
    let response = s
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}
