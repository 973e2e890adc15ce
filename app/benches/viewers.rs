//! Live market data to many viewers: trade-to-viewer latency and deliveries
//! per second while the matching engine runs.
//!
//! One process: the exchange with its embedded store, N viewer feeds (each
//! with its own reader of the server's one live subscription, exactly as a
//! browser's websocket gets) and two traders crossing orders. Latency runs from the moment the
//! crossing order is sent to the moment a viewer's feed yields the trade.
//!
//! `cargo bench -p app --features ssr --bench viewers` (VIEWERS=1000,10000,
//! TRADES=100 and EVERY_MS=5, the pause after each trade, by default).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use app::api::{FeedMessage, FeedRequest};
use app::server::{Connection, Exchange, OrderRequest, Settings};
use futures::{SinkExt, StreamExt};
use rust_decimal::Decimal;

fn env_list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

fn order(side: orderbook::Side) -> OrderRequest {
    OrderRequest {
        side,
        order_type: orderbook::OrderType::Limit,
        price: Some(Decimal::from(30_000)),
        quantity: Some(Decimal::new(1, 3)),
        quote_amount: None,
        time_in_force: None,
        post_only: false,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(viewers: usize, trades: u64, every: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/exchange.json"
    )))
    .unwrap();
    let x = Exchange::start(
        settings,
        Connection::Embedded {
            data: dir.path().join("events"),
        },
    )
    .await
    .unwrap();
    let mut traders = Vec::new();
    for name in ["seller", "buyer"] {
        let token = x.sign_up(name, "correct horse").await.unwrap();
        let id = x.account_for(&token).unwrap();
        x.claim_faucet(id).await.unwrap();
        traders.push(id);
    }
    // When each trade was sent, as nanoseconds after `epoch` (0: not yet),
    // read by every viewer without a lock between them.
    let epoch = Instant::now();
    let sent: Arc<Vec<AtomicU64>> = Arc::new((0..=trades).map(|_| AtomicU64::new(0)).collect());
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(viewers);
    let mut handles = Vec::new();
    for _ in 0..viewers {
        let (x, sent, ready) = (x.clone(), sent.clone(), ready_tx.clone());
        handles.push(tokio::spawn(async move {
            let (mut requests, rx) = futures::channel::mpsc::channel(1);
            let limits = app::server::feed_limits::FeedLimits::default();
            let mut feed = app::server::feed::open(x, rx.into(), limits, None);
            requests
                .send(Ok(FeedRequest::Watch {
                    symbol: "BTC-USD".into(),
                    from: None,
                }))
                .await
                .unwrap();
            let mut latencies = Vec::with_capacity(trades as usize);
            let mut said_ready = false;
            while let Some(Ok(message)) = feed.next().await {
                match message {
                    FeedMessage::Heartbeat { .. } if !said_ready => {
                        said_ready = true;
                        ready.send(()).await.unwrap();
                    }
                    FeedMessage::Trade { trade, .. } => {
                        let at = sent
                            .get(trade.trade_id as usize)
                            .map(|a| a.load(Ordering::Acquire));
                        if let Some(at) = at.filter(|&at| at > 0) {
                            latencies.push(epoch.elapsed() - Duration::from_nanos(at));
                        }
                        if trade.trade_id == trades {
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
    let start = Instant::now();
    for i in 1..=trades {
        x.place(traders[0], "BTC-USD", order(orderbook::Side::Sell))
            .await
            .unwrap();
        sent[i as usize].store(epoch.elapsed().as_nanos() as u64, Ordering::Release);
        x.place(traders[1], "BTC-USD", order(orderbook::Side::Buy))
            .await
            .unwrap();
        tokio::time::sleep(every).await;
    }
    let mut all = Vec::new();
    let mut last = start;
    for h in handles {
        let (l, done) = h.await.unwrap();
        all.extend(l);
        last = last.max(done);
    }
    all.sort();
    let seconds = (last - start).as_secs_f64();
    println!(
        "viewers {viewers:>6}  trades {trades} every {every:?}  deliveries {:>8}  p50 {:>8.2?}  p99 {:>8.2?}  max {:>8.2?}  {:>9.0} deliveries/s",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().unwrap(),
        all.len() as f64 / seconds
    );
    x.stop().await;
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
    let trades = env_list("TRADES", "100")[0] as u64;
    let every = Duration::from_millis(env_list("EVERY_MS", "5")[0] as u64);
    for viewers in env_list("VIEWERS", "1000,10000") {
        runtime.block_on(run(viewers, trades, every));
    }
}
