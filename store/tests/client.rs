//! The store driven by the official `eventstore` client over TCP, exactly as
//! the exchange (or any EventStoreDB application) uses it.

use std::collections::HashSet;
use std::time::Duration;

use eventstore::{
    AppendToStreamOptions, Client, ClientSettings, CurrentRevision, DeleteStreamOptions, Error,
    EventData, ExpectedRevision, ReadAllOptions, ReadStreamOptions, StreamMetadata, StreamPosition,
    SubscribeToAllOptions, SubscribeToStreamOptions, SubscriptionEvent, SubscriptionFilter,
    TombstoneStreamOptions,
};
use store::EmbeddedStore;
use uuid::Uuid;

struct Harness {
    _dir: tempfile::TempDir,
    server: EmbeddedStore,
    client: Client,
}

async fn start() -> Harness {
    start_with(store::Options::default()).await
}

async fn start_with(options: store::Options) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let addr = "127.0.0.1:0".parse().unwrap();
    let access = store::Access::Users(store::Users::random_admin().unwrap());
    let server = EmbeddedStore::start_with(dir.path(), addr, options, access)
        .await
        .unwrap();
    let settings: ClientSettings = server.connection_string().parse().unwrap();
    let client = Client::new(settings).unwrap();
    Harness {
        _dir: dir,
        server,
        client,
    }
}

fn event(kind: &str, n: u64) -> EventData {
    EventData::json(kind, &serde_json::json!({ "n": n }))
        .unwrap()
        .id(Uuid::from_u128(0xabc0_0000 + u128::from(n)))
}

fn expect(rev: ExpectedRevision) -> AppendToStreamOptions {
    AppendToStreamOptions::default().expected_revision(rev)
}

async fn read_all_of(
    client: &Client,
    stream: &str,
    options: &ReadStreamOptions,
) -> Result<Vec<(u64, u64)>, Error> {
    let mut read = client.read_stream(stream, options).await?;
    let mut out = Vec::new();
    while let Some(e) = read.next().await? {
        let e = e.get_original_event();
        let n = serde_json::from_slice::<serde_json::Value>(&e.data).unwrap()["n"]
            .as_u64()
            .unwrap();
        out.push((e.revision, n));
    }
    Ok(out)
}

async fn with_timeout<T>(f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[tokio::test]
async fn appends_honour_every_expected_revision() {
    let h = start().await;
    let c = &h.client;
    let w = c
        .append_to_stream(
            "s",
            &expect(ExpectedRevision::NoStream),
            vec![event("A", 0), event("A", 1)],
        )
        .await
        .unwrap();
    assert_eq!(w.next_expected_version, 1);
    assert!(w.position.commit > 0 && w.position.commit == w.position.prepare);
    c.append_to_stream("s", &expect(ExpectedRevision::Exact(1)), event("A", 2))
        .await
        .unwrap();
    c.append_to_stream("s", &expect(ExpectedRevision::StreamExists), event("A", 3))
        .await
        .unwrap();
    c.append_to_stream("s", &expect(ExpectedRevision::Any), event("A", 4))
        .await
        .unwrap();
    match c
        .append_to_stream("s", &expect(ExpectedRevision::Exact(9)), event("A", 5))
        .await
    {
        Err(Error::WrongExpectedVersion { current, expected }) => {
            assert_eq!(current, CurrentRevision::Current(4));
            assert_eq!(expected, ExpectedRevision::Exact(9));
        }
        other => panic!("expected a wrong-expected-version error, got {other:?}"),
    }
    match c
        .append_to_stream(
            "new",
            &expect(ExpectedRevision::StreamExists),
            event("A", 6),
        )
        .await
    {
        Err(Error::WrongExpectedVersion { current, .. }) => {
            assert_eq!(current, CurrentRevision::NoStream)
        }
        other => panic!("{other:?}"),
    }
    let events = read_all_of(c, "s", &ReadStreamOptions::default())
        .await
        .unwrap();
    assert_eq!(events, [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4)]);
}

#[tokio::test]
async fn a_retried_append_with_the_same_ids_is_written_once() {
    let h = start().await;
    let c = &h.client;
    let batch = || vec![event("A", 10), event("A", 11)];
    let first = c
        .append_to_stream("idem", &expect(ExpectedRevision::NoStream), batch())
        .await
        .unwrap();
    let again = c
        .append_to_stream("idem", &expect(ExpectedRevision::NoStream), batch())
        .await
        .unwrap();
    assert_eq!(again.next_expected_version, first.next_expected_version);
    assert_eq!(again.position, first.position);
    let any = c
        .append_to_stream("idem", &expect(ExpectedRevision::Any), batch())
        .await
        .unwrap();
    assert_eq!(any.position, first.position);
    // Same expected revision, different ids: a real conflict.
    assert!(matches!(
        c.append_to_stream("idem", &expect(ExpectedRevision::NoStream), event("A", 99))
            .await,
        Err(Error::WrongExpectedVersion { .. })
    ));
    assert_eq!(
        read_all_of(c, "idem", &ReadStreamOptions::default())
            .await
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn streams_read_forwards_and_backwards_from_any_revision() {
    let h = start().await;
    let c = &h.client;
    let events: Vec<_> = (0..10).map(|n| event("A", n)).collect();
    c.append_to_stream("r", &expect(ExpectedRevision::NoStream), events)
        .await
        .unwrap();
    let fwd = |from, n| {
        ReadStreamOptions::default()
            .forwards()
            .position(from)
            .max_count(n)
    };
    let back = |from, n| {
        ReadStreamOptions::default()
            .backwards()
            .position(from)
            .max_count(n)
    };
    let revs = |v: Vec<(u64, u64)>| v.into_iter().map(|(r, _)| r).collect::<Vec<_>>();
    assert_eq!(
        revs(
            read_all_of(c, "r", &fwd(StreamPosition::Position(7), 10))
                .await
                .unwrap()
        ),
        [7, 8, 9]
    );
    assert_eq!(
        revs(
            read_all_of(c, "r", &fwd(StreamPosition::Start, 3))
                .await
                .unwrap()
        ),
        [0, 1, 2]
    );
    assert_eq!(
        revs(
            read_all_of(c, "r", &back(StreamPosition::End, 3))
                .await
                .unwrap()
        ),
        [9, 8, 7]
    );
    assert_eq!(
        revs(
            read_all_of(c, "r", &back(StreamPosition::Position(2), 10))
                .await
                .unwrap()
        ),
        [2, 1, 0]
    );
    // The client's `position(End)` also turns the read backwards: set
    // forwards after it to ask the server for "forwards from the end".
    let forwards_from_end = ReadStreamOptions::default()
        .position(StreamPosition::End)
        .forwards();
    let from_end = read_all_of(c, "r", &forwards_from_end).await.unwrap();
    assert!(from_end.is_empty(), "{from_end:?}");
    assert!(matches!(
        read_all_of(c, "missing", &ReadStreamOptions::default()).await,
        Err(Error::ResourceNotFound)
    ));
}

#[tokio::test]
async fn long_stream_reads_arrive_whole_and_in_order_across_pages() {
    let h = start().await;
    let c = &h.client;
    // Several of the server's read pages (512 events), in a few appends.
    let total = 1_300u64;
    for chunk in (0..total).collect::<Vec<_>>().chunks(400) {
        let events = chunk.iter().map(|n| event("A", *n)).collect::<Vec<_>>();
        c.append_to_stream("long", &Default::default(), events)
            .await
            .unwrap();
    }
    let all = read_all_of(
        c,
        "long",
        &ReadStreamOptions::default().max_count(usize::MAX),
    )
    .await
    .unwrap();
    assert_eq!(all, (0..total).map(|n| (n, n)).collect::<Vec<_>>());
    let back = ReadStreamOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .max_count(700);
    let revs = |v: Vec<(u64, u64)>| v.into_iter().map(|(r, _)| r).collect::<Vec<_>>();
    let back = read_all_of(c, "long", &back).await.unwrap();
    assert_eq!(revs(back), (600..total).rev().collect::<Vec<_>>());
    let middle = ReadStreamOptions::default()
        .forwards()
        .position(StreamPosition::Position(600))
        .max_count(1_000);
    let middle = read_all_of(c, "long", &middle).await.unwrap();
    assert_eq!(revs(middle), (600..total).collect::<Vec<_>>());
    // `$all` backwards, over more than one of the server's pages, stops at
    // the count and misses nothing on the way.
    for n in 0..3 {
        c.append_to_stream("other", &Default::default(), event("B", n))
            .await
            .unwrap();
    }
    let back_all = ReadAllOptions::default()
        .backwards()
        .position(StreamPosition::End)
        .max_count(1_100);
    let mut read = c.read_all(&back_all).await.unwrap();
    let mut seen = Vec::new();
    while let Some(e) = read.next().await.unwrap() {
        let e = e.get_original_event();
        seen.push((e.stream_id.clone(), e.revision));
    }
    let expected: Vec<(String, u64)> = (0..3)
        .rev()
        .map(|r| ("other".to_string(), r))
        .chain((203..total).rev().map(|r| ("long".to_string(), r)))
        .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn all_reads_in_both_directions_and_positions_match_appends() {
    let h = start().await;
    let c = &h.client;
    let w1 = c
        .append_to_stream("a", &expect(ExpectedRevision::Any), event("A", 1))
        .await
        .unwrap();
    let w2 = c
        .append_to_stream("b", &expect(ExpectedRevision::Any), event("B", 2))
        .await
        .unwrap();
    let mut read = c
        .read_all(
            &ReadAllOptions::default()
                .forwards()
                .position(StreamPosition::Start),
        )
        .await
        .unwrap();
    let mut positions = Vec::new();
    while let Some(e) = read.next().await.unwrap() {
        positions.push(e.get_original_event().position);
    }
    assert_eq!(positions, [w1.position, w2.position]);
    let opts = ReadAllOptions::default()
        .forwards()
        .position(StreamPosition::Position(w2.position));
    let mut read = c.read_all(&opts).await.unwrap();
    assert_eq!(
        read.next()
            .await
            .unwrap()
            .unwrap()
            .get_original_event()
            .stream_id,
        "b",
        "forwards from P includes P"
    );
    let opts = ReadAllOptions::default()
        .backwards()
        .position(StreamPosition::Position(w2.position));
    let mut read = c.read_all(&opts).await.unwrap();
    assert_eq!(
        read.next()
            .await
            .unwrap()
            .unwrap()
            .get_original_event()
            .stream_id,
        "a",
        "backwards from P excludes P"
    );
    assert!(read.next().await.unwrap().is_none());
    let mut read = c
        .read_all(
            &ReadAllOptions::default()
                .backwards()
                .position(StreamPosition::End),
        )
        .await
        .unwrap();
    let e = read.next().await.unwrap().unwrap();
    let e = e.get_original_event();
    assert_eq!(
        (e.stream_id.as_str(), e.event_type.as_str(), e.is_json),
        ("b", "B", true)
    );
    assert!(
        e.created.timestamp() > 1_700_000_000,
        "created is a real time: {}",
        e.created
    );
}

#[tokio::test]
async fn soft_delete_hides_a_stream_until_the_next_append() {
    let h = start().await;
    let c = &h.client;
    c.append_to_stream(
        "d",
        &expect(ExpectedRevision::NoStream),
        vec![event("A", 0), event("A", 1)],
    )
    .await
    .unwrap();
    c.delete_stream(
        "d",
        &DeleteStreamOptions::default().expected_revision(ExpectedRevision::Exact(1)),
    )
    .await
    .unwrap();
    assert!(matches!(
        read_all_of(c, "d", &ReadStreamOptions::default()).await,
        Err(Error::ResourceNotFound)
    ));
    let w = c
        .append_to_stream("d", &expect(ExpectedRevision::NoStream), event("A", 2))
        .await
        .unwrap();
    assert_eq!(w.next_expected_version, 2, "numbering continues");
    assert_eq!(
        read_all_of(c, "d", &ReadStreamOptions::default())
            .await
            .unwrap(),
        [(2, 2)]
    );
    assert!(
        c.delete_stream(
            "d",
            &DeleteStreamOptions::default().expected_revision(ExpectedRevision::Exact(0))
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn a_tombstoned_stream_refuses_reads_and_writes() {
    let h = start().await;
    let c = &h.client;
    c.append_to_stream("t", &expect(ExpectedRevision::NoStream), event("A", 0))
        .await
        .unwrap();
    c.tombstone_stream("t", &TombstoneStreamOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        read_all_of(c, "t", &ReadStreamOptions::default()).await,
        Err(Error::ResourceDeleted)
    ));
    assert!(matches!(
        c.append_to_stream("t", &expect(ExpectedRevision::Any), event("A", 1))
            .await,
        Err(Error::ResourceDeleted)
    ));
    assert!(matches!(
        c.tombstone_stream("t", &TombstoneStreamOptions::default())
            .await,
        Err(Error::ResourceDeleted)
    ));
}

#[tokio::test]
async fn stream_metadata_reads_back_the_latest() {
    let h = start().await;
    let c = &h.client;
    let meta = |n| StreamMetadata::builder().max_count(n).build();
    c.set_stream_metadata("m", &AppendToStreamOptions::default(), &meta(5))
        .await
        .unwrap();
    c.set_stream_metadata("m", &AppendToStreamOptions::default(), &meta(7))
        .await
        .unwrap();
    let got = c
        .get_stream_metadata("m", &ReadStreamOptions::default())
        .await
        .unwrap();
    let eventstore::StreamMetadataResult::Success(got) = got else {
        panic!("no metadata: {got:?}")
    };
    assert_eq!(got.metadata().max_count, Some(7));
}

#[tokio::test]
async fn oversized_and_malformed_appends_are_refused() {
    let h = start().await;
    let c = &h.client;
    let big = EventData::binary("Big", vec![0u8; store::MAX_APPEND_SIZE + 1].into());
    match c
        .append_to_stream("big", &AppendToStreamOptions::default(), big)
        .await
    {
        Err(Error::Grpc { code, .. }) => assert_eq!(code, tonic::Code::InvalidArgument),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        read_all_of(c, "big", &ReadStreamOptions::default()).await,
        Err(Error::ResourceNotFound)
    ));
}

#[tokio::test]
async fn filtered_all_subscription_catches_up_then_goes_live_without_gaps_or_duplicates() {
    let h = start().await;
    let c = &h.client;
    for n in 0..50 {
        let kind = if n % 2 == 0 {
            "TradeExecuted"
        } else {
            "OrderAccepted"
        };
        c.append_to_stream(
            format!("book-{}", n % 3),
            &AppendToStreamOptions::default(),
            event(kind, n),
        )
        .await
        .unwrap();
    }
    let filter = SubscriptionFilter::on_event_type().add_prefix("Trade");
    let mut sub = c
        .subscribe_to_all(
            &SubscribeToAllOptions::default()
                .position(StreamPosition::Start)
                .filter(filter),
        )
        .await;
    // Writers keep appending while the subscription catches up.
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            for n in 50..250u64 {
                let kind = if n % 2 == 0 {
                    "TradeExecuted"
                } else {
                    "OrderAccepted"
                };
                c.append_to_stream(
                    format!("book-{}", n % 3),
                    &AppendToStreamOptions::default(),
                    event(kind, n),
                )
                .await
                .unwrap();
            }
        })
    };
    let mut seen = Vec::new();
    let mut caught_up = false;
    let mut checkpoints = 0;
    let mut last_position = None;
    while seen.len() < 125 {
        match with_timeout(sub.next_subscription_event()).await.unwrap() {
            SubscriptionEvent::EventAppeared(e) => {
                let e = e.get_original_event();
                assert_eq!(e.event_type, "TradeExecuted");
                assert!(
                    last_position.is_none_or(|p| e.position > p),
                    "positions increase"
                );
                last_position = Some(e.position);
                seen.push(
                    serde_json::from_slice::<serde_json::Value>(&e.data).unwrap()["n"]
                        .as_u64()
                        .unwrap(),
                );
            }
            SubscriptionEvent::CaughtUp => caught_up = true,
            SubscriptionEvent::Checkpoint(_) => checkpoints += 1,
            _ => {}
        }
    }
    writer.await.unwrap();
    assert!(caught_up && checkpoints > 0);
    let expected: Vec<u64> = (0..250).filter(|n| n % 2 == 0).collect();
    assert_eq!(
        seen, expected,
        "every matching event exactly once, in order"
    );
}

#[tokio::test]
async fn stream_subscription_starts_after_the_given_revision_and_follows_live() {
    let h = start().await;
    let c = &h.client;
    c.append_to_stream(
        "live",
        &expect(ExpectedRevision::NoStream),
        (0..5).map(|n| event("A", n)).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    let mut sub = c
        .subscribe_to_stream(
            "live",
            &SubscribeToStreamOptions::default().start_from(StreamPosition::Position(2)),
        )
        .await;
    c.append_to_stream("live", &expect(ExpectedRevision::Exact(4)), event("A", 5))
        .await
        .unwrap();
    let mut revs = Vec::new();
    while revs.len() < 3 {
        revs.push(
            with_timeout(sub.next())
                .await
                .unwrap()
                .get_original_event()
                .revision,
        );
    }
    assert_eq!(revs, [3, 4, 5], "exclusive of revision 2, then live");
}

#[tokio::test]
async fn shutdown_ends_live_subscriptions_and_batch_appends_with_an_error() {
    let h = start().await;
    let c = &h.client;
    let mut sub = c.subscribe_to_all(&SubscribeToAllOptions::default()).await;
    // A batch-append session is a call that stays open between appends.
    let batch = c
        .batch_append(&eventstore::BatchAppendOptions::default())
        .await
        .unwrap();
    batch
        .append_to_stream("x", ExpectedRevision::Any, vec![event("A", 1)])
        .await
        .unwrap();
    with_timeout(sub.next()).await.unwrap();
    let stopping = tokio::spawn(h.server.stop());
    with_timeout(stopping).await.unwrap().unwrap();
    assert!(
        with_timeout(sub.next()).await.is_err(),
        "the subscription ends with an error, not silently"
    );
    assert!(
        with_timeout(batch.append_to_stream("x", ExpectedRevision::Any, vec![event("A", 2)]))
            .await
            .is_err(),
        "the ended session refuses appends"
    );
}

#[tokio::test]
async fn discovery_connection_strings_find_the_store_as_leader() {
    let h = start().await;
    // Gossip answers without credentials; the append needs them.
    let url = h
        .server
        .connection_string()
        .replace("esdb://", "esdb+discover://");
    let client = Client::new(url.parse().unwrap()).unwrap();
    let w = client
        .append_to_stream("g", &AppendToStreamOptions::default(), event("A", 1))
        .await
        .unwrap();
    assert_eq!(w.next_expected_version, 0);
}

#[tokio::test]
async fn a_slow_subscriber_falls_back_to_the_log_and_misses_nothing() {
    // A live feed of 4 batches, so falling behind is certain.
    let h = start_with(store::Options {
        live_buffer: 4,
        ..Default::default()
    })
    .await;
    let c = &h.client;
    let mut slow = c
        .subscribe_to_all(&SubscribeToAllOptions::default().position(StreamPosition::Start))
        .await;
    assert!(matches!(
        with_timeout(slow.next_subscription_event()).await.unwrap(),
        SubscriptionEvent::Confirmed(_)
    ));
    // Far more commits than the live feed buffers, while the slow
    // subscriber reads nothing: writers must not wait for it. The events
    // are large (12 MiB in all), more than the client's HTTP/2 windows and
    // the server's queue hold, so the subscription cannot keep pace by
    // sending into buffers and must fall behind the live feed.
    let total = 3_000u64;
    let large = |n: u64| {
        let data = serde_json::json!({ "n": n, "pad": "x".repeat(4096) });
        EventData::json("A", &data)
            .unwrap()
            .id(Uuid::from_u128(0xabc0_0000 + u128::from(n)))
    };
    let writes: Vec<_> = (0..total)
        .map(|n| {
            let c = c.clone();
            tokio::spawn(async move {
                c.append_to_stream(
                    format!("slow-{}", n % 7),
                    &AppendToStreamOptions::default(),
                    large(n),
                )
                .await
                .unwrap()
            })
        })
        .collect();
    for w in writes {
        with_timeout(w).await.unwrap();
    }
    let mut seen = HashSet::new();
    let mut last = None;
    while (seen.len() as u64) < total {
        if let SubscriptionEvent::EventAppeared(e) =
            with_timeout(slow.next_subscription_event()).await.unwrap()
        {
            let e = e.get_original_event();
            assert!(last.is_none_or(|p| e.position > p), "in order, no repeats");
            last = Some(e.position);
            assert!(seen.insert(e.id), "duplicate {}", e.id);
        }
    }
    assert_eq!(seen.len() as u64, total);
    assert!(
        h.server.store().catch_up_fallbacks() > 0,
        "the subscriber really fell behind and caught up"
    );
}

#[tokio::test]
async fn subscriptions_end_when_their_client_leaves() {
    let h = start().await;
    let c = &h.client;
    let store = h.server.store().clone();
    let mut subs = Vec::new();
    for _ in 0..5 {
        let mut s = c.subscribe_to_all(&SubscribeToAllOptions::default()).await;
        with_timeout(s.next_subscription_event()).await.unwrap();
        subs.push(s);
    }
    assert_eq!(store.live_subscribers(), 5);
    drop(subs);
    // The server notices the closed calls and ends their tasks.
    for _ in 0..100 {
        if store.live_subscribers() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{} subscriptions leaked", store.live_subscribers());
}

#[tokio::test]
async fn deleting_a_stream_that_was_never_written_is_refused_and_hides_nothing() {
    let h = start().await;
    let c = &h.client;
    // EventStoreDB answers a soft delete of a stream that never existed
    // with wrong expected version (actual -1), whatever was expected.
    let refused = c
        .delete_stream("never", &DeleteStreamOptions::default())
        .await;
    assert!(refused.is_err(), "{refused:?}");
    c.append_to_stream("never", &expect(ExpectedRevision::NoStream), event("A", 0))
        .await
        .unwrap();
    assert_eq!(
        read_all_of(c, "never", &ReadStreamOptions::default())
            .await
            .unwrap(),
        [(0, 0)]
    );
}

#[tokio::test]
async fn batch_appends_share_one_call_and_keep_the_append_rules() {
    let h = start().await;
    let c = &h.client;
    let batch = c
        .batch_append(&eventstore::BatchAppendOptions::default())
        .await
        .expect("the store offers batch appends");
    // Several appends in flight on the one call, to two streams.
    let (a, b) = futures::join!(
        batch.append_to_stream("batch-a", ExpectedRevision::NoStream, vec![event("A", 0)]),
        batch.append_to_stream(
            "batch-b",
            ExpectedRevision::Any,
            vec![event("B", 10), event("B", 11)]
        ),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(
        (a.stream_name(), a.current_revision()),
        ("batch-a", Some(0))
    );
    assert_eq!(
        (b.stream_name(), b.current_revision()),
        ("batch-b", Some(1))
    );
    let next = batch
        .append_to_stream("batch-a", ExpectedRevision::Exact(0), vec![event("A", 1)])
        .await
        .unwrap();
    assert_eq!(next.current_revision(), Some(1));
    // The reply's position is the last event's position in $all.
    let mut read = c
        .read_stream(
            "batch-a",
            &ReadStreamOptions::default()
                .position(StreamPosition::End)
                .backwards()
                .max_count(1),
        )
        .await
        .unwrap();
    let last = read.next().await.unwrap().unwrap();
    assert_eq!(
        last.get_original_event().position,
        next.current_position().unwrap()
    );
    assert_eq!(
        read_all_of(c, "batch-b", &ReadStreamOptions::default())
            .await
            .unwrap(),
        vec![(0, 10), (1, 11)]
    );
    // A wrong expected revision is refused with a clear error and writes
    // nothing.
    match batch
        .append_to_stream("batch-a", ExpectedRevision::Exact(5), vec![event("A", 2)])
        .await
    {
        Err(Error::Grpc { code, message }) => {
            assert_eq!(code, tonic::Code::FailedPrecondition);
            assert!(message.contains("WrongExpectedVersion"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        read_all_of(c, "batch-a", &ReadStreamOptions::default())
            .await
            .unwrap(),
        vec![(0, 0), (1, 1)]
    );
}

#[tokio::test]
async fn events_larger_than_a_read_chunk_read_back_whole() {
    let h = start().await;
    let c = &h.client;
    // Small events around ones larger than a scan's chunk, so reads cross
    // chunk ends inside records and meet records no chunk holds.
    let big = |n: u8| vec![n; store::log::SCAN_CHUNK as usize * 3 / 2];
    let mut sent = Vec::new();
    for n in 0..6u8 {
        let data = if n % 2 == 1 { big(n) } else { vec![n; 100] };
        c.append_to_stream(
            "chunks",
            &AppendToStreamOptions::default(),
            EventData::binary("Blob", data.clone().into()),
        )
        .await
        .unwrap();
        sent.push(data);
    }
    let mut read = c
        .read_all(&ReadAllOptions::default().position(StreamPosition::Start))
        .await
        .unwrap();
    let mut got = Vec::new();
    while let Some(e) = read.next().await.unwrap() {
        got.push(e.get_original_event().data.to_vec());
    }
    assert_eq!(got, sent);
    let mut sub = c
        .subscribe_to_all(&SubscribeToAllOptions::default().position(StreamPosition::Start))
        .await;
    let mut caught_up = Vec::new();
    loop {
        match with_timeout(sub.next_subscription_event()).await.unwrap() {
            SubscriptionEvent::EventAppeared(e) => {
                caught_up.push(e.get_original_event().data.to_vec())
            }
            SubscriptionEvent::CaughtUp => break,
            _ => {}
        }
    }
    assert_eq!(caught_up, sent);
}
