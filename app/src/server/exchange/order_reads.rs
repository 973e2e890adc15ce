//! A trader's orders, whole. The order history keeps a closed order as
//! how it ended and where its terms are written ([`ClosedOrder`]); these
//! reads take its `OrderAccepted` back from the market's stream to make
//! the whole record.

use std::collections::BTreeMap;
use std::sync::Arc;

use orderbook::{AccountId, Event};

use super::Exchange;
use crate::server::exchange_error::ExchangeError;
use crate::server::order_history::{ClosedOrder, Listed, MarketOrders, OrderEntry, OrderRecord};
use crate::server::streams::read_back;

impl Exchange {
    /// The account's orders in a market that `wanted` asks for, whole
    /// and oldest first (see `OrderHistory::in_market`).
    pub async fn orders_in(
        &self,
        account: AccountId,
        symbol: &str,
        wanted: MarketOrders,
    ) -> Result<Vec<OrderRecord>, ExchangeError> {
        let name: Arc<str> = symbol.into();
        let entries = self.0.order_history.read(|h| {
            let orders = h.in_market(account, symbol, &wanted);
            (orders.into_iter())
                .map(|entry| Listed {
                    symbol: name.clone(),
                    entry,
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
        // Per market, where each closed order was accepted, the answer it
        // is, and the order.
        let mut wanted: BTreeMap<Arc<str>, Vec<(u64, usize, ClosedOrder)>> = BTreeMap::new();
        for Listed { symbol, entry } in entries {
            match entry {
                OrderEntry::Whole { record, .. } => found.push(Some(*record)),
                OrderEntry::Closed(c) => {
                    let place = (c.accepted_revision, found.len(), c);
                    wanted.entry(symbol).or_default().push(place);
                    found.push(None);
                }
            }
        }
        let whole = |symbol: &Arc<str>, _, event: &Event, c: ClosedOrder| match event {
            Event::OrderAccepted(a) if a.order_id == c.order_id => Ok(c.record(symbol.clone(), a)),
            _ => Err(format!("not the acceptance of order {}", c.order_id)),
        };
        read_back(&self.0.client, wanted, &mut found, whole)
            .await
            .map_err(|e| ExchangeError::history_unreadable("an account's orders", e))?;
        Ok(found.into_iter().flatten().collect())
    }
}
