//! What the site serves and refuses: the page and its bundle, unknown
//! addresses, other sites' pages, and user errors answered 4xx; the
//! security headers on every answer.

use super::*;

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

/// The page asks for the files `scripts/build-site.sh` makes, whichever
/// way the server was built: leptos compiles the bundle's name in, and
/// a build without `LEPTOS_OUTPUT_NAME` (`.cargo/config.toml` sets it for
/// every build) would ask for `exchange_bg.wasm`, which nobody makes.
#[tokio::test]
async fn the_page_asks_for_the_bundle_the_site_build_makes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let request = Request::get("/").body(Body::empty()).unwrap();
    let response = s.router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let html = String::from_utf8(body.to_vec()).unwrap();
    for file in [
        "/pkg/exchange.js",
        "/pkg/exchange.wasm",
        "/pkg/exchange.css",
    ] {
        assert!(html.contains(file), "{file} missing from {html}");
    }
    assert!(!html.contains("_bg.wasm"), "{html}");
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

/// What carries a trader's data is not kept by browsers or caches; the
/// public page and the static files are.
#[tokio::test]
async fn private_answers_are_sent_no_store() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let alice = Browser::sign_up(&s, "alice").await;
    let cookie = format!("session={}", alice.cookie.as_ref().unwrap());
    let cache = |path: &str, with_session: bool| {
        let mut request = Request::get(path);
        if with_session {
            request = request.header(header::COOKIE, &cookie);
        }
        let router = s.router.clone();
        let request = request.body(Body::empty()).unwrap();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let value = response.headers().get(header::CACHE_CONTROL);
            value.map(|v| v.to_str().unwrap().to_string())
        }
    };
    let no_store = Some("no-store".to_string());
    assert_eq!(cache("/", true).await, no_store);
    assert_eq!(cache("/history", true).await, no_store);
    assert_eq!(cache("/history/trades.csv", true).await, no_store);
    assert_eq!(cache("/keys", true).await, no_store);
    assert_ne!(cache("/", false).await, no_store);
    assert_ne!(cache("/pkg/exchange.js", true).await, no_store);
}

/// Over real sockets, through the binary's accept loop: a client that
/// opens connections and never finishes a request's head loses each one
/// to the header timeout while others are answered; a body that stalls
/// fails its request, which does nothing; one address holds at most its
/// cap of connections (one more is closed at once, unanswered) and a
/// place it frees can be taken again.
#[tokio::test]
async fn slow_and_greedy_clients_are_cut_off_while_others_are_served() {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use crate::site::connections::ConnectionLimits;

    /// What the server sent until it closed the connection.
    async fn until_closed(s: &mut TcpStream) -> String {
        let mut got = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut got)).await;
        read.expect("the server never closed the connection").ok();
        String::from_utf8_lossy(&got).into_owned()
    }
    /// One whole request on its own connection: the answer's status line.
    async fn ping(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let request = "GET /compat/binance/api/v3/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        s.write_all(request.as_bytes()).await.unwrap();
        let answer = until_closed(&mut s).await;
        answer.lines().next().unwrap_or_default().to_string()
    }

    let slow = tempfile::tempdir().unwrap();
    let limits = ConnectionLimits {
        max_connections: 1000,
        per_address: 32,
        header_timeout: Duration::from_millis(300),
        body_timeout: Duration::from_millis(300),
    };
    let (exchange, addr) =
        super::feed_sockets::serve_with(slow.path(), limits, Default::default()).await;
    let mut half_open = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: 1\r\n")
            .await
            .unwrap();
        half_open.push(s);
    }
    assert_eq!(ping(addr).await, "HTTP/1.1 200 OK");
    for s in &mut half_open {
        let said = until_closed(s).await;
        assert!(!said.contains("200 OK"), "{said}");
    }
    // A body that never finishes: the sign-up fails and signs nobody up.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = "POST /api/sign_up HTTP/1.1\r\nHost: localhost\r\n\
                Content-Type: application/x-www-form-urlencoded\r\n\
                Accept: application/json\r\nContent-Length: 200\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(b"username=mallory&password=correct+horse")
        .await
        .unwrap();
    let said = until_closed(&mut s).await;
    assert!(said.starts_with("HTTP/1.1 400"), "{said}");
    assert!(exchange.account_id("mallory").is_none());

    // The per-address cap, with time enough for the head.
    let greedy = tempfile::tempdir().unwrap();
    let limits = ConnectionLimits {
        per_address: 4,
        header_timeout: Duration::from_secs(60),
        ..limits
    };
    let (_exchange, addr) =
        super::feed_sockets::serve_with(greedy.path(), limits, Default::default()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        // Answered once, then kept open (keep-alive): admitted for sure.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /compat/binance/api/v3/ping HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        s.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
        held.push(s);
    }
    assert_eq!(
        ping(addr).await,
        "",
        "a fifth connection is closed unanswered"
    );
    drop(held.pop());
    // The place comes free once the server has seen the close.
    let mut answered = String::new();
    for _ in 0..200 {
        answered = ping(addr).await;
        if !answered.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(answered, "HTTP/1.1 200 OK");
}

/// Behind HTTPS (`--secure-cookies`) the session cookie is `Secure` with
/// the `__Host-` prefix, a cookie under the plain name is no session, and
/// every answer carries HSTS; without it, no HSTS is sent.
#[tokio::test]
async fn behind_tls_the_cookie_is_host_prefixed_and_answers_send_hsts() {
    async fn post(
        s: &Server,
        path: &str,
        cookie: Option<String>,
        form: &str,
    ) -> axum::http::Response<Body> {
        let mut request = Request::post(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json");
        if let Some(c) = cookie {
            request = request.header(header::COOKIE, c);
        }
        let request = request.body(Body::from(form.to_string())).unwrap();
        s.router.clone().oneshot(request).await.unwrap()
    }
    let dir = tempfile::tempdir().unwrap();
    let mut config = settings();
    config.sessions.secure_cookie = true;
    let connection = Connection::Embedded {
        data: dir.path().join("events"),
    };
    let s = start_on_with(config, connection).await;
    let signed_up = post(
        &s,
        "/api/sign_up",
        None,
        "username=alice&password=correct+horse",
    )
    .await;
    assert_eq!(signed_up.status(), StatusCode::OK);
    assert_eq!(
        signed_up.headers()[header::STRICT_TRANSPORT_SECURITY],
        "max-age=31536000"
    );
    let set = signed_up.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(set.starts_with("__Host-session="), "{set}");
    assert!(
        set.contains("; Path=/;") && set.ends_with("; Secure"),
        "{set}"
    );
    let token = set.split(';').next().unwrap().split_once('=').unwrap().1;
    let account = |cookie: String| async {
        let answer = post(&s, "/api/my_account", Some(cookie), "").await;
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice::<Option<AccountView>>(&body).unwrap()
    };
    let mine = account(format!("__Host-session={token}")).await;
    assert_eq!(mine.unwrap().username, "alice");
    assert_eq!(account(format!("session={token}")).await, None);

    let plain = tempfile::tempdir().unwrap();
    let s = start(plain.path()).await;
    let signed_up = post(
        &s,
        "/api/sign_up",
        None,
        "username=bob&password=correct+horse",
    )
    .await;
    assert!(
        !signed_up
            .headers()
            .contains_key(header::STRICT_TRANSPORT_SECURITY)
    );
    let set = signed_up.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("session=") && !set.contains("Secure"),
        "{set}"
    );
}

/// DNS rebinding: a request naming a host that is not this server's
/// (an attacker's name pointed at the server's address) is refused with
/// 421 and does nothing; the server's own names, `localhost` and
/// addresses are served.
#[tokio::test]
async fn requests_for_another_host_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["exchange.example.com".to_string()];
    let s = start(dir.path())
        .await
        .with_policy(crate::site::SocketPolicy {
            known_hosts: crate::site::KnownHosts::new(&names, ["https://trade.example.org"]),
            ..Default::default()
        });
    let sign_up = |host: &str| {
        Request::post("/api/sign_up")
            .header(header::HOST, host)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::ACCEPT, "application/json")
            .body(Body::from("username=alice&password=correct+horse"))
            .unwrap()
    };
    let refused = s
        .router
        .clone()
        .oneshot(sign_up("attacker.example:3000"))
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::MISDIRECTED_REQUEST);
    let body = refused.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("--allowed-hosts"),
        "{body:?}"
    );
    assert!(s.exchange.account_id("alice").is_none());
    for host in [
        "localhost:3000",
        "127.0.0.1:3000",
        "Exchange.Example.com",
        "trade.example.org",
    ] {
        let page = Request::get("/").header(header::HOST, host);
        let answer = s
            .router
            .clone()
            .oneshot(page.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::OK, "{host}");
    }
    let answer = s.router.clone().oneshot(sign_up("localhost:3000")).await;
    assert_eq!(answer.unwrap().status(), StatusCode::OK);
    assert!(s.exchange.account_id("alice").is_some());
}
