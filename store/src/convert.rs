//! Between protocol messages and the store's own types.

use std::collections::HashMap;

use tonic::Status;

use crate::proto::streams::read_resp::read_event::RecordedEvent;
use crate::proto::streams::read_resp::{self, ReadEvent};
use crate::proto::{Empty, StreamIdentifier, Uuid, uuid};
use crate::record::StoredEvent;

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
