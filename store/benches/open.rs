//! How long the store takes to open a long log (run: `cargo bench -p store
//! --bench open`; `EVENTS`, default 1,000,000, sets its length).
//!
//! A store is filled through the library with `EVENTS` events of about 200
//! bytes (1,000 per append, over 1,000 streams), closed, and opened again
//! in four ways, each timed from the call to the store taking writes:
//! 1. with the seals its writer wrote as it sealed each full segment;
//! 2. with every seal removed first: every record is read back and
//!    indexed, as every open did before seals (the baseline);
//! 3. again, with the seals that open wrote;
//! 4. with one sealed segment damaged: it is refused, as before seals.
//!
//! Each open is checked to find every record.

use std::path::Path;
use std::time::{Duration, Instant};

use store::{Store, StoreError};

mod common;
use common::fill;

/// The files of `dir` whose names end in `.extension`, in order.
fn files(dir: &Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut found: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    found.sort();
    found
}

/// Opens the store in `dir`, returning how long that took and the store.
fn open(dir: &Path) -> Result<(Duration, Store), StoreError> {
    let began = Instant::now();
    let (store, _) = Store::open(dir)?;
    Ok((began.elapsed(), store))
}

fn main() {
    let events: u64 = std::env::var("EVENTS")
        .ok()
        .map(|v| v.parse().expect("EVENTS is a number"))
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events");
    let written = Instant::now();
    runtime.block_on(async {
        let (store, _) = Store::open(&data).unwrap();
        fill(&store, events, |n| {
            format!("stream-{}", (n / 1_000) % 1_000)
        })
        .await;
        store.close().await;
    });
    let bytes: u64 = files(&data, "seg")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    println!(
        "{events} events written in {:.1?}: {} segments, {:.0} MB",
        written.elapsed(),
        files(&data, "seg").len(),
        bytes as f64 / 1e6
    );
    runtime.block_on(async {
        let (took, store) = open(&data).unwrap();
        assert_eq!(store.records(), events);
        println!(
            "1. open with the writer's seals ({} of them): {took:.1?}",
            files(&data, "seal").len()
        );
        store.close().await;
        for seal in files(&data, "seal") {
            std::fs::remove_file(seal).unwrap();
        }
        let (scan, store) = open(&data).unwrap();
        assert_eq!(store.records(), events);
        println!("2. open reading every record (no seals; baseline): {scan:.1?}");
        store.close().await;
        let (sealed, store) = open(&data).unwrap();
        assert_eq!(store.records(), events);
        println!(
            "3. open with the seals open wrote ({}): {sealed:.1?} ({:.3}x the baseline)",
            files(&data, "seal").len(),
            sealed.as_secs_f64() / scan.as_secs_f64()
        );
        store.close().await;
    });
    let first = &files(&data, "seg")[0];
    let file = std::fs::OpenOptions::new().write(true).open(first).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&file, b"\xff", 1_000).unwrap();
    match open(&data) {
        Err(StoreError::Log(e)) => println!("4. a damaged sealed segment is refused: {e}"),
        Err(e) => panic!("a damaged segment failed otherwise: {e}"),
        Ok(_) => panic!("a damaged sealed segment was opened"),
    }
}
