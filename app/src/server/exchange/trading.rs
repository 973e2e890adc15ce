//! Orders, routed to their market's sequencer, and the faucet, which
//! brings money in through the leader only.

use orderbook::{AccountId, ClientOrderId, OrderCancelled, OrderId, OrderTerms};
use rust_decimal::Decimal;

use super::Exchange;
use crate::server::accounts_task::AccountsRequest;
use crate::server::clock::now_micros;
use crate::server::exchange_error::ExchangeError;
use crate::server::market_task::{Action, CommandOutcome, MarketHandle};

impl Exchange {
    pub async fn claim_faucet(&self, account: AccountId) -> Result<(), ExchangeError> {
        // Money comes in through the leader only.
        if self.0.leadership.term().is_none() {
            return Err(ExchangeError::NotLeader);
        }
        let at = now_micros();
        self.0
            .ledger
            .ask(|reply| AccountsRequest::Faucet { account, at, reply })
            .await
    }

    fn market(&self, symbol: &str) -> Result<&MarketHandle, ExchangeError> {
        self.0
            .markets
            .get(symbol)
            .ok_or_else(|| ExchangeError::UnknownMarket(symbol.to_string()))
    }

    pub async fn place(
        &self,
        account: AccountId,
        symbol: &str,
        order: OrderTerms,
    ) -> Result<CommandOutcome, ExchangeError> {
        self.place_named(account, symbol, order, None).await
    }

    /// Places an order under the trader's own id too (refused while
    /// another open order of theirs in the market has it).
    pub async fn place_named(
        &self,
        account: AccountId,
        symbol: &str,
        order: OrderTerms,
        client_order_id: Option<ClientOrderId>,
    ) -> Result<CommandOutcome, ExchangeError> {
        // The caps and the funds are checked by the market's sequencer,
        // in the same decision as the order; a refusal is written with
        // that decision's batch.
        self.market(symbol)?
            .send(account, Action::Place(order, client_order_id))
            .await
    }

    /// Cancels every open order of the account in one market, or in all of
    /// them; answers how many were cancelled. An order that filled or was
    /// cancelled meanwhile is passed over.
    pub async fn cancel_all(
        &self,
        account: AccountId,
        symbol: Option<&str>,
    ) -> Result<usize, ExchangeError> {
        Ok(self.cancel_all_orders(account, symbol).await?.len())
    }

    /// As [`Exchange::cancel_all`], answering the cancellations themselves.
    pub async fn cancel_all_orders(
        &self,
        account: AccountId,
        symbol: Option<&str>,
    ) -> Result<Vec<OrderCancelled>, ExchangeError> {
        if let Some(s) = symbol {
            self.market(s)?;
        }
        // One decision per market, of the orders open when it is decided.
        let mut cancelled = Vec::new();
        let markets = self.0.markets.iter();
        for (_, market) in markets.filter(|(s, _)| symbol.is_none_or(|wanted| wanted == *s)) {
            let outcome = market.send(account, Action::CancelAll).await?;
            cancelled.extend(outcome.events.into_iter().filter_map(|e| match e {
                orderbook::Event::OrderCancelled(c) => Some(c),
                _ => None,
            }));
        }
        Ok(cancelled)
    }

    pub async fn cancel(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
    ) -> Result<CommandOutcome, ExchangeError> {
        self.market(symbol)?
            .send(account, Action::Cancel(order_id))
            .await
    }

    /// Gives a resting order a new price and/or open quantity; an order
    /// waiting for its trigger a new trigger price too.
    pub async fn amend(
        &self,
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
        price: Option<Decimal>,
        quantity: Option<Decimal>,
        trigger_price: Option<Decimal>,
    ) -> Result<CommandOutcome, ExchangeError> {
        let action = Action::Amend {
            order_id,
            price,
            quantity,
            trigger_price,
        };
        self.market(symbol)?.send(account, action).await
    }
}
