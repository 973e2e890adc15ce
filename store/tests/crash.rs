//! Crash recovery: the standalone `store` binary is killed with SIGKILL in
//! the middle of concurrent appends, restarted (once with garbage appended
//! to its log, as a torn write would leave), and every acknowledged event
//! must be there exactly once, at the revision and position it was
//! acknowledged with, and nothing that was never sent.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eventstore::{AppendToStreamOptions, Client, EventData, ReadStreamOptions};
use uuid::Uuid;

const WRITERS: u64 = 8;

fn spawn_store(dir: &Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_store"))
        .args(["--listen", "127.0.0.1:0", "--insecure", "--data"])
        .arg(dir)
        .env(
            "RUST_LOG",
            std::env::var("STORE_LOG").unwrap_or("warn".into()),
        )
        .stdout(Stdio::piped())
        .spawn()
        .expect("the store binary starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .nth(2)
        .expect("listening line names the address")
        .to_string();
    (
        child,
        format!("esdb://{addr}?tls=false&discoveryInterval=0"),
    )
}

/// (writer, seq) packed into an event id.
fn id(writer: u64, seq: u64) -> Uuid {
    Uuid::from_u128((u128::from(writer) << 64) | u128::from(seq))
}

#[derive(Default)]
struct Ledger {
    /// Acknowledged: id → (stream, revision, position).
    acked: HashMap<Uuid, (String, u64, u64)>,
    /// Everything ever sent (acknowledged or not).
    sent: HashSet<Uuid>,
}

async fn hammer(
    url: &str,
    ledger: Arc<Mutex<Ledger>>,
    first_seq: u64,
) -> Vec<tokio::task::JoinHandle<u64>> {
    let client = Client::new(url.parse().unwrap()).unwrap();
    (0..WRITERS)
        .map(|w| {
            let client = client.clone();
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let stream = format!("crash-{w}");
                let options = AppendToStreamOptions::default();
                let mut seq = first_seq;
                loop {
                    let eid = id(w, seq);
                    ledger.lock().unwrap().sent.insert(eid);
                    let event =
                        EventData::json("Appended", &serde_json::json!({ "w": w, "seq": seq }))
                            .unwrap()
                            .id(eid);
                    let append = client.append_to_stream(stream.clone(), &options, event);
                    match tokio::time::timeout(Duration::from_secs(5), append).await {
                        Ok(Ok(r)) => {
                            ledger.lock().unwrap().acked.insert(
                                eid,
                                (stream.clone(), r.next_expected_version, r.position.commit),
                            );
                        }
                        _ => return seq,
                    }
                    seq += 1;
                }
            })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_events_survive_sigkill_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut next_seq = 0;
    for round in 0..3 {
        let (mut child, url) = spawn_store(dir.path());
        let writers = hammer(&url, ledger.clone(), next_seq).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        for w in writers {
            next_seq = next_seq.max(w.await.unwrap() + 1);
        }
        if round == 1 {
            // A torn write: half a record's worth of garbage at the tail.
            let mut segs: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            segs.sort();
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(segs.last().unwrap())
                .unwrap();
            f.write_all(&[0x40, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3])
                .unwrap();
        }
    }
    let (mut child, url) = spawn_store(dir.path());
    let client = Client::new(url.parse().unwrap()).unwrap();
    let ledger = std::mem::take(&mut *ledger.lock().unwrap());
    assert!(
        ledger.acked.len() > 100,
        "the test must append under load: {}",
        ledger.acked.len()
    );
    eprintln!(
        "{} events acknowledged, {} sent",
        ledger.acked.len(),
        ledger.sent.len()
    );
    let mut found: HashMap<Uuid, (String, u64, u64)> = HashMap::new();
    for w in 0..WRITERS {
        let stream = format!("crash-{w}");
        let mut read = client
            .read_stream(stream.as_str(), &ReadStreamOptions::default())
            .await
            .unwrap();
        let mut expected_revision = 0;
        while let Some(e) = read.next().await.unwrap() {
            let e = e.get_original_event();
            assert_eq!(e.revision, expected_revision, "revisions stay contiguous");
            expected_revision += 1;
            assert!(ledger.sent.contains(&e.id), "event {} was never sent", e.id);
            let dup = found.insert(e.id, (stream.clone(), e.revision, e.position.commit));
            assert!(dup.is_none(), "event {} is there twice", e.id);
        }
    }
    for (eid, at) in &ledger.acked {
        assert_eq!(
            found.get(eid),
            Some(at),
            "acknowledged event {eid} is missing or moved"
        );
    }
    // The recovered store keeps working.
    client
        .append_to_stream(
            "after",
            &AppendToStreamOptions::default(),
            EventData::json("A", &1).unwrap(),
        )
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}

// Multi-threaded: the client's connection must answer the server's
// shutdown while this test blocks on the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_store_cleanly_with_everything_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = spawn_store(dir.path());
    let client = Client::new(url.parse().unwrap()).unwrap();
    let written = client
        .append_to_stream(
            "before-term",
            &AppendToStreamOptions::default(),
            EventData::json("A", &1).unwrap(),
        )
        .await
        .unwrap();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "SIGTERM is a clean shutdown: {exit:?}");
    let found = store::recovery::examine(dir.path(), |_| {}).unwrap();
    assert_eq!(found.records, 1);
    assert_eq!(found.tail, None);
    assert!(found.checkpoint > written.position.commit);
    assert_eq!(found.checkpoint, found.end);
}
