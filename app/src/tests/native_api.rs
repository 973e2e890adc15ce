//! The native API, `/api/v1`: its OpenAPI document matches its routes,
//! and a program signs requests to it with a key made on `/keys`.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::*;
use crate::server::clock::now_ms;
use crate::server::key_crypto::hmac_hex;
use crate::site::signed::native_payload;

async fn send(server: &Server, request: Request<Body>) -> (StatusCode, Value) {
    let response = server.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
    (status, json)
}

/// A key's id and secret, made on the keys page.
async fn key(server: &Server, browser: &Browser, scopes: &[&str]) -> (String, String) {
    let mut form = vec![("label", "native")];
    form.extend(scopes.iter().map(|s| (*s, "on")));
    let request = Request::post("/keys")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(
            header::COOKIE,
            format!("session={}", browser.cookie.as_ref().unwrap()),
        )
        .body(Body::from(encode(&form)))
        .unwrap();
    let response = server.router.clone().oneshot(request).await.unwrap();
    let html = String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    let marked = |a: &str| {
        let at = html.find(a).unwrap();
        let start = at + html[at..].find('>').unwrap() + 1;
        html[start..start + html[start..].find('<').unwrap()].to_string()
    };
    (marked("data-key-id"), marked("data-secret"))
}

/// A request signed the native way; `signed_path` is what the signature
/// says the path is (the real one, unless a test lies).
fn signed(
    key: &(String, String),
    method: Method,
    path_and_query: &str,
    body: Option<Value>,
    signed_path: Option<&str>,
) -> Request<Body> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let timestamp = now_ms().to_string();
    let payload = native_payload(
        &timestamp,
        method.as_str(),
        signed_path.unwrap_or(path),
        query,
        &body,
    );
    Request::builder()
        .method(method)
        .uri(path_and_query)
        .header("X-API-KEY", &key.0)
        .header("X-API-TIMESTAMP", &timestamp)
        .header("X-API-SIGNATURE", hmac_hex(&key.1, payload.as_bytes()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_every_route_in_it_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let (status, doc) = send(
        &server,
        Request::get("/api/v1/openapi.json")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut listed: Vec<String> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            listed.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    listed.sort();
    // Every route the API's router has (the router and the document are
    // made from the same registrations; this list is what they hold).
    let mut routed = vec![
        "GET /time",
        "GET /markets",
        "GET /markets/{symbol}/depth",
        "GET /markets/{symbol}/trades",
        "GET /markets/{symbol}/candles",
        "GET /markets/{symbol}/ticker",
        "POST /orders",
        "GET /orders",
        "DELETE /orders",
        "GET /orders/{symbol}/{order_id}",
        "DELETE /orders/{symbol}/{order_id}",
        "PATCH /orders/{symbol}/{order_id}",
        "GET /orders/{symbol}/client/{client_order_id}",
        "DELETE /orders/{symbol}/client/{client_order_id}",
        "GET /history/orders",
        "GET /history/fills",
        "GET /balances",
    ];
    routed.sort();
    assert_eq!(listed, routed);
    // And each is served: no route answers axum's bare 404 or 405.
    for entry in &listed {
        let (method, path) = entry.split_once(' ').unwrap();
        let path = path
            .replace("{symbol}", "BTC-USD")
            .replace("{order_id}", "1")
            .replace("{client_order_id}", "x");
        let request = Request::builder()
            .method(method)
            .uri(format!("/api/v1{path}?interval=1m"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(&server, request).await;
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{entry}");
        assert!(
            status != StatusCode::NOT_FOUND || body["code"].is_string(),
            "{entry}: not routed"
        );
    }
    // Amounts are strings in the document too.
    let level = &doc["components"]["schemas"]["Level"]["properties"]["price"];
    assert_eq!(level["type"], "string", "{level}");
    let (status, _) = send(
        &server,
        Request::get("/api/docs").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_program_trades_through_the_native_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path()).await;
    let alice = Browser::sign_up(&server, "alice").await;
    let k = key(&server, &alice, &["read", "trade"]).await;

    let order = json!({"symbol": "BTC-USD", "side": "sell", "kind": "limit", "price": "30000",
        "quantity": "0.5", "client_order_id": "ask-1"});
    let (status, placed) = send(
        &server,
        signed(
            &k,
            Method::POST,
            "/api/v1/orders",
            Some(order.clone()),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{placed}");
    assert_eq!(placed["order"]["state"], "open");
    assert_eq!(placed["order"]["price"], "30000");
    let id = placed["order"]["order_id"].as_u64().unwrap();
    let (status, dup) = send(
        &server,
        signed(&k, Method::POST, "/api/v1/orders", Some(order), None),
    )
    .await;
    assert_eq!(
        (status, dup["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("rejected")),
        "{dup}"
    );

    let bob = Browser::sign_up(&server, "bob").await;
    let kb = key(&server, &bob, &["read", "trade"]).await;
    let buy = json!({"symbol": "BTC-USD", "side": "buy", "kind": "market", "quantity": "0.2"});
    let (status, bought) = send(
        &server,
        signed(&kb, Method::POST, "/api/v1/orders", Some(buy), None),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{bought}");
    assert_eq!(bought["order"]["state"], "filled");
    assert_eq!(bought["fills"][0]["quantity"], "0.2");
    assert_eq!(bought["fills"][0]["role"], "taker");

    let (_, got) = send(
        &server,
        signed(
            &k,
            Method::GET,
            "/api/v1/orders/BTC-USD/client/ask-1",
            None,
            None,
        ),
    )
    .await;
    assert_eq!(
        (got["order_id"].as_u64(), got["filled"].as_str()),
        (Some(id), Some("0.2")),
        "{got}"
    );
    let path = format!("/api/v1/orders/BTC-USD/{id}");
    let (status, amended) = send(
        &server,
        signed(
            &k,
            Method::PATCH,
            &path,
            Some(json!({"price": "30100"})),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{amended}");
    assert_eq!(amended["price"], "30100");
    let (_, depth) = send(
        &server,
        Request::get("/api/v1/markets/BTC-USD/depth?levels=5")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        depth["asks"],
        json!([{"price": "30100", "quantity": "0.3", "orders": 1}])
    );
    assert_eq!(
        depth["update_id"],
        server.exchange.book("BTC-USD").unwrap().events_applied()
    );
    let (_, candles) = send(
        &server,
        Request::get("/api/v1/markets/BTC-USD/candles?interval=1m")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(candles[0]["volume"], "0.2");
    assert_eq!(candles[0]["quote_volume"], "6000");

    let (_, balances) = send(
        &server,
        signed(&k, Method::GET, "/api/v1/balances", None, None),
    )
    .await;
    let btc = balances
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == "BTC")
        .unwrap();
    assert_eq!(btc["reserved"], "0.3");
    let (_, fills) = send(
        &server,
        signed(
            &kb,
            Method::GET,
            "/api/v1/history/fills?symbol=BTC-USD",
            None,
            None,
        ),
    )
    .await;
    assert_eq!(fills["fills"].as_array().unwrap().len(), 1);

    // A signature over another path is refused, and so is trading with a
    // key that may only read; neither changes anything.
    let (status, lied) = send(
        &server,
        signed(
            &k,
            Method::DELETE,
            "/api/v1/orders?symbol=BTC-USD",
            None,
            Some("/api/v1/balances"),
        ),
    )
    .await;
    assert_eq!(
        (status, lied["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthorized"))
    );
    let reader = key(&server, &alice, &["read"]).await;
    let (status, _) = send(
        &server,
        signed(
            &reader,
            Method::DELETE,
            "/api/v1/orders?symbol=BTC-USD",
            None,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, open) = send(
        &server,
        signed(&k, Method::GET, "/api/v1/orders", None, None),
    )
    .await;
    assert_eq!(open.as_array().unwrap().len(), 1);

    let (status, all) = send(
        &server,
        signed(
            &k,
            Method::DELETE,
            "/api/v1/orders?symbol=BTC-USD",
            None,
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["orders"][0]["state"], "cancelled");
    assert_eq!(all["orders"][0]["reason"], "user");
    let (_, history) = send(
        &server,
        signed(&k, Method::GET, "/api/v1/history/orders", None, None),
    )
    .await;
    assert_eq!(history["orders"][0]["state"], "cancelled");
    // Bad input is a clear 400 in the API's shape.
    let bad = json!({"symbol": "BTC-USD", "side": "sideways", "kind": "limit", "price": "1", "quantity": "1"});
    let (status, err) = send(
        &server,
        signed(&k, Method::POST, "/api/v1/orders", Some(bad), None),
    )
    .await;
    assert_eq!(
        (status, err["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("bad_request")),
        "{err}"
    );
}

#[tokio::test]
async fn the_native_socket_sends_trades_depth_diffs_that_join_the_rest_depth_and_the_account() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = super::feed_sockets::served(dir.path()).await;
    let alice = Browser::sign_up(&server, "alice").await;
    let k = key(&server, &alice, &["read", "trade"]).await;
    let bob = Browser::sign_up(&server, "bob").await;
    let kb = key(&server, &bob, &["read", "trade"]).await;
    let order = |side: &str, price: &str, qty: &str| json!({"symbol": "BTC-USD", "side": side, "kind": "limit", "price": price, "quantity": qty});
    // A book before the socket: the REST depth it joins.
    send(
        &server,
        signed(
            &k,
            Method::POST,
            "/api/v1/orders",
            Some(order("sell", "30100", "0.2")),
            None,
        ),
    )
    .await;
    let (_, before) = send(
        &server,
        Request::get("/api/v1/markets/BTC-USD/depth")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let mut book: std::collections::BTreeMap<(bool, String), String> =
        std::collections::BTreeMap::new();
    for (bid, side) in [(true, "bids"), (false, "asks")] {
        for l in before[side].as_array().unwrap() {
            book.insert(
                (bid, l["price"].as_str().unwrap().into()),
                l["quantity"].as_str().unwrap().into(),
            );
        }
    }
    let mut update_id = before["update_id"].as_u64().unwrap();

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws"))
        .await
        .unwrap();
    let say = async |ws: &mut tokio_tungstenite::WebSocketStream<_>, v: Value| {
        ws.send(Message::Text(v.to_string().into())).await.unwrap();
    };
    say(&mut ws, json!({"op": "subscribe", "channels": ["account"]})).await;
    let timestamp = now_ms().to_string();
    let payload = native_payload(&timestamp, "GET", "/api/v1/ws", "", "");
    say(&mut ws, json!({"op": "login", "key": k.0, "timestamp": timestamp, "signature": hmac_hex(&k.1, payload.as_bytes())})).await;
    say(
        &mut ws,
        json!({"op": "subscribe", "channels": ["trades:BTC-USD", "depth:BTC-USD", "account"]}),
    )
    .await;
    let mut next = async || -> Value {
        loop {
            let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
                .await
                .unwrap()
                .unwrap()
                .unwrap();
            if let Message::Text(t) = m {
                return serde_json::from_str(&t).unwrap();
            }
        }
    };
    let refused = next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("log in first")
    );
    assert_eq!(next().await["type"], "logged_in");
    let subscribed = next().await;
    assert_eq!(
        subscribed["channels"].as_array().unwrap().len(),
        3,
        "{subscribed}"
    );

    send(
        &server,
        signed(
            &k,
            Method::POST,
            "/api/v1/orders",
            Some(order("sell", "30000", "0.5")),
            None,
        ),
    )
    .await;
    send(
        &server,
        signed(
            &kb,
            Method::POST,
            "/api/v1/orders",
            Some(order("buy", "30000", "0.2")),
            None,
        ),
    )
    .await;
    send(
        &server,
        signed(
            &kb,
            Method::POST,
            "/api/v1/orders",
            Some(order("buy", "29000", "0.1")),
            None,
        ),
    )
    .await;
    let last = server.exchange.book("BTC-USD").unwrap().events_applied();
    let (mut trades, mut changes) = (Vec::new(), Vec::new());
    while update_id < last || trades.is_empty() || changes.len() < 2 {
        let m = next().await;
        match m["channel"].as_str().unwrap() {
            "trades:BTC-USD" => trades.push(m["data"].clone()),
            "account" => changes.push(m["data"].clone()),
            "depth:BTC-USD" => {
                let d = &m["data"];
                let (first, last_update) = (
                    d["first_update"].as_u64().unwrap(),
                    d["last_update"].as_u64().unwrap(),
                );
                if last_update <= update_id {
                    continue;
                }
                assert!(first <= update_id + 1, "a gap: {first} after {update_id}");
                for (bid, side) in [(true, "bids"), (false, "asks")] {
                    for l in d[side].as_array().unwrap() {
                        let (p, q) = (
                            l["price"].as_str().unwrap().to_string(),
                            l["quantity"].as_str().unwrap(),
                        );
                        if q == "0" {
                            book.remove(&(bid, p));
                        } else {
                            book.insert((bid, p), q.to_string());
                        }
                    }
                }
                update_id = last_update;
            }
            other => panic!("{other}: {m}"),
        }
    }
    assert_eq!(trades.len(), 1);
    assert_eq!(
        (trades[0]["price"].as_str(), trades[0]["quantity"].as_str()),
        (Some("30000"), Some("0.2"))
    );
    assert_eq!(changes[0]["change"], "new");
    assert!(
        changes.iter().any(|c| c["change"] == "trade"
            && c["fill"]["role"] == "maker"
            && c["order"]["filled"] == "0.2"),
        "{changes:?}"
    );
    // The book kept from the diffs is the REST depth.
    let (_, after) = send(
        &server,
        Request::get("/api/v1/markets/BTC-USD/depth")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(after["update_id"].as_u64(), Some(update_id));
    let mut rest = std::collections::BTreeMap::new();
    for (bid, side) in [(true, "bids"), (false, "asks")] {
        for l in after[side].as_array().unwrap() {
            rest.insert(
                (bid, l["price"].as_str().unwrap().to_string()),
                l["quantity"].as_str().unwrap().to_string(),
            );
        }
    }
    assert_eq!(book, rest);
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A native socket logged in with `key`.
async fn logged_in(addr: std::net::SocketAddr, key: &(String, String)) -> Socket {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/api/v1/ws"))
        .await
        .unwrap();
    let timestamp = now_ms().to_string();
    let payload = native_payload(&timestamp, "GET", "/api/v1/ws", "", "");
    let login = json!({"op": "login", "key": key.0, "timestamp": timestamp,
        "signature": hmac_hex(&key.1, payload.as_bytes())});
    say(&mut ws, login).await;
    assert_eq!(hear(&mut ws).await["type"], "logged_in");
    ws
}

async fn say(ws: &mut Socket, v: Value) {
    use futures::SinkExt;
    let text = tokio_tungstenite::tungstenite::Message::Text(v.to_string().into());
    ws.send(text).await.unwrap();
}

/// The socket's next message (it must come within 10 s).
async fn hear(ws: &mut Socket) -> Value {
    use futures::StreamExt;
    loop {
        let m = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
            .unwrap()
            .unwrap();
        if let tokio_tungstenite::tungstenite::Message::Text(t) = m {
            return serde_json::from_str(&t).unwrap();
        }
    }
}

/// A depth as price → quantity per side (`true`: bids).
type Levels = std::collections::BTreeMap<(bool, String), String>;

fn apply_levels(book: &mut Levels, d: &Value) {
    for (bid, side) in [(true, "bids"), (false, "asks")] {
        for l in d[side].as_array().unwrap() {
            let p = l["price"].as_str().unwrap().to_string();
            match l["quantity"].as_str().unwrap() {
                "0" => book.remove(&(bid, p)),
                q => book.insert((bid, p), q.to_string()),
            };
        }
    }
}

#[tokio::test]
async fn a_native_socket_resumes_trades_depth_and_the_account_after_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = super::feed_sockets::served(dir.path()).await;
    let alice = Browser::sign_up(&server, "alice").await;
    let k = key(&server, &alice, &["read", "trade"]).await;
    let bob = Browser::sign_up(&server, "bob").await;
    let kb = key(&server, &bob, &["read", "trade"]).await;
    let place = async |key: &(String, String), side: &str, price: &str, qty: &str| {
        let order = json!({"symbol": "BTC-USD", "side": side, "kind": "limit", "price": price, "quantity": qty});
        let (status, placed) = send(
            &server,
            signed(key, Method::POST, "/api/v1/orders", Some(order), None),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{placed}");
        placed["order"]["order_id"].as_u64().unwrap()
    };
    let depth = async || {
        let get = Request::get("/api/v1/markets/BTC-USD/depth").body(Body::empty());
        let (_, d) = send(&server, get.unwrap()).await;
        let mut book = Levels::new();
        apply_levels(&mut book, &d);
        (d["update_id"].as_u64().unwrap(), book)
    };

    // The first connection: its book from the REST depth and the diffs.
    let (mut update_id, mut book) = depth().await;
    let mut ws = logged_in(addr, &k).await;
    let channels = ["trades:BTC-USD", "depth:BTC-USD", "account"];
    say(&mut ws, json!({"op": "subscribe", "channels": channels})).await;
    assert_eq!(hear(&mut ws).await["type"], "subscribed");
    let ask = place(&k, "sell", "30000", "0.5").await;
    place(&kb, "buy", "30000", "0.2").await;
    let last = server.exchange.book("BTC-USD").unwrap().events_applied();
    let (mut last_trade, mut position, mut balances_seen) = (0, Value::Null, false);
    while update_id < last || last_trade == 0 || !balances_seen {
        let m = hear(&mut ws).await;
        match m["channel"].as_str().unwrap() {
            "trades:BTC-USD" => last_trade = m["data"]["trade_id"].as_u64().unwrap(),
            "account" => {
                position = m["position"].clone();
                balances_seen |= m["data"]["balances"].is_array();
            }
            _ => {
                let d = &m["data"];
                if d["last_update"].as_u64().unwrap() > update_id {
                    apply_levels(&mut book, d);
                    update_id = d["last_update"].as_u64().unwrap();
                }
            }
        }
    }
    drop(ws);

    // While it is away: a second trade on alice's ask, a new ask of hers.
    place(&kb, "buy", "30000", "0.1").await;
    let second = place(&k, "sell", "30500", "0.3").await;
    // Read back, so the order history has folded both.
    let get = signed(
        &k,
        Method::GET,
        &format!("/api/v1/orders/BTC-USD/{second}"),
        None,
        None,
    );
    assert_eq!(send(&server, get).await.0, StatusCode::OK);

    let mut ws = logged_in(addr, &k).await;
    // Resuming a market needs a whole number; candles need no since.
    say(&mut ws, json!({"op": "subscribe", "channels": ["candles:BTC-USD:1m"], "since": {"candles:BTC-USD:1m": 1}})).await;
    assert!(
        hear(&mut ws).await["message"]
            .as_str()
            .unwrap()
            .contains("needs no since")
    );
    let since =
        json!({"trades:BTC-USD": last_trade, "depth:BTC-USD": update_id, "account": position});
    say(
        &mut ws,
        json!({"op": "subscribe", "channels": channels, "since": since}),
    )
    .await;
    let subscribed = hear(&mut ws).await;
    assert_eq!(
        subscribed["channels"].as_array().unwrap().len(),
        3,
        "{subscribed}"
    );
    // Subscribing to an already followed market from a point is refused.
    say(
        &mut ws,
        json!({"op": "subscribe", "channels": ["trades:BTC-USD"], "since": {"trades:BTC-USD": 0}}),
    )
    .await;

    let last = server.exchange.book("BTC-USD").unwrap().events_applied();
    let (mut trades, mut resumed, mut refused) = (Vec::new(), None, None);
    while update_id < last || resumed.is_none() || refused.is_none() || trades.is_empty() {
        let m = hear(&mut ws).await;
        match (m["type"].as_str(), m["channel"].as_str()) {
            (Some("error"), _) => refused = Some(m),
            (_, Some("trades:BTC-USD")) => trades.push(m["data"]["trade_id"].as_u64().unwrap()),
            (_, Some("account")) if m["data"]["change"] == "resumed" => {
                resumed = Some(m["data"]["resumed"].clone())
            }
            (_, Some("depth:BTC-USD")) => {
                let d = &m["data"];
                let first = d["first_update"].as_u64().unwrap();
                assert!(first <= update_id + 1, "a gap: {first} after {update_id}");
                apply_levels(&mut book, d);
                update_id = d["last_update"].as_u64().unwrap();
            }
            _ => {}
        }
    }
    let refused = refused.unwrap();
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("already follows"),
        "{refused}"
    );
    // Exactly the trade it missed, not the one it had.
    assert_eq!(trades, [last_trade + 1]);
    let resumed = resumed.unwrap();
    let missed = resumed["trades"].as_array().unwrap();
    assert_eq!(missed.len(), 1, "{resumed}");
    assert_eq!(
        (
            missed[0]["order_id"].as_u64(),
            missed[0]["quantity"].as_str(),
            missed[0]["role"].as_str()
        ),
        (Some(ask), Some("0.1"), Some("maker"))
    );
    let orders: Vec<(u64, String, String)> = resumed["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let filled = o["filled"].as_str().unwrap().to_string();
            (
                o["order_id"].as_u64().unwrap(),
                filled,
                o["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        orders,
        [
            (ask, "0.3".to_string(), "partially_filled".to_string()),
            (second, "0".to_string(), "open".to_string())
        ]
    );
    // The book kept across the reconnect is the REST depth.
    assert_eq!(depth().await, (update_id, book));

    // And it goes on live, each trade once.
    place(&kb, "buy", "30000", "0.02").await;
    loop {
        let m = hear(&mut ws).await;
        if m["channel"] == "trades:BTC-USD" {
            assert_eq!(m["data"]["trade_id"].as_u64(), Some(last_trade + 2));
            break;
        }
    }
}

/// A resume reads what the client missed, so it spends its address's
/// request weight like a page's feed resume: over it, the subscribe is
/// refused with when to retry and nothing is followed; a subscribe without
/// `since` still goes through.
#[tokio::test]
async fn native_socket_resumes_spend_the_addresss_weight() {
    use crate::server::request_limits::{ApiLimits, RESUME_WEIGHT};
    let dir = tempfile::tempdir().unwrap();
    let policy = crate::site::SocketPolicy {
        api: ApiLimits {
            weight_per_minute_per_address: RESUME_WEIGHT,
            ..Default::default()
        },
        ..Default::default()
    };
    let (_exchange, addr) =
        super::feed_sockets::serve_with(dir.path(), Default::default(), policy).await;
    let open = || async {
        let url = format!("ws://{addr}/api/v1/ws");
        tokio_tungstenite::connect_async(url).await.unwrap().0
    };
    let resume = json!({"op": "subscribe", "channels": ["trades:BTC-USD"],
        "since": {"trades:BTC-USD": 0}});
    let mut first = open().await;
    say(&mut first, resume.clone()).await;
    assert_eq!(hear(&mut first).await["type"], "subscribed");
    let mut second = open().await;
    say(&mut second, resume).await;
    let refused = hear(&mut second).await;
    assert_eq!(refused["type"], "error", "{refused}");
    let message = refused["message"].as_str().unwrap();
    assert!(
        message.contains("request weight per address") && message.contains("retry after"),
        "{message}"
    );
    let live = json!({"op": "subscribe", "channels": ["trades:BTC-USD"]});
    say(&mut second, live).await;
    assert_eq!(hear(&mut second).await["type"], "subscribed");
}
