//! The in-memory index: for every stream, where each revision's record is;
//! for `$all`, every record's position in order; and what deletes and
//! metadata say. It is rebuilt from the log on start (a scan runs at disk
//! speed), which keeps the on-disk format to the log alone.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::record::StoredEvent;

/// The type of a tombstone event, written at revision `i64::MAX`.
pub const STREAM_DELETED: &str = "$streamDeleted";
/// The type of a stream metadata event in `$$<stream>`.
pub const METADATA: &str = "$metadata";
/// A tombstone's revision.
pub const TOMBSTONE_REVISION: u64 = i64::MAX as u64;
/// How many recent event ids are remembered for idempotent appends with
/// `Any` or `StreamExists`.
const RECENT_IDS: usize = 1 << 20;

#[derive(Clone, Debug, Default)]
pub struct StreamState {
    /// The position of each revision, from 0. An event's id is not kept
    /// here: only an append that may be a retry needs it, and it reads it
    /// from the log (`writer.rs`), where 16 bytes an event in memory would
    /// grow the store's memory with every event ever written.
    pub positions: Vec<u64>,
    /// Revisions below this are hidden (`$tb` from the stream's metadata).
    pub truncate_before: u64,
    pub tombstoned: bool,
}

impl StreamState {
    /// The last revision, or `None` when nothing was ever written.
    pub fn last_revision(&self) -> Option<u64> {
        self.positions.len().checked_sub(1).map(|n| n as u64)
    }

    /// Soft-deleted: everything written so far is hidden.
    pub fn soft_deleted(&self) -> bool {
        soft_deleted(self.truncate_before, self.positions.len() as u64)
    }
}

/// What the store knows without reading the log.
#[derive(Default)]
pub struct Index {
    pub streams: HashMap<Bytes, StreamState>,
    /// Every record's position, in log order.
    pub all: Vec<u64>,
    recent: HashMap<u128, (Bytes, u64)>,
    recent_order: VecDeque<u128>,
}

/// Whether a stream of `len` events with truncate-before `tb` is
/// soft-deleted: a `$tb` is set and hides everything written, which holds
/// for a deleted stream that was never written to as well.
pub fn soft_deleted(tb: u64, len: u64) -> bool {
    tb > 0 && tb >= len
}

/// The stream whose metadata `$$name` holds, if it is a metastream.
pub fn metastream_of(stream: &[u8]) -> Option<&[u8]> {
    stream.strip_prefix(b"$$")
}

impl Index {
    pub fn stream(&self, name: &[u8]) -> Option<&StreamState> {
        self.streams.get(name)
    }

    /// Where an event id was written recently: its stream and revision.
    pub fn recent_id(&self, id: u128) -> Option<&(Bytes, u64)> {
        self.recent.get(&id)
    }

    /// Records a durable event.
    pub fn add(&mut self, e: &StoredEvent) {
        self.all.push(e.position);
        if e.event_type.as_ref() == STREAM_DELETED.as_bytes() && e.revision == TOMBSTONE_REVISION {
            self.streams.entry(e.stream.clone()).or_default().tombstoned = true;
            return;
        }
        if e.event_type.as_ref() == METADATA.as_bytes()
            && let Some(target) = metastream_of(&e.stream)
        {
            let tb = serde_json::from_slice::<serde_json::Value>(&e.data)
                .ok()
                .and_then(|v| v.get("$tb").and_then(serde_json::Value::as_u64))
                .unwrap_or(0);
            self.streams
                .entry(Bytes::copy_from_slice(target))
                .or_default()
                .truncate_before = tb;
        }
        let state = self.streams.entry(e.stream.clone()).or_default();
        state.positions.push(e.position);
        self.recent.insert(e.id, (e.stream.clone(), e.revision));
        self.recent_order.push_back(e.id);
        if self.recent_order.len() > RECENT_IDS
            && let Some(old) = self.recent_order.pop_front()
        {
            self.recent.remove(&old);
        }
    }
}
