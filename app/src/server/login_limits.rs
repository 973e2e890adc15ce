//! How often one may try to log in or sign up: the guard against guessing
//! passwords.
//!
//! Failed log-ins are counted per username (known or not, so the answer
//! never tells which names exist) and per client address. After
//! [`FREE_FAILURES`] failures in a row a name must wait before the next
//! try, twice as long after each further failure, up to [`MAX_WAIT`]; a
//! success clears its count. An address gets [`ADDRESS_FAILURES`] failures
//! per [`WINDOW`] across all names, and [`ADDRESS_SIGN_UPS`] sign-ups. A
//! refused try is answered at once and checks no password.
//!
//! The counts live in this server's memory: several servers on one store
//! each count their own (a shared limit would be a store stream of its
//! own, written on every failure, which is the next step for a cluster).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures in a row a username may have before it must wait.
pub const FREE_FAILURES: u32 = 5;
/// The first wait, doubled after each further failure.
pub const FIRST_WAIT: Duration = Duration::from_secs(2);
/// The longest wait.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// The window an address's failures and sign-ups are counted in.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed log-ins an address may make per window, over all names.
pub const ADDRESS_FAILURES: usize = 30;
/// Sign-ups an address may make per window.
pub const ADDRESS_SIGN_UPS: usize = 5;
/// Names and addresses remembered at most; past it, those with nothing
/// recent are forgotten, so guessing at made-up names cannot fill memory.
const MAX_TRACKED: usize = 100_000;

/// Why a try was refused: what to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This username failed too often: wait this long.
    Name(Duration),
    /// This address failed too often (or signed up too often).
    Address(Duration),
}

#[derive(Debug, Default)]
struct NameRecord {
    failures: u32,
    last: Option<Instant>,
}

/// The counts: see the module docs.
#[derive(Debug, Default)]
pub struct LoginLimits {
    names: HashMap<String, NameRecord>,
    failures: HashMap<IpAddr, Vec<Instant>>,
    sign_ups: HashMap<IpAddr, Vec<Instant>>,
}

/// How long until the oldest of `times` within the window leaves it, when
/// there are `limit` or more of them.
fn full(times: &mut Vec<Instant>, limit: usize, now: Instant) -> Option<Duration> {
    times.retain(|t| now.saturating_duration_since(*t) < WINDOW);
    (times.len() >= limit).then(|| WINDOW.saturating_sub(now.saturating_duration_since(times[0])))
}

/// Past [`MAX_TRACKED`] addresses, forgets those with nothing in the window.
fn forget_quiet(by_address: &mut HashMap<IpAddr, Vec<Instant>>, now: Instant) {
    if by_address.len() >= MAX_TRACKED {
        by_address.retain(|_, times| {
            times
                .last()
                .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
        });
    }
}

impl LoginLimits {
    /// Whether `name` may try to log in from `address` now.
    pub fn may_log_in(&mut self, name: &str, address: IpAddr, now: Instant) -> Result<(), Refusal> {
        if let Some(wait) = full(
            self.failures.entry(address).or_default(),
            ADDRESS_FAILURES,
            now,
        ) {
            return Err(Refusal::Address(wait));
        }
        let Some(record) = self.names.get(&name.to_lowercase()) else {
            return Ok(());
        };
        let Some(over) = record.failures.checked_sub(FREE_FAILURES) else {
            return Ok(());
        };
        let wait = FIRST_WAIT
            .saturating_mul(2u32.saturating_pow(over))
            .min(MAX_WAIT);
        let since = record
            .last
            .map_or(wait, |t| now.saturating_duration_since(t));
        match wait.checked_sub(since) {
            Some(left) if !left.is_zero() => Err(Refusal::Name(left)),
            _ => Ok(()),
        }
    }

    /// Records a log-in that was tried (allowed by [`LoginLimits::may_log_in`]).
    pub fn logged_in(&mut self, name: &str, address: IpAddr, succeeded: bool, now: Instant) {
        let key = name.to_lowercase();
        if succeeded {
            self.names.remove(&key);
            return;
        }
        if self.names.len() >= MAX_TRACKED {
            self.names.retain(|_, r| {
                r.last
                    .is_some_and(|t| now.saturating_duration_since(t) < MAX_WAIT)
            });
        }
        forget_quiet(&mut self.failures, now);
        let record = self.names.entry(key).or_default();
        record.failures += 1;
        record.last = Some(now);
        self.failures.entry(address).or_default().push(now);
    }

    /// Whether `address` may sign up now; counts it if so.
    pub fn sign_up(&mut self, address: IpAddr, now: Instant) -> Result<(), Refusal> {
        forget_quiet(&mut self.sign_ups, now);
        let times = self.sign_ups.entry(address).or_default();
        if let Some(wait) = full(times, ADDRESS_SIGN_UPS, now) {
            return Err(Refusal::Address(wait));
        }
        times.push(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_name_waits_longer_after_each_failure_past_the_free_ones() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(limits.may_log_in("alice", HOME, t0), Ok(()));
            limits.logged_in("alice", HOME, false, t0);
        }
        // From any address, whatever the case of the name.
        assert_eq!(
            limits.may_log_in("Alice", AWAY, t0),
            Err(Refusal::Name(FIRST_WAIT))
        );
        let later = t0 + FIRST_WAIT;
        assert_eq!(limits.may_log_in("alice", HOME, later), Ok(()));
        limits.logged_in("alice", HOME, false, later);
        assert_eq!(
            limits.may_log_in("alice", HOME, later),
            Err(Refusal::Name(FIRST_WAIT * 2))
        );
        // The wait stops growing at the longest.
        let mut now = later;
        for _ in 0..20 {
            now += MAX_WAIT;
            limits.logged_in("alice", HOME, false, now);
        }
        assert_eq!(
            limits.may_log_in("alice", AWAY, now),
            Err(Refusal::Name(MAX_WAIT))
        );
        // Other names are not held up; a success clears the name.
        assert_eq!(limits.may_log_in("bob", AWAY, now), Ok(()));
        limits.logged_in("alice", AWAY, true, now + MAX_WAIT);
        assert_eq!(limits.may_log_in("alice", AWAY, now + MAX_WAIT), Ok(()));
    }

    #[test]
    fn an_address_is_limited_over_all_names_and_in_sign_ups() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for n in 0..ADDRESS_FAILURES {
            let name = format!("name{n}");
            assert_eq!(limits.may_log_in(&name, HOME, t0), Ok(()));
            limits.logged_in(&name, HOME, false, t0);
        }
        assert_eq!(
            limits.may_log_in("fresh", HOME, t0),
            Err(Refusal::Address(WINDOW))
        );
        assert_eq!(limits.may_log_in("fresh", AWAY, t0), Ok(()));
        assert_eq!(limits.may_log_in("fresh", HOME, t0 + WINDOW), Ok(()));
        for _ in 0..ADDRESS_SIGN_UPS {
            assert_eq!(limits.sign_up(HOME, t0), Ok(()));
        }
        let minute = Duration::from_secs(60);
        assert_eq!(
            limits.sign_up(HOME, t0 + minute),
            Err(Refusal::Address(WINDOW - minute))
        );
        assert_eq!(limits.sign_up(AWAY, t0), Ok(()));
        assert_eq!(limits.sign_up(HOME, t0 + WINDOW), Ok(()));
    }
}
