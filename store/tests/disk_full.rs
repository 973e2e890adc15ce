//! A disk that fills up: appends that do not fit fail (the client is told
//! so), what they half wrote is cut back at once, and after a restart every
//! acknowledged event is there exactly once and nothing of a failed append
//! comes back. The disk is a small tmpfs the test mounts, so it needs root
//! (as the test command runs here and in CI).

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use store::{AllStart, Direction, Expected, NewEvent, Options, Store, WriteOutcome};

/// A tmpfs of `size` mounted on a fresh folder, unmounted on drop.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs for the disk-full test needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk(dir)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

fn batch(first: u64, n: u64) -> Vec<NewEvent> {
    (first..first + n)
        .map(|i| NewEvent {
            id: u128::from(i) + 1,
            event_type: Bytes::from_static(b"Filled"),
            is_json: true,
            custom_metadata: Bytes::new(),
            data: Bytes::from(format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(1500))),
        })
        .collect()
}

#[tokio::test]
async fn a_full_disk_fails_appends_and_leaves_nothing_unacknowledged_behind() {
    let disk = SmallDisk::mount("256k");
    let dir = disk.path().join("events");
    let options = Options::default();
    let mut acknowledged = HashSet::new();
    let mut refused = HashSet::new();
    // Room set aside on the disk, given back once it is full.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 32 * 1024]).unwrap();
    {
        let (store, _) = Store::open_with(&dir, options.clone()).unwrap();
        let mut next = 0u64;
        let mut failures = 0;
        // Batches of five events, so a write cut short by the full disk
        // holds whole records of an append that failed.
        while failures < 3 {
            let events = batch(next, 5);
            let ids: Vec<u128> = events.iter().map(|e| e.id).collect();
            next += 5;
            match store
                .append(Bytes::from_static(b"fill"), Expected::Any, events)
                .await
                .unwrap()
            {
                WriteOutcome::Written { .. } => acknowledged.extend(ids),
                WriteOutcome::Failed(why) => {
                    failures += 1;
                    assert!(!why.is_empty());
                    refused.extend(ids);
                    // Cut back at once: the file ends where the log does.
                    let seg = std::fs::read_dir(&dir)
                        .unwrap()
                        .map(|e| e.unwrap().path())
                        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
                        .max()
                        .unwrap();
                    let base: u64 = seg.file_stem().unwrap().to_str().unwrap().parse().unwrap();
                    assert_eq!(
                        base + std::fs::metadata(&seg).unwrap().len(),
                        store.committed_end(),
                        "nothing of the failed append stays after the log's end"
                    );
                }
                other => panic!("{other:?}"),
            }
            assert!(next < 10_000, "the small disk never filled");
        }
        assert!(
            acknowledged.len() > 50,
            "{} acknowledged",
            acknowledged.len()
        );
        // Once the disk has room again, the same store writes again (no
        // restart), and what it writes is kept.
        std::fs::remove_file(&ballast).unwrap();
        let small = NewEvent {
            data: Bytes::from_static(b"{}"),
            ..batch(next, 1).remove(0)
        };
        let outcome = store
            .append(
                Bytes::from_static(b"fill"),
                Expected::Any,
                vec![small.clone()],
            )
            .await
            .unwrap();
        assert!(
            matches!(outcome, WriteOutcome::Written { .. }),
            "an append after room came back: {outcome:?}"
        );
        acknowledged.insert(small.id);
        store.close().await;
    }
    let (store, recovery) = Store::open_with(&dir, options).unwrap();
    assert_eq!(recovery.truncated_bytes, 0, "nothing was left to cut");
    let events = store
        .read_all(AllStart::Start, Direction::Forwards, u64::MAX, |_| true)
        .unwrap();
    let found: Vec<u128> = events.iter().map(|e| e.id).collect();
    let unique: HashSet<u128> = found.iter().copied().collect();
    assert_eq!(unique.len(), found.len(), "no event twice");
    assert_eq!(unique, acknowledged, "exactly the acknowledged events");
    assert!(refused.is_disjoint(&unique));
}
