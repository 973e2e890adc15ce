//! A trader's fills, whole. The ledger keeps each account's newest fills
//! whole and, for every fill, where it is written ([`accounts::FillRef`]):
//! a history of millions of fills would otherwise hold them all in memory
//! for as long as the server runs. A page of older fills is read back from
//! the market streams, each fill being its account's side of the trade at
//! that revision, as the ledger folded it.

use std::collections::BTreeMap;
use std::sync::Arc;

use accounts::{FillRef, FillSource, TradeSettled};
use orderbook::{AccountId, Event, OrderId, TradeId};

use super::Exchange;
use crate::server::exchange_error::ExchangeError;
use crate::server::streams::read_market_at;

/// A fill to read from its market's stream, and the answer it is.
struct ToRead {
    market_revision: u64,
    trade_id: TradeId,
    order_id: OrderId,
    slot: usize,
}

impl Exchange {
    /// The account's fills that `choose` picks from all of them (by their
    /// places in the list it is given, oldest first), whole and in the
    /// order chosen. Those the ledger keeps are copied; the rest are read
    /// from their market streams (a store that cannot be read answers
    /// [`ExchangeError::Unavailable`]).
    pub async fn fills(
        &self,
        account: AccountId,
        choose: impl FnOnce(&[FillRef]) -> Vec<usize>,
    ) -> Result<Vec<TradeSettled>, ExchangeError> {
        // The kept fills now; per market, where the others are to be read
        // and which answer each is.
        let (mut found, to_read) = self.0.ledger.read(|l| {
            let mut found: Vec<Option<TradeSettled>> = Vec::new();
            let mut to_read: BTreeMap<Arc<str>, Vec<ToRead>> = BTreeMap::new();
            let Some(a) = l.account(account) else {
                return (found, to_read);
            };
            for i in choose(&a.fills) {
                let Some(r) = a.fills.get(i) else { continue };
                match (a.kept_fill(i), r.written()) {
                    (Some(kept), _) => found.push(Some(kept.clone())),
                    (None, FillSource::Trade { market_revision }) => {
                        to_read.entry(r.symbol.clone()).or_default().push(ToRead {
                            market_revision,
                            trade_id: r.trade_id,
                            order_id: r.order_id,
                            slot: found.len(),
                        });
                        found.push(None);
                    }
                    // Always kept (see `Account::kept_fill`).
                    (None, FillSource::Settled { .. }) => {}
                }
            }
            (found, to_read)
        });
        for (symbol, mut places) in to_read {
            places.sort_unstable_by_key(|p| p.market_revision);
            self.read_fills(account, &symbol, &places, &mut found)
                .await?;
        }
        Ok(found.into_iter().flatten().collect())
    }

    /// Reads the fills at `places` (by revision) of one market's stream
    /// into `found`.
    async fn read_fills(
        &self,
        account: AccountId,
        symbol: &str,
        places: &[ToRead],
        found: &mut [Option<TradeSettled>],
    ) -> Result<(), ExchangeError> {
        let unknown = || ExchangeError::UnknownMarket(symbol.to_string());
        let spec = &self.0.markets.get(symbol).ok_or_else(unknown)?.market.spec;
        let revisions: Vec<u64> = places.iter().map(|p| p.market_revision).collect();
        let events = read_market_at(&self.0.client, symbol, &revisions)
            .await
            .map_err(|e| {
                tracing::warn!("an account's fills in {symbol} cannot be read from the store: {e}");
                ExchangeError::Unavailable
            })?;
        for (p, event) in places.iter().zip(&events) {
            let (revision, trade_id, order_id) = (p.market_revision, p.trade_id, p.order_id);
            let fill = match event {
                Event::TradeExecuted(t) if t.trade_id == trade_id => {
                    accounts::fills(spec, revision, t)
                        .into_iter()
                        .find(|f| f.account == account && f.order_id == order_id)
                }
                _ => None,
            };
            let Some(fill) = fill else {
                tracing::error!(
                    "{symbol}@{revision}: the ledger has account {account}'s fill of trade \
                     {trade_id} there, and the stream does not"
                );
                return Err(ExchangeError::Unavailable);
            };
            found[p.slot] = Some(fill);
        }
        Ok(())
    }
}
