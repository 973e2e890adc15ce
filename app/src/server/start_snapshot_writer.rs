//! The leader's writer of start snapshots (see `start_snapshots`): a
//! supervised task that looks every little while whether the log has
//! grown enough since the newest snapshot, and if so folds a new one from
//! that snapshot and the log after it, and writes it.
//!
//! It folds on its own rather than writing down the server's live read
//! models: those are the fold of the log at no one position (the ledger
//! holds decisions on their way to the store, and each model follows the
//! tail at its own pace), while a snapshot must be the fold of the log up
//! to one position exactly. The price is a second copy of the folds while
//! a snapshot is being made. Only the leader writes; a follower's writer
//! waits to lead. A store that does not answer is asked again next time:
//! a missing snapshot only makes a start read further.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use eventstore::Client;
use orderbook::Market;
use tokio::sync::watch;

use super::leadership::Leadership;
use super::lock::unpoisoned;
use super::start_snapshots::{
    FoldFrom, Lines, due, fold_log, newest_announced, write_down, write_logged,
};
use super::streams::{StreamError, last_position};
use super::supervise::supervise;
use crate::api::FeedPosition;

/// How long the writer waits before looking again.
const WAIT: Duration = Duration::from_secs(10);

/// What the writer needs.
pub struct StartSnapshotWriter {
    pub client: Client,
    pub markets: Vec<Market>,
    /// Bytes of log between two snapshots at least
    /// (`--start-snapshot-every`).
    pub every: u64,
    pub leadership: Leadership,
    /// The position the newest snapshot written covers (see
    /// `Stats::start_snapshot`).
    pub written: Arc<AtomicU64>,
    /// A snapshot start wrote down (and the position it covers), written
    /// first: by this task, so that two snapshots are never being made at
    /// once by one server.
    pub first: std::sync::Mutex<Option<(Lines, FeedPosition)>>,
}

impl StartSnapshotWriter {
    /// Starts the writer, supervised. What it gives turns true once the
    /// writer has stopped, when the server stops: a server stops its store
    /// only after that, so no write is cut off under way (and the store's
    /// client does not log the loss as an error).
    pub fn start(self) -> watch::Receiver<bool> {
        let (stopped, done) = watch::channel(false);
        let writer = Arc::new((self, stopped));
        supervise("start snapshots".into(), move || {
            let writer = writer.clone();
            async move {
                writer.0.run().await;
                writer.1.send_replace(true);
            }
        });
        done
    }

    async fn run(&self) {
        let first = unpoisoned(self.first.lock()).take();
        if let Some((lines, covers)) = first {
            write_logged(&self.client, lines, covers, &self.written).await;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(WAIT) => {}
                () = self.leadership.stopped() => return,
            }
            if self.leadership.term().is_none() {
                continue;
            }
            if let Err(e) = self.write_if_due().await {
                tracing::warn!("writing a start snapshot paused: {e}");
            }
        }
    }

    async fn write_if_due(&self) -> Result<(), StreamError> {
        let newest = newest_announced(&self.client).await?;
        let end = last_position(&self.client).await?;
        if !due(newest.as_ref(), end, self.every) {
            return Ok(());
        }
        let from = FoldFrom::NewestSnapshot;
        let folds = fold_log(&self.client, &self.markets, from, None).await?;
        let Some(covers) = folds.position else {
            return Ok(());
        };
        if let (_, Some(lines)) = write_down(folds).await {
            write_logged(&self.client, lines, covers, &self.written).await;
        }
        Ok(())
    }
}
