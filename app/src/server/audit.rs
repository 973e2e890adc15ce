//! The operator's check of the whole log (`exchange check`): every market
//! and account event is folded in the store's order into a ledger of its
//! own, and the ledger's rules are checked as it goes, so each broken rule
//! is reported with the event that broke it. Nothing here is shared with
//! the server's running ledger but the fold itself: a server that drifted
//! is caught, not trusted.
//!
//! After each event the accounts it touches are checked (reserved is the
//! sum of their holds, each hold the cost of its open terms, 0 ≤ reserved
//! ≤ total), and the money it moved is checked to sum to zero beside what
//! came in from outside (conservation, event by event). At the end the
//! whole ledger is checked once more and every book, replayed from the
//! same events, is compared with what its orders hold.
//!
//! One exception to "event by event": a trade written before fees were in
//! trades was settled by one `TradeSettled` per side, in two streams, so
//! money is only conserved once both are in; such events are left to the
//! check at the end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use accounts::invariants::{
    LedgerViolation, account_violations, book_violations, ledger_violations,
};
use accounts::{AccountEvent, Ledger};
use eventstore::Client;
use orderbook::{AccountId, Book, Market};
use rust_decimal::Decimal;

use super::streams::{
    ACCOUNT_STREAM_PREFIX, ACCOUNTS_STREAM, Decoded, MARKET_STREAM_PREFIX, StreamError, decode,
    feed_position, market_stream, read_all_after,
};
use crate::api::FeedPosition;

/// Events read from `$all` at a time.
const PAGE: usize = 4096;

/// Where in the log a rule broke: the event's stream, its revision there
/// and its position in `$all`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub stream: String,
    pub revision: u64,
    pub position: FeedPosition,
}

/// A broken rule, and the event after which it was first seen (`None`:
/// found in the state the whole log folds to).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub violation: LedgerViolation,
    pub at: Option<Place>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = &self.violation;
        match v.account {
            Some(account) => write!(f, "account {account}")?,
            None => write!(f, "all accounts")?,
        }
        if let Some(asset) = &v.asset {
            write!(f, ", {asset}")?;
        }
        write!(f, ": {}", v.what)?;
        match &self.at {
            Some(p) => write!(
                f,
                " (first at {}@{}, $all {}/{})",
                p.stream, p.revision, p.position.commit, p.position.prepare
            ),
            None => write!(f, " (at the end of the log)"),
        }
    }
}

/// What the check read and found.
#[derive(Debug, Default)]
pub struct Audit {
    /// Market and account events folded.
    pub events: u64,
    /// The position of the last event read, `None` for an empty store.
    pub reached: Option<FeedPosition>,
    pub findings: Vec<Finding>,
}

/// The money of some accounts and the house, per asset: their totals, the
/// fees collected, and what came in from outside (subtracted).
fn money(ledger: &Ledger, accounts: &[AccountId]) -> BTreeMap<String, Decimal> {
    let mut sums: BTreeMap<String, Decimal> = BTreeMap::new();
    for acc in accounts.iter().filter_map(|&a| ledger.account(a)) {
        for (asset, b) in &acc.balances {
            *sums.entry(asset.clone()).or_default() += b.total;
        }
    }
    for (asset, fee) in &ledger.fees {
        *sums.entry(asset.clone()).or_default() += fee;
    }
    for (asset, deposit) in &ledger.deposits {
        *sums.entry(asset.clone()).or_default() -= deposit;
    }
    sums
}

/// The check's state as it folds.
struct Fold<'a> {
    markets: HashMap<String, &'a Market>,
    ledger: Ledger,
    books: BTreeMap<String, Book>,
    /// Whose rule (account and asset) was reported already: each is
    /// reported once, where it first broke.
    reported: HashSet<(Option<AccountId>, Option<String>)>,
    audit: Audit,
}

impl Fold<'_> {
    fn report(&mut self, violation: LedgerViolation, at: Option<&Place>) {
        let key = (violation.account, violation.asset.clone());
        if self.reported.insert(key) {
            self.audit.findings.push(Finding {
                violation,
                at: at.cloned(),
            });
        }
    }

    fn apply(&mut self, place: &Place, event: Decoded) {
        self.audit.events += 1;
        let touched: Vec<AccountId> = match &event {
            Decoded::Book(e) => e.accounts().collect(),
            Decoded::Account(e) => vec![e.account()],
        };
        let conserves = !matches!(event, Decoded::Account(AccountEvent::TradeSettled(_)));
        let before = money(&self.ledger, &touched);
        let broken = |what: String| LedgerViolation {
            account: None,
            asset: None,
            what,
        };
        match event {
            Decoded::Account(e) => {
                let known = if place.stream == ACCOUNTS_STREAM {
                    self.ledger.registry_events
                } else {
                    self.ledger
                        .account(e.account())
                        .map_or(0, |a| a.stream_events)
                };
                if place.revision != known {
                    self.report(
                        broken(format!(
                            "{} is at revision {} where the fold expected {known}",
                            place.stream, place.revision
                        )),
                        Some(place),
                    );
                }
                self.ledger.apply(&e);
            }
            Decoded::Book(e) => {
                let Some(market) = self.markets.get(&place.stream).copied() else {
                    self.report(
                        broken(format!(
                            "{} is the stream of a market the configuration does not have",
                            place.stream
                        )),
                        Some(place),
                    );
                    return;
                };
                if let Err(gap) = self.ledger.apply_market(&market.spec, place.revision, &e) {
                    self.report(broken(gap.to_string()), Some(place));
                }
                self.books
                    .entry(place.stream.clone())
                    .or_insert_with(|| Book::new(market.clone()))
                    .apply(&e);
            }
        }
        if conserves {
            let after = money(&self.ledger, &touched);
            let assets: std::collections::BTreeSet<&String> =
                before.keys().chain(after.keys()).collect();
            for asset in assets {
                let moved = after.get(asset).copied().unwrap_or_default()
                    - before.get(asset).copied().unwrap_or_default();
                if !moved.is_zero() {
                    let violation = LedgerViolation {
                        account: None,
                        asset: Some(asset.clone()),
                        what: format!("{moved} appeared from nowhere (negative: vanished)"),
                    };
                    self.report(violation, Some(place));
                }
            }
        }
        for account in touched {
            let found = self
                .ledger
                .account(account)
                .map(account_violations)
                .unwrap_or_default();
            for violation in found {
                self.report(violation, Some(place));
            }
        }
    }

    fn finish(mut self) -> Audit {
        for violation in ledger_violations(&self.ledger) {
            self.report(violation, None);
        }
        let books = std::mem::take(&mut self.books);
        for book in books.values() {
            for violation in book_violations(&self.ledger, book) {
                // Each is its own order's: none is folded into another.
                self.audit.findings.push(Finding {
                    violation,
                    at: None,
                });
            }
        }
        self.audit
    }
}

/// Folds every market and account event in the store, in `$all` order, and
/// checks the ledger's rules (see the module docs). A store that cannot be
/// read, or an event that cannot be decoded, is an error: the check never
/// passes over what it could not read.
pub async fn audit(client: &Client, markets: &[Market]) -> Result<Audit, StreamError> {
    let mut fold = Fold {
        markets: markets
            .iter()
            .map(|m| (market_stream(m.symbol.as_str()), m))
            .collect(),
        ledger: Ledger::new(),
        books: BTreeMap::new(),
        reported: HashSet::new(),
        audit: Audit::default(),
    };
    let mut position = None;
    loop {
        let page = read_all_after(client, position, PAGE).await?;
        if page.is_empty() {
            break;
        }
        for e in &page {
            let at = feed_position(e.position);
            position = Some(at);
            let ours = e.stream_id.starts_with(MARKET_STREAM_PREFIX)
                || e.stream_id.starts_with(ACCOUNT_STREAM_PREFIX);
            if !ours {
                continue;
            }
            let place = Place {
                stream: e.stream_id.clone(),
                revision: e.revision,
                position: at,
            };
            fold.apply(&place, decode(e)?);
        }
    }
    fold.audit.reached = position;
    Ok(fold.finish())
}
