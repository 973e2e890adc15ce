//! Start's one read of the log: `$all` read a page at a time from the
//! beginning, each market and account event decoded once, and each page
//! handed to every fold start builds (the ledger, the market data, the
//! order history, the streams' fencing terms), each folding on a thread
//! of its own while the next page is read.
//!
//! No more than a few pages are ever held, whatever the log's length: the
//! read waits for the slowest fold. Before, start read the whole log into
//! memory first and folded it afterwards; at 10 million events that held
//! several GB at once, which the allocator then kept.
//!
//! Each fold then follows the live tail from the position the read
//! reached, so no event is folded twice at start, and none between the
//! read and the tail is missed (the tail is started before the read).

use std::sync::Arc;

use eventstore::Client;
use tokio::sync::mpsc;

use super::live_tail::{Streams, TailEvent};
use super::streams::{StreamError, feed_position, read_all_after, until_answered};
use crate::api::FeedPosition;

/// Events of `$all` read at a time (of any stream: a page of others is
/// read and passed over).
pub const LOG_PAGE: usize = 4096;
/// Pages a fold may have waiting before the read waits for it.
const QUEUED: usize = 2;

/// What start folds the log into: the market and account events, a page
/// at a time, in the store's order.
pub trait LogFold: Send + 'static {
    /// Folds in the next page. An error stops this fold (the others go
    /// on): its [`Folding::finish`] returns the error.
    fn fold_page(&mut self, events: &[Arc<TailEvent>]) -> Result<(), StreamError>;
}

/// What a fold's thread is handed.
enum Handed {
    Page(Arc<[Arc<TailEvent>]>),
    /// The read reached the log's end at this position (`None`: the log
    /// is empty).
    End(Option<FeedPosition>),
}

/// One read of the log and the folds it feeds.
pub struct LogRead {
    page: usize,
    /// Where the read starts: after this position (`None`: from the
    /// beginning).
    after: Option<FeedPosition>,
    /// Where it ends: at this position (`None`: at the log's end).
    until: Option<FeedPosition>,
    folds: Vec<mpsc::Sender<Handed>>,
}

/// A fold being fed by a [`LogRead`].
pub struct Folding<F> {
    task: tokio::task::JoinHandle<Result<(F, Option<FeedPosition>), StreamError>>,
}

impl LogRead {
    /// A read of `page` events of `$all` at a time (at least 2: a read
    /// from a position includes the event at it, which the page before
    /// handed on already).
    pub fn new(page: usize) -> LogRead {
        LogRead {
            page: page.max(2),
            after: None,
            until: None,
            folds: Vec::new(),
        }
    }

    /// The same read, of the log after `position` only (what a snapshot
    /// the folds start from does not cover).
    pub fn after(self, position: Option<FeedPosition>) -> LogRead {
        LogRead {
            after: position,
            ..self
        }
    }

    /// The same read, ending with the event at `position` (`None`: at the
    /// log's end): the fold a snapshot of that position must equal.
    pub fn until(self, position: Option<FeedPosition>) -> LogRead {
        LogRead {
            until: position,
            ..self
        }
    }

    /// Has `fold` fed every page of this read, on a thread of its own.
    pub fn fold<F: LogFold>(&mut self, mut fold: F) -> Folding<F> {
        let (tx, mut rx) = mpsc::channel(QUEUED);
        self.folds.push(tx);
        let task = tokio::task::spawn_blocking(move || {
            while let Some(handed) = rx.blocking_recv() {
                match handed {
                    Handed::Page(events) => fold.fold_page(&events)?,
                    Handed::End(position) => return Ok((fold, position)),
                }
            }
            Err(StreamError::Unavailable(
                "the read of the log stopped before its end".into(),
            ))
        });
        Folding { task }
    }

    /// Reads the log from where it starts (its beginning, unless
    /// [`LogRead::after`]) to where it ends (its end, unless
    /// [`LogRead::until`]) and feeds every fold.
    /// A store that stops answering is asked again from the page where
    /// the read stopped (as [`until_answered`] does); an event that
    /// cannot be decoded stops the read, as the task that writes its
    /// stream could not start on it either. A fold that stopped on an
    /// error is passed over; it reports the error itself.
    pub async fn run(self, client: &Client) -> Result<(), StreamError> {
        let mut position = self.after;
        let mut reached = false;
        while !reached {
            let read = || read_all_after(client, position, self.page);
            let mut records = until_answered("reading the log", read).await?;
            if let Some(until) = self.until {
                reached = records
                    .last()
                    .is_some_and(|e| feed_position(e.position) >= until);
                records.retain(|e| feed_position(e.position) <= until);
            }
            let Some(last) = records.last() else {
                break;
            };
            position = Some(feed_position(last.position));
            let covered = records
                .iter()
                .filter(|e| Streams::MarketsAndAccounts.covers(&e.stream_id));
            let events = covered
                .map(|e| TailEvent::decode(e).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            if events.is_empty() {
                continue;
            }
            let events: Arc<[Arc<TailEvent>]> = events.into();
            for fold in &self.folds {
                let _ = fold.send(Handed::Page(events.clone())).await;
            }
        }
        for fold in &self.folds {
            let _ = fold.send(Handed::End(position)).await;
        }
        Ok(())
    }
}

impl<F> Folding<F> {
    /// The fold of the whole log, and the position the read ended at
    /// (to follow the tail from). An error if the fold or the read
    /// stopped before the end. A fold that panicked panics here too.
    pub async fn finish(self) -> Result<(F, Option<FeedPosition>), StreamError> {
        match self.task.await {
            Ok(folded) => folded,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StreamError::Unavailable(format!("a fold of the log: {e}"))),
        }
    }
}
