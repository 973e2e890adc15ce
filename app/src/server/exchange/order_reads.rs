//! A trader's orders, whole. The order history keeps a closed order as
//! how it ended and where its terms are written ([`ClosedOrder`]); these
//! reads take its `OrderAccepted` back from the market's stream to make
//! the whole record.

use std::collections::BTreeMap;
use std::sync::Arc;

use orderbook::{AccountId, Event};

use super::Exchange;
use crate::server::exchange_error::ExchangeError;
use crate::server::order_history::{ClosedOrder, Listed, OrderEntry, OrderRecord};
use crate::server::streams::read_market_at;

impl Exchange {
    /// The account's orders in a market that `choose` picks from all of
    /// them (by their places in the list it is given, in the order of
    /// their ids), whole and in the order chosen.
    pub async fn orders_in(
        &self,
        account: AccountId,
        symbol: &str,
        choose: impl FnOnce(&[&OrderEntry]) -> Vec<usize>,
    ) -> Result<Vec<OrderRecord>, ExchangeError> {
        let name: Arc<str> = symbol.into();
        let entries = self.0.order_history.read(|h| {
            let entries = h.in_market(account, symbol);
            let chosen = choose(&entries);
            chosen
                .into_iter()
                .filter_map(|i| entries.get(i))
                .map(|&e| Listed {
                    symbol: name.clone(),
                    entry: e.clone(),
                })
                .collect()
        });
        self.records(entries).await
    }

    /// The orders `entries` keep, whole and in the same order: a closed
    /// one's terms are read from its `OrderAccepted` in the store (a store
    /// that cannot be read answers [`ExchangeError::Unavailable`]).
    pub(super) async fn records(
        &self,
        entries: Vec<Listed>,
    ) -> Result<Vec<OrderRecord>, ExchangeError> {
        let mut found: Vec<Option<OrderRecord>> = Vec::with_capacity(entries.len());
        // Per market, the closed orders to read and the answer each is.
        let mut to_read: BTreeMap<Arc<str>, Vec<(ClosedOrder, usize)>> = BTreeMap::new();
        for Listed { symbol, entry } in entries {
            match entry {
                OrderEntry::Whole { record, .. } => found.push(Some(*record)),
                OrderEntry::Closed(c) => {
                    let slot = found.len();
                    to_read.entry(symbol).or_default().push((c, slot));
                    found.push(None);
                }
            }
        }
        for (symbol, mut closed) in to_read {
            closed.sort_unstable_by_key(|(c, _)| c.accepted_revision);
            let revisions: Vec<u64> = closed.iter().map(|(c, _)| c.accepted_revision).collect();
            let events = read_market_at(&self.0.client, &symbol, &revisions)
                .await
                .map_err(|e| {
                    tracing::warn!("an account's orders in {symbol} cannot be read: {e}");
                    ExchangeError::Unavailable
                })?;
            for ((c, slot), event) in closed.iter().zip(&events) {
                match event {
                    Event::OrderAccepted(a) if a.order_id == c.order_id => {
                        found[*slot] = Some(c.record(symbol.clone(), a));
                    }
                    _ => {
                        tracing::error!(
                            "{symbol}@{}: the order history has order {} accepted there, and \
                             the stream does not",
                            c.accepted_revision,
                            c.order_id
                        );
                        return Err(ExchangeError::Unavailable);
                    }
                }
            }
        }
        Ok(found.into_iter().flatten().collect())
    }
}
