//! The newest events of `$all`, held in memory in order with their
//! positions, and an index of the streams many readers follow alone: the
//! live tail's memory. Generic over the event so its bookkeeping is tested
//! without a store.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::api::FeedPosition;

/// The newest market events, consecutive: it holds every market event
/// after `start` (`None`: from the beginning of `$all`). Generic so its
/// bookkeeping is tested without events.
#[derive(Debug)]
pub struct Window<T> {
    start: Option<FeedPosition>,
    /// The sequence number of the first event held; each event pushed gets
    /// the next one, so a reader keeps its place across evictions.
    first: u64,
    events: VecDeque<(FeedPosition, Arc<T>)>,
    capacity: usize,
    /// An index of each stream that many readers follow alone (the market
    /// streams): a reader of one goes straight to its stream's events
    /// instead of passing over everyone else's.
    followed: HashMap<String, Followed>,
}

/// One followed stream's events in the window.
#[derive(Debug, Default)]
struct Followed {
    /// Sequence numbers of the stream's events held, oldest first.
    seqs: VecDeque<u64>,
    /// The sequence number of its newest event that has left the window: a
    /// reader placed after it lost nothing of this stream when the window
    /// moved past its place.
    left: Option<u64>,
}

impl<T> Window<T> {
    /// A window of `capacity` events after `start`, with an index of each of
    /// the `followed` streams.
    pub fn new(start: Option<FeedPosition>, capacity: usize, followed: &[String]) -> Window<T> {
        let capacity = capacity.max(1);
        Window {
            start,
            first: 0,
            events: VecDeque::with_capacity(capacity),
            capacity,
            followed: followed
                .iter()
                .map(|s| (s.clone(), Followed::default()))
                .collect(),
        }
    }

    /// Whether `stream` has an index here.
    pub fn follows(&self, stream: &str) -> bool {
        self.followed.contains_key(stream)
    }

    /// The newest position the window knows of.
    pub fn reached(&self) -> Option<FeedPosition> {
        self.events.back().map(|e| Some(e.0)).unwrap_or(self.start)
    }

    /// How many bytes of `$all` lie between `position` and the oldest
    /// event held (0: the window holds everything after `position`).
    /// Positions are the log's byte offsets.
    pub fn bytes_behind(&self, position: FeedPosition) -> u64 {
        self.start
            .map_or(0, |start| start.commit.saturating_sub(position.commit))
    }

    /// The sequence number the next event will get.
    pub fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }

    /// Adds the next event, of `stream`. An event at or before the newest
    /// is dropped: after a resubscription the store may send again what it
    /// last sent.
    pub fn push(&mut self, position: FeedPosition, stream: &str, event: T) {
        if Some(position) <= self.reached() {
            return;
        }
        if self.events.len() == self.capacity
            && let Some((oldest, _)) = self.events.pop_front()
        {
            for f in self.followed.values_mut() {
                if f.seqs.front() == Some(&self.first) {
                    f.seqs.pop_front();
                    f.left = Some(self.first);
                }
            }
            self.start = Some(oldest);
            self.first += 1;
        }
        let seq = self.end();
        if let Some(f) = self.followed.get_mut(stream) {
            f.seqs.push_back(seq);
        }
        self.events.push_back((position, Arc::new(event)));
    }

    /// Where a reader that has seen everything up to `position` goes on:
    /// the sequence number of the first event after it, or `None` when the
    /// window no longer holds all that came after it.
    pub fn seq_after(&self, position: Option<FeedPosition>) -> Option<u64> {
        if position < self.start {
            return None;
        }
        let i = self.events.partition_point(|e| Some(e.0) <= position);
        Some(self.first + i as u64)
    }

    /// Up to `max` events from sequence number `seq` on, of which those
    /// `keep` wants are handed out (the rest are only passed over, so a
    /// reader of one market does not touch every other event's count), or
    /// `None` when they have left the window.
    pub fn held_from(&self, seq: u64, max: usize, keep: impl Fn(&T) -> bool) -> Option<Held<T>> {
        let skip = seq.checked_sub(self.first)?;
        let mut held = Held {
            passed: 0,
            last: None,
            kept: Vec::new(),
        };
        for (position, event) in self.events.iter().skip(skip as usize).take(max) {
            held.passed += 1;
            held.last = Some(*position);
            if keep(event) {
                held.kept.push(event.clone());
            }
        }
        Some(held)
    }
}

impl<T> Window<T> {
    /// [`Window::held_from`] for a reader of one followed stream, by its
    /// index: up to `max` of the stream's events from `seq` on, passing over
    /// every other event up to the last one kept (or to the window's end).
    /// A place the window has moved past is kept when none of the stream's
    /// events left with it. `None` when some did, or the stream has no
    /// index.
    pub fn held_of(&self, stream: &str, seq: u64, max: usize) -> Option<Held<T>> {
        let followed = self.followed.get(stream)?;
        if seq < self.first && followed.left.is_some_and(|left| left >= seq) {
            return None;
        }
        let from = followed.seqs.partition_point(|&s| s < seq);
        let kept: Vec<u64> = followed.seqs.iter().skip(from).take(max).copied().collect();
        let next = match kept.last() {
            Some(&last) if kept.len() == max => last + 1,
            _ => self.end(),
        };
        let event = |seq: u64| &self.events[(seq - self.first) as usize];
        Some(Held {
            passed: next.saturating_sub(seq),
            last: (next > seq.max(self.first)).then(|| event(next - 1).0),
            kept: kept.iter().map(|&s| event(s).1.clone()).collect(),
        })
    }
}

/// What [`Window::held_from`] found.
#[derive(Debug)]
pub struct Held<T> {
    /// Events passed, kept or not.
    pub passed: u64,
    /// The position of the last one passed.
    pub last: Option<FeedPosition>,
    pub kept: Vec<Arc<T>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(commit: u64) -> FeedPosition {
        FeedPosition {
            commit,
            prepare: commit,
        }
    }

    fn commits(held: Held<u64>) -> Vec<u64> {
        held.kept.iter().map(|e| **e).collect()
    }

    #[test]
    fn a_reader_goes_on_from_its_position_until_the_window_has_moved_past_it() {
        let mut w = Window::new(Some(at(10)), 3, &[]);
        // Everything after 10 is held (nothing yet): a reader at 10 or
        // later starts at the end, one before 10 must read the store.
        assert_eq!(w.seq_after(Some(at(10))), Some(0));
        assert_eq!(w.seq_after(Some(at(9))), None);
        assert_eq!(w.seq_after(None), None);
        for c in [20, 30, 40] {
            w.push(at(c), "x", c);
        }
        assert_eq!(w.seq_after(Some(at(10))), Some(0));
        assert_eq!(w.seq_after(Some(at(25))), Some(1));
        assert_eq!(w.seq_after(Some(at(40))), Some(3));
        assert_eq!(commits(w.held_from(1, 10, |_| true).unwrap()), [30, 40]);
        assert_eq!(commits(w.held_from(0, 2, |_| true).unwrap()), [20, 30]);
        // A fourth event evicts the first: the window now holds what came
        // after 20; a reader at 10, or at sequence 0, has lost its place.
        w.push(at(50), "x", 50);
        assert_eq!(w.seq_after(Some(at(19))), None);
        assert_eq!(w.seq_after(Some(at(10))), None);
        assert!(w.held_from(0, 10, |_| true).is_none());
        // Passed over but not kept: the reader still moves past them.
        let odd = w.held_from(1, 10, |c| c % 20 != 0).unwrap();
        assert_eq!((odd.passed, odd.last), (3, Some(at(50))));
        assert_eq!(commits(odd), [30, 50]);
        assert_eq!(commits(w.held_from(1, 10, |_| true).unwrap()), [30, 40, 50]);
        assert_eq!(w.seq_after(Some(at(20))), Some(1));
        // What the store sends again after a resubscription is dropped.
        w.push(at(50), "x", 50);
        w.push(at(45), "x", 45);
        assert_eq!((w.end(), w.reached()), (4, Some(at(50))));
    }

    #[test]
    fn a_reader_of_a_followed_stream_goes_by_its_index_and_keeps_its_place_when_it_lost_nothing() {
        let mut w = Window::new(Some(at(0)), 4, &["a".to_string()]);
        assert!(w.follows("a") && !w.follows("b"));
        // Sequence numbers 0..: a at 0 and 3, b at 1 and 2.
        for (c, stream) in [(10, "a"), (20, "b"), (30, "b"), (40, "a")] {
            w.push(at(c), stream, c);
        }
        let held = w.held_of("a", 0, 10).unwrap();
        assert_eq!((held.passed, held.last), (4, Some(at(40))));
        assert_eq!(commits(held), [10, 40]);
        // At most `max`: the reader goes on right after the last one kept.
        let held = w.held_of("a", 0, 1).unwrap();
        assert_eq!((held.passed, held.last), (1, Some(at(10))));
        assert_eq!(commits(held), [10]);
        // From 1: b's two are passed over without being looked at.
        let held = w.held_of("a", 1, 10).unwrap();
        assert_eq!((held.passed, held.last), (3, Some(at(40))));
        assert_eq!(commits(held), [40]);
        // Up to date: nothing passed, nothing moved.
        let held = w.held_of("a", 4, 10).unwrap();
        assert_eq!((held.passed, held.last), (0, None));
        assert!(held.kept.is_empty());
        // Two of b's push out a's 10 and b's 20. A reader placed at 1 (after
        // a's 10) lost only b's, so it keeps its place; one at 0 lost a's 10
        // and must read the store.
        w.push(at(50), "b", 50);
        w.push(at(60), "b", 60);
        assert!(w.held_of("a", 0, 10).is_none());
        let held = w.held_of("a", 1, 10).unwrap();
        assert_eq!((held.passed, held.last), (5, Some(at(60))));
        assert_eq!(commits(held), [40]);
        // A stream without an index has no such shortcut.
        assert!(w.held_of("b", 2, 10).is_none());
    }

    #[test]
    fn an_empty_store_is_held_from_the_beginning() {
        let mut w = Window::new(None, 2, &[]);
        assert_eq!(w.seq_after(None), Some(0));
        assert_eq!(w.reached(), None);
        w.push(at(5), "x", 5);
        assert_eq!(w.seq_after(None), Some(0));
        assert_eq!(w.reached(), Some(at(5)));
    }
}
