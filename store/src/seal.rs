//! A seal: what a sealed segment holds, written beside it
//! (`NNNNNNNNNNNNNNNNNNNN.seal`) so that a start need not read its records
//! back one by one to rebuild the index.
//!
//! A sealed segment never changes again, so its seal is written once, by
//! the sealer thread after the writer moved on to the next segment, or by
//! the sealer after a start that found a sealed segment without one. It
//! holds, for every record, where it lies, which stream it is of and its
//! id's fingerprint, and what the few that do more than join their stream
//! do (tombstones, `$tb` metadata): 16 bytes a record, where the record
//! itself takes a few hundred.
//!
//! A seal is only ever a faster way to what the segment says. It names the
//! segment's length and CRC-32, and a start uses it only when the segment
//! file still has both (so damage to a sealed segment is still refused, at
//! the record where it lies); a seal that is missing, unreadable, of
//! another format or of other bytes is passed over and the segment is read
//! record by record, as before seals existed.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use bytes::Bytes;

use crate::index::{Effect, effect, fingerprint};
use crate::record::StoredEvent;
use crate::segment;

const MAGIC: &[u8; 8] = b"XCHGSEAL";
/// How much of a segment is read at a time to check it against its seal.
const CHUNK: usize = 1 << 20;
const VERSION: u32 = 1;

/// What a record does beyond joining its stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// It deletes its stream for good and is no revision of it.
    Tombstone,
    /// It sets the truncate-before of the stream named by its place in
    /// [`Seal::streams`] (and joins its own stream, the metastream).
    TruncateBefore { stream: u32, truncate_before: u64 },
}

/// What a sealed segment holds, column by column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seal {
    /// The segment's base position.
    pub base: u64,
    /// The segment file's length and CRC-32 when it was sealed.
    pub len: u64,
    pub crc: u32,
    /// The streams its records are of, each once.
    pub streams: Vec<Bytes>,
    /// Per record, in log order: its position less `base`, its stream (a
    /// place in `streams`) and its id's fingerprint.
    pub offsets: Vec<u32>,
    pub stream_of: Vec<u32>,
    pub prints: Vec<u64>,
    /// The records that do more than join their stream, by record number,
    /// in order.
    pub marks: Vec<(u32, Mark)>,
}

/// Why bytes are not a seal, or a segment cannot be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a seal of this format")]
    Format,
    #[error("the seal's checksum does not match")]
    Checksum,
    #[error("the seal is cut short or malformed")]
    Malformed,
    #[error("the segment cannot be sealed: {0}")]
    Unsealable(String),
}

/// A seal being made from a segment's records, in order.
pub struct Sealing {
    names: HashMap<Bytes, u32>,
    seal: Seal,
}

impl Sealing {
    pub fn new(base: u64) -> Sealing {
        Sealing {
            names: HashMap::new(),
            seal: Seal {
                base,
                len: 0,
                crc: 0,
                streams: Vec::new(),
                offsets: Vec::new(),
                stream_of: Vec::new(),
                prints: Vec::new(),
                marks: Vec::new(),
            },
        }
    }

    fn stream(&mut self, name: &[u8]) -> u32 {
        if let Some(n) = self.names.get(name) {
            return *n;
        }
        let n = self.seal.streams.len() as u32;
        let owned = Bytes::copy_from_slice(name);
        self.seal.streams.push(owned.clone());
        self.names.insert(owned, n);
        n
    }

    /// Adds the segment's next record. `None` when the segment is too
    /// large for a seal's offsets (it is then read record by record).
    pub fn add(&mut self, e: &StoredEvent) -> Option<()> {
        let offset = u32::try_from(e.position - self.seal.base).ok()?;
        let record = self.seal.offsets.len() as u32;
        let stream = self.stream(&e.stream);
        match effect(e) {
            Effect::Join => {}
            Effect::Tombstone => self.seal.marks.push((record, Mark::Tombstone)),
            Effect::Metadata {
                target,
                truncate_before,
            } => {
                let target = self.stream(target);
                self.seal.marks.push((
                    record,
                    Mark::TruncateBefore {
                        stream: target,
                        truncate_before,
                    },
                ));
            }
        }
        self.seal.offsets.push(offset);
        self.seal.stream_of.push(stream);
        self.seal.prints.push(fingerprint(e.id));
        Some(())
    }

    /// The seal of a segment file of `len` bytes and CRC-32 `crc`.
    pub fn finish(mut self, len: u64, crc: u32) -> Seal {
        self.seal.len = len;
        self.seal.crc = crc;
        self.seal
    }
}

impl Seal {
    /// Records in the segment.
    pub fn records(&self) -> usize {
        self.offsets.len()
    }

    /// Whether this is the seal of the segment at `base` whose file has
    /// `len` bytes of CRC-32 `crc` ([`checksums`]).
    pub fn matches(&self, base: u64, (len, crc): (u64, u32)) -> bool {
        self.base == base && self.len == len && self.crc == crc
    }

    pub fn encode(&self) -> Vec<u8> {
        let n = self.records();
        let mut out = Vec::with_capacity(64 + n * 16);
        out.extend_from_slice(MAGIC);
        for word in [VERSION, self.crc] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for word in [self.base, self.len] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        for count in [n, self.streams.len(), self.marks.len()] {
            out.extend_from_slice(&(count as u32).to_le_bytes());
        }
        for name in &self.streams {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(name);
        }
        for offset in &self.offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        for stream in &self.stream_of {
            out.extend_from_slice(&stream.to_le_bytes());
        }
        for print in &self.prints {
            out.extend_from_slice(&print.to_le_bytes());
        }
        for (record, mark) in &self.marks {
            out.extend_from_slice(&record.to_le_bytes());
            let (kind, stream, truncate_before) = match *mark {
                Mark::Tombstone => (0u8, 0, 0),
                Mark::TruncateBefore {
                    stream,
                    truncate_before,
                } => (1, stream, truncate_before),
            };
            out.push(kind);
            out.extend_from_slice(&stream.to_le_bytes());
            out.extend_from_slice(&truncate_before.to_le_bytes());
        }
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Seal, SealError> {
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(SealError::Format);
        }
        if u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) != VERSION {
            return Err(SealError::Format);
        }
        let (body, trailer) = bytes.split_at(bytes.len().saturating_sub(4));
        let crc = u32::from_le_bytes(trailer.try_into().map_err(|_| SealError::Malformed)?);
        if crc32fast::hash(body) != crc {
            return Err(SealError::Checksum);
        }
        let mut r = Reader {
            bytes: body,
            at: 12,
        };
        let crc = r.u32()?;
        let (base, len) = (r.u64()?, r.u64()?);
        let (n, streams, marks) = (r.count()?, r.count()?, r.count()?);
        let streams = (0..streams)
            .map(|_| {
                let len = r.count()?;
                r.take(len).map(Bytes::copy_from_slice)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let words = |bytes: &[u8]| -> Vec<u32> {
            let word = |c: &[u8]| u32::from_le_bytes(c.try_into().expect("4 bytes"));
            bytes.chunks_exact(4).map(word).collect()
        };
        let offsets = words(r.take(n * 4)?);
        let stream_of = words(r.take(n * 4)?);
        let prints: Vec<u64> = (r.take(n * 8)?.chunks_exact(8))
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect();
        let marks = (0..marks)
            .map(|_| {
                let record = r.u32()?;
                let kind = r.take(1)?[0];
                let (stream, truncate_before) = (r.u32()?, r.u64()?);
                let mark = match kind {
                    0 => Mark::Tombstone,
                    1 => Mark::TruncateBefore {
                        stream,
                        truncate_before,
                    },
                    _ => return Err(SealError::Malformed),
                };
                Ok((record, mark))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let places = streams.len() as u32;
        let well_formed = r.at == body.len()
            && stream_of.iter().all(|s| *s < places)
            && marks.iter().all(|(record, mark)| {
                (*record as usize) < n
                    && match mark {
                        Mark::Tombstone => true,
                        Mark::TruncateBefore { stream, .. } => *stream < places,
                    }
            })
            && marks.windows(2).all(|w| w[0].0 <= w[1].0)
            && offsets.windows(2).all(|w| w[0] < w[1])
            && offsets.last().is_none_or(|o| u64::from(*o) < len);
        if !well_formed {
            return Err(SealError::Malformed);
        }
        Ok(Seal {
            base,
            len,
            crc,
            streams,
            offsets,
            stream_of,
            prints,
            marks,
        })
    }
}

/// Reads a seal's fields in order.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], SealError> {
        let end = self.at.checked_add(n).ok_or(SealError::Malformed)?;
        let taken = self.bytes.get(self.at..end).ok_or(SealError::Malformed)?;
        self.at = end;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32, SealError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }

    fn u64(&mut self) -> Result<u64, SealError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }

    /// A count, which cannot exceed what is left to read.
    fn count(&mut self) -> Result<usize, SealError> {
        let n = self.u32()? as usize;
        (n <= self.bytes.len() - self.at)
            .then_some(n)
            .ok_or(SealError::Malformed)
    }
}

/// The length and CRC-32 of each file, `None` for one that cannot be read,
/// on as many threads as the machine has cores. Each is read a chunk at a
/// time, which stays in the cache: reading a whole segment into memory
/// first cost twice as much.
pub fn checksums(files: &[PathBuf]) -> Vec<Option<(u64, u32)>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut out = vec![None; files.len()];
    let share = files.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (slots, files) in out.chunks_mut(share).zip(files.chunks(share)) {
            scope.spawn(move || {
                for (slot, file) in slots.iter_mut().zip(files) {
                    *slot = checksum(file).ok();
                }
            });
        }
    });
    out
}

fn checksum(path: &Path) -> io::Result<(u64, u32)> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut chunk = vec![0u8; CHUNK];
    let mut crc = crc32fast::Hasher::new();
    let mut at = 0;
    while at < len {
        let n = CHUNK.min((len - at) as usize);
        file.read_exact_at(&mut chunk[..n], at)?;
        crc.update(&chunk[..n]);
        at += n as u64;
    }
    Ok((len, crc.finalize()))
}

/// The seal of the segment that starts at `base`.
pub fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seal"))
}

/// The seal beside the segment at `base`, if there is one a start can
/// read. One that cannot be read is said in the log and passed over.
pub fn read(dir: &Path, base: u64) -> Option<Seal> {
    let path = path(dir, base);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(seal = %path.display(), "the seal cannot be read ({e}); reading its segment instead");
            return None;
        }
    };
    Seal::decode(&bytes)
        .inspect_err(|e| {
            tracing::warn!(seal = %path.display(), "passing over a seal: {e}; reading its segment instead");
        })
        .ok()
}

/// Writes `seal` beside its segment, whole or not at all: to a file of its
/// own, synced, then renamed into place.
/// A seal that cannot be written (a full disk) leaves nothing behind.
pub fn write(dir: &Path, seal: &Seal) -> io::Result<()> {
    let path = path(dir, seal.base);
    let partial = path.with_extension("seal.partial");
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)
        .and_then(|mut file| {
            file.write_all(&seal.encode())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&partial, &path));
    if written.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    written?;
    segment::sync_dir(dir)
}

/// Removes the seal of the segment at `base`, if there is one: its segment
/// is about to change.
pub fn remove(dir: &Path, base: u64) -> io::Result<()> {
    match std::fs::remove_file(path(dir, base)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Reads the sealed segment at `base` and makes its seal. Every record of
/// it must be readable, to its last byte.
pub fn of_segment(dir: &Path, base: u64) -> Result<Seal, SealError> {
    let bytes = Bytes::from(std::fs::read(segment::path(dir, base))?);
    let header =
        segment::read_header(&bytes, base).map_err(|e| SealError::Unsealable(e.to_string()))?;
    let mut sealing = Sealing::new(base);
    let mut at = (header.data_start - base) as usize;
    while at < bytes.len() {
        let (event, len) = StoredEvent::decode(&bytes.slice(at..), base + at as u64)
            .map_err(|e| SealError::Unsealable(format!("at offset {at}: {e}")))?;
        sealing
            .add(&event)
            .ok_or_else(|| SealError::Unsealable("larger than a seal can describe".into()))?;
        at += len;
    }
    Ok(sealing.finish(bytes.len() as u64, crc32fast::hash(&bytes)))
}

/// A thread that seals segments in the background, one after another, so
/// that neither the writer nor a start waits for it.
pub struct Sealer {
    jobs: Option<Sender<u64>>,
    thread: Option<JoinHandle<()>>,
}

impl Sealer {
    pub fn start(dir: &Path) -> io::Result<Sealer> {
        let (jobs, todo) = mpsc::channel::<u64>();
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("store-sealer".into())
            .spawn(move || {
                for base in todo {
                    if let Err(e) = of_segment(&dir, base).and_then(|s| Ok(write(&dir, &s)?)) {
                        // A start reads the segment instead, and seals it.
                        tracing::warn!(segment = base, "could not write the segment's seal: {e}");
                    }
                }
            })?;
        Ok(Sealer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Seals the segment at `base`, which is sealed and no longer written.
    pub fn seal(&self, base: u64) {
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(base);
        }
    }

    /// Waits until every segment asked for is sealed (or could not be).
    pub fn finish(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        position: u64,
        stream: &'static str,
        event_type: &'static str,
        data: &'static str,
    ) -> StoredEvent {
        StoredEvent {
            position,
            stream: Bytes::from_static(stream.as_bytes()),
            revision: if event_type == crate::index::STREAM_DELETED {
                crate::index::TOMBSTONE_REVISION
            } else {
                0
            },
            id: u128::from(position) << 64 | 7,
            event_type: Bytes::from_static(event_type.as_bytes()),
            is_json: true,
            created: 0,
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(data.as_bytes()),
        }
    }

    fn seal() -> Seal {
        let mut sealing = Sealing::new(1_000);
        for e in [
            event(1_064, "a", "Placed", "{}"),
            event(1_200, "$$a", "$metadata", "{\"$tb\":1}"),
            event(1_300, "b", "$streamDeleted", "{}"),
            event(1_400, "a", "Placed", "{}"),
        ] {
            sealing.add(&e).unwrap();
        }
        sealing.finish(1_500, 0xfeed)
    }

    #[test]
    fn a_seal_reads_back_as_written() {
        let seal = seal();
        assert_eq!(seal.streams, ["a", "$$a", "b"]);
        assert_eq!(seal.stream_of, [0, 1, 2, 0]);
        assert_eq!(
            seal.marks,
            [
                (
                    1,
                    Mark::TruncateBefore {
                        stream: 0,
                        truncate_before: 1
                    }
                ),
                (2, Mark::Tombstone)
            ]
        );
        assert_eq!(Seal::decode(&seal.encode()).unwrap(), seal);
    }

    #[test]
    fn damaged_or_foreign_bytes_are_no_seal() {
        let bytes = seal().encode();
        for at in [0, 9, 14, 30, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x10;
            assert!(Seal::decode(&damaged).is_err(), "a flip at {at}");
        }
        for cut in [0, 3, 11, bytes.len() - 5, bytes.len() - 1] {
            assert!(Seal::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A count beyond the bytes, with a checksum that matches.
        let mut lying = bytes[..bytes.len() - 4].to_vec();
        lying[32..36].copy_from_slice(&u32::MAX.to_le_bytes());
        let crc = crc32fast::hash(&lying);
        lying.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(Seal::decode(&lying), Err(SealError::Malformed)));
    }
}
