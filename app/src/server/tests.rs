//! The exchange's rules, exercised through its server functions over the
//! router (as a browser calls them) with the embedded store on disk.

use std::path::Path;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use rust_decimal::Decimal;
use tower::ServiceExt;

use super::market_task::OrderRequest;
use super::streams::{
    account_event_data, account_stream, load_accounts, load_market, market_event_data,
};
use super::*;
use crate::api::AccountView;
use crate::error::UserError;
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
    let app = s.router.clone();
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service).await
    });
    s
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
            request = request.header(header::COOKIE, format!("session={c}"));
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
            let token =
                session::token_from_cookies(value.to_str().unwrap().split(';').next().unwrap());
            self.cookie = token.map(str::to_string);
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

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

/// The ledger as the store's whole log folds to now.
async fn reload_ledger(server: &Server) -> accounts::Ledger {
    let markets = settings().markets;
    let client = server.exchange.client();
    streams::load_ledger(&client, &markets, &Default::default())
        .await
        .unwrap()
}

/// The store a stopped exchange left in `dir`, opened to write into it the
/// events a crash would have left behind.
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
    let mut ledger = load_accounts(client).await.unwrap();
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
    let audit = super::audit::audit(&client, &markets).await.unwrap();
    let findings: Vec<String> = audit.findings.iter().map(|f| f.to_string()).collect();
    assert_eq!(findings, Vec::<String>::new(), "exchange check");
    assert!(audit.events > 0, "the check read the log");
}

/// The exchange has one page; any other address gets a plain 404 page
/// that leads back to it, not the terminal.
#[tokio::test]
async fn an_unknown_address_gets_page_not_found() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let request = Request::get("/markets/nowhere")
        .body(Body::empty())
        .unwrap();
    let response = s.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(body.to_vec()).unwrap();
    assert!(html.contains("Page not found."), "{html}");
    assert!(html.contains(r#"<a href="/">"#), "{html}");
    assert!(html.contains(r#"name="viewport""#), "{html}");
    assert!(!html.contains("<canvas"), "{html}");
}

#[tokio::test]
async fn sign_up_log_in_and_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut alice = Browser::default();
    assert_eq!(alice.account(&s).await, None);
    let err = alice
        .call::<()>(
            &s,
            "sign_up",
            &[("username", "al"), ("password", "correct horse")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("username"));
    let err = alice
        .call::<()>(
            &s,
            "sign_up",
            &[("username", "alice"), ("password", "short")],
        )
        .await
        .unwrap_err();
    assert_eq!(
        (err.field.as_deref(), err.message.as_str()),
        (Some("password"), "passwords are 8 to 128 characters")
    );
    alice
        .call::<()>(
            &s,
            "sign_up",
            &[("username", "alice"), ("password", "correct horse")],
        )
        .await
        .unwrap();
    assert_eq!(alice.account(&s).await.unwrap().username, "alice");
    let err = Browser::default()
        .call::<()>(
            &s,
            "sign_up",
            &[("username", "Alice"), ("password", "another one")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, "that username is taken");

    alice.call::<()>(&s, "log_out", &[]).await.unwrap();
    assert_eq!(alice.cookie, None);
    assert_eq!(alice.account(&s).await, None);
    let err = alice
        .call::<()>(
            &s,
            "log_in",
            &[("username", "alice"), ("password", "wrong horse")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, "wrong username or password");
    alice
        .call::<()>(
            &s,
            "log_in",
            &[("username", "alice"), ("password", "correct horse")],
        )
        .await
        .unwrap();
    assert_eq!(alice.account(&s).await.unwrap().username, "alice");
    // A logged-out token no longer works even if a browser kept it.
    let old = alice.cookie.clone();
    alice.call::<()>(&s, "log_out", &[]).await.unwrap();
    alice.cookie = old;
    assert_eq!(alice.account(&s).await, None);
}

#[tokio::test]
async fn actions_need_a_session() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut nobody = Browser::default();
    assert_eq!(
        nobody
            .call::<()>(&s, "claim_faucet", &[])
            .await
            .unwrap_err()
            .message,
        "please log in first"
    );
    let err = nobody.limit(&s, "buy", "100", "1").await.unwrap_err();
    assert_eq!(err.message, "please log in first");
    nobody.cookie = Some("forged".into());
    let err = nobody
        .call::<String>(
            &s,
            "cancel_order",
            &[("symbol", "BTC-USD"), ("order_id", "1")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, "please log in first");
}

#[tokio::test]
async fn the_faucet_has_a_limit() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    assert_eq!(a.balance(&s, "USD").await, (d("10000"), d("0")));
    for _ in 1..10 {
        a.call::<()>(&s, "claim_faucet", &[]).await.unwrap();
    }
    assert_eq!(a.balance(&s, "USD").await.0, d("100000"));
    let err = a.call::<()>(&s, "claim_faucet", &[]).await.unwrap_err();
    assert_eq!(err.message, "the faucet limit for this account is reached");
    check_store(&s).await;
}

#[tokio::test]
async fn bad_orders_get_messages_beside_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let cases = [
        (("buy", "abc", "1"), "price", "\"abc\" is not a number"),
        (("buy", "", "1"), "price", "enter a limit price"),
        (
            ("buy", "100.001", "1"),
            "price",
            "price must be a multiple of 0.01",
        ),
        (
            ("buy", "-5", "1"),
            "price",
            "price must be greater than zero",
        ),
        (
            ("buy", "100", "0.00001"),
            "quantity",
            "the smallest order is 0.0001 BTC",
        ),
        (
            ("buy", "100", "0.000011"),
            "quantity",
            "quantity must be a multiple of 0.00001",
        ),
        (("buy", "100", "1e3"), "quantity", "\"1e3\" is not a number"),
        (
            ("buy", "20000", "1"),
            "quantity",
            "insufficient USD: 10000 available, 20000 needed",
        ),
        (
            ("sell", "100", "2"),
            "quantity",
            "insufficient BTC: 1 available, 2 needed",
        ),
    ];
    for ((side, price, qty), field, message) in cases {
        let err = a.limit(&s, side, price, qty).await.unwrap_err();
        assert_eq!(
            (err.field.as_deref(), err.message.as_str()),
            (Some(field), message),
            "{side} {price} {qty}"
        );
    }
    let err = a
        .call::<String>(
            &s,
            "place_order",
            &[
                ("symbol", "DOGE-USD"),
                ("side", "buy"),
                ("order_type", "limit"),
                ("price", "1"),
                ("quantity", "1"),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, "there is no market DOGE-USD");
    let err = a
        .call::<String>(
            &s,
            "place_order",
            &[
                ("symbol", "BTC-USD"),
                ("side", "up"),
                ("order_type", "limit"),
            ],
        )
        .await
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("side"));
    // Nothing was reserved by any of it.
    assert_eq!(a.balance(&s, "USD").await, (d("10000"), d("0")));
    assert!(a.account(&s).await.unwrap().open_orders.is_empty());
}

#[tokio::test]
async fn a_trade_settles_both_sides_and_cancel_releases_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    let msg = a.limit(&s, "sell", "30000", "0.5").await.unwrap();
    assert_eq!(msg, "Order 1 is on the book.");
    assert_eq!(a.balance(&s, "BTC").await, (d("0.5"), d("0.5")));
    let open = a.account(&s).await.unwrap().open_orders;
    assert_eq!(
        (open.len(), open[0].status.as_str(), open[0].filled.as_str()),
        (1, "open", "0")
    );

    // Bob bids 0.2 at 31000: he trades at Alice's 30000 and pays 6000.
    let msg = b.limit(&s, "buy", "31000", "0.2").await.unwrap();
    assert_eq!(
        msg,
        "Order 2 filled: 0.2 BTC traded at an average price of 30000."
    );
    // Bob (taker, 0.2 %) gets 0.2 BTC less 0.0004; his 200 USD of price
    // improvement is back in available.
    assert_eq!(b.balance(&s, "USD").await, (d("4000"), d("0")));
    assert_eq!(b.balance(&s, "BTC").await, (d("1.1996"), d("0")));
    // Alice (maker, 0.1 %) gets 6000 less 6; 0.3 BTC still held for her order.
    assert_eq!(a.balance(&s, "USD").await, (d("15994"), d("0")));
    assert_eq!(a.balance(&s, "BTC").await, (d("0.5"), d("0.3")));
    let view = a.account(&s).await.unwrap();
    assert_eq!(view.open_orders[0].status, "partially filled");
    assert_eq!(view.open_orders[0].filled, "0.2");
    let fill = &view.fills[0];
    assert_eq!(
        (
            fill.role.as_str(),
            fill.fee.as_str(),
            fill.fee_asset.as_str()
        ),
        ("maker", "6", "USD")
    );
    let bob_fill = &b.account(&s).await.unwrap().fills[0];
    assert_eq!(
        (bob_fill.role.as_str(), bob_fill.fee.as_str()),
        ("taker", "0.0004")
    );

    // Bob cannot cancel Alice's order; Alice can.
    let err = b
        .call::<String>(
            &s,
            "cancel_order",
            &[("symbol", "BTC-USD"), ("order_id", "1")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, "the order belongs to another account");
    a.call::<String>(
        &s,
        "cancel_order",
        &[("symbol", "BTC-USD"), ("order_id", "1")],
    )
    .await
    .unwrap();
    assert_eq!(a.balance(&s, "BTC").await, (d("0.8"), d("0")));
    assert!(a.account(&s).await.unwrap().open_orders.is_empty());
    let err = a
        .call::<String>(
            &s,
            "cancel_order",
            &[("symbol", "BTC-USD"), ("order_id", "1")],
        )
        .await
        .unwrap_err();
    assert_eq!(err.message, "no open order with this id");
    check_store(&s).await;
}

#[tokio::test]
async fn market_orders_by_quantity_or_quote_amount() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    a.limit(&s, "sell", "100", "0.5").await.unwrap();
    a.limit(&s, "sell", "200", "0.5").await.unwrap();
    let market = |qty: &'static str, quote: &'static str| {
        [
            ("symbol", "BTC-USD"),
            ("side", "buy"),
            ("order_type", "market"),
            ("price", "999"), // hidden by the form for market orders: ignored
            ("quantity", qty),
            ("quote_amount", quote),
            ("time_in_force", "GTC"),
        ]
    };
    let msg: String = b.call(&s, "place_order", &market("", "75")).await.unwrap();
    assert_eq!(
        msg,
        "Order 3 filled: 0.625 BTC traded at an average price of 120."
    );
    let msg: String = b.call(&s, "place_order", &market("0.5", "")).await.unwrap();
    assert_eq!(
        msg,
        "Order 4: 0.375 BTC traded at an average price of 200; the rest was cancelled: not enough liquidity."
    );
    // 50 + 25 by quote, then 75 for the rest of the book.
    assert_eq!(b.balance(&s, "USD").await, (d("9850"), d("0")));
    let err = b
        .call::<String>(&s, "place_order", &market("", ""))
        .await
        .unwrap_err();
    assert_eq!(err.message, "enter a quantity or an amount to spend");
    check_store(&s).await;
}

#[tokio::test]
async fn a_restart_rebuilds_books_accounts_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, before_a, before_b);
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        b = Browser::sign_up(&s, "bob").await;
        a.limit(&s, "sell", "30000", "0.5").await.unwrap();
        b.limit(&s, "buy", "30000", "0.1").await.unwrap();
        b.limit(&s, "buy", "29000", "0.1").await.unwrap();
        before_a = a.account(&s).await.unwrap();
        before_b = b.account(&s).await.unwrap();
        s.exchange.stop().await;
    }
    let s = start(dir.path()).await;
    assert_eq!(a.account(&s).await.unwrap(), before_a);
    assert_eq!(b.account(&s).await.unwrap(), before_b);
    // Order ids go on from where they were.
    let msg = a.limit(&s, "sell", "29000", "0.1").await.unwrap();
    assert!(msg.starts_with("Order 4 filled"), "{msg}");
    check_store(&s).await;
}

/// A log written before fees were in trades settled each trade with ledger
/// events after the market's append. A crash in between left the
/// reservation in the account stream and the trade in the market stream,
/// and nothing settled: written here as that version wrote them, with the
/// exchange stopped. The trade is settled at the next start, once.
#[tokio::test]
async fn a_settlement_an_old_log_lost_in_a_crash_is_made_exactly_once_at_restart() {
    use orderbook::{Command, PlaceOrder, SelfTradePrevention};
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b);
    let bob;
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        b = Browser::sign_up(&s, "bob").await;
        a.limit(&s, "sell", "30000", "0.5").await.unwrap();
        bob = s
            .exchange
            .account_for(b.cookie.as_deref().unwrap())
            .unwrap();
        s.exchange.stop().await;
    }
    {
        let (store, client) = open_stopped(dir.path()).await;
        let market = settings().markets.remove(0);
        let symbol = market.symbol.to_string();
        let events = load_market(&client, &symbol).await.unwrap();
        let book = orderbook::Book::replay(market.clone(), &events);
        let order_id = book.last_order_id() + 1;
        let place = PlaceOrder {
            symbol: market.symbol.clone(),
            order_id,
            account: bob,
            side: orderbook::Side::Buy,
            order_type: orderbook::OrderType::Limit,
            price: Some(d("30000")),
            quantity: Some(d("0.1")),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::CancelTaker,
            at: 2,
            trigger: None,
        };
        // The book decides without fees, as that version wrote trades.
        let decision = book.decide(&Command::Place(place.clone()));
        let trades = decision
            .iter()
            .filter(|e| matches!(e, orderbook::Event::TradeExecuted(t) if t.fees.is_none()));
        assert_eq!(trades.count(), 1, "{decision:?}");
        let (asset, amount) = accounts::order_cost(&market.spec, &place, &decision);
        let reserve = accounts::AccountEvent::FundsReserved {
            account: bob,
            symbol: symbol.clone(),
            order_id,
            asset,
            amount,
            at: 2,
        };
        append_account_events(&client, &[reserve]).await;
        let data = decision.iter().map(market_event_data).collect();
        let stream = streams::market_stream(&symbol);
        streams::append(&client, &stream, events.len() as u64, data)
            .await
            .unwrap();
        store.stop().await.unwrap();
    }
    for _ in 0..2 {
        let s = start(dir.path()).await;
        assert_eq!(b.balance(&s, "USD").await, (d("7000"), d("0")));
        assert_eq!(b.balance(&s, "BTC").await, (d("1.0998"), d("0")));
        assert_eq!(a.balance(&s, "USD").await, (d("12997"), d("0")));
        assert_eq!(a.account(&s).await.unwrap().fills.len(), 1);
        check_store(&s).await;
        s.exchange.stop().await;
    }
}

/// A log written before fees were in trades held funds with their own
/// events: a crash between an order's reservation and its market append
/// left a `FundsReserved` that no order in the market stream names. It
/// holds nothing: only open orders on a book hold funds.
#[tokio::test]
async fn an_old_reservation_whose_order_never_reached_the_book_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a;
    let alice;
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        alice = s
            .exchange
            .account_for(a.cookie.as_deref().unwrap())
            .unwrap();
        s.exchange.stop().await;
    }
    {
        let (store, client) = open_stopped(dir.path()).await;
        let reserve = accounts::AccountEvent::FundsReserved {
            account: alice,
            symbol: "BTC-USD".into(),
            order_id: 7,
            asset: "USD".into(),
            amount: d("500"),
            at: 1,
        };
        append_account_events(&client, &[reserve]).await;
        store.stop().await.unwrap();
    }
    let s = start(dir.path()).await;
    assert_eq!(a.balance(&s, "USD").await, (d("10000"), d("0")));
    let msg = a.limit(&s, "buy", "100", "1").await.unwrap();
    assert_eq!(msg, "Order 1 is on the book.");
    check_store(&s).await;
}

/// A log of version 2 held an amendment's extra with its own event: a
/// crash before the amendment's append left the extra held with the
/// order's terms unchanged. An order holds what its terms cost, so the
/// extra is not held, and nothing of what the order needs is given back.
#[tokio::test]
async fn an_extra_an_old_log_held_for_a_lost_amendment_is_not_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut a;
    let alice;
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        alice = s
            .exchange
            .account_for(a.cookie.as_deref().unwrap())
            .unwrap();
        a.limit(&s, "buy", "100", "0.5").await.unwrap();
        a.limit(&s, "sell", "30000", "0.2").await.unwrap();
        s.exchange.stop().await;
    }
    {
        // What the amendment held before the crash took its append away.
        let (store, client) = open_stopped(dir.path()).await;
        let more = accounts::AccountEvent::ReservationChanged {
            account: alice,
            symbol: "BTC-USD".into(),
            order_id: 1,
            asset: "USD".into(),
            change: d("25"),
            market_revision: None,
            at: 1,
        };
        append_account_events(&client, &[more]).await;
        store.stop().await.unwrap();
    }
    let s = start(dir.path()).await;
    assert_eq!(a.balance(&s, "USD").await, (d("9950"), d("50")));
    assert_eq!(a.balance(&s, "BTC").await, (d("0.8"), d("0.2")));
    check_store(&s).await;
}

#[tokio::test]
async fn two_servers_on_one_store_stay_correct() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::EmbeddedStore::start(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = store.connection_string();
    let s1 = start_listening(Connection::External(url.clone())).await;
    assert!(matches!(
        s1.exchange.role(),
        leadership::Role::Leader { .. }
    ));
    let mut a = Browser::sign_up(&s1, "alice").await;
    let s2 = start_listening(Connection::External(url.clone())).await;
    // The second follows the first, and passes its order actions on.
    assert!(
        matches!(
            s2.exchange.role(),
            leadership::Role::Follower { leader: Some(_) }
        ),
        "{:?}",
        s2.exchange.role()
    );
    let mut b = Browser::sign_up(&s2, "bob").await;
    a.limit(&s1, "sell", "100", "1").await.unwrap();
    let msg = b.limit(&s2, "buy", "100", "0.4").await.unwrap();
    assert!(msg.starts_with("Order 2 filled"), "{msg}");
    // All of Alice's BTC is sold or on the book.
    let err = a.limit(&s1, "sell", "101", "0.5").await.unwrap_err();
    assert!(err.message.starts_with("insufficient BTC"), "{err:?}");
    let msg = b.limit(&s2, "buy", "100", "0.6").await.unwrap();
    assert!(msg.starts_with("Order 3 filled"), "{msg}");
    let s3 = start_listening(Connection::External(url)).await;
    assert_eq!(a.balance(&s3, "BTC").await, (d("0"), d("0")));
    assert_eq!(a.balance(&s3, "USD").await, (d("10099.9"), d("0")));
    assert_eq!(b.balance(&s3, "BTC").await, (d("1.998"), d("0")));
    check_store(&s3).await;
}

/// A server started under the name of one that still runs (as a restarted
/// server is) takes the lead at once and fences every market stream; the
/// old leader learns of the fence from the stream it follows and stops
/// taking orders (503, nothing written), and the order it held still holds
/// exactly what it held. Through the new leader an amendment then holds
/// its extra once.
#[tokio::test]
async fn a_restarted_leader_fences_out_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::EmbeddedStore::start(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = store.connection_string();
    let direct = eventstore::Client::new(url.parse().unwrap()).unwrap();
    let s1 = start_on(Connection::External(url.clone())).await;
    let mut a = Browser::sign_up(&s1, "alice").await;
    a.limit(&s1, "buy", "100", "0.1").await.unwrap();
    assert_eq!(a.balance(&s1, "USD").await, (d("9990"), d("10")));
    let s2 = start_on(Connection::External(url.clone())).await;
    assert_eq!(s2.exchange.role(), leadership::Role::Leader { term: 2 });
    let fenced = load_market(&direct, "BTC-USD").await.unwrap();
    assert!(
        matches!(fenced.last(), Some(orderbook::Event::StreamFenced(f)) if f.term == 2),
        "{:?}",
        fenced.last()
    );
    let amend = [
        ("symbol", "BTC-USD"),
        ("order_id", "1"),
        ("price", "150"),
        ("quantity", "0.1"),
    ];
    let err = a
        .call::<String>(&s1, "amend_order", &amend)
        .await
        .unwrap_err();
    assert_eq!(a.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{err:?}");
    assert!(
        err.message.starts_with("this server is not taking orders"),
        "{err:?}"
    );
    assert!(
        matches!(s1.exchange.role(), leadership::Role::Follower { .. }),
        "the old leader stepped down: {:?}",
        s1.exchange.role()
    );
    assert_eq!(
        load_market(&direct, "BTC-USD").await.unwrap().len(),
        fenced.len(),
        "nothing of the old leader's decision is in the stream"
    );
    assert_eq!(a.balance(&s2, "USD").await, (d("9990"), d("10")));
    let said: String = a.call(&s2, "amend_order", &amend).await.unwrap();
    assert!(said.starts_with("Order 1 amended to 0.1 at 150"), "{said}");
    assert_eq!(a.balance(&s2, "USD").await, (d("9985"), d("15")));
    check_store(&s2).await;
}

#[tokio::test]
async fn concurrent_orders_share_appends() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let a = Browser::sign_up(&s, "alice").await;
    let account = s
        .exchange
        .account_for(a.cookie.as_deref().unwrap())
        .unwrap();
    let order = |i: u64| OrderRequest {
        side: orderbook::Side::Buy,
        order_type: orderbook::OrderType::Limit,
        price: Some(Decimal::from(100 + i)),
        quantity: Some(d("0.01")),
        quote_amount: None,
        time_in_force: None,
        post_only: false,
        self_trade_prevention: Default::default(),
        trigger: None,
    };
    let placed =
        futures::future::join_all((0..64).map(|i| s.exchange.place(account, "BTC-USD", order(i))))
            .await;
    let mut ids: Vec<u64> = placed.into_iter().map(|r| r.unwrap().order_id).collect();
    ids.sort();
    assert_eq!(ids, (1..=64).collect::<Vec<_>>());
    let stats = s.exchange.stats();
    let appends = stats
        .markets
        .iter()
        .find(|m| m.symbol == "BTC-USD")
        .unwrap()
        .appends;
    assert!(appends < 64, "{appends} appends for 64 orders");
    assert_eq!(
        s.exchange.book("BTC-USD").unwrap().resting_orders().len(),
        64
    );
    check_store(&s).await;
}

#[tokio::test]
async fn the_simulator_makes_a_market_that_keeps_every_rule() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let markets = settings().markets;
    let bots = simulator::start(
        s.exchange.clone(),
        markets,
        std::time::Duration::from_millis(5),
    );
    for symbol in ["BTC-USD", "ETH-USD"] {
        let mut trades = 0;
        for _ in 0..400 {
            trades = s.exchange.snapshot(symbol).unwrap().trades.len();
            if trades >= 10 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        assert!(trades >= 10, "{symbol}: {trades} trades");
    }
    assert!(s.exchange.account_id("bot-1").is_some());
    bots.abort();
    check_store(&s).await;
}

/// The bots quote around the book, not around a price of their own: a
/// person's ask far below where they started (which every bot bid used to
/// cross, leaving no bids for minutes) becomes the price they quote under,
/// and both sides of every market fill up to at least 10 levels.
#[tokio::test]
async fn the_simulator_keeps_both_sides_of_every_book_deep_around_a_persons_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let token = s.exchange.sign_up("carol", "correct horse").await.unwrap();
    let carol = s.exchange.account_for(&token).unwrap();
    s.exchange.claim_faucet(carol).await.unwrap();
    let ask = OrderRequest {
        side: orderbook::Side::Sell,
        order_type: orderbook::OrderType::Limit,
        price: Some(d("29000")),
        quantity: Some(d("1")),
        quote_amount: None,
        time_in_force: None,
        post_only: false,
        self_trade_prevention: Default::default(),
        trigger: None,
    };
    s.exchange.place(carol, "BTC-USD", ask).await.unwrap();
    let bots = simulator::start(
        s.exchange.clone(),
        settings().markets,
        std::time::Duration::from_millis(5),
    );
    let levels = |symbol: &str| {
        let depth = s.exchange.depth(symbol).unwrap();
        (depth.bids.len(), depth.asks.len())
    };
    let deep = |(bids, asks): (usize, usize)| bids >= 10 && asks >= 10;
    for _ in 0..500 {
        if deep(levels("BTC-USD")) && deep(levels("ETH-USD")) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    bots.abort();
    for symbol in ["BTC-USD", "ETH-USD"] {
        assert!(deep(levels(symbol)), "{symbol}: {:?}", levels(symbol));
    }
    // Carol's ask is the best, or below it: the bots bid under it.
    let book = s.exchange.book("BTC-USD").unwrap();
    assert!(book.best_bid().unwrap().price < d("29000"));
    check_store(&s).await;
}

// The fault-injecting proxy the binary tests use too: one file, compiled
// into both (these tests use a part of it).
#[path = "../../tests/client/proxy.rs"]
#[allow(dead_code)]
mod proxy;
use proxy::Proxy;

/// A store in `dir`, a client straight to it, a [`Proxy`] in front of it
/// and the connection string through the proxy.
async fn store_behind_proxy(
    dir: &Path,
) -> (store::EmbeddedStore, eventstore::Client, Proxy, String) {
    let store = store::EmbeddedStore::start(dir, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let direct = eventstore::Client::new(store.connection_string().parse().unwrap()).unwrap();
    let proxy = Proxy::start(store.addr()).await;
    let url = store.connection_string().replace(
        &store.addr().port().to_string(),
        &proxy.addr.port().to_string(),
    );
    (store, direct, proxy, url)
}

/// An append the store wrote but whose answer was lost is tried again
/// identically until the store answers: the market is paused meanwhile
/// (the exchange's side, 503), and when the answer comes the order is in
/// the stream once, answered once, and every balance follows.
#[tokio::test]
async fn an_append_whose_answer_is_lost_is_retried_identically_and_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, direct, proxy, url) = store_behind_proxy(dir.path()).await;
    let s = start_on(Connection::External(url)).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    b.limit(&s, "sell", "30000", "0.1").await.unwrap();
    let before = load_market(&direct, "BTC-USD").await.unwrap().len();
    // From now on the store writes but its answers are lost.
    proxy.swallow(true);
    let buy = {
        let s_router = s.router.clone();
        let exchange = s.exchange.clone();
        let mut a2 = Browser {
            cookie: a.cookie.clone(),
            ..Browser::default()
        };
        tokio::spawn(async move {
            let s = Server {
                router: s_router,
                exchange,
            };
            a2.limit(&s, "buy", "30000", "0.1").await
        })
    };
    // Wait until the store has the order's events.
    let mut landed = Vec::new();
    for _ in 0..500 {
        landed = load_market(&direct, "BTC-USD").await.unwrap();
        if landed.len() > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(landed.len() > before, "the append never reached the store");
    // The answer is lost: cut the connections so the client sees an error
    // rather than waiting out its deadline; the market pauses and retries.
    proxy.cut();
    for _ in 0..500 {
        if s.exchange.stats().paused() == ["BTC-USD"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(s.exchange.stats().paused(), ["BTC-USD"]);
    // Retries go on, each the same append: three more tries, each lost
    // (the connections cut until the try fails).
    let unanswered = || {
        let stats = s.exchange.stats();
        let btc = stats.markets.iter().find(|m| m.symbol == "BTC-USD");
        btc.unwrap().unanswered
    };
    for _ in 0..3 {
        let before = unanswered();
        for _ in 0..500 {
            if unanswered() > before {
                break;
            }
            proxy.cut();
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(unanswered() > before, "the append is tried again");
        assert_eq!(s.exchange.stats().paused(), ["BTC-USD"]);
    }
    assert_eq!(
        load_market(&direct, "BTC-USD").await.unwrap().len(),
        landed.len(),
        "the retries were the same append"
    );
    let err = a.limit(&s, "buy", "29000", "0.1").await.unwrap_err();
    assert!(
        err.message.starts_with("market BTC-USD is paused"),
        "{err:?}"
    );
    assert_eq!(a.status, Some(StatusCode::SERVICE_UNAVAILABLE));
    // The network heals: the same append is answered as already written.
    proxy.swallow(false);
    let msg = buy.await.unwrap().unwrap();
    assert!(msg.starts_with("Order 2 filled"), "{msg}");
    assert!(s.exchange.stats().paused().is_empty());
    let after = load_market(&direct, "BTC-USD").await.unwrap();
    assert_eq!(after.len(), landed.len(), "written once");
    let trades = after
        .iter()
        .filter(|e| matches!(e, orderbook::Event::TradeExecuted(_)));
    assert_eq!(trades.count(), 1);
    assert_eq!(a.balance(&s, "BTC").await, (d("1.0998"), d("0")));
    assert_eq!(b.balance(&s, "BTC").await, (d("0.9"), d("0")));
    check_store(&s).await;
}

/// A leader cut off from the store past a follower's lease (its own lease
/// is long, so it still believes it leads: a process paused and resumed
/// is the same case) has an order in flight. The follower takes over and
/// fences every market. When the old leader is back, its append meets the
/// fence: nothing of it is written, it steps down and answers 503, and
/// from then on passes order actions to the new leader.
#[tokio::test]
async fn an_old_leaders_append_meets_the_fence_and_it_steps_down() {
    let dir = tempfile::tempdir().unwrap();
    let (store, direct, proxy, through_proxy) = store_behind_proxy(dir.path()).await;
    // The old leader: reached through the proxy, with a 30 s lease.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = settings();
    config.leader = leadership::LeaderSettings {
        url: format!("http://{}", listener.local_addr().unwrap()),
        lease: std::time::Duration::from_secs(30),
    };
    let s1 = start_on_with(config, Connection::External(through_proxy)).await;
    let app = s1.router.clone();
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, service).await
    });
    assert_eq!(s1.exchange.role(), leadership::Role::Leader { term: 1 });
    let mut a = Browser::sign_up(&s1, "alice").await;
    a.limit(&s1, "buy", "100", "0.1").await.unwrap();
    let s2 = start_listening(Connection::External(store.connection_string())).await;
    assert!(matches!(
        s2.exchange.role(),
        leadership::Role::Follower { leader: Some(_) }
    ));
    proxy.partition(true);
    let order = {
        let (router, exchange) = (s1.router.clone(), s1.exchange.clone());
        let mut a1 = Browser {
            cookie: a.cookie.clone(),
            ..Browser::default()
        };
        tokio::spawn(async move {
            let s = Server { router, exchange };
            let answer = a1.limit(&s, "buy", "99", "0.1").await;
            (answer, a1.status)
        })
    };
    // The follower sees the claim stand still for its lease, and takes over.
    for _ in 0..400 {
        if s2.exchange.role() == (leadership::Role::Leader { term: 2 }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(s2.exchange.role(), leadership::Role::Leader { term: 2 });
    assert_eq!(s1.exchange.role(), leadership::Role::Leader { term: 1 });
    let fenced = load_market(&direct, "BTC-USD").await.unwrap();
    proxy.partition(false);
    let (answer, status) = order.await.unwrap();
    let err = answer.unwrap_err();
    assert_eq!(status, Some(StatusCode::SERVICE_UNAVAILABLE), "{err:?}");
    assert!(
        err.message.starts_with("this server is not taking orders"),
        "{err:?}"
    );
    assert_eq!(
        load_market(&direct, "BTC-USD").await.unwrap().len(),
        fenced.len(),
        "nothing of the old leader's batch is in the stream"
    );
    assert!(
        matches!(s1.exchange.role(), leadership::Role::Follower { .. }),
        "{:?}",
        s1.exchange.role()
    );
    // Once it has read the claim, it passes orders on to the new leader.
    for _ in 0..400 {
        if matches!(
            s1.exchange.role(),
            leadership::Role::Follower { leader: Some(_) }
        ) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let msg = a.limit(&s1, "buy", "99", "0.1").await.unwrap();
    assert!(msg.starts_with("Order 2 is on the book"), "{msg}");
    assert_eq!(a.balance(&s2, "USD").await, (d("9980.1"), d("19.9")));
    check_store(&s2).await;
}

/// A store out of reach for two seconds (a restart, a network fault)
/// loses no server for good. One starting meanwhile waits for the store
/// and starts once it is back (with a new client: the official one gives
/// up for good when its first call fails midway). For a running one, the
/// order in flight meanwhile waits (the market paused, others told so with
/// a 503) and lands once the store is back, and it takes orders again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_trades_again_once_its_store_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _direct, proxy, url) = store_behind_proxy(dir.path()).await;
    proxy.partition(true);
    let starting = tokio::spawn(start_on(Connection::External(url)));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    proxy.partition(false);
    let s = tokio::time::timeout(std::time::Duration::from_secs(20), starting)
        .await
        .expect("the server starts once its store is back")
        .unwrap();
    let mut a = Browser::sign_up(&s, "alice").await;
    a.limit(&s, "buy", "100", "0.1").await.unwrap();
    proxy.partition(true);
    let in_flight = {
        let (router, exchange) = (s.router.clone(), s.exchange.clone());
        let mut a1 = Browser {
            cookie: a.cookie.clone(),
            ..Browser::default()
        };
        tokio::spawn(async move {
            let s = Server { router, exchange };
            a1.limit(&s, "buy", "99", "0.1").await
        })
    };
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(s.exchange.stats().paused(), ["BTC-USD"]);
    let err = a.limit(&s, "buy", "98", "0.1").await.unwrap_err();
    assert_eq!(a.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{err:?}");
    proxy.partition(false);
    let landed = tokio::time::timeout(std::time::Duration::from_secs(20), in_flight)
        .await
        .expect("the order in flight lands once the store is back")
        .unwrap()
        .unwrap();
    assert!(landed.starts_with("Order 2 is on the book"), "{landed}");
    let msg = a.limit(&s, "buy", "98", "0.1").await.unwrap();
    assert!(msg.starts_with("Order 3 is on the book"), "{msg}");
    check_store(&s).await;
}

/// A websocket upgrade of the market feed, as a page at `origin` opens it.
fn feed_upgrade(origin: Option<&str>) -> Request<Body> {
    use leptos::server_fn::ServerFn;
    let mut request = Request::get(<crate::live_market::MarketFeed as ServerFn>::PATH)
        .header(header::HOST, "127.0.0.1:3000")
        .header(header::UPGRADE, "websocket")
        .header(header::CONNECTION, "upgrade")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    request.body(Body::empty()).unwrap()
}

#[tokio::test]
async fn a_page_of_another_site_cannot_open_the_market_feed() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let status = |router: Router, origin: Option<&'static str>| async move {
        let response = router.oneshot(feed_upgrade(origin)).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).to_string())
    };
    let (refused, why) = status(s.router.clone(), Some("https://evil.example")).await;
    assert_eq!(refused, StatusCode::FORBIDDEN);
    assert!(why.contains("https://evil.example"), "{why}");
    // The site's own pages, clients that are not pages, and origins the
    // operator allowed get through to the feed.
    for origin in [Some("http://127.0.0.1:3000"), None] {
        assert_ne!(
            status(s.router.clone(), origin).await.0,
            StatusCode::FORBIDDEN
        );
    }
    let allowing = router(
        Path::new("target/site"),
        "127.0.0.1:0".parse().unwrap(),
        s.exchange.clone(),
        crate::site::SocketPolicy {
            allowed_origins: vec!["https://app.example".into()],
            ..Default::default()
        },
    );
    let (allowed, _) = status(allowing.clone(), Some("https://app.example")).await;
    assert_ne!(allowed, StatusCode::FORBIDDEN);
    assert_eq!(
        status(allowing, Some("https://evil.example")).await.0,
        StatusCode::FORBIDDEN
    );
}

/// Calls `candles_before` for BTC-USD.
async fn history(
    s: &Server,
    interval: &str,
    before_ms: u64,
    limit: usize,
) -> Result<crate::api::CandleHistory, UserError> {
    let (before, limit) = (before_ms.to_string(), limit.to_string());
    let form = [
        ("symbol", "BTC-USD"),
        ("interval", interval),
        ("before_ms", &before),
        ("limit", &limit),
    ];
    Browser::default().call(s, "candles_before", &form).await
}

/// Trades of long ago (written before the exchange starts, as an earlier
/// server would have left them): the history of candles reaches back to
/// the first trade, page by page, in every interval, agrees with what a
/// page is sent first, and is the same after a restart (it is rebuilt
/// from the events). Bad requests get clear errors.
#[tokio::test]
async fn older_candles_come_from_every_trade_ever_made() {
    use crate::api::{CandleHistory, MarketSnapshot};
    use crate::candles::Interval;
    use orderbook::{Command, OrderType, PlaceOrder, SelfTradePrevention, Side};
    let dir = tempfile::tempdir().unwrap();
    let minute = 60_000u64;
    // 600 trades, one a minute, the last an hour ago.
    let first = (clock::now_ms() / minute - 660) * minute;
    let price_of = |i: u64| 30_000 + i % 50;
    {
        let (store, client) = open_stopped(dir.path()).await;
        let market = settings().markets.remove(0);
        let mut book = orderbook::Book::new(market.clone());
        let mut data = Vec::new();
        for i in 0..600u64 {
            let at = (first + i * minute) * 1000 + 500;
            for (side, account) in [(Side::Sell, 900_001), (Side::Buy, 900_002)] {
                let command = Command::Place(PlaceOrder {
                    symbol: market.symbol.clone(),
                    order_id: book.last_order_id() + 1,
                    account,
                    side,
                    order_type: OrderType::Limit,
                    price: Some(Decimal::from(price_of(i))),
                    quantity: Some(d("0.01")),
                    quote_amount: None,
                    time_in_force: None,
                    post_only: false,
                    self_trade_prevention: SelfTradePrevention::default(),
                    at,
                    trigger: None,
                });
                for e in book.decide(&command) {
                    book.apply(&e);
                    data.push(market_event_data(&e));
                }
            }
        }
        let stream = streams::market_stream(market.symbol.as_str());
        streams::append(&client, &stream, 0, data).await.unwrap();
        store.stop().await.unwrap();
    }
    for _ in 0..2 {
        let s = start(dir.path()).await;
        let now = clock::now_ms();
        // The projection reads every event at start; wait until it has.
        let mut newest = CandleHistory {
            candles: Vec::new(),
            earlier: false,
        };
        for _ in 0..200 {
            newest = history(&s, "1m", now, 250).await.unwrap();
            if newest.candles.last().map(|c| c.start_ms) == Some(first + 599 * minute) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(newest.candles.len(), 250);
        assert!(newest.earlier);
        // Page back to the first trade.
        let mut all = newest.candles.clone();
        let mut pages = 1;
        let mut earlier = newest.earlier;
        while earlier {
            let page = history(&s, "1m", all[0].start_ms, 250).await.unwrap();
            earlier = page.earlier;
            all.splice(0..0, page.candles);
            pages += 1;
        }
        assert_eq!(pages, 3);
        assert_eq!(all.len(), 600);
        for (i, c) in all.iter().enumerate() {
            let i = i as u64;
            assert_eq!(c.start_ms, first + i * minute);
            let price = price_of(i) as f64;
            assert_eq!(
                (c.open, c.high, c.low, c.close),
                (price, price, price, price)
            );
            assert!((c.volume - 0.01).abs() < 1e-12);
        }
        // What a page is sent first is the newest of the same candles.
        let mut b = Browser::default();
        let page: MarketSnapshot = b
            .call(&s, "market_page", &[("symbol", "BTC-USD")])
            .await
            .unwrap();
        let minutes = page
            .series
            .iter()
            .find(|s| s.interval == Interval::M1)
            .unwrap();
        assert_eq!(minutes.candles.len(), market_data::CANDLES_SENT);
        assert_eq!(minutes.candles[..], all[600 - market_data::CANDLES_SENT..]);
        // Every interval holds every trade: the volumes add up.
        for interval in Interval::ALL {
            let got = history(&s, interval.label(), now, 1000).await.unwrap();
            assert!(!got.earlier, "{interval:?}");
            let volume: f64 = got.candles.iter().map(|c| c.volume).sum();
            assert!((volume - 6.0).abs() < 1e-9, "{interval:?}: {volume}");
            let expected = (interval.start(first)..=first + 599 * minute)
                .step_by(interval.millis() as usize)
                .count();
            assert_eq!(got.candles.len(), expected, "{interval:?}");
        }
        // Bad requests are refused with what to do instead.
        let refused = |r: Result<CandleHistory, UserError>| r.unwrap_err().message;
        assert!(
            refused(history(&s, "2m", now, 10).await)
                .contains("no interval \"2m\"; use one of 1m, 5m")
        );
        assert!(refused(history(&s, "1m", now, 0).await).contains("1 to 1000 candles"));
        assert!(refused(history(&s, "1m", now, 1001).await).contains("1 to 1000 candles"));
        let mut b = Browser::default();
        let unknown = b
            .call::<CandleHistory>(
                &s,
                "candles_before",
                &[
                    ("symbol", "DOGE-USD"),
                    ("interval", "1m"),
                    ("before_ms", "1"),
                    ("limit", "1"),
                ],
            )
            .await;
        assert_eq!(refused(unknown), "there is no market DOGE-USD");
        s.exchange.stop().await;
    }
}

/// The time machine over the router: the market after its first n events
/// is the stream's first n events replayed by the pure engine (its depth),
/// with the trades among them on its tape, newest first; a time replays
/// every event up to it. Bad requests are refused with what to ask.
#[tokio::test]
async fn a_replay_is_the_stream_replayed_to_that_moment() {
    use crate::api::ReplayView;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    for (price, qty) in [("30010", "0.01"), ("30020", "0.02"), ("30030", "0.03")] {
        a.limit(&s, "sell", price, qty).await.unwrap();
    }
    for (price, qty) in [("29990", "0.01"), ("30015", "0.015"), ("30030", "0.02")] {
        b.limit(&s, "buy", price, qty).await.unwrap();
    }
    a.limit(&s, "sell", "29980", "0.005").await.unwrap();
    let events = load_market(&s.exchange.client(), "BTC-USD").await.unwrap();
    let market = settings().markets.remove(0);
    let replay = |form: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let mut form = form;
            form.push(("symbol", "BTC-USD".to_string()));
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Browser::default()
                .call::<ReplayView>(s, "replay_market", &form)
                .await
        }
    };
    // The market data follows the store: wait until it has every event.
    for _ in 0..100 {
        let r = replay(vec![("events", u64::MAX.to_string())])
            .await
            .unwrap();
        if r.total == events.len() as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for n in 0..=events.len() {
        let got = replay(vec![("events", n.to_string())]).await.unwrap();
        let book = orderbook::Book::replay(market.clone(), &events[..n]);
        assert_eq!(got.events, n as u64);
        assert_eq!(got.total, events.len() as u64);
        assert_eq!(
            got.depth,
            views::depth_view(book.depth(20)),
            "after {n} events"
        );
        let tape: Vec<_> = events[..n]
            .iter()
            .rev()
            .filter_map(views::trade_view)
            .collect();
        assert_eq!(got.trades, tape, "after {n} events");
        assert_eq!(got.at_ms, n.checked_sub(1).map(|i| events[i].at() / 1000));
        let closes: Vec<f64> = got.series[0].candles.iter().map(|c| c.close).collect();
        let last_trade = tape.first().map(|t| t.amounts().0);
        assert_eq!(closes.last().copied(), last_trade, "after {n} events");
    }
    assert!(events.len() > 12, "{}", events.len());
    // A time: every event up to it.
    let at = events[7].at() / 1000;
    let got = replay(vec![("at_ms", at.to_string())]).await.unwrap();
    let upto = events.iter().filter(|e| e.at() / 1000 <= at).count();
    assert_eq!(got.events, upto as u64);
    assert!(upto >= 8);
    // Past the end is the present.
    let got = replay(vec![("events", "1000000".into())]).await.unwrap();
    assert_eq!(got.events, events.len() as u64);
    for bad in [vec![], vec![("events", "1".into()), ("at_ms", "1".into())]] {
        let message = replay(bad).await.unwrap_err().message;
        assert!(message.contains("either events"), "{message}");
    }
    let unknown = Browser::default()
        .call::<ReplayView>(
            &s,
            "replay_market",
            &[("symbol", "DOGE-USD"), ("events", "1")],
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.message, "there is no market DOGE-USD");
    s.exchange.stop().await;
}

/// A page of another site cannot act in a visitor's name: a server
/// function posted from a foreign origin, or with a body no page of this
/// site sends (`text/plain`, which any page may post across sites), gets
/// 403 and changes nothing; log-in forgery included. The site's own pages
/// and clients that are not pages go through.
#[tokio::test]
async fn a_page_of_another_site_cannot_call_a_server_function() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut alice = Browser::sign_up(&s, "alice").await;
    let cookie = format!("session={}", alice.cookie.clone().unwrap());
    let post = |name: &str, origin: Option<&str>, body_type: &str, body: &str| {
        let mut request = Request::post(format!("/api/{name}"))
            .header(header::HOST, "127.0.0.1:3000")
            .header(header::CONTENT_TYPE, body_type)
            .header(header::ACCEPT, "application/json")
            .header(header::COOKIE, &cookie);
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        let request = request.body(Body::from(body.to_string())).unwrap();
        let router = s.router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&body).to_string())
        }
    };
    let order = encode(&[
        ("symbol", "BTC-USD"),
        ("side", "buy"),
        ("order_type", "limit"),
        ("price", "20000"),
        ("quantity", "0.1"),
        ("time_in_force", "GTC"),
    ]);
    let form = "application/x-www-form-urlencoded";
    let (status, why) = post("place_order", Some("https://evil.example"), form, &order).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        why.contains("from https://evil.example is refused"),
        "{why}"
    );
    let (status, why) = post("place_order", None, "text/plain", &order).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(why.contains("text/plain is refused"), "{why}");
    let (status, _) = post(
        "place_order",
        Some("http://127.0.0.1:3000"),
        "text/plain;charset=UTF-8",
        &order,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Log-in forgery: the attacker's own credentials, posted from their page.
    let login = encode(&[("username", "alice"), ("password", "correct horse")]);
    let (status, _) = post("log_in", Some("https://evil.example"), form, &login).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Nothing was placed.
    assert!(alice.account(&s).await.unwrap().open_orders.is_empty());
    // The site's own page and a client that is not a page go through.
    for origin in [Some("http://127.0.0.1:3000"), None] {
        let (status, body) = post("place_order", origin, form, &order).await;
        assert_eq!(status, StatusCode::OK, "{origin:?}: {body}");
    }
    assert_eq!(alice.account(&s).await.unwrap().open_orders.len(), 2);
    s.exchange.stop().await;
}

/// What the caller can change answers 4xx with the error body: a bad
/// field 400 (the field named), no session or wrong password 401, no such
/// market 404, a malformed request 400. Success stays 200.
#[tokio::test]
async fn user_errors_answer_4xx_with_their_message() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut visitor = Browser::default();
    let err = visitor.limit(&s, "buy", "30000", "0.1").await.unwrap_err();
    assert_eq!(
        (visitor.status, &err.message[..]),
        (Some(StatusCode::UNAUTHORIZED), "please log in first")
    );
    let mut a = Browser::sign_up(&s, "alice").await;
    assert_eq!(a.status, Some(StatusCode::OK));
    let err = a.limit(&s, "buy", "abc", "0.1").await.unwrap_err();
    assert_eq!(a.status, Some(StatusCode::BAD_REQUEST));
    assert_eq!(err.field.as_deref(), Some("price"));
    let err = a.limit(&s, "buy", "30000", "500").await.unwrap_err();
    assert_eq!(a.status, Some(StatusCode::BAD_REQUEST), "{}", err.message);
    let wrong = [("username", "alice"), ("password", "not her password")];
    let err = visitor.call::<()>(&s, "log_in", &wrong).await.unwrap_err();
    assert_eq!(
        (visitor.status, &err.message[..]),
        (Some(StatusCode::UNAUTHORIZED), "wrong username or password")
    );
    let unknown = [
        ("symbol", "DOGE-USD"),
        ("interval", "1m"),
        ("before_ms", "1"),
        ("limit", "1"),
    ];
    let err = visitor
        .call::<crate::api::CandleHistory>(&s, "candles_before", &unknown)
        .await
        .unwrap_err();
    assert_eq!(
        (visitor.status, &err.message[..]),
        (Some(StatusCode::NOT_FOUND), "there is no market DOGE-USD")
    );
    let malformed = [
        ("symbol", "BTC-USD"),
        ("interval", "1m"),
        ("before_ms", "soon"),
        ("limit", "1"),
    ];
    visitor
        .call::<crate::api::CandleHistory>(&s, "candles_before", &malformed)
        .await
        .unwrap_err();
    assert_eq!(visitor.status, Some(StatusCode::BAD_REQUEST));
    s.exchange.stop().await;
}

/// Every answer carries the security headers; the page's policy lets only
/// its own scripts run: the nonce in the header is the one on the page's
/// scripts, and nothing else is allowed inline.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let get = |path: &'static str| {
        let router = s.router.clone();
        async move {
            let request = Request::get(path).body(Body::empty()).unwrap();
            let response = router.oneshot(request).await.unwrap();
            let headers = response.headers().clone();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (headers, String::from_utf8_lossy(&body).to_string())
        }
    };
    let (headers, page) = get("/").await;
    let policy = headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap();
    assert!(nonce.len() >= 16, "{policy}");
    let scripts = page.matches("<script").count();
    assert!(scripts > 0);
    assert_eq!(
        page.matches(&format!("nonce=\"{nonce}\"")).count(),
        scripts,
        "every script has the nonce"
    );
    for part in [
        "default-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    // Scripts: no eval (WebAssembly only) and nothing inline without the nonce.
    let scripts_from = policy
        .split(';')
        .find(|d| d.trim().starts_with("script-src"))
        .unwrap();
    assert!(
        !scripts_from.contains(" 'unsafe-eval'") && !scripts_from.contains("'unsafe-inline'"),
        "{policy}"
    );
    // Another page's nonce is another.
    let (again, _) = get("/").await;
    assert_ne!(
        again[header::CONTENT_SECURITY_POLICY],
        headers[header::CONTENT_SECURITY_POLICY]
    );
    for path in ["/", "/no-such-page", "/pkg/none.js"] {
        let (headers, _) = get(path).await;
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
        let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(
            policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
    }
    s.exchange.stop().await;
}

/// Guessing passwords is slowed down: after 5 failures in a row a name
/// (known or not, so the answer tells nothing) must wait before the next
/// try, even with the right password, and other names are not held up; an
/// address may sign up 5 times per window. Refusals answer 429 and say
/// how long to wait.
#[tokio::test]
async fn log_ins_are_limited_per_name_and_sign_ups_per_address() {
    use super::login_limits::{ADDRESS_SIGN_UPS, FIRST_WAIT, FREE_FAILURES};
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    Browser::sign_up(&s, "alice").await;
    Browser::sign_up(&s, "bob").await;
    let mut visitor = Browser::default();
    for name in ["alice", "nobody"] {
        let wrong = [("username", name), ("password", "a wrong password")];
        for _ in 0..FREE_FAILURES {
            visitor.call::<()>(&s, "log_in", &wrong).await.unwrap_err();
            assert_eq!(visitor.status, Some(StatusCode::UNAUTHORIZED));
        }
        let err = visitor.call::<()>(&s, "log_in", &wrong).await.unwrap_err();
        assert_eq!(
            visitor.status,
            Some(StatusCode::TOO_MANY_REQUESTS),
            "{name}"
        );
        assert_eq!(
            err.message,
            "too many failed log-ins for this name; try again in 2 s"
        );
    }
    let right = [("username", "alice"), ("password", "correct horse")];
    visitor.call::<()>(&s, "log_in", &right).await.unwrap_err();
    assert_eq!(visitor.status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert!(visitor.cookie.is_none());
    // Bob is not held up by Alice's name.
    let mut bob = Browser::default();
    let bobs = [("username", "bob"), ("password", "correct horse")];
    bob.call::<()>(&s, "log_in", &bobs).await.unwrap();
    assert!(bob.account(&s).await.is_some());
    // Once the wait is over, the right password gets in and clears the count.
    tokio::time::sleep(FIRST_WAIT).await;
    visitor.call::<()>(&s, "log_in", &right).await.unwrap();
    assert_eq!(visitor.account(&s).await.unwrap().username, "alice");
    // Sign-ups from one address: 2 made above, up to the limit, then 429.
    for n in 2..ADDRESS_SIGN_UPS {
        let name = format!("trader{n}");
        let form = [("username", name.as_str()), ("password", "correct horse")];
        Browser::default()
            .call::<()>(&s, "sign_up", &form)
            .await
            .unwrap();
    }
    let mut one_more = Browser::default();
    let form = [("username", "carol"), ("password", "correct horse")];
    let err = one_more.call::<()>(&s, "sign_up", &form).await.unwrap_err();
    assert_eq!(one_more.status, Some(StatusCode::TOO_MANY_REQUESTS));
    assert!(
        err.message
            .starts_with("too many attempts from your address; try again in "),
        "{}",
        err.message
    );
    assert!(s.exchange.account_id("carol").is_none());
    s.exchange.stop().await;
}

/// Sessions end on the server: one unused for the idle limit, one older
/// than the absolute limit (used or not), the oldest past the sessions an
/// account may hold, and all of them at "log out everywhere"; each end is
/// in the log, so a restart does not bring them back.
#[tokio::test]
async fn sessions_expire_are_capped_and_end_everywhere() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let mut config = settings();
    config.sessions = session::SessionPolicy {
        idle: Duration::from_millis(800),
        absolute: Duration::from_millis(3000),
        per_account: 2,
        secure_cookie: true,
    };
    let s = start_on_with(
        config.clone(),
        Connection::Embedded {
            data: dir.path().join("events"),
        },
    )
    .await;
    let form = [("username", "alice"), ("password", "correct horse")];
    let mut first = Browser::sign_up(&s, "alice").await;
    // Used every 200 ms, a session outlives the idle limit many times over,
    // but not the absolute one (its age counts from before `began`).
    let began = std::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let alive = first.account(&s).await.is_some();
        if began.elapsed() < Duration::from_millis(2800) {
            assert!(alive, "ended after {:?}", began.elapsed());
        } else if began.elapsed() > Duration::from_millis(3100) {
            assert!(!alive, "past the absolute limit");
            break;
        }
    }
    // Left unused past the idle limit, a session is over.
    let mut idle = Browser::default();
    idle.call::<()>(&s, "log_in", &form).await.unwrap();
    assert!(idle.account(&s).await.is_some());
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(idle.account(&s).await.is_none(), "past the idle limit");
    // Two sessions at most: a third log-in ends the oldest.
    let mut browsers: Vec<Browser> = (0..3).map(|_| Browser::default()).collect();
    for b in &mut browsers {
        b.call::<()>(&s, "log_in", &form).await.unwrap();
    }
    let signed_in: Vec<bool> = {
        let mut v = Vec::new();
        for b in &mut browsers {
            v.push(b.account(&s).await.is_some());
        }
        v
    };
    assert_eq!(signed_in, [false, true, true]);
    // Log out everywhere from one ends the other too.
    browsers[2]
        .call::<()>(&s, "log_out_everywhere", &[])
        .await
        .unwrap();
    assert!(browsers[1].account(&s).await.is_none());
    assert!(browsers[2].account(&s).await.is_none());
    // The ends are in the log: after a restart no old session is back.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let alice = s.exchange.account_id("alice").unwrap();
    s.exchange.stop().await;
    let s = start_on_with(
        config,
        Connection::Embedded {
            data: dir.path().join("events"),
        },
    )
    .await;
    let held = reload_ledger(&s)
        .await
        .account(alice)
        .unwrap()
        .sessions
        .len();
    assert_eq!(held, 0);
    // Behind TLS the cookie is Secure, and lives as long as the session.
    let request = Request::post("/api/log_in")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(encode(&form)))
        .unwrap();
    let response = s.router.clone().oneshot(request).await.unwrap();
    let cookie = response.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(cookie.ends_with("; Max-Age=3; Secure"), "{cookie}");
    s.exchange.stop().await;
}

/// The trader's order tools: cancel all (one market or every market), the
/// self-trade-prevention mode chosen in the form, the cap on open orders,
/// and a market order with nothing to trade against refused, not accepted
/// empty. Every refusal leaves the funds as they were.
#[tokio::test]
async fn cancel_all_self_trade_modes_and_order_caps() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = settings();
    config.max_open_orders = 3;
    let s = start_on_with(
        config,
        Connection::Embedded {
            data: dir.path().join("events"),
        },
    )
    .await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let place =
        |side: &'static str, symbol: &'static str, price: &'static str, stp: &'static str| {
            [
                ("symbol", symbol),
                ("side", side),
                ("order_type", "limit"),
                ("price", price),
                ("quantity", "0.01"),
                ("time_in_force", "GTC"),
                ("self_trade_prevention", stp),
            ]
        };
    for (symbol, price) in [
        ("BTC-USD", "20000"),
        ("BTC-USD", "20001"),
        ("ETH-USD", "1000"),
    ] {
        a.call::<String>(&s, "place_order", &place("buy", symbol, price, ""))
            .await
            .unwrap();
    }
    let err = a
        .call::<String>(&s, "place_order", &place("buy", "BTC-USD", "20002", ""))
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "you have 3 open orders, the most an account may have; cancel some first"
    );
    assert_eq!(a.status, Some(StatusCode::BAD_REQUEST));
    let done: String = a
        .call(&s, "cancel_all", &[("symbol", "BTC-USD")])
        .await
        .unwrap();
    assert_eq!(done, "Cancelled 2 orders on BTC-USD.");
    let open = a.account(&s).await.unwrap().open_orders;
    assert_eq!(
        open.iter().map(|o| o.symbol.as_str()).collect::<Vec<_>>(),
        ["ETH-USD"]
    );
    assert_eq!(a.balance(&s, "USD").await, (d("9990"), d("10")));
    let done: String = a.call(&s, "cancel_all", &[("symbol", "")]).await.unwrap();
    assert_eq!(done, "Cancelled 1 order.");
    assert_eq!(a.balance(&s, "USD").await, (d("10000"), d("0")));
    let err = a
        .call::<String>(&s, "cancel_all", &[("symbol", "DOGE-USD")])
        .await
        .unwrap_err();
    assert_eq!(
        (a.status, &err.message[..]),
        (Some(StatusCode::NOT_FOUND), "there is no market DOGE-USD")
    );

    // Her own sell rests; a buy that would meet it, with "cancel the
    // resting order", cancels the sell and rests itself: no trade.
    a.call::<String>(&s, "place_order", &place("sell", "BTC-USD", "30000", ""))
        .await
        .unwrap();
    a.call::<String>(
        &s,
        "place_order",
        &place("buy", "BTC-USD", "30000", "cancel_maker"),
    )
    .await
    .unwrap();
    let view = a.account(&s).await.unwrap();
    let sides: Vec<_> = view.open_orders.iter().map(|o| o.side.as_str()).collect();
    assert_eq!(sides, ["buy"]);
    assert!(view.fills.is_empty());
    // The default keeps the resting order and cancels the new one.
    a.call::<String>(&s, "cancel_all", &[]).await.unwrap();
    a.call::<String>(&s, "place_order", &place("sell", "BTC-USD", "30000", ""))
        .await
        .unwrap();
    a.call::<String>(&s, "place_order", &place("buy", "BTC-USD", "30000", ""))
        .await
        .unwrap();
    let view = a.account(&s).await.unwrap();
    let sides: Vec<_> = view.open_orders.iter().map(|o| o.side.as_str()).collect();
    assert_eq!(sides, ["sell"]);
    assert!(view.fills.is_empty());
    let err = a
        .call::<String>(
            &s,
            "place_order",
            &place("buy", "BTC-USD", "1", "cancel_everything"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("self_trade_prevention"));

    // Nothing to buy on ETH-USD: a market buy is refused, nothing reserved.
    let market_buy = [
        ("symbol", "ETH-USD"),
        ("side", "buy"),
        ("order_type", "market"),
        ("quote_amount", "100"),
    ];
    let err = a
        .call::<String>(&s, "place_order", &market_buy)
        .await
        .unwrap_err();
    assert_eq!(
        err.message,
        "there is nothing to buy on ETH-USD right now: the book has no asks; place a limit order instead"
    );
    assert_eq!(a.status, Some(StatusCode::BAD_REQUEST));
    assert_eq!(a.balance(&s, "USD").await.1, d("0"));
    check_store(&s).await;
    s.exchange.stop().await;
}

/// Amending from the open-orders table: a smaller quantity keeps the
/// order's place, a new price sends it back, the reservation follows the
/// new terms exactly, a crossing price trades, and every refusal (no
/// funds, off tick, nothing to change, not open, not hers) answers 400
/// beside its field and changes nothing.
#[tokio::test]
async fn an_open_order_is_amended_from_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    a.limit(&s, "buy", "20000", "0.1").await.unwrap();
    let id = a.account(&s).await.unwrap().open_orders[0]
        .order_id
        .to_string();
    let amend = |price: &'static str, quantity: &'static str| {
        let id = id.clone();
        move || {
            [
                ("symbol", "BTC-USD".to_string()),
                ("order_id", id),
                ("price", price.to_string()),
                ("quantity", quantity.to_string()),
            ]
        }
    };
    async fn send(
        browser: &mut Browser,
        s: &Server,
        form: [(&'static str, String); 4],
    ) -> Result<String, UserError> {
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        browser.call(s, "amend_order", &form).await
    }
    let said = send(&mut a, &s, amend("20000", "0.05")()).await.unwrap();
    assert_eq!(
        said,
        format!("Order {id} amended to 0.05 at 20000: it keeps its place in the queue.")
    );
    assert_eq!(a.balance(&s, "USD").await, (d("9000"), d("1000")));
    let said = send(&mut a, &s, amend("21000", "")()).await.unwrap();
    assert!(
        said.ends_with("it goes to the back of the queue."),
        "{said}"
    );
    assert_eq!(a.balance(&s, "USD").await, (d("8950"), d("1050")));
    let open = &a.account(&s).await.unwrap().open_orders[0];
    assert_eq!((&open.price[..], &open.remaining[..]), ("21000", "0.05"));

    let refusals = [
        (
            amend("1000000", "1")(),
            Some("quantity"),
            "insufficient USD",
        ),
        (
            amend("21000.001", "")(),
            Some("price"),
            "price must be a multiple of",
        ),
        (
            amend("", "")(),
            Some("price"),
            "enter a new price or quantity",
        ),
        (
            amend("21000", "0.05")(),
            None,
            "the amendment changes nothing",
        ),
    ];
    for (form, field, message) in refusals {
        let err = send(&mut a, &s, form).await.unwrap_err();
        assert_eq!(a.status, Some(StatusCode::BAD_REQUEST), "{message}");
        assert_eq!(err.field.as_deref(), field, "{message}");
        assert!(err.message.starts_with(message), "{}", err.message);
    }
    let mut other = amend("21000", "0.01")();
    other[1].1 = "999".into();
    let err = send(&mut a, &s, other).await.unwrap_err();
    assert_eq!(err.message, "no open order with this id");
    let err = send(&mut b, &s, amend("21000", "0.01")())
        .await
        .unwrap_err();
    assert_eq!(b.status, Some(StatusCode::BAD_REQUEST));
    assert_eq!(err.message, "the order belongs to another account");
    assert_eq!(a.balance(&s, "USD").await, (d("8950"), d("1050")));

    // Bob offers 0.02 at 21500; Alice's bid moved up to it trades that
    // and rests with 0.03, holding 0.03 * 21500.
    b.limit(&s, "sell", "21500", "0.02").await.unwrap();
    let said = send(&mut a, &s, amend("21500", "")()).await.unwrap();
    assert_eq!(
        said,
        format!(
            "Order {id} amended to 0.05 at 21500. Order {id}: 0.02 BTC traded at an average price of 21500; the rest is on the book."
        )
    );
    let view = a.account(&s).await.unwrap();
    assert_eq!(view.fills.len(), 1);
    assert_eq!(view.open_orders[0].remaining, "0.03");
    assert_eq!(a.balance(&s, "USD").await, (d("8925"), d("645")));
    check_store(&s).await;
    s.exchange.stop().await;
}

/// Asks for the caller's orders until the history holds `count` of them
/// (it follows the store, a moment behind the answer to an order).
async fn orders_when(
    b: &mut Browser,
    s: &Server,
    form: &[(&str, &str)],
    count: usize,
) -> crate::api::OrderHistoryPage {
    for _ in 0..400 {
        let page: crate::api::OrderHistoryPage = b.call(s, "my_orders", form).await.unwrap();
        if page.orders.len() >= count {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the order history never held {count} orders for {form:?}");
}

async fn download(s: &Server, b: &Browser, path: &str) -> (StatusCode, HeaderMapCopy, String) {
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

type HeaderMapCopy = axum::http::HeaderMap;

/// Every order with its state, fills and reason, and every trade, newest
/// first, paged by a cursor that holds while new orders arrive, filtered
/// by market and state, downloadable as CSV, and the same after a restart.
#[tokio::test]
async fn order_and_trade_history_pages_filters_and_csv() {
    use crate::api::OrderHistoryPage;
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b);
    let first_page;
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        b = Browser::sign_up(&s, "bob").await;
        a.limit(&s, "sell", "30000", "0.5").await.unwrap();
        a.limit(&s, "buy", "20000", "0.1").await.unwrap();
        a.call::<String>(
            &s,
            "cancel_order",
            &[("symbol", "BTC-USD"), ("order_id", "2")],
        )
        .await
        .unwrap();
        a.limit(&s, "buy", "30000", "5").await.unwrap_err();
        a.buy_one_eth(&s).await.unwrap();
        b.limit(&s, "buy", "30000", "0.1").await.unwrap();

        let all = orders_when(&mut a, &s, &[], 4).await;
        // Bob's trade reaches Alice's first order a moment after his answer.
        let mut page = all;
        for _ in 0..400 {
            if page.orders[3].state == "partially_filled" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            page = a.call(&s, "my_orders", &[]).await.unwrap();
        }
        let rows: Vec<_> = page
            .orders
            .iter()
            .map(|o| (o.symbol.as_str(), o.order_id, o.state.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("ETH-USD", Some(1), "open"),
                ("BTC-USD", None, "rejected"),
                ("BTC-USD", Some(2), "cancelled"),
                ("BTC-USD", Some(1), "partially_filled"),
            ]
        );
        let sold = page.orders[3].clone();
        assert_eq!(
            (
                &sold.state[..],
                &sold.filled[..],
                sold.average_price.as_deref()
            ),
            ("partially_filled", "0.1", Some("30000"))
        );
        assert_eq!(
            (sold.fee.as_deref(), sold.fee_asset.as_deref()),
            (Some("3"), Some("USD"))
        );
        assert_eq!(sold.fills.len(), 1);
        assert_eq!(sold.fills[0].role, "maker");
        let rejected = &page.orders[1];
        assert_eq!(
            (rejected.price.as_deref(), rejected.quantity.as_deref()),
            (Some("30000"), Some("5"))
        );
        assert_eq!(
            rejected.reason.as_deref(),
            Some("insufficient USD: 10000 available, 150000 needed")
        );
        assert_eq!(page.orders[2].reason.as_deref(), Some("cancelled by you"));

        // Two at a time: the cursor goes on where the first page ended,
        // even after a newer order came in.
        let one: OrderHistoryPage = a.call(&s, "my_orders", &[("limit", "2")]).await.unwrap();
        assert_eq!(one.orders, page.orders[..2]);
        a.limit(&s, "buy", "10000", "0.01").await.unwrap();
        orders_when(&mut a, &s, &[], 5).await;
        let next = one.next.unwrap().to_string();
        let two: OrderHistoryPage = a
            .call(&s, "my_orders", &[("limit", "2"), ("before", &next)])
            .await
            .unwrap();
        assert_eq!(two.orders, page.orders[2..]);
        assert_eq!(two.next, None);

        // Filters: open takes partly filled orders; market and state combine.
        let open: OrderHistoryPage = a.call(&s, "my_orders", &[("state", "open")]).await.unwrap();
        let ids: Vec<_> = open
            .orders
            .iter()
            .map(|o| (o.symbol.as_str(), o.order_id))
            .collect();
        assert_eq!(
            ids,
            [
                ("BTC-USD", Some(4)),
                ("ETH-USD", Some(1)),
                ("BTC-USD", Some(1))
            ]
        );
        let form = [("market", "BTC-USD"), ("state", "cancelled")];
        let cancelled: OrderHistoryPage = a.call(&s, "my_orders", &form).await.unwrap();
        assert_eq!(cancelled.orders.len(), 1);
        for (form, message) in [
            (
                &[("state", "lost")][..],
                "choose a state of open, filled, cancelled, rejected",
            ),
            (&[("market", "DOGE-USD")][..], "there is no market DOGE-USD"),
            (&[("limit", "0")][..], "a page holds 1 to 500 rows"),
        ] {
            let err = a
                .call::<OrderHistoryPage>(&s, "my_orders", form)
                .await
                .unwrap_err();
            assert_eq!(
                (a.status, &err.message[..]),
                (Some(StatusCode::BAD_REQUEST), message)
            );
        }
        let err = Browser::default()
            .call::<OrderHistoryPage>(&s, "my_orders", &[])
            .await
            .unwrap_err();
        assert_eq!(err.message, "please log in first");

        // Trades: each side's own, newest first, by market.
        let trades: crate::api::TradeHistoryPage = a.call(&s, "my_trades", &[]).await.unwrap();
        assert_eq!(trades.trades.len(), 1);
        assert_eq!(
            (
                &trades.trades[0].side[..],
                &trades.trades[0].quote_amount[..]
            ),
            ("sell", "3000")
        );
        let eth: crate::api::TradeHistoryPage = b
            .call(&s, "my_trades", &[("market", "ETH-USD")])
            .await
            .unwrap();
        assert!(eth.trades.is_empty());

        // The CSV files: every row the filter keeps, the documented columns.
        let (status, headers, csv) = download(&s, &a, "/history/orders.csv").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        assert_eq!(
            headers[header::CONTENT_DISPOSITION],
            "attachment; filename=\"orders.csv\""
        );
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], history_export::ORDER_COLUMNS.join(","));
        assert_eq!(lines.len(), 6, "{csv}");
        let rejected = lines[3];
        assert!(
            rejected.contains(
                ",BTC-USD,,buy,limit,,30000,5,,0,,,,rejected,\"insufficient USD: 10000 available, 150000 needed\""
            ),
            "{rejected}"
        );
        let (_, _, csv) = download(&s, &a, "/history/orders.csv?market=ETH-USD&state=").await;
        assert_eq!(csv.lines().count(), 2, "{csv}");
        let (status, _, csv) = download(&s, &b, "/history/trades.csv?market=BTC-USD").await;
        assert_eq!(status, StatusCode::OK);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], history_export::TRADE_COLUMNS.join(","));
        assert!(
            lines[1].ends_with(",BTC-USD,1,3,buy,taker,30000,0.1,3000,0.0002,BTC"),
            "{}",
            lines[1]
        );
        let (status, _, _) = download(&s, &Browser::default(), "/history/trades.csv").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let (status, _, _) = download(&s, &a, "/history/orders.csv?state=lost").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        first_page = a
            .call::<OrderHistoryPage>(&s, "my_orders", &[])
            .await
            .unwrap();
        s.exchange.stop().await;
    }
    // Rebuilt from the events at start: the same history.
    let s = start(dir.path()).await;
    assert_eq!(orders_when(&mut a, &s, &[], 5).await, first_page);
}

/// The history page: the caller's own rows in pages of 50 with a link to
/// the older ones, tabs and filters as plain links and a GET form, clear
/// answers for no session and a bad address, and no script at all.
#[tokio::test]
async fn the_history_page_is_plain_html_paged_by_links() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    for i in 0..52 {
        a.limit(&s, "buy", &(100 + i).to_string(), "0.01")
            .await
            .unwrap();
    }
    b.limit(&s, "sell", "151", "0.01").await.unwrap();
    orders_when(&mut a, &s, &[("state", "filled")], 1).await;
    let rows = |html: &str| html.matches("<tr data-state=").count();

    let (status, headers, html) = download(&s, &a, "/history").await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.starts_with("default-src 'none';"), "{policy}");
    assert!(!html.contains("<script"), "{html}");
    assert_eq!(rows(&html), 50);
    assert!(
        html.contains(r#"data-state="filled" data-order-id="52""#),
        "{html}"
    );
    assert!(
        html.contains("0.01 at 151 (maker), fee 0.00001 BTC"),
        "{html}"
    );
    let older = r#"<a href="/history?tab=orders&amp;before=2" rel="next">Older</a>"#;
    assert!(html.contains(older), "{html}");
    assert!(html.contains(r#"href="/history/orders.csv?""#), "{html}");

    let (_, _, html) = download(&s, &a, "/history?tab=orders&before=2").await;
    assert_eq!(rows(&html), 2);
    assert!(html.contains(r#"data-order-id="1""#), "{html}");
    assert!(!html.contains("rel=\"next\""), "{html}");
    assert!(
        html.contains(r#"<a href="/history?tab=orders">Newest</a>"#),
        "{html}"
    );

    // The form's filters come back selected, and its links keep them.
    let (_, _, html) = download(&s, &a, "/history?market=BTC-USD&state=filled").await;
    assert_eq!(rows(&html), 1);
    assert!(
        html.contains(r#"<option value="BTC-USD" selected>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<option value="filled" selected>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/history/orders.csv?market=BTC-USD&amp;state=filled""#),
        "{html}"
    );
    assert!(
        html.contains(r#"href="/history?tab=trades&amp;market=BTC-USD""#),
        "{html}"
    );
    let (_, _, html) = download(&s, &a, "/history?market=ETH-USD&state=").await;
    assert!(html.contains("No orders."), "{html}");

    let (_, _, html) = download(&s, &b, "/history?tab=trades").await;
    assert_eq!(html.matches("<tr data-trade-id=").count(), 1, "{html}");
    assert!(html.contains(r#"<td class="num">1.51</td>"#), "{html}");
    assert!(!html.contains(r#"name="state""#), "{html}");
    assert!(html.contains(r#"href="/history/trades.csv?""#), "{html}");

    let (status, _, html) = download(&s, &Browser::default(), "/history").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(html.contains("Log in on the trading terminal to see your history."));
    for (path, message) in [
        ("/history?tab=fills", "there is no history tab \"fills\""),
        (
            "/history?state=lost",
            "choose a state of open, filled, cancelled, rejected",
        ),
        ("/history?market=DOGE-USD", "there is no market DOGE-USD"),
        (
            "/history?before=soon",
            "the page cursor \"soon\" is not a number",
        ),
    ] {
        let (status, _, html) = download(&s, &a, path).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert!(html.contains(message), "{path}: {html}");
    }
}

/// Stop and take-profit orders through the server: refused before the
/// market's first trade and when the trigger is already reached, sized so
/// that they hold what they may spend, shown waiting, amended (the
/// reservation follows), cancelled (released), capped per account, kept
/// across a restart, and fired by another trader's trade: the order enters
/// and settles like any other.
#[tokio::test]
async fn stop_orders_wait_hold_their_funds_and_fire_on_another_traders_trade() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = settings();
    config.max_stop_orders = 2;
    let connection = || Connection::Embedded {
        data: dir.path().join("events"),
    };
    let s = start_on_with(config.clone(), connection()).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    let mut c = Browser::sign_up(&s, "carol").await;
    let stop = |kind: &'static str,
                side: &'static str,
                trigger: &'static str,
                price: &'static str,
                quantity: &'static str,
                quote: &'static str| {
        [
            ("symbol", "BTC-USD"),
            ("side", side),
            ("order_type", kind),
            ("trigger_price", trigger),
            ("price", price),
            ("quantity", quantity),
            ("quote_amount", quote),
        ]
    };
    let refused = async |browser: &mut Browser, form: &[(&str, &str)]| {
        let err = browser
            .call::<String>(&s, "place_order", form)
            .await
            .unwrap_err();
        assert_eq!(browser.status, Some(StatusCode::BAD_REQUEST), "{err:?}");
        (err.field, err.message)
    };
    let (field, message) = refused(&mut a, &stop("stop_market", "sell", "95", "", "0.5", "")).await;
    assert_eq!(field.as_deref(), Some("trigger_price"));
    assert!(message.contains("has not traded yet"), "{message}");

    // The market trades at 100.
    b.limit(&s, "sell", "100", "0.1").await.unwrap();
    c.limit(&s, "buy", "100", "0.1").await.unwrap();
    let (field, message) = refused(&mut a, &stop("stop_market", "buy", "105", "", "1", "")).await;
    assert_eq!(field.as_deref(), Some("quote_amount"));
    assert!(
        message.contains("sized by the amount to spend"),
        "{message}"
    );
    let (field, message) = refused(&mut a, &stop("stop_limit", "buy", "100", "101", "1", "")).await;
    assert_eq!(field.as_deref(), Some("trigger_price"));
    assert!(message.contains("already reached"), "{message}");
    let (field, _) = refused(&mut a, &stop("stop_limit", "buy", "", "101", "1", "")).await;
    assert_eq!(field.as_deref(), Some("trigger_price"));

    let said: String = a
        .call(
            &s,
            "place_order",
            &stop("stop_limit", "buy", "105", "106", "1", ""),
        )
        .await
        .unwrap();
    assert!(
        said.ends_with("waits for its trigger: it enters when a trade is at or above 105."),
        "{said}"
    );
    let said: String = a
        .call(
            &s,
            "place_order",
            &stop("stop_market", "sell", "95", "", "0.5", ""),
        )
        .await
        .unwrap();
    assert!(said.ends_with("a trade is at or below 95."), "{said}");
    assert_eq!(a.balance(&s, "USD").await, (d("9894"), d("106")));
    assert_eq!(a.balance(&s, "BTC").await, (d("0.5"), d("0.5")));
    let (_, message) = refused(
        &mut a,
        &stop("take_profit_limit", "sell", "110", "110", "0.1", ""),
    )
    .await;
    assert!(message.contains("2 stop orders waiting"), "{message}");
    let view = a.account(&s).await.unwrap();
    let rows: Vec<_> = view
        .open_orders
        .iter()
        .map(|o| {
            (
                o.status.as_str(),
                o.trigger.as_deref(),
                o.trigger_price.as_deref(),
                o.price.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("waiting", Some("stop"), Some("95"), ""),
            ("waiting", Some("stop"), Some("105"), "106")
        ]
    );
    let (sell_stop, buy_stop) = (view.open_orders[0].order_id, view.open_orders[1].order_id);
    assert!(
        s.exchange.depth("BTC-USD").unwrap().bids.is_empty(),
        "held off the book"
    );

    // A new trigger and limit: the reservation follows the new terms.
    let id = buy_stop.to_string();
    let amend = [
        ("symbol", "BTC-USD"),
        ("order_id", id.as_str()),
        ("trigger_price", "104"),
        ("price", "105"),
        ("quantity", "0.5"),
    ];
    let said: String = a.call(&s, "amend_order", &amend).await.unwrap();
    assert_eq!(
        said,
        format!("Order {id} now waits for 104, limit 105, quantity 0.5.")
    );
    let mut held = a.balance(&s, "USD").await;
    for _ in 0..400 {
        if held.1 == d("52.5") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        held = a.balance(&s, "USD").await;
    }
    assert_eq!(held, (d("9947.5"), d("52.5")));
    let reached = [("trigger_price", "99"), ("price", ""), ("quantity", "")];
    let mut form: Vec<(&str, &str)> = vec![("symbol", "BTC-USD"), ("order_id", id.as_str())];
    form.extend(reached);
    let err = a
        .call::<String>(&s, "amend_order", &form)
        .await
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("trigger_price"));
    // Cancelled while waiting: its base comes back.
    a.call::<String>(
        &s,
        "cancel_order",
        &[("symbol", "BTC-USD"), ("order_id", &sell_stop.to_string())],
    )
    .await
    .unwrap();
    assert_eq!(a.balance(&s, "BTC").await, (d("1"), d("0")));
    s.exchange.stop().await;

    // Held across a restart: the book is the fold of its events.
    let s = start_on_with(config, connection()).await;
    let view = a.account(&s).await.unwrap();
    assert_eq!(view.open_orders.len(), 1);
    assert_eq!(view.open_orders[0].trigger_price.as_deref(), Some("104"));

    // Bob rests 0.5 at 105, then trades 0.2 at 104 with Carol: that trade
    // fires Alice's stop, which buys Bob's 0.5 at 105 in the same decision.
    b.limit(&s, "sell", "105", "0.5").await.unwrap();
    b.limit(&s, "sell", "104", "0.2").await.unwrap();
    c.limit(&s, "buy", "104", "0.2").await.unwrap();
    let mut view = a.account(&s).await.unwrap();
    for _ in 0..400 {
        if view.open_orders.is_empty() && view.fills.len() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        view = a.account(&s).await.unwrap();
    }
    assert!(view.open_orders.is_empty(), "{:?}", view.open_orders);
    let fill = &view.fills[0];
    assert_eq!(
        (
            fill.order_id,
            &fill.price[..],
            &fill.quantity[..],
            &fill.role[..]
        ),
        (buy_stop, "105", "0.5", "taker")
    );
    assert_eq!(a.balance(&s, "USD").await, (d("9947.5"), d("0")));
    let page: crate::api::OrderHistoryPage = a
        .call(&s, "my_orders", &[("state", "filled")])
        .await
        .unwrap();
    let o = &page.orders[0];
    assert_eq!(
        (
            o.trigger.as_deref(),
            o.trigger_price.as_deref(),
            o.triggered_ms.is_some()
        ),
        (Some("stop"), Some("104"), true)
    );
    let (_, _, csv) = download(&s, &a, "/history/orders.csv?state=filled").await;
    assert!(
        csv.lines().nth(1).unwrap().contains(",filled,,stop,104,"),
        "{csv}"
    );
    check_store(&s).await;
}

/// What one trader of the concurrent flow does, at random: limit orders
/// around 100 (often more than it can pay for), market orders, stops,
/// amendments and cancels of its own orders, and cancel-all.
async fn random_trader(
    exchange: Exchange,
    account: orderbook::AccountId,
    seed: u64,
    actions: usize,
) -> (usize, usize) {
    use orderbook::{OrderType, Side, Trigger, TriggerKind};
    let mut rng = orderbook::sim::Rng::new(seed);
    let mut mine: Vec<(&'static str, u64)> = Vec::new();
    let (mut done, mut refused) = (0, 0);
    for _ in 0..actions {
        let symbol = if rng.chance(30) { "ETH-USD" } else { "BTC-USD" };
        let side = if rng.chance(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        let price = Decimal::new(9_500 + rng.below(1_000) as i64, 2);
        let quantity = Decimal::new(1 + rng.below(60) as i64, 2);
        let order = |order_type, price, quantity, quote_amount, trigger| OrderRequest {
            side,
            order_type,
            price,
            quantity,
            quote_amount,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: Default::default(),
            trigger,
        };
        let result = match rng.below(100) {
            0..=54 => {
                let o = order(OrderType::Limit, Some(price), Some(quantity), None, None);
                exchange.place(account, symbol, o).await
            }
            55..=62 => {
                let o = match side {
                    Side::Buy => order(OrderType::Market, None, None, Some(price * quantity), None),
                    Side::Sell => order(OrderType::Market, None, Some(quantity), None, None),
                };
                exchange.place(account, symbol, o).await
            }
            63..=68 => {
                let trigger = Some(Trigger {
                    kind: if rng.chance(50) {
                        TriggerKind::Stop
                    } else {
                        TriggerKind::TakeProfit
                    },
                    price,
                });
                let o = order(OrderType::Limit, Some(price), Some(quantity), None, trigger);
                exchange.place(account, symbol, o).await
            }
            69..=84 if !mine.is_empty() => {
                let (symbol, id) = mine[rng.below(mine.len() as u64) as usize];
                let new_price = rng.chance(50).then_some(price);
                let new_quantity = rng.chance(60).then_some(quantity);
                let (p, q) = match (new_price, new_quantity) {
                    (None, None) => (None, Some(quantity)),
                    other => other,
                };
                exchange.amend(account, symbol, id, p, q, None).await
            }
            85..=96 if !mine.is_empty() => {
                let (symbol, id) = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                exchange.cancel(account, symbol, id).await
            }
            _ => {
                let one = rng.chance(50).then_some(symbol);
                match exchange.cancel_all(account, one).await {
                    Ok(_) => {
                        done += 1;
                        continue;
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match result {
            Ok(outcome) => {
                done += 1;
                let placed = outcome.events.iter().any(|e| {
                    matches!(e, orderbook::Event::OrderAccepted(a) if a.order_id == outcome.order_id)
                });
                if placed {
                    mine.push((symbol, outcome.order_id));
                }
            }
            // The trader's own mistakes and the exchange's refusals are
            // fine; the exchange failing is not.
            Err(ExchangeError::Unavailable) | Err(ExchangeError::MarketPaused(_)) => {
                panic!("seed {seed}: the exchange failed an order: {result:?}")
            }
            Err(_) => refused += 1,
        }
    }
    (done, refused)
}

/// Traders act at once on both markets (so their commands share batches,
/// and a fill and an amendment of one order meet in one decision), with
/// funds small enough that many orders are refused. Afterwards the whole
/// log folds to a ledger that keeps every rule, every order holds what its
/// book says, and the server's own ledger shows exactly those balances.
/// The seed is printed (`EXCHANGE_TEST_SEED` replays one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_traders_on_both_markets_keep_every_ledger_rule() {
    let seed = std::env::var("EXCHANGE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_nanos() as u64
        });
    eprintln!("concurrent traders: EXCHANGE_TEST_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let mut accounts = Vec::new();
    // Five: the most sign-ups one address may make at a time.
    for i in 0..5 {
        let b = Browser::sign_up(&s, &format!("trader{i}")).await;
        accounts.push(
            s.exchange
                .account_for(b.cookie.as_deref().unwrap())
                .unwrap(),
        );
    }
    let traders = accounts.iter().enumerate().map(|(i, &account)| {
        let exchange = s.exchange.clone();
        tokio::spawn(random_trader(
            exchange,
            account,
            seed.wrapping_add(i as u64),
            250,
        ))
    });
    let (mut done, mut refused) = (0, 0);
    for t in futures::future::join_all(traders).await {
        let (d, r) = t.unwrap();
        done += d;
        refused += r;
    }
    assert!(
        done > 300 && refused > 10,
        "seed {seed}: {done} done, {refused} refused"
    );
    let trades: usize = s
        .exchange
        .book("BTC-USD")
        .map(|b| b.last_trade_id() as usize)
        .unwrap_or(0);
    assert!(trades > 20, "seed {seed}: {trades} trades");
    check_store(&s).await;
    // The ledger the server kept as it decided is the one the log folds to.
    let folded = reload_ledger(&s).await;
    for &account in &accounts {
        let kept = s.exchange.view(account).unwrap();
        let acc = folded.account(account).unwrap();
        for b in &kept.balances {
            let f = acc.balance(&b.asset);
            assert_eq!(
                (
                    b.total.parse::<Decimal>().unwrap(),
                    b.reserved.parse::<Decimal>().unwrap()
                ),
                (f.total, f.reserved),
                "seed {seed}: account {account} {}",
                b.asset
            );
        }
    }
}
