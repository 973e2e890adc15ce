//! Property tests: any sequence of orders (stop and take-profit orders
//! among them), cancels and amends keeps every invariant (see
//! `orderbook::invariants`: among them that a held order never trades,
//! fires only at a trade that reaches its trigger, fires once, and is never
//! left waiting once the last price has reached it), and replaying the
//! events of the run (whole, or from a snapshot halfway) gives the same
//! book.

use orderbook::sim::CheckedRun;
use orderbook::*;
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Limit {
        account: u64,
        buy: bool,
        offset: u64,
        lots: u64,
        tif: u8,
        post_only: bool,
        stp: u8,
    },
    Market {
        account: u64,
        buy: bool,
        lots: u64,
        by_quote: bool,
        stp: u8,
    },
    Stop {
        account: u64,
        buy: bool,
        take_profit: bool,
        trigger: u64,
        /// A stop-limit's price; a stop-market without.
        limit: Option<u64>,
        lots: u64,
        stp: u8,
    },
    Cancel {
        pick: usize,
    },
    Amend {
        pick: usize,
        offset: Option<u64>,
        lots: Option<u64>,
        trigger: Option<u64>,
    },
}

fn op() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (1..4u64, any::<bool>(), 0..12u64, 1..8u64, 0..3u8, any::<bool>(), 0..3u8).prop_map(
            |(account, buy, offset, lots, tif, post_only, stp)| Step::Limit { account, buy, offset, lots, tif, post_only, stp }
        ),
        1 => (1..4u64, any::<bool>(), 1..20u64, any::<bool>(), 0..3u8)
            .prop_map(|(account, buy, lots, by_quote, stp)| Step::Market { account, buy, lots, by_quote, stp }),
        2 => (1..4u64, any::<bool>(), any::<bool>(), 0..12u64, proptest::option::of(0..12u64), 1..8u64, 0..3u8)
            .prop_map(|(account, buy, take_profit, trigger, limit, lots, stp)| Step::Stop { account, buy, take_profit, trigger, limit, lots, stp }),
        2 => any::<usize>().prop_map(|pick| Step::Cancel { pick }),
        2 => (any::<usize>(), proptest::option::of(0..12u64), proptest::option::of(1..8u64), proptest::option::of(0..12u64))
            .prop_map(|(pick, offset, lots, trigger)| Step::Amend { pick, offset, lots, trigger }),
    ]
}

fn stp(n: u8) -> SelfTradePrevention {
    [
        SelfTradePrevention::CancelTaker,
        SelfTradePrevention::CancelMaker,
        SelfTradePrevention::CancelBoth,
    ][n as usize % 3]
}

/// Turns ops into commands on BTC-USD, prices between 99.95 and 100.06.
fn commands(ops: &[Step]) -> Vec<Command> {
    let m = Market::defaults().remove(0);
    let sym = m.symbol;
    let mut placed: Vec<(u64, u64)> = Vec::new();
    let mut out = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let at = i as u64;
        let id = i as u64 + 1;
        let price = |offset: u64| m.price(9_995 + offset);
        let lots = |n: u64| m.quantity(m.min_lots() * n);
        let side = |buy: bool| if buy { Side::Buy } else { Side::Sell };
        out.push(match *op {
            Step::Limit {
                account,
                buy,
                offset,
                lots: n,
                tif,
                post_only,
                stp: s,
            } => {
                placed.push((id, account));
                Command::Place(PlaceOrder {
                    client_order_id: None,
                    symbol: sym,
                    order_id: id,
                    account,
                    side: side(buy),
                    order_type: OrderType::Limit,
                    price: Some(price(offset)),
                    quantity: Some(lots(n)),
                    quote_amount: None,
                    time_in_force: Some(
                        [
                            TimeInForce::GoodTillCancelled,
                            TimeInForce::ImmediateOrCancel,
                            TimeInForce::FillOrKill,
                        ][tif as usize % 3],
                    ),
                    post_only: post_only && tif == 0,
                    self_trade_prevention: stp(s),
                    at,
                    trigger: None,
                })
            }
            Step::Market {
                account,
                buy,
                lots: n,
                by_quote,
                stp: s,
            } => Command::Place(PlaceOrder {
                client_order_id: None,
                symbol: sym,
                order_id: id,
                account,
                side: side(buy),
                order_type: OrderType::Market,
                price: None,
                quantity: (!by_quote).then(|| lots(n)),
                quote_amount: by_quote.then(|| m.quote_amount(u128::from(n) * 1_000_000)),
                time_in_force: None,
                post_only: false,
                self_trade_prevention: stp(s),
                at,
                trigger: None,
            }),
            Step::Stop {
                account,
                buy,
                take_profit,
                trigger,
                limit,
                lots: n,
                stp: s,
            } => {
                placed.push((id, account));
                let kind = if take_profit {
                    TriggerKind::TakeProfit
                } else {
                    TriggerKind::Stop
                };
                Command::Place(PlaceOrder {
                    client_order_id: None,
                    symbol: sym,
                    order_id: id,
                    account,
                    side: side(buy),
                    order_type: if limit.is_some() {
                        OrderType::Limit
                    } else {
                        OrderType::Market
                    },
                    price: limit.map(price),
                    quantity: Some(lots(n)),
                    quote_amount: None,
                    time_in_force: None,
                    post_only: false,
                    self_trade_prevention: stp(s),
                    at,
                    trigger: Some(Trigger {
                        kind,
                        price: price(trigger),
                    }),
                })
            }
            Step::Cancel { pick } if !placed.is_empty() => {
                let (order_id, account) = placed[pick % placed.len()];
                Command::Cancel(CancelOrder {
                    symbol: sym,
                    order_id,
                    account,
                    at,
                })
            }
            Step::Amend {
                pick,
                offset,
                lots: n,
                trigger,
            } if !placed.is_empty() => {
                let (order_id, account) = placed[pick % placed.len()];
                Command::Amend(AmendOrder {
                    symbol: sym,
                    order_id,
                    account,
                    price: offset.map(price),
                    quantity: n.map(lots),
                    at,
                    trigger_price: trigger.map(price),
                })
            }
            _ => continue,
        });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn every_invariant_holds_and_replay_reproduces_the_book(ops in proptest::collection::vec(op(), 1..120)) {
        let markets = vec![Market::defaults().remove(0)];
        let cmds = commands(&ops);
        let mut run = CheckedRun::new(&markets);
        let half = cmds.len() / 2;
        for (i, c) in cmds.into_iter().enumerate() {
            if i == half {
                run.snapshot_now();
            }
            if let Err(f) = run.step(c) {
                prop_assert!(false, "{} after {} commands", f.violation, f.commands.len());
            }
        }
        if let Err(f) = run.finish() {
            prop_assert!(false, "{}", f.violation);
        }
    }

    #[test]
    fn the_book_is_never_left_crossed(ops in proptest::collection::vec(op(), 1..200)) {
        let mut book = Book::new(Market::defaults().remove(0));
        for c in commands(&ops) {
            book.execute(&c);
            if let (Some(bid), Some(ask)) = (book.best_bid(), book.best_ask()) {
                prop_assert!(bid.price < ask.price, "crossed: {} >= {}", bid.price, ask.price);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// A snapshot taken at any event where no order is part-way through
    /// entering, even inside one command's events, restores a book that
    /// folds the rest of the events into exactly the book the whole fold
    /// gives: the server's stored snapshots are taken at such events.
    #[test]
    fn a_snapshot_between_orders_inside_a_command_folds_on_to_the_same_book(
        ops in proptest::collection::vec(op(), 1..80)
    ) {
        let market = Market::defaults().remove(0);
        let mut book = Book::new(market.clone());
        let mut events = Vec::new();
        for c in commands(&ops) {
            events.extend(book.execute(&c));
        }
        let whole = Book::replay(market.clone(), &events);
        let (whole, whole_depth) = (whole.snapshot(), whole.depth(usize::MAX));
        let mut fold = Book::new(market.clone());
        for (i, e) in events.iter().enumerate() {
            fold.apply(e);
            if !fold.between_orders() {
                continue;
            }
            let json = serde_json::to_string(&fold.snapshot()).unwrap();
            let read: Snapshot = serde_json::from_str(&json).unwrap();
            let mut restored = Book::from_snapshot(market.clone(), &read).unwrap();
            prop_assert!(restored.between_orders());
            for later in &events[i + 1..] {
                restored.apply(later);
            }
            prop_assert_eq!(&restored.snapshot(), &whole, "restored after event {}", i);
            prop_assert_eq!(restored.depth(usize::MAX), whole_depth.clone());
        }
    }
}
