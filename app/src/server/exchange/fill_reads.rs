//! A trader's fills, whole. The ledger keeps each account's newest fills
//! whole and, for every fill, where it is written ([`accounts::FillRef`]):
//! a history of millions of fills would otherwise hold them all in memory
//! for as long as the server runs. A page of older fills is read back from
//! the market streams, each fill being its account's side of the trade at
//! that revision, as the ledger folded it.

use std::collections::BTreeMap;
use std::sync::Arc;

use accounts::{Account, FillSource, TradeSettled};
use orderbook::{AccountId, Event, OrderId, TradeId};

use super::Exchange;
use crate::server::exchange_error::ExchangeError;
use crate::server::streams::read_back;

impl Exchange {
    /// The account's fills that `choose` picks from the account (by their
    /// places in [`Account::fills`], oldest first), whole and in the order
    /// chosen. Those the ledger keeps are copied; the rest are read
    /// from their market streams (a store that cannot be read answers
    /// [`ExchangeError::Unavailable`]).
    pub async fn fills(
        &self,
        account: AccountId,
        choose: impl FnOnce(&Account) -> Vec<usize>,
    ) -> Result<Vec<TradeSettled>, ExchangeError> {
        // The kept fills now; per market, the revisions of the others, the
        // answer each is, and its trade and order.
        type Wanted = BTreeMap<Arc<str>, Vec<(u64, usize, (TradeId, OrderId))>>;
        let (mut found, wanted) = self.0.ledger.read(|l| {
            let mut found: Vec<Option<TradeSettled>> = Vec::new();
            let mut wanted = Wanted::new();
            let Some(a) = l.account(account) else {
                return (found, wanted);
            };
            let chosen = choose(a);
            let refs = a.fills.get_many(&chosen);
            for (i, r) in chosen.into_iter().zip(refs) {
                let Some(r) = r else { continue };
                match (a.kept_fill(i, &r), r.written()) {
                    (Some(kept), _) => found.push(Some(kept.clone())),
                    (None, FillSource::Trade { market_revision }) => {
                        let place = (market_revision, found.len(), (r.trade_id, r.order_id));
                        wanted.entry(r.symbol.clone()).or_default().push(place);
                        found.push(None);
                    }
                    // Always kept (see `Account::kept_fill`).
                    (None, FillSource::Settled { .. }) => {}
                }
            }
            (found, wanted)
        });
        // Each is its account's side of the trade there.
        let side = |symbol: &Arc<str>, revision, event: &Event, (trade_id, order_id)| {
            let market = self.0.markets.get(&**symbol).ok_or("not a market here")?;
            match event {
                Event::TradeExecuted(t) if t.trade_id == trade_id => {
                    accounts::fills(&market.market.spec, revision, t)
                        .into_iter()
                        .find(|f| f.account == account && f.order_id == order_id)
                        .ok_or("the trade is not this account's")
                }
                _ => Err("not the trade the ledger has there"),
            }
            .map_err(|why| format!("account {account}'s fill of trade {trade_id}: {why}"))
        };
        read_back(&self.0.client, wanted, &mut found, side)
            .await
            .map_err(|e| ExchangeError::history_unreadable("an account's fills", e))?;
        Ok(found.into_iter().flatten().collect())
    }
}
