//! The books' snapshots in the store: where a replay to any moment of a
//! market starts, instead of a copy of the book kept in memory for every
//! stretch of its history.
//!
//! Snapshot `k` of a market, for an interval `every` (`--snapshot-every`),
//! is its book at the first event at or after `k * every` where no order is
//! part-way through entering ([`Book::between_orders`]). Every server finds
//! that point alike in the same stream, so a snapshot has the same bytes
//! whoever writes it, and writing it twice (a retry, a second writer) is
//! harmless.
//!
//! Each snapshot is a stream of its own, named by the snapshot format's
//! version, the interval, the market and `k` ([`stream`]): a replay reaches
//! it with one read, and a program of another format version or interval
//! writes a series of its own beside it instead of misreading this one. A
//! book can be larger than the store takes in one append (1 MiB), so a
//! snapshot is cut into parts of [`PART`] bytes, each appended only after
//! the one before it (by expected revision), and each carries the length
//! and the hash of the whole and the id of the last event of the market's
//! stream the snapshot folded. A reader takes a snapshot only whole,
//! intact, of its version, at its point and of the history the stream
//! holds now (that event's id is the same: a store restored from an older
//! backup and written on since holds snapshots of another history). One
//! that is not is passed over for the snapshot before it, and so on back
//! to the empty book; so a damaged snapshot costs a longer fold, never a
//! different answer. What no reader can tell, a snapshot that passes all
//! that and still holds another book, `exchange check` finds by comparing
//! each with the fold ([`check`]).

use blake2::{Blake2s256, Digest};
use eventstore::{Client, EventData};
use orderbook::{Book, Market, SNAPSHOT_VERSION, Snapshot};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::streams::{
    Direction, StreamError, append, derived_id, market_event_id, read_market, read_records,
};

/// The most bytes of a snapshot's JSON one part carries: half of what the
/// store takes in one append.
pub const PART: usize = 512 * 1024;

/// Events the checker reads at a time.
const CHECK_PAGE: u64 = 4096;

/// The event type of a snapshot's parts.
const PART_TYPE: &str = "BookSnapshotPart";

/// The stream that holds snapshot `k` of `symbol`'s book at interval
/// `every`. It starts with neither a market's nor an account's prefix, so
/// the live tail and the feeds never carry it.
pub fn stream(symbol: &str, every: u64, k: u64) -> String {
    format!("booksnapshot-v{SNAPSHOT_VERSION}-{every}-{symbol}-{k}")
}

/// Whether `book` is where snapshot `k` is taken: at or after `k * every`
/// events, with no order part-way through entering. The first event of
/// the fold where this holds is the snapshot's.
pub fn due(book: &Book, every: u64, k: u64) -> bool {
    book.events_applied() >= k.saturating_mul(every) && book.between_orders()
}

/// What each part says of the whole (the event's metadata).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct PartOf {
    part: u32,
    parts: u32,
    /// The length of the whole snapshot's JSON.
    bytes: u64,
    /// BLAKE2s-256 of the whole snapshot's JSON, in hex.
    hash: String,
    /// The id of the last event of the market's stream the snapshot
    /// folded: a snapshot of another history of the stream (a store
    /// restored from an older backup and written on since) is told apart
    /// by it.
    last_event: Uuid,
}

/// Why a stored snapshot is not taken.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotReadError {
    #[error(transparent)]
    Store(#[from] StreamError),
    #[error("snapshot {stream} is damaged: {reason}")]
    Damaged { stream: String, reason: String },
}

/// A snapshot as its stream's parts: the whole JSON and what each part
/// says of it.
fn parts(snapshot: &Snapshot, last_event: Uuid) -> (Vec<Vec<u8>>, PartOf) {
    let json = serde_json::to_vec(snapshot).expect("a snapshot always serialises");
    let chunks: Vec<Vec<u8>> = json.chunks(PART).map(<[u8]>::to_vec).collect();
    let whole = PartOf {
        part: 0,
        parts: chunks.len() as u32,
        bytes: json.len() as u64,
        hash: hex(&Blake2s256::digest(&json)),
        last_event,
    };
    (chunks, whole)
}

/// Bytes as lowercase hex: how the snapshots' hashes are written.
pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes snapshot `k` of `book` (taken where [`due`] held), part by
/// part. Parts already in its stream with the same hash are kept (an
/// earlier try that stopped half-way, or another writer); a stream that
/// holds another snapshot's parts is left as it is (readers pass it over)
/// and reported.
pub async fn write(client: &Client, every: u64, k: u64, book: &Book) -> Result<(), StreamError> {
    let symbol = book.market().symbol.as_str();
    let name = stream(symbol, every, k);
    let covered = book.events_applied().checked_sub(1);
    let last = match covered {
        Some(revision) => market_event_id(client, symbol, revision).await?,
        None => None,
    };
    let Some(last_event) = last else {
        // Snapshot 0, the empty book, is never stored; and a stream that
        // no longer reaches the book's events is not this book's.
        return Ok(());
    };
    let (chunks, whole) = parts(&book.snapshot(), last_event);
    let Some(mut have) = written(client, &name, &whole).await? else {
        tracing::warn!(stream = %name, "a snapshot's stream holds parts of another; left as it is");
        return Ok(());
    };
    while let Some(chunk) = chunks.get(have as usize) {
        let meta = PartOf {
            part: have,
            ..whole.clone()
        };
        let id = derived_id(&format!(
            "{name}/{have}/{}/{}",
            whole.hash, whole.last_event
        ));
        let event = EventData::binary(PART_TYPE, bytes::Bytes::from(chunk.clone()))
            .id(id)
            .metadata_as_json(&meta)
            .expect("part metadata always serialises");
        match append(client, &name, u64::from(have), vec![event]).await {
            Ok(()) => have += 1,
            // Someone else wrote a part meanwhile: count again.
            Err(StreamError::WrongExpectedVersion) => {
                let Some(now) = written(client, &name, &whole).await? else {
                    return Ok(());
                };
                have = now;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// How many parts of the snapshot `whole` says its stream holds, `None`
/// if it holds parts of another (or of the same book after another
/// history of the market's stream).
async fn written(client: &Client, name: &str, whole: &PartOf) -> Result<Option<u32>, StreamError> {
    let stored = read_records(client, name).await?;
    let mut have = 0;
    for e in &stored {
        match serde_json::from_slice::<PartOf>(&e.custom_metadata) {
            Ok(p) if p.hash == whole.hash && p.last_event == whole.last_event && p.part == have => {
                have += 1
            }
            _ => return Ok(None),
        }
    }
    Ok(Some(have))
}

/// Reads snapshot `k` of `market`'s book: `None` if there is none (not
/// written yet, or never), an error if it is not whole, not intact, not of
/// this format version, not taken at its point or not of the history the
/// market's stream holds now.
pub async fn read(
    client: &Client,
    market: &Market,
    every: u64,
    k: u64,
) -> Result<Option<Book>, SnapshotReadError> {
    let name = stream(market.symbol.as_str(), every, k);
    let stored = read_records(client, &name).await?;
    if stored.is_empty() {
        return Ok(None);
    }
    let damaged = |reason: String| SnapshotReadError::Damaged {
        stream: name.clone(),
        reason,
    };
    let mut json = Vec::new();
    let mut whole: Option<PartOf> = None;
    for (i, e) in stored.iter().enumerate() {
        let p: PartOf = serde_json::from_slice(&e.custom_metadata)
            .map_err(|err| damaged(format!("part {i} has no readable metadata: {err}")))?;
        let first = whole.get_or_insert_with(|| p.clone());
        let same_whole = (p.parts, p.bytes, &p.hash, p.last_event)
            == (first.parts, first.bytes, &first.hash, first.last_event);
        if p.part as usize != i || p.part >= p.parts || !same_whole {
            return Err(damaged(format!(
                "part {i} is not the next part of one snapshot"
            )));
        }
        json.extend_from_slice(&e.data);
    }
    let whole = whole.expect("at least one part");
    if stored.len() < whole.parts as usize {
        // Being written, or its writer stopped half-way.
        return Ok(None);
    }
    if json.len() as u64 != whole.bytes || hex(&Blake2s256::digest(&json)) != whole.hash {
        return Err(damaged("its bytes do not match their hash".into()));
    }
    let snapshot: Snapshot =
        serde_json::from_slice(&json).map_err(|e| damaged(format!("not a snapshot: {e}")))?;
    if snapshot.schema_version != SNAPSHOT_VERSION {
        return Err(damaged(format!(
            "it is of format version {}, its stream's name says {SNAPSHOT_VERSION}",
            snapshot.schema_version
        )));
    }
    let book =
        Book::from_snapshot(market.clone(), &snapshot).map_err(|e| damaged(e.to_string()))?;
    if book.events_applied() < k.saturating_mul(every) || !book.between_orders() {
        return Err(damaged(format!(
            "it is of the book after {} events, not where snapshot {k} is taken",
            book.events_applied()
        )));
    }
    let revision = book.events_applied() - 1;
    let stored = market_event_id(client, market.symbol.as_str(), revision).await?;
    if stored != Some(whole.last_event) {
        return Err(damaged(format!(
            "it is of another history of the market's stream (its event {revision} differs)"
        )));
    }
    Ok(Some(book))
}

/// The book after the latest stored snapshot that covers no more than the
/// market's first `events` events (the empty book if none does), and which
/// snapshot it is (0 for the empty book). Damaged snapshots are passed
/// over, and said so in the log.
pub async fn latest_within(
    client: &Client,
    market: &Market,
    every: u64,
    events: u64,
) -> Result<(u64, Book), StreamError> {
    let mut k = events / every.max(1);
    while k > 0 {
        match read(client, market, every, k).await {
            Ok(Some(book)) if book.events_applied() <= events => return Ok((k, book)),
            // Taken past `events` (a long command), or not there.
            Ok(_) => {}
            Err(SnapshotReadError::Damaged { stream, reason }) => {
                tracing::warn!(%stream, "passing over a damaged snapshot: {reason}");
            }
            Err(SnapshotReadError::Store(e)) => return Err(e),
        }
        k -= 1;
    }
    Ok((0, Book::new(market.clone())))
}

/// What `exchange check` finds of one market's stored snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotsChecked {
    /// Snapshots equal to the fold of the stream at their point.
    pub equal: u64,
    /// Points the stream has passed with no snapshot stored (yet).
    pub missing: u64,
    /// Snapshots replays pass over, each with why.
    pub passed_over: Vec<String>,
    /// Snapshots that pass every check a reader makes and still differ
    /// from the fold: a replay from one would show a wrong book.
    pub differ: Vec<String>,
}

/// Folds `market`'s stream and compares each snapshot stored at interval
/// `every` with the fold where [`due`] says it is taken: the same rule and
/// the same reader the leader's writer and the replays use.
pub async fn check(
    client: &Client,
    market: &Market,
    every: u64,
) -> Result<SnapshotsChecked, StreamError> {
    let symbol = market.symbol.as_str();
    let mut book = Book::new(market.clone());
    let mut checked = SnapshotsChecked::default();
    let mut k = 1;
    loop {
        let from = book.events_applied();
        let page = read_market(client, symbol, from, CHECK_PAGE, Direction::Forwards).await?;
        if page.is_empty() {
            return Ok(checked);
        }
        for e in &page {
            book.apply(e);
            if !due(&book, every, k) {
                continue;
            }
            let name = stream(symbol, every, k);
            match read(client, market, every, k).await {
                Ok(Some(stored)) if stored.snapshot() == book.snapshot() => checked.equal += 1,
                Ok(Some(stored)) => checked.differ.push(format!(
                    "{name}: the book after {} events differs from the fold at event {}",
                    stored.events_applied(),
                    book.events_applied()
                )),
                Ok(None) => checked.missing += 1,
                Err(SnapshotReadError::Damaged { stream, reason }) => {
                    checked.passed_over.push(format!("{stream}: {reason}"))
                }
                Err(SnapshotReadError::Store(e)) => return Err(e),
            }
            k += 1;
        }
    }
}
