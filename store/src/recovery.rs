//! Reading a log directory back on start: which records it holds, how far
//! they were acknowledged, and whether damage is a torn tail (cut) or
//! corruption of acknowledged data (refuse, change nothing).
//!
//! The rules, per segment in position order:
//! - segments are named `NNNNNNNNNNNNNNNNNNNN.seg` and each starts exactly
//!   where the one before it ended; a gap, an overlap, a misnamed file or a
//!   bad header is corruption;
//! - a segment followed by another was sealed when the log moved on, so
//!   every byte of it is acknowledged: any unreadable record is corruption;
//! - in the last segment, records before its checkpoint are acknowledged
//!   (damage there is corruption); the first unreadable record after it
//!   starts a torn tail, which is all that may be cut;
//! - a last segment too short to hold its header is one whose creation a
//!   crash interrupted: it never held a record and is removed.
//!
//! A sealed segment whose seal ([`crate::seal`]) still matches its bytes
//! is not read record by record at start: the seal says what it holds. Its
//! bytes are still read and checked against the seal's CRC-32, so damage
//! there is refused all the same (it is then read record by record, which
//! says where).
//!
//! [`examine`] only reads. The store opens through [`read_back`] (which
//! only reads too) and then cuts the tail; `store verify` prints what
//! [`examine`] found, reading every record; [`repair`] is the one way to
//! cut acknowledged data, at a position a person chose.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::record::StoredEvent;
use crate::seal::{self, Seal};
use crate::segment::{self, Checkpoint, HEADER, Header};

/// Where the log is damaged and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corruption {
    pub file: PathBuf,
    /// Byte offset in `file`.
    pub offset: u64,
    /// The log position of that byte (the `$all` position a record there
    /// would have).
    pub position: u64,
    pub problem: String,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte offset {} (log position {}): {}",
            self.file.display(),
            self.offset,
            self.position,
            self.problem
        )
    }
}

/// Why a log could not be opened, verified or repaired.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "the event log is damaged where it holds acknowledged events: {0}. \
         Nothing on disk was changed. `store verify --data DIR` reports the \
         damage; `store repair --data DIR --truncate-at POSITION` cuts the log \
         at a position you choose, losing every event from there on"
    )]
    Corrupt(Corruption),
    #[error("cannot cut the log at position {position}: {why}")]
    BadCut { position: u64, why: String },
    #[error(
        "the event log in {} is open in another store (this process or another); \
         stop that one first",
        dir.display()
    )]
    InUse { dir: PathBuf },
}

/// The file in a log directory whose lock says who may write there.
pub const LOCK_FILE: &str = "LOCK";

/// Locks `dir` for one writer, held until the returned file is dropped. Two
/// stores on one directory (or a repair beside a running store) would each
/// write the same segments and destroy what the other acknowledged, so the
/// second is refused. The lock is `flock`'s: it goes with the process, so a
/// killed store never leaves a stale one behind.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, LogError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_at(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(LogError::InUse {
            dir: dir.to_path_buf(),
        }),
        Err(fs::TryLockError::Error(e)) => Err(io_at(&path)(e)),
    }
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One segment as found.
#[derive(Clone, Debug)]
pub struct Segment {
    pub base: u64,
    pub path: PathBuf,
    pub data_start: u64,
    /// `None` for a format-1 segment, which has no checkpoint slots.
    pub checkpoint: Option<Checkpoint>,
}

/// What lies after the acknowledged log and may be cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// Unreadable bytes after the last segment's checkpoint: a write that
    /// was never acknowledged.
    Torn {
        file: PathBuf,
        offset: u64,
        position: u64,
        bytes: u64,
    },
    /// A last segment whose header never reached the disk.
    Unfinished { file: PathBuf, bytes: u64 },
}

/// What a log directory holds.
#[derive(Debug, Default)]
pub struct Examined {
    pub segments: Vec<Segment>,
    pub records: u64,
    /// Everything before this position is acknowledged and was read back.
    pub checkpoint: u64,
    /// The position after the last readable record.
    pub end: u64,
    pub tail: Option<Tail>,
    /// With a cut position: the segments wholly after it.
    pub beyond: Vec<PathBuf>,
}

/// What a start finds in the log, in order.
pub enum Found<'a> {
    /// A record read back.
    Record(StoredEvent),
    /// A sealed segment's records, from its seal, which matched it.
    Sealed(&'a Seal),
    /// A sealed segment without a seal that matched it, read record by
    /// record (its records follow), by its base: one to seal.
    Unsealed(u64),
}

/// Reads every segment of `dir`, calling `each` with every readable record
/// in order. Changes nothing.
pub fn examine(dir: &Path, mut each: impl FnMut(StoredEvent)) -> Result<Examined, LogError> {
    walk(dir, None, false, |found| {
        if let Found::Record(e) = found {
            each(e);
        }
    })
}

/// What [`examine`] does for a start: the same checks, except that a
/// sealed segment whose seal matches it is not read record by record.
/// Changes nothing.
pub fn read_back(dir: &Path, each: impl FnMut(Found<'_>)) -> Result<Examined, LogError> {
    walk(dir, None, true, each)
}

/// The segment files of `dir` by base position. Another file ending in
/// `.seg` is a misnamed segment, which is corruption.
fn segment_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_at(dir))? {
        let entry = entry.map_err(io_at(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.ends_with(".seg") {
            continue;
        }
        match segment::parse_name(name) {
            Some(base) => found.push((base, entry.path())),
            None => {
                return Err(LogError::Corrupt(Corruption {
                    file: entry.path(),
                    offset: 0,
                    position: 0,
                    problem: "a segment file whose name is not twenty digits and `.seg`".into(),
                }));
            }
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Reads `dir`; with `stop`, only what lies before that position (every
/// byte of which must be readable, ending on a record boundary).
/// With `seals`, a sealed segment is taken from its seal where that
/// matches, and otherwise read and said to want one ([`Found::Unsealed`]).
fn walk(
    dir: &Path,
    stop: Option<u64>,
    seals: bool,
    mut each: impl FnMut(Found<'_>),
) -> Result<Examined, LogError> {
    let files = segment_files(dir)?;
    let mut out = Examined::default();
    let mut expected = 0u64;
    let count = files.len();
    let mut reused = Vec::new();
    // What a seal must match, for every segment followed by another.
    let sealed: Vec<PathBuf> = match seals && stop.is_none() {
        true => files[..count.saturating_sub(1)]
            .iter()
            .map(|(_, p)| p.clone())
            .collect(),
        false => Vec::new(),
    };
    let checksums = seal::checksums(&sealed);
    for (i, (base, path)) in files.into_iter().enumerate() {
        let corrupt = |offset: u64, problem: String| {
            LogError::Corrupt(Corruption {
                file: path.clone(),
                offset,
                position: base + offset,
                problem,
            })
        };
        if stop.is_some_and(|p| base >= p) {
            out.beyond.push(path);
            continue;
        }
        let last = i + 1 == count;
        if base != expected {
            return Err(LogError::Corrupt(Corruption {
                file: path.clone(),
                offset: 0,
                position: expected,
                problem: if base > expected {
                    format!("the segment holding log positions {expected} to {base} is missing")
                } else {
                    format!("the segment overlaps the one before it, which ends at {expected}")
                },
            }));
        }
        // A segment followed by another never changes again: one whose
        // seal matches it is read for its header alone.
        let checksum = checksums.get(i).copied().flatten();
        let seal = checksum.and_then(|c| {
            let seal = seal::read(dir, base)?;
            let matches = seal.matches(base, c);
            if !matches {
                tracing::warn!(segment = %path.display(), "the segment's bytes are not those its seal names; reading it record by record");
            }
            matches.then_some(seal)
        });
        if i < checksums.len() && seal.is_none() {
            each(Found::Unsealed(base));
        }
        // One buffer for every segment (they are all of a size): a fresh
        // one each time was mostly the kernel zeroing and mapping 64 MB of
        // new pages per segment.
        reused.clear();
        File::open(&path)
            .and_then(|mut file| match &seal {
                Some(_) => file.take(HEADER).read_to_end(&mut reused),
                None => file.read_to_end(&mut reused),
            })
            .map_err(io_at(&path))?;
        let bytes = bytes::Bytes::from(std::mem::take(&mut reused));
        let file_len = seal.as_ref().map_or(bytes.len() as u64, |s| s.len);
        let file_end = base + file_len;
        let header: Header = match segment::read_header(&bytes, base) {
            Ok(h) => h,
            Err(_) if last && stop.is_none() && file_len <= HEADER => {
                out.tail = Some(Tail::Unfinished {
                    file: path,
                    bytes: file_len,
                });
                break;
            }
            Err(e) => return Err(corrupt(0, e.to_string())),
        };
        // How far every record must be readable.
        let must = match stop {
            Some(p) => p.min(file_end),
            None if !last => file_end,
            // Format 1 says nothing of acknowledgement: all of it counts.
            None => header.checkpoint.map_or(file_end, |c| c.end),
        };
        if let Some(c) = header.checkpoint
            && stop.is_none()
        {
            if c.end < header.data_start {
                return Err(corrupt(
                    0,
                    format!("the checkpoint ({}) lies inside the header", c.end),
                ));
            }
            if c.end > file_end {
                return Err(corrupt(
                    file_len,
                    format!(
                        "the segment ends here but its checkpoint says it was on disk up to \
                         position {}: acknowledged bytes are missing",
                        c.end
                    ),
                ));
            }
        }
        let mut at = header.data_start;
        if let Some(seal) = &seal {
            out.records += seal.records() as u64;
            each(Found::Sealed(seal));
            at = file_end;
        }
        while at < file_end && stop.is_none_or(|p| at < p) {
            let offset = at - base;
            match StoredEvent::decode(&bytes.slice(offset as usize..), at) {
                Ok((event, len)) => {
                    let next = at + len as u64;
                    if at < must && next > must {
                        return Err(match stop {
                            Some(p) => LogError::BadCut {
                                position: p,
                                why: format!(
                                    "it is not where a record starts (the record at {at} ends at {next})"
                                ),
                            },
                            None => corrupt(
                                offset,
                                format!("a record runs across the checkpoint at {must}"),
                            ),
                        });
                    }
                    out.records += 1;
                    each(Found::Record(event));
                    at = next;
                }
                Err(e) if at < must => {
                    return Err(corrupt(
                        offset,
                        format!(
                            "the record there is unreadable ({e}) but lies before position \
                             {must}, up to which the log was acknowledged"
                        ),
                    ));
                }
                Err(_) => {
                    out.tail = Some(Tail::Torn {
                        file: path.clone(),
                        offset,
                        position: at,
                        bytes: file_end - at,
                    });
                    break;
                }
            }
        }
        out.checkpoint = must.min(at);
        out.end = at;
        expected = at;
        // The buffer back for the next segment (every record read from it
        // was dropped by now; if not, the next gets a new one).
        reused = bytes.try_into_mut().map(Vec::from).unwrap_or_default();
        out.segments.push(Segment {
            base,
            path,
            data_start: header.data_start,
            checkpoint: header.checkpoint,
        });
    }
    if let Some(p) = stop
        && out.end != p
    {
        return Err(LogError::BadCut {
            position: p,
            why: if p > out.end {
                format!("the readable log ends at position {}", out.end)
            } else {
                "it lies inside a segment's header".into()
            },
        });
    }
    Ok(out)
}

/// What a repair cut.
#[derive(Debug, PartialEq, Eq)]
pub struct Repaired {
    /// Records still in the log.
    pub records: u64,
    /// Bytes removed from the segment the cut fell in.
    pub cut_bytes: u64,
    /// Segment files removed because they lay wholly after the cut.
    pub removed: Vec<PathBuf>,
}

/// Cuts the log at `position`, which must be where a record starts (or
/// where the readable log ends), with every record before it readable.
/// Everything from there on is removed, acknowledged or not.
pub fn repair(dir: &Path, position: u64) -> Result<Repaired, LogError> {
    let _writing = lock_dir(dir)?;
    let found = walk(dir, Some(position), false, |_| {})?;
    let Some(seg) = found.segments.last() else {
        return Err(LogError::BadCut {
            position,
            why: "the log has no segment before it".into(),
        });
    };
    // The seals of what changes go first: a seal never outlives its bytes.
    let bases = found.beyond.iter().filter_map(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(segment::parse_name)
    });
    for base in bases.chain([seg.base]) {
        seal::remove(dir, base).map_err(io_at(&seal::path(dir, base)))?;
    }
    segment::sync_dir(dir).map_err(io_at(dir))?;
    let file = OpenOptions::new()
        .write(true)
        .open(&seg.path)
        .map_err(io_at(&seg.path))?;
    let len = file.metadata().map_err(io_at(&seg.path))?.len();
    let keep = position - seg.base;
    file.set_len(keep).map_err(io_at(&seg.path))?;
    if let Some(c) = seg.checkpoint {
        // Both slots, so neither still claims more than is left.
        for seq in [c.seq + 1, c.seq + 2] {
            segment::write_checkpoint(&file, Checkpoint { seq, end: position })
                .map_err(io_at(&seg.path))?;
        }
    }
    file.sync_all().map_err(io_at(&seg.path))?;
    for path in found.beyond.iter().rev() {
        fs::remove_file(path).map_err(io_at(path))?;
    }
    segment::sync_dir(dir).map_err(io_at(dir))?;
    Ok(Repaired {
        records: found.records,
        cut_bytes: len.saturating_sub(keep),
        removed: found.beyond,
    })
}
