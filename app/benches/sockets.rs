//! Live trades over real websockets: a client process holding thousands of
//! market-feed sockets to a separate server process.
//!
//! The bench starts the `exchange` binary (its own embedded store in a
//! temporary folder, the market simulator on, the per-address socket limit
//! raised), opens SOCKETS websockets to it from this process, each watching
//! BTC-USD as a page does, and for SECONDS seconds takes every trade each
//! socket is sent. Latency runs from the trade's own time (the engine's
//! timestamp, in whole milliseconds) to the moment this process has read
//! and decoded it from the socket; both processes read the same clock.
//! Also reported: the server's resident memory growth per socket, the
//! CPU each process spent while measuring, and the server's CPU per
//! delivery (its CPU time over the trades delivered: what one delivered
//! trade costs it, with the depth and heartbeats that go with them).
//!
//! ```sh
//! SOCKETS=2000,5000 SECONDS=20 cargo bench -p app --features ssr --bench sockets
//! ```
//!
//! `EXCHANGE_BIN` runs another build of the server instead (one from
//! before frames, whose socket messages are one feed message each, is
//! read as well).
//!
//! Each socket is a file descriptor on both sides: `ulimit -n` must allow
//! SOCKETS plus a few dozen.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use app::api::{FeedMessage, FeedRequest};
use futures::{SinkExt, StreamExt};
use leptos::server_fn::ServerFn;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

mod figures;
mod process;
use figures::{env_list, percentile};
use process::{start_server, usage};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// One socket watching BTC-USD: says when its snapshot came, then gathers
/// trade latencies (ms) until `stop` turns true.
async fn viewer(
    addr: SocketAddr,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: watch::Receiver<bool>,
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
                let frame = if json.first() == Some(&b'[') {
                    serde_json::from_slice::<Vec<FeedMessage>>(json)
                } else {
                    serde_json::from_slice::<FeedMessage>(json).map(|m| vec![m])
                };
                let frame = frame.unwrap_or_else(|e| panic!("unreadable feed message: {e}"));
                for message in frame {
                    match message {
                        FeedMessage::Snapshot(_) => {
                            let _ = ready.send(()).await;
                        }
                        FeedMessage::Trade { trade, .. } if measuring => {
                            latencies.push(now_ms().saturating_sub(trade.at_ms));
                        }
                        FeedMessage::Refused(why) => panic!("refused: {why}"),
                        _ => {}
                    }
                }
            }
        }
    }
}

async fn run(sockets: u64, seconds: u64) {
    // Every socket comes from this one address: its caps are raised.
    let watchers = (sockets + 16).to_string();
    let args = [
        "--simulate",
        "--feed-sockets-per-address",
        &watchers,
        "--connections-per-address",
        &watchers,
    ];
    let binary =
        std::env::var("EXCHANGE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_exchange").into());
    let server = start_server(&binary, &args).await;
    let pid = server.child.id();
    // Let the simulator's bots sign up and start quoting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (memory_before, _) = usage(pid);
    let (stop_tx, stop) = watch::channel(false);
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel(sockets as usize);
    let mut viewers = Vec::new();
    let connecting = Instant::now();
    for _ in 0..sockets {
        viewers.push(tokio::spawn(viewer(
            server.addr,
            ready_tx.clone(),
            stop.clone(),
        )));
    }
    for _ in 0..sockets {
        ready.recv().await.unwrap();
    }
    let connected = connecting.elapsed();
    let (memory_after, server_cpu_before) = usage(pid);
    let (_, client_cpu_before) = usage(std::process::id());
    // Measure from now on.
    stop_tx.send(false).unwrap();
    let measuring = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop_tx.send(true).unwrap();
    let elapsed = measuring.elapsed();
    let (_, server_cpu) = usage(pid);
    let (_, client_cpu) = usage(std::process::id());
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
        "sockets {sockets:>6}  connected in {connected:>7.2?}  deliveries {:>8}  p50 {:>4} ms  p99 {:>4} ms  max {:>5} ms  {:>7.0} deliveries/s  server {:>5.1} KB/socket  cpu: server {:>4.0}%, client {:>4.0}%  server cpu per delivery {:>5.1} µs",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().unwrap(),
        all.len() as f64 / elapsed.as_secs_f64(),
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
    for sockets in env_list("SOCKETS", "2000") {
        runtime.block_on(run(sockets, seconds));
    }
}
