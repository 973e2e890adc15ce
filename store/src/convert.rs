//! Between protocol messages and the store's own types, both ways: what a
//! request asks (its expected revision, its proposed events, its read
//! options), and the events and errors a reply carries, worded as
//! EventStoreDB words them.

use std::collections::HashMap;

use bytes::Bytes;
use tonic::{Code, Status};

use crate::filter::Filter;
use crate::limits::{self, AppendSize, Invalid, MAX_APPEND_SIZE};
use crate::proto::streams::append_resp;
use crate::proto::streams::read_req::{
    Options as ReadOptions,
    options::{self as read_options, AllOptions, StreamOptions, all_options, stream_options},
};
use crate::proto::streams::read_resp::read_event::RecordedEvent;
use crate::proto::streams::read_resp::{self, ReadEvent};
use crate::proto::{Empty, StreamIdentifier, Uuid, uuid};
use crate::record::StoredEvent;
use crate::store::{AllStart, Direction, StreamStart};
use crate::writer::{Expected, NewEvent};

/// Reads a UUID in either of the protocol's forms, as 16 big-endian bytes.
pub fn uuid_from(id: Option<&Uuid>) -> Result<u128, Status> {
    match id.and_then(|u| u.value.as_ref()) {
        Some(uuid::Value::Structured(s)) => Ok((u128::from(s.most_significant_bits as u64) << 64)
            | u128::from(s.least_significant_bits as u64)),
        Some(uuid::Value::String(s)) => {
            let hex: String = s.chars().filter(|c| *c != '-').collect();
            if hex.len() != 32 {
                return Err(Status::invalid_argument(format!(
                    "event id {s:?} is not a UUID"
                )));
            }
            u128::from_str_radix(&hex, 16)
                .map_err(|_| Status::invalid_argument(format!("event id {s:?} is not a UUID")))
        }
        None => Err(Status::invalid_argument("event id is missing")),
    }
}

/// A UUID in the form the reader asked for.
pub fn uuid_to(id: u128, structured: bool) -> Uuid {
    let value = if structured {
        uuid::Value::Structured(uuid::Structured {
            most_significant_bits: (id >> 64) as u64 as i64,
            least_significant_bits: id as u64 as i64,
        })
    } else {
        // Hyphenated lowercase hex, written directly: every event a read
        // sends carries one, and formatting it through `format!` twice was
        // a visible share of a read's time.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(36);
        for i in 0..32 {
            if matches!(i, 8 | 12 | 16 | 20) {
                s.push('-');
            }
            s.push(char::from(HEX[((id >> (124 - 4 * i)) & 0xf) as usize]));
        }
        uuid::Value::String(s)
    };
    Uuid { value: Some(value) }
}

pub fn stream_id(name: &bytes::Bytes) -> StreamIdentifier {
    StreamIdentifier {
        stream_name: name.clone(),
    }
}

pub fn read_event(e: &StoredEvent, structured_ids: bool) -> read_resp::Content {
    let metadata = HashMap::from([
        (
            "type".to_string(),
            String::from_utf8_lossy(&e.event_type).into_owned(),
        ),
        (
            "content-type".to_string(),
            if e.is_json {
                "application/json"
            } else {
                "application/octet-stream"
            }
            .to_string(),
        ),
        ("created".to_string(), e.created.to_string()),
    ]);
    read_resp::Content::Event(ReadEvent {
        event: Some(RecordedEvent {
            id: Some(uuid_to(e.id, structured_ids)),
            stream_identifier: Some(stream_id(&e.stream)),
            stream_revision: e.revision,
            prepare_position: e.position,
            commit_position: e.position,
            metadata,
            custom_metadata: e.custom_metadata.clone(),
            data: e.data.clone(),
        }),
        link: None,
        position: Some(read_resp::read_event::Position::CommitPosition(e.position)),
    })
}

pub fn empty() -> Empty {
    Empty {}
}

/// An error status with the `exception` metadata clients map on.
pub fn exception(
    code: tonic::Code,
    message: impl Into<String>,
    exception: &str,
    extra: &[(&str, String)],
) -> Status {
    let mut status = Status::new(code, message);
    let md = status.metadata_mut();
    if let Ok(v) = exception.parse() {
        md.insert("exception", v);
    }
    for (k, v) in extra {
        if let (Ok(k), Ok(v)) = (
            tonic::metadata::MetadataKey::from_bytes(k.as_bytes()),
            v.parse(),
        ) {
            md.insert(k, v);
        }
    }
    status
}

pub fn stream_deleted(stream: &bytes::Bytes) -> Status {
    exception(
        tonic::Code::FailedPrecondition,
        format!("stream '{}' is deleted", String::from_utf8_lossy(stream)),
        "stream-deleted",
        &[("stream-name", String::from_utf8_lossy(stream).into_owned())],
    )
}

/// The expected revision in any of the generated request types (append,
/// delete, tombstone, and batch append, which names the exact revision
/// `StreamPosition`): they share the shape but not the type.
macro_rules! expected_of {
    ($value:expr, $enum:path) => {
        expected_of!($value, $enum, Revision)
    };
    ($value:expr, $enum:path, $exact:ident) => {{
        use $enum as E;
        match $value {
            Some(E::$exact(r)) => Expected::Exact(r),
            Some(E::NoStream(_)) => Expected::NoStream,
            Some(E::StreamExists(_)) => Expected::StreamExists,
            Some(E::Any(_)) | None => Expected::Any,
        }
    }};
}
pub(crate) use expected_of;

/// One proposed event of an append (of either append call), counted into
/// `size`, the append's running size, which refuses it if the append would
/// no longer fit the limits (see [`crate::limits`]).
pub fn proposed_event(
    id: Option<&Uuid>,
    metadata: &HashMap<String, String>,
    custom_metadata: Bytes,
    data: Bytes,
    size: &mut AppendSize,
) -> Result<NewEvent, Status> {
    let id = uuid_from(id)?;
    let (Some(event_type), Some(content_type)) =
        (metadata.get("type"), metadata.get("content-type"))
    else {
        return Err(exception(
            Code::InvalidArgument,
            "an event needs the type and content-type metadata",
            "missing-required-metadata-property",
            &[],
        ));
    };
    limits::content_type(content_type).map_err(invalid)?;
    let event = NewEvent {
        id,
        event_type: Bytes::copy_from_slice(event_type.as_bytes()),
        is_json: content_type == "application/json",
        custom_metadata,
        data,
    };
    size.add(&event).map_err(invalid)?;
    Ok(event)
}

/// The status for a request over the limits: EventStoreDB's own exception
/// for an oversized append, INVALID_ARGUMENT with the reason for the rest.
pub fn invalid(e: Invalid) -> Status {
    match e {
        Invalid::TooLarge => exception(
            Code::InvalidArgument,
            e.to_string(),
            "maximum-append-size-exceeded",
            &[("maximum-append-size", MAX_APPEND_SIZE.to_string())],
        ),
        e => Status::invalid_argument(e.to_string()),
    }
}

pub fn store_status(e: crate::store::StoreError) -> Status {
    match e {
        crate::store::StoreError::Invalid(e) => invalid(e),
        e => Status::unavailable(e.to_string()),
    }
}

/// A wrong-expected-version reply for a delete or tombstone, worded as
/// EventStoreDB words it: clients parse the message (the Python client
/// reads the versions from it, and an actual version of -1 as "not found").
pub fn delete_conflict(
    operation: &str,
    stream: &[u8],
    current: Option<u64>,
    expected: Expected,
) -> Status {
    let actual = current.map_or("-1".to_string(), |c| c.to_string());
    let expected = match expected {
        Expected::Any => "-2".to_string(),
        Expected::NoStream => "-1".to_string(),
        Expected::StreamExists => "-4".to_string(),
        Expected::Exact(e) => e.to_string(),
    };
    exception(
        Code::FailedPrecondition,
        format!(
            "{operation} failed due to WrongExpectedVersion. Stream: {}, Expected version: \
             {expected}, Actual version: {actual}",
            String::from_utf8_lossy(stream)
        ),
        "wrong-expected-version",
        &[("expected-version", expected), ("actual-version", actual)],
    )
}

/// The wrong-expected-version reply of an append.
pub fn wrong_expected_version(
    current: Option<u64>,
    expected: Expected,
) -> append_resp::WrongExpectedVersion {
    use append_resp::wrong_expected_version::{
        CurrentRevisionOption, CurrentRevisionOption2060, ExpectedRevisionOption,
        ExpectedRevisionOption2060,
    };
    append_resp::WrongExpectedVersion {
        current_revision_option_20_6_0: Some(match current {
            Some(c) => CurrentRevisionOption2060::CurrentRevision2060(c),
            None => CurrentRevisionOption2060::NoStream2060(empty()),
        }),
        expected_revision_option_20_6_0: Some(match expected {
            Expected::Exact(e) => ExpectedRevisionOption2060::ExpectedRevision2060(e),
            Expected::StreamExists => ExpectedRevisionOption2060::StreamExists2060(empty()),
            Expected::Any | Expected::NoStream => ExpectedRevisionOption2060::Any2060(empty()),
        }),
        current_revision_option: Some(match current {
            Some(c) => CurrentRevisionOption::CurrentRevision(c),
            None => CurrentRevisionOption::CurrentNoStream(empty()),
        }),
        expected_revision_option: Some(match expected {
            Expected::Exact(e) => ExpectedRevisionOption::ExpectedRevision(e),
            Expected::Any => ExpectedRevisionOption::ExpectedAny(empty()),
            Expected::StreamExists => ExpectedRevisionOption::ExpectedStreamExists(empty()),
            Expected::NoStream => ExpectedRevisionOption::ExpectedNoStream(empty()),
        }),
    }
}

/// What a read asks for.
pub struct Read {
    pub target: ReadTarget,
    pub direction: Direction,
    /// At most this many events (`u64::MAX`: all of them).
    pub count: u64,
    /// Follow live commits after the read (a subscription).
    pub subscription: bool,
    /// Event ids in the structured form instead of text.
    pub structured: bool,
    /// The client's compatibility level (1 and up: end a stream read with
    /// its last revision).
    pub compat: u32,
}

pub enum ReadTarget {
    Stream {
        stream: Bytes,
        start: StreamStart,
    },
    All {
        start: AllStart,
        filter: Option<Filter>,
    },
}

/// A read request's options, as the store's types.
pub fn read_request(options: ReadOptions) -> Result<Read, Status> {
    let structured = matches!(
        options
            .uuid_option
            .as_ref()
            .and_then(|u| u.content.as_ref()),
        Some(read_options::uuid_option::Content::Structured(_))
    );
    let backwards = options.read_direction == read_options::ReadDirection::Backwards as i32;
    let direction = if backwards {
        Direction::Backwards
    } else {
        Direction::Forwards
    };
    let compat = options
        .control_option
        .as_ref()
        .map_or(0, |c| c.compatibility);
    let subscription = matches!(
        options.count_option,
        Some(read_options::CountOption::Subscription(_))
    );
    let count = match options.count_option {
        Some(read_options::CountOption::Count(n)) => n,
        _ => u64::MAX,
    };
    let target = match options.stream_option {
        Some(read_options::StreamOption::Stream(StreamOptions {
            stream_identifier,
            revision_option,
        })) => ReadTarget::Stream {
            stream: stream_identifier.map(|s| s.stream_name).unwrap_or_default(),
            start: match revision_option {
                Some(stream_options::RevisionOption::Revision(r)) => StreamStart::Revision(r),
                Some(stream_options::RevisionOption::End(_)) => StreamStart::End,
                _ => StreamStart::Start,
            },
        },
        Some(read_options::StreamOption::All(AllOptions { all_option })) => ReadTarget::All {
            start: match all_option {
                Some(all_options::AllOption::Position(p)) => AllStart::Position(p.commit_position),
                Some(all_options::AllOption::End(_)) => AllStart::End,
                _ => AllStart::Start,
            },
            filter: match &options.filter_option {
                Some(read_options::FilterOption::Filter(f)) => Some(Filter::from_options(f)?),
                _ => None,
            },
        },
        None => {
            return Err(Status::invalid_argument(
                "read names neither a stream nor $all",
            ));
        }
    };
    Ok(Read {
        target,
        direction,
        count,
        subscription,
        structured,
        compat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_read_back_in_both_forms() {
        let id = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210_u128;
        let text = uuid_to(id, false);
        assert_eq!(
            text.value,
            Some(uuid::Value::String(
                "01234567-89ab-cdef-fedc-ba9876543210".into()
            ))
        );
        assert_eq!(uuid_from(Some(&text)).unwrap(), id);
        assert_eq!(uuid_from(Some(&uuid_to(id, true))).unwrap(), id);
    }
}
