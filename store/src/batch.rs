//! `BatchAppend`: many appends on one long-lived call.
//!
//! A client opens one such call and sends every append on it as a request
//! with a correlation id, so an append costs one message each way instead of
//! a new HTTP/2 stream with its headers (the official Rust client's
//! `batch_append`). An append may span several requests: its options come with
//! the first, the last says `is_final`. Appends go to the same writer as
//! `Append` (group commit, the same expected-revision and idempotency
//! rules), several may be in flight on one call, and each reply carries its
//! correlation id, in the order the writer finishes them.
//!
//! A request that is wrong on its own (no options, a bad event) gets an
//! error reply for its correlation id; a request without a correlation id
//! cannot be answered and ends the call with INVALID_ARGUMENT. The client's
//! deadline is not enforced: appends are decided in arrival order anyway.
//! When the store shuts down, appends in flight are answered and the call
//! ends with UNAVAILABLE.

use std::collections::HashMap;
use std::pin::Pin;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::watch;
use tonic::{Code, Status, Streaming};

use crate::convert::{empty, uuid_from};
use crate::convert::{expected_of, proposed_event};
use crate::limits::AppendSize;
use crate::proto::google::rpc;
use crate::proto::streams::batch_append_req::options::ExpectedStreamPosition;
use crate::proto::streams::batch_append_resp::{self, success};
use crate::proto::streams::{BatchAppendReq, BatchAppendResp};
use crate::proto::{AllStreamPosition, StreamIdentifier, Uuid};
use crate::store::Store;
use crate::writer::{Expected, NewEvent, WriteOutcome};

/// Appends of one call waiting for the writer at once.
const MAX_IN_FLIGHT: usize = 1024;

pub type Replies = Pin<Box<dyn Stream<Item = Result<BatchAppendResp, Status>> + Send>>;

/// Appends begun but not yet final that one call may hold.
pub const MAX_UNFINISHED_APPENDS: usize = 1024;

/// The replies to the requests of one call.
pub fn replies(store: Store, incoming: Streaming<BatchAppendReq>) -> Replies {
    let shutdown = store.shutting_down();
    let stopping = *shutdown.borrow();
    let call = Call {
        store,
        incoming,
        unfinished: HashMap::new(),
        in_flight: FuturesUnordered::new(),
        reading: !stopping,
        shutdown,
        stopping,
    };
    Box::pin(futures::stream::unfold(call, |mut call| async move {
        let reply = call.next_reply().await?;
        if reply.is_err() {
            // An error status ends the call: answer nothing after it.
            call.reading = false;
            call.in_flight.clear();
        }
        Some((reply, call))
    }))
}

/// An append whose final request has not come yet.
struct Unfinished {
    stream: Bytes,
    expected: Expected,
    events: Vec<NewEvent>,
    size: AppendSize,
}

struct Call {
    store: Store,
    incoming: Streaming<BatchAppendReq>,
    unfinished: HashMap<u128, Unfinished>,
    in_flight: FuturesUnordered<BoxFuture<'static, BatchAppendResp>>,
    reading: bool,
    /// The store is shutting down: answer what is in flight, then end the
    /// call with UNAVAILABLE (an open call would hold the shutdown up).
    shutdown: watch::Receiver<bool>,
    stopping: bool,
}

impl Call {
    async fn next_reply(&mut self) -> Option<Result<BatchAppendResp, Status>> {
        loop {
            if !self.reading && self.in_flight.is_empty() {
                if std::mem::take(&mut self.stopping) {
                    return Some(Err(Status::unavailable(
                        "the event store is shutting down; append again when it is back",
                    )));
                }
                return None;
            }
            tokio::select! {
                biased;
                Some(reply) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    return Some(Ok(reply));
                }
                _ = self.shutdown.changed(), if self.reading => {
                    self.reading = false;
                    self.stopping = true;
                }
                // At most MAX_IN_FLIGHT appends wait for the writer: a
                // client that keeps sending without reading its replies
                // is not read from either.
                request = self.incoming.next(),
                    if self.reading && self.in_flight.len() < MAX_IN_FLIGHT => match request {
                    // The client closed its side: answer what is in flight.
                    None => self.reading = false,
                    Some(Err(status)) => return Some(Err(status)),
                    Some(Ok(request)) => {
                        if let Some(reply) = self.accept(request) {
                            return Some(reply);
                        }
                    }
                },
            }
        }
    }

    /// Takes one request: `None` when it needs no answer yet (its append is
    /// unfinished or now in flight).
    fn accept(&mut self, request: BatchAppendReq) -> Option<Result<BatchAppendResp, Status>> {
        let id = match uuid_from(request.correlation_id.as_ref()) {
            Ok(id) => id,
            Err(status) => {
                return Some(Err(Status::invalid_argument(format!(
                    "a batch append request needs a correlation id: {}",
                    status.message()
                ))));
            }
        };
        let reply_to = request.correlation_id.clone();
        let mut append = match (self.unfinished.remove(&id), request.options) {
            (None, Some(options)) => {
                let stream = options
                    .stream_identifier
                    .map(|s| s.stream_name)
                    .unwrap_or_default();
                let expected = expected_of!(
                    options.expected_stream_position,
                    ExpectedStreamPosition,
                    StreamPosition
                );
                let size = match AppendSize::new(&stream) {
                    Ok(size) => size,
                    Err(e) => {
                        return Some(Ok(error(
                            reply_to,
                            &stream,
                            expected,
                            Failure::BadRequest,
                            e.to_string(),
                        )));
                    }
                };
                Unfinished {
                    stream,
                    expected,
                    events: Vec::new(),
                    size,
                }
            }
            (Some(append), None) => append,
            (None, None) => {
                return Some(Ok(error(
                    reply_to,
                    &Bytes::new(),
                    Expected::Any,
                    Failure::BadRequest,
                    "the first request of an append must carry its options".into(),
                )));
            }
            (Some(append), Some(_)) => {
                return Some(Ok(error(
                    reply_to,
                    &append.stream,
                    append.expected,
                    Failure::BadRequest,
                    "only the first request of an append may carry options".into(),
                )));
            }
        };
        for p in request.proposed_messages {
            match proposed_event(
                p.id.as_ref(),
                &p.metadata,
                p.custom_metadata,
                p.data,
                &mut append.size,
            ) {
                Ok(event) => append.events.push(event),
                Err(status) => {
                    let too_large = status
                        .metadata()
                        .get("exception")
                        .is_some_and(|e| e == "maximum-append-size-exceeded");
                    return Some(Ok(error(
                        reply_to,
                        &append.stream,
                        append.expected,
                        if too_large {
                            Failure::TooLarge
                        } else {
                            Failure::BadRequest
                        },
                        status.message().to_string(),
                    )));
                }
            }
        }
        if !request.is_final {
            if self.unfinished.len() >= MAX_UNFINISHED_APPENDS {
                return Some(Err(Status::resource_exhausted(format!(
                    "more than {MAX_UNFINISHED_APPENDS} appends begun and not finished on one call"
                ))));
            }
            self.unfinished.insert(id, append);
            return None;
        }
        let store = self.store.clone();
        self.in_flight.push(
            async move {
                let Unfinished {
                    stream,
                    expected,
                    events,
                    ..
                } = append;
                let outcome = store.append(stream.clone(), expected, events).await;
                reply(reply_to, &stream, expected, outcome)
            }
            .boxed(),
        );
        None
    }
}

fn reply(
    correlation_id: Option<Uuid>,
    stream: &Bytes,
    expected: Expected,
    outcome: Result<WriteOutcome, crate::store::StoreError>,
) -> BatchAppendResp {
    let name = String::from_utf8_lossy(stream);
    let (failure, message) = match outcome {
        Ok(WriteOutcome::Written { revision, position }) => {
            let success = batch_append_resp::Success {
                current_revision_option: Some(match revision {
                    Some(r) => success::CurrentRevisionOption::CurrentRevision(r),
                    None => success::CurrentRevisionOption::NoStream(empty()),
                }),
                position_option: Some(success::PositionOption::Position(AllStreamPosition {
                    commit_position: position,
                    prepare_position: position,
                })),
            };
            return answer(
                correlation_id,
                stream,
                expected,
                batch_append_resp::Result::Success(success),
            );
        }
        Ok(WriteOutcome::WrongExpectedVersion { current, expected }) => (
            Failure::WrongExpectedVersion { current, expected },
            format!(
                "WrongExpectedVersion: stream '{name}' is at {}, the append expected {expected:?}",
                current.map_or("no stream".to_string(), |c| format!("revision {c}"))
            ),
        ),
        Ok(WriteOutcome::StreamDeleted) => (
            Failure::StreamDeleted,
            format!("stream '{name}' is deleted"),
        ),
        Ok(WriteOutcome::Failed(e)) => (
            Failure::Unavailable,
            format!("the append was not written: {e}"),
        ),
        Err(crate::store::StoreError::Invalid(e)) => (
            if e == crate::limits::Invalid::TooLarge {
                Failure::TooLarge
            } else {
                Failure::BadRequest
            },
            e.to_string(),
        ),
        Err(e) => (Failure::Unavailable, e.to_string()),
    };
    error(correlation_id, stream, expected, failure, message)
}

/// Why a batch append failed, as the protocol's shared error messages
/// (`shared.proto`) that clients unpack from the status details: the
/// Python client, for one, raises its own errors only from them.
enum Failure {
    WrongExpectedVersion {
        current: Option<u64>,
        expected: Expected,
    },
    StreamDeleted,
    TooLarge,
    BadRequest,
    /// Not the client's doing: no details, only the code.
    Unavailable,
}

/// A reply with an error result (the protocol's `google.rpc.Status`).
fn error(
    correlation_id: Option<Uuid>,
    stream: &Bytes,
    expected: Expected,
    failure: Failure,
    message: String,
) -> BatchAppendResp {
    use crate::proto::wrong_expected_version::{
        CurrentStreamRevisionOption as Current, ExpectedStreamPositionOption as Wanted,
    };
    fn pack(name: &str, message: &impl prost::Message) -> Option<prost_types::Any> {
        Some(prost_types::Any {
            type_url: format!("type.googleapis.com/event_store.client.{name}"),
            value: message.encode_to_vec(),
        })
    }
    let (code, details) = match failure {
        Failure::WrongExpectedVersion { current, expected } => {
            let detail = crate::proto::WrongExpectedVersion {
                current_stream_revision_option: Some(match current {
                    Some(c) => Current::CurrentStreamRevision(c),
                    None => Current::CurrentNoStream(()),
                }),
                expected_stream_position_option: Some(match expected {
                    Expected::Exact(e) => Wanted::ExpectedStreamPosition(e),
                    Expected::Any => Wanted::ExpectedAny(()),
                    Expected::StreamExists => Wanted::ExpectedStreamExists(()),
                    Expected::NoStream => Wanted::ExpectedNoStream(()),
                }),
            };
            (
                Code::FailedPrecondition,
                pack("WrongExpectedVersion", &detail),
            )
        }
        Failure::StreamDeleted => {
            let detail = crate::proto::StreamDeleted {
                stream_identifier: Some(StreamIdentifier {
                    stream_name: stream.clone(),
                }),
            };
            (Code::FailedPrecondition, pack("StreamDeleted", &detail))
        }
        Failure::TooLarge => {
            let detail = crate::proto::MaximumAppendSizeExceeded {
                max_append_size: crate::limits::MAX_APPEND_SIZE as u32,
            };
            (
                Code::InvalidArgument,
                pack("MaximumAppendSizeExceeded", &detail),
            )
        }
        Failure::BadRequest => {
            let detail = crate::proto::BadRequest {
                message: message.clone(),
            };
            (Code::InvalidArgument, pack("BadRequest", &detail))
        }
        Failure::Unavailable => (Code::Unavailable, None),
    };
    let status = rpc::Status {
        code: code as i32,
        message,
        details,
    };
    answer(
        correlation_id,
        stream,
        expected,
        batch_append_resp::Result::Error(status),
    )
}

/// The client needs the correlation id, the stream and the result in every
/// reply; it echoes the expected position back to its caller.
fn answer(
    correlation_id: Option<Uuid>,
    stream: &Bytes,
    expected: Expected,
    result: batch_append_resp::Result,
) -> BatchAppendResp {
    use batch_append_resp::ExpectedStreamPosition as E;
    BatchAppendResp {
        correlation_id,
        stream_identifier: Some(StreamIdentifier {
            stream_name: stream.clone(),
        }),
        expected_stream_position: Some(match expected {
            Expected::Exact(r) => E::StreamPosition(r),
            Expected::NoStream => E::NoStream(empty()),
            Expected::StreamExists => E::StreamExists(empty()),
            Expected::Any => E::Any(empty()),
        }),
        result: Some(result),
    }
}
