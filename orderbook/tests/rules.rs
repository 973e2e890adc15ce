//! One test per trading rule, each through `decide` and `apply`.

use orderbook::*;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn btc() -> Market {
    Market::defaults().remove(0)
}

fn book() -> Book {
    Book::new(btc())
}

/// A GTC limit order with cancel-taker self-trade prevention.
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
        at: id * 10,
        trigger: None,
    }
}

fn market(id: u64, account: u64, side: Side, qty: Option<&str>, quote: Option<&str>) -> PlaceOrder {
    PlaceOrder {
        order_type: OrderType::Market,
        price: None,
        quantity: qty.map(d),
        quote_amount: quote.map(d),
        ..limit(id, account, side, "1", "1")
    }
}

fn place(b: &mut Book, o: PlaceOrder) -> Vec<Event> {
    b.execute(&Command::Place(o))
}

fn kinds(events: &[Event]) -> Vec<&'static str> {
    events.iter().map(Event::kind).collect()
}

fn trades(events: &[Event]) -> Vec<(Decimal, Decimal, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TradeExecuted(t) => Some((t.price, t.quantity, t.maker_order_id)),
            _ => None,
        })
        .collect()
}

fn rejection(events: &[Event]) -> Option<RejectReason> {
    match events {
        [Event::OrderRejected(r)] => Some(r.reason),
        _ => None,
    }
}

fn cancel_reasons(events: &[Event]) -> Vec<(u64, CancelReason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::OrderCancelled(c) => Some((c.order_id, c.reason)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_limit_order_that_does_not_cross_rests() {
    let mut b = book();
    let ev = place(&mut b, limit(1, 1, Side::Buy, "100", "1"));
    assert_eq!(kinds(&ev), ["OrderAccepted"]);
    assert_eq!(b.best_bid().unwrap().price, d("100"));
    assert_eq!(b.best_bid().unwrap().quantity, d("1"));
    let o = b.order(1).unwrap();
    assert_eq!(
        (o.status, o.remaining_quantity),
        (OrderStatus::Open, d("1"))
    );
}

#[test]
fn matching_is_price_then_time_priority_at_the_makers_price() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "101", "1"));
    place(&mut b, limit(2, 2, Side::Sell, "100", "1"));
    place(&mut b, limit(3, 3, Side::Sell, "100", "1"));
    let ev = place(&mut b, limit(4, 4, Side::Buy, "102", "2.5"));
    // Best price first; within 100, the older order (2) first; all at makers' prices.
    assert_eq!(
        trades(&ev),
        [
            (d("100"), d("1"), 2),
            (d("100"), d("1"), 3),
            (d("101"), d("0.5"), 1)
        ]
    );
    assert_eq!(
        kinds(&ev),
        [
            "OrderAccepted",
            "TradeExecuted",
            "OrderFilled",
            "TradeExecuted",
            "OrderFilled",
            "TradeExecuted",
            "OrderFilled"
        ]
    );
    let maker = b.order(1).unwrap();
    assert_eq!(
        (
            maker.status,
            maker.remaining_quantity,
            maker.filled_quantity
        ),
        (OrderStatus::PartiallyFilled, d("0.5"), d("0.5"))
    );
    assert!(b.best_bid().is_none(), "the taker filled completely");
}

#[test]
fn trade_ids_are_sequential_and_trades_carry_settlement_fields() {
    let mut b = book();
    place(&mut b, limit(1, 7, Side::Sell, "100", "1"));
    let ev = place(&mut b, limit(2, 8, Side::Buy, "100", "0.4"));
    let ev2 = place(&mut b, limit(3, 9, Side::Buy, "100", "0.4"));
    let Event::TradeExecuted(t) = &ev[1] else {
        panic!("expected a trade: {ev:?}")
    };
    assert_eq!(
        (t.trade_id, t.maker_account, t.taker_account, t.taker_side),
        (1, 7, 8, Side::Buy)
    );
    assert_eq!(
        (t.maker_order_id, t.taker_order_id, t.executed_at),
        (1, 2, 20)
    );
    assert_eq!(t.symbol.as_str(), "BTC-USD");
    let Event::TradeExecuted(t2) = &ev2[1] else {
        panic!()
    };
    assert_eq!(t2.trade_id, 2);
    assert_eq!(b.last_trade_id(), 2);
}

#[test]
fn a_partially_filled_gtc_order_rests_with_the_exact_remainder() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "0.3"));
    let ev = place(&mut b, limit(2, 2, Side::Buy, "100.5", "1"));
    assert_eq!(
        kinds(&ev),
        ["OrderAccepted", "TradeExecuted", "OrderFilled"]
    );
    let o = b.order(2).unwrap();
    assert_eq!(
        (o.price, o.remaining_quantity, o.filled_quantity),
        (d("100.5"), d("0.7"), d("0.3"))
    );
    assert!(b.best_ask().is_none());
}

#[test]
fn off_grid_and_nonsense_orders_are_rejected_with_a_reason() {
    let mut b = book();
    let cases = [
        (
            limit(1, 1, Side::Buy, "100.001", "1"),
            RejectReason::PriceOffTick,
        ),
        (
            limit(1, 1, Side::Buy, "100", "0.000001"),
            RejectReason::QuantityOffLot,
        ),
        (
            limit(1, 1, Side::Buy, "100", "0.00001"),
            RejectReason::QuantityBelowMinimum,
        ),
        (
            limit(1, 1, Side::Buy, "0", "1"),
            RejectReason::PriceNotPositive,
        ),
        (
            limit(1, 1, Side::Buy, "-5", "1"),
            RejectReason::PriceNotPositive,
        ),
        (
            limit(1, 1, Side::Buy, "100", "-1"),
            RejectReason::QuantityNotPositive,
        ),
        (
            limit(1, 1, Side::Buy, "100000000000000000", "1"),
            RejectReason::PriceTooHigh,
        ),
        (
            PlaceOrder {
                price: None,
                ..limit(1, 1, Side::Buy, "1", "1")
            },
            RejectReason::MissingPrice,
        ),
        (
            PlaceOrder {
                quantity: None,
                ..limit(1, 1, Side::Buy, "1", "1")
            },
            RejectReason::QuantityOrQuoteAmount,
        ),
        (
            PlaceOrder {
                symbol: Symbol::new("ETH-USD").unwrap(),
                ..limit(1, 1, Side::Buy, "1", "1")
            },
            RejectReason::WrongMarket,
        ),
        (
            PlaceOrder {
                price: Some(d("1")),
                ..market(1, 1, Side::Buy, Some("1"), None)
            },
            RejectReason::PriceOnMarketOrder,
        ),
        (
            market(1, 1, Side::Buy, Some("1"), Some("10")),
            RejectReason::QuantityOrQuoteAmount,
        ),
        (
            PlaceOrder {
                quote_amount: Some(d("10")),
                quantity: None,
                ..limit(1, 1, Side::Buy, "1", "1")
            },
            RejectReason::QuoteAmountNeedsMarketOrder,
        ),
        (
            market(1, 1, Side::Buy, None, Some("0.000000001")),
            RejectReason::QuoteAmountOffGrid,
        ),
        (
            PlaceOrder {
                time_in_force: Some(TimeInForce::GoodTillCancelled),
                ..market(1, 1, Side::Buy, Some("1"), None)
            },
            RejectReason::MarketOrderCannotRest,
        ),
        (
            PlaceOrder {
                time_in_force: Some(TimeInForce::FillOrKill),
                ..market(1, 1, Side::Buy, None, Some("10"))
            },
            RejectReason::FillOrKillNeedsQuantity,
        ),
        (
            PlaceOrder {
                post_only: true,
                time_in_force: Some(TimeInForce::ImmediateOrCancel),
                ..limit(1, 1, Side::Buy, "1", "1")
            },
            RejectReason::PostOnlyNeedsGtcLimit,
        ),
    ];
    for (order, reason) in cases {
        let ev = place(&mut b, order.clone());
        assert_eq!(rejection(&ev), Some(reason), "{order:?}");
    }
    assert_eq!(b.events_applied(), 17);
    assert!(
        b.resting_orders().is_empty(),
        "a rejected command changes nothing"
    );
}

#[test]
fn order_ids_must_increase() {
    let mut b = book();
    place(&mut b, limit(5, 1, Side::Buy, "100", "1"));
    assert_eq!(
        rejection(&place(&mut b, limit(5, 1, Side::Buy, "99", "1"))),
        Some(RejectReason::DuplicateOrderId)
    );
    assert_eq!(
        rejection(&place(&mut b, limit(4, 1, Side::Buy, "99", "1"))),
        Some(RejectReason::DuplicateOrderId)
    );
}

#[test]
fn ioc_cancels_what_does_not_fill_at_once() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "0.4"));
    let ioc = PlaceOrder {
        time_in_force: Some(TimeInForce::ImmediateOrCancel),
        ..limit(2, 2, Side::Buy, "100", "1")
    };
    let ev = place(&mut b, ioc);
    assert_eq!(trades(&ev), [(d("100"), d("0.4"), 1)]);
    assert_eq!(
        cancel_reasons(&ev),
        [(2, CancelReason::ImmediateOrCancelRemainder)]
    );
    let Some(Event::OrderCancelled(c)) = ev.last() else {
        panic!()
    };
    assert_eq!(c.remaining_quantity, Some(d("0.6")));
    assert!(b.resting_orders().is_empty());
}

#[test]
fn fok_fills_completely_or_not_at_all() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "0.4"));
    place(&mut b, limit(2, 1, Side::Sell, "101", "0.4"));
    let fok = |id, qty| PlaceOrder {
        time_in_force: Some(TimeInForce::FillOrKill),
        ..limit(id, 2, Side::Buy, "101", qty)
    };
    let ev = place(&mut b, fok(3, "1"));
    assert_eq!(kinds(&ev), ["OrderAccepted", "OrderCancelled"]);
    assert_eq!(cancel_reasons(&ev), [(3, CancelReason::FillOrKillUnfilled)]);
    assert_eq!(b.resting_orders().len(), 2, "nothing traded");
    let ev = place(&mut b, fok(4, "0.8"));
    assert_eq!(trades(&ev).len(), 2);
    assert_eq!(ev.last().map(Event::kind), Some("OrderFilled"));
}

#[test]
fn post_only_is_rejected_if_it_would_take() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "1"));
    let po = |id, price| PlaceOrder {
        post_only: true,
        ..limit(id, 2, Side::Buy, price, "1")
    };
    assert_eq!(
        rejection(&place(&mut b, po(2, "100"))),
        Some(RejectReason::PostOnlyWouldTake)
    );
    assert_eq!(kinds(&place(&mut b, po(3, "99.99"))), ["OrderAccepted"]);
    assert_eq!(b.best_bid().unwrap().price, d("99.99"));
}

#[test]
fn market_orders_by_quantity_sweep_and_cancel_the_rest() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "0.5"));
    place(&mut b, limit(2, 1, Side::Sell, "105", "0.5"));
    let ev = place(&mut b, market(3, 2, Side::Buy, Some("2"), None));
    assert_eq!(
        trades(&ev),
        [(d("100"), d("0.5"), 1), (d("105"), d("0.5"), 2)]
    );
    let Some(Event::OrderCancelled(c)) = ev.last() else {
        panic!()
    };
    assert_eq!(
        (c.reason, c.remaining_quantity, c.price),
        (CancelReason::MarketOrderRemainder, Some(d("1")), None)
    );
    // Into an empty side a market order would do nothing: it is refused.
    let ev = place(&mut b, market(4, 2, Side::Buy, Some("1"), None));
    assert_eq!(rejection(&ev), Some(RejectReason::NoLiquidity));
}

#[test]
fn market_buy_by_quote_amount_spends_exactly_what_it_can() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "3"));
    place(&mut b, limit(2, 1, Side::Sell, "200", "10"));
    // Spend 1000 USD: 3 BTC at 100 = 300, then 700 / 200 = 3.5 BTC.
    let ev = place(&mut b, market(3, 2, Side::Buy, None, Some("1000")));
    assert_eq!(
        trades(&ev),
        [(d("100"), d("3"), 1), (d("200"), d("3.5"), 2)]
    );
    assert_eq!(ev.last().map(Event::kind), Some("OrderFilled"));
    // 10.00001 USD at 200: 0.05 BTC costs 10; 0.00001 USD cannot buy a lot.
    let ev = place(&mut b, market(4, 2, Side::Buy, None, Some("10.00001")));
    assert_eq!(trades(&ev), [(d("200"), d("0.05"), 2)]);
    let Some(Event::OrderCancelled(c)) = ev.last() else {
        panic!()
    };
    assert_eq!(
        (c.remaining_quote_amount, c.remaining_quantity),
        (Some(d("0.00001")), None)
    );
}

#[test]
fn cancel_removes_the_order_and_only_its_owner_may() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Buy, "100", "1"));
    let cancel = |account| {
        Command::Cancel(CancelOrder {
            symbol: Symbol::new("BTC-USD").unwrap(),
            order_id: 1,
            account,
            at: 99,
        })
    };
    assert_eq!(
        rejection(&b.execute(&cancel(2))),
        Some(RejectReason::NotOrderOwner)
    );
    let ev = b.execute(&cancel(1));
    assert_eq!(cancel_reasons(&ev), [(1, CancelReason::User)]);
    assert!(b.order(1).is_none() && b.best_bid().is_none());
    assert_eq!(
        rejection(&b.execute(&cancel(1))),
        Some(RejectReason::UnknownOrder)
    );
}

fn amend(id: u64, account: u64, price: Option<&str>, qty: Option<&str>) -> Command {
    Command::Amend(AmendOrder {
        symbol: Symbol::new("BTC-USD").unwrap(),
        order_id: id,
        account,
        price: price.map(d),
        quantity: qty.map(d),
        at: 1_000 + id,
        trigger_price: None,
    })
}

#[test]
fn reducing_quantity_keeps_time_priority() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "1"));
    place(&mut b, limit(2, 2, Side::Sell, "100", "1"));
    let ev = b.execute(&amend(1, 1, None, Some("0.5")));
    let Event::OrderAmended(a) = &ev[0] else {
        panic!()
    };
    assert!(a.priority_kept);
    assert_eq!(b.best_ask().unwrap().quantity, d("1.5"));
    let ev = place(&mut b, limit(3, 3, Side::Buy, "100", "0.5"));
    assert_eq!(
        trades(&ev),
        [(d("100"), d("0.5"), 1)],
        "order 1 is still first"
    );
}

#[test]
fn increasing_quantity_or_changing_price_loses_time_priority() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "1"));
    place(&mut b, limit(2, 2, Side::Sell, "100", "1"));
    let ev = b.execute(&amend(1, 1, None, Some("2")));
    let Event::OrderAmended(a) = &ev[0] else {
        panic!()
    };
    assert!(!a.priority_kept);
    let ev = place(&mut b, limit(3, 3, Side::Buy, "100", "0.5"));
    assert_eq!(
        trades(&ev),
        [(d("100"), d("0.5"), 2)],
        "order 2 is now first"
    );

    place(&mut b, limit(4, 4, Side::Sell, "101", "1"));
    b.execute(&amend(4, 4, Some("100"), None));
    b.execute(&amend(2, 2, Some("101"), None));
    b.execute(&amend(2, 2, Some("100"), None));
    let ev = place(&mut b, limit(5, 3, Side::Buy, "100", "3.5"));
    let makers: Vec<u64> = trades(&ev).iter().map(|t| t.2).collect();
    assert_eq!(makers, [1, 4, 2]);
}

#[test]
fn an_amended_order_that_crosses_trades_at_once() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "1"));
    place(&mut b, limit(2, 2, Side::Buy, "99", "2"));
    let ev = b.execute(&amend(2, 2, Some("100"), None));
    assert_eq!(kinds(&ev), ["OrderAmended", "TradeExecuted", "OrderFilled"]);
    assert_eq!(trades(&ev), [(d("100"), d("1"), 1)]);
    let o = b.order(2).unwrap();
    assert_eq!((o.price, o.remaining_quantity), (d("100"), d("1")));
    assert!(b.best_ask().is_none());
}

#[test]
fn amendments_that_change_nothing_or_cross_post_only_are_rejected() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "1"));
    place(
        &mut b,
        PlaceOrder {
            post_only: true,
            ..limit(2, 2, Side::Buy, "99", "1")
        },
    );
    assert_eq!(
        rejection(&b.execute(&amend(2, 2, Some("99"), Some("1")))),
        Some(RejectReason::AmendmentChangesNothing)
    );
    assert_eq!(
        rejection(&b.execute(&amend(2, 2, Some("100"), None))),
        Some(RejectReason::PostOnlyWouldTake)
    );
    assert_eq!(
        rejection(&b.execute(&amend(2, 2, Some("99.001"), None))),
        Some(RejectReason::PriceOffTick)
    );
    assert_eq!(
        rejection(&b.execute(&amend(2, 3, Some("98"), None))),
        Some(RejectReason::NotOrderOwner)
    );
    assert_eq!(b.order(2).unwrap().price, d("99"));
}

#[test]
fn self_trade_prevention_cancel_taker() {
    let mut b = book();
    place(&mut b, limit(1, 9, Side::Sell, "100", "1"));
    place(&mut b, limit(2, 1, Side::Sell, "100", "1"));
    place(&mut b, limit(3, 2, Side::Sell, "100", "1"));
    let ev = place(&mut b, limit(4, 1, Side::Buy, "100", "3"));
    assert_eq!(trades(&ev), [(d("100"), d("1"), 1)]);
    assert_eq!(
        cancel_reasons(&ev),
        [(4, CancelReason::SelfTradePrevention)]
    );
    assert!(b.order(2).is_some(), "the maker stays");
}

#[test]
fn self_trade_prevention_cancel_maker() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "1"));
    place(&mut b, limit(2, 2, Side::Sell, "100", "1"));
    let taker = PlaceOrder {
        self_trade_prevention: SelfTradePrevention::CancelMaker,
        ..limit(3, 1, Side::Buy, "100", "1")
    };
    let ev = place(&mut b, taker);
    assert_eq!(
        cancel_reasons(&ev),
        [(1, CancelReason::SelfTradePrevention)]
    );
    assert_eq!(trades(&ev), [(d("100"), d("1"), 2)]);
    assert!(b.resting_orders().is_empty());
}

#[test]
fn self_trade_prevention_cancel_both() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "1"));
    place(&mut b, limit(2, 2, Side::Sell, "100", "1"));
    let taker = PlaceOrder {
        self_trade_prevention: SelfTradePrevention::CancelBoth,
        ..limit(3, 1, Side::Buy, "100", "1")
    };
    let ev = place(&mut b, taker);
    assert_eq!(
        cancel_reasons(&ev),
        [
            (1, CancelReason::SelfTradePrevention),
            (3, CancelReason::SelfTradePrevention)
        ]
    );
    assert!(trades(&ev).is_empty());
    assert_eq!(
        b.resting_orders()
            .iter()
            .map(|o| o.order_id)
            .collect::<Vec<_>>(),
        [2]
    );
}

#[test]
fn decide_never_mutates() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100", "1"));
    let before = b.snapshot();
    let events = b.decide(&Command::Place(limit(2, 2, Side::Buy, "100", "1")));
    assert_eq!(events.len(), 4);
    assert_eq!(b.snapshot(), before);
}

#[test]
fn depth_aggregates_levels_best_first() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Buy, "99", "1"));
    place(&mut b, limit(2, 2, Side::Buy, "99", "0.5"));
    place(&mut b, limit(3, 3, Side::Buy, "98", "1"));
    place(&mut b, limit(4, 4, Side::Sell, "101", "2"));
    place(&mut b, limit(5, 4, Side::Sell, "102", "2"));
    let depth = b.depth(1);
    assert_eq!(
        depth.bids,
        [PriceLevel {
            price: d("99"),
            quantity: d("1.5"),
            orders: 2
        }]
    );
    assert_eq!(
        depth.asks,
        [PriceLevel {
            price: d("101"),
            quantity: d("2"),
            orders: 1
        }]
    );
    assert_eq!(b.depth(10).bids.len(), 2);
}

#[test]
fn events_round_trip_through_versioned_json() {
    let mut b = book();
    place(&mut b, limit(1, 1, Side::Sell, "100.5", "1"));
    let ev = place(&mut b, limit(2, 2, Side::Buy, "101", "0.25"));
    for e in &ev {
        let json = e.to_json();
        assert!(
            json.starts_with("{\"schema_version\":6,\"type\":"),
            "{json}"
        );
        assert_eq!(&Event::from_json(&json).unwrap(), e);
    }
    let trade = ev[1].to_json();
    assert!(
        trade.contains("\"price\":\"100.5\"") && trade.contains("\"quantity\":\"0.25\""),
        "{trade}"
    );
    // A log written before stop orders (version 1), before fees were in
    // trades (version 2), before fences (version 3), before client ids
    // (version 4) or before refusals were kept in it (version 5) reads the
    // same.
    for e in &ev {
        for old in ["1", "2", "3", "4", "5"] {
            let old = e
                .to_json()
                .replace("\"schema_version\":6", &format!("\"schema_version\":{old}"));
            assert_eq!(&Event::from_json(&old).unwrap(), e);
        }
    }
    // A trade the exchange stamped with fees carries them, and reads back.
    let Event::TradeExecuted(mut t) = ev[1].clone() else {
        panic!("{:?}", ev[1])
    };
    t.fees = Some(Box::new(orderbook::TradeFees {
        maker: d("0.1"),
        taker: d("0.0005"),
    }));
    let stamped = Event::TradeExecuted(t).to_json();
    assert!(
        stamped.contains("\"fees\":{\"maker\":\"0.1\",\"taker\":\"0.0005\"}"),
        "{stamped}"
    );
    assert_eq!(Event::from_json(&stamped).unwrap().to_json(), stamped);
    // A fence reads back, and changes no book.
    let fence = Event::StreamFenced(orderbook::StreamFenced {
        symbol: *ev[1].symbol(),
        term: 7,
        at: 30,
    });
    let json = fence.to_json();
    assert_eq!(
        json,
        "{\"schema_version\":6,\"type\":\"StreamFenced\",\"symbol\":\"BTC-USD\",\"term\":7,\"at\":30}"
    );
    assert_eq!(Event::from_json(&json).unwrap(), fence);
    let before = b.snapshot();
    b.apply(&fence);
    let mut after = b.snapshot();
    assert_eq!(after.events_applied, before.events_applied + 1);
    after.events_applied = before.events_applied;
    assert_eq!(after, before);
    // A refused placement (version 6) reads back with its terms, and
    // changes no book either.
    let refused = Event::OrderRefused(Box::new(orderbook::OrderRefused {
        symbol: *ev[1].symbol(),
        account: 2,
        terms: orderbook::OrderTerms {
            side: Side::Buy,
            order_type: orderbook::OrderType::Limit,
            price: Some(d("30000")),
            quantity: Some(d("5")),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: Default::default(),
            trigger: None,
        },
        client_order_id: Some("mine-1".parse().unwrap()),
        reason: "insufficient USD: 10000 available, 150000 needed".into(),
        at: 31,
    }));
    let json = refused.to_json();
    assert!(json.contains("\"type\":\"OrderRefused\""), "{json}");
    assert_eq!(Event::from_json(&json).unwrap(), refused);
    let before = b.snapshot();
    b.apply(&refused);
    let mut after = b.snapshot();
    after.events_applied = before.events_applied;
    assert_eq!(after, before);
    let future = trade.replace("\"schema_version\":6", "\"schema_version\":99");
    assert!(matches!(
        Event::from_json(&future),
        Err(EventDecodeError::NewerSchema(99))
    ));
    assert!(Event::from_json("{\"type\":\"Nope\"}").is_err());
}

#[test]
fn snapshot_plus_later_events_equals_full_replay() {
    let mut b = book();
    let mut log = Vec::new();
    log.extend(place(&mut b, limit(1, 1, Side::Sell, "100", "1")));
    log.extend(place(&mut b, limit(2, 2, Side::Sell, "100", "2")));
    log.extend(place(&mut b, limit(3, 3, Side::Buy, "99", "1")));
    let snap = b.snapshot();
    let json = serde_json::to_string(&snap).unwrap();
    let at = log.len();
    log.extend(place(&mut b, limit(4, 4, Side::Buy, "100", "1.5")));
    log.extend(b.execute(&amend(3, 3, Some("98"), None)));
    let mut restored = Book::from_snapshot(btc(), &serde_json::from_str(&json).unwrap()).unwrap();
    for e in &log[at..] {
        restored.apply(e);
    }
    let replayed = Book::replay(btc(), &log);
    assert_eq!(restored.resting_orders(), b.resting_orders());
    assert_eq!(replayed.resting_orders(), b.resting_orders());
    assert_eq!(restored.last_trade_id(), b.last_trade_id());
    let eth = Market::defaults().remove(1);
    assert!(matches!(
        Book::from_snapshot(eth, &snap),
        Err(SnapshotError::WrongMarket { .. })
    ));
}

#[test]
fn a_quote_sized_sell_never_skips_a_better_bid_for_a_worse_one() {
    // Found by the simulation (seed 20261123): 0.52865 USD buys 49 lots at
    // 105.75 leaving 0.010475, too little for a lot at 105.75 but enough at
    // 103.93. Taking the worse bid would jump the better order's queue.
    let eth = Market::defaults().remove(1);
    let mut b = Book::new(eth);
    let mut o1 = limit(1, 4, Side::Buy, "103.93", "0.008");
    let mut o2 = limit(2, 4, Side::Buy, "105.75", "0.007");
    let mut sell = market(3, 1, Side::Sell, None, Some("0.52865"));
    for o in [&mut o1, &mut o2, &mut sell] {
        o.symbol = Symbol::new("ETH-USD").unwrap();
    }
    place(&mut b, o1);
    place(&mut b, o2);
    let ev = place(&mut b, sell);
    assert_eq!(trades(&ev), [(d("105.75"), d("0.0049"), 2)]);
    let Some(Event::OrderCancelled(c)) = ev.last() else {
        panic!()
    };
    assert_eq!(c.remaining_quote_amount, Some(d("0.010475")));
}

fn named(o: PlaceOrder, client_id: &str) -> PlaceOrder {
    o.with_client_order_id(Some(client_id.parse().unwrap()))
}

#[test]
fn a_client_order_id_is_unique_among_an_accounts_open_orders_and_freed_when_it_closes() {
    let mut b = book();
    let e = place(&mut b, named(limit(1, 7, Side::Sell, "101", "1"), "mm-1"));
    assert_eq!(kinds(&e), ["OrderAccepted"]);
    assert_eq!(b.order_by_client_id(7, &"mm-1".parse().unwrap()), Some(1));
    assert_eq!(
        b.order(1).unwrap().client_order_id.unwrap().as_str(),
        "mm-1"
    );
    // The same account cannot name a second open order so; another can.
    let e = place(&mut b, named(limit(2, 7, Side::Sell, "102", "1"), "mm-1"));
    assert_eq!(rejection(&e), Some(RejectReason::DuplicateClientOrderId));
    let e = place(&mut b, named(limit(3, 8, Side::Sell, "102", "1"), "mm-1"));
    assert_eq!(kinds(&e), ["OrderAccepted"]);
    assert_eq!(b.order_by_client_id(8, &"mm-1".parse().unwrap()), Some(3));
    // Filled, order 1 frees its id for the account's next order.
    place(&mut b, limit(4, 9, Side::Buy, "101", "1"));
    assert_eq!(b.order_by_client_id(7, &"mm-1".parse().unwrap()), None);
    let e = place(&mut b, named(limit(5, 7, Side::Sell, "103", "1"), "mm-1"));
    assert_eq!(kinds(&e), ["OrderAccepted"]);
    // A cancel frees it as well.
    b.execute(&Command::Cancel(CancelOrder {
        symbol: Symbol::new("BTC-USD").unwrap(),
        order_id: 5,
        account: 7,
        at: 60,
    }));
    assert_eq!(b.order_by_client_id(7, &"mm-1".parse().unwrap()), None);
    orderbook::invariants::check_book(&b).unwrap();
}

#[test]
fn an_order_that_closes_in_its_own_decision_keeps_no_client_id() {
    let mut b = book();
    place(&mut b, limit(1, 7, Side::Sell, "101", "1"));
    // An IOC remainder is cancelled, a filled taker is done: neither keeps
    // its name.
    let e = place(
        &mut b,
        named(market(2, 8, Side::Buy, Some("2"), None), "take"),
    );
    assert_eq!(kinds(&e).last(), Some(&"OrderCancelled"));
    assert_eq!(b.order_by_client_id(8, &"take".parse().unwrap()), None);
    orderbook::invariants::check_book(&b).unwrap();
}

#[test]
fn client_ids_survive_a_snapshot_and_are_written_on_the_acceptance() {
    let mut b = book();
    place(&mut b, limit(1, 7, Side::Buy, "99", "1"));
    let e = place(&mut b, named(limit(2, 7, Side::Sell, "101", "1"), "ask-1"));
    let Event::OrderAccepted(accepted) = &e[0] else {
        panic!("{e:?}")
    };
    assert_eq!(accepted.client_order_id.as_ref().unwrap().as_str(), "ask-1");
    let json = e[0].to_json();
    assert!(json.contains(r#""client_order_id":"ask-1""#), "{json}");
    let back = Book::from_snapshot(btc(), &b.snapshot()).unwrap();
    assert_eq!(
        back.order_by_client_id(7, &"ask-1".parse().unwrap()),
        Some(2)
    );
    assert_eq!(back.order(1).unwrap().client_order_id, None);
    orderbook::invariants::check_book(&back).unwrap();
}

#[test]
fn an_order_worth_more_than_28_digits_is_refused_not_rounded() {
    let mut b = book();
    let max = btc().max_value();
    // The most an order may be worth is itself an exact 28-digit decimal.
    assert!(max.mantissa() < 10i128.pow(28), "{max}");
    assert!(max > d("1e20") && max < d("1e22"), "{max}");
    // Each of price and quantity is within its own bound; the product is not.
    let huge = limit(1, 1, Side::Sell, "1000000000000", "10000000000");
    assert_eq!(
        rejection(&place(&mut b, huge)),
        Some(RejectReason::ValueTooLarge)
    );
    let big = limit(2, 1, Side::Sell, "10000000000", "10000000000");
    assert_eq!(rejection(&place(&mut b, big)), None);
    // An amendment may not take it past the bound either.
    let bigger = b.execute(&amend(2, 1, Some("1000000000000"), None));
    assert_eq!(rejection(&bigger), Some(RejectReason::ValueTooLarge));
    assert_eq!(b.order(2).map(|o| o.price), Some(d("10000000000")));
    // Nor a market order's quote amount.
    let quote = market(3, 2, Side::Buy, None, Some("10000000000000000000000"));
    assert_eq!(
        rejection(&place(&mut b, quote)),
        Some(RejectReason::QuoteAmountTooLarge)
    );
}

/// The ladder keeps a level that empties away from the touch, empty, for
/// the next order at its price, and sweeps the empty ones out when they
/// outnumber the open ones. None of that may show: after every command the
/// depth is exactly the open orders summed by price, best first.
#[test]
fn levels_emptied_away_from_the_touch_are_reused_and_swept_without_showing() {
    use std::collections::{BTreeMap, HashMap};
    let mut b = book();
    let mut rng = orderbook::sim::Rng::new(11);
    // id -> (side, price in dollars, quantity in 0.01 BTC)
    let mut open: HashMap<u64, (Side, u64, u64)> = HashMap::new();
    for id in 1..=4_500u64 {
        let live: Vec<u64> = {
            let mut v: Vec<u64> = open.keys().copied().collect();
            v.sort();
            v
        };
        // Fill the book, then empty most of it (so empty levels outnumber
        // open ones and are swept), then fill it again over them.
        let places = match id {
            ..=1_500 => 70,
            1_501..=3_000 => 10,
            _ => 60,
        };
        let pick = rng.below(100);
        let command = if pick < places || live.is_empty() {
            // Bids over 10,000..12,800 and asks over 20,000..22,800 (400
            // prices each, 7 apart: wider than the ladder's window of
            // prices, so some are found by search) never cross.
            let side = if rng.chance(50) {
                Side::Buy
            } else {
                Side::Sell
            };
            let price = if side == Side::Buy { 10_000 } else { 20_000 } + 7 * rng.below(400);
            let qty = 1 + rng.below(5);
            open.insert(id, (side, price, qty));
            let q = format!("0.0{qty}");
            Command::Place(limit(id, id % 7, side, &price.to_string(), &q))
        } else {
            let order_id = live[rng.below(live.len() as u64) as usize];
            if pick < places + (100 - places) * 3 / 4 {
                open.remove(&order_id);
                Command::Cancel(CancelOrder {
                    symbol: Symbol::new("BTC-USD").unwrap(),
                    order_id,
                    account: order_id % 7,
                    at: id * 10,
                })
            } else {
                // A new price on the same side, losing priority.
                let (side, _, qty) = open[&order_id];
                let price = if side == Side::Buy { 10_000 } else { 20_000 } + 7 * rng.below(400);
                if price == open[&order_id].1 {
                    continue;
                }
                open.insert(order_id, (side, price, qty));
                Command::Amend(AmendOrder {
                    symbol: Symbol::new("BTC-USD").unwrap(),
                    order_id,
                    account: order_id % 7,
                    price: Some(Decimal::from(price)),
                    quantity: None,
                    trigger_price: None,
                    at: id * 10,
                })
            }
        };
        let events = b.execute(&command);
        assert!(
            !kinds(&events).contains(&"OrderRejected"),
            "{command:?}: {events:?}"
        );
        orderbook::invariants::check_book(&b).unwrap();
        let mut want: [BTreeMap<u64, (u64, u32)>; 2] = Default::default();
        for &(side, price, qty) in open.values() {
            let level = want[side as usize].entry(price).or_default();
            level.0 += qty;
            level.1 += 1;
        }
        let levels = |best_first: Vec<(&u64, &(u64, u32))>| -> Vec<PriceLevel> {
            best_first
                .into_iter()
                .map(|(p, &(q, n))| PriceLevel {
                    price: Decimal::from(*p),
                    quantity: Decimal::new(q as i64, 2),
                    orders: n,
                })
                .collect()
        };
        let depth = b.depth(usize::MAX);
        assert_eq!(
            depth.bids,
            levels(want[Side::Buy as usize].iter().rev().collect())
        );
        assert_eq!(
            depth.asks,
            levels(want[Side::Sell as usize].iter().collect())
        );
        for (&price, &(q, _)) in &want[Side::Buy as usize] {
            assert_eq!(
                b.quantity_at(Side::Buy, Decimal::from(price)),
                Decimal::new(q as i64, 2)
            );
        }
        // A price whose level emptied reads as nothing there.
        for price in (10_000..12_800u64).step_by(7) {
            if !want[Side::Buy as usize].contains_key(&price) {
                assert_eq!(
                    b.quantity_at(Side::Buy, Decimal::from(price)),
                    Decimal::ZERO
                );
            }
        }
    }
}

/// A log this engine never writes, an order accepted across the book with
/// no trade before the next one enters, still folds without losing it: the
/// earlier order rests as it arrived.
#[test]
fn an_order_accepted_across_the_book_without_trades_rests_when_the_next_enters() {
    let mut maker = book();
    let resting = place(&mut maker, limit(1, 7, Side::Sell, "100", "1"));
    let accepted = |id: u64, price: &str| {
        let mut b = book();
        b.apply(&resting[0]);
        let events = place(&mut b, limit(id, 8, Side::Buy, price, "1"));
        events[0].clone()
    };
    let (first, second) = (accepted(2, "101"), accepted(3, "102"));
    let mut b = book();
    for e in [&resting[0], &first, &second] {
        b.apply(e);
    }
    let order = b.order(2).expect("the earlier order rests");
    assert_eq!(order.price, d("101"));
    assert_eq!(order.remaining_quantity, d("1"));
}
