//! The rules the ledger must always keep, checked from outside the code
//! that moves money: every sum is computed again here from the parts, and
//! what an order holds is compared with the order as its book has it.

use std::collections::BTreeMap;

use orderbook::{AccountId, Book, OrderId, Side};
use rust_decimal::Decimal;

use crate::ledger::{Account, Ledger};

/// A broken rule: whose, in which asset, and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("ledger invariant broken: {}{}{what}", account.map(|a| format!("account {a}: ")).unwrap_or_default(), asset.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
pub struct LedgerViolation {
    pub account: Option<AccountId>,
    pub asset: Option<String>,
    pub what: String,
}

impl LedgerViolation {
    fn new(account: Option<AccountId>, asset: Option<&str>, what: String) -> LedgerViolation {
        LedgerViolation {
            account,
            asset: asset.map(str::to_string),
            what,
        }
    }
}

/// What an open order must hold, written out here from its terms: a buy
/// its price times its open quantity (or the quote it may still spend), a
/// sell its open quantity.
fn hold_of(
    side: Side,
    price: Option<Decimal>,
    quantity: Option<Decimal>,
    quote: Option<Decimal>,
) -> Decimal {
    match side {
        Side::Buy => match (price, quantity) {
            (Some(p), Some(q)) => p * q,
            _ => quote.unwrap_or_default(),
        },
        Side::Sell => quantity.unwrap_or_default(),
    }
}

/// Every rule of one account that is broken now: each asset's reserved is
/// the sum of what its open orders hold, each order holds the cost of its
/// open terms, and 0 ≤ reserved ≤ total.
pub fn account_violations(acc: &Account) -> Vec<LedgerViolation> {
    let mut found = Vec::new();
    let mut reserved: BTreeMap<&str, Decimal> = BTreeMap::new();
    for r in acc.reservations.values() {
        let cost = hold_of(r.side, r.price, r.open_quantity, r.open_quote);
        if r.amount != cost || r.amount < Decimal::ZERO {
            found.push(LedgerViolation::new(
                Some(acc.id),
                Some(&r.asset),
                format!(
                    "order {} {} holds {} but its open terms cost {cost}",
                    r.symbol, r.order_id, r.amount
                ),
            ));
        }
        *reserved.entry(&r.asset).or_default() += r.amount;
    }
    for (asset, b) in &acc.balances {
        let sum = reserved.remove(asset.as_str()).unwrap_or_default();
        if sum != b.reserved {
            found.push(LedgerViolation::new(
                Some(acc.id),
                Some(asset),
                format!("reserved {} but its open orders hold {sum}", b.reserved),
            ));
        }
        if b.reserved < Decimal::ZERO || b.reserved > b.total {
            found.push(LedgerViolation::new(
                Some(acc.id),
                Some(asset),
                format!(
                    "reserved {} is not between 0 and the total {}",
                    b.reserved, b.total
                ),
            ));
        }
    }
    for (asset, sum) in reserved.into_iter().filter(|(_, s)| !s.is_zero()) {
        found.push(LedgerViolation::new(
            Some(acc.id),
            Some(asset),
            format!("its open orders hold {sum} but it has no balance"),
        ));
    }
    found
}

/// Every rule of the ledger alone that is broken now: each account's (see
/// [`account_violations`]), and, per asset, the accounts' totals plus the
/// fees collected equal what was deposited.
pub fn ledger_violations(ledger: &Ledger) -> Vec<LedgerViolation> {
    let mut found = Vec::new();
    let mut held: BTreeMap<&str, Decimal> = BTreeMap::new();
    for acc in ledger.accounts() {
        found.extend(account_violations(acc));
        for (asset, b) in &acc.balances {
            *held.entry(asset).or_default() += b.total;
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
            found.push(LedgerViolation::new(
                None,
                Some(asset),
                format!("accounts and fees hold {total} but deposits were {deposits}"),
            ));
        }
    }
    found
}

/// Every way the holds disagree with a book (folded from the same log):
/// each open order of the book (resting, or waiting for its trigger)
/// holds exactly its open cost in its account, and nothing else in that
/// market holds anything.
pub fn book_violations(ledger: &Ledger, book: &Book) -> Vec<LedgerViolation> {
    let spec = &book.market().spec;
    let symbol = spec.symbol.as_str();
    let asset_of = |side: Side| match side {
        Side::Buy => spec.quote.as_str(),
        Side::Sell => spec.base.as_str(),
    };
    let mut open: BTreeMap<(AccountId, OrderId), (&str, Decimal)> = BTreeMap::new();
    for o in book.resting_orders() {
        let cost = hold_of(o.side, Some(o.price), Some(o.remaining_quantity), None);
        open.insert((o.account, o.order_id), (asset_of(o.side), cost));
    }
    for o in book.stop_orders() {
        let cost = hold_of(o.side, o.price, o.quantity, o.quote_amount);
        open.insert((o.account, o.order_id), (asset_of(o.side), cost));
    }
    let mut found = Vec::new();
    for acc in ledger.accounts() {
        for r in acc.reservations.values().filter(|r| r.symbol == symbol) {
            match open.remove(&(acc.id, r.order_id)) {
                None => found.push(LedgerViolation::new(
                    Some(acc.id),
                    Some(&r.asset),
                    format!(
                        "order {symbol} {} holds {} but is not open on its book",
                        r.order_id, r.amount
                    ),
                )),
                Some((asset, cost))
                    if asset != r.asset || cost.normalize() != r.amount.normalize() =>
                {
                    found.push(LedgerViolation::new(
                        Some(acc.id),
                        Some(&r.asset),
                        format!(
                            "order {symbol} {} holds {} but its book says it costs {cost} {asset}",
                            r.order_id, r.amount
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
    }
    for ((account, order_id), (asset, cost)) in open {
        if ledger.account(account).is_some() {
            found.push(LedgerViolation::new(
                Some(account),
                Some(asset),
                format!("order {symbol} {order_id} is open on its book (costing {cost}) but holds nothing"),
            ));
        }
    }
    found
}

/// The first rule of the ledger alone that is broken, if any.
pub fn check_ledger(ledger: &Ledger) -> Result<(), LedgerViolation> {
    match ledger_violations(ledger).into_iter().next() {
        Some(v) => Err(v),
        None => Ok(()),
    }
}
