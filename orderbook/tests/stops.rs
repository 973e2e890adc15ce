//! Stop and take-profit orders, one rule per test, through `decide` and
//! `apply`; among them the bugs other engines shipped: the trigger compared
//! the wrong way for one side, a held order that could not be cancelled,
//! and an order that fired on its own trade.

use orderbook::*;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn btc() -> Market {
    Market::defaults().remove(0)
}

fn limit(id: u64, account: u64, side: Side, price: &str, qty: &str) -> PlaceOrder {
    PlaceOrder {
        client_order_id: None,
        symbol: Symbol::new("BTC-USD").unwrap(),
        order_id: id,
        account,
        side,
        order_type: OrderType::Limit,
        price: Some(d(price)),
        quantity: Some(d(qty)),
        quote_amount: None,
        time_in_force: None,
        post_only: false,
        self_trade_prevention: SelfTradePrevention::CancelTaker,
        trigger: None,
        at: id * 10,
    }
}

/// A stop-market (or take-profit market) order of `qty` base.
fn stop_market(
    id: u64,
    account: u64,
    side: Side,
    kind: TriggerKind,
    at: &str,
    qty: &str,
) -> PlaceOrder {
    PlaceOrder {
        order_type: OrderType::Market,
        price: None,
        trigger: Some(Trigger { kind, price: d(at) }),
        ..limit(id, account, side, "1", qty)
    }
}

/// A stop-limit (or take-profit limit) order.
fn stop_limit(
    id: u64,
    account: u64,
    side: Side,
    kind: TriggerKind,
    at: &str,
    price: &str,
    qty: &str,
) -> PlaceOrder {
    PlaceOrder {
        trigger: Some(Trigger { kind, price: d(at) }),
        ..limit(id, account, side, price, qty)
    }
}

fn run(b: &mut Book, c: Command) -> Vec<Event> {
    b.execute(&c)
}

fn place(b: &mut Book, o: PlaceOrder) -> Vec<Event> {
    run(b, Command::Place(o))
}

fn cancel(id: u64, account: u64) -> Command {
    Command::Cancel(CancelOrder {
        symbol: Symbol::new("BTC-USD").unwrap(),
        order_id: id,
        account,
        at: 5_000,
    })
}

fn amend(
    id: u64,
    account: u64,
    trigger: Option<&str>,
    price: Option<&str>,
    qty: Option<&str>,
) -> Command {
    Command::Amend(AmendOrder {
        symbol: Symbol::new("BTC-USD").unwrap(),
        order_id: id,
        account,
        price: price.map(d),
        quantity: qty.map(d),
        trigger_price: trigger.map(d),
        at: 6_000,
    })
}

fn rejected(events: &[Event]) -> Option<RejectReason> {
    match events {
        [Event::OrderRejected(r)] => Some(r.reason),
        _ => None,
    }
}

/// The orders that fired, in the order they entered.
fn fired(events: &[Event]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::StopTriggered(s) => Some(s.order_id),
            _ => None,
        })
        .collect()
}

/// A book whose last trade was at `price`: accounts 8 and 9 trade 0.01
/// there, ids 1 and 2.
fn traded_at(price: &str) -> Book {
    let mut b = Book::new(btc());
    place(&mut b, limit(1, 8, Side::Sell, price, "0.01"));
    place(&mut b, limit(2, 9, Side::Buy, price, "0.01"));
    assert_eq!(b.last_price(), Some(d(price)));
    b
}

/// A trade at `price` between accounts 8 and 9, with ids `id` and `id + 1`.
fn trade_at(b: &mut Book, id: u64, price: &str) -> Vec<Event> {
    place(b, limit(id, 8, Side::Sell, price, "0.01"));
    place(b, limit(id + 1, 9, Side::Buy, price, "0.01"))
}

fn check(b: &Book) {
    invariants::check_book(b).unwrap();
}

#[test]
fn each_kind_and_side_fires_only_when_the_price_reaches_its_trigger() {
    let mut b = traded_at("100");
    // Buy stop above, sell stop below, sell take-profit above, buy
    // take-profit below: each held, nothing on the book.
    for o in [
        stop_market(10, 1, Side::Buy, TriggerKind::Stop, "105", "0.01"),
        stop_market(11, 1, Side::Sell, TriggerKind::Stop, "95", "0.01"),
        stop_market(12, 2, Side::Sell, TriggerKind::TakeProfit, "106", "0.01"),
        stop_market(13, 2, Side::Buy, TriggerKind::TakeProfit, "94", "0.01"),
    ] {
        let e = place(&mut b, o);
        assert!(
            matches!(&e[..], [Event::OrderAccepted(a)] if a.trigger.is_some()),
            "{e:?}"
        );
    }
    assert_eq!(b.stop_orders().len(), 4);
    assert_eq!(b.depth(10).bids.len() + b.depth(10).asks.len(), 0);
    // Near misses on both sides fire nothing.
    assert!(fired(&trade_at(&mut b, 20, "104.99")).is_empty());
    assert!(fired(&trade_at(&mut b, 22, "95.01")).is_empty());
    // Reaching exactly: at or above for the buy stop (no liquidity for its
    // market order: it is cancelled), at or below for the sell stop.
    let up = trade_at(&mut b, 24, "105");
    assert_eq!(fired(&up), [10]);
    let down = trade_at(&mut b, 26, "95");
    assert_eq!(fired(&down), [11]);
    let tp_up = trade_at(&mut b, 28, "106");
    assert_eq!(fired(&tp_up), [12]);
    let tp_down = trade_at(&mut b, 30, "94");
    assert_eq!(fired(&tp_down), [13]);
    assert!(b.stop_orders().is_empty());
    check(&b);
}

#[test]
fn a_fired_order_enters_in_the_same_decision_as_the_trade() {
    let mut b = traded_at("100");
    place(&mut b, limit(10, 3, Side::Sell, "103", "1"));
    place(
        &mut b,
        stop_market(11, 1, Side::Buy, TriggerKind::Stop, "102", "0.5"),
    );
    // Account 2 buys 0.1 at 102 from account 4: the stop fires and its
    // market buy takes 0.5 of the ask at 103, all in this one decision.
    place(&mut b, limit(12, 4, Side::Sell, "102", "0.1"));
    let e = place(&mut b, limit(13, 2, Side::Buy, "102", "0.1"));
    let kinds: Vec<_> = e.iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        [
            "OrderAccepted",
            "TradeExecuted",
            "OrderFilled",
            "OrderFilled",
            "StopTriggered",
            "TradeExecuted",
            "OrderFilled"
        ]
    );
    let Event::StopTriggered(s) = &e[4] else {
        unreachable!()
    };
    let Event::TradeExecuted(firing) = &e[1] else {
        unreachable!()
    };
    assert_eq!((s.trade_id, s.last_price), (firing.trade_id, d("102")));
    let Event::TradeExecuted(t) = &e[5] else {
        unreachable!()
    };
    assert_eq!(
        (t.taker_order_id, t.price, t.quantity),
        (11, d("103"), d("0.5"))
    );
    assert_eq!(b.last_price(), Some(d("103")));
    assert_eq!(b.order(10).unwrap().remaining_quantity, d("0.5"));
    check(&b);
}

#[test]
fn a_stop_limit_rests_at_its_limit_once_fired() {
    let mut b = traded_at("100");
    let e = place(
        &mut b,
        stop_limit(10, 1, Side::Sell, TriggerKind::Stop, "99", "98.5", "0.2"),
    );
    assert!(matches!(&e[..], [Event::OrderAccepted(_)]));
    assert_eq!(b.order(10), None, "held, not on the book");
    trade_at(&mut b, 20, "99");
    let resting = b.order(10).unwrap();
    assert_eq!(
        (resting.price, resting.remaining_quantity),
        (d("98.5"), d("0.2"))
    );
    assert_eq!(b.best_ask().unwrap().price, d("98.5"));
    check(&b);
}

#[test]
fn one_trade_fires_several_orders_in_trigger_price_then_time_order() {
    let mut b = traded_at("100");
    for (id, at) in [
        (10, "103"),
        (11, "102"),
        (12, "102"),
        (13, "104"),
        (14, "101"),
    ] {
        place(
            &mut b,
            stop_limit(id, 1, Side::Buy, TriggerKind::Stop, at, "90", "0.01"),
        );
    }
    // Rising: sell take-profits fire in the same pass as buy stops.
    place(
        &mut b,
        stop_limit(
            15,
            1,
            Side::Sell,
            TriggerKind::TakeProfit,
            "101.5",
            "200",
            "0.01",
        ),
    );
    // Not reached by 104: stays.
    place(
        &mut b,
        stop_limit(16, 1, Side::Buy, TriggerKind::Stop, "104.5", "90", "0.01"),
    );
    let e = trade_at(&mut b, 20, "104");
    assert_eq!(fired(&e), [14, 15, 11, 12, 10, 13]);
    assert_eq!(
        b.stop_orders()
            .iter()
            .map(|s| s.order_id)
            .collect::<Vec<_>>(),
        [16]
    );

    // Falling: the highest trigger first, ties oldest first.
    let mut b = traded_at("100");
    for (id, at) in [(10, "97"), (11, "99"), (12, "98"), (13, "99")] {
        place(
            &mut b,
            stop_limit(id, 1, Side::Sell, TriggerKind::Stop, at, "200", "0.01"),
        );
    }
    place(
        &mut b,
        stop_limit(
            14,
            1,
            Side::Buy,
            TriggerKind::TakeProfit,
            "98.5",
            "50",
            "0.01",
        ),
    );
    let e = trade_at(&mut b, 20, "97");
    assert_eq!(fired(&e), [11, 13, 14, 12, 10]);
    check(&b);
}

#[test]
fn a_fired_orders_trades_fire_more_in_the_same_decision() {
    let mut b = traded_at("100");
    // Bids at 99 and 97; two sell stops: the first at 99.5 sells into 99,
    // whose trade fires the second at 99, which sells into 97.
    place(&mut b, limit(10, 3, Side::Buy, "99", "0.1"));
    place(&mut b, limit(11, 3, Side::Buy, "97", "1"));
    place(
        &mut b,
        stop_market(12, 1, Side::Sell, TriggerKind::Stop, "99.5", "0.1"),
    );
    place(
        &mut b,
        stop_market(13, 2, Side::Sell, TriggerKind::Stop, "99", "0.2"),
    );
    // Account 4 sells 0.1 at 99.5 to account 5: the cascade starts.
    place(&mut b, limit(14, 5, Side::Buy, "99.5", "0.1"));
    let e = place(&mut b, limit(15, 4, Side::Sell, "99.5", "0.1"));
    assert_eq!(fired(&e), [12, 13]);
    let prices: Vec<_> = e
        .iter()
        .filter_map(|e| match e {
            Event::TradeExecuted(t) => Some((t.taker_order_id, t.price)),
            _ => None,
        })
        .collect();
    assert_eq!(prices, [(15, d("99.5")), (12, d("99")), (13, d("97"))]);
    assert_eq!(b.last_price(), Some(d("97")));
    check(&b);
    // Decided on a book that is not changed by deciding: the same events again.
    let mut again = traded_at("100");
    for o in [
        limit(10, 3, Side::Buy, "99", "0.1"),
        limit(11, 3, Side::Buy, "97", "1"),
        stop_market(12, 1, Side::Sell, TriggerKind::Stop, "99.5", "0.1"),
        stop_market(13, 2, Side::Sell, TriggerKind::Stop, "99", "0.2"),
        limit(14, 5, Side::Buy, "99.5", "0.1"),
    ] {
        place(&mut again, o);
    }
    let command = Command::Place(limit(15, 4, Side::Sell, "99.5", "0.1"));
    let decided = again.decide(&command);
    assert_eq!(decided, again.decide(&command));
    assert_eq!(decided, e);
    assert_eq!(again.stop_orders().len(), 2, "deciding changed nothing");
}

#[test]
fn a_fired_order_never_fires_again_on_its_own_trades() {
    let mut b = traded_at("100");
    // A buy stop-limit at 101 whose own fills go up through 101 and 102:
    // it fired once, and its own trades fire nothing of its.
    place(&mut b, limit(10, 3, Side::Sell, "101", "0.01"));
    place(&mut b, limit(11, 3, Side::Sell, "102", "0.01"));
    place(
        &mut b,
        stop_limit(12, 1, Side::Buy, TriggerKind::Stop, "100.5", "102", "0.05"),
    );
    place(&mut b, limit(13, 4, Side::Sell, "100.5", "0.01"));
    let e = place(&mut b, limit(14, 2, Side::Buy, "100.5", "0.01"));
    assert_eq!(fired(&e), [12]);
    let own: Vec<_> = e
        .iter()
        .filter_map(|e| match e {
            Event::TradeExecuted(t) if t.taker_order_id == 12 => Some(t.price),
            _ => None,
        })
        .collect();
    assert_eq!(own, [d("101"), d("102")]);
    assert_eq!(b.order(12).unwrap().remaining_quantity, d("0.03"));
    // More trades through its trigger do nothing to it now.
    let later = trade_at(&mut b, 20, "103");
    assert!(fired(&later).is_empty());
    // And a stop placed now is not fired by the trades that came before.
    place(
        &mut b,
        stop_market(30, 1, Side::Sell, TriggerKind::Stop, "102", "0.01"),
    );
    assert_eq!(b.stop_orders().len(), 1);
    check(&b);
}

#[test]
fn a_held_order_can_be_cancelled_by_its_owner_only() {
    let mut b = traded_at("100");
    place(
        &mut b,
        stop_limit(10, 1, Side::Buy, TriggerKind::Stop, "105", "106", "0.3"),
    );
    place(
        &mut b,
        stop_market(11, 1, Side::Sell, TriggerKind::Stop, "95", "0.2"),
    );
    assert_eq!(
        rejected(&run(&mut b, cancel(10, 2))),
        Some(RejectReason::NotOrderOwner)
    );
    let e = run(&mut b, cancel(10, 1));
    let [Event::OrderCancelled(c)] = &e[..] else {
        panic!("{e:?}")
    };
    assert_eq!(
        (c.price, c.remaining_quantity, c.reason),
        (Some(d("106")), Some(d("0.3")), CancelReason::User)
    );
    let e = run(&mut b, cancel(11, 1));
    let [Event::OrderCancelled(c)] = &e[..] else {
        panic!("{e:?}")
    };
    assert_eq!((c.price, c.remaining_quantity), (None, Some(d("0.2"))));
    assert_eq!(
        rejected(&run(&mut b, cancel(10, 1))),
        Some(RejectReason::UnknownOrder)
    );
    // Cancelled: a trade through its trigger fires nothing.
    assert!(fired(&trade_at(&mut b, 20, "105")).is_empty());
    assert!(b.stop_orders().is_empty());
    check(&b);
}

#[test]
fn a_held_order_can_be_amended_and_fires_at_its_new_trigger() {
    let mut b = traded_at("100");
    place(
        &mut b,
        stop_limit(10, 1, Side::Buy, TriggerKind::Stop, "105", "106", "0.3"),
    );
    let e = run(&mut b, amend(10, 1, Some("103"), Some("104"), Some("0.2")));
    let [Event::StopAmended(a)] = &e[..] else {
        panic!("{e:?}")
    };
    assert_eq!(
        (
            a.old_trigger_price,
            a.trigger_price,
            a.old_price,
            a.price,
            a.old_quantity,
            a.quantity
        ),
        (
            d("105"),
            d("103"),
            Some(d("106")),
            Some(d("104")),
            Some(d("0.3")),
            Some(d("0.2"))
        )
    );
    let held = b.stop_order(10).unwrap();
    assert_eq!(
        (held.trigger.price, held.price, held.quantity),
        (d("103"), Some(d("104")), Some(d("0.2")))
    );
    for (command, reason) in [
        (
            amend(10, 1, Some("100"), None, None),
            RejectReason::TriggerAlreadyReached,
        ),
        (
            amend(10, 1, Some("103"), Some("104"), Some("0.2")),
            RejectReason::AmendmentChangesNothing,
        ),
        (
            amend(10, 1, Some("103.001"), None, None),
            RejectReason::PriceOffTick,
        ),
        (
            amend(10, 2, Some("104"), None, None),
            RejectReason::NotOrderOwner,
        ),
    ] {
        assert_eq!(rejected(&run(&mut b, command)), Some(reason));
    }
    assert!(fired(&trade_at(&mut b, 20, "102.99")).is_empty());
    place(&mut b, limit(22, 3, Side::Sell, "104", "1"));
    let e = trade_at(&mut b, 23, "103");
    assert_eq!(fired(&e), [10]);
    assert_eq!(b.order(22).unwrap().remaining_quantity, d("0.8"));

    // A stop-market has no limit price to change; a resting order no trigger.
    place(
        &mut b,
        stop_market(30, 1, Side::Sell, TriggerKind::Stop, "90", "0.1"),
    );
    assert_eq!(
        rejected(&run(&mut b, amend(30, 1, None, Some("89"), None))),
        Some(RejectReason::PriceOnMarketOrder)
    );
    assert_eq!(
        rejected(&run(&mut b, amend(22, 3, Some("90"), None, None))),
        Some(RejectReason::NotATriggerOrder)
    );
    check(&b);
}

#[test]
fn placement_is_refused_without_a_last_price_or_with_the_trigger_reached() {
    let mut b = Book::new(btc());
    let o = stop_market(1, 1, Side::Buy, TriggerKind::Stop, "105", "0.01");
    assert_eq!(rejected(&place(&mut b, o)), Some(RejectReason::NoLastPrice));
    let mut b = traded_at("100");
    for (side, kind, at) in [
        (Side::Buy, TriggerKind::Stop, "100"),
        (Side::Buy, TriggerKind::Stop, "99"),
        (Side::Sell, TriggerKind::Stop, "100"),
        (Side::Sell, TriggerKind::Stop, "101"),
        (Side::Buy, TriggerKind::TakeProfit, "101"),
        (Side::Sell, TriggerKind::TakeProfit, "99"),
    ] {
        let o = stop_market(10, 1, side, kind, at, "0.01");
        assert_eq!(
            rejected(&place(&mut b, o)),
            Some(RejectReason::TriggerAlreadyReached),
            "{side:?} {kind:?} at {at}"
        );
    }
    let mut post = stop_limit(10, 1, Side::Buy, TriggerKind::Stop, "105", "106", "0.01");
    post.post_only = true;
    assert_eq!(
        rejected(&place(&mut b, post)),
        Some(RejectReason::PostOnlyWithTrigger)
    );
    let off = stop_market(10, 1, Side::Buy, TriggerKind::Stop, "105.001", "0.01");
    assert_eq!(
        rejected(&place(&mut b, off)),
        Some(RejectReason::PriceOffTick)
    );
    let mut resting = stop_market(10, 1, Side::Buy, TriggerKind::Stop, "105", "0.01");
    resting.time_in_force = Some(TimeInForce::GoodTillCancelled);
    assert_eq!(
        rejected(&place(&mut b, resting)),
        Some(RejectReason::MarketOrderCannotRest)
    );
    assert!(b.stop_orders().is_empty());
}

#[test]
fn a_fill_or_kill_stop_limit_that_cannot_fill_is_cancelled_on_entering() {
    let mut b = traded_at("100");
    place(&mut b, limit(10, 3, Side::Sell, "101", "0.01"));
    let mut fok = stop_limit(11, 1, Side::Buy, TriggerKind::Stop, "100.5", "101", "0.05");
    fok.time_in_force = Some(TimeInForce::FillOrKill);
    place(&mut b, fok);
    let e = trade_at(&mut b, 20, "100.5");
    let last = e.last().unwrap();
    assert!(
        matches!(last, Event::OrderCancelled(c) if c.order_id == 11 && c.reason == CancelReason::FillOrKillUnfilled),
        "{e:?}"
    );
    assert_eq!(b.order(10).unwrap().remaining_quantity, d("0.01"));
}

#[test]
fn held_orders_and_the_last_price_survive_replay_and_snapshots() {
    let mut b = traded_at("100");
    let mut log = Vec::new();
    for o in [
        stop_limit(10, 1, Side::Buy, TriggerKind::Stop, "105", "106", "0.3"),
        stop_market(11, 2, Side::Sell, TriggerKind::TakeProfit, "110", "0.2"),
    ] {
        log.extend(place(&mut b, o));
    }
    let snapshot = b.snapshot();
    assert_eq!(snapshot.schema_version, SNAPSHOT_VERSION);
    assert_eq!(snapshot.stops, b.stop_orders());
    let json = serde_json::to_string(&snapshot).unwrap();
    let read: Snapshot = serde_json::from_str(&json).unwrap();
    let restored = Book::from_snapshot(btc(), &read).unwrap();
    assert_eq!(restored.stop_orders(), b.stop_orders());
    assert_eq!(restored.last_price(), Some(d("100")));
    // A version-1 snapshot (no stops, no last price) still reads.
    let old = Book::new(btc()).snapshot();
    let mut v1 = serde_json::to_value(&old).unwrap();
    v1["schema_version"] = 1.into();
    let v1: Snapshot = serde_json::from_value(v1).unwrap();
    assert!(
        Book::from_snapshot(btc(), &v1)
            .unwrap()
            .stop_orders()
            .is_empty()
    );
    // The restored book fires as the live one does.
    let mut r = restored;
    let live = trade_at(&mut b, 20, "105");
    let again = trade_at(&mut r, 20, "105");
    assert_eq!(live, again);
    assert_eq!(fired(&live), [10]);
    // And the events round-trip as JSON, the new ones included.
    for e in live.iter().chain(&log) {
        assert_eq!(&Event::from_json(&e.to_json()).unwrap(), e);
    }
}
