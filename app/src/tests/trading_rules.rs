//! Placing, cancelling and settling orders, the faucet, the simulator,
//! and the ledger's rules under concurrent traders.

use super::*;

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
    // Someone else's order is answered as no order at all.
    assert_eq!(err.message, "no open order with this id");
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
async fn concurrent_orders_share_appends() {
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await;
    let a = Browser::sign_up(&s, "alice").await;
    let account = s
        .exchange
        .use_session(a.cookie.as_deref().unwrap())
        .unwrap();
    let order = |i: u64| OrderTerms {
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

/// A refused placement costs no write of its own: its `OrderRefused` goes
/// into the market's stream with the batch it was decided in (nothing into
/// the account's stream), the trader is told once that landed, and the
/// history shows each refusal with its reason, after a restart too.
#[tokio::test]
async fn refused_orders_are_written_with_their_batch_and_kept_in_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let mut a;
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        let account = s
            .exchange
            .use_session(a.cookie.as_deref().unwrap())
            .unwrap();
        let client = s.exchange.client();
        let account_events = || async {
            streams::read_stream(&client, &account_stream(account), |d| {
                accounts::AccountEvent::from_json(d).map_err(|e| e.to_string())
            })
            .await
            .unwrap()
        };
        let account_before = account_events().await;
        let appends = || {
            let stats = s.exchange.stats();
            let btc = stats.markets.iter().find(|m| m.symbol == "BTC-USD");
            btc.unwrap().appends
        };
        let appends_before = appends();
        // 5 BTC at 30,000 is 150,000 USD; the faucet gave 10,000.
        let too_big = limit_terms(orderbook::Side::Buy, "30000", "5");
        let answers = futures::future::join_all(
            (0..40).map(|_| s.exchange.place(account, "BTC-USD", too_big)),
        )
        .await;
        for answer in answers {
            let e = answer.unwrap_err();
            assert_eq!(
                e.to_string(),
                "insufficient USD: 10000 available, 150000 needed"
            );
        }
        let appends = appends() - appends_before;
        assert!(appends < 40, "{appends} appends for 40 refusals");
        assert_eq!(account_events().await, account_before);
        let refusals: Vec<_> = load_market(&client, "BTC-USD")
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                orderbook::Event::OrderRefused(r) => Some(r),
                _ => None,
            })
            .collect();
        assert_eq!(refusals.len(), 40);
        for r in &refusals {
            assert_eq!((r.account, r.terms), (account, too_big));
            assert_eq!(r.reason, "insufficient USD: 10000 available, 150000 needed");
        }
        // Told only once written: the history has every one already.
        let page: crate::api::OrderHistoryPage = a
            .call(&s, "my_orders", &[("state", "rejected")])
            .await
            .unwrap();
        assert_eq!(page.orders.len(), 40);
        check_store(&s).await;
        s.exchange.stop().await;
    }
    let s = start(dir.path()).await;
    let page: crate::api::OrderHistoryPage = a
        .call(&s, "my_orders", &[("state", "rejected")])
        .await
        .unwrap();
    assert_eq!(page.orders.len(), 40);
    assert!(
        page.orders.iter().all(
            |o| o.reason.as_deref() == Some("insufficient USD: 10000 available, 150000 needed")
        ),
        "{page:?}"
    );
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
    let carol = s.exchange.use_session(&token).unwrap();
    s.exchange.claim_faucet(carol).await.unwrap();
    let ask = OrderTerms {
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

/// The caps are counted in the sequencer's decision, not checked before
/// it: placements of one account racing on both markets from several
/// threads end with exactly the open-order cap on the books, never more,
/// and at most the stop cap waiting; the rest are refused by the cap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_placements_never_pass_the_caps() {
    use orderbook::{OrderType, Side, Trigger, TriggerKind};
    let dir = tempfile::tempdir().unwrap();
    let mut config = settings();
    config.max_open_orders = 6;
    config.max_stop_orders = 2;
    let data = dir.path().join("events");
    let s = start_on_with(config, Connection::Embedded { data }).await;
    let (a, b) = (
        Browser::sign_up(&s, "alice").await,
        Browser::sign_up(&s, "bob").await,
    );
    let id = |b: &Browser| {
        s.exchange
            .use_session(b.cookie.as_deref().unwrap())
            .unwrap()
    };
    let (alice, bob) = (id(&a), id(&b));
    let terms = |side, price: &str, trigger: Option<Trigger>| match trigger {
        None => limit_terms(side, price, "0.01"),
        Some(t) => OrderTerms {
            order_type: OrderType::Market,
            price: None,
            trigger: Some(t),
            ..limit_terms(side, "1", "0.01")
        },
    };
    // A last price for the stops to trigger from.
    s.exchange
        .place(alice, "BTC-USD", terms(Side::Sell, "20000", None))
        .await
        .unwrap();
    s.exchange
        .place(bob, "BTC-USD", terms(Side::Buy, "20000", None))
        .await
        .unwrap();
    let stop = Trigger {
        kind: TriggerKind::Stop,
        price: d("25000"),
    };
    let mut racing = Vec::new();
    for i in 0..30u32 {
        let exchange = s.exchange.clone();
        let (symbol, order) = match i % 3 {
            0 => ("BTC-USD", terms(Side::Buy, "100", None)),
            1 => ("ETH-USD", terms(Side::Buy, "10", None)),
            _ => ("BTC-USD", terms(Side::Buy, "", Some(stop))),
        };
        racing.push(tokio::spawn(async move {
            exchange.place(bob, symbol, order).await
        }));
    }
    let mut placed = 0;
    for r in racing {
        match r.await.unwrap() {
            Ok(_) => placed += 1,
            Err(ExchangeError::TooManyOpenOrders(6) | ExchangeError::TooManyStopOrders(2)) => {}
            Err(e) => panic!("refused for another reason: {e}"),
        }
    }
    let books = ["BTC-USD", "ETH-USD"].map(|m| s.exchange.book(m).unwrap());
    let resting: usize = books.iter().map(|b| b.resting_orders().len()).sum();
    let waiting = books[0].stop_orders().len();
    assert_eq!(placed, 6);
    assert_eq!(resting + waiting, 6);
    assert!(waiting <= 2, "{waiting} stops waiting");
    check_store(&s).await;
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

/// Signs up `traders` traders (five at most: the sign-ups one address may
/// make at a time) and runs [`random_trader`]'s flow for each at once, from
/// `seed` on: their accounts, and the actions done and refused in all.
pub(super) async fn random_traders(
    s: &Server,
    traders: usize,
    seed: u64,
    actions: usize,
) -> (Vec<orderbook::AccountId>, usize, usize) {
    let mut accounts = Vec::new();
    for i in 0..traders {
        let b = Browser::sign_up(s, &format!("trader{i}")).await;
        let account = s.exchange.use_session(b.cookie.as_deref().unwrap());
        accounts.push(account.unwrap());
    }
    let flows = accounts.iter().enumerate().map(|(i, &account)| {
        let seed = seed.wrapping_add(i as u64);
        tokio::spawn(random_trader(s.exchange.clone(), account, seed, actions))
    });
    let (mut done, mut refused) = (0, 0);
    for t in futures::future::join_all(flows).await {
        let (d, r) = t.unwrap();
        done += d;
        refused += r;
    }
    (accounts, done, refused)
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
        let order = |order_type, price, quantity, quote_amount, trigger| OrderTerms {
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
/// book says, and the server's own ledger shows exactly those balances;
/// a start snapshot of that log is its fold, and a server started from it
/// shows the same balances and open orders. The seed is printed (`EXCHANGE_TEST_SEED` replays one).
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
    let (accounts, done, refused) = random_traders(&s, 5, seed, 250).await;
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
    // The same log taken up from a start snapshot: the operator's check
    // finds it the fold, and a restarted server keeps the same balances
    // and every ledger rule.
    use crate::server::start_snapshots::{self, FoldFrom, StartSnapshotChecked};
    let (client, markets) = (s.exchange.client(), settings().markets);
    let folds = start_snapshots::fold_log(&client, &markets, FoldFrom::FirstEvent, None);
    let folds = folds.await.unwrap();
    let covers = folds.position.unwrap();
    let (_, written) = start_snapshots::write_down(folds).await;
    start_snapshots::write(&client, written.unwrap(), covers)
        .await
        .unwrap()
        .unwrap();
    let checked = start_snapshots::check(&client, &markets).await.unwrap();
    assert!(
        matches!(checked, StartSnapshotChecked::Equal(_)),
        "seed {seed}: {checked:?}"
    );
    // Balances and open orders; the fills it lists may be in another
    // order: the live ledger lists them as it folded them (its own
    // decisions as it made them), a fold of the log in the log's order.
    let views = |s: &Server| {
        let views = accounts.iter().map(|&a| s.exchange.view(a).unwrap());
        views
            .map(|v| (v.balances, v.open_orders))
            .collect::<Vec<_>>()
    };
    let before = views(&s);
    s.exchange.stop().await;
    let s = start(dir.path()).await;
    assert_eq!(
        s.exchange.stats().start_snapshot,
        covers.commit,
        "seed {seed}"
    );
    assert_eq!(views(&s), before, "seed {seed}");
    check_store(&s).await;
}
