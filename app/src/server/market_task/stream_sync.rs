//! Keeping the task level with its stream: the book follows what other
//! writers appended (through the live tail), is read again from the store
//! when the stream moved on past it, and the ledger is brought to exactly
//! the book's revision before a batch is decided. The book readers see is
//! published from here.

use std::sync::Arc;
use std::time::Duration;

use orderbook::{Book, Event};

use super::{MarketTask, State};
use crate::server::leadership::fenced_term;
use crate::server::live_tail::TailEvent;
use crate::server::lock::unpoisoned;
use crate::server::streams::{Direction, load_market, read_market};

impl MarketTask {
    /// Applies what another writer appended to the stream: events at the
    /// task's revision and on, in order (its own come back through the tail
    /// too, and are behind it by then). A gap means the tail and the task
    /// disagree about the stream: the stream decides.
    pub(super) async fn apply_others(&self, state: &mut State, events: &[Arc<TailEvent>]) {
        let mut applied = Vec::new();
        for e in events {
            let Some(event) = e.book() else { continue };
            if e.revision < state.revision {
                continue;
            }
            if e.revision > state.revision {
                tracing::warn!(
                    symbol = self.symbol(),
                    at = state.revision,
                    seen = e.revision,
                    "the stream moved on past this book; reloading it"
                );
                let now = self.read_stream().await;
                *state = self.state_from(&now);
                return;
            }
            // The ledger takes another writer's events from the accounts
            // task, which folds every stream in the store's order (so an
            // account is opened before its trades are folded).
            state.book.apply(event);
            state.revision += 1;
            if let Event::StreamFenced(f) = event {
                state.term = state.term.max(f.term);
                self.leadership.fenced_at(f.term);
            }
            applied.push(event.clone());
        }
        if !applied.is_empty() {
            self.publish_batch(state, &applied);
        }
    }

    pub(super) async fn read_stream(&self) -> Vec<Event> {
        let mut pause = Duration::from_millis(50);
        loop {
            match load_market(&self.client, self.symbol()).await {
                Ok(events) => return events,
                Err(e) => {
                    tracing::warn!(
                        symbol = self.symbol(),
                        "loading the book failed, retrying: {e}"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    pub(super) fn state_from(&self, events: &[Event]) -> State {
        let term = fenced_term(events);
        self.leadership.fenced_at(term);
        self.state_of(Book::replay(self.market.clone(), events), term)
    }

    /// The task's state around a book holding the whole stream, fenced at
    /// `term`.
    pub(super) fn state_of(&self, book: Book, term: u64) -> State {
        let state = State {
            revision: book.events_applied(),
            book,
            term,
        };
        self.publish(&state);
        state
    }

    /// Makes the task's book the one readers see (at start and after a
    /// reload: a copy of the whole book).
    pub(super) fn publish(&self, state: &State) {
        *unpoisoned(self.published.write()) = Arc::new(state.book.clone());
        self.revision.send_replace(state.book.events_applied());
    }

    /// Brings the readers' book up to the task's after a batch landed, by
    /// applying the batch's events to it: copying the whole book after every
    /// append cost time in the size of the book (77 us at 10,000 resting
    /// orders, 1.3 ms at 100,000). A reader still holding the old book
    /// keeps it; only then is a copy made.
    pub(super) fn publish_batch(&self, state: &State, events: &[Event]) {
        let mut published = unpoisoned(self.published.write());
        let book = Arc::make_mut(&mut published);
        for e in events {
            book.apply(e);
        }
        debug_assert_eq!(book.events_applied(), state.book.events_applied());
        drop(published);
        self.revision.send_replace(state.book.events_applied());
    }

    /// Makes the ledger hold exactly this market's stream up to the book:
    /// what the tail has not folded yet is read from the store. (The
    /// ledger may be behind after it was reloaded while this market's last
    /// append was on its way; it can be ahead only of a book that missed
    /// another writer's events, which the stream then gives.)
    pub(super) async fn sync_ledger(&self, state: &mut State) {
        loop {
            let folded = self.ledger.read(|l| l.market_events(self.symbol()));
            if folded == state.revision {
                return;
            }
            if folded > state.revision {
                let now = self.read_stream().await;
                *state = self.state_from(&now);
                if self.ledger.read(|l| l.market_events(self.symbol())) > state.revision {
                    // The ledger holds revisions the stream does not: a
                    // batch of ours that never landed. Fold the log again.
                    self.ledger.reload().await;
                }
                continue;
            }
            let missing = state.revision - folded;
            match read_market(
                &self.client,
                self.symbol(),
                folded,
                missing,
                Direction::Forwards,
            )
            .await
            {
                Ok(events) => {
                    for (i, e) in events.iter().enumerate() {
                        self.ledger
                            .fold_market(&self.market.spec, folded + i as u64, e);
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        symbol = self.symbol(),
                        "reading the stream failed, retrying: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
    }
}
