//! One segment file's layout: a header that names the format and the
//! segment's base position, then records back to back.
//!
//! Format 2 (`XCHGLOG2`, written by this version) keeps two *checkpoint
//! slots* in its 64-byte header. A slot says "every record of this segment
//! before position `end` was on disk when this was written", and carries a
//! sequence number and a CRC-32. The writer only ever claims an end that an
//! earlier fsync made durable, and fills the slots in turn, so a slot torn
//! by a power cut leaves the other one standing. Recovery trusts the valid
//! slot with the highest sequence number: damage before it is corruption of
//! acknowledged data, damage after it a torn tail.
//!
//! Format 1 (`XCHGLOG1`, a 16-byte header and no slots) is still read, so
//! logs written before checkpoints existed open unchanged; since nothing
//! in them says how far they were acknowledged, every byte of them is
//! treated as acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC_V1: &[u8; 8] = b"XCHGLOG1";
const MAGIC_V2: &[u8; 8] = b"XCHGLOG2";
const HEADER_V1: u64 = 16;
/// Bytes before the first record of a segment written by this version.
pub const HEADER: u64 = 64;
/// Where each checkpoint slot lies in a format-2 header.
const SLOTS: [u64; 2] = [16, 40];
const SLOT_LEN: usize = 24;

/// A checkpoint: how far the segment is known to be on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub seq: u64,
    /// An absolute log position.
    pub end: u64,
}

/// What a segment's header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub base: u64,
    /// Where the first record starts, as a log position.
    pub data_start: u64,
    /// `None` for format 1, which has no checkpoint slots.
    pub checkpoint: Option<Checkpoint>,
}

/// Why a header cannot be read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the segment is shorter than its header ({0} bytes)")]
    Short(usize),
    #[error("the segment does not start with a known format marker")]
    Magic,
    #[error("the header names base position {found}, the file name {named}")]
    Base { found: u64, named: u64 },
    #[error("both checkpoint slots of the header are damaged")]
    Slots,
}

/// The file holding the segment that starts at `base`.
pub fn path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

/// The base position a segment file name stands for: exactly twenty digits
/// and `.seg`. `None` for any other name.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Reads the header at the start of a segment named for `named`.
pub fn read_header(bytes: &[u8], named: u64) -> Result<Header, HeaderError> {
    let magic = bytes.get(..8).ok_or(HeaderError::Short(bytes.len()))?;
    let len = if magic == MAGIC_V2 {
        HEADER
    } else if magic == MAGIC_V1 {
        HEADER_V1
    } else {
        return Err(HeaderError::Magic);
    };
    if (bytes.len() as u64) < len {
        return Err(HeaderError::Short(bytes.len()));
    }
    let base = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if base != named {
        return Err(HeaderError::Base { found: base, named });
    }
    let checkpoint = if len == HEADER {
        let best = SLOTS
            .iter()
            .filter_map(|at| decode_slot(&bytes[*at as usize..*at as usize + SLOT_LEN]))
            .max_by_key(|c| c.seq);
        Some(best.ok_or(HeaderError::Slots)?)
    } else {
        None
    };
    Ok(Header {
        base,
        data_start: base + len,
        checkpoint,
    })
}

fn decode_slot(slot: &[u8]) -> Option<Checkpoint> {
    let seq = u64::from_le_bytes(slot[0..8].try_into().expect("8 bytes"));
    let end = u64::from_le_bytes(slot[8..16].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(slot[16..20].try_into().expect("4 bytes"));
    (crc32fast::hash(&slot[..16]) == crc).then_some(Checkpoint { seq, end })
}

fn encode_slot(c: Checkpoint) -> [u8; SLOT_LEN] {
    let mut slot = [0u8; SLOT_LEN];
    slot[0..8].copy_from_slice(&c.seq.to_le_bytes());
    slot[8..16].copy_from_slice(&c.end.to_le_bytes());
    let crc = crc32fast::hash(&slot[..16]);
    slot[16..20].copy_from_slice(&crc.to_le_bytes());
    slot
}

/// Writes checkpoint `c` into its slot (the two slots take turns by
/// sequence number). It is durable once the file is next synced.
pub fn write_checkpoint(file: &File, c: Checkpoint) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(&encode_slot(c), SLOTS[(c.seq % 2) as usize])
}

/// Creates the segment starting at `base`, in format 2, with its header on
/// disk before it returns (its first checkpoint says it holds nothing yet).
pub fn create(dir: &Path, base: u64) -> io::Result<Arc<File>> {
    let path = path(dir, base);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // A half-made segment would block the next try (and confuse recovery).
    initialise(file, dir, base).inspect_err(|_| {
        let _ = std::fs::remove_file(&path);
    })
}

fn initialise(mut file: File, dir: &Path, base: u64) -> io::Result<Arc<File>> {
    let mut header = [0u8; HEADER as usize];
    header[..8].copy_from_slice(MAGIC_V2);
    header[8..16].copy_from_slice(&base.to_le_bytes());
    let first = encode_slot(Checkpoint {
        seq: 0,
        end: base + HEADER,
    });
    header[SLOTS[0] as usize..SLOTS[0] as usize + SLOT_LEN].copy_from_slice(&first);
    file.write_all(&header)?;
    file.sync_all()?;
    sync_dir(dir)?;
    Ok(Arc::new(file))
}

/// Makes the directory's entries (files created or removed) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_twenty_digits() {
        assert_eq!(parse_name("00000000000000000064.seg"), Some(64));
        assert_eq!(parse_name("64.seg"), None);
        assert_eq!(parse_name("0000000000000000006x.seg"), None);
        assert_eq!(parse_name("00000000000000000064.seg.tmp"), None);
    }

    #[test]
    fn the_newest_valid_slot_wins_and_a_torn_one_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = create(dir.path(), 128).unwrap();
        let read = || read_header(&std::fs::read(path(dir.path(), 128)).unwrap(), 128);
        assert_eq!(read().unwrap().checkpoint.unwrap().end, 128 + HEADER);
        write_checkpoint(&file, Checkpoint { seq: 1, end: 500 }).unwrap();
        write_checkpoint(&file, Checkpoint { seq: 2, end: 900 }).unwrap();
        assert_eq!(
            read().unwrap().checkpoint,
            Some(Checkpoint { seq: 2, end: 900 })
        );
        // Tear the newest slot: the one before it stands.
        use std::os::unix::fs::FileExt;
        file.write_all_at(&[0xff], SLOTS[0] + 9).unwrap();
        assert_eq!(
            read().unwrap().checkpoint,
            Some(Checkpoint { seq: 1, end: 500 })
        );
        file.write_all_at(&[0xff], SLOTS[1] + 9).unwrap();
        assert_eq!(read(), Err(HeaderError::Slots));
        assert_eq!(
            read_header(&std::fs::read(path(dir.path(), 128)).unwrap(), 64),
            Err(HeaderError::Base {
                found: 128,
                named: 64
            })
        );
    }
}
