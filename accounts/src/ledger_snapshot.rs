//! The ledger written down whole, so a start can take it up instead of
//! folding every event before it.
//!
//! The form is its own type, apart from the ledger's: what is on disk
//! changes only when this file does (and then its version, kept by the
//! store's side), not with every field the ledger grows. A fill's place
//! is a row of a compact table (`compact_table.rs`) with its market's name
//! as a place in a list, so a history of millions of fills reads back in
//! a few nanoseconds a fill, and its names come back shared, as the fold
//! shares them.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use orderbook::{AccountId, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::api_key::{ApiKey, KeyRecord};
use crate::compact_table::{CompactTable, TableReader, TableWriter};
use crate::event::TradeSettled;
use crate::fill_log::{FillLog, FillRef};
use crate::ledger::{Account, Balance, Ledger, Reservation, share_names};

/// The ledger as written down. Read back with [`Ledger::from_snapshot`],
/// it is the same ledger, field for field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LedgerSnapshot {
    accounts: Vec<AccountSnapshot>,
    /// Each logged-in token hash, its account and when it began.
    sessions: Vec<(String, AccountId, Timestamp)>,
    api_keys: Vec<(ApiKey, Option<Timestamp>)>,
    fees: BTreeMap<String, Decimal>,
    deposits: BTreeMap<String, Decimal>,
    registry_events: u64,
    market_events: BTreeMap<String, u64>,
    /// The market names the fills' rows refer to by place.
    fill_markets: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct AccountSnapshot {
    id: AccountId,
    username: String,
    password_hash: String,
    balances: BTreeMap<String, Balance>,
    reservations: Vec<Reservation>,
    settled: BTreeMap<String, u64>,
    faucet_received: BTreeMap<String, Decimal>,
    sessions: Vec<String>,
    /// Each fill's place, a row of a compact table: its market's place in
    /// `fill_markets`, then, from the row before, the change in its trade
    /// id, order id, time and where it is written.
    fills: CompactTable,
    recent_fills: VecDeque<TradeSettled>,
    settled_fills: Vec<TradeSettled>,
    stream_events: u64,
    changes: u64,
}

/// Why a written-down ledger cannot be taken up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the ledger snapshot is not a ledger: {0}")]
pub struct LedgerSnapshotError(String);

impl Ledger {
    /// This ledger written down.
    pub fn snapshot(&self) -> LedgerSnapshot {
        let mut fill_markets: Vec<String> = Vec::new();
        let mut place_of = HashMap::<Arc<str>, u32>::new();
        let accounts = self.accounts.values().map(|a| {
            let mut fills = TableWriter::default();
            let mut last = [0; 4];
            for (_, f) in a.fills.iter() {
                let place = *place_of.entry(f.symbol.clone()).or_insert_with(|| {
                    fill_markets.push(f.symbol.to_string());
                    fill_markets.len() as u32 - 1
                });
                f.write_row(&mut fills, place as usize, &mut last);
            }
            AccountSnapshot {
                id: a.id,
                username: a.username.clone(),
                password_hash: a.password_hash.clone(),
                balances: a.balances.clone(),
                reservations: a.reservations.values().cloned().collect(),
                settled: a.settled.clone(),
                faucet_received: a.faucet_received.clone(),
                sessions: a.sessions.clone(),
                fills: fills.finish(),
                recent_fills: a.recent_fills.clone(),
                settled_fills: a.settled_fills.clone(),
                stream_events: a.stream_events,
                changes: a.changes,
            }
        });
        let accounts = accounts.collect();
        let mut sessions: Vec<_> = (self.sessions.iter())
            .map(|(token, (account, at))| (token.clone(), *account, *at))
            .collect();
        sessions.sort();
        let mut api_keys: Vec<_> = (self.api_keys.values())
            .map(|k| (k.key.clone(), k.revoked_at))
            .collect();
        api_keys.sort_by(|a, b| a.0.key_id.cmp(&b.0.key_id));
        LedgerSnapshot {
            accounts,
            sessions,
            api_keys,
            fees: self.fees.clone(),
            deposits: self.deposits.clone(),
            registry_events: self.registry_events,
            market_events: self.market_events.clone(),
            fill_markets,
        }
    }

    /// The ledger a snapshot wrote down. An error if its fills name a
    /// market it does not list (it was not written by [`Ledger::snapshot`]).
    pub fn from_snapshot(s: LedgerSnapshot) -> Result<Ledger, LedgerSnapshotError> {
        let mut ledger = Ledger::new();
        let markets: Vec<Arc<str>> = s
            .fill_markets
            .iter()
            .map(|m| Arc::from(m.as_str()))
            .collect();
        for name in &markets {
            ledger.names.insert(name.clone());
        }
        for a in s.accounts {
            let fills = fills_from(&a.fills, &markets)
                .map_err(|e| LedgerSnapshotError(format!("the fills of account {}: {e}", a.id)))?;
            let mut share = |kept: Vec<TradeSettled>| -> Vec<TradeSettled> {
                let shared = kept.into_iter().map(|f| share_names(&mut ledger.names, f));
                shared.collect()
            };
            let recent_fills = share(a.recent_fills.into()).into();
            let settled_fills = share(a.settled_fills);
            let reservations = (a.reservations.into_iter())
                .map(|r| ((r.symbol.clone(), r.order_id), r))
                .collect();
            ledger.by_username.insert(a.username.to_lowercase(), a.id);
            let account = Account {
                id: a.id,
                username: a.username,
                password_hash: a.password_hash,
                balances: a.balances,
                reservations,
                settled: a.settled,
                faucet_received: a.faucet_received,
                sessions: a.sessions,
                fills,
                recent_fills,
                settled_fills,
                stream_events: a.stream_events,
                changes: a.changes,
            };
            ledger.accounts.insert(account.id, account);
        }
        ledger.sessions = (s.sessions.into_iter())
            .map(|(token, account, at)| (token, (account, at)))
            .collect();
        ledger.api_keys = (s.api_keys.into_iter())
            .map(|(key, revoked_at)| (key.key_id.clone(), KeyRecord { key, revoked_at }))
            .collect();
        ledger.fees = s.fees;
        ledger.deposits = s.deposits;
        ledger.registry_events = s.registry_events;
        ledger.market_events = s.market_events;
        Ok(ledger)
    }
}

/// An account's fills as written down: see [`AccountSnapshot::fills`].
fn fills_from(table: &CompactTable, markets: &[Arc<str>]) -> Result<FillLog, String> {
    let mut rows = TableReader::new(table);
    let mut fills = FillLog::default();
    let mut last = [0; 4];
    while !rows.is_empty() {
        let market = |place: u64| {
            (usize::try_from(place).ok())
                .and_then(|p| markets.get(p).cloned())
                .ok_or_else(|| format!("a fill names market {place}"))
        };
        fills.push(FillRef::read_row(&mut rows, &mut last, market)?);
    }
    Ok(fills)
}
