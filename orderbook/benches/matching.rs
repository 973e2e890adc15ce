//! Matching-engine benchmarks (run: `cargo bench -p orderbook --bench matching`).
//!
//! Workload 1 is Liquibook's: alternating buy and sell limit orders, buys at
//! 1880 + r%10 and sells at 1884 + r%10, quantity (r%10 + 1) * 100; about
//! half the flow trades. It runs through our book (validating decimals and
//! emitting events) and through the `lobster` crate (integers, no events).
//!
//! Workload 2 is exchange-core's mix on a book of about 1,000 resting orders
//! over about 750 price levels: 9% GTC, 3% IOC, 6% cancel, 82% amend-price.
//! Besides throughput it prints per-command latency percentiles.

use std::hint::black_box;
use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput};
use orderbook::sim::Rng;
use orderbook::*;

const ORDERS: u64 = 100_000;

fn market() -> Market {
    Market::new(MarketSpec {
        symbol: "BTC-USD".into(),
        base: "BTC".into(),
        quote: "USD".into(),
        tick_size: Decimal::ONE,
        lot_size: Decimal::ONE,
        min_quantity: Decimal::ONE,
    })
    .expect("valid market")
}

use rust_decimal::Decimal;

/// Workload 1 as (buy?, price, quantity) triples.
fn liquibook_flow() -> Vec<(bool, u64, u64)> {
    let mut rng = Rng::new(42);
    (0..ORDERS)
        .map(|i| {
            let buy = i % 2 == 0;
            let price = if buy { 1880 } else { 1884 } + rng.below(10);
            (buy, price, (rng.below(10) + 1) * 100)
        })
        .collect()
}

fn place(m: &Market, id: u64, side: Side, price: u64, qty: u64, tif: TimeInForce) -> Command {
    Command::Place(PlaceOrder {
        client_order_id: None,
        symbol: m.symbol,
        order_id: id,
        account: id % 1_000,
        side,
        order_type: OrderType::Limit,
        price: Some(Decimal::from(price)),
        quantity: Some(Decimal::from(qty)),
        quote_amount: None,
        time_in_force: Some(tif),
        post_only: false,
        self_trade_prevention: SelfTradePrevention::CancelTaker,
        at: id,
        trigger: None,
    })
}

fn workload1(c: &mut Criterion) {
    let m = market();
    let flow = liquibook_flow();
    let commands: Vec<Command> = flow
        .iter()
        .enumerate()
        .map(|(i, &(buy, p, q))| {
            let side = if buy { Side::Buy } else { Side::Sell };
            place(&m, i as u64 + 1, side, p, q, TimeInForce::GoodTillCancelled)
        })
        .collect();
    let mut group = c.benchmark_group("workload1_liquibook");
    group.throughput(Throughput::Elements(ORDERS));
    group.sample_size(20);
    group.bench_function("ours_with_events", |b| {
        b.iter_batched(
            || Book::new(m.clone()),
            |mut book| {
                let mut out = Vec::with_capacity(64);
                let mut events = 0usize;
                for cmd in &commands {
                    out.clear();
                    book.execute_into(cmd, &mut out);
                    events += out.len();
                }
                black_box((book, events))
            },
            BatchSize::LargeInput,
        )
    });
    group.bench_function("lobster", |b| {
        b.iter_batched(
            lobster::OrderBook::default,
            |mut book| {
                for (i, &(buy, price, qty)) in flow.iter().enumerate() {
                    let side = if buy {
                        lobster::Side::Bid
                    } else {
                        lobster::Side::Ask
                    };
                    black_box(book.execute(lobster::OrderType::Limit {
                        id: i as u128 + 1,
                        side,
                        qty,
                        price,
                    }));
                }
                black_box(book)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Builds workload 2: a seeded book and a command stream, generated against a
/// live book so cancels and amends name orders that really rest.
fn exchange_core_flow() -> (Book, Vec<Command>) {
    let m = market();
    let mid = 100_000u64;
    let mut rng = Rng::new(7);
    let mut book = Book::new(m.clone());
    let mut live: Vec<(u64, Side)> = Vec::new();
    let mut next_id = 1u64;
    let mut out = Vec::new();
    let track = |out: &Vec<Event>, live: &mut Vec<(u64, Side)>| {
        for e in out {
            if let Event::OrderFilled(OrderFilled { order_id, .. })
            | Event::OrderCancelled(OrderCancelled { order_id, .. }) = e
                && let Some(i) = live.iter().position(|(id, _)| id == order_id)
            {
                live.swap_remove(i);
            }
        }
    };
    let resting_price = |rng: &mut Rng, side: Side| match side {
        Side::Buy => mid - 1 - rng.below(800),
        Side::Sell => mid + 1 + rng.below(800),
    };
    // Seed about 1,000 resting orders over about 750 levels.
    for _ in 0..1_000 {
        let side = if rng.chance(50) {
            Side::Buy
        } else {
            Side::Sell
        };
        let price = resting_price(&mut rng, side);
        let cmd = place(
            &m,
            next_id,
            side,
            price,
            1 + rng.below(10),
            TimeInForce::GoodTillCancelled,
        );
        out.clear();
        book.execute_into(&cmd, &mut out);
        live.push((next_id, side));
        next_id += 1;
    }
    let start = book.clone();
    let mut commands = Vec::with_capacity(ORDERS as usize);
    for i in 0..ORDERS {
        let pick = rng.below(100);
        let cmd = if pick < 9 || live.is_empty() {
            let side = if rng.chance(50) {
                Side::Buy
            } else {
                Side::Sell
            };
            let c = place(
                &m,
                next_id,
                side,
                resting_price(&mut rng, side),
                1 + rng.below(10),
                TimeInForce::GoodTillCancelled,
            );
            live.push((next_id, side));
            next_id += 1;
            c
        } else if pick < 12 {
            let side = if rng.chance(50) {
                Side::Buy
            } else {
                Side::Sell
            };
            let price = match side {
                Side::Buy => mid + 2,
                Side::Sell => mid - 2,
            };
            let c = place(
                &m,
                next_id,
                side,
                price,
                1 + rng.below(5),
                TimeInForce::ImmediateOrCancel,
            );
            next_id += 1;
            c
        } else {
            let (order_id, side) = live[rng.below(live.len() as u64) as usize];
            if pick < 18 {
                Command::Cancel(CancelOrder {
                    symbol: m.symbol,
                    order_id,
                    account: order_id % 1_000,
                    at: i,
                })
            } else {
                Command::Amend(AmendOrder {
                    symbol: m.symbol,
                    order_id,
                    account: order_id % 1_000,
                    price: Some(Decimal::from(resting_price(&mut rng, side))),
                    quantity: None,
                    at: i,
                    trigger_price: None,
                })
            }
        };
        out.clear();
        book.execute_into(&cmd, &mut out);
        track(&out, &mut live);
        commands.push(cmd);
    }
    (start, commands)
}

fn workload2(c: &mut Criterion) {
    let (start, commands) = exchange_core_flow();
    let mut group = c.benchmark_group("workload2_exchange_core");
    group.throughput(Throughput::Elements(commands.len() as u64));
    group.sample_size(20);
    group.bench_function("ours_with_events", |b| {
        b.iter_batched(
            || start.clone(),
            |mut book| {
                let mut out = Vec::with_capacity(64);
                for cmd in &commands {
                    out.clear();
                    book.execute_into(cmd, &mut out);
                }
                black_box(book)
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

/// Per-command latency over the workload-2 stream, repeated to fill the
/// tails; printed as percentiles.
fn workload2_latency() {
    let (start, commands) = exchange_core_flow();
    let mut samples = Vec::with_capacity(commands.len() * 10);
    // The same samples by what the command was and whether it traded:
    // which of them make the tail.
    let mut kinds: [(&str, Vec<u64>); 5] = [
        ("place, resting", Vec::new()),
        ("place, trading", Vec::new()),
        ("cancel", Vec::new()),
        ("amend, resting", Vec::new()),
        ("amend, trading", Vec::new()),
    ];
    let mut out = Vec::with_capacity(64);
    for _ in 0..10 {
        let mut book = start.clone();
        for cmd in &commands {
            out.clear();
            let t = Instant::now();
            book.execute_into(cmd, &mut out);
            let took = t.elapsed().as_nanos() as u64;
            samples.push(took);
            let traded = out.iter().any(|e| matches!(e, Event::TradeExecuted(_)));
            let kind = match cmd {
                Command::Place(_) => usize::from(traded),
                Command::Cancel(_) => 2,
                Command::Amend(_) => 3 + usize::from(traded),
            };
            kinds[kind].1.push(took);
        }
        black_box(&book);
    }
    let pct = |samples: &[u64], p: f64| {
        samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
    };
    samples.sort_unstable();
    println!(
        "workload2_exchange_core latency over {} commands: p50 {} ns, p99 {} ns, p99.9 {} ns (resting orders at start: {}, levels: {})",
        samples.len(),
        pct(&samples, 0.50),
        pct(&samples, 0.99),
        pct(&samples, 0.999),
        start.resting_orders().len(),
        start.depth(usize::MAX).bids.len() + start.depth(usize::MAX).asks.len(),
    );
    let timer = {
        let t = Instant::now();
        for _ in 0..1_000_000 {
            black_box(Instant::now());
        }
        t.elapsed().as_nanos() as f64 / 1_000_000.0
    };
    for (kind, mut taken) in kinds.into_iter().filter(|(_, t)| !t.is_empty()) {
        taken.sort_unstable();
        println!(
            "  {kind}: {:.1}% of commands, p50 {} ns, p99 {} ns",
            100.0 * taken.len() as f64 / samples.len() as f64,
            pct(&taken, 0.50),
            pct(&taken, 0.99),
        );
    }
    println!("  (one reading of the clock takes {timer:.0} ns; each sample holds two)");
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    workload1(&mut c);
    workload2(&mut c);
    c.final_summary();
    workload2_latency();
}
