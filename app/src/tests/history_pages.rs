//! The trader's order and trade history: pages, filters, CSV, and the
//! plain HTML page.

use super::*;
use crate::site::history_export;

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
        let s = start(dir.path()).await.unpaced();
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
                ",BTC-USD,,buy,limit,GTC,30000,5,,0,,,,rejected,\"insufficient USD: 10000 available, 150000 needed\""
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
    let s = start(dir.path()).await.unpaced();
    assert_eq!(orders_when(&mut a, &s, &[], 5).await, first_page);
}

/// The history page: the caller's own rows in pages of 50 with a link to
/// the older ones, tabs and filters as plain links and a GET form, clear
/// answers for no session and a bad address, and no script at all.
#[tokio::test]
async fn the_history_page_is_plain_html_paged_by_links() {
    let dir = tempfile::tempdir().unwrap();
    // 52 orders at once: more than one account may place by default.
    let s = start(dir.path())
        .await
        .with_policy(crate::site::SocketPolicy {
            api: crate::server::request_limits::ApiLimits {
                orders_per_10s: 100,
                ..Default::default()
            },
            ..Default::default()
        });
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

/// The CSV is streamed in chunks (more rows than one chunk come whole and
/// newest first), cut to a time range when asked, refuses a range that
/// ends before it starts, and every download spends its address's
/// request weight (429 with `Retry-After` over it).
#[tokio::test]
async fn the_orders_csv_streams_every_row_of_a_time_range_and_is_paced() {
    use crate::server::request_limits::{ApiLimits, EXPORT_WEIGHT, HISTORY_WEIGHT};
    let dir = tempfile::tempdir().unwrap();
    // Room for 3 downloads and the history pages read below.
    let weight = 3 * EXPORT_WEIGHT + 10 * HISTORY_WEIGHT;
    let s = start(dir.path())
        .await
        .with_policy(crate::site::SocketPolicy {
            api: ApiLimits {
                weight_per_minute_per_address: weight,
                costly_burst_per_address: weight,
                ..Default::default()
            },
            ..Default::default()
        });
    let mut a = Browser::sign_up(&s, "alice").await;
    let account = s
        .exchange
        .use_session(a.cookie.as_deref().unwrap())
        .unwrap();
    let terms = |quantity: &str| limit_terms(orderbook::Side::Buy, "30000", quantity);
    // 1,200 refused orders (too big for her funds) and one that rests.
    for _ in 0..4 {
        let refused = (0..300).map(|_| s.exchange.place(account, "BTC-USD", terms("5")));
        for r in futures::future::join_all(refused).await {
            r.unwrap_err();
        }
    }
    s.exchange
        .place(account, "BTC-USD", terms("0.01"))
        .await
        .unwrap();
    let (status, _, csv) = download(&s, &a, "/history/orders.csv").await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 1201);
    assert_eq!(lines[0], history_export::ORDER_COLUMNS.join(","));
    assert!(lines[1].contains(",open,"), "{}", lines[1]);
    assert_eq!(csv.matches(",rejected,").count(), 1200);

    // From the 600th newest order's time on: exactly the orders placed
    // since, as the history's own pages say.
    let mut placed = Vec::new();
    let mut before = None;
    loop {
        let mut form = vec![("limit", "200".to_string())];
        form.extend(before.map(|b: u64| ("before", b.to_string())));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page: crate::api::OrderHistoryPage = a.call(&s, "my_orders", &form).await.unwrap();
        placed.extend(page.orders.iter().map(|o| o.placed_ms));
        match page.next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    assert_eq!(placed.len(), 1201);
    let from = placed[599];
    let expected = placed.iter().filter(|&&t| t >= from).count();
    let (status, _, csv) = download(&s, &a, &format!("/history/orders.csv?from_ms={from}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.lines().count(), 1 + expected, "from {from}");
    let (status, _, said) = download(&s, &a, "/history/orders.csv?from_ms=2000&to_ms=1000").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{said}");
    assert!(said.contains("from_ms must come before to_ms"), "{said}");

    // The address's weight is spent: the next download waits.
    let (status, headers, said) = download(&s, &a, "/history/orders.csv").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{said}");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert!(said.contains("request weight per address"), "{said}");
}

/// Alice's fills as her market's stream has them, newest first: each
/// trade's side for her account.
async fn fills_in_log(s: &Server, account: orderbook::AccountId) -> Vec<crate::api::FillView> {
    let spec = s.exchange.market_spec("BTC-USD").unwrap();
    let events = load_market(&s.exchange.client(), "BTC-USD").await.unwrap();
    let mut fills = Vec::new();
    for (revision, e) in events.iter().enumerate() {
        if let orderbook::Event::TradeExecuted(t) = e {
            for f in accounts::fills(&spec, revision as u64, t) {
                if f.account == account {
                    fills.push(crate::server::views::fill_view(&f));
                }
            }
        }
    }
    fills.reverse();
    fills
}

/// Every page of a trader's trades, newest first, `limit` at a time, once
/// the ledger (a moment behind the log) has `count` of them.
async fn every_trade(
    b: &mut Browser,
    s: &Server,
    limit: &str,
    count: usize,
) -> Vec<crate::api::FillView> {
    for _ in 0..400 {
        let all = trade_pages(b, s, limit).await;
        if all.len() >= count {
            return all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the trade history never held {count} trades");
}

async fn trade_pages(b: &mut Browser, s: &Server, limit: &str) -> Vec<crate::api::FillView> {
    let mut all = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut form = vec![("limit", limit)];
        if let Some(c) = &before {
            form.push(("before", c));
        }
        let page: crate::api::TradeHistoryPage = b.call(s, "my_trades", &form).await.unwrap();
        all.extend(page.trades);
        match page.next {
            Some(n) => before = Some(n.to_string()),
            None => return all,
        }
    }
}

/// The ledger keeps an account's newest fills whole and only where the
/// older ones are written: the history reads those back from the market's
/// stream, so every page, an order's fills and fee, and the CSV show what
/// they showed while the fills were new, before and after a restart.
#[tokio::test]
async fn old_fills_read_back_from_the_log_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let trades = accounts::RECENT_FILLS + 30;
    let mut a;
    let (while_new, sold);
    {
        let s = start(dir.path()).await.unpaced();
        a = Browser::sign_up(&s, "alice").await;
        let mut bob_browser = Browser::sign_up(&s, "bob").await;
        a.limit(&s, "sell", "30000", "0.5").await.unwrap();
        let ledger = reload_ledger(&s).await;
        let (alice, bob) = (
            ledger.by_username("alice").unwrap().id,
            ledger.by_username("bob").unwrap().id,
        );
        let buy = |s: &Server| {
            let x = s.exchange.clone();
            async move {
                let terms = limit_terms(orderbook::Side::Buy, "30000", "0.0001");
                x.place_named(bob, "BTC-USD", terms, None).await.unwrap();
            }
        };
        for _ in 0..100 {
            buy(&s).await;
        }
        // The first hundred, while the ledger keeps each whole.
        while_new = every_trade(&mut a, &s, "500", 100).await;
        assert_eq!(while_new, fills_in_log(&s, alice).await);
        for _ in 100..trades {
            buy(&s).await;
        }
        let log = fills_in_log(&s, alice).await;
        assert_eq!(log.len(), trades);
        let paged = every_trade(&mut a, &s, "37", trades).await;
        let kept = reload_ledger(&s).await;
        let kept = kept.account(alice).unwrap();
        assert_eq!(kept.recent_fills.len(), accounts::RECENT_FILLS);
        assert!(
            kept.kept_fill(0, &kept.fills.get(0).unwrap()).is_none(),
            "the oldest fill is not kept"
        );
        // Paged across the kept and the read back, in pages that straddle
        // the boundary; the oldest hundred as they were when new.
        assert_eq!(paged, log);
        assert_eq!(paged[trades - 100..], while_new[..]);
        // The order's fills, read back too, make its fee: the sum of the
        // maker fees of all its trades.
        let fee: Decimal = log.iter().map(|f| d(&f.fee)).sum();
        let page = orders_when(&mut a, &s, &[], 1).await;
        sold = page.orders[0].clone();
        assert_eq!(d(&sold.filled), d("0.0001") * Decimal::from(trades));
        assert_eq!(sold.fee.as_deref().map(d), Some(fee));
        // Bob's orders all closed as they were accepted: the history keeps
        // each as how it ended and reads its terms back from the stream.
        let bobs = orders_when(&mut bob_browser, &s, &[("limit", "500")], trades).await;
        assert_eq!(bobs.orders.len(), trades);
        for o in &bobs.orders {
            let terms = (o.price.as_deref(), o.quantity.as_deref(), &o.filled[..]);
            assert_eq!(terms, (Some("30000"), Some("0.0001"), "0.0001"), "{o:?}");
            assert_eq!((&o.state[..], o.side.as_str()), ("filled", "buy"));
            assert_eq!(o.fills.len(), 1, "{o:?}");
        }
        let (status, _, csv) = download(&s, &a, "/history/trades.csv").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(csv.lines().count(), 1 + trades, "{csv}");
        assert!(
            csv.lines()
                .last()
                .unwrap()
                .contains(&format!(",{},", log[trades - 1].trade_id))
        );
        s.exchange.stop().await;
    }
    // Folded again at start: the same pages.
    let s = start(dir.path()).await.unpaced();
    let ledger = reload_ledger(&s).await;
    let alice = ledger.by_username("alice").unwrap().id;
    let log = fills_in_log(&s, alice).await;
    assert_eq!(every_trade(&mut a, &s, "50", trades).await, log);
    assert_eq!(orders_when(&mut a, &s, &[], 1).await.orders[0], sold);
}
