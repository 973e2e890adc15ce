//! The rules the ledger must always keep, checked from outside the code
//! that moves money.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::ledger::Ledger;

/// A broken rule, in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ledger invariant broken: {0}")]
pub struct LedgerViolation(pub String);

/// Checks that no balance is negative, that every account's reserved
/// amount is exactly the sum of its open reservations (so available plus
/// reserved is the total), and that for every asset the accounts' totals
/// plus the fees collected equal the deposits.
pub fn check_ledger(ledger: &Ledger) -> Result<(), LedgerViolation> {
    let mut held: BTreeMap<&str, Decimal> = BTreeMap::new();
    for acc in ledger.accounts() {
        let mut reserved: BTreeMap<&str, Decimal> = BTreeMap::new();
        for r in acc.reservations.values() {
            if r.amount < Decimal::ZERO {
                return Err(LedgerViolation(format!(
                    "account {} order {} {} reservation is negative: {}",
                    acc.id, r.symbol, r.order_id, r.amount
                )));
            }
            *reserved.entry(&r.asset).or_default() += r.amount;
        }
        for (asset, b) in &acc.balances {
            if b.total < Decimal::ZERO
                || b.reserved < Decimal::ZERO
                || b.available() < Decimal::ZERO
            {
                return Err(LedgerViolation(format!(
                    "account {} {asset} negative: total {} reserved {} available {}",
                    acc.id,
                    b.total,
                    b.reserved,
                    b.available()
                )));
            }
            let sum = reserved.remove(asset.as_str()).unwrap_or_default();
            if sum != b.reserved {
                return Err(LedgerViolation(format!(
                    "account {} {asset} reserved {} but its orders hold {sum}",
                    acc.id, b.reserved
                )));
            }
            if b.available() + b.reserved != b.total {
                return Err(LedgerViolation(format!(
                    "account {} {asset} does not add up",
                    acc.id
                )));
            }
            *held.entry(asset).or_default() += b.total;
        }
        if let Some((asset, sum)) = reserved.into_iter().find(|(_, s)| !s.is_zero()) {
            return Err(LedgerViolation(format!(
                "account {} has {sum} {asset} in reservations but no balance",
                acc.id
            )));
        }
    }
    let assets: std::collections::BTreeSet<&str> = held
        .keys()
        .copied()
        .chain(ledger.fees.keys().map(String::as_str))
        .chain(ledger.deposits.keys().map(String::as_str))
        .collect();
    for asset in assets {
        let total = held.get(asset).copied().unwrap_or_default()
            + ledger.fees.get(asset).copied().unwrap_or_default();
        let deposits = ledger.deposits.get(asset).copied().unwrap_or_default();
        if total != deposits {
            return Err(LedgerViolation(format!(
                "{asset}: accounts and fees hold {total} but deposits were {deposits}"
            )));
        }
    }
    Ok(())
}
