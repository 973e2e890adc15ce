//! Decisions: what a request does to the ledger, as events, without
//! changing it.

use orderbook::{AccountId, Command, Event, MarketSpec, Timestamp};
use rust_decimal::Decimal;

use crate::api_key::{ApiKey, MAX_ALLOWED_IPS, MAX_KEYS_PER_ACCOUNT, MAX_LABEL_LEN};
use crate::config::{Faucet, Fees};
use crate::cost::{amend_cost, fills, order_cost};
use crate::event::{AccountEvent, DepositSource};
use crate::ledger::Ledger;

/// Why a request was refused, in words a trader can act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("usernames are 3 to 32 letters, digits, '.', '_' or '-'")]
    InvalidUsername,
    #[error("that username is taken")]
    UsernameTaken,
    #[error("passwords are 8 to 128 characters")]
    InvalidPassword,
    #[error("no such account")]
    UnknownAccount,
    #[error("insufficient {asset}: {available} available, {needed} needed")]
    InsufficientFunds {
        asset: String,
        available: Decimal,
        needed: Decimal,
    },
    #[error("the faucet limit for this account is reached")]
    FaucetLimitReached,
    #[error("an API key's label is 1 to {MAX_LABEL_LEN} characters")]
    InvalidKeyLabel,
    #[error("an API key needs at least one scope (read, trade)")]
    NoKeyScope,
    #[error("an API key's allow-list holds at most {MAX_ALLOWED_IPS} addresses or networks")]
    TooManyAllowedIps,
    #[error("{0:?} is not an IP address or network (a.b.c.d, a.b.c.d/n, x:y::z or x:y::/n)")]
    InvalidAllowedIp(String),
    #[error("an API key's expiry must be in the future")]
    KeyExpiryPassed,
    #[error("an account has at most {MAX_KEYS_PER_ACCOUNT} API keys that are not revoked")]
    TooManyKeys,
    #[error("that key id is taken")]
    KeyIdTaken,
    #[error("no such API key on this account")]
    UnknownKey,
}

/// Checks a username's shape (uniqueness is the ledger's business).
pub fn validate_username(username: &str) -> Result<(), AccountError> {
    let ok_len = (3..=32).contains(&username.chars().count());
    let ok_chars = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(AccountError::InvalidUsername)
    }
}

pub fn validate_password(password: &str) -> Result<(), AccountError> {
    if (8..=128).contains(&password.chars().count()) {
        Ok(())
    } else {
        Err(AccountError::InvalidPassword)
    }
}

impl Ledger {
    /// Opens an account with the next id. The password is already hashed.
    pub fn open_account(
        &self,
        username: &str,
        password_hash: &str,
        at: Timestamp,
    ) -> Result<AccountEvent, AccountError> {
        validate_username(username)?;
        if self.by_username(username).is_some() {
            return Err(AccountError::UsernameTaken);
        }
        Ok(AccountEvent::AccountOpened {
            account: self.registry_events + 1,
            username: username.to_string(),
            password_hash: password_hash.to_string(),
            at,
        })
    }

    /// Credits one faucet claim: each asset's grant, cut to what is left of
    /// its limit. Refused once nothing is left of any.
    pub fn claim_faucet(
        &self,
        account: AccountId,
        faucet: &Faucet,
        at: Timestamp,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        let acc = self.account(account).ok_or(AccountError::UnknownAccount)?;
        let events: Vec<AccountEvent> = faucet
            .iter()
            .filter_map(|(asset, grant)| {
                let received = acc.faucet_received.get(asset).copied().unwrap_or_default();
                let amount = grant.amount.min(grant.limit - received);
                (amount > Decimal::ZERO).then(|| AccountEvent::FundsDeposited {
                    account,
                    asset: asset.clone(),
                    amount,
                    source: DepositSource::Faucet,
                    at,
                })
            })
            .collect();
        if events.is_empty() {
            return Err(AccountError::FaucetLimitReached);
        }
        Ok(events)
    }

    /// Whether the account has `amount` of `asset` to commit, counting
    /// `unusable` of what it holds as not there yet (credits of trades
    /// whose append is still on its way to the store).
    pub fn check_available(
        &self,
        account: AccountId,
        asset: &str,
        amount: Decimal,
        unusable: Decimal,
    ) -> Result<(), AccountError> {
        let acc = self.account(account).ok_or(AccountError::UnknownAccount)?;
        let available = acc.balance(asset).available() - unusable.max(Decimal::ZERO);
        if amount > available {
            return Err(AccountError::InsufficientFunds {
                asset: asset.to_string(),
                available: available.max(Decimal::ZERO),
                needed: amount,
            });
        }
        Ok(())
    }

    /// What a command the book decided needs available before it may be
    /// written: `(account, asset, amount)`, or nothing. A new order needs
    /// its whole cost ([`order_cost`]); an amendment what its new terms
    /// cost beyond what the order holds now, in this ledger, which has
    /// every earlier event of its market folded in (fills included); a
    /// cancellation nothing.
    pub fn needs(
        &self,
        market: &MarketSpec,
        command: &Command,
        decided: &[Event],
    ) -> Option<(AccountId, String, Decimal)> {
        match command {
            Command::Place(order) => {
                let (asset, amount) = order_cost(market, order, decided);
                Some((order.account, asset, amount))
            }
            Command::Amend(a) => {
                let (asset, need) = amend_cost(market, decided.first()?)?;
                let key = (market.symbol.clone(), a.order_id);
                let held = self
                    .account(a.account)
                    .and_then(|acc| acc.reservations.get(&key))
                    .map_or(Decimal::ZERO, |r| r.amount);
                (need > held).then(|| (a.account, asset, need - held))
            }
            Command::Cancel(_) => None,
        }
    }

    /// For a log written before schema 3: whether one of its trades (one
    /// without fees) has a party with an account here that it is not
    /// settled into yet, which [`Ledger::legacy_settlement`] would settle
    /// if the log ended now. Once it is settled into both, the later
    /// events of a log cannot unsettle it.
    pub fn awaits_legacy_settlement(&self, symbol: &str, revision: u64, event: &Event) -> bool {
        let Event::TradeExecuted(t) = event else {
            return false;
        };
        let unsettled = |account| self.unsettled_into(account, symbol, revision);
        t.fees.is_none() && (unsettled(t.maker_account) || unsettled(t.taker_account))
    }

    /// Whether `account` exists and has not settled the market event at
    /// `revision` (of a log written before schema 3).
    fn unsettled_into(&self, account: AccountId, symbol: &str, revision: u64) -> bool {
        self.account(account)
            .is_some_and(|a| !a.has_settled(symbol, revision))
    }

    /// For a log written before schema 3: the settlement of one of its
    /// trades (one without fees) into each account that has not settled
    /// it, as that version settled it. Such a log settled trades with
    /// ledger events written after the market's append; a crash in
    /// between left some unwritten, and they are written once, at start.
    pub fn legacy_settlement(
        &self,
        market: &MarketSpec,
        fees: &Fees,
        revision: u64,
        event: &Event,
    ) -> Vec<AccountEvent> {
        let Event::TradeExecuted(t) = event else {
            return Vec::new();
        };
        if t.fees.is_some() {
            return Vec::new();
        }
        fills(market, revision, t)
            .into_iter()
            .filter(|f| self.unsettled_into(f.account, &market.symbol, revision))
            .map(|mut f| {
                f.fee = fees.fee(f.role, f.received);
                AccountEvent::TradeSettled(f)
            })
            .collect()
    }
}

/// Whether `entry` is an address or a network (`address/prefix`).
pub fn valid_ip_or_network(entry: &str) -> bool {
    let (address, prefix) = match entry.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (entry, None),
    };
    let Ok(address) = address.parse::<std::net::IpAddr>() else {
        return false;
    };
    let most = if address.is_ipv4() { 32 } else { 128 };
    prefix.is_none_or(|p| p.parse::<u8>().is_ok_and(|p| p <= most))
}

impl Ledger {
    /// A new API key: its label, scopes, allow-list and expiry checked,
    /// and the account under its key limit. The key id and the credential
    /// are the shell's (random, and sealed or public).
    pub fn create_api_key(&self, key: ApiKey) -> Result<AccountEvent, AccountError> {
        self.account(key.account)
            .ok_or(AccountError::UnknownAccount)?;
        if key.label.trim().is_empty() || key.label.chars().count() > MAX_LABEL_LEN {
            return Err(AccountError::InvalidKeyLabel);
        }
        if key.scopes.is_empty() {
            return Err(AccountError::NoKeyScope);
        }
        if key.allowed_ips.len() > MAX_ALLOWED_IPS {
            return Err(AccountError::TooManyAllowedIps);
        }
        if let Some(bad) = key.allowed_ips.iter().find(|e| !valid_ip_or_network(e)) {
            return Err(AccountError::InvalidAllowedIp(bad.clone()));
        }
        if key.expires_at.is_some_and(|e| e <= key.created_at) {
            return Err(AccountError::KeyExpiryPassed);
        }
        if self.api_key(&key.key_id).is_some() {
            return Err(AccountError::KeyIdTaken);
        }
        let live = self.api_keys_of(key.account);
        if live.iter().filter(|k| k.revoked_at.is_none()).count() >= MAX_KEYS_PER_ACCOUNT {
            return Err(AccountError::TooManyKeys);
        }
        Ok(AccountEvent::ApiKeyCreated(Box::new(key)))
    }

    /// Revokes one of the account's keys; revoking a revoked key again
    /// changes nothing (answers no event).
    pub fn revoke_api_key(
        &self,
        account: AccountId,
        key_id: &str,
        at: Timestamp,
    ) -> Result<Option<AccountEvent>, AccountError> {
        let key = self
            .api_key(key_id)
            .filter(|k| k.key.account == account)
            .ok_or(AccountError::UnknownKey)?;
        Ok(key
            .revoked_at
            .is_none()
            .then(|| AccountEvent::ApiKeyRevoked {
                account,
                key_id: key_id.to_string(),
                at,
            }))
    }
}
