//! The gRPC services: Streams, ServerFeatures and Gossip. Each call turns
//! its request into the store's types (`convert`), calls the store, a
//! paged read (`reads`), a subscription or the batch-append session, and
//! turns what they give into the reply; none of them calls back in here.

use std::net::SocketAddr;

use bytes::Bytes;
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::batch;
use crate::convert::{
    self, ReadTarget, delete_conflict, empty, expected_of, invalid, proposed_event, read_request,
    store_status, stream_deleted, wrong_expected_version,
};
use crate::limits::AppendSize;
use crate::proto::streams::append_req::{self, options::ExpectedStreamRevision};
use crate::proto::streams::streams_server::Streams;
use crate::proto::streams::{
    AppendReq, AppendResp, DeleteReq, DeleteResp, ReadReq, TombstoneReq, TombstoneResp,
    append_resp, delete_resp, tombstone_resp,
};
use crate::proto::{Empty, gossip, server_features, streams};
use crate::reads::{self, ReadStream};
use crate::store::{Direction, Store};
use crate::subscription;
use crate::writer::{Expected, WriteOutcome};

/// The Streams service over a store.
pub struct StreamsService {
    pub store: Store,
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
        let read = read_request(options)?;
        let store = self.store.clone();
        match read.target {
            ReadTarget::Stream { stream, start } if read.subscription => {
                subscription::stream(store, stream, start, read.structured)
            }
            ReadTarget::Stream { stream, start } => reads::stream(
                &store,
                stream,
                start,
                read.direction,
                read.count,
                read.structured,
                read.compat,
            ),
            ReadTarget::All { start, filter } if read.subscription => {
                subscription::all(store, start, filter, read.structured)
            }
            ReadTarget::All { start, filter } => match read.direction {
                Direction::Forwards => {
                    reads::all_forwards(store, start, read.count, filter, read.structured)
                }
                Direction::Backwards => {
                    reads::all_backwards(store, start, read.count, filter, read.structured)
                }
            },
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
            WriteOutcome::Written { revision, position } => {
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
            WriteOutcome::WrongExpectedVersion { current, expected } => {
                append_resp::Result::WrongExpectedVersion(wrong_expected_version(current, expected))
            }
            WriteOutcome::StreamDeleted => return Err(stream_deleted(&stream)),
            WriteOutcome::Failed(e) => {
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
            WriteOutcome::Written { position, .. } => Ok(position),
            WriteOutcome::WrongExpectedVersion { current, expected } => Err(delete_conflict(
                if tombstone { "Tombstone" } else { "Delete" },
                &stream,
                current,
                expected,
            )),
            WriteOutcome::StreamDeleted => Err(stream_deleted(&stream)),
            WriteOutcome::Failed(e) => Err(Status::unavailable(format!(
                "the delete was not written: {e}"
            ))),
        }
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
