//! The append-only, segmented log every event lives in.
//!
//! The log is a sequence of segment files, `NNNNNNNNNNNNNNNNNNNN.seg`, named
//! by the position of their first byte. Each starts with a 16-byte header
//! (magic and base position) followed by records back to back. An event's
//! `$all` position is the position of its record, so positions are strictly
//! increasing, never zero, and survive restarts unchanged.
//!
//! Only the writer appends; any number of readers read concurrently through
//! [`Segments`], which share the open files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::record::{HEADER, RecordError, StoredEvent};

const MAGIC: &[u8; 8] = b"XCHGLOG1";
const SEGMENT_HEADER: u64 = 16;
/// A segment is closed and a new one started once it reaches this size
/// (by default; see [`crate::Options`]).
pub const SEGMENT_SIZE: u64 = 64 * 1024 * 1024;

/// Each segment's base position and open file, in order.
type SegmentList = Vec<(u64, Arc<File>)>;

/// The open segment files, shared between the writer and readers.
#[derive(Clone, Default)]
pub struct Segments(Arc<RwLock<SegmentList>>);

impl Segments {
    fn file_for(&self, position: u64) -> Option<(u64, Arc<File>)> {
        let segs = self.0.read().expect("segment list lock");
        let i = segs
            .partition_point(|(base, _)| *base <= position)
            .checked_sub(1)?;
        Some((segs[i].0, segs[i].1.clone()))
    }

    /// Reads the record at `position`.
    pub fn read_at(&self, position: u64) -> io::Result<StoredEvent> {
        let (base, file) = self
            .file_for(position)
            .ok_or_else(|| corrupt("position before the log"))?;
        let offset = position - base;
        let mut header = [0u8; HEADER];
        file.read_exact_at(&mut header, offset)?;
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let mut buf = vec![0u8; HEADER + len];
        file.read_exact_at(&mut buf, offset)?;
        StoredEvent::decode(&buf, position)
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
        let mut buf = Vec::new();
        while from < to {
            let (base, file) = self
                .file_for(from)
                .ok_or_else(|| corrupt("position before the log"))?;
            let seg_end = {
                let segs = self.0.read().expect("segment list lock");
                segs.iter()
                    .find(|(b, _)| *b > base)
                    .map_or(to, |(b, _)| (*b).min(to))
            };
            let want = (seg_end - from).min(SCAN_CHUNK) as usize;
            buf.resize(want, 0);
            file.read_exact_at(&mut buf, from - base)?;
            let mut at = 0;
            while at < buf.len() {
                match StoredEvent::decode(&buf[at..], from + at as u64) {
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
            if seg_end < to && from >= seg_end {
                // The next segment's first record follows its header.
                from = seg_end + SEGMENT_HEADER;
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
    /// The position the next record will have.
    end: u64,
    segment_size: u64,
}

/// What opening the log found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    pub records: u64,
    /// Bytes cut from a torn or corrupt tail.
    pub truncated_bytes: u64,
}

impl Log {
    /// Opens (or creates) the log in `dir`, calling `each` with every
    /// complete record in order. A torn or corrupt tail is cut back to the
    /// last complete record, and anything after it removed.
    pub fn open(
        dir: &Path,
        segment_size: u64,
        mut each: impl FnMut(StoredEvent),
    ) -> io::Result<(Log, Recovery)> {
        fs::create_dir_all(dir)?;
        let mut bases: Vec<u64> = fs::read_dir(dir)?
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_suffix(".seg")?
                    .parse()
                    .ok()
            })
            .collect();
        bases.sort_unstable();
        let mut recovery = Recovery::default();
        let mut kept: Vec<(u64, Arc<File>)> = Vec::new();
        // Each segment must start exactly where the one before it ended.
        let mut end = 0;
        let mut damaged = false;
        for base in bases {
            let path = segment_path(dir, base);
            if damaged || base != end {
                recovery.truncated_bytes += fs::metadata(&path)?.len();
                fs::remove_file(&path)?;
                damaged = true;
                continue;
            }
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            let bytes = fs::read(&path)?;
            if bytes.len() < SEGMENT_HEADER as usize
                || &bytes[..8] != MAGIC
                || bytes[8..16] != base.to_le_bytes()
            {
                recovery.truncated_bytes += bytes.len() as u64;
                drop(file);
                fs::remove_file(&path)?;
                damaged = true;
                continue;
            }
            let mut at = SEGMENT_HEADER as usize;
            while at < bytes.len() {
                match StoredEvent::decode(&bytes[at..], base + at as u64) {
                    Ok((event, len)) => {
                        at += len;
                        recovery.records += 1;
                        each(event);
                    }
                    Err(_) => {
                        recovery.truncated_bytes += (bytes.len() - at) as u64;
                        file.set_len(at as u64)?;
                        file.sync_all()?;
                        damaged = true;
                        break;
                    }
                }
            }
            end = base + at as u64;
            kept.push((base, Arc::new(file)));
        }
        if damaged {
            sync_dir(dir)?;
        }
        let (active_base, active) = match kept.last() {
            Some((base, file)) => (*base, file.clone()),
            None => {
                let file = create_segment(dir, 0)?;
                kept.push((0, file.clone()));
                end = SEGMENT_HEADER;
                (0, file)
            }
        };
        let log = Log {
            dir: dir.to_path_buf(),
            segments: Segments(Arc::new(RwLock::new(kept))),
            active,
            active_base,
            end,
            segment_size,
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

    /// Makes room for `len` more bytes, starting a new segment when the
    /// active one is full. Returns the position the bytes will start at.
    pub fn reserve(&mut self, len: u64) -> io::Result<u64> {
        let used = self.end - self.active_base;
        if used > SEGMENT_HEADER && used + len > self.segment_size {
            let base = self.end;
            let file = create_segment(&self.dir, base)?;
            self.segments
                .0
                .write()
                .expect("segment list lock")
                .push((base, file.clone()));
            self.active = file;
            self.active_base = base;
            self.end = base + SEGMENT_HEADER;
        }
        Ok(self.end)
    }

    /// Writes `bytes` at the end of the log and waits until they are on
    /// disk. Callers reserve first.
    pub fn write_durably(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.active
            .write_all_at(bytes, self.end - self.active_base)?;
        self.active.sync_data()?;
        self.end += bytes.len() as u64;
        Ok(())
    }
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn create_segment(dir: &Path, base: u64) -> io::Result<Arc<File>> {
    let path = segment_path(dir, base);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    file.write_all(MAGIC)?;
    file.write_all(&base.to_le_bytes())?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Arc::new(file))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
