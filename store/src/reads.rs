//! Replies that are streams, and the reads that fill them a page at a time.
//!
//! A read or a subscription answers through a bounded queue that a task of
//! its own fills ([`spawn`]): the client receives while the store reads,
//! a read of millions of events holds one page in memory, and a slow client
//! only ever waits on itself. The paged reads of the log run off the
//! runtime, since they wait on the disk.

use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Response, Status};

use crate::convert::{read_event, stream_deleted, stream_id};
use crate::filter::Filter;
use crate::proto::streams::{ReadResp, read_resp};
use crate::record::StoredEvent;
use crate::store::{AllStart, Direction, Store, StreamRead, StreamStart};

/// What a read or a subscription answers: its messages, in order.
pub type ReadStream = Pin<Box<dyn Stream<Item = Result<ReadResp, Status>> + Send>>;

/// The sending end of a reply's queue.
pub(crate) type Sender = mpsc::Sender<Result<ReadResp, Status>>;

/// Messages queued per client before the read or subscription waits for it.
const CLIENT_BUFFER: usize = 512;
/// Events read from the log per page during catch-up and paged reads.
pub(crate) const PAGE: usize = 512;

/// Why a subscription (or paged read) task stopped.
pub(crate) enum Exit {
    /// The client went away; nothing to tell it.
    ClientGone,
    Status(Status),
}

impl From<Status> for Exit {
    fn from(s: Status) -> Exit {
        Exit::Status(s)
    }
}

pub(crate) async fn send(tx: &Sender, content: read_resp::Content) -> Result<(), Exit> {
    tx.send(Ok(msg(content)))
        .await
        .map_err(|_| Exit::ClientGone)
}

fn msg(content: read_resp::Content) -> ReadResp {
    ReadResp {
        content: Some(content),
    }
}

/// A reply that is one message.
pub fn single(content: read_resp::Content) -> Result<Response<ReadStream>, Status> {
    Ok(Response::new(Box::pin(futures::stream::iter([Ok(msg(
        content,
    ))]))))
}

/// A reply filled by `body`, a task of its own; an error it ends with is
/// the reply's last message.
pub(crate) fn spawn<F>(body: impl FnOnce(Sender) -> F) -> Result<Response<ReadStream>, Status>
where
    F: Future<Output = Result<(), Exit>> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
    let task = body(tx.clone());
    tokio::spawn(async move {
        if let Err(Exit::Status(status)) = task.await {
            let _ = tx.send(Err(status)).await;
        }
    });
    Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
}

/// Runs a read of the log off the runtime: reads wait on the disk.
pub(crate) async fn blocking_read<T: Send + 'static>(
    read: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(|e| Status::unavailable(format!("reading the log: {e}")))
}

/// Reads up to a page of records from `from` (a record position) to `end`.
pub(crate) async fn page(store: &Store, from: u64, end: u64) -> Result<Vec<StoredEvent>, Status> {
    let store = store.clone();
    blocking_read(move || {
        let mut out = Vec::with_capacity(PAGE);
        store.scan(from, end, |e| {
            out.push(e);
            out.len() < PAGE
        })?;
        Ok(out)
    })
    .await
}

/// Reads the records at `positions` (a page of them).
pub(crate) async fn read_positions(
    store: &Store,
    positions: Vec<u64>,
) -> Result<Vec<StoredEvent>, Status> {
    let store = store.clone();
    blocking_read(move || positions.iter().map(|p| store.read_at(*p)).collect()).await
}

/// A stream read, sent a page at a time through a bounded queue like
/// `$all` reads: a stream of millions of events is never in memory.
/// A stream read, sent a page at a time like `$all` reads: a stream of
/// millions of events is never in memory.
pub fn stream(
    store: &Store,
    stream: Bytes,
    start: StreamStart,
    direction: Direction,
    count: u64,
    structured: bool,
    compat: u32,
) -> Result<Response<ReadStream>, Status> {
    let (positions, last_revision) = match store.read_stream(&stream, start, direction, count) {
        StreamRead::Deleted => return Err(stream_deleted(&stream)),
        StreamRead::NotFound => {
            let missing = read_resp::Content::StreamNotFound(read_resp::StreamNotFound {
                stream_identifier: Some(stream_id(&stream)),
            });
            return single(missing);
        }
        StreamRead::Events {
            positions,
            last_revision,
        } => (positions, last_revision),
    };
    let store = store.clone();
    spawn(move |tx| async move {
        for page in positions.chunks(PAGE) {
            for e in read_positions(&store, page.to_vec()).await? {
                send(&tx, read_event(&e, structured)).await?;
            }
        }
        if compat >= 1 {
            let last = read_resp::Content::LastStreamPosition(last_revision);
            send(&tx, last).await?;
        }
        Ok(())
    })
}

/// Streams a forwards `$all` read page by page through a bounded queue, so
/// a read of millions of events holds one page in memory, not all of them,
/// and the client receives while the server reads.
pub fn all_forwards(
    store: Store,
    start: AllStart,
    count: u64,
    filter: Option<Filter>,
    structured: bool,
) -> Result<Response<ReadStream>, Status> {
    spawn(move |tx| async move {
        let end = store.committed_end();
        let (mut next, _) = match start {
            AllStart::Start => store.next_after(None),
            AllStart::End => (None, end),
            // Forwards from a position includes it.
            AllStart::Position(p) => store.next_after(p.checked_sub(1)),
        };
        let mut left = count;
        while let Some(from) = next.filter(|p| *p < end && left > 0) {
            let page = page(&store, from, end).await?;
            let Some(last) = page.last().map(|e| e.position) else {
                break;
            };
            for e in page
                .iter()
                .filter(|e| filter.as_ref().is_none_or(|f| f.matches(e)))
            {
                send(&tx, read_event(e, structured)).await?;
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
pub fn all_backwards(
    store: Store,
    start: AllStart,
    count: u64,
    filter: Option<Filter>,
    structured: bool,
) -> Result<Response<ReadStream>, Status> {
    let filter = Arc::new(filter);
    spawn(move |tx| async move {
        let mut from = start;
        let mut left = count;
        while left > 0 {
            let want = left.min(PAGE as u64);
            let (s, f) = (store.clone(), filter.clone());
            let page = blocking_read(move || {
                s.read_all(from, Direction::Backwards, want, |e| {
                    f.as_ref().as_ref().is_none_or(|f| f.matches(e))
                })
            })
            .await?;
            for e in &page {
                send(&tx, read_event(e, structured)).await?;
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
