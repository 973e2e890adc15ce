//! Which server writes: one exchange server at a time is the sequencer of
//! every market stream and of every event that moves money (the leader);
//! the others follow the log and pass order actions on to it.
//!
//! The claim is a stream of its own ([`CLAIM_STREAM`]), written only with
//! an expected revision, so two servers can never both claim one term:
//! - the leader renews its claim every quarter of the lease;
//! - a follower that has seen the claim stream stand still for a whole
//!   lease (by its own clock: no two machines' clocks are compared) claims
//!   the next term. A server that finds its own address holding the claim
//!   is that server restarted, and claims the next term at once;
//! - a new leader first writes [`StreamFenced`] of its term into every
//!   market stream, then folds the whole ledger again, and only then
//!   decides anything. Whatever the old leader appended before a fence is
//!   in the new leader's fold; any append of the old leader after it meets
//!   a stream that moved on, and on reading it the old leader steps down.
//!   So two leaders never both write, whatever the timing: the lease only
//!   decides how soon a follower takes over.
//! - a leader that cannot renew within a lease (its store unreachable, the
//!   process paused) steps down by itself too, and a follower that took
//!   over meanwhile has fenced it out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use eventstore::{Client, EventData};
use orderbook::{Event, StreamFenced, Symbol};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use super::accounts_task::AccountsHandle;
use super::clock::now_micros;
use super::streams::{
    StreamError, append, derived_id, keep_newest, last_event, market_event_payload, market_stream,
};
use super::supervise::supervise;

/// The leader's claim: `LeaderClaimed` for each new term, `LeaderRenewed`
/// while it lives.
pub const CLAIM_STREAM: &str = "exchange-leader";

/// How a server takes part, as its flags set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderSettings {
    /// Where other servers reach this one to pass it order actions, such as
    /// `http://10.0.0.5:3000`; also the server's name in the claim.
    pub url: String,
    /// How long a claim stands without renewal before a follower takes
    /// over.
    pub lease: Duration,
}

impl Default for LeaderSettings {
    fn default() -> Self {
        LeaderSettings {
            url: "http://127.0.0.1:3000".into(),
            lease: Duration::from_secs(2),
        }
    }
}

/// This server's part now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Another server leads (reached at `leader`), or none is known yet.
    Follower { leader: Option<String> },
    /// This server holds the claim of `term`, and has fenced every market
    /// stream at it.
    Leader { term: u64 },
}

/// An event of the claim stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
enum Claim {
    LeaderClaimed { server: String, term: u64 },
    LeaderRenewed { server: String, term: u64 },
}

impl Claim {
    fn server(&self) -> &str {
        match self {
            Claim::LeaderClaimed { server, .. } | Claim::LeaderRenewed { server, .. } => server,
        }
    }

    fn term(&self) -> u64 {
        match self {
            Claim::LeaderClaimed { term, .. } | Claim::LeaderRenewed { term, .. } => *term,
        }
    }

    fn data(&self) -> EventData {
        let kind = match self {
            Claim::LeaderClaimed { .. } => "LeaderClaimed",
            Claim::LeaderRenewed { .. } => "LeaderRenewed",
        };
        EventData::json(kind, self)
            .expect("claims always serialise")
            .id(Uuid::new_v4())
    }
}

/// The server's role, shared by every part that writes or forwards.
/// Cheap to clone.
#[derive(Clone)]
pub struct Leadership {
    role: Arc<watch::Sender<Role>>,
    /// Whether the first look at the claim has been made.
    settled: watch::Receiver<bool>,
    /// Set to stop the task (see [`Leadership::stop`]).
    stopping: Arc<watch::Sender<bool>>,
    /// True while the task runs.
    running: Arc<watch::Sender<bool>>,
}

impl Leadership {
    /// Starts the supervised task that claims, renews and watches the
    /// claim for the markets' streams in `markets`.
    pub fn start(
        client: Client,
        settings: LeaderSettings,
        markets: Vec<Symbol>,
        ledger: AccountsHandle,
    ) -> Leadership {
        let role = Arc::new(watch::Sender::new(Role::Follower { leader: None }));
        let (settled_tx, settled) = watch::channel(false);
        let stopping = Arc::new(watch::Sender::new(false));
        let running = Arc::new(watch::Sender::new(true));
        let task = Arc::new(Claimant {
            client,
            settings,
            markets,
            ledger,
            role: role.clone(),
            settled: settled_tx,
            stopping: stopping.subscribe(),
            running: running.clone(),
            has_led: std::sync::atomic::AtomicBool::new(false),
        });
        supervise("leadership".into(), move || task.clone().run());
        Leadership {
            role,
            settled,
            stopping,
            running,
        }
    }

    /// Stops claiming and renewing, once the read or renewal under way has
    /// been answered: the server is stopping, and its store may go next.
    /// The claim then lapses after its lease, as a failed leader's does.
    pub async fn stop(&self) {
        self.stopping.send_replace(true);
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|r| !*r).await;
    }

    /// Whether the server is stopping ([`Leadership::stop`] was called).
    pub fn stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// Waits until the server is stopping.
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|s| *s).await;
    }

    /// Waits for the first look at the claim: after it this server leads,
    /// or knows the leader (or that one must lapse first).
    pub async fn settled(&self) {
        let mut settled = self.settled.clone();
        let _ = settled.wait_for(|s| *s).await;
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// The term this server leads, if it does.
    pub fn term(&self) -> Option<u64> {
        match *self.role.borrow() {
            Role::Leader { term } => Some(term),
            Role::Follower { .. } => None,
        }
    }

    /// A market stream holds a fence of `term`: if that is newer than the
    /// term this server leads, another server has taken over and this one
    /// stops writing at once.
    pub fn fenced_at(&self, term: u64) {
        self.role.send_if_modified(|role| match role {
            Role::Leader { term: mine } if *mine < term => {
                tracing::warn!(
                    mine = *mine,
                    newer = term,
                    "another server leads now; this one stops writing"
                );
                *role = Role::Follower { leader: None };
                true
            }
            _ => false,
        });
    }
}

/// The newest term fenced into a market stream, among `events`.
pub fn fenced_term<'a>(events: impl IntoIterator<Item = &'a Event>) -> u64 {
    events
        .into_iter()
        .filter_map(|e| match e {
            Event::StreamFenced(f) => Some(f.term),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The task behind a [`Leadership`].
struct Claimant {
    client: Client,
    settings: LeaderSettings,
    markets: Vec<Symbol>,
    ledger: AccountsHandle,
    role: Arc<watch::Sender<Role>>,
    settled: watch::Sender<bool>,
    stopping: watch::Receiver<bool>,
    running: Arc<watch::Sender<bool>>,
    /// Whether this server has led since it started: only then can its
    /// ledger hold decisions of its own that never reached the log.
    has_led: std::sync::atomic::AtomicBool,
}

/// The claim stream's last event and its revision.
type Seen = Option<(u64, Claim)>;

impl Claimant {
    fn me(&self) -> &str {
        &self.settings.url
    }

    fn set_role(&self, new: Role) {
        self.role.send_if_modified(|role| {
            if *role == new {
                return false;
            }
            tracing::info!(from = ?role, to = ?new, "leadership changed");
            *role = new;
            true
        });
    }

    async fn run(self: Arc<Self>) {
        self.claim_and_renew().await;
        self.running.send_replace(false);
    }

    /// Waits `tick`: whether to go on (not stopping).
    async fn wait(&self, tick: std::time::Duration) -> bool {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            () = tokio::time::sleep(tick) => true,
            _ = stopping.wait_for(|s| *s) => false,
        }
    }

    async fn claim_and_renew(&self) {
        let lease = self.settings.lease;
        let tick = lease / 4;
        let mut seen: Seen = None;
        let mut seen_at = Instant::now();
        let mut renewed_at = Instant::now();
        loop {
            match self.read_claim().await {
                Ok(now) => {
                    if now.as_ref().map(|s| s.0) != seen.as_ref().map(|s| s.0) {
                        seen_at = Instant::now();
                    }
                    seen = now;
                }
                Err(e) => {
                    tracing::warn!("reading the leader's claim failed: {e}");
                    let leads = matches!(*self.role.borrow(), Role::Leader { .. });
                    if leads && renewed_at.elapsed() > lease {
                        // Unrenewed past the lease: a follower may lead now.
                        self.set_role(Role::Follower { leader: None });
                    }
                    // Start-up goes on, taking no orders until this is known.
                    self.settled.send_replace(true);
                    if !self.wait(tick).await {
                        return;
                    }
                    continue;
                }
            }
            let role = self.role.borrow().clone();
            match role {
                Role::Leader { term } => {
                    let ours = matches!(&seen, Some((_, c)) if c.server() == self.me() && c.term() == term);
                    if !ours {
                        self.set_role(self.follower_of(&seen));
                    } else if self.renew(&seen, term).await {
                        renewed_at = Instant::now();
                    } else if renewed_at.elapsed() > lease {
                        self.set_role(self.follower_of(&seen));
                    }
                }
                Role::Follower { .. } => {
                    let lapsed = match &seen {
                        None => true,
                        Some((_, c)) => c.server() == self.me() || seen_at.elapsed() >= lease,
                    };
                    if lapsed && let Some(term) = self.claim(&seen).await {
                        // Renewed at once: a takeover that took longer than
                        // a lease has lost it to another follower.
                        let claimed = self.read_claim().await.ok().flatten();
                        if self.renew(&claimed, term).await {
                            renewed_at = Instant::now();
                            self.set_role(Role::Leader { term });
                        }
                    } else {
                        self.set_role(self.follower_of(&seen));
                    }
                }
            }
            self.settled.send_replace(true);
            if !self.wait(tick).await {
                return;
            }
        }
    }

    fn follower_of(&self, seen: &Seen) -> Role {
        Role::Follower {
            leader: seen
                .as_ref()
                .map(|(_, c)| c.server().to_string())
                .filter(|s| s != self.me()),
        }
    }

    async fn read_claim(&self) -> Result<Seen, StreamError> {
        let Some(e) = last_event(&self.client, CLAIM_STREAM).await? else {
            return Ok(None);
        };
        let claim: Claim = serde_json::from_slice(&e.data).map_err(|err| StreamError::Corrupt {
            stream: CLAIM_STREAM.into(),
            revision: e.revision,
            reason: err.to_string(),
        })?;
        Ok(Some((e.revision, claim)))
    }

    /// Appends a renewal right after `seen` (the claim as last read):
    /// whether it landed.
    async fn renew(&self, seen: &Seen, term: u64) -> bool {
        let Some((revision, _)) = seen else {
            return false;
        };
        let claim = Claim::LeaderRenewed {
            server: self.me().to_string(),
            term,
        };
        match append(&self.client, CLAIM_STREAM, revision + 1, vec![claim.data()]).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!("renewing the leader's claim failed: {e}");
                false
            }
        }
    }

    /// Claims the term after `seen`'s, and on winning fences every market
    /// stream at it and brings the ledger up to the fences: the term, once
    /// all that is done; `None` if another server claimed first.
    ///
    /// A server that has not led since it started holds nothing in its
    /// ledger but the fold of the log, so it waits for its ledger to have
    /// read past every fence (everything before them is then folded in).
    /// One that has led may hold a decision of its own that never landed,
    /// so it folds the whole log again (as does one whose wait outlasts a
    /// lease).
    async fn claim(&self, seen: &Seen) -> Option<u64> {
        let term = seen.as_ref().map_or(0, |(_, c)| c.term()) + 1;
        let count = seen.as_ref().map_or(0, |(r, _)| r + 1);
        let claim = Claim::LeaderClaimed {
            server: self.me().to_string(),
            term,
        };
        if let Err(e) = append(&self.client, CLAIM_STREAM, count, vec![claim.data()]).await {
            // Lost or refused, the claim is settled by reading it back.
            tracing::info!("claiming term {term} did not go through: {e}");
            let now = self.read_claim().await.ok().flatten();
            if !matches!(&now, Some((r, c)) if *r == count && *c == claim) {
                return None;
            }
        }
        tracing::info!(term, "this server claimed the lead; fencing every market");
        // Only the newest claims matter: a store may drop older ones.
        if let Err(e) = keep_newest(&self.client, CLAIM_STREAM, 64).await {
            tracing::warn!("limiting the claim stream's length failed: {e}");
        }
        let mut fences = Vec::new();
        for symbol in &self.markets {
            match fence(&self.client, symbol, term).await {
                Ok(revision) => fences.push((market_stream(symbol.as_str()), revision)),
                Err(e) => {
                    tracing::warn!(%symbol, "fencing the market stream failed: {e}");
                    return None;
                }
            }
        }
        let has_led = self
            .has_led
            .swap(true, std::sync::atomic::Ordering::Relaxed);
        let read_past = tokio::time::timeout(self.settings.lease, self.ledger.read_past(&fences));
        // A fence whose first answer was lost may stand at another
        // revision than the one answered: past the lease, fold it all.
        if has_led || read_past.await.is_err() {
            self.ledger.reload().await;
        }
        Some(term)
    }
}

/// Writes a fence of `term` at the end of a market's stream, wherever the
/// end is now (another writer may append meanwhile: the fence then goes
/// after it), and answers its revision. A lost answer is tried again
/// identically.
async fn fence(client: &Client, symbol: &Symbol, term: u64) -> Result<u64, StreamError> {
    let stream = market_stream(symbol.as_str());
    let event = Event::StreamFenced(StreamFenced {
        symbol: *symbol,
        term,
        at: now_micros(),
    });
    let (data, _) = market_event_payload(&event);
    let data = data.id(derived_id(&format!("fence {stream} {term}")));
    for _ in 0..50 {
        let last = last_event(client, &stream).await?;
        let count = last.map_or(0, |e| e.revision + 1);
        match append(client, &stream, count, vec![data.clone()]).await {
            Ok(()) => return Ok(count),
            Err(StreamError::WrongExpectedVersion) => continue,
            Err(e) => {
                tracing::warn!(%stream, "fencing: {e}; trying again");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    Err(StreamError::Unavailable(format!(
        "{stream} could not be fenced"
    )))
}
