//! What both store benchmarks share: the event they append, percentiles, the
//! machine's raw fsync, appends and `$all` reads through the official
//! client, and filling a store through the library.

#![allow(dead_code)] // each bench uses its own part

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventstore::{
    AppendToStreamOptions, BatchAppendClient, BatchAppendOptions, Client, EventData,
    ExpectedRevision, ReadAllOptions, StreamPosition,
};
use store::{Expected, NewEvent, Store};

pub fn payload(n: u64) -> serde_json::Value {
    // About 200 bytes of JSON, like a trade event.
    serde_json::json!({
        "symbol": "BTC-USD", "trade_id": n, "price": "64000.25", "quantity": "0.0125",
        "maker_order_id": n * 2, "taker_order_id": n * 2 + 1, "maker_account": 17,
        "taker_account": 42, "taker_side": "buy", "executed_at": 1_700_000_000_000_000u64 + n
    })
}

pub fn pct(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)]
}

pub fn raw_fsync(dir: &std::path::Path, n: usize) -> Vec<Duration> {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let buf = [b'x'; 200];
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        f.write_all_at(&buf, (i * 200) as u64).unwrap();
        f.sync_data().unwrap();
        out.push(t.elapsed());
    }
    f.flush().unwrap();
    out
}

/// One client's way to append one event to a stream.
pub trait Appender: Send + Sync + 'static {
    fn append(&self, stream: &str, event: EventData) -> impl Future<Output = ()> + Send;
}

impl Appender for Client {
    async fn append(&self, stream: &str, event: EventData) {
        self.append_to_stream(stream, &AppendToStreamOptions::default(), event)
            .await
            .unwrap();
    }
}

/// A client with its batch-append session open.
pub struct Session {
    _client: Client,
    batch: BatchAppendClient,
}

impl Appender for Session {
    async fn append(&self, stream: &str, event: EventData) {
        self.batch
            .append_to_stream(stream, ExpectedRevision::Any, vec![event])
            .await
            .unwrap();
    }
}

/// `clients` clients, each appending `per_client` events one at a time to
/// its own stream `<prefix>-<client>`.
pub async fn appends(
    url: &str,
    prefix: &str,
    clients: usize,
    per_client: usize,
) -> (f64, Vec<Duration>) {
    // Connected before the clock starts: a client's first call finds the
    // node and loads the TLS roots, which is not what this measures.
    let mut connected = Vec::with_capacity(clients);
    for c in 0..clients {
        let client = Client::new(url.parse().unwrap()).unwrap();
        let e = EventData::json("Connected", &serde_json::json!({})).unwrap();
        client.append(&format!("{prefix}-{c}"), e).await;
        connected.push(client);
    }
    timed(connected, prefix, per_client).await
}

/// [`appends`] through batch-append sessions: each client opens one
/// session and sends its appends on it, one event and one in flight at a
/// time.
pub async fn batch_appends(
    url: &str,
    prefix: &str,
    clients: usize,
    per_client: usize,
) -> (f64, Vec<Duration>) {
    let mut sessions = Vec::with_capacity(clients);
    for _ in 0..clients {
        let client = Client::new(url.parse().unwrap()).unwrap();
        let batch = client
            .batch_append(&BatchAppendOptions::default())
            .await
            .unwrap();
        sessions.push(Session {
            _client: client,
            batch,
        });
    }
    timed(sessions, prefix, per_client).await
}

/// Each of `appenders` appends `per_client` events, one at a time, to its
/// stream `<prefix>-<index>`, all at once: events/s over all of them and
/// every append's latency.
async fn timed<A: Appender>(
    appenders: Vec<A>,
    prefix: &str,
    per_client: usize,
) -> (f64, Vec<Duration>) {
    let clients = appenders.len();
    let start = Instant::now();
    let tasks: Vec<_> = appenders
        .into_iter()
        .enumerate()
        .map(|(c, appender)| {
            let stream = format!("{prefix}-{c}");
            tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_client);
                for i in 0..per_client {
                    let e = EventData::json("TradeExecuted", &payload(i as u64)).unwrap();
                    let t = Instant::now();
                    appender.append(&stream, e).await;
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    (
        (clients * per_client) as f64 / start.elapsed().as_secs_f64(),
        all,
    )
}

/// Reads `$all` from the start, `events` events, which must be there:
/// events/s.
pub async fn read_all(url: &str, events: u64) -> f64 {
    let reader = Client::new(url.parse().unwrap()).unwrap();
    let t = Instant::now();
    let opts = ReadAllOptions::default()
        .position(StreamPosition::Start)
        .max_count(events as usize);
    let mut read = reader.read_all(&opts).await.unwrap();
    let mut got = 0u64;
    while read.next().await.unwrap().is_some() {
        got += 1;
    }
    assert_eq!(got, events);
    got as f64 / t.elapsed().as_secs_f64()
}

/// Appends [`payload`] events through the library, 1,000 per append, until
/// `$all` holds `to` records; `stream(n)` names the stream of the append
/// that starts at record `n`.
pub async fn fill(store: &Store, to: u64, stream: impl Fn(u64) -> String) {
    let body = Bytes::from(serde_json::to_vec(&payload(0)).unwrap());
    let mut n = store.records();
    while n < to {
        let batch: Vec<NewEvent> = (0..1_000u64.min(to - n))
            .map(|i| NewEvent {
                id: u128::from(n + i) << 32 | 0xbe,
                event_type: Bytes::from_static(b"TradeExecuted"),
                is_json: true,
                custom_metadata: Bytes::new(),
                data: body.clone(),
            })
            .collect();
        let name = Bytes::from(stream(n));
        n += batch.len() as u64;
        store.append(name, Expected::Any, batch).await.unwrap();
    }
}
