//! The order history (`order_history.rs`) written down for a start to
//! take up (`start_snapshots.rs`). A closed order is a row of its parts,
//! as it is kept: most of a long history is closed orders, and a row
//! reads back as fast as its numbers parse. The others are written whole.

use orderbook::{AccountId, CancelReason, ClientOrderId, OrderId, OrderTerms, Symbol, Timestamp};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::order_history::{ClosedOrder, OrderEntry, OrderHistory, OrderRecord, OrderState};

/// The order history as written down. Read back with
/// [`OrderHistory::from_snapshot`], it is the same history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OrderHistorySnapshot {
    /// The markets closed orders are in, by place.
    markets: Vec<String>,
    /// Every account's orders, in the order they entered the log;
    /// accounts by id.
    accounts: Vec<(AccountId, Vec<EntrySnapshot>)>,
    /// Per account and market, the places of its accepted orders, in
    /// order of their ids.
    places: Vec<(AccountId, String, Vec<usize>)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum EntrySnapshot {
    Whole(Box<RecordSnapshot>, Option<u64>),
    /// Market place, id, revision of its `OrderAccepted`, client id,
    /// filled, filled quote, why it was cancelled, placed and updated.
    Closed(
        u16,
        OrderId,
        u64,
        Option<ClientOrderId>,
        Decimal,
        Decimal,
        Option<CancelReason>,
        Timestamp,
        Timestamp,
    ),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RecordSnapshot {
    symbol: String,
    order_id: Option<OrderId>,
    terms: OrderTerms,
    client_order_id: Option<ClientOrderId>,
    filled: Decimal,
    filled_quote: Decimal,
    state: StateSnapshot,
    triggered_at: Option<Timestamp>,
    placed_at: Timestamp,
    updated_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum StateSnapshot {
    Open,
    PartiallyFilled,
    Filled,
    Cancelled(CancelReason),
    Rejected(String),
}

impl OrderHistory {
    /// This history written down.
    pub fn snapshot(&self) -> OrderHistorySnapshot {
        let entry = |e: &OrderEntry| match e {
            OrderEntry::Whole {
                record,
                accepted_revision,
            } => EntrySnapshot::Whole(Box::new(record_snapshot(record)), *accepted_revision),
            OrderEntry::Closed(c) => EntrySnapshot::Closed(
                c.market,
                c.order_id,
                c.accepted_revision,
                c.client_order_id.clone(),
                c.filled,
                c.filled_quote,
                c.cancelled,
                c.placed_at,
                c.updated_at,
            ),
        };
        let mut accounts: Vec<_> = (self.accounts.iter())
            .map(|(id, orders)| (*id, orders.iter().map(entry).collect()))
            .collect();
        accounts.sort_by_key(|a| a.0);
        let mut places: Vec<_> = (self.places.iter())
            .map(|((account, symbol), p)| (*account, symbol.as_str().to_string(), p.clone()))
            .collect();
        places.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        OrderHistorySnapshot {
            markets: self.markets.iter().map(|m| m.to_string()).collect(),
            accounts,
            places,
        }
    }

    /// The history a snapshot wrote down. An error if it is not one
    /// [`OrderHistory::snapshot`] could have written (a place or market
    /// out of range, a market name that is not a symbol).
    pub fn from_snapshot(s: OrderHistorySnapshot) -> Result<OrderHistory, String> {
        let mut history = OrderHistory::default();
        for m in &s.markets {
            let name = history.name(m);
            history.markets.push(name);
        }
        for (account, orders) in s.accounts {
            let mut kept = Vec::with_capacity(orders.len());
            for e in orders {
                kept.push(match e {
                    EntrySnapshot::Whole(record, accepted_revision) => OrderEntry::Whole {
                        record: Box::new(history.record(*record)),
                        accepted_revision,
                    },
                    EntrySnapshot::Closed(market, order_id, accepted_revision, client_order_id, filled, filled_quote, cancelled, placed_at, updated_at) => {
                        if usize::from(market) >= history.markets.len() {
                            return Err(format!("order {order_id} of account {account} is in market {market}, which it does not list"));
                        }
                        OrderEntry::Closed(ClosedOrder {
                            market,
                            order_id,
                            accepted_revision,
                            client_order_id,
                            filled,
                            filled_quote,
                            cancelled,
                            placed_at,
                            updated_at,
                        })
                    }
                });
            }
            history.accounts.insert(account, kept);
        }
        for (account, symbol, places) in s.places {
            let listed = history.accounts.get(&account).map_or(0, Vec::len);
            if places.iter().any(|&p| p >= listed) {
                return Err(format!(
                    "account {account} has a place beyond its {listed} orders"
                ));
            }
            let symbol = Symbol::new(&symbol).map_err(|e| format!("{symbol}: {e}"))?;
            history.places.insert((account, symbol), places);
        }
        Ok(history)
    }

    /// A record written down, its market's name shared.
    fn record(&mut self, r: RecordSnapshot) -> OrderRecord {
        OrderRecord {
            symbol: self.name(&r.symbol),
            order_id: r.order_id,
            terms: r.terms,
            client_order_id: r.client_order_id,
            filled: r.filled,
            filled_quote: r.filled_quote,
            state: match r.state {
                StateSnapshot::Open => OrderState::Open,
                StateSnapshot::PartiallyFilled => OrderState::PartiallyFilled,
                StateSnapshot::Filled => OrderState::Filled,
                StateSnapshot::Cancelled(reason) => OrderState::Cancelled(reason),
                StateSnapshot::Rejected(why) => OrderState::Rejected(why),
            },
            triggered_at: r.triggered_at,
            placed_at: r.placed_at,
            updated_at: r.updated_at,
        }
    }
}

fn record_snapshot(r: &OrderRecord) -> RecordSnapshot {
    RecordSnapshot {
        symbol: r.symbol.to_string(),
        order_id: r.order_id,
        terms: r.terms,
        client_order_id: r.client_order_id.clone(),
        filled: r.filled,
        filled_quote: r.filled_quote,
        state: match &r.state {
            OrderState::Open => StateSnapshot::Open,
            OrderState::PartiallyFilled => StateSnapshot::PartiallyFilled,
            OrderState::Filled => StateSnapshot::Filled,
            OrderState::Cancelled(reason) => StateSnapshot::Cancelled(*reason),
            OrderState::Rejected(why) => StateSnapshot::Rejected(why.clone()),
        },
        triggered_at: r.triggered_at,
        placed_at: r.placed_at,
        updated_at: r.updated_at,
    }
}
