//! Live trades over real websockets: client processes holding thousands
//! of market-feed sockets to separate server processes.
//!
//! The bench starts the `exchange` binary (its own embedded store in a
//! temporary folder, the per-address socket limit raised), opens SOCKETS
//! websockets to it from client processes of its own (this binary run
//! again, at most 10,000 sockets each), each socket watching BTC-USD as a
//! page does, and for SECONDS seconds takes every trade each socket is
//! sent. With SERVERS above 1 it runs that many servers on one store
//! (run in this process): the first leads and the flow trades through it,
//! the others follow the log, and the client processes connect to the
//! servers in turn. That is how the exchange serves more sockets than one
//! process may hold files open.
//! The trades are a fixed flow, the same for every run and every build:
//! two traders rest 20 levels a side, then take 0.0001 BTC from the best
//! level TRADES_PER_S times a second (10 by default), alternately buying
//! and selling, each a trade and a change of the book's depth.
//! Latency runs from the trade's own time (the engine's timestamp, in
//! whole milliseconds) to the moment a client process has read it from
//! the socket; all processes read the same clock. A client reads only
//! what it measures (a trade's time, a snapshot's arrival) and passes over
//! the rest of each message unparsed, so its own share of the two cores
//! stays small.
//!
//! Also reported: the servers' resident memory growth per socket, the CPU
//! the servers and the clients spent while measuring, and the servers'
//! CPU per delivery: their CPU time over the trades delivered, what one
//! delivered trade costs with the depth and heartbeats that go with it.
//!
//! ```sh
//! SOCKETS=2000,10000 SECONDS=20 cargo bench -p app --features ssr --bench sockets
//! SOCKETS=20000 SERVERS=2 TRADES_PER_S=3 cargo bench -p app --features ssr --bench sockets
//! ```
//!
//! `EXCHANGE_BIN` runs another build of the server instead (one from
//! before frames, whose socket messages are one feed message each, is
//! read as well).
//!
//! Each socket is a file descriptor on both sides: `ulimit -n` must allow
//! a server its share of SOCKETS plus a few dozen.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use app::api::{FeedMessage, FeedRequest};
use futures::{SinkExt, StreamExt};
use leptos::server_fn::ServerFn;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

// Its percentiles are of sorted samples; this bench's are counts per ms.
#[allow(dead_code)]
mod figures;
mod keep_alive;
mod process;
use figures::env_list;
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

/// The flow's two traders, once they have laid the book.
struct Flow {
    seller: Trader,
    buyer: Trader,
}

impl Flow {
    /// Signs the two traders up and rests 20 levels a side around 30,000.
    async fn lay(server: SocketAddr) -> Flow {
        let mut seller = Trader::sign_up(server, 1).await;
        let mut buyer = Trader::sign_up(server, 2).await;
        for level in 1..=20 {
            seller
                .order("sell", 30_000 + 10 * level, "0.05", "GTC")
                .await;
            buyer.order("buy", 30_000 - 10 * level, "0.05", "GTC").await;
        }
        Flow { seller, buyer }
    }

    /// Until `stop`, takes 0.0001 from the best ask and the best bid in
    /// turn, `per_s` times a second.
    async fn trade(mut self, per_s: u64, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_s as f64));
        for n in 0u64.. {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => if *stop.borrow() { return },
            }
            if n.is_multiple_of(2) {
                self.buyer.order("buy", 30_010, "0.0001", "IOC").await;
            } else {
                self.seller.order("sell", 29_990, "0.0001", "IOC").await;
            }
        }
    }
}

/// The most sockets one client process opens: each is a file descriptor,
/// and this machine allows 20,000 a process.
const SOCKETS_PER_CLIENT: u64 = 10_000;

/// What one client process's viewers got while measuring.
#[derive(Default)]
struct Report {
    frames: u64,
    messages: u64,
    /// The client process's CPU time while measuring.
    cpu: Duration,
    /// Trade latencies: how many took each whole millisecond.
    latencies: BTreeMap<u64, u64>,
}

/// The client side of a run in a process of its own: `SOCKETS_CLIENT`
/// sockets to the server at `SOCKETS_CLIENT_ADDR`. It says `ready` on
/// stdout once every socket has its snapshot, starts measuring at
/// `measure` on stdin and stops at `stop`, then writes its [`Report`]:
/// a line `frames messages cpu_ms`, then one `ms count` line per latency
/// and `end`.
fn client_process(addr: SocketAddr, sockets: u64) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (stop_tx, stop) = watch::channel(false);
        let counts = Arc::new(Counts::default());
        let (ready_tx, mut ready) = tokio::sync::mpsc::channel(sockets as usize);
        let viewers: Vec<_> = (0..sockets)
            .map(|_| tokio::spawn(viewer(addr, ready_tx.clone(), stop.clone(), counts.clone())))
            .collect();
        for _ in 0..sockets {
            ready.recv().await.unwrap();
        }
        println!("ready");
        let mut commands = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        let mut cpu = Duration::ZERO;
        while let Some(command) = commands.next_line().await.unwrap() {
            let (_, now) = usage(std::process::id());
            match command.as_str() {
                "measure" => {
                    cpu = now;
                    stop_tx.send(false).unwrap();
                }
                "stop" => {
                    cpu = now - cpu;
                    stop_tx.send(true).unwrap();
                    break;
                }
                other => panic!("unknown command {other:?}"),
            }
        }
        let mut latencies = BTreeMap::<u64, u64>::new();
        for v in viewers {
            for ms in v.await.unwrap() {
                *latencies.entry(ms).or_default() += 1;
            }
        }
        let mut out = format!(
            "{} {} {}\n",
            counts.frames.load(Ordering::Relaxed),
            counts.messages.load(Ordering::Relaxed),
            cpu.as_millis()
        );
        for (ms, n) in latencies {
            out.push_str(&format!("{ms} {n}\n"));
        }
        out.push_str("end\n");
        print!("{out}");
    });
}

/// A client process this bench started, killed when dropped.
struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    /// Starts this bench's own binary as a client process of `sockets`
    /// sockets to `server`.
    fn start(server: SocketAddr, sockets: u64) -> Client {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .env("SOCKETS_CLIENT", sockets.to_string())
            .env("SOCKETS_CLIENT_ADDR", server.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the client process starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Client {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        let read = self.stdout.read_line(&mut line).unwrap();
        assert!(read > 0, "a client process ended early");
        line.trim_end().to_string()
    }

    /// Waits until every socket of this client has its snapshot.
    fn ready(&mut self) {
        assert_eq!(self.line(), "ready");
    }

    fn say(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
    }

    /// What its sockets got while measuring (after `stop`).
    fn report(&mut self) -> Report {
        let numbers =
            |line: String| -> Vec<u64> { line.split(' ').map(|n| n.parse().unwrap()).collect() };
        let head = numbers(self.line());
        let mut report = Report {
            frames: head[0],
            messages: head[1],
            cpu: Duration::from_millis(head[2]),
            latencies: BTreeMap::new(),
        };
        loop {
            let line = self.line();
            if line == "end" {
                return report;
            }
            let pair = numbers(line);
            report.latencies.insert(pair[0], pair[1]);
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The latency below which fraction `p` of the samples fall, from counts
/// per millisecond.
fn percentile_of(latencies: &BTreeMap<u64, u64>, total: u64, p: f64) -> u64 {
    let rank = ((total as f64 - 1.0) * p).round() as u64;
    let mut seen = 0;
    for (&ms, &n) in latencies {
        seen += n;
        if seen > rank {
            return ms;
        }
    }
    0
}

async fn run(sockets: u64, servers: u64, seconds: u64, trades_per_s: u64) {
    // Every socket comes from one address: its caps are raised, and the
    // flow's traders may place as fast as it asks.
    let watchers = (sockets + 16).to_string();
    let mut args = vec![
        "--feed-sockets-per-address",
        &watchers,
        "--connections-per-address",
        &watchers,
        "--orders-per-10s",
        "100000",
    ];
    // Several servers share a store run here; one alone runs its own.
    let store_dir = tempfile::tempdir().unwrap();
    let store = match servers {
        1 => None,
        _ => Some(
            store::EmbeddedStore::start(store_dir.path(), ([127, 0, 0, 1], 0).into())
                .await
                .expect("the store starts"),
        ),
    };
    let url = store.as_ref().map(|s| s.connection_string());
    // Servers on one store seal API keys with one secret.
    let secret = store_dir.path().join("api-key.secret");
    let secret = secret.to_str().unwrap();
    if let Some(url) = &url {
        args.extend(["--eventstore-url", url, "--api-key-secret-file", secret]);
    }
    let binary =
        std::env::var("EXCHANGE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_exchange").into());
    // The first leads: the flow trades through it, and the book is laid
    // before any other starts (which then follows).
    let mut started = vec![start_server(&binary, &args).await];
    let flow = Flow::lay(started[0].addr).await;
    for _ in 1..servers {
        started.push(start_server(&binary, &args).await);
    }
    let pids: Vec<u32> = started.iter().map(|s| s.child.id()).collect();
    let memory = || pids.iter().map(|&pid| usage(pid).0).sum::<u64>();
    let cpu = || pids.iter().map(|&pid| usage(pid).1).sum::<Duration>();
    let memory_before = memory();
    // Each client process takes its share of the sockets, all to one
    // server; the servers take the clients in turn.
    let clients_n = servers.max(sockets.div_ceil(SOCKETS_PER_CLIENT));
    let connecting = Instant::now();
    let mut clients: Vec<Client> = (0..clients_n)
        .map(|i| {
            let share = sockets / clients_n + u64::from(i < sockets % clients_n);
            Client::start(started[(i % servers) as usize].addr, share)
        })
        .collect();
    for c in &mut clients {
        c.ready();
    }
    let connected = connecting.elapsed();
    let memory_after = memory();
    let (stop_tx, stop) = watch::channel(false);
    let trading = tokio::spawn(flow.trade(trades_per_s, stop));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server_cpu_before = cpu();
    for c in &mut clients {
        c.say("measure");
    }
    let measuring = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    for c in &mut clients {
        c.say("stop");
    }
    let elapsed = measuring.elapsed();
    let server_cpu = (cpu() - server_cpu_before).as_secs_f64();
    stop_tx.send(true).unwrap();
    trading.await.unwrap();
    let mut all = Report::default();
    for c in &mut clients {
        let r = c.report();
        all.frames += r.frames;
        all.messages += r.messages;
        all.cpu += r.cpu;
        for (ms, n) in r.latencies {
            *all.latencies.entry(ms).or_default() += n;
        }
    }
    let deliveries: u64 = all.latencies.values().sum();
    assert!(
        deliveries > 0,
        "no trade reached the sockets in {seconds} s"
    );
    let per_s = |n: u64| n as f64 / elapsed.as_secs_f64();
    println!(
        "sockets {sockets:>6} on {servers} server(s), {clients_n} client(s)  connected in {connected:>7.2?}  deliveries {deliveries:>8}  p50 {:>4} ms  p99 {:>4} ms  max {:>5} ms  {:>7.0} deliveries/s  {:>7.0} messages/s in {:>7.0} frames/s  server {:>5.1} KB/socket  cpu: server {:>4.0}%, client {:>4.0}%  server cpu per delivery {:>5.1} µs",
        percentile_of(&all.latencies, deliveries, 0.5),
        percentile_of(&all.latencies, deliveries, 0.99),
        all.latencies.keys().next_back().unwrap(),
        per_s(deliveries),
        per_s(all.messages),
        per_s(all.frames),
        memory_after.saturating_sub(memory_before) as f64 / sockets as f64 / 1000.0,
        server_cpu / elapsed.as_secs_f64() * 100.0,
        all.cpu.as_secs_f64() / elapsed.as_secs_f64() * 100.0,
        server_cpu / deliveries as f64 * 1e6,
    );
}

fn main() {
    if let Ok(sockets) = std::env::var("SOCKETS_CLIENT") {
        let addr = std::env::var("SOCKETS_CLIENT_ADDR").unwrap();
        client_process(addr.parse().unwrap(), sockets.parse().unwrap());
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let seconds: u64 = env_list("SECONDS", "20")[0];
    let trades_per_s: u64 = env_list("TRADES_PER_S", "10")[0];
    let servers = env_list::<u64>("SERVERS", "1")[0].max(1);
    for sockets in env_list("SOCKETS", "2000") {
        runtime.block_on(run(sockets, servers, seconds, trades_per_s));
    }
}
