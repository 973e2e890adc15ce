//! The ledger's rules, driven the way the exchange drives it: reserve, let
//! the book decide, settle each market event at its revision.

use std::collections::{BTreeMap, HashMap};

use accounts::invariants::check_ledger;
use accounts::{
    AccountError, AccountEvent, FaucetGrant, Fees, Ledger, Role, amend_cost, order_cost,
};
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

/// One process's worth of exchange: books, the ledger and every market
/// event's revision, with no I/O.
struct Venue {
    books: HashMap<String, Book>,
    revisions: HashMap<String, u64>,
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
            revisions: HashMap::new(),
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

    fn open(&mut self, name: &str) -> u64 {
        let e = self.ledger.open_account(name, "hash", 1).unwrap();
        self.apply(std::slice::from_ref(&e));
        e.account()
    }

    /// Runs a command as the server does; returns the book's events.
    fn run(&mut self, command: &Command) -> Result<Vec<Event>, String> {
        let symbol = command.symbol().to_string();
        let book = &self.books[&symbol];
        let decided = book.decide(command);
        if let Some(Event::OrderRejected(r)) = decided.first() {
            return Err(r.reason.to_string());
        }
        if let Command::Place(p) = command {
            let (asset, amount) = order_cost(&book.market().spec, p, &decided);
            let e = self
                .ledger
                .reserve(p.account, &symbol, p.order_id, &asset, amount, p.at)
                .map_err(|e| e.to_string())?;
            self.apply(&[e]);
        }
        // An amendment that needs more holds it before the book sees it.
        if let Some(first @ Event::OrderAmended(a)) = decided.first() {
            let spec = &self.books[&symbol].market().spec;
            let (_, need) = amend_cost(spec, first).expect("an amendment has a cost");
            let more = self
                .ledger
                .reserve_more(a.account, &symbol, a.order_id, need, a.at)
                .map_err(|e| e.to_string())?;
            self.apply(&Vec::from_iter(more));
        }
        let spec = self.books[&symbol].market().spec.clone();
        for event in &decided {
            self.books.get_mut(&symbol).unwrap().apply(event);
            let rev = self.revisions.entry(symbol.clone()).or_insert(0);
            let revision = *rev;
            *rev += 1;
            self.log
                .entry(symbol.clone())
                .or_default()
                .push(event.clone());
            let settled = self.ledger.settle(&spec, &self.fees, revision, event);
            self.apply(&settled);
        }
        Ok(decided)
    }
}

fn limit(symbol: &str, id: u64, account: u64, side: Side, price: &str, qty: &str) -> Command {
    Command::Place(PlaceOrder {
        symbol: orderbook::Symbol::new(symbol),
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
    assert_eq!(bob.trades[0].role, Role::Taker);
    assert_eq!(bob.trades[0].fee, d("0.0004"));
    assert_eq!(x.ledger.fees["USD"], d("0.02"));
    assert_eq!(x.ledger.fees["BTC"], d("0.0004"));
    // Cancelling releases Alice's remaining 0.3 BTC.
    let cancel = Command::Cancel(orderbook::CancelOrder {
        symbol: orderbook::Symbol::new("BTC-USD"),
        order_id: 1,
        account: a,
        at: 50,
    });
    x.run(&cancel).unwrap();
    let alice = x.ledger.account(a).unwrap();
    assert_eq!(alice.balance("BTC").reserved, d("0"));
    assert!(alice.reservations.is_empty());
}

#[test]
fn settling_a_market_log_twice_changes_nothing() {
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
    for (rev, e) in x.log["BTC-USD"].iter().enumerate() {
        assert!(
            x.ledger.settle(&spec, &x.fees, rev as u64, e).is_empty(),
            "{e:?}"
        );
    }
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
    let mut x = Venue::new();
    for i in 1..=6 {
        let id = x.open(&format!("trader{i}"));
        x.apply(
            &x.ledger
                .claim_faucet(id, &faucet("60", "0.004", "0.04"), 1)
                .unwrap(),
        );
    }
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
    let trades: usize = x.ledger.accounts().map(|a| a.trades.len()).sum();
    assert!(trades > 500, "{trades} fills");
    // Every open order still holds a reservation and nothing else does.
    for (symbol, book) in &x.books {
        let mut open: Vec<_> = book
            .resting_orders()
            .iter()
            .map(|o| (o.account, o.order_id))
            .collect();
        let mut held = x.ledger.reservations(symbol);
        open.sort();
        held.sort();
        assert_eq!(open, held, "{symbol}");
        // And each holds at least what the rest of it can still cost.
        let spec = book.market().spec.clone();
        for o in book.resting_orders() {
            let r =
                &x.ledger.account(o.account).unwrap().reservations[&(symbol.clone(), o.order_id)];
            let need = match o.side {
                Side::Buy => o.price * o.remaining_quantity,
                Side::Sell => o.remaining_quantity,
            };
            assert!(r.amount >= need, "{symbol} order {}: {r:?}", o.order_id);
            let asset = if o.side == Side::Buy {
                &spec.quote
            } else {
                &spec.base
            };
            assert_eq!(&r.asset, asset);
        }
    }
}

fn amend(id: u64, account: u64, price: Option<&str>, qty: Option<&str>) -> Command {
    Command::Amend(orderbook::AmendOrder {
        symbol: orderbook::Symbol::new("BTC-USD"),
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
    assert_eq!(alice.trades.len(), 1);
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
    // Settling the log again gives nothing twice.
    let spec = x.books["BTC-USD"].market().spec.clone();
    for (rev, e) in x.log["BTC-USD"].iter().enumerate() {
        assert!(
            x.ledger.settle(&spec, &x.fees, rev as u64, e).is_empty(),
            "{e:?}"
        );
    }
}
