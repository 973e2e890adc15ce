//! Seals: each segment the writer moves on from gets a seal beside it, and
//! a start takes what a sealed segment holds from its seal instead of
//! reading every record. A start from seals must find exactly what a start
//! reading every record finds; a seal that is damaged or no longer matches
//! its segment is passed over (and written again); damage to a sealed
//! segment is still refused at start, where it lies; a repair removes the
//! seals of what it cuts.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use store::recovery::{self, LogError};
use store::{
    AllStart, Direction, Expected, NewEvent, Store, StoreError, StreamRead, StreamStart,
    WriteOutcome,
};

mod common;
use common::{event, small_segments};

fn metadata(truncate_before: u64) -> NewEvent {
    NewEvent {
        id: 1_000_000 + u128::from(truncate_before),
        event_type: Bytes::from_static(b"$metadata"),
        is_json: true,
        custom_metadata: Bytes::new(),
        data: Bytes::from(format!("{{\"$tb\":{truncate_before}}}")),
    }
}

const STREAMS: [&str; 6] = ["s-0", "s-1", "s-2", "gone", "emptied", "$$s-1"];

/// A stopped store over many segments: four streams, one truncated by its
/// metadata, one deleted for good, one soft-deleted.
async fn stopped_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open_with(dir.path(), small_segments()).unwrap();
    let write = |stream: &str, events: Vec<NewEvent>| {
        let store = store.clone();
        let stream = Bytes::from(stream.to_string());
        async move {
            let outcome = store.append(stream, Expected::Any, events).await.unwrap();
            assert!(
                matches!(outcome, WriteOutcome::Written { .. }),
                "{outcome:?}"
            );
        }
    };
    for i in 0..300 {
        let stream = match ["s-0", "s-1", "s-2", "gone", "emptied"][i as usize % 5] {
            // Written to no more once deleted for good.
            "gone" if i > 200 => "s-0",
            stream => stream,
        };
        write(stream, vec![event(i)]).await;
        if i == 120 {
            write("$$s-1", vec![metadata(10)]).await;
        }
        if i == 200 {
            store
                .tombstone(Bytes::from("gone"), Expected::Any)
                .await
                .unwrap();
            store
                .delete(Bytes::from("emptied"), Expected::Any)
                .await
                .unwrap();
        }
    }
    store.close().await;
    dir
}

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    found.sort();
    found
}

/// Everything a start's index answers: `$all` in order, and each stream's
/// reads and state.
fn view(store: &Store) -> Vec<String> {
    let all = store
        .read_all(AllStart::Start, Direction::Forwards, u64::MAX, |_| true)
        .unwrap();
    let mut out = vec![format!(
        "{:?}",
        all.iter().map(|e| e.position).collect::<Vec<_>>()
    )];
    for stream in STREAMS {
        let read = store.read_stream(
            stream.as_bytes(),
            StreamStart::Start,
            Direction::Forwards,
            u64::MAX,
        );
        let state = store.stream_state(stream.as_bytes());
        out.push(format!("{stream}: {read:?} {state:?}"));
    }
    out
}

fn open(dir: &Path) -> Result<(Store, store::log::Recovery), StoreError> {
    Store::open_with(dir, small_segments())
}

#[tokio::test]
async fn a_start_from_seals_finds_what_reading_every_record_finds() {
    let dir = stopped_log().await;
    let segments = files(dir.path(), "seg");
    assert!(segments.len() > 10, "{} segments", segments.len());
    // Every segment but the one still written has its seal.
    assert_eq!(files(dir.path(), "seal").len(), segments.len() - 1);
    let (store, recovery) = open(dir.path()).unwrap();
    let sealed = view(&store);
    // The events, the metadata, the tombstone and the soft delete's metadata.
    assert_eq!(recovery.records, 300 + 4);
    assert!(sealed[1].starts_with("s-0: Events"), "{}", sealed[1]);
    assert!(
        sealed[4].contains("true"),
        "gone is tombstoned: {}",
        sealed[4]
    );
    // Deleted at its 40th event, then written to again: the 20 after.
    match store.read_stream(b"emptied", StreamStart::Start, Direction::Forwards, 100) {
        StreamRead::Events {
            positions,
            last_revision,
        } => assert_eq!((positions.len(), last_revision), (20, 59)),
        read => panic!("{read:?}"),
    }
    // An id written in a sealed segment is still known: its retry is
    // answered with the record already written, and nothing is added.
    let first = store
        .read_all(AllStart::Start, Direction::Forwards, 1, |_| true)
        .unwrap();
    let retried = store
        .append(Bytes::from("s-0"), Expected::Any, vec![event(0)])
        .await
        .unwrap();
    assert!(
        matches!(retried, WriteOutcome::Written { position, .. } if position == first[0].position),
        "{retried:?}"
    );
    assert_eq!(store.records(), 304);
    store.close().await;

    // The same log with no seal at all: read record by record, the same
    // answers; and sealed again once open.
    for seal in files(dir.path(), "seal") {
        std::fs::remove_file(seal).unwrap();
    }
    let (store, _) = open(dir.path()).unwrap();
    assert_eq!(view(&store), sealed);
    store.close().await;
    assert_eq!(files(dir.path(), "seal").len(), segments.len() - 1);
    let (store, _) = open(dir.path()).unwrap();
    assert_eq!(view(&store), sealed);
    store.close().await;
}

#[tokio::test]
async fn a_seal_that_does_not_match_is_passed_over_and_written_again() {
    let dir = stopped_log().await;
    let (store, _) = open(dir.path()).unwrap();
    let expected = view(&store);
    store.close().await;
    let seals = files(dir.path(), "seal");
    let kept = |p: &Path| std::fs::read(p).unwrap();
    let (damaged, foreign, cut) = (&seals[1], &seals[2], &seals[3]);
    let before = [kept(damaged), kept(foreign), kept(cut)];
    // A flipped bit, another segment's seal, and a seal cut short.
    let mut bytes = before[0].clone();
    bytes[40] ^= 4;
    std::fs::write(damaged, bytes).unwrap();
    std::fs::copy(&seals[5], foreign).unwrap();
    std::fs::write(cut, &before[2][..before[2].len() / 2]).unwrap();
    let (store, _) = open(dir.path()).unwrap();
    assert_eq!(view(&store), expected);
    store.close().await;
    assert_eq!([kept(damaged), kept(foreign), kept(cut)], before);
}

#[tokio::test]
async fn damage_to_a_sealed_segment_is_refused_where_it_lies() {
    let dir = stopped_log().await;
    let found = recovery::examine(dir.path(), |_| {}).unwrap();
    let (base, segment) = (found.segments[2].base, &found.segments[2].path);
    assert!(files(dir.path(), "seal").len() > 2);
    // Where the record holding byte 500 of the segment starts.
    let mut holding = 0;
    recovery::examine(dir.path(), |e| {
        if (base..=base + 500).contains(&e.position) {
            holding = e.position - base;
        }
    })
    .unwrap();
    let mut bytes = std::fs::read(segment).unwrap();
    bytes[500] ^= 1;
    std::fs::write(segment, bytes).unwrap();
    let before: Vec<_> = files(dir.path(), "seal")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    match open(dir.path()) {
        Err(StoreError::Log(LogError::Corrupt(c))) => {
            assert_eq!((&c.file, c.offset), (segment, holding), "{c}");
        }
        Err(e) => panic!("refused otherwise: {e}"),
        Ok(_) => panic!("a damaged sealed segment was opened"),
    }
    // Refused, nothing changed: the seals are as they were.
    let after: Vec<_> = files(dir.path(), "seal")
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(after, before);
}

#[tokio::test]
async fn a_repair_removes_the_seals_of_what_it_cuts() {
    let dir = stopped_log().await;
    let found = recovery::examine(dir.path(), |_| {}).unwrap();
    let cut_in = &found.segments[4];
    // The first record after the segment's header.
    let position = cut_in.data_start;
    recovery::repair(dir.path(), position).unwrap();
    let seals = files(dir.path(), "seal");
    assert_eq!(seals.len(), 4, "{seals:?}");
    assert!(
        seals
            .iter()
            .all(|p| p < &cut_in.path.with_extension("seal"))
    );
    let (store, recovery) = open(dir.path()).unwrap();
    let all = store
        .read_all(AllStart::Start, Direction::Forwards, u64::MAX, |_| true)
        .unwrap();
    assert_eq!(all.last().map(|e| e.position < position), Some(true));
    assert_eq!(recovery.records, all.len() as u64);
    store.close().await;
}
