//! The whole exchange (server and embedded store, one process) killed with
//! SIGKILL at random moments under order load, again and again. After each
//! restart every acknowledged order is in its market stream exactly once,
//! every trade carries its fees and is a fill of both of its accounts
//! exactly once, and `exchange check` proves the ledger the log folds to
//! keeps its rules (0 ≤ reserved ≤ total; per asset, balances plus fees
//! equal deposits; every order holding exactly what its book says it
//! costs), event by event.
//!
//! The traders talk HTTP to the server binary as browsers do: limit,
//! market and stop orders, amendments, cancels and cancel-all. Every
//! answer must be an acknowledgement, a refusal (400/404) or "unavailable"
//! (503); a 500, or a connection broken while no kill was under way, fails
//! the test. The log is read straight from the data folder (with
//! `store::recovery::examine`, which changes nothing) while the exchange
//! is stopped. Also here: `exchange check` finding a forged trade, and a
//! damaged log stopping the exchange from starting.
#![cfg(feature = "ssr")]

use orderbook::sim::Rng;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use accounts::{AccountEvent, Ledger};
use orderbook::Event;

mod client;
use client::post;

/// Kill cycles; the issue asks for at least 30.
const ROUNDS: usize = 30;
const TRADERS: usize = 4;

/// The server binary on a fresh port with its own embedded store in
/// `data`, once it answers.
fn start(data: &Path) -> (Child, SocketAddr) {
    // One name across restarts on new ports: a restarted server takes the
    // lead back at once instead of waiting out its own lease.
    // The traders place as fast as they are answered: no order rate
    // limit stands in the way of what is measured here, durability.
    let data = data.to_str().unwrap();
    let server = client::spawn(&[
        "--advertise-url",
        "http://crash-loop.invalid",
        "--data",
        data,
        "--orders-per-10s",
        "1000000",
    ]);
    (server.child, server.addr)
}

type Acked = Arc<Mutex<Vec<(String, u64)>>>;

/// What the traders' requests came to, over the whole run.
#[derive(Default)]
struct Tally {
    /// 400/404: refused by the exchange's rules (funds, caps, an order
    /// that filled meanwhile).
    refused: usize,
    /// 503: the market paused or restarting.
    unavailable: usize,
    /// Requests cut by a SIGKILL.
    cut: usize,
}

/// The order id an acknowledgement names: "Order 12 is on the book." and
/// every other answer to a new order start so.
fn acked_id(body: &str) -> u64 {
    body.trim_matches('"')
        .strip_prefix("Order ")
        .map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n?.parse().ok())
        .unwrap_or_else(|| panic!("an acknowledgement names its order: {body}"))
}

/// Trades at random until told to stop: limit, market and stop orders on
/// both markets, amendments and cancels of its own acknowledged orders,
/// cancel-all. Records every order the server acknowledged. An answer
/// other than 200, a refusal (400, 404) or "unavailable" (503) fails the
/// test, and so does a broken connection unless the server was being
/// killed.
async fn trade(
    addr: SocketAddr,
    cookie: String,
    seed: u64,
    acked: Acked,
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    killing: Arc<AtomicBool>,
) {
    let mut rng = Rng::new(seed);
    let mut mine: Vec<(&str, u64)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let (symbol, qty) = if rng.below(4) == 0 {
            ("ETH-USD", format!("0.{:03}", 1 + rng.below(50)))
        } else {
            ("BTC-USD", format!("0.{:04}", 1 + rng.below(99)))
        };
        let side = if rng.below(2) == 0 { "buy" } else { "sell" };
        let price = format!("{}.{:02}", 99 + rng.below(3), rng.below(100));
        let order = |kind: &str, terms: &str| {
            format!("symbol={symbol}&side={side}&order_type={kind}&{terms}&time_in_force=GTC")
        };
        let (function, form, places) = match rng.below(100) {
            0..=54 => {
                let form = order("limit", &format!("price={price}&quantity={qty}"));
                ("place_order", form, true)
            }
            55..=64 => {
                let terms = match side {
                    "buy" => "quote_amount=0.5".to_string(),
                    _ => format!("quantity={qty}"),
                };
                ("place_order", order("market", &terms), true)
            }
            65..=72 => {
                let terms = format!("price={price}&quantity={qty}&trigger_price={price}");
                ("place_order", order("stop_limit", &terms), true)
            }
            73..=84 if !mine.is_empty() => {
                let (symbol, id) = mine[rng.below(mine.len() as u64) as usize];
                let form = format!("symbol={symbol}&order_id={id}&price={price}&quantity={qty}");
                ("amend_order", form, false)
            }
            85..=96 if !mine.is_empty() => {
                let (symbol, id) = mine.swap_remove(rng.below(mine.len() as u64) as usize);
                (
                    "cancel_order",
                    format!("symbol={symbol}&order_id={id}"),
                    false,
                )
            }
            _ => ("cancel_all", format!("symbol={symbol}"), false),
        };
        match post(addr, function, Some(&cookie), &form).await {
            Ok((200, _, body)) if places => {
                let id = acked_id(&body);
                acked.lock().unwrap().push((symbol.to_string(), id));
                mine.push((symbol, id));
            }
            Ok((200, _, _)) => {}
            Ok((400 | 404, _, _)) => tally.lock().unwrap().refused += 1,
            Ok((503, _, _)) => tally.lock().unwrap().unavailable += 1,
            Ok((status, _, body)) => panic!("{function} {form}: answered {status}: {body}"),
            Err(_) if killing.load(Ordering::Relaxed) => {
                tally.lock().unwrap().cut += 1;
                return;
            }
            Err(e) => panic!("{function} {form}: the connection broke while the server ran: {e}"),
        }
    }
}

/// What the log holds, checked against what was acknowledged: every
/// acknowledged order is in its market stream once, every trade carries
/// its fees (it is the whole of its settlement), and the ledger the log
/// folds to keeps every rule, each order holding what its book says.
fn verify(data: &Path, acked: &[(String, u64)], round: usize) {
    let markets: BTreeMap<String, orderbook::Market> = orderbook::Market::defaults()
        .into_iter()
        .map(|m| (m.symbol.to_string(), m))
        .collect();
    let mut books: BTreeMap<String, orderbook::Book> = markets
        .iter()
        .map(|(s, m)| (s.clone(), orderbook::Book::new(m.clone())))
        .collect();
    let mut ledger = Ledger::new();
    let mut accepted: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut trades: BTreeSet<(String, u64)> = BTreeSet::new();
    store::recovery::examine(data, |record| {
        let stream = String::from_utf8_lossy(&record.stream).into_owned();
        if let Some(symbol) = stream.strip_prefix("orderbook-") {
            let text = std::str::from_utf8(&record.data).unwrap();
            let event = Event::from_json(text).unwrap();
            match &event {
                Event::OrderAccepted(o) => {
                    *accepted
                        .entry((symbol.to_string(), o.order_id))
                        .or_default() += 1;
                }
                Event::TradeExecuted(t) => {
                    let fresh = trades.insert((symbol.to_string(), t.trade_id));
                    assert!(fresh, "round {round}: trade {symbol} {} twice", t.trade_id);
                    assert!(
                        t.fees.is_some(),
                        "round {round}: trade {symbol} {} has no fees",
                        t.trade_id
                    );
                }
                _ => {}
            }
            let book = books.get_mut(symbol).expect("a known market");
            let revision = book.events_applied();
            book.apply(&event);
            let spec = &markets[symbol].spec;
            let folded = ledger.apply_market(spec, revision, &event);
            assert_eq!(folded, Ok(true), "round {round}: {symbol}@{revision}");
        } else if stream == "accounts" || stream.starts_with("account-") {
            let event = AccountEvent::from_json(&record.data).unwrap();
            ledger.apply(&event);
        }
    })
    .unwrap_or_else(|e| panic!("round {round}: the log must read back: {e}"));
    for (key, n) in &accepted {
        assert_eq!(*n, 1, "round {round}: order {key:?} accepted {n} times");
    }
    for order in acked {
        assert!(
            accepted.contains_key(order),
            "round {round}: acknowledged order {order:?} is not in its market stream"
        );
    }
    // Each trade is in both of its accounts' fills exactly once.
    let mut fills: BTreeMap<(String, u64), usize> = BTreeMap::new();
    for acc in ledger.accounts() {
        for (_, f) in acc.fills.iter() {
            *fills.entry((f.symbol.to_string(), f.trade_id)).or_default() += 1;
        }
    }
    for trade in &trades {
        assert_eq!(
            fills.get(trade),
            Some(&2),
            "round {round}: trade {trade:?} in its accounts"
        );
    }
    check(data, round);
}

/// `exchange check` on the data folder: every ledger rule holds over the
/// whole log, each order holding what its book says.
fn check(data: &Path, round: usize) {
    let (passed, report) = client::check(&["--data", data.to_str().unwrap()]);
    assert!(passed, "round {round}: exchange check: {report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_orders_and_trades_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events");
    let (mut child, mut addr) = start(&data);
    let mut cookies = Vec::new();
    for i in 0..TRADERS {
        let form = format!("username=trader{i}&password=correct+horse+battery");
        let (status, cookie, body) = post(addr, "sign_up", None, &form).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let cookie = cookie.expect("a session cookie");
        let (status, _, body) = post(addr, "claim_faucet", Some(&cookie), "").await.unwrap();
        assert_eq!(status, 200, "{body}");
        cookies.push(cookie);
    }
    let acked: Acked = Arc::default();
    let tally: Arc<Mutex<Tally>> = Arc::default();
    let mut rng = Rng::new(0x5eed_c0ff_ee15_900d);
    for round in 0..ROUNDS {
        // Load, then a SIGKILL at a random moment of it.
        let stop = Arc::new(AtomicBool::new(false));
        let killing = Arc::new(AtomicBool::new(false));
        let traders: Vec<_> = cookies
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let seed = rng.next_u64() ^ i as u64;
                let (acked, tally) = (acked.clone(), tally.clone());
                let (stop, killing) = (stop.clone(), killing.clone());
                tokio::spawn(trade(addr, c.clone(), seed, acked, tally, stop, killing))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50 + rng.below(450))).await;
        killing.store(true, Ordering::Relaxed);
        child.kill().unwrap();
        child.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for t in traders {
            t.await.unwrap();
        }
        // Restart: once it answers, recovery is done; stop it again and
        // read what it left.
        let (mut again, _) = start(&data);
        again.kill().unwrap();
        again.wait().unwrap();
        verify(&data, &acked.lock().unwrap(), round);
        // And on with the load; sessions live in the log, so the traders
        // stay logged in.
        (child, addr) = start(&data);
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > ROUNDS * 10,
        "the test must place orders under load: {} acknowledged",
        acked.len()
    );
    let tally = tally.lock().unwrap();
    eprintln!(
        "{} orders acknowledged, {} refused, {} unavailable, {} cut by kills over {ROUNDS} kills",
        acked.len(),
        tally.refused,
        tally.unavailable,
        tally.cut
    );
}

/// Damage to acknowledged data stops the exchange from starting, with the
/// store's words (file, offset, position) and a failing status, and
/// nothing on disk is changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_log_stops_the_exchange_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events");
    let (mut child, addr) = start(&data);
    let form = "username=someone&password=correct+horse+battery";
    let (status, _, body) = post(addr, "sign_up", None, form).await.unwrap();
    assert_eq!(status, 200, "{body}");
    child.kill().unwrap();
    child.wait().unwrap();
    // Flip a byte inside the first record (after the 64-byte header).
    let segment = data.join(format!("{:020}.seg", 0));
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[64 + 20] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/exchange.json");
    let out = Command::new(env!("CARGO_BIN_EXE_exchange"))
        .args(["--addr", "127.0.0.1:0", "--site-root", "/nonexistent"])
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(&data)
        .env_remove("EVENTSTORE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the event log is damaged")
            && stderr.contains("00000000000000000000.seg at byte offset 64 (log position 64)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&segment).unwrap(), bytes, "nothing changed");
}

/// `exchange check` reports a trade that paid out coins nobody held: the
/// account, the asset and the event, and exits 1. The trade is forged
/// straight into the store, as a buggy or second writer could.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_money_that_was_never_held() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events");
    let (mut child, addr) = start(&data);
    for name in ["seller", "buyer"] {
        let form = format!("username={name}&password=correct+horse+battery");
        let (status, cookie, body) = post(addr, "sign_up", None, &form).await.unwrap();
        assert_eq!(status, 200, "{body}");
        let cookie = cookie.expect("a session cookie");
        let (status, _, body) = post(addr, "claim_faucet", Some(&cookie), "").await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    check(&data, 0);
    // Account 1 "sells" 1,000 BTC it never had to account 2.
    let connection = app::server::Connection::Embedded { data: data.clone() };
    let (client, store) = connection.open().await.unwrap();
    let trade = orderbook::Event::TradeExecuted(orderbook::TradeExecuted {
        symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
        trade_id: 1,
        maker_order_id: 1,
        taker_order_id: 2,
        maker_account: 1,
        taker_account: 2,
        taker_side: orderbook::Side::Buy,
        price: "1".parse().unwrap(),
        quantity: "1000".parse().unwrap(),
        executed_at: 0,
        fees: Some(Box::new(orderbook::TradeFees {
            maker: Default::default(),
            taker: Default::default(),
        })),
    });
    let forged = app::server::streams::market_event_data(&trade);
    client
        .append_to_stream("orderbook-BTC-USD", &Default::default(), forged)
        .await
        .unwrap();
    store.unwrap().stop().await.unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/exchange.json");
    let out = Command::new(env!("CARGO_BIN_EXE_exchange"))
        .args(["check", "--config", config, "--data"])
        .arg(&data)
        .env_remove("EVENTSTORE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report
            .contains("violation: account 1, BTC: reserved 0 is not between 0 and the total -999")
            && report.contains("(first at orderbook-BTC-USD@1,"),
        "{report}"
    );
    assert!(report.trim_end().ends_with(": 1 broken"), "{report}");
}
