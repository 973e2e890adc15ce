//! Damage to a stopped store's log: a bit flipped anywhere before the
//! checkpoint (every byte of a sealed segment, and the acknowledged part of
//! the last one) refuses the start and changes nothing; after it, the tail
//! is cut exactly at the damaged record. Missing, truncated and misnamed
//! segments refuse too; `store verify` reports what a start would find and
//! `store repair` cuts where a person says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use store::record::StoredEvent;
use store::recovery::{self, LogError, Tail};
use store::{Expected, Store, StoreError, WriteOutcome};

mod common;
use common::{event, small_segments};

/// A stopped store's log over several segments, with `torn` more records
/// written after the last checkpoint, as a crash in the middle of a write
/// leaves them. Returns the folder.
async fn stopped_log(events: u64, torn: u64) -> tempfile::TempDir {
    let live = tempfile::tempdir().unwrap();
    {
        let (store, _) = Store::open_with(live.path(), small_segments()).unwrap();
        for i in 0..events {
            let outcome = store
                .append(
                    Bytes::from(format!("s-{}", i % 4)),
                    Expected::Any,
                    vec![event(i)],
                )
                .await
                .unwrap();
            assert!(
                matches!(outcome, WriteOutcome::Written { .. }),
                "{outcome:?}"
            );
        }
        store.close().await;
    }
    // Copy what the closed store left.
    let snapshot = tempfile::tempdir().unwrap();
    copy_dir(live.path(), snapshot.path());
    let found = recovery::examine(snapshot.path(), |_| {}).unwrap();
    assert_eq!(
        found.checkpoint, found.end,
        "a stopped store is checkpointed"
    );
    let last = found.segments.last().unwrap();
    let mut bytes = std::fs::read(&last.path).unwrap();
    for i in 0..torn {
        StoredEvent {
            // Positions are not stored in a record.
            position: 0,
            stream: Bytes::from_static(b"torn"),
            revision: i,
            id: 1_000_000 + u128::from(i),
            event_type: Bytes::from_static(b"Appended"),
            is_json: true,
            created: 0,
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(b"{\"never\":\"acknowledged\"}"),
        }
        .encode(&mut bytes);
    }
    std::fs::write(&last.path, bytes).unwrap();
    snapshot
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let bytes = std::fs::read(&p).unwrap();
            (p.file_name().unwrap().into(), bytes)
        })
        .collect()
}

/// Every record of a log: (position, length).
fn records(dir: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    recovery::examine(dir, |e| out.push((e.position, e.encoded_len() as u64))).unwrap();
    out
}

fn flip(path: &Path, offset: u64, bit: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 1 << bit;
    std::fs::write(path, bytes).unwrap();
}

/// A deterministic generator, so a failing case names its offset and
/// replays.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn open(dir: &Path) -> Result<(Store, store::log::Recovery), StoreError> {
    Store::open_with(dir, small_segments())
}

#[tokio::test]
async fn a_flipped_bit_refuses_before_the_checkpoint_and_cuts_exactly_after_it() {
    let pristine = stopped_log(150, 5).await;
    let found = recovery::examine(pristine.path(), |_| {}).unwrap();
    assert!(
        found.segments.len() >= 3,
        "{} segments",
        found.segments.len()
    );
    assert!(
        found.end > found.checkpoint,
        "the torn records lie after the checkpoint"
    );
    let all = records(pristine.path());
    let checkpoint = found.checkpoint;
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut refused = 0;
    let mut cut = 0;
    for (n, seg) in found.segments.iter().enumerate() {
        let last = n + 1 == found.segments.len();
        let len = std::fs::metadata(&seg.path).unwrap().len();
        // Some offsets in the acknowledged part, and (in the last segment)
        // some in the torn records after the checkpoint.
        let mut offsets: Vec<u64> = (0..10).map(|_| rng.next() % len).collect();
        offsets.extend([0, 8, len - 1]);
        if last {
            let after = checkpoint - seg.base;
            offsets.extend((0..6).map(|_| after + rng.next() % (len - after)));
        }
        for offset in offsets {
            let position = seg.base + offset;
            let bit = (rng.next() % 8) as u8;
            let case = tempfile::tempdir().unwrap();
            copy_dir(pristine.path(), case.path());
            let file = case.path().join(seg.path.file_name().unwrap());
            flip(&file, offset, bit);
            let before = contents(case.path());
            let in_slots = (16..64).contains(&offset);
            let acknowledged = !last || position < checkpoint;
            match open(case.path()) {
                // The other checkpoint slot stands in for a damaged one.
                Ok((store, recovery)) if in_slots => {
                    assert_eq!(recovery.records, all.len() as u64, "slot flip at {offset}");
                    assert_eq!(store.records(), all.len() as u64);
                }
                Err(StoreError::Log(LogError::Corrupt(c))) if acknowledged && !in_slots => {
                    refused += 1;
                    assert_eq!(c.file, file, "flip at {position}: {c}");
                    assert!(c.position <= position, "flip at {position}: {c}");
                    assert_eq!(c.position - seg.base, c.offset);
                    assert_eq!(contents(case.path()), before, "nothing changed on disk");
                }
                Ok((store, recovery)) if !acknowledged => {
                    cut += 1;
                    let (damaged, _) = *all
                        .iter()
                        .find(|(p, l)| *p <= position && position < p + l)
                        .expect("the flip is inside a record");
                    let kept = all.iter().filter(|(p, _)| *p < damaged).count() as u64;
                    assert_eq!(recovery.records, kept, "flip at {position}");
                    assert_eq!(store.records(), kept);
                    assert_eq!(
                        std::fs::metadata(&file).unwrap().len(),
                        damaged - seg.base,
                        "cut exactly at the damaged record"
                    );
                    assert_eq!(recovery.truncated_bytes, len - (damaged - seg.base));
                }
                other => panic!(
                    "flip of bit {bit} at {} offset {offset} (position {position}, checkpoint \
                     {checkpoint}): unexpected {:?}",
                    file.display(),
                    other.map(|(_, r)| r)
                ),
            }
        }
    }
    assert!(refused > 20 && cut > 3, "refused {refused}, cut {cut}");
}

#[tokio::test]
async fn a_truncated_missing_or_misnamed_segment_refuses_the_start() {
    let pristine = stopped_log(150, 0).await;
    let found = recovery::examine(pristine.path(), |_| {}).unwrap();
    let middle = &found.segments[1];
    let name = middle.path.file_name().unwrap();

    let truncated = tempfile::tempdir().unwrap();
    copy_dir(pristine.path(), truncated.path());
    let file = truncated.path().join(name);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len - 100)
        .unwrap();
    let before = contents(truncated.path());
    let Err(StoreError::Log(LogError::Corrupt(c))) = open(truncated.path()) else {
        panic!("a truncated middle segment must refuse the start")
    };
    assert_eq!(c.file, file, "{c}");
    assert!(c.problem.contains("missing"), "{c}");
    assert_eq!(contents(truncated.path()), before);

    let missing = tempfile::tempdir().unwrap();
    copy_dir(pristine.path(), missing.path());
    std::fs::remove_file(missing.path().join(name)).unwrap();
    let before = contents(missing.path());
    let Err(StoreError::Log(LogError::Corrupt(c))) = open(missing.path()) else {
        panic!("a missing segment must refuse the start")
    };
    assert_eq!(c.position, middle.base, "{c}");
    assert!(c.problem.contains("is missing"), "{c}");
    assert_eq!(contents(missing.path()), before);

    let misnamed = tempfile::tempdir().unwrap();
    copy_dir(pristine.path(), misnamed.path());
    std::fs::rename(
        misnamed.path().join(name),
        misnamed.path().join("segment-1.seg"),
    )
    .unwrap();
    let before = contents(misnamed.path());
    let Err(StoreError::Log(LogError::Corrupt(c))) = open(misnamed.path()) else {
        panic!("a misnamed segment must refuse the start")
    };
    assert!(c.file.ends_with("segment-1.seg"), "{c}");
    assert_eq!(contents(misnamed.path()), before);
}

fn store_bin(args: &[&str], data: &Path) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_store"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn verify_reports_and_repair_cuts_only_where_a_person_says() {
    let dir = stopped_log(150, 2).await;
    let all = records(dir.path());
    let found = recovery::examine(dir.path(), |_| {}).unwrap();
    let (code, text) = store_bin(&["verify"], dir.path());
    assert_eq!(code, 0, "{text}");
    assert!(
        found.tail.is_none(),
        "both records after the checkpoint are whole"
    );
    assert!(
        text.contains(&format!(
            "acknowledged up to position {}, readable up to {}",
            found.checkpoint, found.end
        )),
        "{text}"
    );

    // Damage an acknowledged record in the middle.
    let (victim, _) = all[60];
    let seg = found
        .segments
        .iter()
        .rev()
        .find(|s| s.base <= victim)
        .unwrap();
    flip(&seg.path, victim - seg.base + 12, 3);
    let before = contents(dir.path());
    let (code, text) = store_bin(&["verify"], dir.path());
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains(&format!("log position {victim}")),
        "verify names the damaged record: {text}"
    );
    // The server refuses to start with the same words and a failing status.
    let (code, serve_text) = store_bin(&["--listen", "127.0.0.1:0", "--insecure"], dir.path());
    assert_eq!(code, 1, "{serve_text}");
    assert!(
        serve_text.contains(&format!("log position {victim}")),
        "{serve_text}"
    );
    assert_eq!(contents(dir.path()), before, "neither changed anything");

    // A cut that is not on a record boundary, or past damage, is refused.
    let (code, text) = store_bin(
        &["repair", "--truncate-at", &(victim + 1).to_string()],
        dir.path(),
    );
    assert_ne!(code, 0, "{text}");
    let (after, _) = all[61];
    let (code, text) = store_bin(&["repair", "--truncate-at", &after.to_string()], dir.path());
    assert_ne!(code, 0, "{text}");
    assert_eq!(contents(dir.path()), before);

    let (code, text) = store_bin(
        &["repair", "--truncate-at", &victim.to_string()],
        dir.path(),
    );
    assert_eq!(code, 0, "{text}");
    let (code, text) = store_bin(&["verify"], dir.path());
    assert_eq!(code, 0, "{text}");
    let (store, recovery) = open(dir.path()).unwrap();
    assert_eq!(recovery.records, 60);
    assert_eq!(store.records(), 60);
    assert_eq!(recovery.truncated_bytes, 0);
}

#[tokio::test]
async fn a_torn_tail_is_cut_and_the_rest_stays_acknowledged() {
    let dir = stopped_log(40, 3).await;
    let found = recovery::examine(dir.path(), |_| {}).unwrap();
    let last = found.segments.last().unwrap();
    // Half of the last torn record reached the disk.
    let len = std::fs::metadata(&last.path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last.path)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let Some(Tail::Torn { position, .. }) = recovery::examine(dir.path(), |_| {}).unwrap().tail
    else {
        panic!("a torn tail")
    };
    let (store, recovery) = open(dir.path()).unwrap();
    assert_eq!(
        recovery.records, 42,
        "the two whole records after the checkpoint stay"
    );
    assert_eq!(store.committed_end(), position);
    store.close().await;
    // What the start kept is acknowledged from then on.
    let again = recovery::examine(dir.path(), |_| {}).unwrap();
    assert_eq!((again.checkpoint, again.end), (position, position));
}

#[tokio::test]
async fn a_log_written_before_checkpoints_opens_and_grows_in_the_new_format() {
    let dir = tempfile::tempdir().unwrap();
    // Format 1: a 16-byte header (marker and base) and records.
    let mut bytes = b"XCHGLOG1".to_vec();
    bytes.extend_from_slice(&0u64.to_le_bytes());
    for i in 0..3u64 {
        StoredEvent {
            position: 0,
            stream: Bytes::from_static(b"old"),
            revision: i,
            id: u128::from(i) + 1,
            event_type: Bytes::from_static(b"Appended"),
            is_json: true,
            created: 0,
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(b"{}"),
        }
        .encode(&mut bytes);
    }
    std::fs::write(dir.path().join(format!("{:020}.seg", 0)), &bytes).unwrap();
    {
        let (store, recovery) = open(dir.path()).unwrap();
        assert_eq!(recovery.records, 3);
        let outcome = store
            .append(
                Bytes::from_static(b"old"),
                Expected::Exact(2),
                vec![event(9)],
            )
            .await
            .unwrap();
        assert_eq!(
            outcome,
            WriteOutcome::Written {
                revision: Some(3),
                position: bytes.len() as u64 + store::segment::HEADER
            },
            "the new record goes to a new segment after the old one"
        );
        store.close().await;
    }
    let found = recovery::examine(dir.path(), |_| {}).unwrap();
    assert_eq!((found.segments.len(), found.records), (2, 4));
    // The old segment is now sealed by the one after it: damage in it is
    // refused like any acknowledged data.
    flip(&dir.path().join(format!("{:020}.seg", 0)), 30, 0);
    assert!(matches!(
        open(dir.path()),
        Err(StoreError::Log(LogError::Corrupt(_)))
    ));
}

#[tokio::test]
async fn a_store_gone_idle_checkpoints_all_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    for i in 0..20 {
        let outcome = store
            .append(Bytes::from_static(b"s"), Expected::Any, vec![event(i)])
            .await
            .unwrap();
        assert!(matches!(outcome, WriteOutcome::Written { .. }));
    }
    // Still open: the syncer claims the end shortly after the last batch.
    let mut found = recovery::examine(dir.path(), |_| {}).unwrap();
    for _ in 0..50 {
        if found.checkpoint == store.committed_end() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        found = recovery::examine(dir.path(), |_| {}).unwrap();
    }
    assert_eq!(found.checkpoint, store.committed_end());
    assert_eq!(found.records, 20);
}

#[tokio::test]
async fn one_store_at_a_time_writes_a_directory_and_close_frees_it() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path()).unwrap();
    let written = store
        .append(Bytes::from_static(b"s"), Expected::Any, vec![event(0)])
        .await
        .unwrap();
    let WriteOutcome::Written { position, .. } = written else {
        panic!("{written:?}")
    };
    // A second store, or a repair, beside a running one would overwrite
    // what it acknowledged: both are refused and change nothing.
    let before = contents(dir.path());
    assert!(matches!(
        open(dir.path()),
        Err(StoreError::Log(LogError::InUse { .. }))
    ));
    assert!(matches!(
        recovery::repair(dir.path(), position),
        Err(LogError::InUse { .. })
    ));
    assert_eq!(contents(dir.path()), before);
    // Handles may outlive the close (a subscription, a read): writes
    // through them are refused, reads of what was written still work.
    let handle = store.clone();
    store.close().await;
    assert!(matches!(
        handle
            .append(Bytes::from_static(b"s"), Expected::Any, vec![event(1)])
            .await,
        Err(StoreError::Closed)
    ));
    assert_eq!(handle.records(), 1);
    let found = recovery::examine(dir.path(), |_| {}).unwrap();
    assert_eq!((found.records, found.checkpoint), (1, found.end));
    // Closed: the directory opens again at once, with all of it.
    let (again, recovery) = open(dir.path()).unwrap();
    assert_eq!((recovery.records, recovery.truncated_bytes), (1, 0));
    again.close().await;
    drop(handle);
}
