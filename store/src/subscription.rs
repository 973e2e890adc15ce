//! Subscriptions: catch up from the log, then follow live commits.
//!
//! Each subscription registers for live batches *before* it reads the log,
//! and remembers the last position (or revision) it considered, so the
//! switch from catch-up to live loses nothing and repeats nothing. A
//! subscriber that falls too far behind the live feed does not slow anyone:
//! the feed drops it, and it goes back to reading the log from where it was.
//! Its own queue to the client is bounded, so a slow client only ever waits
//! on itself. A subscription ends only with an error status: when the client
//! leaves, or with UNAVAILABLE when the store shuts down.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tonic::{Response, Status};

use crate::convert::{read_event, stream_deleted};
use crate::filter::Filter;
use crate::index::TOMBSTONE_REVISION;
use crate::proto::streams::read_resp;
use crate::reads::{Exit, PAGE, ReadStream, Sender, page, read_positions, send, spawn};
use crate::record::StoredEvent;
use crate::store::{AllStart, Store, StreamStart};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn shutting_down() -> Status {
    Status::unavailable("the event store is shutting down; resubscribe from the last event")
}

async fn confirm(store: &Store, tx: &Sender) -> Result<(), Exit> {
    store.note_subscription();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    send(
        tx,
        read_resp::Content::Confirmation(read_resp::SubscriptionConfirmation {
            subscription_id: format!("sub-{id}"),
        }),
    )
    .await
}

/// Waits for the next live batch. `None` means the subscriber fell behind
/// the feed: it is registered again and must catch up from the log.
async fn next_live(
    store: &Store,
    live: &mut broadcast::Receiver<Arc<Vec<StoredEvent>>>,
    shutdown: &mut watch::Receiver<bool>,
    tx: &Sender,
) -> Result<Option<Arc<Vec<StoredEvent>>>, Exit> {
    let batch = tokio::select! {
        _ = shutdown.changed() => return Err(shutting_down().into()),
        () = tx.closed() => return Err(Exit::ClientGone),
        b = live.recv() => b,
    };
    match batch {
        Ok(batch) => Ok(Some(batch)),
        Err(RecvError::Lagged(_)) => {
            store.note_fallback();
            *live = store.live();
            Ok(None)
        }
        Err(RecvError::Closed) => Err(shutting_down().into()),
    }
}

/// Follows `$all` from `start` (exclusive), through `filter`.
pub fn all(
    store: Store,
    start: AllStart,
    filter: Option<Filter>,
    structured: bool,
) -> Result<Response<ReadStream>, Status> {
    spawn(move |tx| async move {
        let mut shutdown = store.shutting_down();
        confirm(&store, &tx).await?;
        let mut live = store.live();
        let mut last = match start {
            AllStart::Start => None,
            AllStart::Position(p) => Some(p),
            AllStart::End => store.committed_end().checked_sub(1),
        };
        let mut considered = 0u64;
        let mut caught_up = false;
        let interval = filter.as_ref().map(|f| f.checkpoint_interval);
        let checkpoint = |p: u64| {
            read_resp::Content::Checkpoint(read_resp::Checkpoint {
                commit_position: p,
                prepare_position: p,
            })
        };
        loop {
            // Catch up from the log to what was committed when we registered.
            loop {
                let (next, end) = store.next_after(last);
                let Some(from) = next.filter(|n| *n < end) else {
                    break;
                };
                for e in page(&store, from, end).await? {
                    last = Some(e.position);
                    considered += 1;
                    if filter.as_ref().is_none_or(|f| f.matches(&e)) {
                        send(&tx, read_event(&e, structured)).await?;
                    }
                    if interval.is_some_and(|i| considered.is_multiple_of(i)) {
                        send(&tx, checkpoint(e.position)).await?;
                    }
                }
            }
            if filter.is_some() {
                send(&tx, checkpoint(last.unwrap_or(0))).await?;
            }
            if !caught_up {
                caught_up = true;
                send(&tx, read_resp::Content::CaughtUp(read_resp::CaughtUp {})).await?;
            }
            // Live: drop what catch-up already covered.
            loop {
                let Some(batch) = next_live(&store, &mut live, &mut shutdown, &tx).await? else {
                    break;
                };
                for e in batch.iter() {
                    if last.is_some_and(|l| e.position <= l) {
                        continue;
                    }
                    last = Some(e.position);
                    considered += 1;
                    if filter.as_ref().is_none_or(|f| f.matches(e)) {
                        send(&tx, read_event(e, structured)).await?;
                    }
                    if interval.is_some_and(|i| considered.is_multiple_of(i)) {
                        send(&tx, checkpoint(e.position)).await?;
                    }
                }
            }
        }
    })
}

/// Follows one stream from `start` (exclusive).
pub fn stream(
    store: Store,
    stream: Bytes,
    start: StreamStart,
    structured: bool,
) -> Result<Response<ReadStream>, Status> {
    spawn(move |tx| async move {
        let mut shutdown = store.shutting_down();
        confirm(&store, &tx).await?;
        let mut live = store.live();
        let (current, _) = store.stream_state(&stream);
        let mut last = match start {
            StreamStart::Start => None,
            StreamStart::Revision(r) => Some(r),
            StreamStart::End => current,
        };
        let mut caught_up = false;
        loop {
            let (_, tombstoned) = store.stream_state(&stream);
            if tombstoned {
                return Err(stream_deleted(&stream).into());
            }
            let positions = store.stream_positions_from(&stream, last.map_or(0, |r| r + 1));
            for chunk in positions.chunks(PAGE) {
                let page = chunk.iter().map(|(_, p)| *p).collect();
                for e in read_positions(&store, page).await? {
                    last = Some(e.revision);
                    send(&tx, read_event(&e, structured)).await?;
                }
            }
            if !caught_up {
                caught_up = true;
                send(&tx, read_resp::Content::CaughtUp(read_resp::CaughtUp {})).await?;
            }
            loop {
                let Some(batch) = next_live(&store, &mut live, &mut shutdown, &tx).await? else {
                    break;
                };
                for e in batch.iter().filter(|e| e.stream == stream) {
                    if e.revision == TOMBSTONE_REVISION {
                        send(&tx, read_event(e, structured)).await?;
                        return Err(stream_deleted(&stream).into());
                    }
                    if last.is_none_or(|l| e.revision > l) {
                        last = Some(e.revision);
                        send(&tx, read_event(e, structured)).await?;
                    }
                }
            }
        }
    })
}
