//! Signing up, logging in and out, sessions and their limits.

use super::*;

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

/// Guessing passwords is slowed down: after 5 failures in a row a name
/// (known or not, so the answer tells nothing) must wait before the next
/// try, even with the right password, and other names are not held up; an
/// address may sign up 5 times per window. Refusals answer 429 and say
/// how long to wait.
#[tokio::test]
async fn log_ins_are_limited_per_name_and_sign_ups_per_address() {
    use crate::server::login_limits::{ADDRESS_SIGN_UPS, FIRST_WAIT, FREE_FAILURES};
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
    config.sessions = SessionPolicy {
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

/// A server function called from `peer`, with `X-Forwarded-For` if given:
/// its status.
async fn call_from(
    router: &Router,
    name: &str,
    form: &[(&str, &str)],
    peer: &str,
    forwarded_for: Option<&str>,
) -> StatusCode {
    let mut request = Request::post(format!("/api/{name}"))
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::ACCEPT, "application/json");
    if let Some(hops) = forwarded_for {
        request = request.header("x-forwarded-for", hops);
    }
    let mut request = request.body(Body::from(encode(form))).unwrap();
    let peer: std::net::SocketAddr = peer.parse().unwrap();
    request
        .extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    router.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn a_burst_of_wrong_passwords_checks_only_the_free_ones_and_its_owner_gets_in_elsewhere() {
    use crate::server::login_limits::FREE_FAILURES;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    Browser::sign_up(&s, "alice").await;
    let wrong = [("username", "alice"), ("password", "a wrong password")];
    let tries = (0..40).map(|_| call_from(&s.router, "log_in", &wrong, "203.0.113.9:1", None));
    let statuses = futures::future::join_all(tries).await;
    let count = |want| statuses.iter().filter(|s| **s == want).count();
    let free = FREE_FAILURES as usize;
    assert_eq!(
        (
            count(StatusCode::UNAUTHORIZED),
            count(StatusCode::TOO_MANY_REQUESTS)
        ),
        (free, 40 - free),
        "{statuses:?}"
    );
    // The guessing was from one address: alice, from hers, gets in.
    let right = [("username", "alice"), ("password", "correct horse")];
    let home = call_from(&s.router, "log_in", &right, "198.51.100.4:1", None).await;
    assert_eq!(home, StatusCode::OK);
    let guesser = call_from(&s.router, "log_in", &right, "203.0.113.9:1", None).await;
    assert_eq!(guesser, StatusCode::TOO_MANY_REQUESTS);
    s.exchange.stop().await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_client_is_limited_by_its_own_address() {
    use crate::server::login_limits::ADDRESS_SIGN_UPS;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let policy = crate::site::SocketPolicy {
        trusted_proxies: vec!["10.0.0.0/8".into()],
        ..Default::default()
    };
    let router = router(
        Path::new("target/site"),
        "127.0.0.1:0".parse().unwrap(),
        s.exchange.clone(),
        policy,
    );
    let mut n = 0;
    let mut sign_up = async |peer: &str, hops: Option<&str>| {
        n += 1;
        let name = format!("trader{n}");
        let form = [("username", name.as_str()), ("password", "correct horse")];
        call_from(&router, "sign_up", &form, peer, hops).await
    };
    // Through the proxy: the client's address counts, not the proxy's.
    for _ in 0..ADDRESS_SIGN_UPS {
        let status = sign_up("10.0.0.2:443", Some("6.6.6.6, 198.51.100.1")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let again = sign_up("10.0.0.2:443", Some("7.7.7.7, 198.51.100.1")).await;
    assert_eq!(again, StatusCode::TOO_MANY_REQUESTS);
    let other = sign_up("10.0.0.3:443", Some("198.51.100.2, 10.0.0.2")).await;
    assert_eq!(other, StatusCode::OK);
    // Anyone else's header is not believed.
    for i in 0..ADDRESS_SIGN_UPS {
        let claim = format!("198.51.100.{}", 100 + i);
        let status = sign_up("192.0.2.9:5000", Some(&claim)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let claim = sign_up("192.0.2.9:5000", Some("198.51.100.200")).await;
    assert_eq!(claim, StatusCode::TOO_MANY_REQUESTS);
    s.exchange.stop().await;
}
