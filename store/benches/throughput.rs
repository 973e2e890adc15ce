//! Store benchmarks through the official client over loopback TCP, fsync on,
//! 200-byte JSON events (run: `cargo bench -p store --bench throughput`).
//!
//! 1. The machine's raw fsync rate: 200-byte write + fdatasync, in a loop.
//! 2. Appends of 1 event from 1 client, and from 64 concurrent clients:
//!    events/s and latency p50/p99; the 1-client p50 as a ratio to one fsync.
//!    Then 1 event at a time to a stream already 300,000 events long: its
//!    p50 as a ratio to the 1-client p50 (an append must not cost more in a
//!    longer stream). Between them, two round trips that skip the disk (an
//!    append refused for its expected revision, a 1-event stream read), to
//!    show how much of an append is the round trip and how much the fsync.
//!    The same appends again through batch-append sessions (one long-lived
//!    call per client, one message each way per append).
//! 3. `$all` catch-up: reading 1,000,000 events (`STORE_BENCH_EVENTS`)
//!    from the start, as a read and as a subscription up to `caught_up`.
//! 4. Fan-out: 1,000 filtered `$all` subscriptions, each receiving every
//!    matching event appended while they are live.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore::{
    AppendToStreamOptions, Client, EventData, ExpectedRevision, ReadStreamOptions, StreamPosition,
    SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter,
};
use store::EmbeddedStore;

mod common;
use common::{appends, batch_appends, fill, payload, pct, raw_fsync, read_all};

/// The p50 of two round trips that never wait for the disk: an append the
/// writer refuses for its expected revision (client, server and writer
/// thread, no fsync) and a read of a 1-event stream (no writer at all).
async fn round_trips(url: &str, n: usize) -> (Duration, Duration) {
    let client = Client::new(url.parse().unwrap()).unwrap();
    let stream = "round-trip";
    let e = || EventData::json("TradeExecuted", &payload(0)).unwrap();
    client
        .append_to_stream(stream, &AppendToStreamOptions::default(), e())
        .await
        .unwrap();
    let refuse = AppendToStreamOptions::default().expected_revision(ExpectedRevision::NoStream);
    let mut refused = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let answer = client.append_to_stream(stream, &refuse, e()).await;
        refused.push(t.elapsed());
        assert!(matches!(
            answer,
            Err(eventstore::Error::WrongExpectedVersion { .. })
        ));
    }
    let mut reads = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let mut read = client
            .read_stream(stream, &ReadStreamOptions::default().max_count(1))
            .await
            .unwrap();
        while read.next().await.unwrap().is_some() {}
        reads.push(t.elapsed());
    }
    (pct(&mut refused, 0.5), pct(&mut reads, 0.5))
}

#[tokio::main]
async fn main() {
    let events: u64 = std::env::var("STORE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let parent =
        std::env::var("STORE_BENCH_DIR").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").into());
    // Cargo makes its temporary folder only when it builds the bench.
    std::fs::create_dir_all(&parent).unwrap();
    let dir = tempfile::tempdir_in(parent).unwrap();
    let mut fsync = raw_fsync(dir.path(), 500);
    let fsync_p50 = pct(&mut fsync, 0.5);
    println!(
        "raw fsync (200 B + fdatasync): p50 {fsync_p50:?}, p99 {:?}, {:.0}/s",
        pct(&mut fsync, 0.99),
        1.0 / fsync_p50.as_secs_f64()
    );

    // As the exchange runs it: one user with a random password, checked on
    // every call. STORE_BENCH_INSECURE=1 leaves the credentials out, to
    // see what checking them costs.
    let access = if std::env::var_os("STORE_BENCH_INSECURE").is_some() {
        store::Access::Insecure
    } else {
        store::Access::Users(store::Users::random_admin().unwrap())
    };
    let data = dir.path().join("events");
    let addr = "127.0.0.1:0".parse().unwrap();
    let server = EmbeddedStore::start_with(&data, addr, store::Options::default(), access)
        .await
        .unwrap();
    let url = server.connection_string();

    let (rate, mut lat) = appends(&url, "bench", 1, 2_000).await;
    let p50 = pct(&mut lat, 0.5);
    println!(
        "append 1 event, 1 client: {rate:.0} events/s, p50 {p50:?}, p99 {:?}; p50 / fsync p50 = {:.2}",
        pct(&mut lat, 0.99),
        p50.as_secs_f64() / fsync_p50.as_secs_f64()
    );
    let (refused, read) = round_trips(&url, 2_000).await;
    println!(
        "without the disk, 1 client: append refused by its expected revision p50 {refused:?} ({:.2}x fsync p50); read of a 1-event stream p50 {read:?} ({:.2}x)",
        refused.as_secs_f64() / fsync_p50.as_secs_f64(),
        read.as_secs_f64() / fsync_p50.as_secs_f64()
    );
    let (rate, mut lat) = appends(&url, "bench", 64, 500).await;
    println!(
        "append 1 event, 64 clients: {rate:.0} events/s, p50 {:?}, p99 {:?}",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );
    let (rate, mut lat) = batch_appends(&url, "batch", 1, 2_000).await;
    let batch_p50 = pct(&mut lat, 0.5);
    println!(
        "batch append 1 event, 1 client: {rate:.0} events/s, p50 {batch_p50:?}, p99 {:?}; p50 / fsync p50 = {:.2}",
        pct(&mut lat, 0.99),
        batch_p50.as_secs_f64() / fsync_p50.as_secs_f64()
    );
    let (rate, mut lat) = batch_appends(&url, "batch", 64, 500).await;
    println!(
        "batch append 1 event, 64 clients: {rate:.0} events/s, p50 {:?}, p99 {:?}",
        pct(&mut lat, 0.5),
        pct(&mut lat, 0.99)
    );

    // Fill to `events` through the library (batches of 1,000): the first
    // 300,000 into one long stream, the rest spread over 100 streams.
    let store = server.store().clone();
    let have = store.records();
    let long = 300_000.min(events.saturating_sub(have));
    fill(&store, events, |n| {
        if n < have + long {
            "long-0".to_string()
        } else {
            format!("fill-{}", n % 100)
        }
    })
    .await;

    // An append's cost must not grow with its stream's length.
    let (_, mut lat) = appends(&url, "long", 1, 500).await;
    let long_p50 = pct(&mut lat, 0.5);
    println!(
        "append 1 event to a stream of {long} events, 1 client: p50 {long_p50:?}, p99 {:?}; p50 / 1-client p50 = {:.2}",
        pct(&mut lat, 0.99),
        long_p50.as_secs_f64() / p50.as_secs_f64()
    );

    let rate = read_all(&url, events).await;
    println!("$all read of {events} events: {rate:.0} events/s");
    let client = Client::new(url.parse().unwrap()).unwrap();
    let t = Instant::now();
    let mut sub = client
        .subscribe_to_all(&SubscribeToAllOptions::default().position(StreamPosition::Start))
        .await;
    let mut got = 0u64;
    loop {
        match sub.next_subscription_event().await.unwrap() {
            SubscriptionEvent::EventAppeared(_) => got += 1,
            SubscriptionEvent::CaughtUp => break,
            _ => {}
        }
    }
    println!(
        "$all catch-up subscription of {got} events: {:.0} events/s",
        got as f64 / t.elapsed().as_secs_f64()
    );
    drop(sub);

    // Fan-out: 1,000 filtered subscriptions from the end, then 200 matching
    // events (and as many that do not match) appended.
    let subscribers = 1_000;
    let matching = 200u64;
    let filter = || SubscriptionFilter::on_event_type().add_prefix("Fanout");
    let ready = Arc::new(tokio::sync::Barrier::new(subscribers + 1));
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let client = client.clone();
        let ready = ready.clone();
        tasks.push(tokio::spawn(async move {
            let opts = SubscribeToAllOptions::default()
                .position(StreamPosition::End)
                .filter(filter());
            let mut sub = client.subscribe_to_all(&opts).await;
            loop {
                if let SubscriptionEvent::CaughtUp = sub.next_subscription_event().await.unwrap() {
                    break;
                }
            }
            ready.wait().await;
            let mut got = 0;
            while got < matching {
                if let SubscriptionEvent::EventAppeared(_) =
                    sub.next_subscription_event().await.unwrap()
                {
                    got += 1;
                }
            }
            Instant::now()
        }));
    }
    ready.wait().await;
    let t = Instant::now();
    for i in 0..matching {
        let e = EventData::json("FanoutTrade", &payload(i)).unwrap();
        let other = EventData::json("OrderAccepted", &payload(i)).unwrap();
        client
            .append_to_stream("fanout", &AppendToStreamOptions::default(), vec![e, other])
            .await
            .unwrap();
    }
    let mut last = t;
    for task in tasks {
        last = last.max(task.await.unwrap());
    }
    let secs = (last - t).as_secs_f64();
    println!(
        "fan-out to {subscribers} filtered subscriptions: {matching} matching events each, {:.0} deliveries/s, all delivered {:.0} ms after the first append",
        (subscribers as u64 * matching) as f64 / secs,
        secs * 1000.0
    );
    server.stop().await.unwrap();
    std::io::stdout().flush().unwrap();
}
