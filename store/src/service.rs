//! The gRPC services: Streams, ServerFeatures and Gossip.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::batch;
use crate::convert::{self, empty, exception, read_event, stream_deleted, uuid_from};
use crate::filter::Filter;
use crate::limits::{self, AppendSize, Invalid, MAX_APPEND_SIZE};
use crate::proto::streams::append_req::{self, options::ExpectedStreamRevision};
use crate::proto::streams::read_req::options::{
    self as read_options, AllOptions, StreamOptions, all_options, stream_options,
};
use crate::proto::streams::streams_server::Streams;
use crate::proto::streams::{
    AppendReq, AppendResp, DeleteReq, DeleteResp, ReadReq, ReadResp, TombstoneReq, TombstoneResp,
    append_resp, delete_resp, read_resp, tombstone_resp,
};
use crate::proto::{Empty, gossip, server_features, streams};
use crate::store::{AllStart, Direction, Store, StreamRead, StreamStart};
use crate::subscription;
use crate::writer::{Expected, NewEvent, Outcome};

pub type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadResp, Status>> + Send>>;

/// The Streams service over a store.
pub struct StreamsService {
    pub store: Store,
}

pub(crate) fn msg(content: read_resp::Content) -> ReadResp {
    ReadResp {
        content: Some(content),
    }
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
pub(crate) fn proposed_event(
    id: Option<&crate::proto::Uuid>,
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
pub(crate) fn invalid(e: Invalid) -> Status {
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

fn store_status(e: crate::store::StoreError) -> Status {
    match e {
        crate::store::StoreError::Invalid(e) => invalid(e),
        e => Status::unavailable(e.to_string()),
    }
}

/// A wrong-expected-version reply for a delete or tombstone, worded as
/// EventStoreDB words it: clients parse the message (the Python client
/// reads the versions from it, and an actual version of -1 as "not found").
fn delete_conflict(
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

#[tonic::async_trait]
impl Streams for StreamsService {
    type ReadStream = ReadStream;
    type BatchAppendStream = batch::Replies;

    async fn batch_append(
        &self,
        request: Request<Streaming<streams::BatchAppendReq>>,
    ) -> Result<Response<batch::Replies>, Status> {
        Ok(Response::new(batch::replies(
            self.store.clone(),
            request.into_inner(),
        )))
    }

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<ReadStream>, Status> {
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("read has no options"))?;
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
        let filter = match &options.filter_option {
            Some(read_options::FilterOption::Filter(f)) => Some(Filter::from_options(f)?),
            _ => None,
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
        match options.stream_option {
            Some(read_options::StreamOption::Stream(StreamOptions {
                stream_identifier,
                revision_option,
            })) => {
                let stream = stream_identifier.map(|s| s.stream_name).unwrap_or_default();
                let start = match revision_option {
                    Some(stream_options::RevisionOption::Revision(r)) => StreamStart::Revision(r),
                    Some(stream_options::RevisionOption::End(_)) => StreamStart::End,
                    _ => StreamStart::Start,
                };
                if subscription {
                    return subscription::stream(self.store.clone(), stream, start, structured);
                }
                self.read_stream(stream, start, direction, count, structured, compat)
                    .await
            }
            Some(read_options::StreamOption::All(AllOptions { all_option })) => {
                let start = match all_option {
                    Some(all_options::AllOption::Position(p)) => {
                        AllStart::Position(p.commit_position)
                    }
                    Some(all_options::AllOption::End(_)) => AllStart::End,
                    _ => AllStart::Start,
                };
                if subscription {
                    return subscription::all(self.store.clone(), start, filter, structured);
                }
                if direction == Direction::Forwards {
                    return read_all_forwards(self.store.clone(), start, count, filter, structured);
                }
                read_all_backwards(self.store.clone(), start, count, filter, structured)
            }
            None => Err(Status::invalid_argument(
                "read names neither a stream nor $all",
            )),
        }
    }

    async fn append(
        &self,
        request: Request<Streaming<AppendReq>>,
    ) -> Result<Response<AppendResp>, Status> {
        let mut incoming = request.into_inner();
        let first = incoming
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("append sent nothing"))??;
        let Some(append_req::Content::Options(options)) = first.content else {
            return Err(Status::invalid_argument(
                "append must start with its options",
            ));
        };
        let stream = options
            .stream_identifier
            .map(|s| s.stream_name)
            .unwrap_or_default();
        let mut size = AppendSize::new(&stream).map_err(invalid)?;
        let expected = expected_of!(options.expected_stream_revision, ExpectedStreamRevision);
        let mut events = Vec::new();
        while let Some(m) = incoming.next().await {
            let Some(append_req::Content::ProposedMessage(p)) = m?.content else {
                return Err(Status::invalid_argument(
                    "append options may only come first",
                ));
            };
            events.push(proposed_event(
                p.id.as_ref(),
                &p.metadata,
                p.custom_metadata,
                p.data,
                &mut size,
            )?);
        }
        let outcome = self
            .store
            .append(stream.clone(), expected, events)
            .await
            .map_err(store_status)?;
        let result = match outcome {
            Outcome::Written { revision, position } => {
                append_resp::Result::Success(append_resp::Success {
                    current_revision_option: Some(match revision {
                        Some(r) => append_resp::success::CurrentRevisionOption::CurrentRevision(r),
                        None => append_resp::success::CurrentRevisionOption::NoStream(empty()),
                    }),
                    position_option: Some(append_resp::success::PositionOption::Position(
                        append_resp::Position {
                            commit_position: position,
                            prepare_position: position,
                        },
                    )),
                })
            }
            Outcome::WrongExpectedVersion { current, expected } => {
                append_resp::Result::WrongExpectedVersion(wrong_expected_version(current, expected))
            }
            Outcome::StreamDeleted => return Err(stream_deleted(&stream)),
            Outcome::Failed(e) => {
                return Err(Status::unavailable(format!(
                    "the append was not written: {e}"
                )));
            }
        };
        Ok(Response::new(AppendResp {
            result: Some(result),
        }))
    }

    async fn delete(&self, request: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("delete has no options"))?;
        let stream = options
            .stream_identifier
            .map(|s| s.stream_name)
            .unwrap_or_default();
        let expected = expected_of!(
            options.expected_stream_revision,
            crate::proto::streams::delete_req::options::ExpectedStreamRevision
        );
        let position = self.remove(stream, expected, false).await?;
        Ok(Response::new(DeleteResp {
            position_option: Some(delete_resp::PositionOption::Position(
                delete_resp::Position {
                    commit_position: position,
                    prepare_position: position,
                },
            )),
        }))
    }

    async fn tombstone(
        &self,
        request: Request<TombstoneReq>,
    ) -> Result<Response<TombstoneResp>, Status> {
        let options = request
            .into_inner()
            .options
            .ok_or_else(|| Status::invalid_argument("tombstone has no options"))?;
        let stream = options
            .stream_identifier
            .map(|s| s.stream_name)
            .unwrap_or_default();
        let expected = expected_of!(
            options.expected_stream_revision,
            crate::proto::streams::tombstone_req::options::ExpectedStreamRevision
        );
        let position = self.remove(stream, expected, true).await?;
        Ok(Response::new(TombstoneResp {
            position_option: Some(tombstone_resp::PositionOption::Position(
                tombstone_resp::Position {
                    commit_position: position,
                    prepare_position: position,
                },
            )),
        }))
    }
}

impl StreamsService {
    /// Soft-deletes or tombstones a stream; the position of what was written.
    async fn remove(
        &self,
        stream: Bytes,
        expected: Expected,
        tombstone: bool,
    ) -> Result<u64, Status> {
        // The store checks the name (an invalid one is INVALID_ARGUMENT).
        let outcome = if tombstone {
            self.store.tombstone(stream.clone(), expected).await
        } else {
            self.store.delete(stream.clone(), expected).await
        };
        match outcome.map_err(store_status)? {
            Outcome::Written { position, .. } => Ok(position),
            Outcome::WrongExpectedVersion { current, expected } => Err(delete_conflict(
                if tombstone { "Tombstone" } else { "Delete" },
                &stream,
                current,
                expected,
            )),
            Outcome::StreamDeleted => Err(stream_deleted(&stream)),
            Outcome::Failed(e) => Err(Status::unavailable(format!(
                "the delete was not written: {e}"
            ))),
        }
    }

    /// A stream read, sent a page at a time through a bounded queue like
    /// `$all` reads: a stream of millions of events is never in memory.
    async fn read_stream(
        &self,
        stream: Bytes,
        start: StreamStart,
        direction: Direction,
        count: u64,
        structured: bool,
        compat: u32,
    ) -> Result<Response<ReadStream>, Status> {
        let (positions, last_revision) =
            match self.store.read_stream(&stream, start, direction, count) {
                StreamRead::Deleted => return Err(stream_deleted(&stream)),
                StreamRead::NotFound => {
                    let missing = read_resp::Content::StreamNotFound(read_resp::StreamNotFound {
                        stream_identifier: Some(convert::stream_id(&stream)),
                    });
                    return Ok(Response::new(Box::pin(futures::stream::iter([Ok(msg(
                        missing,
                    ))]))));
                }
                StreamRead::Events {
                    positions,
                    last_revision,
                } => (positions, last_revision),
            };
        let store = self.store.clone();
        subscription::spawn(move |tx| async move {
            for page in positions.chunks(subscription::PAGE) {
                for e in subscription::read_positions(&store, page.to_vec()).await? {
                    subscription::send(&tx, read_event(&e, structured)).await?;
                }
            }
            if compat >= 1 {
                let last = read_resp::Content::LastStreamPosition(last_revision);
                subscription::send(&tx, last).await?;
            }
            Ok(())
        })
    }
}

/// Streams a forwards `$all` read page by page through a bounded queue, so
/// a read of millions of events holds one page in memory, not all of them,
/// and the client receives while the server reads.
fn read_all_forwards(
    store: Store,
    start: AllStart,
    count: u64,
    filter: Option<Filter>,
    structured: bool,
) -> Result<Response<ReadStream>, Status> {
    subscription::spawn(move |tx| async move {
        let end = store.committed_end();
        let (mut next, _) = match start {
            AllStart::Start => store.next_after(None),
            AllStart::End => (None, end),
            // Forwards from a position includes it.
            AllStart::Position(p) => store.next_after(p.checked_sub(1)),
        };
        let mut left = count;
        while let Some(from) = next.filter(|p| *p < end && left > 0) {
            let page = subscription::page(&store, from, end).await?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            for e in page
                .iter()
                .filter(|e| filter.as_ref().is_none_or(|f| f.matches(e)))
            {
                subscription::send(&tx, read_event(e, structured)).await?;
                left -= 1;
                if left == 0 {
                    break;
                }
            }
            next = store.next_after(Some(last)).0;
        }
        Ok(())
    })
}

/// Streams a backwards `$all` read a page at a time, like forwards reads.
fn read_all_backwards(
    store: Store,
    start: AllStart,
    count: u64,
    filter: Option<Filter>,
    structured: bool,
) -> Result<Response<ReadStream>, Status> {
    let filter = Arc::new(filter);
    subscription::spawn(move |tx| async move {
        let mut from = start;
        let mut left = count;
        while left > 0 {
            let want = left.min(subscription::PAGE as u64);
            let (s, f) = (store.clone(), filter.clone());
            let page = subscription::blocking_read(move || {
                s.read_all(from, Direction::Backwards, want, |e| {
                    f.as_ref().as_ref().is_none_or(|f| f.matches(e))
                })
            })
            .await?;
            for e in &page {
                subscription::send(&tx, read_event(e, structured)).await?;
            }
            // Backwards from a position gives the events before it.
            match page.last() {
                Some(last) if (page.len() as u64) == want => {
                    from = AllStart::Position(last.position);
                    left -= want;
                }
                _ => break,
            }
        }
        Ok(())
    })
}

fn wrong_expected_version(
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

/// ServerFeatures: what this server supports.
pub struct FeaturesService;

/// The server version reported to clients.
pub const SERVER_VERSION: &str = "24.10.0";

#[tonic::async_trait]
impl server_features::server_features_server::ServerFeatures for FeaturesService {
    async fn get_supported_methods(
        &self,
        _: Request<Empty>,
    ) -> Result<Response<server_features::SupportedMethods>, Status> {
        let methods = ["read", "append", "batchappend", "delete", "tombstone"]
            .into_iter()
            .map(|m| server_features::SupportedMethod {
                method_name: m.into(),
                service_name: "event_store.client.streams.streams".into(),
                features: Vec::new(),
            })
            .collect();
        Ok(Response::new(server_features::SupportedMethods {
            methods,
            event_store_server_version: SERVER_VERSION.into(),
        }))
    }
}

/// Gossip: a one-node cluster whose leader is this server.
pub struct GossipService {
    pub addr: SocketAddr,
}

#[tonic::async_trait]
impl gossip::gossip_server::Gossip for GossipService {
    async fn read(&self, _: Request<Empty>) -> Result<Response<gossip::ClusterInfo>, Status> {
        let id = u128::from(crc32fast::hash(self.addr.to_string().as_bytes())) << 64 | 0x5107e;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| (d.as_nanos() / 100) as i64);
        Ok(Response::new(gossip::ClusterInfo {
            members: vec![gossip::MemberInfo {
                instance_id: Some(convert::uuid_to(id, false)),
                time_stamp: now,
                state: gossip::member_info::VNodeState::Leader as i32,
                is_alive: true,
                http_end_point: Some(gossip::EndPoint {
                    address: self.addr.ip().to_string(),
                    port: u32::from(self.addr.port()),
                }),
            }],
        }))
    }
}

pub(crate) type Sender = mpsc::Sender<Result<ReadResp, Status>>;

pub(crate) fn response(
    rx: mpsc::Receiver<Result<ReadResp, Status>>,
) -> Result<Response<ReadStream>, Status> {
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}
