//! Signing traders up, in and out, and finding the account a session
//! token is logged in to, and what [`Sessions`] does with what this
//! server keeps about sessions beside the log.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use accounts::{validate_password, validate_username};
use orderbook::AccountId;

use super::{Exchange, Sessions};
use crate::server::accounts_task::AccountsRequest;
use crate::server::clock::now_micros;
use crate::server::credentials;
use crate::server::exchange_error::ExchangeError;
use crate::server::lock::unpoisoned;
use crate::server::login_limits::{Outcome, Refusal};
use crate::server::settings::SessionPolicy;

impl Sessions {
    pub(super) fn new(policy: SessionPolicy) -> Sessions {
        Sessions {
            policy,
            last_seen: Mutex::default(),
            login_limits: Mutex::default(),
            password_checks: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
        }
    }

    /// Runs an argon2 hash or check on the blocking pool, at most one per
    /// core at once.
    async fn password_work<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ExchangeError> {
        let _permit = self
            .password_checks
            .acquire()
            .await
            .map_err(|_| ExchangeError::Unavailable)?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| ExchangeError::Unavailable)
    }

    /// A session was used (or began) now.
    fn used(&self, token_hash: String) {
        unpoisoned(self.last_seen.lock()).insert(token_hash, Instant::now());
    }

    fn forget(&self, token_hash: &str) {
        unpoisoned(self.last_seen.lock()).remove(token_hash);
    }

    /// Whether a session that began at `began` (microseconds since the
    /// epoch) is within its idle and absolute limits; if so this counts as
    /// a use, and if not it is forgotten here.
    fn still_open(&self, token_hash: &str, began: u64) -> bool {
        let age = Duration::from_micros(now_micros().saturating_sub(began));
        let mut seen = unpoisoned(self.last_seen.lock());
        let idle = seen
            .get(token_hash)
            .is_some_and(|t| t.elapsed() > self.policy.idle);
        if age > self.policy.absolute || idle {
            seen.remove(token_hash);
            return false;
        }
        match seen.get_mut(token_hash) {
            Some(last) => *last = Instant::now(),
            None => {
                seen.insert(token_hash.to_string(), Instant::now());
            }
        }
        true
    }
}

/// A refused try, as the trader reads it.
fn locked(refusal: Refusal) -> ExchangeError {
    match refusal {
        Refusal::Name(wait) => ExchangeError::NameLocked(wait),
        Refusal::Address(wait) => ExchangeError::AddressLocked(wait),
    }
}

/// A password hash no password matches in practice, checked for names
/// that have no account (made once, at the first such log-in).
fn unknown_name_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| credentials::hash_password(&credentials::new_token()))
}

impl Exchange {
    /// Opens an account and logs it in; returns the session token.
    pub async fn sign_up(&self, username: &str, password: &str) -> Result<String, ExchangeError> {
        validate_username(username)?;
        validate_password(password)?;
        if self.0.ledger.read(|l| l.by_username(username).is_some()) {
            return Err(accounts::AccountError::UsernameTaken.into());
        }
        let password = password.to_string();
        let password_hash = self
            .0
            .sessions
            .password_work(move || credentials::hash_password(&password))
            .await?;
        let username = username.to_string();
        let at = now_micros();
        let account = self
            .0
            .ledger
            .ask(|reply| AccountsRequest::Open {
                username,
                password_hash,
                at,
                reply,
            })
            .await?;
        self.start_session(account).await
    }

    /// [`Exchange::sign_up`] for a visitor at `address`, within the
    /// sign-ups an address may make (`login_limits`).
    pub async fn sign_up_from(
        &self,
        username: &str,
        password: &str,
        address: IpAddr,
    ) -> Result<String, ExchangeError> {
        let admitted =
            unpoisoned(self.0.sessions.login_limits.lock()).sign_up(address, Instant::now());
        admitted.map_err(locked)?;
        self.sign_up(username, password).await
    }

    /// [`Exchange::log_in`] for a visitor at `address`, within the tries a
    /// name and an address may make (`login_limits`); `session` is the
    /// account the browser is already logged in to, if any (its owner is
    /// not held up by a name-wide lock).
    pub async fn log_in_from(
        &self,
        username: &str,
        password: &str,
        address: IpAddr,
        session: Option<AccountId>,
    ) -> Result<String, ExchangeError> {
        let owner = session.is_some_and(|a| self.account_id(username) == Some(a));
        let attempt = unpoisoned(self.0.sessions.login_limits.lock()).begin(
            username,
            address,
            owner,
            Instant::now(),
        );
        let attempt = attempt.map_err(locked)?;
        let result = self.log_in(username, password).await;
        let outcome = match &result {
            Ok(_) => Outcome::Succeeded,
            Err(ExchangeError::BadCredentials) => Outcome::Failed,
            Err(_) => Outcome::Unchecked,
        };
        unpoisoned(self.0.sessions.login_limits.lock()).finish(attempt, outcome);
        result
    }

    /// Checks a password and starts a session; returns the session token.
    /// An unknown name costs the same check as a known one, so the time of
    /// the answer does not tell which names exist.
    pub async fn log_in(&self, username: &str, password: &str) -> Result<String, ExchangeError> {
        let found = self.0.ledger.read(|l| {
            l.by_username(username)
                .map(|a| (a.id, a.password_hash.clone()))
        });
        let hash = found
            .as_ref()
            .map_or_else(|| unknown_name_hash().to_string(), |f| f.1.clone());
        let password = password.to_string();
        let ok = self
            .0
            .sessions
            .password_work(move || credentials::verify_password(&password, &hash))
            .await?;
        match found {
            Some((account, _)) if ok => self.start_session(account).await,
            _ => Err(ExchangeError::BadCredentials),
        }
    }

    /// Starts a session; past the sessions an account may hold, its oldest
    /// ones end.
    async fn start_session(&self, account: AccountId) -> Result<String, ExchangeError> {
        let token = credentials::new_token();
        let token_hash = credentials::token_hash(&token);
        self.session_event(account, token_hash.clone(), true)
            .await?;
        self.0.sessions.used(token_hash);
        let held = self.0.ledger.read(|l| {
            l.account(account)
                .map(|a| a.sessions.clone())
                .unwrap_or_default()
        });
        let beyond = held
            .len()
            .saturating_sub(self.0.sessions.policy.per_account.max(1));
        for oldest in held.into_iter().take(beyond) {
            self.end_session(account, oldest).await?;
        }
        Ok(token)
    }

    async fn session_event(
        &self,
        account: AccountId,
        token_hash: String,
        start: bool,
    ) -> Result<(), ExchangeError> {
        let at = now_micros();
        self.0
            .ledger
            .ask(|reply| AccountsRequest::Session {
                account,
                token_hash,
                start,
                at,
                reply,
            })
            .await
    }

    async fn end_session(
        &self,
        account: AccountId,
        token_hash: String,
    ) -> Result<(), ExchangeError> {
        self.0.sessions.forget(&token_hash);
        self.session_event(account, token_hash, false).await
    }

    /// Ends a session; a token that is not logged in is already logged out.
    pub async fn log_out(&self, token: &str) -> Result<(), ExchangeError> {
        let Some(account) = self.use_session(token) else {
            return Ok(());
        };
        self.end_session(account, credentials::token_hash(token))
            .await
    }

    /// Ends every session of the account a token is logged in to: "log out
    /// everywhere", for a trader who fears another has their session.
    pub async fn log_out_everywhere(&self, token: &str) -> Result<(), ExchangeError> {
        let Some(account) = self.use_session(token) else {
            return Ok(());
        };
        let held = self.0.ledger.read(|l| {
            l.account(account)
                .map(|a| a.sessions.clone())
                .unwrap_or_default()
        });
        for token_hash in held {
            self.end_session(account, token_hash).await?;
        }
        Ok(())
    }

    pub fn session_policy(&self) -> SessionPolicy {
        self.0.sessions.policy
    }

    /// The account with a username, if there is one.
    pub fn account_id(&self, username: &str) -> Option<AccountId> {
        self.0
            .ledger
            .read(|l| l.by_username(username).map(|a| a.id))
    }

    /// The account a session token is logged in to, counting this as a use
    /// of the session. A session past its idle or absolute limit (see
    /// [`SessionPolicy`]) is over: it answers `None`, and its end is
    /// written to the log.
    pub fn use_session(&self, token: &str) -> Option<AccountId> {
        let hash = credentials::token_hash(token);
        let (account, began) = self.0.ledger.read(|l| l.session_since(&hash))?;
        if self.0.sessions.still_open(&hash, began) {
            return Some(account);
        }
        let exchange = self.clone();
        tokio::spawn(async move {
            if let Err(e) = exchange.end_session(account, hash).await {
                tracing::warn!("could not record the end of an expired session: {e}");
            }
        });
        None
    }
}
