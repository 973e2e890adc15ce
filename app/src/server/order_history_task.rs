//! The task that keeps the order history current: it folds the market and
//! account streams into an [`OrderHistory`] from the beginning, then
//! follows the live tail, and readers borrow the state it keeps.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::live_tail::{LiveTail, Streams};
use super::lock::unpoisoned;
use super::order_history::OrderHistory;
use super::streams::Decoded;
use super::supervise::supervise;
use crate::api::FeedPosition;

/// A handle on the read model its task keeps current. Cheap to clone.
#[derive(Clone, Default)]
pub struct OrderHistoryHandle {
    state: Arc<RwLock<(OrderHistory, Option<FeedPosition>)>>,
}

impl OrderHistoryHandle {
    /// Starts the supervised task that folds the log in from the beginning.
    /// A restart after a panic folds it again from the beginning.
    pub fn start(tail: LiveTail) -> OrderHistoryHandle {
        let handle = OrderHistoryHandle::default();
        let task = handle.clone();
        supervise("order history".into(), move || {
            task.clone().run(tail.clone())
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

    async fn run(self, tail: LiveTail) {
        *unpoisoned(self.state.write()) = (OrderHistory::default(), None);
        let mut reader = tail.reader(Streams::MarketsAndAccounts, None);
        loop {
            match reader.next().await {
                Ok(progress) => {
                    let mut state = unpoisoned(self.state.write());
                    let (history, position) = &mut *state;
                    for e in &progress.events {
                        match &e.event {
                            Decoded::Book(event) => history.apply_market(event),
                            Decoded::Account(event) => history.apply_account(event),
                        }
                    }
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
