//! An ordinary trader's order latency while one client floods the exchange
//! with the cheap requests that used to slow everyone down.
//!
//! The bench starts the `exchange` binary with its default limits and the
//! market simulator (so the market has a past to replay and trades to
//! resume from), lets it run WARMUP seconds, then measures TRADERS
//! ordinary traders, each from its own loopback address, each placing a
//! resting limit order and cancelling all its orders (two requests, timed
//! together) every 250 ms, within the default order rate. ROUNDS times
//! (2 by default): SECONDS seconds quiet, then SECONDS seconds while one
//! client (one address, one account) runs FLOODERS loops of each of these,
//! every loop as fast as the server answers and the limits allow (told to
//! wait, a 429 or a refused resume, it waits the second `Retry-After`
//! says, as a client that keeps to the limits does), so the flood goes on
//! at the rate the limits allow:
//! - orders refused for their size (a buy far beyond the account's funds);
//! - log-ins to an ordinary trader's name with a wrong password;
//! - replays of BTC-USD's past (`replay_market`), anonymous;
//! - native API sockets resuming `trades:BTC-USD` from trade 1, each on a
//!   new connection.
//!
//! It reports the pair's p50 and p99 over all quiet and all flooded
//! phases and their ratio (alternating the two keeps the VM's drift out of
//! the ratio), the server's CPU in each, and what the flood's requests
//! were answered. The goal (issue #29): the flood's p99 within 1.5× of the
//! quiet one.
//!
//! ```sh
//! SECONDS=20 cargo bench -p app --features ssr --bench soak
//! ```
//!
//! `FLOOD` picks the flood's kinds (`orders,logins,replays,resumes`, all
//! by default) to see what each costs. `EXCHANGE_BIN` runs another build
//! of the server instead.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;

mod figures;
mod keep_alive;
mod process;
use figures::{env_list, percentile};
use keep_alive::Connection;
use process::{start_server, usage};

/// What the flood's requests were answered: (kind, answer) → count.
type Answers = Arc<Mutex<BTreeMap<(&'static str, String), u64>>>;

fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn trader_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 2, 1 + i as u8)
}

const FLOODER: Ipv4Addr = Ipv4Addr::new(127, 0, 3, 1);

#[tokio::main]
async fn main() {
    let seconds = number("SECONDS", 20);
    let traders = number("TRADERS", 8) as usize;
    let flooders = number("FLOODERS", 4) as usize;
    let warmup = number("WARMUP", 5);
    let bin =
        std::env::var("EXCHANGE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_exchange").into());
    let server = start_server(&bin, &["--simulate"]).await;
    let (addr, pid) = (server.addr, server.child.id());
    let mut cookies = Vec::new();
    for i in 0..traders {
        let mut c = Connection::open(addr, trader_address(i)).await;
        let form = format!("username=trader{i}&password=correct+horse");
        let (status, cookie, body) = c.post("sign_up", None, &form).await;
        assert_eq!(status, 200, "{body}");
        let cookie = cookie.expect("a session");
        let (status, _, body) = c.post("claim_faucet", Some(&cookie), "").await;
        assert_eq!(status, 200, "{body}");
        cookies.push(cookie);
    }
    tokio::time::sleep(Duration::from_secs(warmup)).await;

    let kinds: Vec<String> = env_list("FLOOD", "orders,logins,replays,resumes");
    let answers: Answers = Arc::default();
    let flooder = sign_up_flooder(addr).await;
    let (mut quiet, mut flooded) = (Run::default(), Run::default());
    for _ in 0..number("ROUNDS", 2) {
        quiet.add(measure(addr, pid, &cookies, seconds).await);
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flood = start_flood(addr, &flooder, flooders, &kinds, &answers, &stop);
        flooded.add(measure(addr, pid, &cookies, seconds).await);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for f in flood {
            let _ = f.await;
        }
    }
    quiet.latencies.sort();
    flooded.latencies.sort();

    println!("| phase | pairs | p50 | p99 | max | server CPU |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for (name, run) in [("quiet", &quiet), ("flood", &flooded)] {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!(
            "| {name} | {} | {:.2} ms | {:.2} ms | {:.2} ms | {:.0}% |",
            run.latencies.len(),
            ms(percentile(&run.latencies, 0.5)),
            ms(percentile(&run.latencies, 0.99)),
            ms(*run.latencies.last().unwrap()),
            100.0 * run.cpu.as_secs_f64() / run.elapsed.as_secs_f64(),
        );
    }
    let ratio = |p| {
        percentile(&flooded.latencies, p).as_secs_f64()
            / percentile(&quiet.latencies, p).as_secs_f64()
    };
    println!(
        "\nflood / quiet: p50 {:.2}×, p99 {:.2}× (goal: p99 at most 1.5×); \
         ordinary traders' failures: quiet {}, flood {}",
        ratio(0.5),
        ratio(0.99),
        quiet.failures,
        flooded.failures
    );
    println!("\n| flood request | answer | count |");
    println!("| --- | --- | --- |");
    for ((kind, answer), n) in answers.lock().unwrap().iter() {
        println!("| {kind} | {answer} | {n} |");
    }
}

#[derive(Default)]
struct Run {
    latencies: Vec<Duration>,
    failures: u64,
    elapsed: Duration,
    cpu: Duration,
}

impl Run {
    fn add(&mut self, other: Run) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
    }
}

/// Every ordinary trader places and cancels every 250 ms for `seconds`.
async fn measure(addr: SocketAddr, pid: u32, cookies: &[String], seconds: u64) -> Run {
    let cpu_before = usage(pid).1;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let workers = cookies.iter().cloned().enumerate().map(|(i, cookie)| {
        tokio::spawn(async move {
            let mut c = Connection::open(addr, trader_address(i)).await;
            let mut every = tokio::time::interval(Duration::from_millis(250));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut latencies, mut failures) = (Vec::new(), 0);
            let order = "symbol=BTC-USD&side=buy&order_type=limit&price=100&quantity=0.001";
            while Instant::now() < deadline {
                every.tick().await;
                let sent = Instant::now();
                let (placed, _, _) = c.post("place_order", Some(&cookie), order).await;
                let (cancelled, _, _) = c.post("cancel_all", Some(&cookie), "symbol=BTC-USD").await;
                latencies.push(sent.elapsed());
                if placed != 200 || cancelled != 200 {
                    failures += 1;
                }
            }
            (latencies, failures)
        })
    });
    let mut run = Run {
        latencies: Vec::new(),
        failures: 0,
        elapsed: Duration::ZERO,
        cpu: Duration::ZERO,
    };
    for w in futures::future::join_all(workers).await {
        let (latencies, failures) = w.unwrap();
        run.latencies.extend(latencies);
        run.failures += failures;
    }
    run.elapsed = started.elapsed();
    run.cpu = usage(pid).1 - cpu_before;
    run
}

/// The flooding client's account: its session.
async fn sign_up_flooder(addr: SocketAddr) -> String {
    let mut c = Connection::open(addr, FLOODER).await;
    let (status, cookie, body) = c
        .post("sign_up", None, "username=flooder&password=correct+horse")
        .await;
    assert_eq!(status, 200, "{body}");
    cookie.expect("a session")
}

/// Starts the flood's loops (see the module docs); they run until `stop`.
fn start_flood(
    addr: SocketAddr,
    cookie: &str,
    loops: usize,
    kinds: &[String],
    answers: &Answers,
    stop: &Arc<std::sync::atomic::AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let posts: [(&'static str, &'static str, &'static str, bool); 3] = [
        (
            "orders",
            "place_order",
            "symbol=BTC-USD&side=buy&order_type=limit&price=30000&quantity=5",
            true,
        ),
        (
            "logins",
            "log_in",
            "username=trader0&password=not+the+password",
            false,
        ),
        (
            "replays",
            "replay_market",
            "symbol=BTC-USD&events=2000",
            false,
        ),
    ];
    let posts = posts.into_iter().filter(|p| kinds.iter().any(|k| k == p.0));
    let mut tasks = Vec::new();
    for _ in 0..loops {
        for (kind, function, form, with_session) in posts.clone() {
            let (answers, stop, cookie) = (answers.clone(), stop.clone(), cookie.to_string());
            tasks.push(tokio::spawn(async move {
                let mut c = Connection::open(addr, FLOODER).await;
                let session = with_session.then_some(cookie.as_str());
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let (status, _, _) = c.post(function, session, form).await;
                    count(&answers, kind, status.to_string());
                    if status == 429 {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }));
        }
        if !kinds.iter().any(|k| k == "resumes") {
            continue;
        }
        let (answers, stop) = (answers.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let answer = resume(addr).await;
                let refused = answer == "error";
                count(&answers, "resumes", answer);
                if refused {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }));
    }
    tasks
}

fn count(answers: &Answers, kind: &'static str, answer: String) {
    *answers.lock().unwrap().entry((kind, answer)).or_default() += 1;
}

/// One native API socket from the flooder's address: subscribes to
/// BTC-USD's trades since trade 1 and takes the first answer. What it was
/// answered, in a word.
async fn resume(addr: SocketAddr) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::new(IpAddr::V4(FLOODER), 0))
        .unwrap();
    let Ok(stream) = socket.connect(addr).await else {
        return "connection refused".into();
    };
    let url = format!("ws://{addr}/api/v1/ws");
    let Ok((mut ws, _)) = tokio_tungstenite::client_async(url, stream).await else {
        return "upgrade refused".into();
    };
    let subscribe =
        r#"{"op":"subscribe","channels":["trades:BTC-USD"],"since":{"trades:BTC-USD":1}}"#;
    if ws.send(Message::text(subscribe)).await.is_err() {
        return "closed".into();
    }
    let first = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
    let answer = match first {
        Ok(Some(Ok(Message::Text(text)))) => {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            v.get("type")
                .or_else(|| v.get("channel"))
                .and_then(|t| t.as_str())
                .unwrap_or("message")
                .to_string()
        }
        Ok(Some(Ok(Message::Close(_)))) | Ok(None) => "closed".into(),
        Ok(Some(Ok(_))) => "other frame".into(),
        Ok(Some(Err(_))) => "socket error".into(),
        Err(_) => "no answer in 5 s".into(),
    };
    let _ = ws.close(None).await;
    answer
}
