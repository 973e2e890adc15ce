//! The books' snapshots in the store: the leader writes them behind the
//! order path, each is the fold of the stream at its point, and a replay
//! that starts from them is the stream folded from its first event, for
//! every moment, also when snapshots are damaged, of another format
//! version, taken at the wrong point, or of another history of the stream
//! (a store restored from a backup and written on since).

use std::path::Path;
use std::time::Duration;

use blake2::{Blake2s256, Digest};
use eventstore::{AppendToStreamOptions, EventData};
use orderbook::{Book, Market};

use super::*;
use crate::server::book_snapshots::{check, read, stream};
use crate::server::streams::{market_stream, read_all_from_start, read_records};
use crate::server::views::{depth_view, trade_view};

const SYMBOL: &str = "BTC-USD";

fn btc() -> Market {
    settings().markets.remove(0)
}

/// A server on the store in `dir` that writes a snapshot every `every`
/// events.
async fn server(dir: &Path, every: u64) -> Server {
    let mut config = settings();
    config.snapshot_every = every;
    let data = dir.join("events");
    start_on_with(config, Connection::Embedded { data }).await
}

/// Waits until the leader has written every snapshot its market's stream
/// has passed the point of, and returns the stream.
async fn snapshots_written(s: &Server, every: u64) -> Vec<orderbook::Event> {
    let client = s.exchange.client();
    let mut events = Vec::new();
    for _ in 0..400 {
        events = load_market(&client, SYMBOL).await.unwrap();
        let stats = s.exchange.stats();
        let btc = stats.markets.iter().find(|m| m.symbol == SYMBOL).unwrap();
        if btc.snapshots == events.len() as u64 / every {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the snapshots of {} events were not written", events.len());
}

/// Crossing orders of two new traders, at prices `seed` varies: trades,
/// partial fills and resting orders.
async fn trade(s: &Server, names: [&str; 2], seed: u64, orders: u64) {
    let mut seller = Browser::sign_up(s, names[0]).await;
    let mut buyer = Browser::sign_up(s, names[1]).await;
    for i in 0..orders {
        let price = (30_000 + (i * 7 + seed) % 13).to_string();
        let qty = format!("0.00{}", 1 + (i + seed) % 9);
        let (who, side) = if i % 3 == 0 {
            (&mut seller, "sell")
        } else {
            (&mut buyer, "buy")
        };
        who.limit(s, side, &price, &qty).await.unwrap();
        if i % 4 == 3 {
            let price = (30_000 + (i + seed) % 13).to_string();
            seller.limit(s, "sell", &price, "0.01").await.unwrap();
        }
    }
}

/// Every moment of the stream replayed by the server equals the stream's
/// events up to it folded from the first, and every stored snapshot the
/// server takes is the fold at its point.
async fn replays_are_the_fold(s: &Server, every: u64, events: &[orderbook::Event]) {
    for n in 0..=events.len() {
        let got = s
            .exchange
            .replay(SYMBOL, ReplayTo::Events(n as u64))
            .await
            .unwrap();
        let book = Book::replay(btc(), &events[..n]);
        assert_eq!(got.depth, depth_view(book.depth(20)), "after {n} events");
        // The tape: the trades among the moment's last 2,000 events,
        // newest first, whether before the snapshot it starts from or not.
        let recent = events[n.saturating_sub(2000)..n].iter().rev();
        let tape: Vec<_> = recent
            .filter_map(trade_view)
            .take(crate::api::TAPE)
            .collect();
        assert_eq!(got.trades, tape, "the tape after {n} events");
    }
    let client = s.exchange.client();
    let mut taken = 0;
    for k in 1..=events.len() as u64 / every {
        let Ok(Some(book)) = read(&client, &btc(), every, k).await else {
            continue;
        };
        let n = book.events_applied() as usize;
        let fold = Book::replay(btc(), &events[..n]);
        assert_eq!(book.snapshot(), fold.snapshot(), "snapshot {k}");
        taken += 1;
    }
    assert!(taken > 0, "no snapshot was read");
}

/// A snapshot's stream as the leader writes it, for snapshot `k` of the
/// fold of `events` at interval `every`, with its JSON changed by `edit`.
fn crafted_part(
    events: &[orderbook::Event],
    ids: &[uuid::Uuid],
    every: u64,
    k: u64,
    edit: impl FnOnce(&mut serde_json::Value),
) -> EventData {
    let mut book = Book::new(btc());
    for e in events {
        book.apply(e);
        if book.events_applied() >= k * every && book.between_orders() {
            break;
        }
    }
    let mut json = serde_json::to_value(book.snapshot()).unwrap();
    edit(&mut json);
    let bytes = serde_json::to_vec(&json).unwrap();
    let hash: String = Blake2s256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = serde_json::json!({
        "part": 0, "parts": 1, "bytes": bytes.len(), "hash": hash,
        "last_event": ids[book.events_applied() as usize - 1],
    });
    EventData::binary("BookSnapshotPart", bytes.into())
        .metadata_as_json(&meta)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_leader_stores_snapshots_and_replays_from_them_are_the_fold() {
    let dir = tempfile::tempdir().unwrap();
    let every = 8;
    let s = server(dir.path(), every).await;
    trade(&s, ["alice", "bob"], 0, 40).await;
    let events = snapshots_written(&s, every).await;
    assert!(events.len() as u64 >= 6 * every, "{}", events.len());
    replays_are_the_fold(&s, every, &events).await;
    // Snapshot 3 damaged (a part past its last), snapshot 5 gone wrong
    // in its bytes: replays pass them over and stay exact.
    let client = s.exchange.client();
    let records = read_records(&client, &stream(SYMBOL, every, 3))
        .await
        .unwrap();
    let extra = EventData::binary("BookSnapshotPart", records[0].data.clone())
        .metadata(records[0].custom_metadata.clone());
    let any = AppendToStreamOptions::default();
    let name = stream(SYMBOL, every, 3);
    client
        .append_to_stream(name.clone(), &any, vec![extra])
        .await
        .unwrap();
    assert!(read(&client, &btc(), every, 3).await.is_err());
    replays_are_the_fold(&s, every, &events).await;
    // The operator's check: every other snapshot equal to the fold, the
    // damaged one reported.
    let checked = check(&client, &btc(), every).await.unwrap();
    assert_eq!(
        checked.equal,
        events.len() as u64 / every - 1,
        "{checked:?}"
    );
    assert_eq!(checked.passed_over.len(), 1, "{checked:?}");
    assert!(checked.passed_over[0].contains(&name), "{checked:?}");
    assert!(checked.differ.is_empty(), "{checked:?}");
    s.exchange.stop().await;
}

/// Snapshots that are not what their stream's name says, written before
/// a server of that interval runs: of an older format version, of a point
/// other than their own, with bytes that do not match their hash. The
/// leader leaves them, writes every other one, and replays pass them over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_that_are_not_what_their_name_says_are_passed_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), 8).await;
    trade(&s, ["alice", "bob"], 3, 40).await;
    let client = s.exchange.client();
    let events = load_market(&client, SYMBOL).await.unwrap();
    let records = read_records(&client, &market_stream(SYMBOL)).await.unwrap();
    let ids: Vec<_> = records.iter().map(|r| r.id).collect();
    s.exchange.stop().await;
    drop(s);
    // Crafted for the interval 5, which nothing has written yet.
    let every = 5;
    let (store, direct) = open_stopped(dir.path()).await;
    let any = AppendToStreamOptions::default();
    let crafted = [
        (
            2,
            crafted_part(&events, &ids, every, 2, |j| j["schema_version"] = 2.into()),
        ),
        (3, crafted_part(&events, &ids, every, 2, |_| {})),
        (4, {
            let meta = serde_json::json!({
                "part": 0, "parts": 1, "bytes": 3, "hash": "00", "last_event": ids[0],
            });
            EventData::binary("BookSnapshotPart", "{}x".into())
                .metadata_as_json(&meta)
                .unwrap()
        }),
    ];
    for (k, part) in crafted {
        let name = stream(SYMBOL, every, k);
        direct
            .append_to_stream(name, &any, vec![part])
            .await
            .unwrap();
    }
    for k in [2, 3, 4] {
        assert!(read(&direct, &btc(), every, k).await.is_err(), "{k}");
    }
    store.stop().await.unwrap();
    let s = server(dir.path(), every).await;
    let events = snapshots_written(&s, every).await;
    replays_are_the_fold(&s, every, &events).await;
    let client = s.exchange.client();
    for k in [2, 3, 4] {
        assert!(
            read(&client, &btc(), every, k).await.is_err(),
            "{k} left as it was"
        );
    }
    assert!(read(&client, &btc(), every, 5).await.unwrap().is_some());
    s.exchange.stop().await;
}

/// A store restored from a backup taken before the last stretch of a
/// market's stream, and written on since: its snapshots of that stretch
/// are of another history. Each names the last event it folded, so the
/// server tells them apart, replays pass them over, and the moments after
/// the cut are the new stream's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_of_another_history_of_the_stream_are_passed_over() {
    let every = 8;
    let before = tempfile::tempdir().unwrap();
    let s = server(before.path(), every).await;
    trade(&s, ["alice", "bob"], 1, 60).await;
    let old = snapshots_written(&s, every).await;
    let cut = old.len() as u64 / 2;
    // The backup: every event up to the cut, the snapshots taken after it
    // as well (a backup of the snapshots' streams taken later).
    let restored = tempfile::tempdir().unwrap();
    {
        let (store, to) = open_stopped(restored.path()).await;
        let mut copied = Vec::new();
        read_all_from_start(&s.exchange.client(), |e| {
            let skip = e.stream_id.starts_with('$')
                || (e.stream_id == market_stream(SYMBOL) && e.revision >= cut);
            if !skip {
                copied.push(e);
            }
            Ok(())
        })
        .await
        .unwrap();
        let any = AppendToStreamOptions::default();
        for e in copied {
            let data = EventData::binary(e.event_type.clone(), e.data.clone())
                .id(e.id)
                .metadata(e.custom_metadata.clone());
            to.append_to_stream(e.stream_id.clone(), &any, vec![data])
                .await
                .unwrap();
        }
        store.stop().await.unwrap();
    }
    s.exchange.stop().await;
    let s = server(restored.path(), every).await;
    trade(&s, ["carol", "dave"], 5, 60).await;
    let new = snapshots_written(&s, every).await;
    assert!(new.len() > old.len(), "{} {}", new.len(), old.len());
    assert_eq!(new[..cut as usize], old[..cut as usize]);
    assert_ne!(new[cut as usize..old.len()], old[cut as usize..]);
    replays_are_the_fold(&s, every, &new).await;
    let client = s.exchange.client();
    let mut other = 0;
    for k in 1..=old.len() as u64 / every {
        if let Err(e) = read(&client, &btc(), every, k).await {
            assert!(e.to_string().contains("another history"), "{e}");
            other += 1;
        }
    }
    assert!(other > 0, "no snapshot of the old history was left");
    let checked = check(&client, &btc(), every).await.unwrap();
    assert_eq!(checked.passed_over.len(), other, "{checked:?}");
    assert!(checked.differ.is_empty(), "{checked:?}");
    s.exchange.stop().await;
}

/// A snapshot that passes every check a reader can make (whole, intact,
/// of its version, at its point, of this history) but holds another book:
/// only a fold tells, so the operator's check compares each with the fold
/// and reports it as a broken rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_finds_a_snapshot_that_differs_from_the_fold() {
    let dir = tempfile::tempdir().unwrap();
    let s = server(dir.path(), 8).await;
    trade(&s, ["alice", "bob"], 2, 30).await;
    let client = s.exchange.client();
    let events = load_market(&client, SYMBOL).await.unwrap();
    let records = read_records(&client, &market_stream(SYMBOL)).await.unwrap();
    let ids: Vec<_> = records.iter().map(|r| r.id).collect();
    // Of an interval nothing has written: snapshot 2 with a resting
    // order's size changed.
    let every = 7;
    let part = crafted_part(&events, &ids, every, 2, |j| {
        j["orders"][0]["remaining_quantity"] = "0.5".into();
    });
    let any = AppendToStreamOptions::default();
    let name = stream(SYMBOL, every, 2);
    client
        .append_to_stream(name.clone(), &any, vec![part])
        .await
        .unwrap();
    assert!(read(&client, &btc(), every, 2).await.unwrap().is_some());
    let checked = check(&client, &btc(), every).await.unwrap();
    assert_eq!(checked.differ.len(), 1, "{checked:?}");
    assert!(checked.differ[0].starts_with(&name), "{checked:?}");
    assert_eq!(
        checked.missing,
        events.len() as u64 / every - 1,
        "{checked:?}"
    );
    s.exchange.stop().await;
}
