//! One event as it lies in the log: a length, a CRC-32 of the payload, then
//! the payload. The checksum is what lets recovery tell a complete record
//! from a torn or corrupted one.

use bytes::{Buf, BufMut, Bytes};

/// Bytes before a record's payload: its length and its checksum.
pub const HEADER: usize = 8;

/// An event stored in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Where the record starts in the log: its `$all` position.
    pub position: u64,
    pub stream: Bytes,
    pub revision: u64,
    /// The event id, as the 16 big-endian bytes of the UUID.
    pub id: u128,
    pub event_type: Bytes,
    pub is_json: bool,
    /// 100-nanosecond ticks since the Unix epoch.
    pub created: i64,
    pub custom_metadata: Bytes,
    pub data: Bytes,
}

/// Why bytes are not a record.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record is incomplete")]
    Torn,
    #[error("record checksum does not match")]
    Checksum,
    #[error("record payload is malformed")]
    Malformed,
}

impl StoredEvent {
    /// Appends the record (header and payload) to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; HEADER]);
        out.put_u64_le(self.revision);
        out.put_i64_le(self.created);
        out.put_u128(self.id);
        out.put_u8(u8::from(self.is_json));
        put_bytes_u16(out, &self.stream);
        put_bytes_u16(out, &self.event_type);
        put_bytes_u32(out, &self.custom_metadata);
        put_bytes_u32(out, &self.data);
        let payload_len = (out.len() - start - HEADER) as u32;
        let crc = crc32fast::hash(&out[start + HEADER..]);
        out[start..start + 4].copy_from_slice(&payload_len.to_le_bytes());
        out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    }

    /// Bytes the record takes in the log.
    pub fn encoded_len(&self) -> usize {
        HEADER
            + 8
            + 8
            + 16
            + 1
            + 2
            + self.stream.len()
            + 2
            + self.event_type.len()
            + 4
            + self.custom_metadata.len()
            + 4
            + self.data.len()
    }

    /// Reads the record at the start of `buf` (which starts at `position`),
    /// returning it and its length in bytes. The event's fields are slices
    /// of `buf`, not copies: opening a log decodes every record, and four
    /// allocations and copies each were most of what that cost. Whoever
    /// keeps a field for long copies it (as the index does a stream's
    /// name), so as not to keep the whole buffer alive.
    pub fn decode(buf: &Bytes, position: u64) -> Result<(StoredEvent, usize), RecordError> {
        if buf.len() < HEADER {
            return Err(RecordError::Torn);
        }
        let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
        let Some(payload) = buf.get(HEADER..HEADER + len) else {
            return Err(RecordError::Torn);
        };
        if crc32fast::hash(payload) != crc {
            return Err(RecordError::Checksum);
        }
        let payload = buf.slice(HEADER..HEADER + len);
        let event = decode_payload(payload, position).ok_or(RecordError::Malformed)?;
        Ok((event, HEADER + len))
    }
}

fn decode_payload(mut p: Bytes, position: u64) -> Option<StoredEvent> {
    if p.remaining() < 8 + 8 + 16 + 1 {
        return None;
    }
    let revision = p.get_u64_le();
    let created = p.get_i64_le();
    let id = p.get_u128();
    let is_json = p.get_u8() == 1;
    let stream = get_bytes(&mut p, 2)?;
    let event_type = get_bytes(&mut p, 2)?;
    let custom_metadata = get_bytes(&mut p, 4)?;
    let data = get_bytes(&mut p, 4)?;
    p.is_empty().then_some(StoredEvent {
        position,
        stream,
        revision,
        id,
        event_type,
        is_json,
        created,
        custom_metadata,
        data,
    })
}

fn put_bytes_u16(out: &mut Vec<u8>, b: &[u8]) {
    out.put_u16_le(b.len() as u16);
    out.extend_from_slice(b);
}

fn put_bytes_u32(out: &mut Vec<u8>, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.extend_from_slice(b);
}

fn get_bytes(p: &mut Bytes, width: usize) -> Option<Bytes> {
    if p.remaining() < width {
        return None;
    }
    let len = if width == 2 {
        p.get_u16_le() as usize
    } else {
        p.get_u32_le() as usize
    };
    if p.remaining() < len {
        return None;
    }
    Some(p.split_to(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> StoredEvent {
        StoredEvent {
            position: 16,
            stream: Bytes::from_static(b"orderbook-BTC-USD"),
            revision: 7,
            id: 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef,
            event_type: Bytes::from_static(b"TradeExecuted"),
            is_json: true,
            created: 17_000_000_000_000_000,
            custom_metadata: Bytes::new(),
            data: Bytes::from_static(br#"{"price":"1"}"#),
        }
    }

    #[test]
    fn records_round_trip() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        assert_eq!(buf.len(), sample().encoded_len());
        let len = buf.len();
        assert_eq!(
            StoredEvent::decode(&Bytes::from(buf), 16),
            Ok((sample(), len))
        );
    }

    #[test]
    fn torn_and_corrupt_records_are_detected() {
        let mut buf = Vec::new();
        sample().encode(&mut buf);
        for cut in [0, 3, HEADER, buf.len() - 1] {
            assert_eq!(
                StoredEvent::decode(&Bytes::copy_from_slice(&buf[..cut]), 16),
                Err(RecordError::Torn),
                "cut at {cut}"
            );
        }
        let last = buf.len() - 1;
        buf[last] ^= 0xff;
        assert_eq!(
            StoredEvent::decode(&Bytes::from(buf), 16),
            Err(RecordError::Checksum)
        );
    }
}
