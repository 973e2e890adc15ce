//! Live trades over real websockets: a client process holding thousands of
//! market-feed sockets to a separate server process.
//!
//! The bench starts the `exchange` binary (its own embedded store in a
//! temporary folder, the per-address socket limit raised), opens SOCKETS
//! websockets to it from this process, each watching BTC-USD as a page
//! does, and for SECONDS seconds takes every trade each socket is sent.
//! The trades are a fixed flow, the same for every run and every build:
//! two traders rest 20 levels a side, then take 0.0001 BTC from the best
//! level TRADES_PER_S times a second (10 by default), alternately buying
//! and selling, each a trade and a change of the book's depth.
//! Latency runs from the trade's own time (the engine's timestamp, in
//! whole milliseconds) to the moment this process has read it from the
//! socket; both processes read the same clock. This process reads only
//! what it measures (a trade's time, a snapshot's arrival) and passes over
//! the rest of each message unparsed, so its own share of the two cores
//! stays small.
//!
//! Also reported: the server's resident memory growth per socket, the CPU
//! each process spent while measuring, and the server's CPU per delivery:
//! its CPU time over the trades delivered, what one delivered trade costs
//! it with the depth and heartbeats that go with them.
//!
//! ```sh
//! SOCKETS=2000,10000 SECONDS=20 cargo bench -p app --features ssr --bench sockets
//! ```
//!
//! `EXCHANGE_BIN` runs another build of the server instead (one from
//! before frames, whose socket messages are one feed message each, is
//! read as well).
//!
//! Each socket is a file descriptor on both sides: `ulimit -n` must allow
//! SOCKETS plus a few dozen.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use app::api::{FeedMessage, FeedRequest};
use futures::{SinkExt, StreamExt};
use leptos::server_fn::ServerFn;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

mod figures;
mod keep_alive;
mod process;
use figures::{env_list, percentile};
use keep_alive::Connection;
use process::{start_server, usage};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Of a feed message, the trade's time: all this process reads of it.
#[derive(Deserialize)]
struct TradeMessage {
    #[serde(rename = "Trade")]
    body: TradeBody,
}

#[derive(Deserialize)]
struct TradeBody {
    trade: TradeTime,
}

#[derive(Deserialize)]
struct TradeTime {
    at_ms: u64,
}

/// What the sockets were sent while measuring: websocket messages
/// (frames) and the feed messages in them.
#[derive(Default)]
struct Counts {
    frames: AtomicU64,
    messages: AtomicU64,
}

/// One socket watching BTC-USD: says when its snapshot came, then gathers
/// trade latencies (ms) until `stop` turns true, counting what it gets.
async fn viewer(
    addr: SocketAddr,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
    counts: Arc<Counts>,
) -> Vec<u64> {
    let url = format!(
        "ws://{addr}{}",
        <app::live_market::MarketFeed as ServerFn>::PATH
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("the feed's socket opens");
    let mut request = vec![0u8];
    request.extend(
        serde_json::to_vec(&FeedRequest::Watch {
            symbol: "BTC-USD".into(),
            from: None,
        })
        .unwrap(),
    );
    socket.send(Message::Binary(request.into())).await.unwrap();
    let mut latencies = Vec::new();
    let mut measuring = false;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                if *stop.borrow() {
                    return latencies;
                }
                measuring = true;
            }
            message = socket.next() => {
                let Some(Ok(Message::Binary(bytes))) = message else {
                    match message {
                        Some(Ok(_)) => continue,
                        other => panic!("the socket ended: {other:?}"),
                    }
                };
                // A frame of messages; a single message from an older
                // server.
                let json = &bytes[1..];
                let frame: Vec<&RawValue> = if json.first() == Some(&b'[') {
                    serde_json::from_slice(json)
                } else {
                    serde_json::from_slice(json).map(|m| vec![m])
                }
                .unwrap_or_else(|e| panic!("unreadable feed message: {e}"));
                if measuring {
                    counts.messages.fetch_add(frame.len() as u64, Ordering::Relaxed);
                    counts.frames.fetch_add(1, Ordering::Relaxed);
                }
                for message in frame {
                    let text = message.get();
                    if text.starts_with("{\"Trade\"") {
                        if measuring {
                            let trade: TradeMessage = serde_json::from_str(text).unwrap();
                            latencies.push(now_ms().saturating_sub(trade.body.trade.at_ms));
                        }
                    } else if text.starts_with("{\"Snapshot\"") {
                        let _ = ready.send(()).await;
                    } else if text.starts_with("{\"Refused\"") {
                        let refused: FeedMessage = serde_json::from_str(text).unwrap();
                        panic!("{refused:?}");
                    }
                }
            }
        }
    }
}

/// A trader of the flow: signed up from its own loopback address (sign-ups
/// are limited per address), with coins from the faucet.
struct Trader {
    connection: Connection,
    cookie: String,
}

impl Trader {
    async fn sign_up(server: SocketAddr, n: u8) -> Trader {
        let mut connection = Connection::open(server, Ipv4Addr::new(127, 0, 2, n)).await;
        let form = format!("username=flow{n}&password=correct+horse+battery");
        let (status, cookie, body) = connection.post("sign_up", None, &form).await;
        assert_eq!(status, 200, "{body}");
        let cookie = cookie.expect("a session cookie");
        let mut trader = Trader { connection, cookie };
        for _ in 0..5 {
            trader.post("claim_faucet", "").await;
        }
        trader
    }

    async fn post(&mut self, name: &str, form: &str) {
        let (status, _, body) = self.connection.post(name, Some(&self.cookie), form).await;
        assert_eq!(status, 200, "{name}: {body}");
    }

    async fn order(&mut self, side: &str, price: u64, quantity: &str, tif: &str) {
        let form = format!(
            "symbol=BTC-USD&side={side}&order_type=limit&price={price}&quantity={quantity}\
             &time_in_force={tif}"
        );
        self.post("place_order", &form).await;
    }
}

/// Rests 20 levels a side around 30,000; then, until `stop`, takes 0.0001
/// from the best ask and the best bid in turn, `per_s` times a second.
async fn flow(server: SocketAddr, per_s: u64, mut stop: watch::Receiver<bool>) {
    let mut seller = Trader::sign_up(server, 1).await;
    let mut buyer = Trader::sign_up(server, 2).await;
    for level in 1..=20 {
        seller
            .order("sell", 30_000 + 10 * level, "0.05", "GTC")
            .await;
        buyer.order("buy", 30_000 - 10 * level, "0.05", "GTC").await;
    }
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s as f64));
    for n in 0u64.. {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => if *stop.borrow() { return },
        }
        if n.is_multiple_of(2) {
            buyer.order("buy", 30_010, "0.0001", "IOC").await;
        } else {
            seller.order("sell", 29_990, "0.0001", "IOC").await;
        }
    }
}

async fn run(sockets: u64, seconds: u64, trades_per_s: u64) {
    // Every socket comes from this one address: its caps are raised, and
    // the flow's traders may place as fast as it asks.
    let watchers = (sockets + 16).to_string();
    let args = [
        "--feed-sockets-per-address",
        &watchers,
        "--connections-per-address",
        &watchers,
        "--orders-per-10s",
        "100000",
    ];
    let binary =
        std::env::var("EXCHANGE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_exchange").into());
    let server = start_server(&binary, &args).await;
    let pid = server.child.id();
    let (memory_before, _) = usage(pid);
    let (stop_tx, stop) = watch::channel(false);
    let counts = Arc::new(Counts::default());
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(sockets as usize);
    let mut viewers = Vec::new();
    let connecting = Instant::now();
    for _ in 0..sockets {
        viewers.push(tokio::spawn(viewer(
            server.addr,
            ready_tx.clone(),
            stop.clone(),
            counts.clone(),
        )));
    }
    for _ in 0..sockets {
        ready.recv().await.unwrap();
    }
    let connected = connecting.elapsed();
    let (memory_after, _) = usage(pid);
    // The flow's book is laid before measuring.
    let trading = tokio::spawn(flow(server.addr, trades_per_s, stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, server_cpu_before) = usage(pid);
    let (_, client_cpu_before) = usage(std::process::id());
    // Measure from now on.
    stop_tx.send(false).unwrap();
    let measuring = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop_tx.send(true).unwrap();
    let elapsed = measuring.elapsed();
    let (_, server_cpu) = usage(pid);
    let (_, client_cpu) = usage(std::process::id());
    trading.await.unwrap();
    let mut all = Vec::new();
    for v in viewers {
        all.extend(v.await.unwrap());
    }
    all.sort_unstable();
    assert!(
        !all.is_empty(),
        "no trade reached the sockets in {seconds} s"
    );
    let server_cpu = (server_cpu - server_cpu_before).as_secs_f64();
    println!(
        "sockets {sockets:>6}  connected in {connected:>7.2?}  deliveries {:>8}  p50 {:>4} ms  p99 {:>4} ms  max {:>5} ms  {:>7.0} deliveries/s  {:>7.0} messages/s in {:>7.0} frames/s  server {:>5.1} KB/socket  cpu: server {:>4.0}%, client {:>4.0}%  server cpu per delivery {:>5.1} µs",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().unwrap(),
        all.len() as f64 / elapsed.as_secs_f64(),
        counts.messages.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        counts.frames.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64(),
        memory_after.saturating_sub(memory_before) as f64 / sockets as f64 / 1000.0,
        server_cpu / elapsed.as_secs_f64() * 100.0,
        (client_cpu - client_cpu_before).as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        server_cpu / all.len() as f64 * 1e6,
    );
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let seconds = env_list("SECONDS", "20")[0];
    let trades_per_s = env_list("TRADES_PER_S", "10")[0];
    for sockets in env_list("SOCKETS", "2000") {
        runtime.block_on(run(sockets, seconds, trades_per_s));
    }
}
