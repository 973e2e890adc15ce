//! Two exchange servers (the binary) on one store (run by this test), with
//! traders placing, amending and cancelling orders at random through both
//! over HTTP. One server reaches the store through a TCP proxy that, all
//! along, at random cuts its connections, swallows the store's answers
//! for a moment (the store still writes: lost answers) and delays them.
//! Then the faults a cluster meets:
//! - the leader is SIGKILLed under load: the follower takes over, and the
//!   killed server comes back as a follower;
//! - the new leader is SIGSTOPped past the lease: the other takes over;
//!   resumed, the paused one must step down.
//!
//! After each fault `exchange check` proves every ledger rule over the
//! whole log (the traders going on meanwhile), and so it does at the end,
//! where also every acknowledged order is in its market stream exactly
//! once. The seed is
//! printed; `EXCHANGE_TEST_SEED` replays one.
#![cfg(feature = "ssr")]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderbook::sim::Rng;

mod client;
use client::proxy::Proxy;
use client::{Spawned, post};

/// The lease the servers run with: short, so takeovers are quick.
const LEASE_MS: u64 = 600;
const TRADERS: usize = 4;

fn server(store: &str) -> Spawned {
    // The traders place as fast as they are answered: no order rate
    // limit stands in the way of what is tested here.
    client::spawn(&[
        "--eventstore-url",
        store,
        "--leader-lease-ms",
        &LEASE_MS.to_string(),
        "--orders-per-10s",
        "1000000",
    ])
}

/// A log line without its colours.
fn plain(line: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in line.chars() {
        match c {
            '\u{1b}' => escaped = true,
            'm' if escaped => escaped = false,
            _ if escaped => {}
            _ => out.push(c),
        }
    }
    out
}

/// What a server's log last said about its part: `Some(true)` leading.
fn leads(s: &Spawned) -> Option<bool> {
    let log: Vec<String> = s.log.lock().unwrap().iter().map(|l| plain(l)).collect();
    let last = log
        .iter()
        .rev()
        .find(|l| l.contains("leadership changed"))?;
    Some(last.contains("to=Leader"))
}

/// Waits (at most 10 s) until a server's log says it leads (or follows).
async fn until_leads(s: &Spawned, leading: bool, what: &str) {
    let started = Instant::now();
    while leads(s) != Some(leading) {
        if started.elapsed() > Duration::from_secs(10) {
            let log: Vec<String> = s.log.lock().unwrap().iter().map(|l| plain(l)).collect();
            panic!("{what}: {log:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Injects a random network fault between `proxy`'s server and the store
/// every few hundred milliseconds until `stop`; answers how many.
async fn chaos(proxy: Arc<Proxy>, seed: u64, stop: Arc<AtomicBool>) -> usize {
    let mut rng = Rng::new(seed);
    let mut faults = 0;
    let ms = |n: u64| Duration::from_millis(n);
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(ms(100 + rng.below(300))).await;
        faults += 1;
        match rng.below(3) {
            0 => proxy.cut(),
            1 => {
                // Lost answers; then the connections go, so the client
                // learns of it rather than waiting out its deadline.
                proxy.swallow(true);
                tokio::time::sleep(ms(50 + rng.below(200))).await;
                proxy.swallow(false);
                proxy.cut();
            }
            _ => {
                proxy.delay(ms(5 + rng.below(25)));
                tokio::time::sleep(ms(200 + rng.below(300))).await;
                proxy.delay(Duration::ZERO);
            }
        }
    }
    faults
}

/// What the traders' requests came to.
#[derive(Default, Debug)]
struct Tally {
    acked: Vec<(String, u64)>,
    refused: usize,
    unavailable: usize,
    cut: usize,
    done: usize,
}

/// Acts at random through a random server of `servers` until `stop`.
async fn trade(
    servers: Arc<Mutex<Vec<SocketAddr>>>,
    cookie: String,
    seed: u64,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
) {
    let mut rng = Rng::new(seed);
    let mut mine: Vec<(&str, u64)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let addr = {
            let servers = servers.lock().unwrap();
            servers[rng.below(servers.len() as u64) as usize]
        };
        let symbol = if rng.below(4) == 0 {
            "ETH-USD"
        } else {
            "BTC-USD"
        };
        let side = if rng.below(2) == 0 { "buy" } else { "sell" };
        let price = format!("{}.{:02}", 99 + rng.below(3), rng.below(100));
        let qty = format!("0.0{:02}", 1 + rng.below(20));
        let (function, form, places) = match rng.below(10) {
            0..=5 => {
                let form = format!(
                    "symbol={symbol}&side={side}&order_type=limit&price={price}&quantity={qty}&time_in_force=GTC"
                );
                ("place_order", form, true)
            }
            6 | 7 if !mine.is_empty() => {
                let (symbol, id) = mine[rng.below(mine.len() as u64) as usize];
                let form = format!("symbol={symbol}&order_id={id}&price={price}&quantity={qty}");
                ("amend_order", form, false)
            }
            8 if !mine.is_empty() => {
                let (symbol, id) = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                (
                    "cancel_order",
                    format!("symbol={symbol}&order_id={id}"),
                    false,
                )
            }
            _ => ("cancel_all", format!("symbol={symbol}"), false),
        };
        // A stopped server accepts connections and never answers.
        let answer = tokio::time::timeout(
            Duration::from_secs(3),
            post(addr, function, Some(&cookie), &form),
        )
        .await;
        let mut t = tally.lock().unwrap();
        t.done += 1;
        match answer {
            Ok(Ok((200, _, body))) if places => {
                let id = body
                    .trim_matches('"')
                    .strip_prefix("Order ")
                    .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("an acknowledgement names its order: {body}"));
                t.acked.push((symbol.to_string(), id));
                mine.push((symbol, id));
            }
            Ok(Ok((200, _, _))) => {}
            Ok(Ok((400 | 404, _, _))) => t.refused += 1,
            Ok(Ok((503, _, _))) => t.unavailable += 1,
            Ok(Ok((status, _, body))) => panic!("{function} {form}: answered {status}: {body}"),
            // Killed or stopped under it.
            Ok(Err(_)) | Err(_) => t.cut += 1,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_or_paused_leader_is_replaced_and_the_ledger_stays_exact() {
    let seed = std::env::var("EXCHANGE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
            now.unwrap().as_nanos() as u64
        });
    eprintln!("leaders: EXCHANGE_TEST_SEED={seed}");
    let dir = tempfile::tempdir().unwrap();
    let store = store::EmbeddedStore::start(&dir.path().join("events"), ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let url = store.connection_string();
    let proxy = Arc::new(Proxy::start(store.addr()).await);
    let through_proxy = url.replace(
        &store.addr().port().to_string(),
        &proxy.addr.port().to_string(),
    );
    let mut a = server(&through_proxy);
    until_leads(&a, true, "the first server leads").await;
    let mut b = server(&url);
    until_leads(&b, false, "the second follows").await;
    let servers = Arc::new(Mutex::new(vec![a.addr, b.addr]));
    let mut cookies = Vec::new();
    for i in 0..TRADERS {
        let form = format!("username=trader{i}&password=correct+horse+battery");
        let (status, cookie, body) = post(a.addr, "sign_up", None, &form).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let cookie = cookie.expect("a session cookie");
        // Through the follower: passed on to the leader.
        let (status, _, body) = post(b.addr, "claim_faucet", Some(&cookie), "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
        cookies.push(cookie);
    }
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut rng = Rng::new(seed);
    let traders: Vec<_> = cookies
        .iter()
        .map(|c| {
            let (servers, tally, stop) = (servers.clone(), tally.clone(), stop.clone());
            tokio::spawn(trade(servers, c.clone(), rng.next_u64(), tally, stop))
        })
        .collect();
    let faulting = {
        let (proxy, stop) = (proxy.clone(), stop.clone());
        tokio::spawn(chaos(proxy, rng.next_u64(), stop))
    };
    let settle = || tokio::time::sleep(Duration::from_millis(1000));
    settle().await;

    // The leader killed under load: the follower takes over.
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    until_leads(&b, true, "the follower takes over from a killed leader").await;
    let (passed, report) = client::check(&["--eventstore-url", &url]);
    assert!(passed, "seed {seed}: after the kill: {report}");
    a = server(&through_proxy);
    until_leads(&a, false, "the killed server comes back as a follower").await;
    *servers.lock().unwrap() = vec![a.addr, b.addr];
    settle().await;

    // The leader paused past the lease: the other takes over; resumed, the
    // paused one steps down.
    let pid = b.child.id().to_string();
    let signal = |sig: &str| {
        let ok = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(ok.success(), "kill {sig}");
    };
    signal("-STOP");
    until_leads(&a, true, "a follower takes over from a paused leader").await;
    tokio::time::sleep(Duration::from_millis(LEASE_MS)).await;
    let (passed, report) = client::check(&["--eventstore-url", &url]);
    assert!(
        passed,
        "seed {seed}: after the takeover from the paused: {report}"
    );
    signal("-CONT");
    until_leads(&b, false, "the resumed leader steps down").await;
    settle().await;

    stop.store(true, Ordering::Relaxed);
    for t in traders {
        t.await.unwrap();
    }
    let faults = faulting.await.unwrap();
    let tally = std::mem::take(&mut *tally.lock().unwrap());
    eprintln!(
        "{faults} network faults; {} actions: {} orders acknowledged, {} refused, {} unavailable, {} cut",
        tally.done,
        tally.acked.len(),
        tally.refused,
        tally.unavailable,
        tally.cut
    );
    assert!(tally.acked.len() > 20, "seed {seed}: {tally:?}");
    // The resumed old leader never wrote again: each order was accepted
    // once, and the whole log keeps every rule.
    let client = eventstore::Client::new(url.parse().unwrap()).unwrap();
    let mut accepted: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for symbol in ["BTC-USD", "ETH-USD"] {
        for e in app::server::streams::load_market(&client, symbol)
            .await
            .unwrap()
        {
            if let orderbook::Event::OrderAccepted(o) = e {
                *accepted
                    .entry((symbol.to_string(), o.order_id))
                    .or_default() += 1;
            }
        }
    }
    for (order, n) in &accepted {
        assert_eq!(*n, 1, "seed {seed}: {order:?} accepted {n} times");
    }
    for order in &tally.acked {
        assert!(
            accepted.contains_key(order),
            "seed {seed}: acknowledged {order:?} is not in its stream"
        );
    }
    for s in [&mut a, &mut b] {
        s.child.kill().unwrap();
        s.child.wait().unwrap();
    }
    let (passed, report) = client::check(&["--eventstore-url", &url]);
    assert!(passed, "seed {seed}: {report}");
    store.stop().await.unwrap();
}
