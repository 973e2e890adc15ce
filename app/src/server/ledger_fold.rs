//! The ledger as the fold of the log in the store's order: the accounts
//! registry, every account's stream and the market streams, event by
//! event as `$all` has them. Start folds the log this way a page at a
//! time, and the accounts task folds what the live tail delivers after
//! it with the same rule, so a ledger built at start and one kept current
//! since are the same fold.

use std::collections::HashMap;
use std::sync::Arc;

use accounts::{AccountEvent, Fees, Ledger};
use orderbook::{Event, Market, MarketSpec};

use super::live_tail::TailEvent;
use super::log_read::LogFold;
use super::streams::{ACCOUNTS_STREAM, Decoded, StreamError, market_stream};

/// Folds market and account events into `ledger`, in the store's order:
/// each stream's events from the revision the ledger is at (earlier ones
/// are in it already, as this server folds what it writes, and are
/// passed over). An event past the next one of its stream is a gap: the
/// ledger missed what lies between, and folding on would be wrong.
pub fn fold_in_log_order(
    ledger: &mut Ledger,
    specs: &HashMap<String, MarketSpec>,
    events: &[Arc<TailEvent>],
) -> Result<(), StreamError> {
    for e in events {
        let gap = |folded: u64| StreamError::Corrupt {
            stream: e.stream.clone(),
            revision: e.revision,
            reason: format!("the ledger has folded {folded} events of it, so one is missing"),
        };
        match &e.event {
            Decoded::Account(event) => {
                let folded = if e.stream == ACCOUNTS_STREAM {
                    ledger.registry_events
                } else {
                    let account = ledger.account(event.account());
                    account.map_or(0, |a| a.stream_events)
                };
                if e.revision > folded {
                    return Err(gap(folded));
                }
                if e.revision == folded {
                    ledger.apply(event);
                }
            }
            Decoded::Book(event) => {
                if let Some(spec) = specs.get(&e.stream) {
                    ledger
                        .apply_market(spec, e.revision, event)
                        .map_err(|g| gap(g.folded))?;
                }
            }
        }
    }
    Ok(())
}

/// Each market's spec by the name of its stream.
pub fn specs_by_stream(markets: &[Market]) -> HashMap<String, MarketSpec> {
    let specs = markets
        .iter()
        .map(|m| (market_stream(m.symbol.as_str()), m.spec.clone()));
    specs.collect()
}

/// The ledger folded from the whole log at start, with what start does
/// once the fold is whole.
pub struct LedgerFold {
    pub ledger: Ledger,
    specs: HashMap<String, MarketSpec>,
    /// Trades of a log written before fees were in trades (stream,
    /// revision, event) that are not settled yet into every party with an
    /// account: their settlement, written after them, may still come.
    unsettled: Vec<(String, u64, Event)>,
}

impl LedgerFold {
    pub fn new(specs: HashMap<String, MarketSpec>) -> LedgerFold {
        LedgerFold {
            ledger: Ledger::new(),
            specs,
            unsettled: Vec::new(),
        }
    }

    /// The newest revision folded of each market stream that has events:
    /// the ledger folds each stream's events in order, so it is one less
    /// than how many it folded.
    pub fn read(&self) -> impl Iterator<Item = (&str, u64)> {
        self.specs.iter().filter_map(|(stream, spec)| {
            let folded = self.ledger.market_events(spec.symbol.as_str());
            Some((stream.as_str(), folded.checked_sub(1)?))
        })
    }

    /// Whether a trade of a log written before fees were in trades has
    /// been folded without its settlement so far.
    pub fn awaits_legacy_settlements(&self) -> bool {
        !self.unsettled.is_empty()
    }

    /// The settlements a crash took away from trades of a log written
    /// before fees were in trades, market by market, each in its
    /// stream's order.
    pub fn legacy_settlements(&self, markets: &[Market], fees: &Fees) -> Vec<AccountEvent> {
        let mut due = Vec::new();
        for market in markets {
            let stream = market_stream(market.symbol.as_str());
            for (_, revision, event) in self.unsettled.iter().filter(|(s, ..)| *s == stream) {
                let settlement =
                    self.ledger
                        .legacy_settlement(&market.spec, fees, *revision, event);
                due.extend(settlement);
            }
        }
        due
    }
}

impl LogFold for LedgerFold {
    fn fold_page(&mut self, events: &[Arc<TailEvent>]) -> Result<(), StreamError> {
        fold_in_log_order(&mut self.ledger, &self.specs, events)?;
        // A settlement follows its trade closely in the log: what it has
        // settled since is let go, so only the trades a crash left
        // unsettled are kept to the end.
        let (ledger, specs) = (&self.ledger, &self.specs);
        let awaits = |stream: &String, revision: u64, event: &Event| {
            let symbol = specs[stream].symbol.as_str();
            ledger.awaits_legacy_settlement(symbol, revision, event)
        };
        self.unsettled.retain(|(s, r, e)| awaits(s, *r, e));
        for e in events {
            if let Some(event) = e.book()
                && specs.contains_key(&e.stream)
                && awaits(&e.stream, e.revision, event)
            {
                self.unsettled
                    .push((e.stream.clone(), e.revision, event.clone()));
            }
        }
        Ok(())
    }
}
