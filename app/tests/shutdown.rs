//! Ctrl-C (SIGINT) stops a busy exchange cleanly: it exits with success
//! and logs no error, because the live subscription ends before the
//! embedded store goes down.

mod client;

use std::time::{Duration, Instant};

use client::post;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_busy_exchange_without_an_error() {
    let data = tempfile::tempdir().unwrap();
    let events = data.path().join("events");
    let mut server = client::spawn(&["--simulate", "--data", events.to_str().unwrap()]);
    let addr = server.addr;
    let form = "username=closer&password=correct+horse";
    let (status, cookie, body) = post(addr, "sign_up", None, form).await.unwrap();
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    post(addr, "claim_faucet", Some(&cookie), "").await.unwrap();
    let order = "symbol=BTC-USD&side=buy&order_type=limit&price=100&quantity=0.01";
    for _ in 0..10 {
        let (status, _, body) = post(addr, "place_order", Some(&cookie), order)
            .await
            .unwrap();
        assert_eq!(status, 200, "{body}");
    }
    // A moment for the simulator's bots to be trading when the stop comes
    // (what is asserted holds whenever it comes; this only makes it busy).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = server.child.id().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the exchange did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Every line it wrote, to the last.
    server.reader.join().unwrap();
    let log = server.log.lock().unwrap().join("\n");
    assert!(status.success(), "{status}:\n{log}");
    assert!(log.contains("market stopping"), "{log}");
    assert!(!log.contains("ERROR"), "{log}");
}
