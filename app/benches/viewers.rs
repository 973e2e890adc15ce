//! Live market data to many viewers, in one process: trade-to-viewer
//! latency, deliveries per second and memory per viewer while the matching
//! engine runs, and the same latency while other viewers resume from far
//! back in the market's history.
//!
//! The exchange runs with its embedded store; N viewer feeds (each with its
//! own reader of the server's one live subscription, exactly as a
//! browser's websocket gets) watch BTC-USD and two traders cross orders
//! there, while the simulator's bots trade every other market (so the
//! engine, the store, the accounts task and the tail carry the demo's
//! load; BTC-USD is left to the two traders so every trade the viewers get
//! is one whose sending time is known). Latency runs from the moment the
//! crossing order is sent to the moment a viewer's feed yields the trade.
//!
//! ```sh
//! VIEWERS=1000,10000,50000 TRADES=10 EVERY_MS=1000 cargo bench -p app --features ssr --bench viewers
//! BACKLOG=1000000 RESUMERS=100 VIEWERS=10000 TRADES=10 EVERY_MS=1000 cargo bench -p app --features ssr --bench viewers
//! ```
//!
//! Defaults: VIEWERS=1000,10000, TRADES=100, EVERY_MS=5 (the pause after
//! each trade), SIMULATE_MS=250 (how often the bots act, as the demo's
//! `--simulate-every-ms`; 0: no bots), BACKLOG=0 (events of history written to BTC-USD before the
//! exchange starts), RESUMERS=0, REPLAY_BYTES (the resumers' replay bound,
//! `FeedLimits::replay_bytes`; a list measures each). Each viewer count
//! gets a fresh exchange; with resumers it is measured alone, then while
//! RESUMERS more viewers resume from the market's first event. Memory per
//! viewer is the growth of resident memory while the viewers connect.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use app::api::{FeedMessage, FeedPosition, FeedRequest};
use app::server::feed_limits::FeedLimits;
use app::server::{Connection, Exchange, Settings};
use futures::{SinkExt, StreamExt};
use orderbook::OrderTerms;
use orderbook::{AccountId, Side};
use rust_decimal::Decimal;
use tokio::task::JoinHandle;

mod figures;
mod history;
use figures::{env_list, percentile};
use history::{SYMBOL, write_history};

fn order(side: Side) -> OrderTerms {
    OrderTerms {
        side,
        order_type: orderbook::OrderType::Limit,
        price: Some(Decimal::from(30_000)),
        quantity: Some(Decimal::new(1, 3)),
        quote_amount: None,
        time_in_force: None,
        post_only: false,
        self_trade_prevention: Default::default(),
        trigger: None,
    }
}

/// This process's resident memory, in bytes.
fn resident() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

async fn trader(x: &Exchange, name: &str) -> AccountId {
    let token = x.sign_up(name, "correct horse").await.unwrap();
    let id = x.use_session(&token).unwrap();
    x.claim_faucet(id).await.unwrap();
    id
}

/// The newest trade id of the market's book (0: none yet).
fn last_trade(x: &Exchange) -> u64 {
    x.book(SYMBOL).map(|b| b.last_trade_id()).unwrap_or(0)
}

/// Waits until the market data (tape, candles) has taken in the whole
/// history, so what is measured next is the viewers alone.
async fn settled(x: &Exchange) {
    let shown = || {
        x.snapshot(SYMBOL)
            .and_then(|s| s.trades.iter().map(|t| t.trade_id).max())
            .unwrap_or(0)
    };
    while shown() < last_trade(x) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A viewer that resumes from the market's first event and drains its
/// feed until stopped; counts the trades it was sent.
fn resumer(x: &Exchange, limits: FeedLimits, received: Arc<Resumed>) -> JoinHandle<()> {
    let x = x.clone();
    tokio::spawn(async move {
        let (mut requests, rx) = futures::channel::mpsc::channel(1);
        let mut feed = app::server::feed::open(x, rx.into(), limits, None, None, None);
        requests
            .send(Ok(FeedRequest::Watch {
                symbol: SYMBOL.into(),
                from: Some(FeedPosition {
                    commit: 0,
                    prepare: 0,
                }),
            }))
            .await
            .unwrap();
        while let Some(message) = feed.next().await {
            match message {
                FeedMessage::Trade { .. } => received.trades.fetch_add(1, Ordering::Relaxed),
                FeedMessage::Snapshot(_) => received.snapshots.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        drop(requests);
    })
}

/// What the resuming viewers were sent.
#[derive(Default)]
struct Resumed {
    trades: AtomicU64,
    snapshots: AtomicU64,
}

struct Traders {
    seller: AccountId,
    buyer: AccountId,
}

/// What one measurement runs: `viewers` live viewers, `trades` trades
/// `every` apart, while `resumers` more viewers (with `limits`) resume.
#[derive(Clone, Copy)]
struct Run {
    viewers: usize,
    trades: u64,
    every: Duration,
    resumers: usize,
    limits: FeedLimits,
}

async fn measure(x: &Exchange, t: &Traders, run: &Run) {
    let Run {
        viewers,
        trades,
        every,
        resumers,
        limits,
    } = *run;
    let first = last_trade(x) + 1;
    let last = first + trades - 1;
    // When each trade was sent, as nanoseconds after `epoch` (0: not yet),
    // read by every viewer without a lock between them.
    let epoch = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..trades).map(|_| AtomicU64::new(0)).collect());
    let memory_before = resident();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(viewers);
    let mut handles = Vec::new();
    for _ in 0..viewers {
        let (x, sent, ready) = (x.clone(), sent.clone(), ready_tx.clone());
        handles.push(tokio::spawn(async move {
            let (mut requests, rx) = futures::channel::mpsc::channel(1);
            let mut feed =
                app::server::feed::open(x, rx.into(), FeedLimits::default(), None, None, None);
            requests
                .send(Ok(FeedRequest::Watch {
                    symbol: SYMBOL.into(),
                    from: None,
                }))
                .await
                .unwrap();
            let mut latencies = Vec::with_capacity(trades as usize);
            let mut said_ready = false;
            while let Some(message) = feed.next().await {
                match message {
                    FeedMessage::Heartbeat { .. } if !said_ready => {
                        said_ready = true;
                        ready.send(()).await.unwrap();
                    }
                    FeedMessage::Trade { trade, .. } => {
                        let at = trade
                            .trade_id
                            .checked_sub(first)
                            .and_then(|i| sent.get(i as usize))
                            .map(|a| a.load(Ordering::Acquire));
                        if let Some(at) = at.filter(|&at| at > 0) {
                            latencies.push(epoch.elapsed() - Duration::from_nanos(at));
                        }
                        if trade.trade_id >= last {
                            break;
                        }
                    }
                    _ => {}
                }
            }
            (latencies, Instant::now())
        }));
    }
    for _ in 0..viewers {
        ready_rx.recv().await.unwrap();
    }
    let per_viewer = resident().saturating_sub(memory_before) / viewers.max(1) as u64;
    let resumed = Arc::new(Resumed::default());
    let resuming: Vec<_> = (0..resumers)
        .map(|_| resumer(x, limits, resumed.clone()))
        .collect();
    let start = Instant::now();
    for i in 0..trades {
        x.place(t.seller, SYMBOL, order(Side::Sell)).await.unwrap();
        sent[i as usize].store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
        x.place(t.buyer, SYMBOL, order(Side::Buy)).await.unwrap();
        tokio::time::sleep(every).await;
    }
    let mut all = Vec::new();
    let mut done = start;
    for h in handles {
        let (l, at) = h.await.unwrap();
        all.extend(l);
        done = done.max(at);
    }
    for r in &resuming {
        r.abort();
    }
    all.sort();
    let seconds = (done - start).as_secs_f64();
    let resumed = if resumers > 0 {
        format!(
            "  while {resumers} resume (replay bound {} bytes): {} snapshots and {} trades sent to them",
            limits.replay_bytes,
            resumed.snapshots.load(Ordering::Relaxed),
            resumed.trades.load(Ordering::Relaxed)
        )
    } else {
        String::new()
    };
    println!(
        "viewers {viewers:>6}  trades {trades} every {every:?}  deliveries {:>8}  p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  {:>9.0} deliveries/s  {:>6.1} KB/viewer{resumed}",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().unwrap(),
        all.len() as f64 / seconds,
        per_viewer as f64 / 1000.0,
    );
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let trades: u64 = env_list("TRADES", "100")[0];
    let every = Duration::from_millis(env_list("EVERY_MS", "5")[0]);
    let backlog: u64 = env_list("BACKLOG", "0")[0];
    let resumers: usize = env_list("RESUMERS", "0")[0];
    let simulate_ms: u64 = env_list("SIMULATE_MS", "250")[0];
    let default_bound = FeedLimits::default().replay_bytes.to_string();
    let replay_bytes: Vec<u64> = env_list("REPLAY_BYTES", &default_bound);
    // A fresh exchange for each viewer count, so one count's freed memory
    // does not hide the next one's growth.
    for viewers in env_list::<usize>("VIEWERS", "1000,10000") {
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let settings = Settings::load(std::path::Path::new(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../config/exchange.json"
            )))
            .unwrap();
            if backlog > 0 {
                write_history(&dir.path().join("events"), &settings, backlog).await;
            }
            let simulated: Vec<_> = settings
                .markets
                .iter()
                .filter(|m| m.symbol.as_str() != SYMBOL)
                .cloned()
                .collect();
            let x = Exchange::start(
                settings,
                Connection::Embedded {
                    data: dir.path().join("events"),
                },
            )
            .await
            .unwrap();
            let t = Traders {
                seller: trader(&x, "seller").await,
                buyer: trader(&x, "buyer").await,
            };
            settled(&x).await;
            let bots = (simulate_ms > 0).then(|| {
                let every = Duration::from_millis(simulate_ms);
                app::server::simulator::start(x.clone(), simulated, every)
            });
            let mut run = Run {
                viewers,
                trades,
                every,
                resumers: 0,
                limits: FeedLimits::default(),
            };
            measure(&x, &t, &run).await;
            run.resumers = resumers;
            for bytes in replay_bytes.iter().filter(|_| resumers > 0) {
                run.limits.replay_bytes = *bytes;
                measure(&x, &t, &run).await;
            }
            if let Some(bots) = bots {
                bots.abort();
            }
            x.stop().await;
        });
    }
}
