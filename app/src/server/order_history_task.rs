//! The task that keeps the order history current: it starts from the
//! fold of the log as start read it, then follows the live tail, and
//! readers borrow the state it keeps.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::live_tail::{LiveTail, Streams, TailEvent};
use super::lock::unpoisoned;
use super::log_read::LogFold;
use super::order_history::OrderHistory;
use super::streams::{Decoded, StreamError};
use super::supervise::supervise;
use crate::api::FeedPosition;

/// A handle on the read model its task keeps current. Cheap to clone.
#[derive(Clone, Default)]
pub struct OrderHistoryHandle {
    state: Arc<RwLock<(OrderHistory, Option<FeedPosition>)>>,
}

/// Folds market and account events in, in the store's order.
fn fold(history: &mut OrderHistory, events: &[Arc<TailEvent>]) {
    for e in events {
        match &e.event {
            Decoded::Book(event) => history.apply_market(event, Some(e.revision)),
            Decoded::Account(event) => history.apply_account(event),
        }
    }
}

impl LogFold for OrderHistory {
    fn fold_page(&mut self, events: &[Arc<TailEvent>]) -> Result<(), StreamError> {
        fold(self, events);
        Ok(())
    }
}

impl OrderHistoryHandle {
    /// Starts the supervised task that follows the tail from `position`
    /// (where start's read of the log ended), on the history folded from
    /// the log up to there. A restart after a panic (which may have left
    /// a fold half done) folds the log again from the beginning.
    pub fn start(
        tail: LiveTail,
        history: OrderHistory,
        position: Option<FeedPosition>,
    ) -> OrderHistoryHandle {
        let handle = OrderHistoryHandle {
            state: Arc::new(RwLock::new((history, position))),
        };
        let task = handle.clone();
        let mut restarted = false;
        supervise("order history".into(), move || {
            let run = task.clone().run(tail.clone(), restarted);
            restarted = true;
            run
        });
        handle
    }

    pub fn read<T>(&self, f: impl FnOnce(&OrderHistory) -> T) -> T {
        let history = unpoisoned(self.state.read());
        f(&history.0)
    }

    /// Reads the history together with the log position it is the fold
    /// of: following the tail from there misses nothing and repeats
    /// nothing.
    pub fn read_at<T>(&self, f: impl FnOnce(&OrderHistory, Option<FeedPosition>) -> T) -> T {
        let history = unpoisoned(self.state.read());
        f(&history.0, history.1)
    }

    async fn run(self, tail: LiveTail, restarted: bool) {
        if restarted {
            *unpoisoned(self.state.write()) = (OrderHistory::default(), None);
        }
        let from = unpoisoned(self.state.read()).1;
        let mut reader = tail.reader(Streams::MarketsAndAccounts, from);
        loop {
            match reader.next().await {
                Ok(progress) => {
                    let mut state = unpoisoned(self.state.write());
                    let (history, position) = &mut *state;
                    fold(history, &progress.events);
                    *position = progress.position.or(*position);
                }
                Err(e) => {
                    tracing::warn!("the order history cannot read the store, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}
