//! The append-only, segmented log every event lives in.
//!
//! The log is a sequence of segment files, `NNNNNNNNNNNNNNNNNNNN.seg`, named
//! by the position of their first byte (their layout: [`crate::segment`]).
//! An event's `$all` position is the position of its record, so positions
//! are strictly increasing, never zero, and survive restarts unchanged.
//!
//! Only the writer appends; any number of readers read concurrently through
//! [`Segments`], which share the open files. The active segment's
//! checkpoint slots say how far the log is acknowledged (claimed with a
//! batch's own fsync, or by the syncer once the writer is idle), so
//! recovery ([`crate::recovery`]) can tell a torn tail from damage to
//! acknowledged data. Each segment the writer moves on from is sealed in
//! the background ([`crate::seal`]), so a start need not read it back.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self as std_mpsc, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::record::{HEADER, RecordError, StoredEvent};
use crate::recovery::{self, Found, LogError, Tail, io_at};
use crate::seal::Sealer;
use crate::segment::{self, Checkpoint};

/// A segment is closed and a new one started once it reaches this size
/// (by default; see [`crate::Options`]).
pub const SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

/// Each segment's base position, where its records start, and its file.
type SegmentList = Vec<(u64, u64, Arc<File>)>;

/// A segment found for a position: its base, its file, and the next
/// segment's base and first record, if there is one.
struct Located {
    base: u64,
    file: Arc<File>,
    next: Option<(u64, u64)>,
}

/// The open segment files, shared between the writer and readers.
#[derive(Clone, Default)]
pub struct Segments(Arc<RwLock<SegmentList>>);

impl Segments {
    /// The segment holding `position`.
    fn locate(&self, position: u64) -> Option<Located> {
        let segs = self.0.read().expect("segment list lock");
        let i = segs
            .partition_point(|(base, _, _)| *base <= position)
            .checked_sub(1)?;
        Some(Located {
            base: segs[i].0,
            file: segs[i].2.clone(),
            next: segs.get(i + 1).map(|(b, d, _)| (*b, *d)),
        })
    }

    /// Reads the record at `position`.
    pub fn read_at(&self, position: u64) -> io::Result<StoredEvent> {
        let Located { base, file, .. } = self
            .locate(position)
            .ok_or_else(|| corrupt("position before the log"))?;
        let offset = position - base;
        let mut header = [0u8; HEADER];
        file.read_exact_at(&mut header, offset)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let mut buf = vec![0u8; HEADER + len];
        file.read_exact_at(&mut buf, offset)?;
        StoredEvent::decode(&Bytes::from(buf), position)
            .map(|(e, _)| e)
            .map_err(|e| corrupt(&e.to_string()))
    }

    /// Reads every record from `from` up to (not including) `to`, in order,
    /// in sequential chunks of [`SCAN_CHUNK`] bytes.
    pub fn scan(
        &self,
        mut from: u64,
        to: u64,
        mut each: impl FnMut(StoredEvent) -> bool,
    ) -> io::Result<()> {
        while from < to {
            let Located { base, file, next } = self
                .locate(from)
                .ok_or_else(|| corrupt("position before the log"))?;
            let seg_end = next.map_or(to, |(b, _)| b.min(to));
            let want = (seg_end - from).min(SCAN_CHUNK) as usize;
            // A chunk of its own each time: its events are slices of it.
            let mut chunk = vec![0u8; want];
            file.read_exact_at(&mut chunk, from - base)?;
            let buf = Bytes::from(chunk);
            let mut at = 0;
            while at < buf.len() {
                match StoredEvent::decode(&buf.slice(at..), from + at as u64) {
                    Ok((event, len)) => {
                        at += len;
                        if !each(event) {
                            return Ok(());
                        }
                    }
                    // The chunk ended inside a record: read on from it.
                    Err(RecordError::Torn) if at > 0 => break,
                    Err(RecordError::Torn) => {
                        // A single record larger than the chunk.
                        let event = self.read_at(from)?;
                        at = event.encoded_len();
                        if !each(event) {
                            return Ok(());
                        }
                        break;
                    }
                    Err(e) => return Err(corrupt(&e.to_string())),
                }
            }
            from += at as u64;
            if let Some((next_base, next_start)) = next
                && next_base < to
                && from >= next_base
            {
                // The next segment's first record follows its header.
                from = next_start;
            }
        }
        Ok(())
    }
}

/// How much a scan reads at a time. Readers stop after a page of events
/// (a few hundred kilobytes at most), so a chunk much larger than that was
/// mostly read and zeroed for nothing: 1 MiB chunks cost a page of 512
/// small events about six times its size in copying.
pub const SCAN_CHUNK: u64 = 64 * 1024;

fn corrupt(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// The writer's side of the log.
pub struct Log {
    dir: PathBuf,
    segments: Segments,
    active: Arc<File>,
    active_base: u64,
    /// The position the next record will have; everything before it is
    /// durable.
    end: u64,
    segment_size: u64,
    /// The active segment's checkpoint slots, shared with the syncer.
    claim: Arc<Mutex<Claim>>,
    /// The end of the log that fsyncs made durable, for the syncer.
    durable: Arc<AtomicU64>,
    /// Why the log stopped taking writes, after an fsync failed: the kernel
    /// may then have dropped pages it could not write, so nothing more is
    /// acknowledged until a person has looked (the acknowledged log is
    /// unharmed).
    failed: Option<String>,
    /// Batch fsyncs so far; the syncer skips a checkpoint a later batch's
    /// fsync already made durable.
    fsyncs: Arc<AtomicU64>,
    syncer: Sender<u64>,
    sealer: Sealer,
    /// The directory's lock ([`recovery::lock_dir`]), released when the
    /// log is dropped, after [`Log::close`] made the checkpoint durable.
    _locked: File,
}

/// The checkpoint slots of the active segment. The writer claims in them
/// with a batch (in the batch's own fsync) at most every [`CLAIM_EVERY`]:
/// a claim written with every batch made every fsync write the header's
/// page besides the data's, which cost 8-14% of batch-append throughput
/// and latency. When the writer goes idle the syncer claims the rest.
struct Claim {
    file: Arc<File>,
    checkpoint: Checkpoint,
    at: Instant,
}

impl Claim {
    fn new(file: Arc<File>, checkpoint: Checkpoint) -> Claim {
        Claim {
            file,
            checkpoint,
            at: Instant::now(),
        }
    }

    /// Claims `end`, which must be durable, in the next slot, if it is
    /// further than the last claim. Durable with the file's next sync.
    fn advance(&mut self, end: u64) -> io::Result<()> {
        if self.checkpoint.end >= end {
            return Ok(());
        }
        let next = Checkpoint {
            seq: self.checkpoint.seq + 1,
            end,
        };
        segment::write_checkpoint(&self.file, next)?;
        self.checkpoint = next;
        self.at = Instant::now();
        Ok(())
    }
}

/// What opening the log found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: u64,
    /// Bytes cut from a torn tail (never acknowledged).
    pub truncated_bytes: u64,
    /// The position up to which the log was acknowledged when it stopped.
    pub checkpoint: u64,
}

/// How long the syncer waits after the writer went idle before it claims
/// the acknowledged end and syncs it; a batch arriving meanwhile claims it
/// in its own fsync instead.
const IDLE_SYNC_DELAY: Duration = Duration::from_millis(10);
/// The longest a batch's claim lags behind the log under load: a batch
/// claims only if the last claim is older than this. So at most this long
/// (plus a batch) of acknowledged records lie after the checkpoint, where
/// a damaged one would be taken for a torn tail.
const CLAIM_EVERY: Duration = Duration::from_millis(10);

impl Log {
    /// Opens (or creates) the log in `dir`, calling `each` with every
    /// record in order, or a sealed segment's seal in place of its
    /// records. A torn tail after the checkpoint is cut back to the last
    /// complete record; damage before it is refused with
    /// [`LogError::Corrupt`] and nothing on disk changes. Sealed segments
    /// found without a seal are sealed in the background once it is open.
    pub fn open(
        dir: &Path,
        segment_size: u64,
        mut each: impl FnMut(Found<'_>),
    ) -> Result<(Log, Recovery), LogError> {
        std::fs::create_dir_all(dir).map_err(io_at(dir))?;
        let locked = recovery::lock_dir(dir)?;
        let mut unsealed = Vec::new();
        let found = recovery::read_back(dir, |found| match found {
            Found::Unsealed(base) => unsealed.push(base),
            found => each(found),
        })?;
        let mut truncated_bytes = 0;
        match &found.tail {
            Some(Tail::Torn {
                file,
                offset,
                position,
                bytes,
            }) => {
                tracing::warn!(
                    file = %file.display(),
                    offset,
                    position,
                    bytes,
                    "cutting a torn tail after the checkpoint (a write that was never acknowledged)"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(file)
                    .map_err(io_at(file))?;
                f.set_len(*offset).map_err(io_at(file))?;
                f.sync_all().map_err(io_at(file))?;
                truncated_bytes = *bytes;
            }
            Some(Tail::Unfinished { file, bytes }) => {
                tracing::warn!(file = %file.display(), "removing a segment whose creation was interrupted");
                std::fs::remove_file(file).map_err(io_at(file))?;
                segment::sync_dir(dir).map_err(io_at(dir))?;
                truncated_bytes = *bytes;
            }
            None => {}
        }
        let mut list: SegmentList = Vec::new();
        for s in &found.segments {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&s.path)
                .map_err(io_at(&s.path))?;
            list.push((s.base, s.data_start, Arc::new(file)));
        }
        let (active_base, active, checkpoint, end) = match (found.segments.last(), list.last()) {
            (Some(s), Some((_, _, file))) if s.checkpoint.is_some() => (
                s.base,
                file.clone(),
                s.checkpoint.expect("format 2"),
                found.end,
            ),
            // No log yet, or one that ends in a format-1 segment: new
            // records go to a new format-2 segment.
            _ => {
                let base = found.end;
                let file = segment::create(dir, base).map_err(io_at(dir))?;
                list.push((base, base + segment::HEADER, file.clone()));
                let start = Checkpoint {
                    seq: 0,
                    end: base + segment::HEADER,
                };
                (base, file, start, start.end)
            }
        };
        let claim = Arc::new(Mutex::new(Claim::new(active.clone(), checkpoint)));
        if checkpoint.end < end {
            // Records kept after a crash: they are read back whole, so once
            // synced they count as acknowledged from now on.
            let path = segment::path(dir, active_base);
            active.sync_data().map_err(io_at(&path))?;
            lock(&claim).advance(end).map_err(io_at(&path))?;
            active.sync_data().map_err(io_at(&path))?;
        }
        let (syncer, to_sync) = std_mpsc::channel();
        let fsyncs = Arc::new(AtomicU64::new(0));
        let durable = Arc::new(AtomicU64::new(end));
        let shared = (claim.clone(), durable.clone(), fsyncs.clone());
        std::thread::Builder::new()
            .name("store-syncer".into())
            .spawn(move || sync_idle_checkpoints(to_sync, shared))
            .map_err(io_at(dir))?;
        let sealer = Sealer::start(dir).map_err(io_at(dir))?;
        for base in unsealed {
            sealer.seal(base);
        }
        let log = Log {
            dir: dir.to_path_buf(),
            segments: Segments(Arc::new(RwLock::new(list))),
            active,
            active_base,
            end,
            segment_size,
            claim,
            durable,
            failed: None,
            fsyncs,
            syncer,
            sealer,
            _locked: locked,
        };
        let recovery = Recovery {
            records: found.records,
            truncated_bytes,
            checkpoint: found.checkpoint,
        };
        Ok((log, recovery))
    }

    pub fn segments(&self) -> Segments {
        self.segments.clone()
    }

    /// The position the next record will get.
    pub fn end(&self) -> u64 {
        self.end
    }

    fn refuse_if_failed(&self) -> io::Result<()> {
        match &self.failed {
            Some(why) => Err(io::Error::other(format!(
                "the store stopped accepting writes after {why}; every acknowledged event is \
                 kept, restart the store once the disk is fixed"
            ))),
            None => Ok(()),
        }
    }

    /// Makes room for `len` more bytes, starting a new segment when the
    /// active one is full. Returns the position the bytes will start at.
    pub fn reserve(&mut self, len: u64) -> io::Result<u64> {
        self.refuse_if_failed()?;
        let used = self.end - self.active_base;
        if used > segment::HEADER && used + len > self.segment_size {
            // Seal the full segment (its checkpoint at its end, on disk)
            // before the next one exists: a segment followed by another is
            // acknowledged to its last byte.
            let mut claim = lock(&self.claim);
            claim.advance(self.end)?;
            self.active.sync_data()?;
            let sealed = self.active_base;
            let base = self.end;
            let file = segment::create(&self.dir, base)?;
            self.segments.0.write().expect("segment list lock").push((
                base,
                base + segment::HEADER,
                file.clone(),
            ));
            self.active = file;
            self.active_base = base;
            // Only now is the full one followed by another.
            self.sealer.seal(sealed);
            self.end = base + segment::HEADER;
            *claim = Claim::new(
                self.active.clone(),
                Checkpoint {
                    seq: 0,
                    end: self.end,
                },
            );
            self.durable.store(self.end, Ordering::Release);
        }
        Ok(self.end)
    }

    /// Writes `bytes` at the end of the log and waits until they are on
    /// disk. Callers reserve first. The same fsync may carry a checkpoint
    /// claiming the end before these bytes (already durable, so the claim
    /// holds however the disk orders the two writes), if the last claim is
    /// older than [`CLAIM_EVERY`]. If the write fails,
    /// the file is cut back to the acknowledged end so a later start finds
    /// nothing of it; if the fsync fails, the log also stops taking writes.
    pub fn write_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.refuse_if_failed()?;
        let offset = self.end - self.active_base;
        let written = self.active.write_all_at(bytes, offset).and_then(|()| {
            let mut claim = lock(&self.claim);
            if claim.at.elapsed() >= CLAIM_EVERY {
                claim.advance(self.end)?;
            }
            Ok(())
        });
        if let Err(e) = written {
            self.cut_back(offset, &e);
            return Err(e);
        }
        if let Err(e) = self.active.sync_data() {
            self.failed = Some(format!("an fsync failed ({e})"));
            self.cut_back(offset, &e);
            return Err(e);
        }
        self.end += bytes.len() as u64;
        self.durable.store(self.end, Ordering::Release);
        self.fsyncs.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// Removes what a failed write left after the acknowledged end.
    fn cut_back(&mut self, offset: u64, cause: &io::Error) {
        tracing::error!(
            "writing to the event log failed: {cause}; cutting it back to {}",
            self.end
        );
        let cut = self
            .active
            .set_len(offset)
            .and_then(|()| self.active.sync_data());
        if let Err(e) = cut {
            tracing::error!("could not cut the event log back: {e}; refusing further writes");
            self.failed = Some(format!("a failed write could not be cut back ({e})"));
        }
    }

    /// Makes the checkpoint durable at the end, when the writer stops, and
    /// waits for the segments being sealed.
    pub fn close(mut self) {
        self.sealer.finish();
        if self.failed.is_none() {
            let mut claim = lock(&self.claim);
            if let Err(e) = claim
                .advance(self.end)
                .and_then(|()| claim.file.sync_data())
            {
                tracing::error!("writing the final checkpoint failed: {e}");
            }
        }
    }

    /// Called when the writer has answered every batch and none waits: the
    /// syncer claims the acknowledged end unless a batch comes first.
    pub fn checkpoint_idle(&mut self) {
        if self.failed.is_some() || lock(&self.claim).checkpoint.end == self.end {
            return;
        }
        let fsyncs = self.fsyncs.load(Ordering::Acquire);
        if self.syncer.send(fsyncs).is_err() {
            tracing::error!("the checkpoint syncer is gone");
        }
    }
}

fn lock(claim: &Mutex<Claim>) -> std::sync::MutexGuard<'_, Claim> {
    claim.lock().unwrap_or_else(|e| e.into_inner())
}

/// Claims the acknowledged end once the writer has been idle a little, and
/// syncs the claim; skips it when a batch's fsync came in between (the
/// next idle moment claims).
fn sync_idle_checkpoints(
    rx: std_mpsc::Receiver<u64>,
    (claim, durable, fsyncs): (Arc<Mutex<Claim>>, Arc<AtomicU64>, Arc<AtomicU64>),
) {
    while let Ok(first) = rx.recv() {
        std::thread::sleep(IDLE_SYNC_DELAY);
        let seen = rx.try_iter().last().unwrap_or(first);
        if fsyncs.load(Ordering::Acquire) != seen {
            continue;
        }
        let mut claim = lock(&claim);
        let end = durable.load(Ordering::Acquire);
        if let Err(e) = claim.advance(end).and_then(|()| claim.file.sync_data()) {
            tracing::error!("writing the checkpoint failed: {e}");
        }
    }
}
