//! Simulation: seeded random order flow across several markets, run with
//! every invariant checked after every command.
//!
//! The generator is deterministic (its own SplitMix64, seeded by the caller),
//! so a seed names a run exactly. When a rule breaks, the run stops and hands
//! back the commands that led there so the failure replays as a test.

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::book::Book;
use crate::command::{AmendOrder, CancelOrder, Command, PlaceOrder};
use crate::event::Event;
use crate::invariants::{BookViolation, OrderAudit, check_book};
use crate::market::{Market, Symbol};
use crate::order::{
    OrderId, OrderType, SelfTradePrevention, Side, TimeInForce, Trigger, TriggerKind,
};

/// A small, fast, deterministic pseudo-random generator (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Generates plausible order flow: limit orders around a drifting mid price,
/// IOC, FOK, post-only and market orders (some sized by quote amount),
/// stop and take-profit orders (market and limit) with triggers near the
/// mid, cancels and amends of live orders (a held order's trigger too),
/// from a handful of accounts so that self-trade prevention is exercised
/// too.
pub struct Flow {
    rng: Rng,
    markets: Vec<Market>,
    mids: Vec<u64>,
    live: Vec<Vec<(OrderId, u64)>>,
    next_id: Vec<OrderId>,
    clock: u64,
    stops: bool,
}

impl Flow {
    pub fn new(seed: u64, markets: Vec<Market>) -> Flow {
        let n = markets.len();
        Flow {
            rng: Rng::new(seed),
            mids: vec![10_000; n],
            live: vec![Vec::new(); n],
            next_id: vec![1; n],
            clock: 1_700_000_000_000_000,
            markets,
            stops: true,
        }
    }

    /// The same flow with or without stop and take-profit orders (a
    /// consumer that does not settle them yet leaves them out).
    pub fn with_stops(mut self, stops: bool) -> Flow {
        self.stops = stops;
        self
    }

    pub fn markets(&self) -> &[Market] {
        &self.markets
    }

    /// The next command.
    pub fn next_command(&mut self) -> Command {
        let r = &mut self.rng;
        let mi = r.below(self.markets.len() as u64) as usize;
        self.clock += 1 + r.below(1_000);
        let at = self.clock;
        let m = &self.markets[mi];
        let symbol = m.symbol;
        let account = 1 + r.below(6);
        // Let the mid wander so levels come and go.
        let mid = &mut self.mids[mi];
        *mid = (*mid + r.below(21)).saturating_sub(10).max(100);
        let mid = *mid;
        let live = &mut self.live[mi];
        let pick = r.below(100);
        if pick < 14 && !live.is_empty() {
            let (order_id, _) = live.swap_remove(r.below(live.len() as u64) as usize);
            // Sometimes the wrong account asks: that must be rejected.
            let account = if r.chance(90) {
                account_of(order_id)
            } else {
                account
            };
            return Command::Cancel(CancelOrder {
                symbol,
                order_id,
                account,
                at,
            });
        }
        if pick < 30 && !live.is_empty() {
            let (order_id, price) = live[r.below(live.len() as u64) as usize];
            let new_price = if r.chance(50) {
                Some(m.price(jitter(r, price, 8)))
            } else {
                None
            };
            let quantity = if new_price.is_none() || r.chance(30) {
                Some(m.quantity(m.min_lots() * (1 + r.below(12))))
            } else {
                None
            };
            // Stops were placed with their trigger as the remembered price.
            let trigger_price = (self.stops && r.chance(20)).then(|| m.price(jitter(r, price, 6)));
            return Command::Amend(AmendOrder {
                symbol,
                order_id,
                account: account_of(order_id),
                price: new_price,
                quantity,
                trigger_price,
                at,
            });
        }
        let n = self.next_id[mi];
        let order_id = n * 16 + account;
        self.next_id[mi] += 1;
        // A third of the orders carry a client id from a small set, so an
        // account sometimes reuses one still open (refused) or freed.
        let client_order_id = n.is_multiple_of(3).then(|| {
            format!("leg-{}", n % 5)
                .parse()
                .expect("a valid client order id")
        });
        let side = if r.chance(50) { Side::Buy } else { Side::Sell };
        let stp = match r.below(3) {
            0 => SelfTradePrevention::CancelTaker,
            1 => SelfTradePrevention::CancelMaker,
            _ => SelfTradePrevention::CancelBoth,
        };
        let lots = m.min_lots() * (1 + r.below(10));
        let mut place = PlaceOrder {
            client_order_id,
            symbol,
            order_id,
            account,
            side,
            order_type: OrderType::Limit,
            price: None,
            quantity: Some(m.quantity(lots)),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: stp,
            trigger: None,
            at,
        };
        let kind = r.below(100);
        if self.stops && kind >= 94 {
            // A stop or take-profit a few ticks from the mid (some already
            // reached, to be refused), entering as a market or limit order.
            let kind = if r.chance(60) {
                TriggerKind::Stop
            } else {
                TriggerKind::TakeProfit
            };
            let away = 1 + r.below(8);
            let above = kind.fires_rising(side) != r.chance(10);
            let trigger = if above {
                mid + away
            } else {
                mid.saturating_sub(away).max(1)
            };
            place.trigger = Some(Trigger {
                kind,
                price: m.price(trigger),
            });
            if r.chance(50) {
                place.order_type = OrderType::Market;
                if side == Side::Buy && r.chance(50) {
                    place.quantity = None;
                    place.quote_amount = Some(m.quote_amount(u128::from(mid) * u128::from(lots)));
                }
            } else {
                let slip = r.below(4);
                let price = match side {
                    Side::Buy => trigger + slip,
                    Side::Sell => trigger.saturating_sub(slip).max(1),
                };
                place.price = Some(m.price(price));
                if r.chance(20) {
                    place.time_in_force = Some(TimeInForce::ImmediateOrCancel);
                }
            }
            live.push((order_id, trigger));
        } else if kind < 8 {
            place.order_type = OrderType::Market;
            if r.chance(40) {
                place.quantity = None;
                place.quote_amount = Some(m.quote_amount(u128::from(mid) * u128::from(lots)));
            }
        } else {
            // Buys mostly below the mid and sells above, with some crossing.
            let offset = r.below(12);
            let price = match side {
                Side::Buy => (mid + 3).saturating_sub(offset).max(1),
                Side::Sell => mid.saturating_sub(3) + offset,
            };
            place.price = Some(m.price(price.max(1)));
            match kind {
                8..=15 => place.time_in_force = Some(TimeInForce::ImmediateOrCancel),
                16..=20 => place.time_in_force = Some(TimeInForce::FillOrKill),
                21..=27 => place.post_only = true,
                28 => place.price = Some(m.price(price) + m.spec.tick_size / Decimal::TWO),
                _ => {}
            }
            live.push((order_id, price));
        }
        Command::Place(place)
    }
}

/// Order ids the flow makes end in their account (id = n * 16 + account).
fn account_of(id: OrderId) -> u64 {
    id % 16
}

fn jitter(r: &mut Rng, price: u64, spread: u64) -> u64 {
    (price + r.below(2 * spread + 1))
        .saturating_sub(spread)
        .max(1)
}

/// A rule broke: the commands that led there, and the events they made.
#[derive(Debug)]
pub struct SimulationFailure {
    pub violation: BookViolation,
    /// Every command up to and including the one that broke the rule.
    pub commands: Vec<Command>,
    /// Every event decided up to that point.
    pub events: Vec<Event>,
}

/// What a checked run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub commands: u64,
    pub events: u64,
    pub trades: u64,
    pub rejections: u64,
    /// Stop and take-profit orders that fired.
    pub stops_fired: u64,
}

/// Runs commands through one book per market and checks every invariant
/// after each command; at the end, replays the events of each market (whole,
/// and from a snapshot taken halfway) and compares with the live book.
pub struct CheckedRun {
    books: HashMap<Symbol, (Book, OrderAudit)>,
    commands: Vec<Command>,
    events: Vec<Event>,
    snapshots: HashMap<Symbol, (crate::snapshot::Snapshot, usize)>,
    stats: Stats,
}

impl CheckedRun {
    /// A run over `markets`. It keeps every command and event, so a failure
    /// can be dumped and the final replay checks have the whole log.
    pub fn new(markets: &[Market]) -> CheckedRun {
        CheckedRun {
            books: markets
                .iter()
                .map(|m| (m.symbol, (Book::new(m.clone()), OrderAudit::new())))
                .collect(),
            commands: Vec::new(),
            events: Vec::new(),
            snapshots: HashMap::new(),
            stats: Stats::default(),
        }
    }

    /// Runs one command with every check.
    pub fn step(&mut self, command: Command) -> Result<(), SimulationFailure> {
        self.commands.push(command.clone());
        let Some((book, ledger)) = self.books.get_mut(command.symbol()) else {
            return Err(self.fail(BookViolation(format!("no market {}", command.symbol()))));
        };
        let events = book.decide(&command);
        // Priority is judged against the book as the command found it.
        let mut checked = ledger.record(book, &command, &events);
        for e in &events {
            book.apply(e);
        }
        checked = checked
            .and_then(|()| check_book(book))
            .and_then(|()| ledger.check_open_orders(book));
        self.stats.commands += 1;
        self.stats.events += events.len() as u64;
        for e in &events {
            match e {
                Event::TradeExecuted(_) => self.stats.trades += 1,
                Event::OrderRejected(_) => self.stats.rejections += 1,
                Event::StopTriggered(_) => self.stats.stops_fired += 1,
                _ => {}
            }
        }
        self.events.extend(events);
        checked.map_err(|v| self.fail(v))
    }

    /// Takes a snapshot of every book now, to be checked at [`finish`].
    pub fn snapshot_now(&mut self) {
        for (symbol, (book, _)) in &self.books {
            self.snapshots
                .insert(*symbol, (book.snapshot(), self.events.len()));
        }
    }

    /// The final checks: replaying each market's events gives the same
    /// book, and so does its snapshot plus the events after it.
    pub fn finish(mut self) -> Result<Stats, SimulationFailure> {
        for (symbol, (book, _)) in &self.books {
            let of_market = |e: &&Event| e.symbol() == symbol;
            let replayed =
                Book::replay(book.market().clone(), self.events.iter().filter(of_market));
            if let Err(v) = same(book, &replayed, "replay") {
                return Err(self.fail(v));
            }
            if let Some((snap, at)) = self.snapshots.get(symbol) {
                let mut restored = match Book::from_snapshot(book.market().clone(), snap) {
                    Ok(b) => b,
                    Err(e) => return Err(self.fail(BookViolation(e.to_string()))),
                };
                for e in self.events[*at..].iter().filter(of_market) {
                    restored.apply(e);
                }
                if let Err(v) = same(book, &restored, "snapshot + replay") {
                    return Err(self.fail(v));
                }
            }
        }
        Ok(std::mem::take(&mut self.stats))
    }

    fn fail(&mut self, violation: BookViolation) -> SimulationFailure {
        SimulationFailure {
            violation,
            commands: std::mem::take(&mut self.commands),
            events: std::mem::take(&mut self.events),
        }
    }
}

fn same(live: &Book, other: &Book, how: &str) -> Result<(), BookViolation> {
    if live.resting_orders() != other.resting_orders()
        || live.stop_orders() != other.stop_orders()
        || live.last_price() != other.last_price()
        || live.last_trade_id() != other.last_trade_id()
        || live.last_order_id() != other.last_order_id()
        || live.events_applied() != other.events_applied()
    {
        return Err(BookViolation(format!(
            "{how} of {} differs from the live book",
            live.symbol()
        )));
    }
    Ok(())
}

/// Runs `orders` commands of seeded flow with every check.
pub fn simulate(seed: u64, orders: u64, markets: Vec<Market>) -> Result<Stats, SimulationFailure> {
    let mut flow = Flow::new(seed, markets);
    let mut run = CheckedRun::new(flow.markets());
    for i in 0..orders {
        if i == orders / 2 {
            run.snapshot_now();
        }
        run.step(flow.next_command())?;
    }
    run.finish()
}

/// Runs given commands (a dumped failure, say) with every check.
pub fn check_commands(
    markets: &[Market],
    commands: impl IntoIterator<Item = Command>,
) -> Result<Stats, SimulationFailure> {
    let mut run = CheckedRun::new(markets);
    for c in commands {
        run.step(c)?;
    }
    run.finish()
}
