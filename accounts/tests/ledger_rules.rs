//! The ledger's rules, driven the way the exchange drives it: ask what a
//! decided command needs, check it is available, stamp the fees and fold
//! the market events in at their revisions; after every command every
//! rule holds, and every hold agrees with its book.

use std::collections::{BTreeMap, HashMap};

use accounts::invariants::{book_violations, check_ledger, ledger_violations};
use accounts::{AccountError, AccountEvent, FaucetGrant, Fees, Ledger, Role};
use orderbook::sim::Flow;
use orderbook::{Book, Command, Event, Market, OrderType, PlaceOrder, Side};
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn faucet(usd: &str, btc: &str, eth: &str) -> BTreeMap<String, FaucetGrant> {
    [("USD", usd), ("BTC", btc), ("ETH", eth)]
        .into_iter()
        .map(|(a, amount)| {
            let amount = d(amount);
            (
                a.to_string(),
                FaucetGrant {
                    amount,
                    limit: amount * Decimal::TWO,
                },
            )
        })
        .collect()
}

/// One process's worth of exchange: books, the ledger and every market's
/// log, with no I/O.
struct Venue {
    books: HashMap<String, Book>,
    log: HashMap<String, Vec<Event>>,
    ledger: Ledger,
    fees: Fees,
}

impl Venue {
    fn new() -> Venue {
        let books = Market::defaults()
            .into_iter()
            .map(|m| (m.symbol.to_string(), Book::new(m)))
            .collect();
        Venue {
            books,
            log: HashMap::new(),
            ledger: Ledger::new(),
            fees: Fees::default(),
        }
    }

    fn apply(&mut self, events: &[AccountEvent]) {
        for e in events {
            self.ledger.apply(e);
        }
        check_ledger(&self.ledger).unwrap();
    }

    /// A venue with `n` traders, each with the faucet's grant.
    fn with_traders(n: usize) -> Venue {
        let mut x = Venue::new();
        for i in 1..=n {
            let id = x.open(&format!("trader{i}"));
            x.apply(
                &x.ledger
                    .claim_faucet(id, &faucet("60", "0.004", "0.04"), 1)
                    .unwrap(),
            );
        }
        x
    }

    fn open(&mut self, name: &str) -> u64 {
        let e = self.ledger.open_account(name, "hash", 1).unwrap();
        self.apply(std::slice::from_ref(&e));
        e.account()
    }

    /// Runs a command as the exchange does; returns the book's events.
    fn run(&mut self, command: &Command) -> Result<Vec<Event>, String> {
        let symbol = command.symbol().to_string();
        let book = &self.books[&symbol];
        let spec = book.market().spec.clone();
        let mut decided = book.decide(command);
        if let Some(Event::OrderRejected(r)) = decided.first() {
            return Err(r.reason.to_string());
        }
        if let Some((account, asset, amount)) = self.ledger.needs(&spec, command, &decided) {
            self.ledger
                .check_available(account, &asset, amount, Decimal::ZERO)
                .map_err(|e| e.to_string())?;
        }
        for event in &mut decided {
            self.fees.stamp(event);
            self.books.get_mut(&symbol).unwrap().apply(event);
            let log = self.log.entry(symbol.clone()).or_default();
            let revision = log.len() as u64;
            log.push(event.clone());
            assert!(self.ledger.apply_market(&spec, revision, event).unwrap());
            // Between any two events, nothing is negative or over-held.
            assert_eq!(ledger_violations(&self.ledger), vec![], "after {event:?}");
        }
        for book in self.books.values() {
            assert_eq!(book_violations(&self.ledger, book), vec![], "{command:?}");
        }
        Ok(decided)
    }
}

fn limit(symbol: &str, id: u64, account: u64, side: Side, price: &str, qty: &str) -> Command {
    Command::Place(PlaceOrder {
        client_order_id: None,
        symbol: orderbook::Symbol::new(symbol).unwrap(),
        order_id: id,
        account,
        side,
        order_type: OrderType::Limit,
        price: Some(d(price)),
        quantity: Some(d(qty)),
        quote_amount: None,
        time_in_force: None,
        post_only: false,
        self_trade_prevention: Default::default(),
        at: 10 + id,
        trigger: None,
    })
}

#[test]
fn usernames_are_checked_and_unique() {
    let mut x = Venue::new();
    assert_eq!(
        x.ledger.open_account("al", "h", 1),
        Err(AccountError::InvalidUsername)
    );
    assert_eq!(
        x.ledger.open_account("a b c", "h", 1),
        Err(AccountError::InvalidUsername)
    );
    x.open("alice");
    assert_eq!(
        x.ledger.open_account("ALICE", "h", 1),
        Err(AccountError::UsernameTaken)
    );
    assert_eq!(x.open("bob"), 2);
    assert_eq!(x.ledger.by_username("Alice").unwrap().id, 1);
    assert!(accounts::validate_password("short").is_err());
    assert!(accounts::validate_password("long enough").is_ok());
}

#[test]
fn faucet_pays_until_its_limit() {
    let mut x = Venue::new();
    let a = x.open("alice");
    let f = faucet("1000", "1", "10");
    for _ in 0..2 {
        let events = x.ledger.claim_faucet(a, &f, 2).unwrap();
        assert_eq!(events.len(), 3);
        x.apply(&events);
    }
    assert_eq!(
        x.ledger.claim_faucet(a, &f, 3),
        Err(AccountError::FaucetLimitReached)
    );
    let acc = x.ledger.account(a).unwrap();
    assert_eq!(acc.balance("USD").total, d("2000"));
    assert_eq!(x.ledger.deposits["BTC"], d("2"));
}

#[test]
fn an_order_needs_available_funds() {
    let mut x = Venue::new();
    let a = x.open("alice");
    x.apply(
        &x.ledger
            .claim_faucet(a, &faucet("100", "0.01", "1"), 2)
            .unwrap(),
    );
    let err = x
        .run(&limit("BTC-USD", 1, a, Side::Buy, "200", "1"))
        .unwrap_err();
    assert_eq!(err, "insufficient USD: 100 available, 200 needed");
    x.run(&limit("BTC-USD", 2, a, Side::Buy, "50", "1"))
        .unwrap();
    let usd = x.ledger.account(a).unwrap().balance("USD");
    assert_eq!((usd.available(), usd.reserved), (d("50"), d("50")));
    // The rest is held: a second order for more than is left fails.
    assert!(
        x.run(&limit("BTC-USD", 3, a, Side::Buy, "51", "1"))
            .is_err()
    );
    // A book rejection reserves nothing.
    assert!(
        x.run(&limit("BTC-USD", 4, a, Side::Buy, "1.001", "1"))
            .is_err()
    );
    assert_eq!(
        x.ledger.account(a).unwrap().balance("USD").reserved,
        d("50")
    );
}

#[test]
fn a_trade_settles_both_sides_with_fees_and_releases_the_rest() {
    let mut x = Venue::new();
    let (a, b) = (x.open("alice"), x.open("bob"));
    x.apply(
        &x.ledger
            .claim_faucet(a, &faucet("10000", "1", "1"), 2)
            .unwrap(),
    );
    x.apply(
        &x.ledger
            .claim_faucet(b, &faucet("10000", "1", "1"), 2)
            .unwrap(),
    );
    // Alice offers 0.5 BTC at 100; Bob bids 0.2 at 110 and trades at 100.
    x.run(&limit("BTC-USD", 1, a, Side::Sell, "100", "0.5"))
        .unwrap();
    x.run(&limit("BTC-USD", 2, b, Side::Buy, "110", "0.2"))
        .unwrap();
    let alice = x.ledger.account(a).unwrap();
    let bob = x.ledger.account(b).unwrap();
    // Alice (maker, 0.1 %) received 20 USD less 0.02; 0.3 BTC still held.
    assert_eq!(alice.balance("USD").total, d("10019.98"));
    assert_eq!(alice.balance("BTC").total, d("0.8"));
    assert_eq!(alice.balance("BTC").reserved, d("0.3"));
    // Bob (taker, 0.2 %) paid 20, got 0.2 BTC less 0.0004; the 2 USD of
    // price improvement went back when his order filled.
    assert_eq!(bob.balance("USD").total, d("9980"));
    assert_eq!(bob.balance("USD").reserved, d("0"));
    assert_eq!(bob.balance("BTC").total, d("1.1996"));
    assert_eq!(bob.recent_fills[0].role, Role::Taker);
    assert_eq!(bob.recent_fills[0].fee, d("0.0004"));
    assert_eq!(x.ledger.fees["USD"], d("0.02"));
    assert_eq!(x.ledger.fees["BTC"], d("0.0004"));
    // Cancelling releases Alice's remaining 0.3 BTC.
    let cancel = Command::Cancel(orderbook::CancelOrder {
        symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
        order_id: 1,
        account: a,
        at: 50,
    });
    x.run(&cancel).unwrap();
    let alice = x.ledger.account(a).unwrap();
    assert_eq!(alice.balance("BTC").reserved, d("0"));
    assert!(alice.reservations.is_empty());
    // Every fill the ledger keeps shares one copy of each name: Alice's
    // USD and Bob's are one allocation.
    let bob = x.ledger.account(b).unwrap();
    let (sold, bought) = (&alice.recent_fills[0], &bob.recent_fills[0]);
    assert_eq!((&*sold.symbol, &*sold.received_asset), ("BTC-USD", "USD"));
    assert!(std::sync::Arc::ptr_eq(&sold.symbol, &bought.symbol));
    assert!(std::sync::Arc::ptr_eq(
        &sold.received_asset,
        &bought.paid_asset
    ));
    assert!(std::sync::Arc::ptr_eq(
        &sold.paid_asset,
        &bought.received_asset
    ));
}

#[test]
fn folding_a_market_event_twice_changes_nothing() {
    let mut x = Venue::new();
    let (a, b) = (x.open("alice"), x.open("bob"));
    x.apply(
        &x.ledger
            .claim_faucet(a, &faucet("10000", "1", "1"), 2)
            .unwrap(),
    );
    x.apply(
        &x.ledger
            .claim_faucet(b, &faucet("10000", "1", "1"), 2)
            .unwrap(),
    );
    x.run(&limit("BTC-USD", 1, a, Side::Sell, "100", "0.5"))
        .unwrap();
    x.run(&limit("BTC-USD", 2, b, Side::Buy, "100", "0.5"))
        .unwrap();
    let spec = x.books["BTC-USD"].market().spec.clone();
    let before = x.ledger.account(a).unwrap().clone();
    let log = x.log["BTC-USD"].clone();
    for (rev, e) in log.iter().enumerate() {
        assert!(!x.ledger.apply_market(&spec, rev as u64, e).unwrap());
    }
    assert_eq!(x.ledger.account(a).unwrap(), &before);
    // One past the next is a gap, not a silent skip.
    let gap = x.ledger.apply_market(&spec, log.len() as u64 + 1, &log[0]);
    assert!(gap.is_err(), "{gap:?}");
}

#[test]
fn market_orders_hold_what_they_will_trade() {
    let mut x = Venue::new();
    let (a, b) = (x.open("alice"), x.open("bob"));
    x.apply(
        &x.ledger
            .claim_faucet(a, &faucet("10000", "1", "1"), 2)
            .unwrap(),
    );
    x.apply(
        &x.ledger
            .claim_faucet(b, &faucet("50", "1", "1"), 2)
            .unwrap(),
    );
    x.run(&limit("BTC-USD", 1, a, Side::Sell, "100", "0.3"))
        .unwrap();
    x.run(&limit("BTC-USD", 2, a, Side::Sell, "200", "0.3"))
        .unwrap();
    let market_buy = |id, qty: Option<&str>, quote: Option<&str>| {
        Command::Place(PlaceOrder {
            order_type: OrderType::Market,
            price: None,
            quantity: qty.map(d),
            quote_amount: quote.map(d),
            time_in_force: None,
            ..match limit("BTC-USD", id, b, Side::Buy, "1", "1") {
                Command::Place(p) => p,
                _ => unreachable!(),
            }
        })
    };
    // 0.4 BTC by quantity costs 30 + 20 = 50: exactly Bob's 50 USD.
    x.run(&market_buy(3, Some("0.4"), None)).unwrap();
    let bob = x.ledger.account(b).unwrap();
    assert_eq!(bob.balance("USD").total, d("0"));
    assert!(bob.reservations.is_empty());
    // Nothing left to spend: a quote-sized market buy is refused.
    let err = x.run(&market_buy(4, None, Some("10"))).unwrap_err();
    assert!(err.starts_with("insufficient USD"), "{err}");
}

/// Random flow over both markets with small balances, so orders are often
/// refused for funds: after every command every ledger rule holds.
#[test]
fn random_trading_keeps_every_ledger_rule() {
    let mut x = Venue::with_traders(6);
    let mut flow = Flow::new(7, Market::defaults()).with_stops(false);
    let (mut placed, mut refused, mut amends) = (0, 0, 0);
    for _ in 0..20_000 {
        let command = flow.next_command();
        if matches!(command, Command::Amend(_)) {
            amends += 1;
        }
        match x.run(&command) {
            Ok(_) => placed += 1,
            Err(_) => refused += 1,
        }
    }
    assert!(
        placed > 1_000 && refused > 100 && amends > 100,
        "placed {placed} refused {refused} amends {amends}"
    );
    let trades: usize = x.ledger.accounts().map(|a| a.fills.len()).sum();
    assert!(trades > 500, "{trades} fills");
    // Every open order holds exactly its open cost and nothing else holds
    // anything (checked after every command by `run`, and once more here).
    for book in x.books.values() {
        assert_eq!(book_violations(&x.ledger, book), vec![]);
    }
    check_ledger(&x.ledger).unwrap();
}

fn amend(id: u64, account: u64, price: Option<&str>, qty: Option<&str>) -> Command {
    Command::Amend(orderbook::AmendOrder {
        symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
        order_id: id,
        account,
        price: price.map(d),
        quantity: qty.map(d),
        at: 100 + id,
        trigger_price: None,
    })
}

/// An amendment holds exactly what the order's new terms cost: more is
/// reserved first (and refused without the funds, changing nothing), what
/// is no longer needed goes back, and a crossing amendment trades out of
/// what it holds.
#[test]
fn an_amended_order_holds_what_its_new_terms_cost() {
    let mut x = Venue::new();
    let (a, b) = (x.open("alice"), x.open("bob"));
    x.apply(
        &x.ledger
            .claim_faucet(a, &faucet("100", "1", "1"), 2)
            .unwrap(),
    );
    x.apply(
        &x.ledger
            .claim_faucet(b, &faucet("100", "1", "1"), 2)
            .unwrap(),
    );
    let usd = |x: &Venue| x.ledger.account(a).unwrap().balance("USD");
    x.run(&limit("BTC-USD", 1, a, Side::Buy, "50", "1"))
        .unwrap();
    assert_eq!(usd(&x).reserved, d("50"));
    // Twice the quantity costs 100: all Alice has.
    x.run(&amend(1, a, None, Some("2"))).unwrap();
    assert_eq!((usd(&x).reserved, usd(&x).available()), (d("100"), d("0")));
    // A higher price needs funds she no longer has: refused, nothing moves.
    let err = x.run(&amend(1, a, Some("60"), None)).unwrap_err();
    assert_eq!(err, "insufficient USD: 0 available, 20 needed");
    assert_eq!(x.books["BTC-USD"].order(1).unwrap().price, d("50"));
    assert_eq!(usd(&x).reserved, d("100"));
    // Down to 0.5 at 40 needs 20: the other 80 goes back.
    x.run(&amend(1, a, Some("40"), Some("0.5"))).unwrap();
    assert_eq!((usd(&x).reserved, usd(&x).available()), (d("20"), d("80")));
    // Bob offers 0.2 at 45; Alice's bid moved up to 45 trades 0.2 of it
    // and keeps 0.3 resting, holding 0.3 * 45.
    x.run(&limit("BTC-USD", 2, b, Side::Sell, "45", "0.2"))
        .unwrap();
    x.run(&amend(1, a, Some("45"), None)).unwrap();
    let alice = x.ledger.account(a).unwrap();
    assert_eq!(alice.fills.len(), 1);
    assert_eq!(alice.balance("USD").total, d("91"));
    assert_eq!(alice.balance("USD").reserved, d("13.5"));
    let open = x.books["BTC-USD"].order(1).unwrap();
    assert_eq!(open.remaining_quantity, d("0.3"));
    // A sell holds base: asking more of it than is there is refused.
    x.run(&limit("BTC-USD", 3, b, Side::Sell, "70", "0.5"))
        .unwrap();
    let err = x.run(&amend(3, b, None, Some("0.9"))).unwrap_err();
    assert!(err.starts_with("insufficient BTC"), "{err}");
    x.run(&amend(3, b, None, Some("0.1"))).unwrap();
    assert_eq!(
        x.ledger.account(b).unwrap().balance("BTC").reserved,
        d("0.1")
    );
}

fn ioc_buy(id: u64, account: u64, price: &str, qty: &str) -> Command {
    Command::Place(PlaceOrder {
        time_in_force: Some(orderbook::TimeInForce::ImmediateOrCancel),
        ..match limit("BTC-USD", id, account, Side::Buy, price, qty) {
            Command::Place(p) => p,
            _ => unreachable!(),
        }
    })
}

/// The finding that opened the order-path issue: a fill and an amendment
/// of the same order decided one after the other, before anything was
/// written. The amendment's extra is measured against what the order holds
/// after the fill, so amending back up needs the sold part again: refused
/// when it is not there, and never an order held for less than it costs.
#[test]
fn an_amendment_right_after_a_fill_needs_what_the_fill_took() {
    let mut x = Venue::new();
    let (a, b) = (x.open("alice"), x.open("bob"));
    x.apply(
        &x.ledger
            .claim_faucet(a, &faucet("1", "0.01", "1"), 2)
            .unwrap(),
    );
    x.apply(
        &x.ledger
            .claim_faucet(b, &faucet("10000", "1", "1"), 2)
            .unwrap(),
    );
    x.run(&limit("BTC-USD", 1, a, Side::Sell, "30000", "0.01"))
        .unwrap();
    // Bob's IOC takes 0.002; Alice has 0.008 BTC left, all of it held.
    x.run(&ioc_buy(2, b, "30000", "0.002")).unwrap();
    let btc = x.ledger.account(a).unwrap().balance("BTC");
    assert_eq!((btc.total, btc.reserved), (d("0.008"), d("0.008")));
    // Back up to 0.01 needs 0.002 more, which she does not have.
    let err = x.run(&amend(1, a, None, Some("0.01"))).unwrap_err();
    assert_eq!(err, "insufficient BTC: 0 available, 0.002 needed");
    // With 0.002 more deposited it is allowed, and held in full.
    x.apply(&[AccountEvent::FundsDeposited {
        account: a,
        asset: "BTC".into(),
        amount: d("0.002"),
        source: accounts::DepositSource::Faucet,
        at: 3,
    }]);
    x.run(&amend(1, a, None, Some("0.01"))).unwrap();
    let btc = x.ledger.account(a).unwrap().balance("BTC");
    assert_eq!((btc.total, btc.reserved), (d("0.01"), d("0.01")));
    // Filled in full, it pays exactly what it held.
    x.run(&ioc_buy(3, b, "30000", "0.01")).unwrap();
    let btc = x.ledger.account(a).unwrap().balance("BTC");
    assert_eq!((btc.total, btc.reserved), (d("0"), d("0")));
}

/// A log written before schema 3, in the JSON that version wrote: orders
/// held and settled funds with account events, trades had no fees. It
/// folds to the balances that version showed, and a trade whose settlement
/// a crash took away is settled once, as that version would have.
#[test]
fn a_log_written_before_fees_were_in_trades_folds_to_the_same_balances() {
    let account = |json: &str| AccountEvent::from_json(json.as_bytes()).unwrap();
    let market = |json: &str| Event::from_json(json).unwrap();
    let mut ledger = Ledger::new();
    for json in [
        r#"{"schema_version":1,"type":"AccountOpened","account":1,"username":"alice","password_hash":"h","at":1}"#,
        r#"{"schema_version":1,"type":"AccountOpened","account":2,"username":"bob","password_hash":"h","at":1}"#,
        r#"{"schema_version":1,"type":"FundsDeposited","account":1,"asset":"BTC","amount":"1","source":"faucet","at":2}"#,
        r#"{"schema_version":1,"type":"FundsDeposited","account":2,"asset":"USD","amount":"10000","source":"faucet","at":2}"#,
        r#"{"schema_version":1,"type":"FundsReserved","account":1,"symbol":"BTC-USD","order_id":1,"asset":"BTC","amount":"0.5","at":3}"#,
        r#"{"schema_version":1,"type":"FundsReserved","account":2,"symbol":"BTC-USD","order_id":2,"asset":"USD","amount":"22","at":4}"#,
        r#"{"schema_version":2,"type":"TradeSettled","account":1,"symbol":"BTC-USD","trade_id":1,"order_id":1,"role":"maker","side":"sell","price":"100","quantity":"0.2","paid_asset":"BTC","paid":"0.2","received_asset":"USD","received":"20","fee":"0.02","market_revision":2,"at":4}"#,
        r#"{"schema_version":2,"type":"ReservationChanged","account":1,"symbol":"BTC-USD","order_id":1,"asset":"BTC","change":"0.1","at":5}"#,
    ] {
        ledger.apply(&account(json));
    }
    let spec = Market::defaults().remove(0).spec;
    let log: Vec<Event> = [
        r#"{"schema_version":1,"type":"OrderAccepted","symbol":"BTC-USD","order_id":1,"account":1,"side":"sell","order_type":"limit","price":"100","quantity":"0.5","time_in_force":"GTC","post_only":false,"self_trade_prevention":"cancel_taker","at":3}"#,
        r#"{"schema_version":1,"type":"OrderAccepted","symbol":"BTC-USD","order_id":2,"account":2,"side":"buy","order_type":"limit","price":"110","quantity":"0.2","time_in_force":"GTC","post_only":false,"self_trade_prevention":"cancel_taker","at":4}"#,
        r#"{"schema_version":1,"type":"TradeExecuted","symbol":"BTC-USD","trade_id":1,"price":"100","quantity":"0.2","maker_order_id":1,"taker_order_id":2,"maker_account":1,"taker_account":2,"taker_side":"buy","executed_at":4}"#,
        r#"{"schema_version":1,"type":"OrderFilled","symbol":"BTC-USD","order_id":2,"account":2,"side":"buy","at":4}"#,
    ]
    .into_iter()
    .map(market)
    .collect();
    for (revision, e) in log.iter().enumerate() {
        ledger.apply_market(&spec, revision as u64, e).unwrap();
    }
    // A crash took Bob's settlement of trade 1 (and the release of his
    // order's rest) away: the settlement is due, once.
    let fees = Fees::default();
    let due: Vec<AccountEvent> = log
        .iter()
        .enumerate()
        .flat_map(|(r, e)| ledger.legacy_settlement(&spec, &fees, r as u64, e))
        .collect();
    assert_eq!(due.len(), 1, "{due:?}");
    assert_eq!(due[0].account(), 2);
    for e in &due {
        ledger.apply(e);
    }
    let again = log
        .iter()
        .enumerate()
        .flat_map(|(r, e)| ledger.legacy_settlement(&spec, &fees, r as u64, e));
    assert_eq!(again.count(), 0);
    // What that version showed: Alice 0.8 BTC with 0.3 on the book (the
    // extra a lost amendment held is not held: her order costs 0.3) and
    // 19.98 USD; Bob 9980 USD and 0.2 BTC less the 0.0004 taker fee.
    let alice = ledger.account(1).unwrap();
    assert_eq!(
        alice.balance("BTC"),
        accounts::Balance {
            total: d("0.8"),
            reserved: d("0.3")
        }
    );
    assert_eq!(alice.balance("USD").total, d("19.98"));
    let bob = ledger.account(2).unwrap();
    assert_eq!(
        bob.balance("USD"),
        accounts::Balance {
            total: d("9980"),
            reserved: d("0")
        }
    );
    assert_eq!(bob.balance("BTC").total, d("0.1996"));
    assert_eq!((bob.fills.len(), alice.fills.len()), (1, 1));
    // Their fills were settled in their own streams (the market's trade
    // has no fees), so each is kept whole however old it grows.
    assert_eq!(
        alice.fills.get(0).unwrap().written(),
        accounts::FillSource::Settled { index: 0 }
    );
    assert_eq!(
        alice
            .kept_fill(0, &alice.fills.get(0).unwrap())
            .map(|f| f.fee),
        Some(d("0.02"))
    );
    check_ledger(&ledger).unwrap();
    let mut book = Book::new(Market::defaults().remove(0));
    for e in &log {
        book.apply(e);
    }
    assert_eq!(book_violations(&ledger, &book), vec![]);
}

/// An account keeps its newest fills whole and only where the older ones
/// are written: each is the trade's side for it at that revision of the
/// market's stream, so it reads back the same from the log.
#[test]
fn old_fills_are_kept_as_where_they_are_written() {
    let mut x = Venue::new();
    let ids = ["alice", "bob"].map(|name| {
        let id = x.open(name);
        let grant = x.ledger.claim_faucet(id, &faucet("100", "0", "10"), 1);
        x.apply(&grant.unwrap());
        id
    });
    let extra = 5;
    let trades = accounts::RECENT_FILLS + extra;
    for i in 0..trades as u64 {
        x.run(&limit(
            "ETH-USD",
            2 * i + 1,
            ids[0],
            Side::Sell,
            "1",
            "0.001",
        ))
        .unwrap();
        x.run(&limit(
            "ETH-USD",
            2 * i + 2,
            ids[1],
            Side::Buy,
            "1",
            "0.001",
        ))
        .unwrap();
    }
    let spec = x.books["ETH-USD"].market().spec.clone();
    let log = &x.log["ETH-USD"];
    for id in ids {
        let a = x.ledger.account(id).unwrap();
        assert_eq!(a.fills.len(), trades);
        assert_eq!(a.recent_fills.len(), accounts::RECENT_FILLS);
        for (i, r) in a.fills.iter() {
            let accounts::FillSource::Trade { market_revision } = r.written() else {
                panic!("fill {i} of {id} is not in its market: {r:?}");
            };
            let Event::TradeExecuted(t) = &log[market_revision as usize] else {
                panic!(
                    "fill {i} of {id} points at {:?}",
                    log[market_revision as usize]
                );
            };
            let [maker, taker] = accounts::fills(&spec, market_revision, t);
            let fill = if maker.account == id { maker } else { taker };
            assert_eq!(
                (fill.trade_id, fill.order_id, fill.at, &*fill.symbol),
                (r.trade_id, r.order_id, r.at, &*r.symbol)
            );
            match a.kept_fill(i, &r) {
                Some(kept) => {
                    assert!(i >= extra, "fill {i} of {id} is kept");
                    assert_eq!(kept, &fill);
                }
                None => assert!(i < extra, "fill {i} of {id} is not kept"),
            }
        }
    }
}

/// The checks can fail: a hold that disagrees with its book, a reserved
/// that is not the sum of the holds, and money from nowhere are each found.
#[test]
fn the_invariant_checks_find_what_is_wrong() {
    let mut x = Venue::new();
    let a = x.open("alice");
    x.apply(
        &x.ledger
            .claim_faucet(a, &faucet("100", "1", "1"), 2)
            .unwrap(),
    );
    x.run(&limit("BTC-USD", 1, a, Side::Buy, "50", "1"))
        .unwrap();
    let spec = x.books["BTC-USD"].market().spec.clone();
    // The book forgets the order (its cancel folded into the book only).
    let mut book = x.books["BTC-USD"].clone();
    let cancel = book.decide(&Command::Cancel(orderbook::CancelOrder {
        symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
        order_id: 1,
        account: a,
        at: 20,
    }));
    for e in &cancel {
        book.apply(e);
    }
    let found = book_violations(&x.ledger, &book);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].account, found[0].asset.as_deref()),
        (Some(a), Some("USD"))
    );
    // A deposit the deposits never counted: money from nowhere.
    let mut forged = x.ledger.clone();
    let trade = Event::from_json(r#"{"schema_version":3,"type":"TradeExecuted","symbol":"BTC-USD","trade_id":1,"price":"50","quantity":"1","maker_order_id":1,"taker_order_id":9,"maker_account":1,"taker_account":7,"taker_side":"sell","executed_at":30,"fees":{"maker":"0","taker":"0"}}"#).unwrap();
    let next = x.log["BTC-USD"].len() as u64;
    forged.apply_market(&spec, next, &trade).unwrap();
    let found = ledger_violations(&forged);
    assert!(
        found
            .iter()
            .any(|v| v.asset.as_deref() == Some("BTC") && v.account.is_none()),
        "{found:?}"
    );
}

fn key(account: u64, id: &str) -> accounts::api_key::ApiKey {
    use accounts::api_key::{ApiKey, KeyCredential, Scope};
    ApiKey {
        key_id: id.to_string(),
        account,
        label: "bot".to_string(),
        credential: KeyCredential::Ed25519 {
            public_key: "AAAA".to_string(),
        },
        scopes: vec![Scope::Read, Scope::Trade],
        allowed_ips: vec!["10.0.0.0/8".to_string(), "2001:db8::1".to_string()],
        expires_at: Some(100),
        created_at: 10,
    }
}

#[test]
fn api_keys_are_created_checked_and_revoked_by_events_that_fold_back() {
    let mut ledger = Ledger::new();
    let opened = ledger.open_account("alice", "hash", 1).unwrap();
    ledger.apply(&opened);
    let alice = opened.account();
    // Each rule of a key, refused with its reason.
    let mut bad = key(alice, "k0");
    bad.label = String::new();
    assert_eq!(
        ledger.create_api_key(bad),
        Err(AccountError::InvalidKeyLabel)
    );
    let mut bad = key(alice, "k0");
    bad.scopes.clear();
    assert_eq!(ledger.create_api_key(bad), Err(AccountError::NoKeyScope));
    let mut bad = key(alice, "k0");
    bad.allowed_ips = vec!["10.0.0.0/33".to_string()];
    assert!(matches!(
        ledger.create_api_key(bad),
        Err(AccountError::InvalidAllowedIp(_))
    ));
    let mut bad = key(alice, "k0");
    bad.expires_at = Some(5);
    assert_eq!(
        ledger.create_api_key(bad),
        Err(AccountError::KeyExpiryPassed)
    );
    assert_eq!(
        ledger.create_api_key(key(99, "k0")),
        Err(AccountError::UnknownAccount)
    );
    // A good key goes through the log's JSON and folds in.
    let created = ledger.create_api_key(key(alice, "k1")).unwrap();
    let json = created.to_json();
    let read = AccountEvent::from_json(json.as_bytes()).unwrap();
    assert_eq!(read, created);
    ledger.apply(&read);
    let record = ledger.api_key("k1").unwrap();
    assert_eq!(record.key, key(alice, "k1"));
    assert_eq!(record.revoked_at, None);
    assert_eq!(
        ledger.create_api_key(key(alice, "k1")),
        Err(AccountError::KeyIdTaken)
    );
    // Only its owner revokes it, once.
    assert_eq!(
        ledger.revoke_api_key(alice + 1, "k1", 20),
        Err(AccountError::UnknownKey)
    );
    let revoked = ledger.revoke_api_key(alice, "k1", 20).unwrap().unwrap();
    ledger.apply(&AccountEvent::from_json(revoked.to_json().as_bytes()).unwrap());
    assert_eq!(ledger.api_key("k1").unwrap().revoked_at, Some(20));
    assert_eq!(ledger.revoke_api_key(alice, "k1", 30), Ok(None));
    assert_eq!(ledger.api_keys_of(alice).len(), 1);
    // At most MAX_KEYS_PER_ACCOUNT live keys; revoked ones do not count.
    for i in 0..accounts::api_key::MAX_KEYS_PER_ACCOUNT {
        let e = ledger.create_api_key(key(alice, &format!("n{i}"))).unwrap();
        ledger.apply(&e);
    }
    assert_eq!(
        ledger.create_api_key(key(alice, "one-more")),
        Err(AccountError::TooManyKeys)
    );
}

/// Every change to an account is counted in `Account::changes`: a reader
/// that kept what it made of an account (a socket's last view of it)
/// skips building it again while the count has not moved.
#[test]
fn every_change_to_an_account_is_counted() {
    let mut x = Venue::with_traders(4);
    let uncounted = |a: &accounts::Account| {
        let mut a = a.clone();
        a.changes = 0;
        a
    };
    let mut flow = Flow::new(11, Market::defaults());
    let mut moved = 0;
    for _ in 0..3_000 {
        let before: BTreeMap<u64, accounts::Account> =
            x.ledger.accounts().map(|a| (a.id, a.clone())).collect();
        let _ = x.run(&flow.next_command());
        for a in x.ledger.accounts() {
            let b = &before[&a.id];
            if uncounted(a) != uncounted(b) {
                moved += 1;
                assert!(a.changes > b.changes, "{b:?} became {a:?} uncounted");
            } else {
                assert!(a.changes >= b.changes);
            }
        }
    }
    assert!(moved > 1_000, "only {moved} changes");
}
