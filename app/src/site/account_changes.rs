//! An account's changes as they reach the log, for the sockets that push
//! them to programs (the Binance-compatible account stream and the native
//! API's `account` channel): each change of one of its orders (with the
//! order as it stands after it) and then its balances. The orders are
//! followed from a copy of the order history taken with the log position
//! it is the fold of, so no change is missed or sent twice; the balances
//! are the ledger's once it has folded the change.

use std::collections::BTreeMap;
use std::time::Duration;

use accounts::Balance;
use orderbook::{AccountId, CancelReason, Event, Side, TradeExecuted};
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use crate::server::live_tail::Streams;
use crate::server::order_history::OrderHistory;
use crate::server::{Exchange, OrderRecord};

/// What happened to an order.
#[derive(Clone, Debug, PartialEq)]
pub enum OrderChange {
    /// It was accepted (resting, or waiting for its trigger).
    New,
    /// Its trigger fired: it entered the book.
    Triggered,
    Amended,
    /// It traded: the trade, whether it was the maker, and its fee in the
    /// asset it received.
    Trade {
        trade: TradeExecuted,
        maker: bool,
        fee: Decimal,
        fee_asset: String,
    },
    /// It left the book with something unfilled.
    Cancelled(CancelReason),
}

/// A change of one of the account's orders.
#[derive(Clone, Debug)]
pub struct OrderUpdate {
    pub symbol: String,
    /// The order after the change; `filled` says when a trade was its
    /// last (its state says so only once its `OrderFilled` is folded).
    pub record: OrderRecord,
    pub change: OrderChange,
    pub filled: bool,
    pub at_ms: u64,
}

/// One change the account's socket is told of.
#[derive(Clone, Debug)]
pub enum AccountChange {
    Order(Box<OrderUpdate>),
    Balances(BTreeMap<String, Balance>),
}

/// Follows `account` until the receiver is dropped.
pub async fn follow(x: Exchange, account: AccountId, tx: mpsc::Sender<AccountChange>) {
    let (open, position) = x.open_orders_at(account);
    let mut mine = OrderHistory::default();
    for o in open {
        mine.adopt(account, o);
    }
    let mut reader = x.tail().reader(Streams::Markets, position);
    loop {
        let progress = match reader.next().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("an account stream cannot read the store, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let events: Vec<(&str, u64, &Event)> = progress
            .events
            .iter()
            .filter_map(|e| Some((e.book()?.symbol().as_str(), e.revision, e.book()?)))
            .collect();
        let mut touched: Option<(String, u64)> = None;
        for (i, (symbol, revision, event)) in events.iter().enumerate() {
            mine.apply_market(event);
            let Some(change) = order_change(&x, &mine, account, symbol, event, &events[i + 1..])
            else {
                continue;
            };
            touched = Some((symbol.to_string(), *revision));
            if tx.send(change).await.is_err() {
                return;
            }
        }
        if let Some((symbol, revision)) = touched {
            // The balances once the ledger has folded the change.
            for _ in 0..400 {
                if x.ledger_reached(&symbol) > revision {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if tx
                .send(AccountChange::Balances(x.balances(account)))
                .await
                .is_err()
            {
                return;
            }
        }
    }
}

/// The change an event makes to one of the account's orders.
fn order_change(
    x: &Exchange,
    mine: &OrderHistory,
    account: AccountId,
    symbol: &str,
    event: &Event,
    after: &[(&str, u64, &Event)],
) -> Option<AccountChange> {
    let (order_id, change) = match event {
        Event::OrderAccepted(a) if a.account == account => (a.order_id, OrderChange::New),
        Event::StopTriggered(s) if s.account == account => (s.order_id, OrderChange::Triggered),
        Event::OrderAmended(a) if a.account == account => (a.order_id, OrderChange::Amended),
        Event::OrderCancelled(c) if c.account == account => {
            (c.order_id, OrderChange::Cancelled(c.reason))
        }
        Event::TradeExecuted(t) if t.maker_account == account || t.taker_account == account => {
            let maker = t.maker_account == account;
            let side = if maker {
                t.taker_side.opposite()
            } else {
                t.taker_side
            };
            let spec = x.market_spec(symbol)?;
            let fee = t
                .fees
                .as_deref()
                .map_or(Decimal::ZERO, |f| if maker { f.maker } else { f.taker });
            let fee_asset = if side == Side::Buy {
                spec.base
            } else {
                spec.quote
            };
            let id = if maker {
                t.maker_order_id
            } else {
                t.taker_order_id
            };
            (
                id,
                OrderChange::Trade {
                    trade: t.clone(),
                    maker,
                    fee,
                    fee_asset,
                },
            )
        }
        _ => return None,
    };
    let record = mine.order(account, symbol, order_id)?.clone();
    let filled = matches!(change, OrderChange::Trade { .. }) && completes(order_id, after);
    Some(AccountChange::Order(Box::new(OrderUpdate {
        symbol: symbol.to_string(),
        record,
        change,
        filled,
        at_ms: event.at() / 1000,
    })))
}

/// Whether the order's next word in these events is that it filled.
fn completes(order_id: u64, after: &[(&str, u64, &Event)]) -> bool {
    for (_, _, e) in after {
        match e {
            Event::OrderFilled(f) if f.order_id == order_id => return true,
            Event::TradeExecuted(t)
                if t.maker_order_id == order_id || t.taker_order_id == order_id =>
            {
                return false;
            }
            _ => {}
        }
    }
    false
}
