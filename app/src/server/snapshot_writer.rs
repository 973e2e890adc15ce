//! The leader's writer of its books' snapshots (see `book_snapshots`): one
//! supervised task per market folds the market's stream into a book of
//! its own and writes each snapshot at its point, behind the order path
//! (an order never waits for a snapshot).
//!
//! It resumes from the newest snapshot stored, so a server that starts to
//! lead on a history without snapshots (an old log, or one written with
//! another interval or format version) writes them all, oldest first,
//! while it serves. Only the leader writes; a follower's writer waits to
//! lead. A snapshot is the same whoever writes it, so two writers in a
//! takeover write one copy between them. A store that does not answer is
//! asked again after a pause: a missing snapshot only makes replays fold
//! further.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use eventstore::Client;
use orderbook::Market;

use super::book_snapshots::{due, latest_within, write};
use super::leadership::Leadership;
use super::streams::{Direction, StreamError, read_market};
use super::supervise::supervise;

/// Events read from the store at a time.
const PAGE: u64 = 4096;
/// How long the writer waits before looking again: for the market to pass
/// the next snapshot's point, to lead, or for the store.
const WAIT: Duration = Duration::from_millis(250);

/// What a market's writer needs.
pub struct SnapshotWriter {
    pub client: Client,
    pub market: Market,
    /// Events between two snapshots (`--snapshot-every`).
    pub every: u64,
    pub leadership: Leadership,
    /// How many events the market's stream holds, as this server last saw
    /// it: the writer reads the store only once that passes a snapshot's
    /// point.
    pub events: Arc<dyn Fn() -> u64 + Send + Sync>,
}

impl SnapshotWriter {
    /// Starts the writer, supervised. Returns the newest snapshot it knows
    /// is stored (0: none), which it keeps up to date.
    pub fn start(self) -> Arc<AtomicU64> {
        let stored = Arc::new(AtomicU64::new(0));
        let name = format!("snapshots of {}", self.market.symbol);
        let (writer, known) = (Arc::new(self), stored.clone());
        supervise(name, move || {
            let (writer, known) = (writer.clone(), known.clone());
            async move { writer.run(&known).await }
        });
        stored
    }

    /// Writes snapshots while this server leads, until it stops.
    async fn run(&self, stored: &AtomicU64) {
        while !self.leadership.stopping() {
            if self.leadership.term().is_some()
                && let Err(e) = self.follow(stored).await
            {
                let symbol = self.market.symbol;
                tracing::warn!(%symbol, "writing the book's snapshots paused: {e}");
            }
            tokio::time::sleep(WAIT).await;
        }
    }

    /// From the newest stored snapshot, folds the stream and writes every
    /// snapshot after it, until this server no longer leads.
    async fn follow(&self, stored: &AtomicU64) -> Result<(), StreamError> {
        let symbol = self.market.symbol.as_str();
        let every = self.every;
        let (mut k, mut book) =
            latest_within(&self.client, &self.market, every, (self.events)()).await?;
        stored.store(k, Ordering::Relaxed);
        while self.leadership.term().is_some() && !self.leadership.stopping() {
            if (self.events)() < (k + 1).saturating_mul(every) {
                tokio::time::sleep(WAIT).await;
                continue;
            }
            let from = book.events_applied();
            let page = read_market(&self.client, symbol, from, PAGE, Direction::Forwards).await?;
            if page.is_empty() {
                tokio::time::sleep(WAIT).await;
            }
            for e in &page {
                book.apply(e);
                if due(&book, every, k + 1) {
                    write(&self.client, every, k + 1, &book).await?;
                    k += 1;
                    stored.store(k, Ordering::Relaxed);
                }
            }
        }
        Ok(())
    }
}
