//! What this machine and the official client allow, whatever the server does
//! (run: `cargo bench -p store --bench ceiling`).
//!
//! The store's performance goals are figures for the whole path: the
//! official `eventstore` client, gRPC over loopback TCP and the server. This
//! bench holds the client and the machine fixed and takes the store out:
//! the same calls as `throughput` go to a *null server*, a tonic `Streams`
//! service that does no work (an append is answered at once and stores
//! nothing; a read streams one prepared event over and over; a live event is
//! one prepared message). Whatever the null server reaches is the most any
//! server could reach here, and the CPU the client's own threads spend per
//! operation is a floor no server can lower.
//!
//! 1. Raw loopback TCP: 64 connections, one 200-byte message in flight each,
//!    echoed (the network part of one append per client, with no gRPC).
//! 2. Appends of 1 event, 1 client and 64 clients, plain and through
//!    batch-append sessions (no fsync: nothing is stored), with the client's
//!    and the server's CPU per append. Then 1-client batch appends to a null
//!    server that does write and fsync each append, on the task that
//!    received it: the lowest latency a durable server can have here.
//! 3. An `$all` read of 1,000,000 events.
//! 4. One event reaching 10,000 `$all` subscriptions of one client (as the
//!    exchange opens one per viewer): time until each subscription has it.
//!
//! Then batch appends, the fan-out and the `$all` read again against the
//! real store, to set it beside the null server in the same run.
//!
//! The server runs on a runtime of its own (threads named `server`, plus the
//! store's writer thread), so the CPU of each side is read per thread from
//! `/proc/self/task`.

// tonic's service traits return `Result<_, Status>`, as the store's do.
#![allow(clippy::result_large_err)]

use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use eventstore::{Client, EventData, StreamPosition, SubscribeToAllOptions, SubscriptionEvent};
use futures::{Stream, StreamExt};
use store::proto::server_features::server_features_server::ServerFeaturesServer;
use store::proto::streams::read_resp::{self, ReadEvent, read_event::RecordedEvent};
use store::proto::streams::streams_server::{Streams, StreamsServer};
use store::proto::streams::{self, AppendReq, AppendResp, ReadReq, ReadResp, append_resp};
use store::proto::{StreamIdentifier, Uuid, uuid};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tonic::{Request, Response, Status, Streaming};

mod common;
use common::{appends, batch_appends, fill, payload, pct, raw_fsync, read_all};

/// A `Streams` service that does no work: see the crate doc.
#[derive(Clone)]
struct NullStreams {
    /// A live event for every subscription; the value is its position.
    live: broadcast::Sender<u64>,
    /// The one event every read and subscription sends.
    event: Arc<RecordedEvent>,
    /// When set, each batch append writes 200 bytes to this file and
    /// fsyncs it on the task that received it before answering: the least
    /// a durable server can do, with no hand-off to another thread.
    durable: Option<Arc<(std::fs::File, AtomicU64)>>,
}

impl NullStreams {
    fn event_at(&self, position: u64) -> Result<ReadResp, Status> {
        let mut event = RecordedEvent::clone(&self.event);
        event.commit_position = position;
        event.prepare_position = position;
        event.stream_revision = position;
        Ok(ReadResp {
            content: Some(read_resp::Content::Event(ReadEvent {
                event: Some(event),
                link: None,
                position: Some(read_resp::read_event::Position::CommitPosition(position)),
            })),
        })
    }
}

type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadResp, Status>> + Send>>;

fn content(c: read_resp::Content) -> Result<ReadResp, Status> {
    Ok(ReadResp { content: Some(c) })
}

#[tonic::async_trait]
impl Streams for NullStreams {
    type ReadStream = ReadStream;

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<ReadStream>, Status> {
        use streams::read_req::options::CountOption;
        let options = request.into_inner().options.unwrap_or_default();
        match options.count_option {
            Some(CountOption::Subscription(_)) => {
                let head = futures::stream::iter([
                    content(read_resp::Content::Confirmation(
                        read_resp::SubscriptionConfirmation {
                            subscription_id: "null".into(),
                        },
                    )),
                    content(read_resp::Content::CaughtUp(read_resp::CaughtUp {})),
                ]);
                let null = self.clone();
                let live = futures::stream::unfold(
                    (null.live.subscribe(), null),
                    |(mut live, null)| async move {
                        // A subscription never ends with OK (the client
                        // would loop on it): UNAVAILABLE when the bench ends.
                        let item = match live.recv().await {
                            Ok(position) => null.event_at(position),
                            Err(_) => Err(Status::unavailable("the bench is over")),
                        };
                        Some((item, (live, null)))
                    },
                );
                Ok(Response::new(Box::pin(head.chain(live))))
            }
            Some(CountOption::Count(n)) => {
                let null = self.clone();
                Ok(Response::new(Box::pin(futures::stream::iter(
                    (0..n).map(move |p| null.event_at(p)),
                ))))
            }
            None => Err(Status::invalid_argument("no count")),
        }
    }

    type BatchAppendStream =
        Pin<Box<dyn Stream<Item = Result<streams::BatchAppendResp, Status>> + Send>>;

    async fn batch_append(
        &self,
        request: Request<Streaming<streams::BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        use streams::batch_append_resp::{self, success};
        let durable = self.durable.clone();
        let replies = request.into_inner().filter_map(move |req| {
            let durable = durable.clone();
            async move {
                let req = match req {
                    Ok(req) if !req.is_final => return None,
                    Ok(req) => req,
                    Err(e) => return Some(Err(e)),
                };
                if let Some(log) = durable {
                    let (file, end) = &*log;
                    let at = end.fetch_add(200, Ordering::Relaxed);
                    file.write_all_at(&[b'x'; 200], at).unwrap();
                    file.sync_data().unwrap();
                }
                Some(Ok(streams::BatchAppendResp {
                    correlation_id: req.correlation_id,
                    stream_identifier: req.options.and_then(|o| o.stream_identifier),
                    expected_stream_position: None,
                    result: Some(batch_append_resp::Result::Success(
                        batch_append_resp::Success {
                            current_revision_option: Some(
                                success::CurrentRevisionOption::CurrentRevision(0),
                            ),
                            position_option: Some(success::PositionOption::Position(
                                store::proto::AllStreamPosition {
                                    commit_position: 0,
                                    prepare_position: 0,
                                },
                            )),
                        },
                    )),
                }))
            }
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        let mut incoming = request.into_inner();
        while incoming.next().await.transpose()?.is_some() {}
        Ok(Response::new(AppendResp {
            result: Some(append_resp::Result::Success(append_resp::Success {
                current_revision_option: Some(
                    append_resp::success::CurrentRevisionOption::CurrentRevision(0),
                ),
                position_option: Some(append_resp::success::PositionOption::Position(
                    append_resp::Position {
                        commit_position: 0,
                        prepare_position: 0,
                    },
                )),
            })),
        }))
    }

    async fn delete(
        &self,
        _: Request<streams::DeleteReq>,
    ) -> Result<Response<streams::DeleteResp>, Status> {
        Err(Status::unimplemented("the null server deletes nothing"))
    }

    async fn tombstone(
        &self,
        _: Request<streams::TombstoneReq>,
    ) -> Result<Response<streams::TombstoneResp>, Status> {
        Err(Status::unimplemented("the null server deletes nothing"))
    }
}

fn null_streams() -> NullStreams {
    let event = RecordedEvent {
        id: Some(Uuid {
            value: Some(uuid::Value::String(
                "0b6c7bd2-4b7e-4c3a-9d3a-6f1f4f0e8a11".into(),
            )),
        }),
        stream_identifier: Some(StreamIdentifier {
            stream_name: Bytes::from_static(b"trades-BTC-USD"),
        }),
        stream_revision: 0,
        prepare_position: 0,
        commit_position: 0,
        metadata: [
            ("type", "TradeExecuted"),
            ("content-type", "application/json"),
            ("created", "17000000000000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        custom_metadata: Bytes::new(),
        data: Bytes::from(serde_json::to_vec(&payload(0)).unwrap()),
    };
    NullStreams {
        live: broadcast::channel(1024).0,
        event: Arc::new(event),
        durable: None,
    }
}

/// CPU time (user + system) of this process's threads so far: those of the
/// server side (named `server` or `store-writer`) and all the others.
fn cpu_split() -> (Duration, Duration) {
    let tick = 100.0; // USER_HZ, 100 on Linux
    let (mut server, mut client) = (0u64, 0u64);
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue;
        };
        // "tid (name) state ppid ..." with utime and stime the 12th and
        // 13th fields after the name.
        let (head, rest) = stat.rsplit_once(')').unwrap();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let name = head.split_once('(').unwrap().1;
        if name.starts_with("server") || name.starts_with("store-writer") {
            server += ticks;
        } else {
            client += ticks;
        }
    }
    (
        Duration::from_secs_f64(server as f64 / tick),
        Duration::from_secs_f64(client as f64 / tick),
    )
}

/// Measures `work`, which does `ops` operations: the CPU per operation of
/// the server side and of the client side, in microseconds.
async fn cpu_per_op<T>(ops: u64, work: impl Future<Output = T>) -> (T, f64, f64) {
    let (s0, c0) = cpu_split();
    let out = work.await;
    let (s1, c1) = cpu_split();
    let per = |d: Duration| d.as_secs_f64() * 1e6 / ops as f64;
    (out, per(s1 - s0), per(c1 - c0))
}

/// Round trips/s of `clients` loopback TCP connections, each with one
/// 200-byte message in flight, echoed by the server runtime.
async fn raw_round_trips(server: &tokio::runtime::Handle, clients: usize, each: usize) -> f64 {
    let listener = server
        .spawn(TcpListener::bind("127.0.0.1:0"))
        .await
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    server.spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 200];
                while socket.read_exact(&mut buf).await.is_ok() {
                    if socket.write_all(&buf).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut sockets = Vec::new();
    for _ in 0..clients {
        let socket = TcpStream::connect(addr).await.unwrap();
        socket.set_nodelay(true).unwrap();
        sockets.push(socket);
    }
    let start = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            tokio::spawn(async move {
                let mut buf = [7u8; 200];
                for _ in 0..each {
                    socket.write_all(&buf).await.unwrap();
                    socket.read_exact(&mut buf).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    (clients * each) as f64 / start.elapsed().as_secs_f64()
}

/// Prints, under `who`, the 1-client p50 of batch appends to `url` as a
/// ratio to `fsync_p50`, and the 64-client rate with each side's CPU.
async fn batch_append_rows(who: &str, url: &str, fsync_p50: Duration) {
    let prefix = format!("{}-batch", who.replace(' ', "-"));
    let (_, mut lat) = batch_appends(url, &prefix, 1, 2_000).await;
    let p50 = pct(&mut lat, 0.5);
    println!(
        "{who}, batch append 1 event, 1 client: p50 {p50:?} ({:.2}x fsync p50)",
        p50.as_secs_f64() / fsync_p50.as_secs_f64(),
    );
    let ((rate, _), server_us, client_us) =
        cpu_per_op(64 * 1_000, batch_appends(url, &prefix, 64, 1_000)).await;
    println!(
        "{who}, batch append 1 event, 64 clients: {rate:.0} appends/s; CPU per append: client {client_us:.0} us, server {server_us:.0} us"
    );
}

/// `subscribers` live `$all` subscriptions on one client; `publish` is
/// called `events` times, 200 ms apart. Returns, over all events, the p50
/// and p99 of the time from `publish` to a subscription having the event,
/// and the p50 of the time until the last one had it.
async fn fan_out<F, Fut>(
    url: &str,
    subscribers: usize,
    events: usize,
    publish: F,
) -> (Duration, Duration, Duration)
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = ()>,
{
    let client = Client::new(url.parse().unwrap()).unwrap();
    let (got_tx, mut got) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let ready = Arc::new(tokio::sync::Barrier::new(subscribers + 1));
    let mut tasks = Vec::new();
    for _ in 0..subscribers {
        let (client, got, ready) = (client.clone(), got_tx.clone(), ready.clone());
        tasks.push(tokio::spawn(async move {
            let opts = SubscribeToAllOptions::default().position(StreamPosition::End);
            let mut sub = client.subscribe_to_all(&opts).await;
            while !matches!(
                sub.next_subscription_event().await.unwrap(),
                SubscriptionEvent::CaughtUp
            ) {}
            ready.wait().await;
            let mut seen = 0;
            while seen < events {
                if let SubscriptionEvent::EventAppeared(_) =
                    sub.next_subscription_event().await.unwrap()
                {
                    got.send(Instant::now()).unwrap();
                    seen += 1;
                }
            }
        }));
    }
    ready.wait().await;
    let (mut each, mut last) = (Vec::new(), Vec::new());
    for i in 0..events {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let t = Instant::now();
        publish(i).await;
        let mut latest = t;
        for _ in 0..subscribers {
            let at = got.recv().await.unwrap();
            each.push(at - t);
            latest = latest.max(at);
        }
        last.push(latest - t);
    }
    for t in tasks {
        t.await.unwrap();
    }
    (
        pct(&mut each, 0.5),
        pct(&mut each, 0.99),
        pct(&mut last, 0.5),
    )
}

/// Serves `null` on a loopback port of the server runtime: its URL.
fn serve(server: &tokio::runtime::Runtime, null: NullStreams) -> String {
    let listener = server.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!(
        "esdb://{}?tls=false&discoveryInterval=0",
        listener.local_addr().unwrap()
    );
    server.spawn(
        tonic::transport::Server::builder()
            .http2_max_pending_accept_reset_streams(Some(store::PENDING_RESETS))
            .initial_connection_window_size(store::CONNECTION_WINDOW)
            .add_service(StreamsServer::new(null))
            // The store's own answer: a recent server with batch appends.
            .add_service(ServerFeaturesServer::new(store::FeaturesService))
            // Accepted as the store accepts them: the client needs the
            // quick ACKs (see `store::conn`), or a reply can wait 40 ms.
            .serve_with_incoming(
                tokio_stream::wrappers::TcpListenerStream::new(listener)
                    .map(|conn| store::conn::Conn::new(conn?)),
            ),
    );
    url
}

fn main() {
    let (subscribers, sends) = (10_000, 10);
    // The server side's own runtime, so its CPU can be told apart.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()
        .unwrap();
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let null = null_streams();
    let url = serve(&server, null.clone());
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("inline-log")).unwrap();
    let durable = NullStreams {
        durable: Some(Arc::new((file, AtomicU64::new(0)))),
        ..null.clone()
    };
    let durable_url = serve(&server, durable);
    let mut fsync = raw_fsync(dir.path(), 500);
    let fsync_p50 = pct(&mut fsync, 0.5);
    println!("raw fsync (200 B + fdatasync): p50 {fsync_p50:?}");

    client.block_on(async {
        let rate = raw_round_trips(server.handle(), 64, 2_000).await;
        println!("raw loopback TCP, 64 connections, 200 B echoed: {rate:.0} round trips/s");

        let (_, mut lat) = appends(&url, "null", 1, 2_000).await;
        let p50 = pct(&mut lat, 0.5);
        println!(
            "null server, append 1 event, 1 client: p50 {p50:?} ({:.2}x fsync p50; with one fsync added: {:.2}x)",
            p50.as_secs_f64() / fsync_p50.as_secs_f64(),
            (p50 + fsync_p50).as_secs_f64() / fsync_p50.as_secs_f64()
        );
        let ((rate, _), server_us, client_us) =
            cpu_per_op(64 * 1_000, appends(&url, "null", 64, 1_000)).await;
        println!(
            "null server, append 1 event, 64 clients: {rate:.0} appends/s; CPU per append: client {client_us:.0} us, server {server_us:.0} us"
        );

        batch_append_rows("null server", &url, fsync_p50).await;

        let (_, mut lat) = batch_appends(&durable_url, "inline", 1, 2_000).await;
        let p50 = pct(&mut lat, 0.5);
        println!(
            "null server that writes and fsyncs each append itself, batch append 1 event, 1 client: p50 {p50:?} ({:.2}x fsync p50)",
            p50.as_secs_f64() / fsync_p50.as_secs_f64(),
        );

        let events = 1_000_000u64;
        let (rate, server_us, client_us) = cpu_per_op(events, read_all(&url, events)).await;
        println!(
            "null server, $all read of {events} events: {rate:.0} events/s; CPU per event: client {client_us:.2} us, server {server_us:.2} us"
        );

        let live = null.live.clone();
        let ((p50, p99, all), server_us, client_us) = cpu_per_op(
            (subscribers * sends) as u64,
            fan_out(&url, subscribers, sends, |i| {
                let _ = live.send(i as u64);
                async {}
            }),
        )
        .await;
        println!(
            "null server, one event to {subscribers} subscriptions of one client ({sends} events): p50 {p50:?}, p99 {p99:?}, all have it after {all:?} (p50); CPU per delivery: client {client_us:.1} us, server {server_us:.1} us"
        );
    });

    // The same fan-out from the real store, on the server runtime.
    let data = dir.path().join("events");
    let store = server
        .block_on(store::EmbeddedStore::start(
            &data,
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let url = store.connection_string();
    client.block_on(async {
        batch_append_rows("store", &url, fsync_p50).await;
        let writer = Client::new(url.parse().unwrap()).unwrap();
        let ((p50, p99, all), server_us, client_us) = cpu_per_op(
            (subscribers * sends) as u64,
            fan_out(&url, subscribers, sends, |i| {
                let writer = writer.clone();
                async move {
                    let e = EventData::json("TradeExecuted", &payload(i as u64)).unwrap();
                    writer
                        .append_to_stream("trades", &Default::default(), e)
                        .await
                        .unwrap();
                }
            }),
        )
        .await;
        println!(
            "store, one event to {subscribers} subscriptions of one client ({sends} events): p50 {p50:?}, p99 {p99:?}, all have it after {all:?} (p50); CPU per delivery: client {client_us:.1} us, server {server_us:.1} us"
        );
    });

    // And the same `$all` read from the real store, filled through the
    // library to 1,000,000 events.
    let events = 1_000_000u64;
    server.block_on(fill(store.store(), events, |n| format!("fill-{}", n % 100)));
    client.block_on(async {
        let (rate, server_us, client_us) = cpu_per_op(events, read_all(&url, events)).await;
        println!(
            "store, $all read of {events} events: {rate:.0} events/s; CPU per event: client {client_us:.2} us, server {server_us:.2} us"
        );
    });
    server.block_on(store.stop()).unwrap();
}
