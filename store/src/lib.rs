//! An embedded, durable event store that speaks EventStoreDB's gRPC protocol.
//!
//! The exchange writes its events through the official `eventstore` client.
//! This crate is the server that client talks to when no EventStoreDB or
//! KurrentDB cluster is configured: appends with expected revisions and
//! idempotent retries (one per call, or many on one batch-append call),
//! stream and `$all` reads in both directions, subscriptions (filtered on
//! `$all`) that switch from catch-up to live with no gap and no duplicate,
//! soft delete, tombstones, stream metadata, and the ServerFeatures and
//! Gossip answers the client asks for first. Anything else answers
//! UNIMPLEMENTED.
//!
//! # Why this engine
//!
//! An event store only ever appends, and `$all` is one global order, so the
//! natural engine is an append-only log with a single writer: a record's
//! byte position *is* its `$all` position, and a checksummed record format
//! makes crash recovery a scan that stops at the first incomplete record.
//! The log is split into segment files so the tail stays small and old
//! segments are immutable. The index (stream → revision → position, plus
//! the order of `$all`) lives in memory and is rebuilt by that same scan on
//! start: it keeps the disk format to one kind of file and recovery to one
//! code path, at the cost of a start-up scan proportional to the log (a
//! persisted index is the upgrade when logs grow past what that scan
//! allows). An embedded transactional engine (sled, redb, SQLite) would add
//! a second ordering and write path to keep in step with `$all` for no gain.
//!
//! Durability: the writer takes every request waiting, writes their records
//! with one write and one `fdatasync`, and only then updates the index,
//! publishes to subscribers and acknowledges (group commit). Checkpoints in
//! the segment headers say how far the log is acknowledged (claimed inside
//! a batch's fsync at most every 10 ms, and by a syncer thread once the
//! writer is idle). On start, an
//! unreadable tail after the checkpoint (a write never acknowledged) is cut
//! back to the last complete record; damage before it refuses the start and
//! changes nothing (see [`recovery`]).

// gRPC handlers return `Result<_, tonic::Status>` because tonic's service
// traits do; boxing the status everywhere would fight the framework.
#![allow(clippy::result_large_err)]

pub mod auth;
mod batch;
pub mod conn;
mod convert;
mod filter;
pub mod index;
pub mod limits;
pub mod log;
pub mod positions;
pub mod proto;
mod reads;
pub mod record;
pub mod recovery;
mod reindex;
pub mod seal;
pub mod segment;
mod server;
mod service;
pub mod store;
mod subscription;
pub mod writer;

pub use auth::{Access, Users};
pub use batch::MAX_UNFINISHED_APPENDS;
pub use limits::{Invalid, MAX_APPEND_SIZE};
pub use server::{CONNECTION_WINDOW, EmbeddedStore, PENDING_RESETS, serve};
pub use service::{FeaturesService, SERVER_VERSION};
pub use store::{AllStart, Direction, Options, Store, StoreError, StreamRead, StreamStart};
pub use writer::{Expected, NewEvent, WriteOutcome};
