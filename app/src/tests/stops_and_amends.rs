//! Amending open orders, and stop orders: waiting, holding, firing.

use super::*;

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
    // Someone else's order is answered as no order at all.
    assert_eq!(err.message, "no open order with this id");
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
