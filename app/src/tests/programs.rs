//! Trading programs: API keys made on the `/keys` page, and the
//! Binance-compatible surface they sign requests to, with every way a
//! signed request can be wrong refused before it changes anything.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::BodyExt;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde_json::Value;
use tower::ServiceExt;

use super::*;
use crate::server::clock::now_ms;
use crate::server::key_crypto::hmac_hex;

const V3: &str = "/compat/binance/api/v3";

/// How a program signs.
enum Signer {
    Hmac(String),
    Ed25519(Ed25519KeyPair),
}

/// A program holding one API key.
struct Bot {
    key_id: String,
    signer: Signer,
    /// The address its requests come from (none: unknown).
    from: Option<SocketAddr>,
}

impl Bot {
    /// Sends a request signed Binance's way: GET and DELETE carry the
    /// parameters in the query, POST in a form body.
    async fn send(
        &self,
        server: &Server,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let stamp = now_ms().to_string();
        let mut all: Vec<(&str, &str)> = params.to_vec();
        all.push(("timestamp", &stamp));
        let payload = encode(&all);
        self.send_signed(server, method, path, &payload, &self.sign(&payload))
            .await
    }

    fn sign(&self, payload: &str) -> String {
        match &self.signer {
            Signer::Hmac(secret) => hmac_hex(secret, payload.as_bytes()),
            Signer::Ed25519(pair) => BASE64.encode(pair.sign(payload.as_bytes()).as_ref()),
        }
    }

    async fn send_signed(
        &self,
        server: &Server,
        method: Method,
        path: &str,
        payload: &str,
        signature: &str,
    ) -> (StatusCode, Value) {
        let signed = format!("{payload}&signature={}", &encode(&[("s", signature)])[2..]);
        let in_body = method == Method::POST;
        let uri = if in_body {
            format!("{V3}{path}")
        } else {
            format!("{V3}{path}?{signed}")
        };
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header("X-MBX-APIKEY", &self.key_id)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(if in_body { signed } else { String::new() }))
            .unwrap();
        if let Some(from) = self.from {
            request.extensions_mut().insert(ConnectInfo(from));
        }
        answer(server, request).await
    }
}

async fn answer(server: &Server, request: Request<Body>) -> (StatusCode, Value) {
    let response = server.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (status, json)
}

async fn public(server: &Server, path_and_query: &str) -> Value {
    let request = Request::get(format!("{V3}{path_and_query}"))
        .body(Body::empty())
        .unwrap();
    let (status, json) = answer(server, request).await;
    assert_eq!(status, StatusCode::OK, "{path_and_query}: {json}");
    json
}

/// Posts the `/keys` page's create form; answers the page's HTML.
async fn key_page_post(
    server: &Server,
    browser: &Browser,
    form: &[(&str, &str)],
) -> (StatusCode, String) {
    let request = Request::post("/keys")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::COOKIE,
            format!("session={}", browser.cookie.as_ref().unwrap()),
        )
        .body(Body::from(encode(form)))
        .unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

/// The text of the `<code>` element marked `attribute` in a page.
fn marked(html: &str, attribute: &str) -> Option<String> {
    let at = html.find(attribute)?;
    let start = at + html[at..].find('>')? + 1;
    let end = start + html[start..].find('<')?;
    Some(html[start..end].to_string())
}

/// An HMAC key made on the keys page with these scopes and addresses.
async fn hmac_bot(server: &Server, browser: &Browser, scopes: &[&str], ips: &str) -> Bot {
    let mut form = vec![("label", "bot"), ("allowed_ips", ips)];
    form.extend(scopes.iter().map(|s| (*s, "on")));
    let (status, html) = key_page_post(server, browser, &form).await;
    assert_eq!(status, StatusCode::OK, "{html}");
    Bot {
        key_id: marked(&html, "data-key-id").unwrap(),
        signer: Signer::Hmac(marked(&html, "data-secret").unwrap()),
        from: None,
    }
}

/// A good-till-cancelled limit sell of `quantity` BTC at 30,000.
fn limit_sell(quantity: &'static str) -> [(&'static str, &'static str); 6] {
    [
        ("symbol", "BTCUSD"),
        ("side", "SELL"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("price", "30000"),
        ("quantity", quantity),
    ]
}

fn open_orders(server: &Server) -> usize {
    let book = server.exchange.book("BTC-USD").unwrap();
    book.resting_orders().len() + book.stop_orders().len()
}

#[tokio::test]
async fn a_program_trades_through_the_binance_compatible_surface_with_an_hmac_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let alice = Browser::sign_up(&server, "alice").await;
    let bot = hmac_bot(&server, &alice, &["read", "trade"], "").await;
    // The secret is on the page once and nowhere in the log.
    let Signer::Hmac(secret) = &bot.signer else {
        unreachable!()
    };
    let (_, page) = answer(
        &server,
        Request::get("/keys")
            .header(
                header::COOKIE,
                format!("session={}", alice.cookie.as_ref().unwrap()),
            )
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let page = page.as_str().unwrap().to_string();
    assert!(page.contains(&bot.key_id) && !page.contains(secret.as_str()));

    let (status, account) = bot.send(&server, Method::GET, "/account", &[]).await;
    assert_eq!(status, StatusCode::OK, "{account}");
    let usd = account["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == "USD")
        .unwrap();
    assert_eq!(usd["locked"], "0");

    let sell = [
        ("symbol", "BTCUSD"),
        ("side", "SELL"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("price", "30000"),
        ("quantity", "0.5"),
        ("newClientOrderId", "mm-ask-1"),
    ];
    let (status, placed) = bot.send(&server, Method::POST, "/order", &sell).await;
    assert_eq!(status, StatusCode::OK, "{placed}");
    assert_eq!(placed["status"], "NEW");
    assert_eq!(placed["clientOrderId"], "mm-ask-1");
    assert_eq!(placed["origQty"], "0.5");
    assert_eq!(placed["fills"], Value::Array(vec![]));
    // The same client id is refused while that order is open.
    let (status, dup) = bot.send(&server, Method::POST, "/order", &sell).await;
    assert_eq!(
        (status, dup["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(-2010)),
        "{dup}"
    );
    assert_eq!(open_orders(&server), 1);

    // Another trader takes part of it: the fills show in the answer.
    let bob = Browser::sign_up(&server, "bob").await;
    let taker = hmac_bot(&server, &bob, &["read", "trade"], "").await;
    let buy = [
        ("symbol", "BTCUSD"),
        ("side", "BUY"),
        ("type", "MARKET"),
        ("quantity", "0.2"),
    ];
    let (status, bought) = taker.send(&server, Method::POST, "/order", &buy).await;
    assert_eq!(status, StatusCode::OK, "{bought}");
    assert_eq!(bought["status"], "FILLED");
    assert_eq!(bought["executedQty"], "0.2");
    assert_eq!(bought["cummulativeQuoteQty"], "6000");
    assert_eq!(bought["fills"][0]["price"], "30000");
    assert_eq!(bought["fills"][0]["commissionAsset"], "BTC");
    assert!(bought["clientOrderId"].as_str().unwrap().starts_with("sx-"));

    let (status, got) = bot
        .send(
            &server,
            Method::GET,
            "/order",
            &[("symbol", "BTCUSD"), ("origClientOrderId", "mm-ask-1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{got}");
    assert_eq!(
        (got["status"].as_str(), got["executedQty"].as_str()),
        (Some("PARTIALLY_FILLED"), Some("0.2"))
    );
    let (_, open) = bot
        .send(&server, Method::GET, "/openOrders", &[("symbol", "BTCUSD")])
        .await;
    assert_eq!(open.as_array().unwrap().len(), 1, "{open}");
    let (_, mine) = taker
        .send(&server, Method::GET, "/myTrades", &[("symbol", "BTCUSD")])
        .await;
    assert_eq!(mine[0]["qty"], "0.2");
    assert_eq!(mine[0]["isBuyer"], true);
    assert_eq!(mine[0]["isMaker"], false);

    // Cancelled by its client id; the id is free again.
    let (status, cancelled) = bot
        .send(
            &server,
            Method::DELETE,
            "/order",
            &[("symbol", "BTCUSD"), ("origClientOrderId", "mm-ask-1")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELED");
    assert_eq!(open_orders(&server), 0);
    let (status, again) = bot.send(&server, Method::POST, "/order", &sell).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let (status, gone) = bot
        .send(
            &server,
            Method::DELETE,
            "/openOrders",
            &[("symbol", "BTCUSD")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert_eq!(gone.as_array().unwrap().len(), 1);
    assert_eq!(gone[0]["status"], "CANCELED");
    let (_, all) = bot
        .send(&server, Method::GET, "/allOrders", &[("symbol", "BTCUSD")])
        .await;
    let states: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["CANCELED", "CANCELED"]);

    // Unknown orders and markets are said in Binance's codes.
    let (status, unknown) = bot
        .send(
            &server,
            Method::DELETE,
            "/order",
            &[("symbol", "BTCUSD"), ("orderId", "999")],
        )
        .await;
    assert_eq!(
        (status, unknown["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(-2011))
    );
    let (_, no_market) = bot
        .send(
            &server,
            Method::GET,
            "/openOrders",
            &[("symbol", "DOGEUSD")],
        )
        .await;
    assert_eq!(no_market["code"], -1121);
}

/// `myTrades` picks from the caller's fills as Binance does: the newest
/// `limit` oldest first, from a trade id or a time on, one order's.
#[tokio::test]
async fn my_trades_are_the_newest_or_those_from_an_id_a_time_or_an_order() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let alice = Browser::sign_up(&server, "alice").await;
    let maker = hmac_bot(&server, &alice, &["read", "trade"], "").await;
    let bob = Browser::sign_up(&server, "bob").await;
    let taker = hmac_bot(&server, &bob, &["read", "trade"], "").await;
    let sell = limit_sell("0.05");
    let (status, placed) = maker.send(&server, Method::POST, "/order", &sell).await;
    assert_eq!(status, StatusCode::OK, "{placed}");
    let mut orders = Vec::new();
    for qty in ["0.01", "0.02", "0.005"] {
        let buy = [
            ("symbol", "BTCUSD"),
            ("side", "BUY"),
            ("type", "MARKET"),
            ("quantity", qty),
        ];
        let (status, bought) = taker.send(&server, Method::POST, "/order", &buy).await;
        assert_eq!(
            (status, bought["status"].as_str()),
            (StatusCode::OK, Some("FILLED")),
            "{bought}"
        );
        orders.push(bought["orderId"].as_u64().unwrap());
    }
    let trades = |params: Vec<(&'static str, String)>| {
        let taker = &taker;
        let server = &server;
        async move {
            let mut query: Vec<(&str, &str)> = vec![("symbol", "BTCUSD")];
            query.extend(params.iter().map(|(k, v)| (*k, v.as_str())));
            let (status, got) = taker.send(server, Method::GET, "/myTrades", &query).await;
            assert_eq!(status, StatusCode::OK, "{got}");
            let got = got.as_array().unwrap().clone();
            let qty = |t: &Value| t["qty"].as_str().unwrap().to_string();
            (got.iter().map(qty).collect::<Vec<_>>(), got)
        }
    };
    let (all, every) = trades(vec![]).await;
    assert_eq!(all, ["0.01", "0.02", "0.005"]);
    let ids: Vec<u64> = every.iter().map(|t| t["id"].as_u64().unwrap()).collect();
    let (newest, _) = trades(vec![("limit", "2".into())]).await;
    assert_eq!(newest, ["0.02", "0.005"], "the newest two, oldest first");
    let (from, _) = trades(vec![("fromId", ids[1].to_string()), ("limit", "1".into())]).await;
    assert_eq!(from, ["0.02"], "from the second trade, one");
    let (of_order, _) = trades(vec![("orderId", orders[2].to_string())]).await;
    assert_eq!(of_order, ["0.005"]);
    let first_ms = every[0]["time"].as_u64().unwrap();
    let (since, _) = trades(vec![("startTime", first_ms.to_string())]).await;
    assert_eq!(since, ["0.01", "0.02", "0.005"]);
    let (later, _) = trades(vec![("startTime", (first_ms + 3_600_000).to_string())]).await;
    assert_eq!(later, Vec::<String>::new());
    let (before, _) = trades(vec![("endTime", (first_ms - 1).to_string())]).await;
    assert_eq!(before, Vec::<String>::new());
}

#[tokio::test]
async fn every_wrong_signed_request_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let alice = Browser::sign_up(&server, "alice").await;
    let bot = hmac_bot(&server, &alice, &["read", "trade"], "").await;
    let order = limit_sell("0.1");
    let code = |(status, json): (StatusCode, Value)| (status, json["code"].as_i64().unwrap_or(0));

    // A wrong signature.
    let payload = encode(&[order.as_slice(), &[("timestamp", &now_ms().to_string())]].concat());
    let wrong = bot.sign(&format!("{payload}&quantity=5"));
    let refused = bot
        .send_signed(&server, Method::POST, "/order", &payload, &wrong)
        .await;
    assert_eq!(code(refused), (StatusCode::UNAUTHORIZED, -1022));
    // An old timestamp, and one from the future.
    for at in [now_ms() - 10_000, now_ms() + 5_000] {
        let payload = encode(&[order.as_slice(), &[("timestamp", &at.to_string())]].concat());
        let refused = bot
            .send_signed(
                &server,
                Method::POST,
                "/order",
                &payload,
                &bot.sign(&payload),
            )
            .await;
        assert_eq!(code(refused), (StatusCode::BAD_REQUEST, -1021));
    }
    // A wider window lets the old one through, up to 60 s.
    let at = (now_ms() - 10_000).to_string();
    let payload = encode(
        &[
            order.as_slice(),
            &[("timestamp", &at), ("recvWindow", "61000")],
        ]
        .concat(),
    );
    let refused = bot
        .send_signed(
            &server,
            Method::POST,
            "/order",
            &payload,
            &bot.sign(&payload),
        )
        .await;
    assert_eq!(code(refused).1, -1131);
    // No key, and a key nobody has.
    let stranger = Bot {
        key_id: "x".repeat(64),
        signer: Signer::Hmac("s".into()),
        from: None,
    };
    assert_eq!(
        code(stranger.send(&server, Method::POST, "/order", &order).await),
        (StatusCode::UNAUTHORIZED, -2015)
    );
    let nameless = Bot {
        key_id: String::new(),
        signer: Signer::Hmac("s".into()),
        from: None,
    };
    assert_eq!(
        code(nameless.send(&server, Method::POST, "/order", &order).await),
        (StatusCode::UNAUTHORIZED, -2014)
    );
    // A key that may only read can read, not trade.
    let reader = hmac_bot(&server, &alice, &["read"], "").await;
    assert_eq!(
        reader.send(&server, Method::GET, "/account", &[]).await.0,
        StatusCode::OK
    );
    assert_eq!(
        code(reader.send(&server, Method::POST, "/order", &order).await),
        (StatusCode::UNAUTHORIZED, -2015)
    );
    // An address outside the key's allow-list, and one inside it.
    let mut fenced = hmac_bot(&server, &alice, &["read", "trade"], "192.0.2.0/24").await;
    assert_eq!(
        code(fenced.send(&server, Method::GET, "/account", &[]).await),
        (StatusCode::UNAUTHORIZED, -2015)
    );
    fenced.from = Some("198.51.100.7:5000".parse().unwrap());
    assert_eq!(
        code(fenced.send(&server, Method::GET, "/account", &[]).await),
        (StatusCode::UNAUTHORIZED, -2015)
    );
    fenced.from = Some("192.0.2.44:5000".parse().unwrap());
    assert_eq!(
        fenced.send(&server, Method::GET, "/account", &[]).await.0,
        StatusCode::OK
    );
    // A revoked key.
    let request = Request::post("/keys/revoke")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::COOKIE,
            format!("session={}", alice.cookie.as_ref().unwrap()),
        )
        .body(Body::from(encode(&[("key_id", &bot.key_id)])))
        .unwrap();
    assert_eq!(answer(&server, request).await.0, StatusCode::SEE_OTHER);
    assert_eq!(
        code(bot.send(&server, Method::POST, "/order", &order).await),
        (StatusCode::UNAUTHORIZED, -2015)
    );
    // The session cookie alone is no way in.
    let request = Request::get(format!("{V3}/account?timestamp={}", now_ms()))
        .header(
            header::COOKIE,
            format!("session={}", alice.cookie.as_ref().unwrap()),
        )
        .body(Body::empty())
        .unwrap();
    assert_eq!(answer(&server, request).await.0, StatusCode::UNAUTHORIZED);
    // Nothing reached the book, and nothing was refused into the history.
    assert_eq!(open_orders(&server), 0);
    let mut alice = alice;
    let history: crate::api::OrderHistoryPage =
        alice.call(&server, "my_orders", &[]).await.unwrap();
    assert!(history.orders.is_empty(), "{:?}", history.orders);
}

#[tokio::test]
async fn an_ed25519_key_is_only_its_public_half_and_signs_orders() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let alice = Browser::sign_up(&server, "alice").await;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(pair.public_key().as_ref());
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----",
        BASE64.encode(&der)
    );
    let (status, html) = key_page_post(
        &server,
        &alice,
        &[
            ("label", "ed"),
            ("read", "on"),
            ("trade", "on"),
            ("public_key", &pem),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{html}");
    assert!(
        marked(&html, "data-secret").is_none(),
        "an Ed25519 key has no secret to show"
    );
    let bot = Bot {
        key_id: marked(&html, "data-key-id").unwrap(),
        signer: Signer::Ed25519(pair),
        from: None,
    };
    let order = [
        ("symbol", "BTCUSD"),
        ("side", "BUY"),
        ("type", "LIMIT_MAKER"),
        ("price", "20000"),
        ("quantity", "0.1"),
    ];
    let (status, placed) = bot.send(&server, Method::POST, "/order", &order).await;
    assert_eq!(status, StatusCode::OK, "{placed}");
    assert_eq!(placed["type"], "LIMIT_MAKER");
    assert_eq!(open_orders(&server), 1);
    // A bad public key is refused on the page, and makes no key.
    let (status, html) = key_page_post(
        &server,
        &alice,
        &[
            ("label", "bad"),
            ("read", "on"),
            ("public_key", "not a key"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(html.contains("not an Ed25519 public key"), "{html}");
    assert_eq!(
        server.exchange.api_keys(1).len() + server.exchange.api_keys(2).len(),
        1
    );
}

#[tokio::test]
async fn the_public_endpoints_describe_markets_books_and_trades_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let info = public(&server, "/exchangeInfo").await;
    let btc = info["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["symbol"] == "BTCUSD")
        .unwrap();
    assert_eq!(
        (btc["baseAsset"].as_str(), btc["quoteAsset"].as_str()),
        (Some("BTC"), Some("USD"))
    );
    assert_eq!(btc["orderTypes"].as_array().unwrap().len(), 7);
    let filter = |name: &str| {
        btc["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filterType"] == name)
            .unwrap()
            .clone()
    };
    let spec = server.exchange.market_spec("BTC-USD").unwrap();
    assert_eq!(
        filter("PRICE_FILTER")["tickSize"],
        spec.tick_size.normalize().to_string()
    );
    assert_eq!(
        filter("LOT_SIZE")["stepSize"],
        spec.lot_size.normalize().to_string()
    );

    let mut alice = Browser::sign_up(&server, "alice").await;
    let mut bob = Browser::sign_up(&server, "bob").await;
    alice.limit(&server, "sell", "30000", "0.1").await.unwrap();
    alice.limit(&server, "sell", "30010", "0.1").await.unwrap();
    let before = now_ms();
    bob.limit(&server, "buy", "30010", "0.15").await.unwrap();
    bob.limit(&server, "buy", "29000", "0.1").await.unwrap();

    let depth = public(&server, "/depth?symbol=BTCUSD&limit=5").await;
    assert_eq!(
        depth["lastUpdateId"],
        server.exchange.book("BTC-USD").unwrap().events_applied()
    );
    assert_eq!(depth["asks"], serde_json::json!([["30010", "0.05"]]));
    assert_eq!(depth["bids"], serde_json::json!([["29000", "0.1"]]));
    let trades = public(&server, "/aggTrades?symbol=BTCUSD").await;
    let prices: Vec<(&str, &str, bool)> = trades
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["p"].as_str().unwrap(),
                t["q"].as_str().unwrap(),
                t["m"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(prices, [("30000", "0.1", false), ("30010", "0.05", false)]);
    let from_second = public(&server, "/aggTrades?symbol=BTCUSD&fromId=2").await;
    assert_eq!(from_second.as_array().unwrap().len(), 1);
    let by_time = public(
        &server,
        &format!(
            "/aggTrades?symbol=BTCUSD&startTime={}&endTime={}",
            before - 1,
            now_ms()
        ),
    )
    .await;
    assert_eq!(by_time.as_array().unwrap().len(), 2);
    let newest = public(&server, "/trades?symbol=BTCUSD&limit=1").await;
    assert_eq!(newest[0]["id"], 2);
    let candles = public(&server, "/klines?symbol=BTCUSD&interval=1m").await;
    let last = candles.as_array().unwrap().last().unwrap();
    assert_eq!(
        (last[1].as_str(), last[4].as_str(), last[5].as_str()),
        (Some("30000"), Some("30010"), Some("0.15"))
    );
    let book = public(&server, "/ticker/bookTicker?symbol=BTCUSD").await;
    assert_eq!(
        (book["bidPrice"].as_str(), book["askPrice"].as_str()),
        (Some("29000"), Some("30010"))
    );
    let price = public(&server, "/ticker/price?symbol=BTCUSD").await;
    assert_eq!(price["price"], "30010");
    // Refusals in Binance's words.
    let request = Request::get(format!("{V3}/klines?symbol=BTCUSD&interval=3m"))
        .body(Body::empty())
        .unwrap();
    let (status, bad) = answer(&server, request).await;
    assert_eq!(
        (status, bad["code"].as_i64()),
        (StatusCode::BAD_REQUEST, Some(-1120))
    );
    let request = Request::get(format!("{V3}/depth?symbol=NOPE"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(answer(&server, request).await.1["code"], -1121);
}

#[tokio::test]
async fn requests_over_their_limits_are_answered_429_with_when_to_retry_and_do_nothing() {
    use crate::server::request_limits::ApiLimits;
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path())
        .await
        .with_policy(crate::site::SocketPolicy {
            api: ApiLimits {
                weight_per_minute_per_address: 30,
                weight_per_minute_per_key: 1000,
                orders_per_10s: 2,
                ..Default::default()
            },
            ..Default::default()
        });
    // Per address: exchangeInfo weighs 20, so the second is over 30.
    let info = || {
        Request::get(format!("{V3}/exchangeInfo"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(answer(&server, info()).await.0, StatusCode::OK);
    let response = server.router.clone().oneshot(info()).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = retry_after(response.headers());
    assert!((1..=60).contains(&retry), "{retry}");
    // Per account: the third new order in 10 s is refused before the book.
    let alice = Browser::sign_up(&server, "alice").await;
    let mut bot = hmac_bot(&server, &alice, &["read", "trade"], "").await;
    bot.from = Some("192.0.2.9:1".parse().unwrap());
    let order = [
        ("symbol", "BTCUSD"),
        ("side", "BUY"),
        ("type", "LIMIT"),
        ("timeInForce", "GTC"),
        ("price", "20000"),
        ("quantity", "0.01"),
    ];
    for _ in 0..2 {
        assert_eq!(
            bot.send(&server, Method::POST, "/order", &order).await.0,
            StatusCode::OK
        );
    }
    let (status, over) = bot.send(&server, Method::POST, "/order", &order).await;
    assert_eq!(
        (status, over["code"].as_i64()),
        (StatusCode::TOO_MANY_REQUESTS, Some(-1003)),
        "{over}"
    );
    assert!(
        over["msg"]
            .as_str()
            .unwrap()
            .contains("new orders per account"),
        "{over}"
    );
    assert_eq!(open_orders(&server), 2);
    // The page's orders spend the same account's bucket: refused before
    // the book too, with when to retry.
    let form = "symbol=BTC-USD&side=buy&order_type=limit&price=20000&quantity=0.01";
    let page_order = Request::post("/api/place_order")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json")
        .header(
            header::COOKIE,
            format!("session={}", alice.cookie.as_deref().unwrap()),
        )
        .body(Body::from(form))
        .unwrap();
    let response = server.router.clone().oneshot(page_order).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry = retry_after(response.headers());
    assert!((1..=10).contains(&retry), "{retry}");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let refused: UserError = serde_json::from_slice(&body).unwrap();
    assert!(
        refused
            .message
            .contains("new orders per account is limited to 2 per 10 seconds"),
        "{refused:?}"
    );
    assert_eq!(open_orders(&server), 2);
}

#[tokio::test]
async fn an_ed25519_session_on_the_websocket_api_places_and_cancels_orders_unsigned() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = super::feed_sockets::served(dir.path()).await;
    let alice = Browser::sign_up(&server, "alice").await;
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let public = BASE64.encode(pair.public_key().as_ref());
    let form = [
        ("label", "ws"),
        ("read", "on"),
        ("trade", "on"),
        ("public_key", public.as_str()),
    ];
    let (_, html) = key_page_post(&server, &alice, &form).await;
    let key_id = marked(&html, "data-key-id").unwrap();
    let hmac = hmac_bot(&server, &alice, &["read", "trade"], "").await;

    let url = format!("ws://{addr}/compat/binance/ws-api/v3");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let ask = async |ws: &mut tokio_tungstenite::WebSocketStream<_>, v: Value| -> Value {
        ws.send(Message::Text(v.to_string().into())).await.unwrap();
        loop {
            let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                let v: Value = serde_json::from_str(&t).unwrap();
                if v.get("id").is_some() {
                    return v;
                }
            }
        }
    };
    // Parameters signed Binance's way: sorted by name, joined by `&`.
    let signed = |params: Value, sign: &dyn Fn(&str) -> String| -> Value {
        let mut params = params;
        params["timestamp"] = now_ms().into();
        let map = params.as_object().unwrap();
        let mut names: Vec<&String> = map.keys().collect();
        names.sort();
        let payload: Vec<String> = names
            .iter()
            .map(|k| match &map[*k] {
                Value::String(s) => format!("{k}={s}"),
                v => format!("{k}={v}"),
            })
            .collect();
        params["signature"] = sign(&payload.join("&")).into();
        params
    };
    let ed = |payload: &str| BASE64.encode(pair.sign(payload.as_bytes()).as_ref());
    let order = serde_json::json!({"symbol": "BTCUSD", "side": "SELL", "type": "LIMIT",
        "timeInForce": "GTC", "price": "31000", "quantity": "0.01",
        "newClientOrderId": "ws-1"});

    // Before logging on, an unsigned order is refused and changes nothing.
    let refused = ask(
        &mut ws,
        serde_json::json!({"id": 1, "method": "order.place", "params": order}),
    )
    .await;
    assert_eq!(refused["status"], 401, "{refused}");
    assert_eq!(open_orders(&server), 0);
    let status = ask(
        &mut ws,
        serde_json::json!({"id": 2, "method": "session.status"}),
    )
    .await;
    assert_eq!(status["result"]["apiKey"], Value::Null);
    // A logon with a wrong signature is refused.
    let mut bad = signed(serde_json::json!({"apiKey": key_id}), &ed);
    bad["timestamp"] = (now_ms() + 1).into();
    let refused = ask(
        &mut ws,
        serde_json::json!({"id": 3, "method": "session.logon", "params": bad}),
    )
    .await;
    assert_eq!(refused["error"]["code"], -1022, "{refused}");
    let logon = signed(serde_json::json!({"apiKey": key_id}), &ed);
    let on = ask(
        &mut ws,
        serde_json::json!({"id": 4, "method": "session.logon", "params": logon}),
    )
    .await;
    assert_eq!(on["status"], 200, "{on}");
    assert_eq!(on["result"]["apiKey"], key_id.as_str());

    // Logged on: orders need no signature.
    let placed = ask(
        &mut ws,
        serde_json::json!({"id": 5, "method": "order.place", "params": order}),
    )
    .await;
    assert_eq!(placed["status"], 200, "{placed}");
    assert_eq!(placed["result"]["clientOrderId"], "ws-1");
    assert_eq!(placed["result"]["status"], "NEW");
    assert_eq!(open_orders(&server), 1);
    let cancel = serde_json::json!({"symbol": "BTCUSD", "origClientOrderId": "ws-1"});
    let cancelled = ask(
        &mut ws,
        serde_json::json!({"id": 6, "method": "order.cancel", "params": cancel}),
    )
    .await;
    assert_eq!(cancelled["result"]["status"], "CANCELED", "{cancelled}");
    assert_eq!(open_orders(&server), 0);
    // A request signed by another key is checked as that key's.
    let by_hmac = signed(
        serde_json::json!({"apiKey": hmac.key_id, "symbol": "BTCUSD", "side": "SELL",
            "type": "LIMIT", "timeInForce": "GTC", "price": "31000", "quantity": "0.01"}),
        &|p: &str| hmac.sign(p),
    );
    let placed = ask(
        &mut ws,
        serde_json::json!({"id": 7, "method": "order.place", "params": by_hmac}),
    )
    .await;
    assert_eq!(placed["status"], 200, "{placed}");
    assert_eq!(open_orders(&server), 1);

    // The session's key revoked: its next order is refused.
    let request = Request::post("/keys/revoke")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::COOKIE,
            format!("session={}", alice.cookie.as_ref().unwrap()),
        )
        .body(Body::from(encode(&[("key_id", &key_id)])))
        .unwrap();
    assert_eq!(answer(&server, request).await.0, StatusCode::SEE_OTHER);
    let mut again = order.clone();
    again["newClientOrderId"] = "ws-2".into();
    let refused = ask(
        &mut ws,
        serde_json::json!({"id": 8, "method": "order.place", "params": again}),
    )
    .await;
    assert_eq!(refused["error"]["code"], -2015, "{refused}");
    assert_eq!(open_orders(&server), 1);
    let off = ask(
        &mut ws,
        serde_json::json!({"id": 9, "method": "session.logout"}),
    )
    .await;
    assert_eq!(off["result"]["apiKey"], Value::Null);
}
