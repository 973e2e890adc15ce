//! The in-memory index: for every stream, where each revision's record is;
//! for `$all`, every record's position in order; and what deletes and
//! metadata say. It is rebuilt from the log on start (a scan runs at disk
//! speed), which keeps the on-disk format to the log alone.

use std::collections::HashMap;

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

/// What the index remembers of an event id: 64 of its 128 bits. Two ids
/// may share one; a hit is only a record to look at, and the writer reads
/// that record's whole id from the log before calling anything a retry.
fn fingerprint(id: u128) -> u64 {
    (id as u64) ^ ((id >> 64) as u64)
}

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
    /// The newest record of each recent id's fingerprint, by position.
    /// Keeping the stream and revision here instead (as it once did) cost
    /// about 136 MB for a million ids; this is about 42 MB.
    recent: HashMap<u64, u64>,
    /// The fingerprints of the last [`RECENT_IDS`] records, a ring in log
    /// order: the oldest is forgotten as each new one comes.
    recent_ring: Vec<u64>,
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

    /// The position of a recent record whose id may be `id` (the newest
    /// with its fingerprint): read it to know.
    pub fn recent_id(&self, id: u128) -> Option<u64> {
        self.recent.get(&fingerprint(id)).copied()
    }

    /// Remembers a record's id as recent, forgetting the oldest beyond
    /// [`RECENT_IDS`]. Call after its position is pushed onto `all`.
    fn remember(&mut self, id: u128, position: u64) {
        let n = self.all.len() - 1;
        let slot = n % RECENT_IDS;
        let print = fingerprint(id);
        if n >= RECENT_IDS {
            let old = std::mem::replace(&mut self.recent_ring[slot], print);
            // Unless a newer record of the same fingerprint took its place.
            let old_position = self.all[n - RECENT_IDS];
            if self.recent.get(&old) == Some(&old_position) {
                self.recent.remove(&old);
            }
        } else {
            self.recent_ring.push(print);
        }
        self.recent.insert(print, position);
    }

    /// Records a durable event.
    pub fn add(&mut self, e: &StoredEvent) {
        self.all.push(e.position);
        self.remember(e.id, e.position);
        if e.event_type.as_ref() == STREAM_DELETED.as_bytes() && e.revision == TOMBSTONE_REVISION {
            self.stream_mut(&e.stream).tombstoned = true;
            return;
        }
        if e.event_type.as_ref() == METADATA.as_bytes()
            && let Some(target) = metastream_of(&e.stream)
        {
            let tb = serde_json::from_slice::<serde_json::Value>(&e.data)
                .ok()
                .and_then(|v| v.get("$tb").and_then(serde_json::Value::as_u64))
                .unwrap_or(0);
            self.stream_mut(target).truncate_before = tb;
        }
        self.stream_mut(&e.stream).positions.push(e.position);
    }

    /// A stream's state, made empty the first time. Its name is copied
    /// only then: a record's name is a slice of the buffer it was read
    /// from, which the index must not keep alive.
    fn stream_mut(&mut self, name: &[u8]) -> &mut StreamState {
        if !self.streams.contains_key(name) {
            let owned = Bytes::copy_from_slice(name);
            self.streams.insert(owned, StreamState::default());
        }
        self.streams.get_mut(name).expect("inserted above")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(position: u64, id: u128) -> StoredEvent {
        StoredEvent {
            position,
            stream: Bytes::from_static(b"s"),
            revision: position,
            id,
            event_type: Bytes::from_static(b"e"),
            is_json: true,
            created: 0,
            custom_metadata: Bytes::new(),
            data: Bytes::new(),
        }
    }

    #[test]
    fn the_last_million_ids_are_remembered_by_position_and_older_ones_forgotten() {
        let mut index = Index::default();
        // Two ids of one fingerprint: the newer is the one found, and
        // forgetting the older does not forget it.
        let (a, b) = (7u128, 9u128);
        let older = (a << 64) | b;
        let newer = (b << 64) | a;
        assert_eq!(fingerprint(older), fingerprint(newer));
        index.add(&record(0, older));
        index.add(&record(1, newer));
        let n = RECENT_IDS as u64 + 10;
        for p in 2..n {
            index.add(&record(p, u128::from(p) << 70));
            if p == RECENT_IDS as u64 {
                // Record 0 just left the window; record 1, of the same
                // fingerprint, is still in it and still found.
                assert_eq!(index.recent_id(older), Some(1));
            }
        }
        // Records 0..10 are beyond the window now; 10.. are in it.
        assert_eq!(index.recent_id(newer), None);
        assert_eq!(index.recent_id(u128::from(5u64) << 70), None);
        assert_eq!(index.recent_id(u128::from(9u64) << 70), None);
        assert_eq!(index.recent_id(u128::from(10u64) << 70), Some(10));
        assert_eq!(index.recent_id(u128::from(n - 1) << 70), Some(n - 1));
        // One more forgets record 10.
        index.add(&record(n, u128::from(n) << 70));
        assert_eq!(index.recent_id(u128::from(10u64) << 70), None);
        assert_eq!(index.recent_id(u128::from(11u64) << 70), Some(11));
        assert_eq!(index.recent.len(), RECENT_IDS);
    }
}
