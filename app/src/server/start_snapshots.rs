//! Start's snapshots in the store: what start folds (the ledger, the
//! market data, the order history) written down at one position of the
//! log, so that a start reads the newest snapshot and only the log after
//! it, instead of every event ever written.
//!
//! A snapshot is the three folds' written-down forms as three lines of
//! JSON (see [`encode`]; their long tables, the closed orders, the fills
//! and the trades, are compact tables within them: `accounts`'
//! `compact_table.rs`), each compressed with zstd ([`pack`]), cut into
//! parts of [`PART`] bytes
//! (the store takes at most 1 MiB in one append) in the parts stream, each
//! appended only after the one before it (by expected revision), and then
//! announced by one `StartSnapshotTaken` event in the taken stream: where
//! its parts are, their length and hash, the position of `$all` it covers,
//! and the id of the event at that position. Both streams carry the
//! format's version in their names, so a program of another version writes
//! a series of its own beside this one instead of misreading it.
//!
//! A reader takes a snapshot only whole, intact and of the history the log
//! holds now (the event at its position has the id it names: a store
//! restored from an older backup and written on since holds snapshots of
//! another history). One that is not is passed over, and said so in the
//! log, for the one before it, and then for a fold from the start: a
//! damaged snapshot costs a longer start, never a different answer. The
//! folds are pure functions of the log, so any server's snapshot of a
//! position is every server's, and who wrote it does not matter.
//!
//! When: once the log after the newest snapshot is at least as long as
//! that snapshot's JSON, and at least `--start-snapshot-every` bytes. So
//! the snapshots never take more room than the log they stand for (far
//! less, packed), the work of writing one down is spread over
//! as much log as it encodes, and a start reads no more of the log than
//! about one snapshot's length.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use accounts::{Ledger, LedgerSnapshot};
use blake2::{Blake2b512, Digest};
use eventstore::{Client, EventData};
use orderbook::Market;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::book_snapshots::hex;
use super::ledger_fold::{LedgerFold, specs_by_stream};
use super::log_read::{LOG_PAGE, LogRead};
use super::market_data::Projection;
use super::order_history::OrderHistory;
use super::streams::{
    StreamError, append, append_at, derived_id, each_from, event_id_at, feed_position,
    last_event as newest_event, read_from, read_newest, truncate_before, until_answered,
};
use crate::api::FeedPosition;

/// The format's version: change it whenever any written-down form
/// changes (the test `the_start_snapshot_format_is_pinned` fails until it
/// is).
pub const VERSION: u32 = 4;

/// The most bytes of a snapshot one part carries: half of what the
/// store takes in one append.
pub const PART: usize = 512 * 1024;

/// How many snapshots are kept: the newest, and the one before it for a
/// start that finds the newest damaged.
const KEPT: u64 = 2;

const PART_TYPE: &str = "StartSnapshotPart";
const TAKEN_TYPE: &str = "StartSnapshotTaken";

/// The stream of snapshots' parts. Neither a market's nor an account's
/// prefix: the live tail and the feeds never carry it.
pub fn parts_stream() -> String {
    format!("startsnapshot-v{VERSION}-parts")
}

/// The stream that announces each whole snapshot.
pub fn taken_stream() -> String {
    format!("startsnapshot-v{VERSION}-taken")
}

/// A whole snapshot, as its announcement says it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taken {
    /// The revision of its first part in the parts stream.
    pub first_part: u64,
    pub parts: u32,
    /// Its length in bytes, as stored ([`pack`]ed).
    pub bytes: u64,
    /// The length of the JSON it packs.
    pub json_bytes: u64,
    /// BLAKE2b-512 of its bytes as stored, in hex.
    pub hash: String,
    /// The position of `$all` it is the fold of, up to and including.
    pub covers: FeedPosition,
    /// The id of the event at `covers`.
    pub last_event: Uuid,
}

/// A snapshot's announcement as read from the log: what it says, and
/// where it is (after the snapshot's parts: how far the log has grown
/// since is measured from there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Announced {
    pub taken: Taken,
    pub at: FeedPosition,
}

/// What start folds, at one position of the log.
pub struct StartFolds {
    pub ledger: LedgerFold,
    pub market_data: Projection,
    pub order_history: OrderHistory,
    /// The position they are the fold of (`None`: the log is empty).
    pub position: Option<FeedPosition>,
    /// The snapshot they started from, if any.
    pub from: Option<Announced>,
}

/// The folds written down, if every book is between two orders (a
/// snapshot of a book may be taken only there; the end of the log always
/// is): the ledger's, the market data's and the order history's forms as
/// three JSON documents, one line each, each written (and read back) on a
/// thread of its own, and [`pack`]ed as they are, never joined.
pub fn encode(
    ledger: &Ledger,
    market_data: &Projection,
    order_history: &OrderHistory,
) -> Option<Lines> {
    fn json(form: &impl Serialize) -> Vec<u8> {
        serde_json::to_vec(form).expect("a start state always serialises")
    }
    let market_data = market_data.snapshot()?;
    Some(std::thread::scope(|s| {
        let ledger = s.spawn(|| json(&ledger.snapshot()));
        let history = s.spawn(|| json(&order_history.snapshot()));
        let market_data = json(&market_data);
        let join = |h: std::thread::ScopedJoinHandle<'_, Vec<u8>>| {
            h.join().expect("encoding does not panic")
        };
        [join(ledger), market_data, join(history)]
    }))
}

/// The three lines [`encode`] writes, each on its own: the ledger's, the
/// market data's and the order history's (JSON written compactly holds no
/// line break). Each is let go as soon as it is parsed, before the read
/// models are built from it.
pub type Lines = [Vec<u8>; 3];

/// Cuts [`Lines`] written one after another (a pinned document of them)
/// into the three.
pub fn lines(written: &[u8]) -> Result<Lines, String> {
    let lines: Vec<Vec<u8>> = written.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect();
    let count = lines.len();
    <Lines>::try_from(lines).map_err(|_| format!("it has {count} lines, not 3"))
}

/// How hard [`pack`] compresses: zstd's fastest level took the bench's
/// 65.5 MB of JSON (before its long tables were compact) to 4.4 MB in 90
/// ms (its level 3 to 3.1 MB in 109 ms).
const ZSTD_LEVEL: i32 = 1;

/// The lines [`encode`] wrote, as stored: their count (u32), each one's
/// length and packed length (u64 each), then each line compressed with
/// zstd as a frame of its own, on a thread of its own, so that
/// [`unpack`] can take them apart on as many.
pub fn pack(lines: &[Vec<u8>]) -> Vec<u8> {
    let frames: Vec<Vec<u8>> = std::thread::scope(|s| {
        let packing: Vec<_> = (lines.iter())
            .map(|line| s.spawn(move || zstd::bulk::compress(line, ZSTD_LEVEL)))
            .collect();
        (packing.into_iter())
            .map(|p| p.join().expect("packing does not panic"))
            .collect::<Result<_, _>>()
            .expect("compressing into memory cannot fail")
    });
    let mut packed = (lines.len() as u32).to_le_bytes().to_vec();
    for (line, frame) in lines.iter().zip(&frames) {
        packed.extend_from_slice(&(line.len() as u64).to_le_bytes());
        packed.extend_from_slice(&(frame.len() as u64).to_le_bytes());
    }
    for frame in frames {
        packed.extend_from_slice(&frame);
    }
    packed
}

/// What [`pack`] stored, as its three lines, each decompressed on a thread
/// of its own. Bytes that are not that (cut short, lengths that do not
/// add up, a frame that is not zstd's or not of the length said) are
/// refused, never trusted for how much to allocate.
pub fn unpack(packed: &[u8]) -> Result<Lines, String> {
    let word = |at: usize, len: usize| {
        let bytes = packed.get(at..at + len).ok_or("it is cut short")?;
        Ok::<u64, String>(bytes.iter().rev().fold(0, |n, b| n << 8 | u64::from(*b)))
    };
    let count = word(0, 4)? as usize;
    if count != 3 {
        return Err(format!("it packs {count} lines, not 3"));
    }
    let mut at = 4 + count * 16;
    let mut frames = Vec::new();
    for i in 0..count {
        let (len, packed_len) = (word(4 + i * 16, 8)?, word(12 + i * 16, 8)?);
        let end = usize::try_from(packed_len)
            .ok()
            .and_then(|n| at.checked_add(n))
            .filter(|end| *end <= packed.len())
            .ok_or("it is cut short")?;
        frames.push((&packed[at..end], len));
        at = end;
    }
    if at != packed.len() {
        return Err("it has bytes after its last line".into());
    }
    let lines = std::thread::scope(|s| {
        let unpacking: Vec<_> = (frames.into_iter())
            .map(|(frame, len)| s.spawn(move || unpack_line(frame, len)))
            .collect();
        (unpacking.into_iter())
            .map(|u| u.join().expect("unpacking does not panic"))
            .collect::<Result<Vec<_>, _>>()
    })?;
    Ok(<Lines>::try_from(lines).expect("three lines"))
}

/// One line's frame decompressed, which must come to `len` bytes exactly:
/// read as it decompresses, so a length that lies allocates nothing.
fn unpack_line(frame: &[u8], len: u64) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let decoder = zstd::stream::read::Decoder::with_buffer(frame).map_err(|e| e.to_string())?;
    let mut line = Vec::new();
    (decoder.take(len.saturating_add(1)))
        .read_to_end(&mut line)
        .map_err(|e| format!("a line does not decompress: {e}"))?;
    match line.len() as u64 == len {
        true => Ok(line),
        false => Err(format!(
            "a line decompresses to {} bytes, not {len}",
            line.len()
        )),
    }
}

/// What [`encode`] wrote down, taken up again as the folds of `markets`,
/// each line parsed on a thread of its own.
pub fn decode(
    [ledger, market_data, order_history]: Lines,
    markets: &[Market],
) -> Result<(LedgerFold, Projection, OrderHistory), String> {
    fn parse<T: serde::de::DeserializeOwned>(line: Vec<u8>) -> Result<T, String> {
        serde_json::from_slice(&line).map_err(|e| e.to_string())
    }
    let (ledger, market_data, order_history) = std::thread::scope(|s| {
        let ledger = s.spawn(|| {
            let form: LedgerSnapshot = timed("the ledger's line parsed", || parse(ledger))?;
            timed("the ledger built", || Ledger::from_snapshot(form)).map_err(|e| e.to_string())
        });
        let history = s.spawn(|| {
            let form = timed("the order history's line parsed", || parse(order_history))?;
            timed("the order history built", || {
                OrderHistory::from_snapshot(form)
            })
        });
        let market_data = timed("the market data's line parsed", || parse(market_data));
        let market_data = market_data.and_then(|form| {
            let mut projection = Projection::new(markets.to_vec());
            timed("the market data built", || projection.restore(form)).map(|()| projection)
        });
        let ledger = ledger.join().expect("decoding does not panic");
        let history = history.join().expect("decoding does not panic");
        (ledger, market_data, history)
    });
    let mut fold = LedgerFold::new(specs_by_stream(markets));
    fold.ledger = ledger.map_err(|e| format!("its ledger: {e}"))?;
    let market_data = market_data.map_err(|e| format!("its market data: {e}"))?;
    let order_history = order_history.map_err(|e| format!("its order history: {e}"))?;
    Ok((fold, market_data, order_history))
}

/// `f`'s answer, its time said in the log (at debug): where a start's
/// time goes.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let began = std::time::Instant::now();
    let answer = f();
    tracing::debug!("{what} in {:.1?}", began.elapsed());
    answer
}

/// Whether the log after the snapshot `from` up to `end` is long enough
/// to write a new snapshot: at least `every` bytes and at least as long as
/// the JSON of `from` (measured from its announcement, so its own parts do
/// not count).
pub fn due(from: Option<&Announced>, end: Option<FeedPosition>, every: u64) -> bool {
    let Some(end) = end else {
        return false;
    };
    let (start, size) = from.map_or((0, 0), |a| (a.at.commit, a.taken.json_bytes));
    end.commit.saturating_sub(start) >= every.max(size)
}

/// Writes `lines` (from [`encode`]), [`pack`]ed (on a blocking thread,
/// letting the JSON go once packed), as the snapshot of the log up to and
/// including `covers`, then lets the store drop all but the newest
/// [`KEPT`]. Another writer appending meanwhile makes this one give up
/// (its parts are passed over by readers, as no announcement names them).
pub async fn write(
    client: &Client,
    lines: Lines,
    covers: FeedPosition,
) -> Result<Option<Announced>, StreamError> {
    let Some(last_event) = event_id_at(client, covers).await? else {
        return Err(StreamError::Unavailable(
            "the log holds no event where the snapshot was taken".into(),
        ));
    };
    let parts = parts_stream();
    let next = |e: Option<eventstore::RecordedEvent>| e.map_or(0, |e| e.revision + 1);
    let first_part = next(newest_event(client, &parts).await?);
    let json_bytes = lines.iter().map(|l| l.len() as u64).sum();
    let packed = match tokio::task::spawn_blocking(move || pack(&lines)).await {
        Ok(packed) => packed,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let hash = hex(&Blake2b512::digest(&packed));
    let chunks: Vec<&[u8]> = packed.chunks(PART).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let revision = first_part + i as u64;
        let id = derived_id(&format!("{parts}/{revision}/{hash}"));
        let event = EventData::binary(PART_TYPE, bytes::Bytes::copy_from_slice(chunk)).id(id);
        match append(client, &parts, revision, vec![event]).await {
            Ok(()) => {}
            Err(StreamError::WrongExpectedVersion) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
    let taken = Taken {
        first_part,
        parts: chunks.len() as u32,
        bytes: packed.len() as u64,
        json_bytes,
        hash,
        covers,
        last_event,
    };
    let announcements = taken_stream();
    let count = next(newest_event(client, &announcements).await?);
    let id = derived_id(&format!("{announcements}/{first_part}/{}", taken.hash));
    let event = EventData::json(TAKEN_TYPE, &taken)
        .expect("an announcement always serialises")
        .id(id);
    let at = match append_at(client, &announcements, count, vec![event]).await {
        Ok(at) => at,
        Err(StreamError::WrongExpectedVersion) => return Ok(None),
        Err(e) => return Err(e),
    };
    // Only the newest KEPT are read; the store may drop the rest.
    if let Some(oldest_kept) = count.checked_sub(KEPT - 1) {
        let kept = read_from(client, &announcements, oldest_kept, 1).await?;
        if let Some(Ok(oldest)) = kept
            .first()
            .map(|e| serde_json::from_slice::<Taken>(&e.data))
        {
            truncate_before(client, &parts, oldest.first_part).await?;
            truncate_before(client, &announcements, oldest_kept).await?;
        }
    }
    Ok(Some(Announced { taken, at }))
}

/// Why a snapshot is passed over.
#[derive(Debug, thiserror::Error)]
enum Unusable {
    #[error(transparent)]
    Store(#[from] StreamError),
    #[error("{0}")]
    Damaged(String),
}

/// The bytes of the snapshot `taken` announces, as stored, if they are
/// whole, intact and of the history the log holds now.
async fn read_taken(client: &Client, taken: &Taken) -> Result<Vec<u8>, Unusable> {
    let mut packed = Vec::new();
    let mut bytes = 0u64;
    let mut hash = Blake2b512::new();
    let mut parts = 0;
    let mut not_a_part = None;
    let parts_wanted = u64::from(taken.parts);
    each_from(
        client,
        &parts_stream(),
        taken.first_part,
        parts_wanted,
        |e| {
            if e.revision != taken.first_part + parts || e.event_type != PART_TYPE {
                not_a_part.get_or_insert(e.revision);
            }
            hash.update(&e.data);
            packed.extend_from_slice(&e.data);
            bytes += e.data.len() as u64;
            parts += 1;
            Ok(())
        },
    )
    .await?;
    if let Some(revision) = not_a_part {
        return Err(Unusable::Damaged(format!(
            "event {revision} of the parts stream is not its part"
        )));
    }
    if parts != parts_wanted {
        return Err(Unusable::Damaged(format!(
            "{parts} of its {} parts are in the store",
            taken.parts
        )));
    }
    if bytes != taken.bytes || hex(&hash.finalize()) != taken.hash {
        return Err(Unusable::Damaged(
            "its bytes do not match their hash".into(),
        ));
    }
    match event_id_at(client, taken.covers).await? {
        Some(id) if id == taken.last_event => Ok(packed),
        Some(_) => Err(Unusable::Damaged(
            "it is of another history of the log (the event where it was taken differs)".into(),
        )),
        None => Err(Unusable::Damaged(
            "the log holds no event where it was taken (cut, or of another store)".into(),
        )),
    }
}

/// What the newest announcement says (not yet checked against its parts
/// or the log): enough to know whether another snapshot is due.
pub async fn newest_announced(client: &Client) -> Result<Option<Announced>, StreamError> {
    let announced = read_newest(client, &taken_stream(), 1).await?;
    Ok(announced.first().and_then(|e| {
        let taken = serde_json::from_slice(&e.data).ok()?;
        let at = feed_position(e.position);
        Some(Announced { taken, at })
    }))
}

/// How a snapshot's lines are taken up (on a blocking thread, where they
/// are unpacked: they can be hundreds of megabytes); it may refuse it too.
type Parse<T> = Arc<dyn Fn(Lines) -> Result<T, String> + Send + Sync>;

/// The newest usable snapshot, parsed, and what announced it; `None` if
/// there is none. Those passed over are said so in the log.
async fn newest<T: Send + 'static>(
    client: &Client,
    parse: Parse<T>,
) -> Result<Option<(T, Announced)>, StreamError> {
    let announced = read_newest(client, &taken_stream(), KEPT as usize).await?;
    for e in announced {
        let taken = match serde_json::from_slice::<Taken>(&e.data) {
            Ok(taken) => taken,
            Err(err) => {
                tracing::warn!(
                    revision = e.revision,
                    "passing over an unreadable start snapshot announcement: {err}"
                );
                continue;
            }
        };
        let reading = std::time::Instant::now();
        let parsed = match read_taken(client, &taken).await {
            Ok(packed) => {
                let (read, parsing) = (reading.elapsed(), std::time::Instant::now());
                let parse = parse.clone();
                let parsed = tokio::task::spawn_blocking(move || {
                    parse(timed("unpacked", || unpack(&packed))?)
                });
                let parsed = parsed.await;
                tracing::info!(
                    bytes = taken.bytes,
                    covers = taken.covers.commit,
                    "a start snapshot read and checked in {read:.1?}, taken up in {:.1?}",
                    parsing.elapsed()
                );
                parsed.unwrap_or_else(|e| Err(format!("its parse failed: {e}")))
            }
            Err(Unusable::Store(e)) => return Err(e),
            Err(Unusable::Damaged(why)) => Err(why),
        };
        match parsed {
            Ok(t) => {
                let at = feed_position(e.position);
                return Ok(Some((t, Announced { taken, at })));
            }
            Err(why) => tracing::warn!(
                first_part = taken.first_part,
                "passing over a start snapshot: {why}"
            ),
        }
    }
    Ok(None)
}

/// The newest usable snapshot as written (its bytes), and what announced
/// it: what `exchange check` compares with the fold.
pub async fn newest_written(client: &Client) -> Result<Option<(Lines, Announced)>, StreamError> {
    newest(client, Arc::new(Ok)).await
}

/// The ledger of the newest usable snapshot and the position it covers.
pub async fn newest_ledger(client: &Client) -> Result<Option<(Ledger, Announced)>, StreamError> {
    let parse: Parse<Ledger> = Arc::new(|[ledger, ..]: Lines| {
        let form: LedgerSnapshot = serde_json::from_slice(&ledger).map_err(|e| e.to_string())?;
        Ledger::from_snapshot(form).map_err(|e| e.to_string())
    });
    newest(client, parse).await
}

/// Where a fold of the log starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FoldFrom {
    /// The newest usable snapshot (none: the log's first event).
    NewestSnapshot,
    /// The log's first event: what `exchange check` compares a snapshot
    /// with.
    FirstEvent,
}

/// What start folds, from where `from` says and then the log after it up
/// to `until` (its end for `None`), read once a page at a time into
/// every fold. Start, the snapshot writer and `exchange check` all fold
/// this way.
pub async fn fold_log(
    client: &Client,
    markets: &[Market],
    from: FoldFrom,
    until: Option<FeedPosition>,
) -> Result<StartFolds, StreamError> {
    let owned = markets.to_vec();
    let parse: Parse<_> = Arc::new(move |lines: Lines| decode(lines, &owned));
    let newest = match from {
        FoldFrom::NewestSnapshot => {
            until_answered("reading the start snapshot", || {
                newest(client, parse.clone())
            })
            .await?
        }
        FoldFrom::FirstEvent => None,
    };
    let (ledger, market_data, order_history, from) = match newest {
        Some(((l, m, o), announced)) => (l, m, o, Some(announced)),
        None => {
            let ledger = LedgerFold::new(specs_by_stream(markets));
            let market_data = Projection::new(markets.to_vec());
            (ledger, market_data, OrderHistory::default(), None)
        }
    };
    let read = LogRead::new(LOG_PAGE).after(from.as_ref().map(|a| a.taken.covers));
    let mut read = read.until(until);
    let ledger = read.fold(ledger);
    let market_data = read.fold(market_data);
    let order_history = read.fold(order_history);
    read.run(client).await?;
    let (ledger, position) = ledger.finish().await?;
    let (market_data, _) = market_data.finish().await?;
    let (order_history, _) = order_history.finish().await?;
    Ok(StartFolds {
        ledger,
        market_data,
        order_history,
        position,
        from,
    })
}

/// The folds written down, with the position they cover, if a snapshot
/// of them is [`due`] (for the snapshot writer to write first); and the
/// folds handed back.
pub async fn written_down_if_due(
    folds: StartFolds,
    every: u64,
) -> (StartFolds, Option<(Lines, FeedPosition)>) {
    let (Some(covers), true) = (
        folds.position,
        due(folds.from.as_ref(), folds.position, every),
    ) else {
        return (folds, None);
    };
    let (folds, written) = write_down(folds).await;
    (folds, written.map(|lines| (lines, covers)))
}

/// The folds written down (on a blocking thread: it takes a while on a
/// long history), unless this is no place for a snapshot: a book is
/// part-way through a decision, or a trade of a log written before fees
/// were in trades awaits its settlement (which start writes after the
/// fold, and a start from this snapshot would not know to); and the folds
/// handed back.
pub async fn write_down(folds: StartFolds) -> (StartFolds, Option<Lines>) {
    if folds.ledger.awaits_legacy_settlements() {
        tracing::info!("no start snapshot now: a legacy trade awaits its settlement");
        return (folds, None);
    }
    let (folds, json) = encode_blocking(folds).await;
    if json.is_none() {
        tracing::info!("no start snapshot now: a book is part-way through a decision");
    }
    (folds, json)
}

/// [`encode`] of the folds on a blocking thread (it takes a while on a
/// long history), and the folds handed back.
async fn encode_blocking(folds: StartFolds) -> (StartFolds, Option<Lines>) {
    let written_down = tokio::task::spawn_blocking(move || {
        let json = encode(
            &folds.ledger.ledger,
            &folds.market_data,
            &folds.order_history,
        );
        (folds, json)
    });
    match written_down.await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// [`write`], with what came of it in the log, and the position it
/// covers in `written` once it is.
pub async fn write_logged(
    client: &Client,
    lines: Lines,
    covers: FeedPosition,
    written: &AtomicU64,
) {
    match write(client, lines, covers).await {
        Ok(Some(a)) => {
            written.store(covers.commit, Ordering::Relaxed);
            tracing::info!(
                bytes = a.taken.bytes,
                parts = a.taken.parts,
                "wrote a start snapshot"
            )
        }
        Ok(None) => tracing::info!("another server wrote a start snapshot meanwhile"),
        Err(e) => tracing::warn!("writing a start snapshot failed: {e}"),
    }
}

/// What `exchange check` finds of the start snapshots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartSnapshotChecked {
    /// None is stored (or none a start could take: those passed over are
    /// said so in the log).
    None,
    /// The newest a start would take equals the fold of the log up to its
    /// position.
    Equal(Announced),
    /// It differs: a start from it would not be the fold.
    Differs(Announced),
}

/// Compares the snapshot a start would take with the fold of the log
/// from its first event up to that snapshot's position, written down the
/// same way.
pub async fn check(
    client: &Client,
    markets: &[Market],
) -> Result<StartSnapshotChecked, StreamError> {
    let Some((written, taken)) = newest_written(client).await? else {
        return Ok(StartSnapshotChecked::None);
    };
    let until = Some(taken.taken.covers);
    let folds = fold_log(client, markets, FoldFrom::FirstEvent, until).await?;
    let (_, folded) = encode_blocking(folds).await;
    Ok(match folded == Some(written) {
        true => StartSnapshotChecked::Equal(taken),
        false => StartSnapshotChecked::Differs(taken),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_lines_unpack_and_anything_else_is_refused() {
        let written = b"{\"a\":1}\n[2,3]\n{}";
        let want: Lines = [b"{\"a\":1}".to_vec(), b"[2,3]".to_vec(), b"{}".to_vec()];
        assert_eq!(lines(written), Ok(want.clone()));
        assert!(lines(b"{}\n{}").is_err());
        assert!(lines(b"{}\n{}\n{}\n").is_err());
        let packed = pack(&want);
        assert_eq!(unpack(&packed), Ok(want.clone()));
        // Cut anywhere, or with a byte more, it is refused.
        for cut in 0..packed.len() {
            assert!(unpack(&packed[..cut]).is_err(), "cut at {cut}");
        }
        assert!(unpack(&[packed.clone(), vec![0]].concat()).is_err());
        // Two lines, or four, are not a snapshot.
        assert!(unpack(&pack(&want[..2])).is_err());
        assert!(unpack(&pack(&[want.to_vec(), want[..1].to_vec()].concat())).is_err());
        // A line whose length lies, either way, is refused without
        // allocating what it claims.
        for len in [0, 6, 8, u64::MAX] {
            let mut lying = packed.clone();
            lying[4..12].copy_from_slice(&len.to_le_bytes());
            assert!(unpack(&lying).is_err(), "said {len}");
        }
        // A frame that is not zstd's.
        let mut damaged = packed.clone();
        let frames = 4 + 3 * 16;
        damaged[frames] ^= 0xff;
        assert!(unpack(&damaged).is_err());
    }
}
