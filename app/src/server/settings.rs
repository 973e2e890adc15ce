//! The exchange's trading configuration, read from a JSON file: which
//! markets are listed on which grids, the fee rates and the faucet.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use accounts::{FaucetGrant, Fees};
use orderbook::{Market, MarketSpec};
use serde::Deserialize;

use super::key_crypto::SealingKey;

/// The file's shape. See `config/exchange.json` for the shipped one.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    markets: Vec<MarketSpec>,
    fees: Fees,
    faucet: accounts::Faucet,
}

/// Validated settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub markets: Vec<Market>,
    pub fees: Fees,
    pub faucet: accounts::Faucet,
    /// Not in the file: the server's flags set it.
    pub sessions: SessionPolicy,
    /// Orders one account may have open at once, over all markets (a
    /// server flag too).
    pub max_open_orders: usize,
    /// Stop and take-profit orders one account may have waiting for their
    /// trigger at once, over all markets (a server flag too). They count
    /// among its open orders as well.
    pub max_stop_orders: usize,
    /// Not in the file: how this server takes part in choosing the leader
    /// (its address, the claim's lease), from the server's flags.
    pub leader: super::leadership::LeaderSettings,
    /// Not in the file: events between two stored snapshots of a book
    /// (`--snapshot-every`), where the time machine's replays start.
    pub snapshot_every: u64,
    /// Not in the file: bytes of log between two start snapshots at least
    /// (`--start-snapshot-every`; see `start_snapshots.rs`).
    pub start_snapshot_every: u64,
    /// Not in the file: the key that seals API keys' HMAC secrets, from
    /// `--api-key-secret-file` (a random one held in memory otherwise).
    pub sealing: Arc<SealingKey>,
}

/// The default of [`Settings::max_open_orders`].
pub const MAX_OPEN_ORDERS: usize = 200;
/// The default of [`Settings::max_stop_orders`].
pub const MAX_STOP_ORDERS: usize = 20;
/// The default of [`Settings::snapshot_every`].
pub const SNAPSHOT_EVERY: u64 = 4096;
/// The default of [`Settings::start_snapshot_every`]: 32 MiB, about
/// 100,000 events.
pub const START_SNAPSHOT_EVERY: u64 = 32 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: std::io::Error },
    #[error("{path} is not valid exchange configuration: {error}")]
    Parse {
        path: String,
        error: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Settings {
    pub fn load(path: &Path) -> Result<Settings, SettingsError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| SettingsError::Read {
            path: shown.clone(),
            error,
        })?;
        let file: File = serde_json::from_str(&text)
            .map_err(|error| SettingsError::Parse { path: shown, error })?;
        Settings::new(file.markets, file.fees, file.faucet)
    }

    pub fn new(
        specs: Vec<MarketSpec>,
        fees: Fees,
        faucet: accounts::Faucet,
    ) -> Result<Settings, SettingsError> {
        let invalid = SettingsError::Invalid;
        if specs.is_empty() {
            return Err(invalid("at least one market must be listed".into()));
        }
        let mut markets: Vec<Market> = Vec::new();
        for spec in specs {
            let symbol = spec.symbol.clone();
            if !symbol
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
            {
                return Err(invalid(format!(
                    "market symbol {symbol:?} may only use letters, digits and '-'"
                )));
            }
            if markets.iter().any(|m| m.spec.symbol == symbol) {
                return Err(invalid(format!("market {symbol} is listed twice")));
            }
            markets.push(Market::new(spec).map_err(|e| invalid(format!("market {symbol}: {e}")))?);
        }
        fees.validate().map_err(invalid)?;
        for (asset, FaucetGrant { amount, limit }) in &faucet {
            if *amount <= rust_decimal::Decimal::ZERO || limit < amount {
                return Err(invalid(format!(
                    "faucet {asset}: amount must be positive and no more than the limit"
                )));
            }
        }
        Ok(Settings {
            markets,
            fees,
            faucet,
            sessions: Default::default(),
            max_open_orders: MAX_OPEN_ORDERS,
            max_stop_orders: MAX_STOP_ORDERS,
            snapshot_every: SNAPSHOT_EVERY,
            start_snapshot_every: START_SNAPSHOT_EVERY,
            leader: Default::default(),
            sealing: Arc::new(
                SealingKey::random().map_err(|e| SettingsError::Invalid(e.to_string()))?,
            ),
        })
    }

    pub fn market(&self, symbol: &str) -> Option<&Market> {
        self.markets.iter().find(|m| m.spec.symbol == symbol)
    }
}

/// How long sessions last on the server, how many an account may hold,
/// and whether the cookie is sent only over TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session not used for this long ends (an open page uses it every
    /// second, so this is time away from the exchange).
    pub idle: Duration,
    /// A session ends this long after it began, used or not.
    pub absolute: Duration,
    /// Sessions one account may hold; a new one ends the oldest beyond it.
    pub per_account: usize,
    /// Mark the cookie `Secure`: for a server behind TLS.
    pub secure_cookie: bool,
}

impl Default for SessionPolicy {
    fn default() -> SessionPolicy {
        SessionPolicy {
            idle: Duration::from_secs(12 * 3600),
            absolute: Duration::from_secs(30 * 24 * 3600),
            per_account: 10,
            secure_cookie: false,
        }
    }
}
