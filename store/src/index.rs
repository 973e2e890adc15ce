//! The in-memory index: for every stream, where each revision's record is;
//! for `$all`, every record's position in order; and what deletes and
//! metadata say. It is rebuilt on start from the log, and from the seals
//! beside its sealed segments ([`crate::seal`]), which say the same in a
//! sixteenth of the bytes; the log alone is the truth.

use std::collections::HashMap;

use bytes::Bytes;

use crate::positions::Positions;
use crate::record::StoredEvent;

/// The type of a tombstone event, written at revision `i64::MAX`.
pub const STREAM_DELETED: &str = "$streamDeleted";
/// The type of a stream metadata event in `$$<stream>`.
pub const METADATA: &str = "$metadata";
/// A tombstone's revision.
pub const TOMBSTONE_REVISION: u64 = i64::MAX as u64;
/// How many recent event ids are remembered for idempotent appends with
/// `Any` or `StreamExists`.
pub const RECENT_IDS: usize = 1 << 20;

/// What the index remembers of an event id: 64 of its 128 bits. Two ids
/// may share one; a hit is only a record to look at, and the writer reads
/// that record's whole id from the log before calling anything a retry.
pub fn fingerprint(id: u128) -> u64 {
    (id as u64) ^ ((id >> 64) as u64)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamState {
    /// The position of each revision, from 0. An event's id is not kept
    /// here: only an append that may be a retry needs it, and it reads it
    /// from the log (`writer.rs`), where 16 bytes an event in memory would
    /// grow the store's memory with every event ever written.
    pub positions: Positions,
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
#[cfg_attr(test, derive(Debug, PartialEq, Eq))]
pub struct Index {
    pub streams: HashMap<Bytes, StreamState>,
    /// Every record's position, in log order.
    pub all: Positions,
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

/// What a record does to the index besides taking its place in `$all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect<'a> {
    /// It is its stream's next revision.
    Join,
    /// It deletes its stream for good; a tombstone is no revision of it.
    Tombstone,
    /// It is its stream's next revision, and sets the truncate-before of
    /// `target`, the stream whose metadata its stream holds.
    Metadata {
        target: &'a [u8],
        truncate_before: u64,
    },
}

/// What `e` does to the index.
pub fn effect(e: &StoredEvent) -> Effect<'_> {
    if e.event_type.as_ref() == STREAM_DELETED.as_bytes() && e.revision == TOMBSTONE_REVISION {
        return Effect::Tombstone;
    }
    if e.event_type.as_ref() == METADATA.as_bytes()
        && let Some(target) = metastream_of(&e.stream)
    {
        let truncate_before = serde_json::from_slice::<serde_json::Value>(&e.data)
            .ok()
            .and_then(|v| v.get("$tb").and_then(serde_json::Value::as_u64))
            .unwrap_or(0);
        return Effect::Metadata {
            target,
            truncate_before,
        };
    }
    Effect::Join
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
            let old_position = self.all.get(n - RECENT_IDS);
            if self.recent.get(&old).copied() == old_position {
                self.recent.remove(&old);
            }
        } else {
            self.recent_ring.push(print);
        }
        self.recent.insert(print, position);
    }

    /// Records a durable event.
    pub fn add(&mut self, e: &StoredEvent) {
        self.place(e.position, &e.stream, effect(e));
        self.remember(e.id, e.position);
    }

    /// Puts a record in `$all` and, by what it does, in its stream, without
    /// remembering its id (a start remembers only the newest ones, at the
    /// end: [`Index::remember_newest`]).
    pub fn place(&mut self, position: u64, stream: &[u8], effect: Effect<'_>) {
        self.all.push(position);
        match effect {
            Effect::Tombstone => self.stream_mut(stream).tombstoned = true,
            Effect::Join => self.stream_mut(stream).positions.push(position),
            Effect::Metadata {
                target,
                truncate_before,
            } => {
                self.stream_mut(target).truncate_before = truncate_before;
                self.stream_mut(stream).positions.push(position);
            }
        }
    }

    /// Remembers the ids of the newest records at the end of a start, given
    /// the fingerprints of the last `prints.len()` records placed (at most
    /// [`RECENT_IDS`]): the same as remembering each in turn as it came.
    pub fn remember_newest(&mut self, prints: impl ExactSizeIterator<Item = u64>) {
        let total = self.all.len();
        let first = total - prints.len();
        self.recent.clear();
        self.recent_ring = vec![0; total.min(RECENT_IDS)];
        for (n, print) in (first..).zip(prints) {
            self.recent_ring[n % RECENT_IDS] = print;
            let position = self.all.get(n).expect("a placed record");
            self.recent.insert(print, position);
        }
    }

    /// A stream's state, made empty the first time. Its name is copied
    /// only then: a record's name is a slice of the buffer it was read
    /// from, which the index must not keep alive.
    pub(crate) fn stream_mut(&mut self, name: &[u8]) -> &mut StreamState {
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
