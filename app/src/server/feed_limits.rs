//! What one anonymous websocket may ask of the server: how many sockets a
//! client address may hold open, how often a socket may switch markets, how
//! much history a resume may replay (how large a message may be is
//! `feed_socket::MAX_MESSAGE`), and how long its messages are gathered
//! before a write. A client over a limit is told why and its
//! socket closed; nobody else notices.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::lock::unpoisoned;

/// The limits, from the command line (see the README's configuration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedLimits {
    /// Open market-feed sockets per client address.
    pub sockets_per_address: usize,
    /// `Watch` requests a socket may send per second, on average...
    pub watches_per_second: u32,
    /// ...and in a burst.
    pub watch_burst: u32,
    /// How far behind the tail's window (in bytes of the store's `$all`
    /// log) a page may resume and be sent every trade it missed, read from
    /// the store; a page further behind gets a fresh snapshot instead (its
    /// chart's candles and tape as they are now), so one resume never costs
    /// the server more than this much reading.
    pub replay_bytes: u64,
    /// How long a socket's first ready message waits for others to go out
    /// with it in one write (ms; 0: none). A trade and the depth change it
    /// makes come a moment apart: gathered, they cost the server one write
    /// per socket instead of two, which at thousands of sockets is most of
    /// what it spends.
    pub gather_ms: u64,
}

impl Default for FeedLimits {
    fn default() -> FeedLimits {
        FeedLimits {
            sockets_per_address: 16,
            watches_per_second: 5,
            watch_burst: 20,
            replay_bytes: 4 << 20,
            gather_ms: 20,
        }
    }
}

/// The open sockets per client address. Cheap to clone.
#[derive(Clone, Default)]
pub struct SocketCounts(Arc<Mutex<HashMap<IpAddr, usize>>>);

impl SocketCounts {
    /// A place for one more socket from `address`, or `None` when it holds
    /// `limit` already. The place is given back when the slot is dropped.
    pub fn admit(&self, address: IpAddr, limit: usize) -> Option<SocketSlot> {
        let mut counts = unpoisoned(self.0.lock());
        let n = counts.entry(address).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(SocketSlot {
            counts: self.clone(),
            address,
        })
    }

    /// Sockets open from `address`.
    pub fn open(&self, address: IpAddr) -> usize {
        unpoisoned(self.0.lock())
            .get(&address)
            .copied()
            .unwrap_or(0)
    }
}

/// One socket's place in [`SocketCounts`].
pub struct SocketSlot {
    counts: SocketCounts,
    address: IpAddr,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut counts = unpoisoned(self.counts.0.lock());
        if let Some(n) = counts.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.address);
            }
        }
    }
}

/// A token bucket: `burst` requests at once, refilled at `per_second`.
#[derive(Debug)]
pub struct WatchRate {
    tokens: f64,
    burst: f64,
    per_second: f64,
    at: Instant,
}

impl WatchRate {
    pub fn new(limits: &FeedLimits, now: Instant) -> WatchRate {
        WatchRate {
            tokens: f64::from(limits.watch_burst.max(1)),
            burst: f64::from(limits.watch_burst.max(1)),
            per_second: f64::from(limits.watches_per_second),
            at: now,
        }
    }

    /// Whether one more request at `now` is within the rate.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn sockets_per_address_are_counted_and_given_back() {
        let counts = SocketCounts::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = counts.admit(a, 2).unwrap();
        let _second = counts.admit(a, 2).unwrap();
        assert!(counts.admit(a, 2).is_none(), "a third socket is refused");
        assert!(counts.admit(b, 2).is_some(), "another address is not");
        drop(first);
        assert_eq!(counts.open(a), 1);
        assert!(counts.admit(a, 2).is_some());
    }

    #[test]
    fn watches_are_allowed_in_a_burst_then_at_the_rate() {
        let limits = FeedLimits {
            watches_per_second: 2,
            watch_burst: 3,
            ..FeedLimits::default()
        };
        let t0 = Instant::now();
        let mut rate = WatchRate::new(&limits, t0);
        assert!((0..3).all(|_| rate.allow(t0)));
        assert!(!rate.allow(t0));
        assert!(rate.allow(t0 + Duration::from_millis(500)));
        assert!(!rate.allow(t0 + Duration::from_millis(600)));
        assert!(rate.allow(t0 + Duration::from_millis(1100)));
    }
}
