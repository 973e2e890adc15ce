//! What one append may hold, checked before anything is written, so the
//! store never acknowledges a record it cannot read back (a record keeps
//! stream names and event types behind 16-bit lengths).
//!
//! Both edges use these checks: the gRPC service, as the events arrive (so
//! an oversized append is refused without being held in memory), and
//! [`crate::Store::append`] for in-process callers.

use crate::writer::NewEvent;

/// The largest append accepted: the bytes its records take in the log,
/// each counting [`RECORD_OVERHEAD`], its stream name and type, its
/// metadata and its data. EventStoreDB's default maximum is the same 1 MiB.
/// With the overhead counted, this also bounds the events of one append
/// (at most 1 MiB / 53 B, about 19,800).
pub const MAX_APPEND_SIZE: usize = 1024 * 1024;
/// The longest stream name, in bytes. Far below the format's 65,535 so the
/// metadata stream `$$<name>` the store writes for it fits too.
pub const MAX_STREAM_NAME: usize = 8 * 1024;
/// The longest event type, in bytes.
pub const MAX_EVENT_TYPE: usize = 1024;
/// The longest content type, in bytes (only whether it is JSON is kept).
pub const MAX_CONTENT_TYPE: usize = 256;
/// Bytes a record takes besides its stream name, type, metadata and data.
pub const RECORD_OVERHEAD: usize = crate::record::HEADER + 8 + 8 + 16 + 1 + 2 + 2 + 4 + 4;

/// Why an append (or a stream name) is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the stream name is empty")]
    EmptyStream,
    #[error("the stream name is {0} bytes long; at most {MAX_STREAM_NAME} are allowed")]
    StreamName(usize),
    #[error("the event type is {0} bytes long; at most {MAX_EVENT_TYPE} are allowed")]
    EventType(usize),
    #[error("the content type is {0} bytes long; at most {MAX_CONTENT_TYPE} are allowed")]
    ContentType(usize),
    #[error(
        "the append is larger than {MAX_APPEND_SIZE} bytes (each event counts its stream \
         name, type, metadata, data and {RECORD_OVERHEAD} bytes of record header)"
    )]
    TooLarge,
}

/// Checks a stream name.
pub fn stream_name(name: &[u8]) -> Result<(), Invalid> {
    match name.len() {
        0 => Err(Invalid::EmptyStream),
        n if n > MAX_STREAM_NAME => Err(Invalid::StreamName(n)),
        _ => Ok(()),
    }
}

/// Checks a content type's length.
pub fn content_type(content_type: &str) -> Result<(), Invalid> {
    match content_type.len() {
        n if n > MAX_CONTENT_TYPE => Err(Invalid::ContentType(n)),
        _ => Ok(()),
    }
}

/// The running size of an append to one stream, event by event.
#[derive(Clone, Copy, Debug)]
pub struct AppendSize {
    stream_len: usize,
    total: usize,
}

impl AppendSize {
    /// For an append to `stream`, which must be a valid name.
    pub fn new(stream: &[u8]) -> Result<AppendSize, Invalid> {
        stream_name(stream)?;
        Ok(AppendSize {
            stream_len: stream.len(),
            total: 0,
        })
    }

    /// Counts one more event, refusing it if its type is too long or the
    /// append grows past [`MAX_APPEND_SIZE`].
    pub fn add(&mut self, event: &NewEvent) -> Result<(), Invalid> {
        if event.event_type.len() > MAX_EVENT_TYPE {
            return Err(Invalid::EventType(event.event_type.len()));
        }
        self.total += RECORD_OVERHEAD
            + self.stream_len
            + event.event_type.len()
            + event.custom_metadata.len()
            + event.data.len();
        if self.total > MAX_APPEND_SIZE {
            return Err(Invalid::TooLarge);
        }
        Ok(())
    }
}

/// Checks a whole append.
pub fn append(stream: &[u8], events: &[NewEvent]) -> Result<(), Invalid> {
    let mut size = AppendSize::new(stream)?;
    events.iter().try_for_each(|e| size.add(e))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::record::StoredEvent;

    fn event(data: usize) -> NewEvent {
        NewEvent {
            id: 1,
            event_type: Bytes::from_static(b"T"),
            is_json: false,
            custom_metadata: Bytes::from_static(b"m"),
            data: Bytes::from(vec![0; data]),
        }
    }

    #[test]
    fn the_overhead_is_what_a_record_takes() {
        let e = event(10);
        let record = StoredEvent {
            position: 0,
            stream: Bytes::from_static(b"stream"),
            revision: 0,
            id: e.id,
            event_type: e.event_type.clone(),
            is_json: e.is_json,
            created: 0,
            custom_metadata: e.custom_metadata.clone(),
            data: e.data.clone(),
        };
        assert_eq!(record.encoded_len(), RECORD_OVERHEAD + 6 + 1 + 1 + 10);
    }

    #[test]
    fn an_append_fits_exactly_up_to_the_limit() {
        let stream = b"s";
        let fits = MAX_APPEND_SIZE - RECORD_OVERHEAD - 1 - 1 - 1;
        assert_eq!(append(stream, &[event(fits)]), Ok(()));
        assert_eq!(append(stream, &[event(fits + 1)]), Err(Invalid::TooLarge));
        // Many empty events add up through their overhead.
        let many = vec![event(0); MAX_APPEND_SIZE / (RECORD_OVERHEAD + 3) + 1];
        assert_eq!(append(stream, &many), Err(Invalid::TooLarge));
        assert_eq!(append(b"", &[]), Err(Invalid::EmptyStream));
        let long = vec![b'x'; MAX_STREAM_NAME + 1];
        assert_eq!(
            append(&long, &[]),
            Err(Invalid::StreamName(MAX_STREAM_NAME + 1))
        );
    }
}
