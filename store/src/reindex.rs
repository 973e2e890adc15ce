//! Rebuilding the index at start, from the records of the segments read
//! back and the seals of the sealed ones ([`crate::seal`]).
//!
//! Record by record it does what the writer's [`Index::add`] did, except
//! that ids are remembered once, at the end, for only the newest
//! [`RECENT_IDS`] records: remembering and forgetting every id of a long
//! log in turn was most of what a start cost.

use std::collections::VecDeque;

use crate::index::{Index, RECENT_IDS, effect, fingerprint};
use crate::record::StoredEvent;
use crate::seal::{Mark, Seal};

/// An index being rebuilt.
#[derive(Default)]
pub struct Reindex {
    index: Index,
    /// The fingerprints of the newest records placed, at most
    /// [`RECENT_IDS`] of them.
    prints: VecDeque<u64>,
}

impl Reindex {
    /// Places the log's next record.
    pub fn record(&mut self, e: &StoredEvent) {
        self.index.place(e.position, &e.stream, effect(e));
        self.remember(std::slice::from_ref(&fingerprint(e.id)));
    }

    /// Places a sealed segment's records, which come next in the log: in
    /// `$all` in order, and in each stream all at once.
    pub fn sealed(&mut self, seal: &Seal) {
        let mut joining = vec![Vec::new(); seal.streams.len()];
        let mut marks = seal.marks.iter().peekable();
        let mut then = Vec::new();
        for (record, (offset, stream)) in seal.offsets.iter().zip(&seal.stream_of).enumerate() {
            let position = seal.base + u64::from(*offset);
            self.index.all.push(position);
            let mut joins = true;
            while let Some((_, mark)) = marks.next_if(|(r, _)| *r as usize == record) {
                joins &= *mark != Mark::Tombstone;
                then.push((*stream, *mark));
            }
            if joins {
                joining[*stream as usize].push(position);
            }
        }
        for (name, positions) in seal.streams.iter().zip(joining) {
            if !positions.is_empty() {
                self.index.stream_mut(name).positions.extend(positions);
            }
        }
        // What tombstones and metadata say, in the order they said it.
        for (stream, mark) in then {
            match mark {
                Mark::Tombstone => {
                    self.index
                        .stream_mut(&seal.streams[stream as usize])
                        .tombstoned = true;
                }
                Mark::TruncateBefore {
                    stream,
                    truncate_before,
                } => {
                    self.index
                        .stream_mut(&seal.streams[stream as usize])
                        .truncate_before = truncate_before;
                }
            }
        }
        self.remember(&seal.prints);
    }

    /// Keeps the newest fingerprints, given those of records just placed.
    fn remember(&mut self, prints: &[u64]) {
        let newest = &prints[prints.len().saturating_sub(RECENT_IDS)..];
        let over = (self.prints.len() + newest.len()).saturating_sub(RECENT_IDS);
        self.prints.drain(..over);
        self.prints.extend(newest);
    }

    /// The index, with the newest records' ids remembered.
    pub fn finish(mut self) -> Index {
        self.index.remember_newest(self.prints.into_iter());
        self.index
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::index::{METADATA, STREAM_DELETED, TOMBSTONE_REVISION};
    use crate::seal::Sealing;

    /// A log of `n` records over a few streams: some metadata setting
    /// `$tb`, a tombstone, and ids of which some share a fingerprint.
    fn log(n: u64) -> Vec<StoredEvent> {
        (0..n)
            .map(|i| {
                let position = 64 + i * 100;
                let (stream, event_type, data, revision) = match i % 1_000 {
                    17 => ("$$s-3", METADATA, format!("{{\"$tb\":{}}}", i / 1_000), 0),
                    500 if i == 500 => ("gone", STREAM_DELETED, "{}".into(), TOMBSTONE_REVISION),
                    k => (
                        ["s-1", "s-2", "s-3", "gone"][k as usize % 4],
                        "E",
                        "{}".into(),
                        0,
                    ),
                };
                // Every 7th id shares its fingerprint with an earlier one.
                let id = if i % 7 == 0 {
                    u128::from(i / 2) | (u128::from(i / 2) << 64)
                } else {
                    u128::from(i) << 64 | 1
                };
                StoredEvent {
                    position,
                    stream: Bytes::from(stream),
                    revision,
                    id,
                    event_type: Bytes::from_static(event_type.as_bytes()),
                    is_json: true,
                    created: 0,
                    custom_metadata: Bytes::new(),
                    data: Bytes::from(data),
                }
            })
            .collect()
    }

    #[test]
    fn an_index_rebuilt_from_seals_and_records_is_the_writers() {
        // More records than are remembered, so forgetting is covered too.
        let records = log(RECENT_IDS as u64 + 150_000);
        let mut written = Index::default();
        for e in &records {
            written.add(e);
        }
        let mut read = Reindex::default();
        for e in &records {
            read.record(e);
        }
        assert!(read.finish() == written, "rebuilt record by record");
        // Sealed segments of 100,000 records, then the rest record by record.
        let mut sealed = Reindex::default();
        let (segments, rest) = records.split_at(records.len() - 333);
        for segment in segments.chunks(100_000) {
            let mut sealing = Sealing::new(segment[0].position - 64);
            for e in segment {
                sealing.add(e).unwrap();
            }
            sealed.sealed(&sealing.finish(0, 0));
        }
        for e in rest {
            sealed.record(e);
        }
        let sealed = sealed.finish();
        assert!(sealed == written, "rebuilt from seals");
        assert!(sealed.stream(b"gone").unwrap().tombstoned);
        assert_eq!(sealed.stream(b"s-3").unwrap().truncate_before, 1_198);
    }
}
