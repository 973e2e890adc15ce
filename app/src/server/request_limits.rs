//! How much one client may ask of the API: token buckets of request
//! weight per address and per API key, and of new orders per account.
//! A request that would overdraw its bucket is refused before any work,
//! with how long to wait. The buckets are this server's (not in the log):
//! after a restart everyone starts full.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderbook::AccountId;

use super::lock::unpoisoned;

/// The limits, as the server's flags set them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Request weight one address may spend per minute (and at once).
    pub weight_per_minute_per_address: u32,
    /// Request weight one API key may spend per minute (and at once).
    pub weight_per_minute_per_key: u32,
    /// New orders one account may place per 10 seconds (and at once).
    pub orders_per_10s: u32,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            weight_per_minute_per_address: 6000,
            weight_per_minute_per_key: 6000,
            orders_per_10s: 50,
        }
    }
}

/// The request weight of the page's reads that cost the server most, spent
/// from the asking address's bucket (the one its API requests spend too):
/// a replay of a market's past (a store read and a book rebuilt), a page
/// of older candles, a page of the trader's history, a CSV download.
pub const REPLAY_WEIGHT: u32 = 20;
pub const CANDLES_WEIGHT: u32 = 10;
pub const HISTORY_WEIGHT: u32 = 5;
pub const EXPORT_WEIGHT: u32 = 50;
/// A page's feed resuming from a position (a replay of the tail, or of the
/// store, up to `--feed-replay-bytes`); over the pace it gets a snapshot.
pub const RESUME_WEIGHT: u32 = 20;

/// Whose bucket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Holder {
    /// IPv6 clients by their /64: one host has a whole /64 to pick from.
    Address(IpAddr),
    Key(String),
    Orders(AccountId),
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Which limit a refusal is of, and when to try again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverLimit {
    pub what: &'static str,
    /// The limit, per `per`.
    pub limit: u32,
    pub per: &'static str,
    pub retry_after: Duration,
}

impl OverLimit {
    /// The wait in whole seconds, rounded up (at least one), as
    /// `Retry-After` says it.
    pub fn retry_after_s(&self) -> u64 {
        self.retry_after.as_secs_f64().ceil().max(1.0) as u64
    }
}

impl std::fmt::Display for OverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "too many requests: {} is limited to {} per {}; retry after {} s",
            self.what,
            self.limit,
            self.per,
            self.retry_after_s()
        )
    }
}

/// The buckets. Cheap to clone: every clone is the same limits.
#[derive(Clone, Default)]
pub struct RequestLimits {
    limits: ApiLimits,
    buckets: Arc<Mutex<HashMap<Holder, Bucket>>>,
}

/// Buckets kept before full (idle) ones are forgotten.
const KEPT: usize = 100_000;

impl RequestLimits {
    pub fn new(limits: ApiLimits) -> RequestLimits {
        RequestLimits {
            limits,
            buckets: Arc::default(),
        }
    }

    /// Spends a request's `weight` from its address's bucket.
    pub fn address(&self, ip: IpAddr, weight: u32, now: Instant) -> Result<(), OverLimit> {
        let per_minute = self.limits.weight_per_minute_per_address;
        let over = OverLimit {
            what: "request weight per address",
            limit: per_minute,
            per: "minute",
            retry_after: Duration::ZERO,
        };
        self.spend(
            Holder::Address(grouped(ip)),
            weight,
            per_minute,
            60.0,
            now,
            over,
        )
    }

    /// Spends a request's `weight` from its API key's bucket.
    pub fn key(&self, key_id: &str, weight: u32, now: Instant) -> Result<(), OverLimit> {
        let per_minute = self.limits.weight_per_minute_per_key;
        let over = OverLimit {
            what: "request weight per API key",
            limit: per_minute,
            per: "minute",
            retry_after: Duration::ZERO,
        };
        self.spend(
            Holder::Key(key_id.to_string()),
            weight,
            per_minute,
            60.0,
            now,
            over,
        )
    }

    /// Counts one new order of `account`.
    pub fn order(&self, account: AccountId, now: Instant) -> Result<(), OverLimit> {
        let per = self.limits.orders_per_10s;
        let over = OverLimit {
            what: "new orders per account",
            limit: per,
            per: "10 seconds",
            retry_after: Duration::ZERO,
        };
        self.spend(Holder::Orders(account), 1, per, 10.0, now, over)
    }

    fn spend(
        &self,
        holder: Holder,
        weight: u32,
        capacity: u32,
        period_s: f64,
        now: Instant,
        over: OverLimit,
    ) -> Result<(), OverLimit> {
        let capacity = f64::from(capacity.max(1));
        let rate = capacity / period_s;
        let mut buckets = unpoisoned(self.buckets.lock());
        if buckets.len() >= KEPT {
            // Forget the buckets that have filled up again: they hold
            // nothing a new bucket would not.
            buckets
                .retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < capacity);
        }
        let bucket = buckets.entry(holder).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refilled =
            bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
        let tokens = refilled.min(capacity);
        let weight = f64::from(weight);
        if tokens < weight {
            let wait = ((weight.min(capacity) - tokens) / rate).max(0.001);
            return Err(OverLimit {
                retry_after: Duration::from_secs_f64(wait),
                ..over
            });
        }
        *bucket = Bucket {
            tokens: tokens - weight,
            at: now,
        };
        Ok(())
    }
}

/// An address as its bucket knows it: IPv6 by its /64 (an IPv4 address
/// seen through an IPv6 socket as itself).
pub fn grouped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits::new(ApiLimits {
            weight_per_minute_per_address: 60,
            weight_per_minute_per_key: 30,
            orders_per_10s: 5,
        })
    }

    #[test]
    fn weight_is_spent_then_refused_with_the_wait_then_refilled() {
        let l = limits();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.address(ip, 50, t0).is_ok());
        let over = l.address(ip, 20, t0).unwrap_err();
        // 10 left of 60 per minute: 10 more take 10 s.
        assert_eq!(over.retry_after.as_secs(), 10);
        assert_eq!(over.limit, 60);
        assert!(l.address(ip, 20, t0 + Duration::from_secs(10)).is_ok());
        // Another address has its own bucket.
        assert!(l.address("192.0.2.2".parse().unwrap(), 60, t0).is_ok());
    }

    #[test]
    fn ipv6_clients_share_a_bucket_per_64_and_keys_and_orders_have_their_own() {
        let l = limits();
        let t0 = Instant::now();
        assert!(
            l.address("2001:db8:1:2::1".parse().unwrap(), 60, t0)
                .is_ok()
        );
        assert!(
            l.address("2001:db8:1:2::ffff".parse().unwrap(), 1, t0)
                .is_err()
        );
        assert!(l.address("2001:db8:1:3::1".parse().unwrap(), 1, t0).is_ok());
        assert!(l.key("k", 30, t0).is_ok());
        assert!(l.key("k", 1, t0).is_err());
        for _ in 0..5 {
            assert!(l.order(7, t0).is_ok());
        }
        let over = l.order(7, t0).unwrap_err();
        assert_eq!((over.limit, over.per), (5, "10 seconds"));
        assert_eq!(over.retry_after, Duration::from_secs(2));
        assert!(l.order(8, t0).is_ok());
    }
}
