//! The one writer: it owns the log's tail and so the global order of `$all`.
//!
//! It runs on its own thread. Requests queue on a channel; the writer takes
//! every request waiting (group commit), decides each against the index and
//! the batch before it, writes all their records with one write and one
//! fsync, then updates the index, publishes the events to subscribers and
//! answers. Nothing is acknowledged or visible before it is on disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::index::{Index, METADATA, STREAM_DELETED, TOMBSTONE_REVISION, soft_deleted};
use crate::log::{Log, Segments};
use crate::record::StoredEvent;

/// The revision a write expects the stream to be at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    Any,
    NoStream,
    StreamExists,
    Exact(u64),
}

/// An event proposed by a client.
#[derive(Clone, Debug)]
pub struct NewEvent {
    pub id: u128,
    pub event_type: Bytes,
    pub is_json: bool,
    pub custom_metadata: Bytes,
    pub data: Bytes,
}

#[derive(Debug)]
pub enum Op {
    Append {
        stream: Bytes,
        expected: Expected,
        events: Vec<NewEvent>,
    },
    Delete {
        stream: Bytes,
        expected: Expected,
    },
    Tombstone {
        stream: Bytes,
        expected: Expected,
    },
}

/// How a write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written (or found already written, for an idempotent retry).
    /// `revision` is the stream's last revision; `position` the last
    /// record's position.
    Written {
        revision: Option<u64>,
        position: u64,
    },
    WrongExpectedVersion {
        current: Option<u64>,
        expected: Expected,
    },
    StreamDeleted,
    /// The disk failed; nothing was acknowledged.
    Failed(String),
}

pub struct WriteRequest {
    pub op: Op,
    pub reply: oneshot::Sender<WriteOutcome>,
}

/// What the writer's channel carries.
pub enum WriterMessage {
    Write(WriteRequest),
    /// Answer what came before, make the checkpoint durable, release the
    /// directory and stop; writes after it fail with the store closed.
    /// Handles of the store may live on (in a subscription, a read), so
    /// the writer cannot wait for the last of them to go.
    Close,
}

/// What the writer shares with readers.
#[derive(Clone)]
pub struct Shared {
    pub index: Arc<RwLock<Index>>,
    /// Everything before this position is durable and indexed.
    pub committed_end: Arc<AtomicU64>,
    pub published: broadcast::Sender<Arc<Vec<StoredEvent>>>,
}

/// A stream's state as seen by this batch: the index plus what earlier
/// requests in the batch wrote.
#[derive(Clone, Default)]
struct Pending {
    len: u64,
    truncate_before: u64,
    tombstoned: bool,
    /// Ids of the events this batch added, from revision `len - new_ids.len()`.
    new_ids: Vec<u128>,
}

/// An outcome whose position is known only once the batch is placed.
enum Planned {
    Done(WriteOutcome),
    /// Written: the last revision and the index of its record in the batch.
    Wrote {
        revision: Option<u64>,
        record: usize,
    },
}

/// Runs until the store is closed (or every handle is gone), then closes
/// the log and says so on `closed`, after which the directory is free.
pub fn run(
    mut log: Log,
    shared: Shared,
    mut rx: mpsc::Receiver<WriterMessage>,
    closed: watch::Sender<bool>,
) {
    let mut closing = false;
    while !closing {
        let Some(WriterMessage::Write(first)) = rx.blocking_recv() else {
            break;
        };
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(WriterMessage::Write(r)) => batch.push(r),
                Ok(WriterMessage::Close) => {
                    closing = true;
                    break;
                }
                Err(_) => break,
            }
        }
        write_batch(&mut log, &shared, batch);
        if !closing && rx.is_empty() {
            log.checkpoint_idle();
        }
    }
    // Writes still queued were never acknowledged: dropping them answers
    // their callers with the store closed.
    drop(rx);
    log.close();
    closed.send_replace(true);
}

/// Decides, writes, indexes, publishes and answers one batch.
fn write_batch(log: &mut Log, shared: &Shared, batch: Vec<WriteRequest>) {
    let created = now_ticks();
    let mut records: Vec<StoredEvent> = Vec::new();
    let mut plans = Vec::with_capacity(batch.len());
    {
        let segments = log.segments();
        let index = shared.index.read().expect("index lock");
        let mut pending: HashMap<Bytes, Pending> = HashMap::new();
        for req in &batch {
            let planned = plan(
                &segments,
                &index,
                &mut pending,
                &req.op,
                created,
                &mut records,
            );
            plans.push(planned);
        }
    }
    let written = place_and_write(log, &mut records);
    if let Err(e) = &written {
        tracing::error!("writing to the log failed: {e}");
    }
    if written.is_ok() && !records.is_empty() {
        let mut index = shared.index.write().expect("index lock");
        for r in &records {
            index.add(r);
        }
        shared.committed_end.store(log.end(), Ordering::Release);
        drop(index);
        let _ = shared.published.send(Arc::new(records.clone()));
    }
    for (req, plan) in batch.into_iter().zip(plans) {
        let outcome = match (&written, plan) {
            (Err(e), Planned::Wrote { .. }) => WriteOutcome::Failed(e.to_string()),
            (_, Planned::Done(o)) => o,
            (Ok(()), Planned::Wrote { revision, record }) => WriteOutcome::Written {
                revision,
                position: records[record].position,
            },
        };
        let _ = req.reply.send(outcome);
    }
}

/// Gives the batch's records their positions and writes them durably.
fn place_and_write(log: &mut Log, records: &mut [StoredEvent]) -> std::io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let total: usize = records.iter().map(StoredEvent::encoded_len).sum();
    let mut at = log.reserve(total as u64)?;
    let mut buf = Vec::with_capacity(total);
    for r in records.iter_mut() {
        r.position = at;
        at += r.encoded_len() as u64;
        r.encode(&mut buf);
    }
    log.write_durably(&buf)
}

fn pending_for<'a>(
    index: &Index,
    pending: &'a mut HashMap<Bytes, Pending>,
    stream: &Bytes,
) -> &'a mut Pending {
    // Only the stream's summary: its index entry holds every revision, and
    // copying that made each append cost time in the stream's length.
    pending
        .entry(stream.clone())
        .or_insert_with(|| match index.stream(stream) {
            Some(s) => Pending {
                len: s.positions.len() as u64,
                truncate_before: s.truncate_before,
                tombstoned: s.tombstoned,
                new_ids: Vec::new(),
            },
            None => Pending::default(),
        })
}

/// The id at `revision` of a stream: read from the log, or of this batch.
fn id_at(
    log: &Segments,
    index: &Index,
    p: &Pending,
    stream: &Bytes,
    revision: u64,
) -> std::io::Result<Option<u128>> {
    let durable = p.len - p.new_ids.len() as u64;
    if revision >= durable {
        return Ok(p.new_ids.get((revision - durable) as usize).copied());
    }
    let position = index
        .stream(stream)
        .and_then(|s| s.positions.get(revision as usize));
    match position {
        Some(position) => Ok(Some(log.read_at(position)?.id)),
        None => Ok(None),
    }
}

/// The revision of `stream` at which an event of this id was written
/// recently, read from the log: the index knows only where a record with
/// the id's fingerprint is.
fn recent_in(
    log: &Segments,
    index: &Index,
    stream: &Bytes,
    id: u128,
) -> std::io::Result<Option<u64>> {
    let Some(position) = index.recent_id(id) else {
        return Ok(None);
    };
    let record = log.read_at(position)?;
    Ok((record.id == id && record.stream == *stream).then_some(record.revision))
}

fn plan(
    log: &Segments,
    index: &Index,
    pending: &mut HashMap<Bytes, Pending>,
    op: &Op,
    created: i64,
    out: &mut Vec<StoredEvent>,
) -> Planned {
    let event = |stream: &Bytes, revision, id, event_type: &str, data: Vec<u8>| StoredEvent {
        position: 0,
        stream: stream.clone(),
        revision,
        id,
        event_type: Bytes::copy_from_slice(event_type.as_bytes()),
        is_json: true,
        created,
        custom_metadata: Bytes::new(),
        data: Bytes::from(data),
    };
    match op {
        Op::Append {
            stream,
            expected,
            events,
        } => {
            let p = pending_for(index, pending, stream).clone();
            if p.tombstoned {
                return Planned::Done(WriteOutcome::StreamDeleted);
            }
            let current = p.len.checked_sub(1);
            let soft_deleted = soft_deleted(p.truncate_before, p.len);
            // An idempotent retry: the events are already there.
            let retry_from = match *expected {
                Expected::Exact(e) if current.is_some_and(|c| e < c) => Some(e + 1),
                Expected::NoStream if current.is_some() && !soft_deleted => Some(0),
                Expected::Any | Expected::StreamExists => {
                    match events.first().map(|e| recent_in(log, index, stream, e.id)) {
                        Some(Ok(from)) => from,
                        Some(Err(e)) => return Planned::Done(WriteOutcome::Failed(e.to_string())),
                        None => None,
                    }
                }
                _ => None,
            };
            if let Some(from) = retry_from
                && !events.is_empty()
            {
                let mut all_there = true;
                for (e, revision) in events.iter().zip(from..) {
                    match id_at(log, index, &p, stream, revision) {
                        Ok(id) if id == Some(e.id) => {}
                        Ok(_) => {
                            all_there = false;
                            break;
                        }
                        // Whether it is a retry is unknown: nothing is
                        // written, and the caller asks again.
                        Err(e) => return Planned::Done(WriteOutcome::Failed(e.to_string())),
                    }
                }
                if all_there {
                    let last = from + events.len() as u64 - 1;
                    let position = index
                        .stream(stream)
                        .and_then(|s| s.positions.get(last as usize));
                    if let Some(position) = position {
                        return Planned::Done(WriteOutcome::Written {
                            revision: Some(last),
                            position,
                        });
                    }
                }
                return Planned::Done(WriteOutcome::WrongExpectedVersion {
                    current,
                    expected: *expected,
                });
            }
            let ok = match *expected {
                Expected::Any => true,
                Expected::NoStream => current.is_none() || soft_deleted,
                Expected::StreamExists => current.is_some() && !soft_deleted,
                Expected::Exact(e) => current == Some(e),
            };
            if !ok {
                return Planned::Done(WriteOutcome::WrongExpectedVersion {
                    current,
                    expected: *expected,
                });
            }
            if events.is_empty() {
                let position = index
                    .stream(stream)
                    .and_then(|s| s.positions.last())
                    .unwrap_or(0);
                return Planned::Done(WriteOutcome::Written {
                    revision: current,
                    position,
                });
            }
            if soft_deleted {
                // Undelete: hide what came before, keep numbering.
                let meta: Bytes = [b"$$".as_slice(), stream].concat().into();
                let mp = pending_for(index, pending, &meta);
                let rev = mp.len;
                let id = undelete_id(stream, p.len);
                mp.len += 1;
                mp.new_ids.push(id);
                let data = serde_json::to_vec(&serde_json::json!({ "$tb": p.len })).expect("json");
                out.push(event(&meta, rev, id, METADATA, data));
            }
            let p = pending_for(index, pending, stream);
            p.truncate_before = if soft_deleted {
                p.len
            } else {
                p.truncate_before
            };
            for e in events {
                out.push(StoredEvent {
                    position: 0,
                    stream: stream.clone(),
                    revision: p.len,
                    id: e.id,
                    event_type: e.event_type.clone(),
                    is_json: e.is_json,
                    created,
                    custom_metadata: e.custom_metadata.clone(),
                    data: e.data.clone(),
                });
                p.len += 1;
                p.new_ids.push(e.id);
            }
            Planned::Wrote {
                revision: Some(p.len - 1),
                record: out.len() - 1,
            }
        }
        Op::Delete { stream, expected } | Op::Tombstone { stream, expected } => {
            let p = pending_for(index, pending, stream).clone();
            if p.tombstoned {
                return Planned::Done(WriteOutcome::StreamDeleted);
            }
            let current = p.len.checked_sub(1);
            let tombstone = matches!(op, Op::Tombstone { .. });
            if !tombstone {
                // As on EventStoreDB: a soft delete needs something to
                // delete, whatever it expects, and expecting a stream that
                // is already soft-deleted to exist is told it is deleted.
                if current.is_none() {
                    return Planned::Done(WriteOutcome::WrongExpectedVersion {
                        current,
                        expected: *expected,
                    });
                }
                if *expected == Expected::StreamExists && soft_deleted(p.truncate_before, p.len) {
                    return Planned::Done(WriteOutcome::StreamDeleted);
                }
            }
            let ok = match *expected {
                Expected::Any => true,
                Expected::NoStream => current.is_none(),
                Expected::StreamExists => current.is_some(),
                Expected::Exact(e) => current == Some(e),
            };
            if !ok {
                return Planned::Done(WriteOutcome::WrongExpectedVersion {
                    current,
                    expected: *expected,
                });
            }
            if tombstone {
                pending_for(index, pending, stream).tombstoned = true;
                out.push(event(
                    stream,
                    TOMBSTONE_REVISION,
                    delete_id(stream, true),
                    STREAM_DELETED,
                    Vec::new(),
                ));
            } else {
                let meta: Bytes = [b"$$".as_slice(), stream].concat().into();
                let mp = pending_for(index, pending, &meta);
                let rev = mp.len;
                let id = delete_id(stream, false) ^ u128::from(rev);
                mp.len += 1;
                mp.new_ids.push(id);
                pending_for(index, pending, stream).truncate_before = i64::MAX as u64;
                let data =
                    serde_json::to_vec(&serde_json::json!({ "$tb": i64::MAX })).expect("json");
                out.push(event(&meta, rev, id, METADATA, data));
            }
            Planned::Wrote {
                revision: current,
                record: out.len() - 1,
            }
        }
    }
}

/// Ids for the events the store writes itself, derived from what they are
/// so they are stable (the store draws no random numbers).
fn delete_id(stream: &[u8], tombstone: bool) -> u128 {
    let h = crc32fast::hash(stream) as u128;
    (h << 96) | (u128::from(tombstone) << 64) | 0xde1e7e
}

fn undelete_id(stream: &[u8], len: u64) -> u128 {
    let h = crc32fast::hash(stream) as u128;
    (h << 96) | (u128::from(len) << 8) | 0x0d
}

/// 100-nanosecond ticks since the Unix epoch, as the protocol's `created`.
fn now_ticks() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_nanos() / 100) as i64)
}
