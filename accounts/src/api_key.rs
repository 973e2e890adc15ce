//! API keys: how a trader's program proves it acts for the account. A key
//! is created and revoked by events in the account's stream, so every
//! server knows every key from the log alone. Nothing secret is in them:
//! an Ed25519 key is only its public half (the trader keeps the private
//! one), and an HMAC key's secret is sealed with a server key the log never
//! sees. Checking a signature is the shell's; this module only keeps what
//! the log says.

use std::fmt;
use std::str::FromStr;

use orderbook::{AccountId, Timestamp};
use serde::{Deserialize, Serialize};

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read the account: balances, orders, trades.
    Read,
    /// Place, amend and cancel orders.
    Trade,
}

impl Scope {
    pub const ALL: [Scope; 2] = [Scope::Read, Scope::Trade];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Trade => "trade",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| format!("unknown scope {s:?}: use read or trade"))
    }
}

/// How requests made with a key are signed, and what the server keeps to
/// check them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KeyCredential {
    /// The key's public half, base64 of its 32 bytes.
    Ed25519 { public_key: String },
    /// The shared secret, sealed with the server's key: base64 of the
    /// nonce followed by the ciphertext and its tag.
    Hmac { sealed_secret: String },
}

impl KeyCredential {
    pub fn kind(&self) -> &'static str {
        match self {
            KeyCredential::Ed25519 { .. } => "ed25519",
            KeyCredential::Hmac { .. } => "hmac",
        }
    }
}

/// One API key as its `ApiKeyCreated` event wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The public name a request carries (Binance's `X-MBX-APIKEY`).
    pub key_id: String,
    pub account: AccountId,
    pub label: String,
    pub credential: KeyCredential,
    pub scopes: Vec<Scope>,
    /// Addresses (or networks, as `a.b.c.d/n` or `x::/n`) requests may
    /// come from; empty is any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_ips: Vec<String>,
    /// After this the key is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl ApiKey {
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// A key as the ledger keeps it: what it was created with, and whether it
/// was revoked since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    pub key: ApiKey,
    pub revoked_at: Option<Timestamp>,
}

/// The most keys one account may have that are not revoked.
pub const MAX_KEYS_PER_ACCOUNT: usize = 20;
/// The longest label.
pub const MAX_LABEL_LEN: usize = 64;
/// The most entries in one key's address allow-list.
pub const MAX_ALLOWED_IPS: usize = 16;
