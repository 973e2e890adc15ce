//! The log across many segment files: reads, catch-up scans and recovery
//! must cross segment boundaries as if the log were one file.

use bytes::Bytes;
use store::{
    AllStart, Direction, Expected, NewEvent, Options, Store, StreamRead, StreamStart, WriteOutcome,
};

fn small_segments() -> Options {
    Options {
        segment_size: 4096,
        ..Options::default()
    }
}

fn events(from: u64, n: u64) -> Vec<NewEvent> {
    (from..from + n)
        .map(|i| NewEvent {
            id: u128::from(i) + 1,
            event_type: Bytes::from_static(b"Appended"),
            is_json: true,
            custom_metadata: Bytes::new(),
            data: Bytes::from(format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(100))),
        })
        .collect()
}

fn index_of(e: &store::record::StoredEvent) -> u64 {
    let v: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
    v["i"].as_u64().unwrap()
}

#[tokio::test]
async fn reads_scans_and_recovery_cross_segment_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let total = 600u64;
    {
        let (store, _) = Store::open_with(dir.path(), small_segments()).unwrap();
        // Batches of various sizes, some larger than a whole segment.
        let mut i = 0;
        for size in [1u64, 7, 50, 3, 80, 1].iter().cycle() {
            if i >= total {
                break;
            }
            let n = (*size).min(total - i);
            let outcome = store
                .append(
                    Bytes::from(format!("s-{}", i % 3)),
                    Expected::Any,
                    events(i, n),
                )
                .await
                .unwrap();
            assert!(
                matches!(outcome, WriteOutcome::Written { .. }),
                "{outcome:?}"
            );
            i += n;
        }
        store.close().await;
    }
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "seg")
        })
        .count();
    assert!(segments > 10, "the log spans many segments: {segments}");
    // Reopen: the recovery scan crosses every boundary too.
    let (store, recovery) = Store::open_with(dir.path(), small_segments()).unwrap();
    assert_eq!((recovery.records, recovery.truncated_bytes), (total, 0));
    let forwards = store
        .read_all(AllStart::Start, Direction::Forwards, u64::MAX, |_| true)
        .unwrap();
    assert_eq!(
        forwards.iter().map(index_of).collect::<Vec<_>>(),
        (0..total).collect::<Vec<_>>()
    );
    let backwards = store
        .read_all(AllStart::End, Direction::Backwards, u64::MAX, |_| true)
        .unwrap();
    assert_eq!(
        backwards.iter().map(index_of).collect::<Vec<_>>(),
        (0..total).rev().collect::<Vec<_>>()
    );
    // Start in the middle of a later segment.
    let mid = forwards[400].position;
    let from_mid = store
        .read_all(AllStart::Position(mid), Direction::Forwards, 50, |_| true)
        .unwrap();
    assert_eq!(
        from_mid.iter().map(index_of).collect::<Vec<_>>(),
        (400..450).collect::<Vec<_>>()
    );
    let StreamRead::Events {
        positions,
        last_revision,
    } = store.read_stream(b"s-1", StreamStart::Start, Direction::Forwards, u64::MAX)
    else {
        panic!("stream s-1 exists")
    };
    let s1: Vec<_> = positions
        .iter()
        .map(|p| store.read_at(*p).unwrap())
        .collect();
    assert_eq!(last_revision + 1, s1.len() as u64);
    assert!(s1.windows(2).all(|w| w[0].position < w[1].position));
    assert!(s1.iter().enumerate().all(|(r, e)| e.revision == r as u64));
    // Appends continue after recovery, with positions after everything else.
    let WriteOutcome::Written { position, .. } = store
        .append(Bytes::from("after"), Expected::NoStream, events(total, 1))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(position > forwards.last().unwrap().position);
}
