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
    /// Of an address's request weight, how much its costly reads (see
    /// [`RequestLimits::costly`]) may spend at once. They refill at the
    /// address's per-minute rate, so this bounds only their burst.
    pub costly_burst_per_address: u32,
}

impl Default for ApiLimits {
    fn default() -> ApiLimits {
        ApiLimits {
            weight_per_minute_per_address: 6000,
            weight_per_minute_per_key: 6000,
            orders_per_10s: 50,
            costly_burst_per_address: 200,
        }
    }
}

/// The request weight of the page's reads that cost the server most, spent
/// from the asking address's bucket (the one its API requests spend too)
/// and its costly reads' bucket: a replay of a market's past (a store read
/// and a book rebuilt), a page of older candles, a page of the trader's
/// history, a CSV download.
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
    /// An address's costly reads (IPv6 by /64, as `Address`).
    Costly(IpAddr),
}

/// One bucket a request spends from: whose, how much it holds, over how
/// many seconds it refills, and what its refusal says.
struct Draw {
    holder: Holder,
    capacity: u32,
    period_s: f64,
    over: OverLimit,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
    /// What it holds full, and how fast it refills (per second).
    capacity: f64,
    rate: f64,
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
        self.spend(&[self.address_draw(ip)], weight, now)
    }

    /// Spends a costly read's `weight` (a replay, a page of older candles
    /// or of history, a download, a feed resume) from its address's bucket
    /// and, in the same step, from the address's costly reads' bucket,
    /// which holds only `costly_burst_per_address`. So a client that saved
    /// a minute's weight cannot spend it on hundreds of store reads at
    /// once: a burst of those was what slowed every trader down (the soak
    /// bench), while the steady rate (enough to play a replay at four
    /// moments a second) stays the address's.
    pub fn costly(&self, ip: IpAddr, weight: u32, now: Instant) -> Result<(), OverLimit> {
        let per_minute = self.limits.weight_per_minute_per_address.max(1);
        let burst = self.limits.costly_burst_per_address;
        let costly = Draw {
            holder: Holder::Costly(grouped(ip)),
            capacity: burst,
            period_s: 60.0 * f64::from(burst.max(1)) / f64::from(per_minute),
            over: OverLimit {
                what: "the weight of costly reads one address may spend at once",
                limit: burst,
                per: "burst, refilled at the address's request weight per minute",
                retry_after: Duration::ZERO,
            },
        };
        self.spend(&[self.address_draw(ip), costly], weight, now)
    }

    fn address_draw(&self, ip: IpAddr) -> Draw {
        let per_minute = self.limits.weight_per_minute_per_address;
        Draw {
            holder: Holder::Address(grouped(ip)),
            capacity: per_minute,
            period_s: 60.0,
            over: OverLimit {
                what: "request weight per address",
                limit: per_minute,
                per: "minute",
                retry_after: Duration::ZERO,
            },
        }
    }

    /// Spends a request's `weight` from its API key's bucket.
    pub fn key(&self, key_id: &str, weight: u32, now: Instant) -> Result<(), OverLimit> {
        let per_minute = self.limits.weight_per_minute_per_key;
        let draw = Draw {
            holder: Holder::Key(key_id.to_string()),
            capacity: per_minute,
            period_s: 60.0,
            over: OverLimit {
                what: "request weight per API key",
                limit: per_minute,
                per: "minute",
                retry_after: Duration::ZERO,
            },
        };
        self.spend(&[draw], weight, now)
    }

    /// Counts one new order of `account`.
    pub fn order(&self, account: AccountId, now: Instant) -> Result<(), OverLimit> {
        let per = self.limits.orders_per_10s;
        let draw = Draw {
            holder: Holder::Orders(account),
            capacity: per,
            period_s: 10.0,
            over: OverLimit {
                what: "new orders per account",
                limit: per,
                per: "10 seconds",
                retry_after: Duration::ZERO,
            },
        };
        self.spend(&[draw], 1, now)
    }

    /// Spends `weight` from every bucket of `draws`, or from none: the
    /// first that cannot pay refuses it, with how long it takes to refill.
    fn spend(&self, draws: &[Draw], weight: u32, now: Instant) -> Result<(), OverLimit> {
        let mut buckets = unpoisoned(self.buckets.lock());
        if buckets.len() >= KEPT {
            // Forget the buckets that have filled up again: they hold
            // nothing a new bucket would not.
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() * b.rate < b.capacity
            });
        }
        let weight = f64::from(weight);
        let mut paid = Vec::with_capacity(draws.len());
        for d in draws {
            let capacity = f64::from(d.capacity.max(1));
            let rate = capacity / d.period_s;
            let bucket = buckets.get(&d.holder).copied().unwrap_or(Bucket {
                tokens: capacity,
                at: now,
                capacity,
                rate,
            });
            let refilled =
                bucket.tokens + now.saturating_duration_since(bucket.at).as_secs_f64() * rate;
            let tokens = refilled.min(capacity);
            if tokens < weight {
                let wait = ((weight.min(capacity) - tokens) / rate).max(0.001);
                return Err(OverLimit {
                    retry_after: Duration::from_secs_f64(wait),
                    ..d.over
                });
            }
            paid.push(Bucket {
                tokens: tokens - weight,
                at: now,
                capacity,
                rate,
            });
        }
        for (d, bucket) in draws.iter().zip(paid) {
            buckets.insert(d.holder.clone(), bucket);
        }
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
            costly_burst_per_address: 20,
        })
    }

    #[test]
    fn costly_reads_spend_the_address_weight_and_at_most_their_burst_at_once() {
        let l = limits();
        let t0 = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.costly(ip, 20, t0).is_ok());
        // The burst is spent, though the address has 40 of 60 left.
        let over = l.costly(ip, 5, t0).unwrap_err();
        assert_eq!(
            (over.limit, over.what),
            (
                20,
                "the weight of costly reads one address may spend at once"
            )
        );
        // It refills at the address's rate: one a second.
        assert_eq!(over.retry_after, Duration::from_secs(5));
        assert!(l.costly(ip, 5, t0 + Duration::from_secs(5)).is_ok());
        // The address's own bucket paid for both reads it let through and
        // nothing for the one refused: 60 - 20 - 5 + 5 refilled = 40.
        let t1 = t0 + Duration::from_secs(5);
        assert!(l.address(ip, 41, t1).is_err());
        assert!(l.address(ip, 40, t1).is_ok());
        // Ten seconds on, both hold 10: a read of 20 is refused by the
        // address, a read of 10 passes both.
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(
            l.costly(ip, 20, t2).unwrap_err().what,
            "request weight per address"
        );
        assert!(l.costly(ip, 10, t2).is_ok());
        assert!(l.costly(ip, 1, t2).is_err());
        // Another address has its own burst.
        assert!(l.costly("192.0.2.2".parse().unwrap(), 20, t0).is_ok());
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
