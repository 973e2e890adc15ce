//! Programs' keys: a trader creates, lists and revokes them, and every
//! request an API route takes is checked against them here. The keys are
//! the ledger's fold of the account streams; when each was last used is
//! this server's own (kept in memory, not written: a use is not an event
//! that moves anything, and writing one per request would put a write on
//! every read).

use std::net::IpAddr;

use accounts::api_key::{ApiKey, KeyCredential, KeyRecord, Scope};
use orderbook::{AccountId, Timestamp};

use super::Exchange;
use crate::server::accounts_task::AccountsRequest;
use crate::server::clock::now_micros;
use crate::server::exchange_error::ExchangeError;
use crate::server::key_crypto::{
    KeyCryptoError, ed25519_public_key, in_networks, random_token, signature_holds,
};
use crate::server::lock::unpoisoned;

/// What a trader asks for in a new key.
#[derive(Clone, Debug, Default)]
pub struct NewKey {
    pub label: String,
    pub scopes: Vec<Scope>,
    pub allowed_ips: Vec<String>,
    pub expires_at: Option<Timestamp>,
    /// The public half of an Ed25519 key the trader made (PEM or base64);
    /// without one the server makes an HMAC secret.
    pub ed25519_public_key: Option<String>,
}

/// A key just created: its id, and for an HMAC key its secret, shown this
/// once and never again.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    pub key_id: String,
    pub secret: Option<String>,
}

/// One key as its owner sees it in the list.
#[derive(Clone, Debug)]
pub struct KeyListing {
    pub record: KeyRecord,
    /// When a request last used it on this server since it started (ms).
    pub last_used_ms: Option<u64>,
}

/// A request signed with an API key, as the route read it.
pub struct SignedRequest<'a> {
    pub key_id: &'a str,
    /// Exactly the bytes the signature is over.
    pub payload: &'a [u8],
    pub signature: &'a str,
    pub from: IpAddr,
    /// What the route does: reading or trading.
    pub scope: Scope,
}

/// Why a signed request is refused. Nothing it asked for was done.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyRefusal {
    #[error("no such API key")]
    UnknownKey,
    #[error("this API key was revoked")]
    Revoked,
    #[error("this API key has expired")]
    Expired,
    #[error("this API key may not be used from {0}")]
    AddressNotAllowed(IpAddr),
    #[error("the signature does not match the request")]
    BadSignature,
    #[error("this API key lacks the {0} scope")]
    MissingScope(Scope),
}

impl Exchange {
    pub async fn create_api_key(
        &self,
        account: AccountId,
        new: NewKey,
    ) -> Result<CreatedKey, ExchangeError> {
        let crypto = |e: KeyCryptoError| match e {
            KeyCryptoError::BadPublicKey => ExchangeError::BadPublicKey,
            e => {
                tracing::error!("cannot make an API key: {e}");
                ExchangeError::Unavailable
            }
        };
        let key_id = random_token().map_err(crypto)?;
        let (credential, secret) = match &new.ed25519_public_key {
            Some(text) => {
                let public_key = ed25519_public_key(text).map_err(crypto)?;
                (KeyCredential::Ed25519 { public_key }, None)
            }
            None => {
                let secret = random_token().map_err(crypto)?;
                let sealed_secret = self.0.sealing.seal(&secret).map_err(crypto)?;
                (KeyCredential::Hmac { sealed_secret }, Some(secret))
            }
        };
        let mut scopes = new.scopes;
        scopes.sort();
        scopes.dedup();
        let key = ApiKey {
            key_id: key_id.clone(),
            account,
            label: new.label.trim().to_string(),
            credential,
            scopes,
            allowed_ips: new.allowed_ips,
            expires_at: new.expires_at,
            created_at: now_micros(),
        };
        self.0
            .ledger
            .ask(|reply| AccountsRequest::CreateKey { key, reply })
            .await?;
        Ok(CreatedKey { key_id, secret })
    }

    pub async fn revoke_api_key(
        &self,
        account: AccountId,
        key_id: &str,
    ) -> Result<(), ExchangeError> {
        let key_id = key_id.to_string();
        let at = now_micros();
        self.0
            .ledger
            .ask(|reply| AccountsRequest::RevokeKey {
                account,
                key_id,
                at,
                reply,
            })
            .await
    }

    /// The account's keys, revoked ones too, oldest first.
    pub fn api_keys(&self, account: AccountId) -> Vec<KeyListing> {
        let records: Vec<KeyRecord> = self
            .0
            .ledger
            .read(|l| l.api_keys_of(account).into_iter().cloned().collect());
        let used = unpoisoned(self.0.key_last_used.lock());
        records
            .into_iter()
            .map(|record| KeyListing {
                last_used_ms: used.get(&record.key.key_id).copied(),
                record,
            })
            .collect()
    }

    /// The account a signed request acts for, once its key, address,
    /// scope and signature all hold. (Its timestamp is the route's to
    /// check: each API says it its own way.)
    pub fn authenticate(&self, request: &SignedRequest<'_>) -> Result<AccountId, KeyRefusal> {
        self.key_in_force(request.key_id, request.from, |key| {
            if !signature_holds(
                &key.credential,
                &self.0.sealing,
                request.payload,
                request.signature,
            ) {
                return Err(KeyRefusal::BadSignature);
            }
            match key.allows(request.scope) {
                true => Ok(()),
                false => Err(KeyRefusal::MissingScope(request.scope)),
            }
        })
    }

    /// The account of a key that signed once already (a socket's session
    /// logged on with it), checked again for this request: still live,
    /// not expired, `from` allowed, and `scope` in its scopes. No
    /// signature is checked: the session's was.
    pub fn key_still_allows(
        &self,
        key_id: &str,
        from: IpAddr,
        scope: Scope,
    ) -> Result<AccountId, KeyRefusal> {
        self.key_in_force(key_id, from, |key| match key.allows(scope) {
            true => Ok(()),
            false => Err(KeyRefusal::MissingScope(scope)),
        })
    }

    /// A live key's account once `check` passes on it, its use noted.
    fn key_in_force(
        &self,
        key_id: &str,
        from: IpAddr,
        check: impl FnOnce(&ApiKey) -> Result<(), KeyRefusal>,
    ) -> Result<AccountId, KeyRefusal> {
        let record = self
            .0
            .ledger
            .read(|l| l.api_key(key_id).cloned())
            .ok_or(KeyRefusal::UnknownKey)?;
        let key = &record.key;
        if record.revoked_at.is_some() {
            return Err(KeyRefusal::Revoked);
        }
        let now = now_micros();
        if key.expires_at.is_some_and(|e| e <= now) {
            return Err(KeyRefusal::Expired);
        }
        if !key.allowed_ips.is_empty() && !in_networks(&key.allowed_ips, from) {
            return Err(KeyRefusal::AddressNotAllowed(from));
        }
        check(key)?;
        unpoisoned(self.0.key_last_used.lock()).insert(key.key_id.clone(), now / 1000);
        Ok(key.account)
    }
}
