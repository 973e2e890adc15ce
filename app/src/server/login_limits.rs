//! How often one may try to log in or sign up: the guard against guessing
//! passwords.
//!
//! A try is counted **before** its password is checked, as a failure,
//! and the count is taken back when the password was right: so a burst of
//! concurrent tries gets no more password checks than tries in a row
//! would. Counted:
//! - per username **and address** (IPv6 by its /64): after
//!   [`FREE_FAILURES`] failures in a row the pair must wait before its next
//!   try, twice as long after each further failure, up to [`MAX_WAIT`]; a
//!   success clears it. Keyed by the pair, so someone guessing a name from
//!   elsewhere does not lock its owner out;
//! - per username over all addresses, [`NAME_FAILURES`] per [`WINDOW`]: a
//!   guess spread over many addresses stops there, for everyone but a
//!   browser that already holds a session of that account;
//! - per address over all names: [`ADDRESS_FAILURES`] failures and
//!   [`ADDRESS_LOG_INS`] tries (right or wrong) per window, and
//!   [`ADDRESS_SIGN_UPS`] sign-ups.
//!
//! Names are counted whether or not they exist, so the answer never tells
//! which do. A refused try is answered at once and checks no password.
//!
//! The counts live in this server's memory: several servers on one store
//! each count their own (a shared limit would be a store stream of its
//! own, written on every failure, which is the next step for a cluster).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::request_limits::grouped;

/// Failures in a row a username may have from one address before it waits.
pub const FREE_FAILURES: u32 = 5;
/// The first wait, doubled after each further failure.
pub const FIRST_WAIT: Duration = Duration::from_secs(2);
/// The longest wait.
pub const MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// The window the counts over many names or addresses are kept for.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failed log-ins a username may have per window, over all addresses.
pub const NAME_FAILURES: usize = 100;
/// Failed log-ins an address may make per window, over all names.
pub const ADDRESS_FAILURES: usize = 30;
/// Log-ins (right or wrong) an address may try per window.
pub const ADDRESS_LOG_INS: usize = 60;
/// Sign-ups an address may make per window.
pub const ADDRESS_SIGN_UPS: usize = 5;
/// Keys remembered at most in each count; past it, those with nothing
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

/// A try let through and counted as a failure until [`LoginLimits::finish`]
/// says how it went.
#[derive(Debug)]
#[must_use = "a try is counted as failed until it is finished"]
pub struct Attempt {
    name: String,
    address: IpAddr,
    at: Instant,
}

/// How a try went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    Failed,
    /// No answer about the password (the server could not check it): not
    /// held against anyone.
    Unchecked,
}

#[derive(Debug, Default)]
struct PairRecord {
    failures: u32,
    last: Option<Instant>,
}

/// The counts: see the module docs.
#[derive(Debug, Default)]
pub struct LoginLimits {
    pairs: HashMap<(String, IpAddr), PairRecord>,
    name_failures: HashMap<String, Vec<Instant>>,
    failures: HashMap<IpAddr, Vec<Instant>>,
    log_ins: HashMap<IpAddr, Vec<Instant>>,
    sign_ups: HashMap<IpAddr, Vec<Instant>>,
}

/// How long until the oldest of `times` within the window leaves it, when
/// there are `limit` or more of them.
fn full(times: &mut Vec<Instant>, limit: usize, now: Instant) -> Option<Duration> {
    times.retain(|t| now.saturating_duration_since(*t) < WINDOW);
    (times.len() >= limit).then(|| WINDOW.saturating_sub(now.saturating_duration_since(times[0])))
}

/// Past [`MAX_TRACKED`] keys, forgets those with nothing in the window.
fn forget_quiet<K: std::hash::Hash + Eq>(times: &mut HashMap<K, Vec<Instant>>, now: Instant) {
    if times.len() >= MAX_TRACKED {
        times.retain(|_, t| {
            t.last()
                .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
        });
    }
}

/// Takes back one count made at `at`.
fn take_back<K: std::hash::Hash + Eq>(times: &mut HashMap<K, Vec<Instant>>, key: &K, at: Instant) {
    if let Some(t) = times.get_mut(key)
        && let Some(i) = t.iter().rposition(|x| *x == at)
    {
        t.remove(i);
    }
}

impl LoginLimits {
    /// Lets `name` try to log in from `address` now and counts the try as
    /// failed, or says why not. `owner` says the browser holds a session
    /// of the account of that name (the name-wide limit does not hold it).
    pub fn begin(
        &mut self,
        name: &str,
        address: IpAddr,
        owner: bool,
        now: Instant,
    ) -> Result<Attempt, Refusal> {
        let (name, address) = (name.to_lowercase(), grouped(address));
        for (times, limit) in [
            (&mut self.failures, ADDRESS_FAILURES),
            (&mut self.log_ins, ADDRESS_LOG_INS),
        ] {
            if let Some(wait) = full(times.entry(address).or_default(), limit, now) {
                return Err(Refusal::Address(wait));
            }
        }
        if !owner
            && let Some(times) = self.name_failures.get_mut(&name)
            && let Some(wait) = full(times, NAME_FAILURES, now)
        {
            return Err(Refusal::Name(wait));
        }
        let key = (name, address);
        if let Some(record) = self.pairs.get(&key)
            && let Some(over) = record.failures.checked_sub(FREE_FAILURES)
        {
            let wait = FIRST_WAIT
                .saturating_mul(2u32.saturating_pow(over))
                .min(MAX_WAIT);
            let since = record
                .last
                .map_or(wait, |t| now.saturating_duration_since(t));
            if let Some(left) = wait.checked_sub(since)
                && !left.is_zero()
            {
                return Err(Refusal::Name(left));
            }
        }
        if self.pairs.len() >= MAX_TRACKED {
            self.pairs.retain(|_, r| {
                r.last
                    .is_some_and(|t| now.saturating_duration_since(t) < MAX_WAIT)
            });
        }
        forget_quiet(&mut self.failures, now);
        forget_quiet(&mut self.log_ins, now);
        forget_quiet(&mut self.name_failures, now);
        let record = self.pairs.entry(key.clone()).or_default();
        record.failures += 1;
        record.last = Some(now);
        self.failures.entry(address).or_default().push(now);
        self.log_ins.entry(address).or_default().push(now);
        self.name_failures
            .entry(key.0.clone())
            .or_default()
            .push(now);
        Ok(Attempt {
            name: key.0,
            address,
            at: now,
        })
    }

    /// Says how a try went: a success or a try nobody could check is taken
    /// back from the failures (a success also clears its name's count at
    /// that address); a failure stays counted.
    pub fn finish(&mut self, attempt: Attempt, outcome: Outcome) {
        if outcome == Outcome::Failed {
            return;
        }
        let Attempt { name, address, at } = attempt;
        take_back(&mut self.failures, &address, at);
        take_back(&mut self.name_failures, &name, at);
        let key = (name, address);
        match outcome {
            Outcome::Succeeded => {
                self.pairs.remove(&key);
            }
            _ => {
                if let Some(r) = self.pairs.get_mut(&key) {
                    r.failures = r.failures.saturating_sub(1);
                }
                take_back(&mut self.log_ins, &key.1, at);
            }
        }
    }

    /// Whether `address` may sign up now; counts it if so.
    pub fn sign_up(&mut self, address: IpAddr, now: Instant) -> Result<(), Refusal> {
        let address = grouped(address);
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

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A try that failed.
    fn fail(l: &mut LoginLimits, name: &str, from: IpAddr, now: Instant) -> Result<(), Refusal> {
        let attempt = l.begin(name, from, false, now)?;
        l.finish(attempt, Outcome::Failed);
        Ok(())
    }

    #[test]
    fn a_name_waits_longer_after_each_failure_from_one_address_only() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for _ in 0..FREE_FAILURES {
            assert_eq!(fail(&mut limits, "alice", HOME, t0), Ok(()));
        }
        // Whatever the case of the name.
        assert_eq!(
            fail(&mut limits, "Alice", HOME, t0),
            Err(Refusal::Name(FIRST_WAIT))
        );
        // Its owner, elsewhere, is not locked out.
        assert_eq!(fail(&mut limits, "alice", AWAY, t0), Ok(()));
        let later = t0 + FIRST_WAIT;
        assert_eq!(fail(&mut limits, "alice", HOME, later), Ok(()));
        assert_eq!(
            fail(&mut limits, "alice", HOME, later),
            Err(Refusal::Name(FIRST_WAIT * 2))
        );
        // The wait stops growing at the longest.
        let mut now = later;
        for _ in 0..20 {
            now += MAX_WAIT;
            assert_eq!(fail(&mut limits, "alice", HOME, now), Ok(()));
        }
        assert_eq!(
            fail(&mut limits, "alice", HOME, now),
            Err(Refusal::Name(MAX_WAIT))
        );
        // A success clears the pair.
        let attempt = limits.begin("alice", HOME, false, now + MAX_WAIT).unwrap();
        limits.finish(attempt, Outcome::Succeeded);
        assert_eq!(fail(&mut limits, "alice", HOME, now + MAX_WAIT), Ok(()));
    }

    #[test]
    fn concurrent_tries_are_counted_before_any_password_is_checked() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        // A burst: every try begins before any has finished.
        let admitted: Vec<Attempt> = (0..1000)
            .filter_map(|_| limits.begin("alice", HOME, false, t0).ok())
            .collect();
        assert_eq!(admitted.len(), FREE_FAILURES as usize);
        // Right passwords give their counts back.
        for a in admitted {
            limits.finish(a, Outcome::Succeeded);
        }
        assert!(limits.begin("alice", HOME, false, t0).is_ok());
    }

    #[test]
    fn a_name_guessed_from_many_addresses_stops_for_all_but_its_owners_session() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for n in 0..NAME_FAILURES {
            let from = IpAddr::V4(std::net::Ipv4Addr::from(0x0b00_0000 + n as u32));
            assert_eq!(fail(&mut limits, "alice", from, t0), Ok(()));
        }
        assert_eq!(
            fail(&mut limits, "alice", HOME, t0),
            Err(Refusal::Name(WINDOW))
        );
        let owner = limits.begin("alice", HOME, true, t0).unwrap();
        limits.finish(owner, Outcome::Succeeded);
        assert_eq!(fail(&mut limits, "bob", HOME, t0), Ok(()));
        assert_eq!(fail(&mut limits, "alice", HOME, t0 + WINDOW), Ok(()));
    }

    #[test]
    fn an_address_is_limited_over_all_names_in_failures_log_ins_and_sign_ups() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for n in 0..ADDRESS_FAILURES {
            assert_eq!(fail(&mut limits, &format!("name{n}"), HOME, t0), Ok(()));
        }
        assert_eq!(
            fail(&mut limits, "fresh", HOME, t0),
            Err(Refusal::Address(WINDOW))
        );
        assert_eq!(fail(&mut limits, "fresh", AWAY, t0), Ok(()));
        assert_eq!(fail(&mut limits, "fresh", HOME, t0 + WINDOW), Ok(()));
        // Successful log-ins are limited too; a try nobody could check is not.
        let mut limits = LoginLimits::default();
        for n in 0..ADDRESS_LOG_INS {
            let a = limits.begin(&format!("name{n}"), HOME, false, t0).unwrap();
            limits.finish(a, Outcome::Succeeded);
        }
        let refused = limits.begin("name0", HOME, false, t0).unwrap_err();
        assert_eq!(refused, Refusal::Address(WINDOW));
        let a = limits.begin("name0", AWAY, false, t0).unwrap();
        limits.finish(a, Outcome::Unchecked);
        assert_eq!(limits.log_ins[&AWAY].len(), 0);
        assert_eq!(limits.failures[&AWAY].len(), 0);
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

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let mut limits = LoginLimits::default();
        let t0 = Instant::now();
        for n in 0..ADDRESS_SIGN_UPS {
            let from = v6(&format!("2001:db8:1:2::{:x}", n + 1));
            assert_eq!(limits.sign_up(from, t0), Ok(()));
        }
        let same_64 = v6("2001:db8:1:2:ffff::1");
        assert!(limits.sign_up(same_64, t0).is_err());
        assert_eq!(limits.sign_up(v6("2001:db8:1:3::1"), t0), Ok(()));
    }
}
