//! Snapshots: a book's state written out so a book with millions of events
//! restarts from the snapshot plus the events after it.

use serde::{Deserialize, Serialize};

use rust_decimal::Decimal;

use crate::book::{Book, RestingOrder, StopOrder};
use crate::market::Market;
use crate::order::{OrderId, TradeId};

/// The snapshot format's version; readers accept this and earlier.
/// Version 2 added the last trade price and the held stop orders; version
/// 3 the open orders' client ids.
pub const SNAPSHOT_VERSION: u32 = 3;

/// A book's state where no order is part-way through entering (see
/// [`Book::between_orders`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub schema_version: u32,
    pub symbol: String,
    /// The number of events folded into this state: replay resumes with the
    /// event at this (zero-based) position.
    pub events_applied: u64,
    pub last_order_id: OrderId,
    pub last_trade_id: TradeId,
    /// Resting orders in priority order (as [`Book::resting_orders`]).
    pub orders: Vec<RestingOrder>,
    /// The last trade's price (version 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_price: Option<Decimal>,
    /// Orders held for their trigger (as [`Book::stop_orders`]; version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stops: Vec<StopOrder>,
}

/// Why a snapshot cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot is of {found}, not {expected}")]
    WrongMarket { expected: String, found: String },
    #[error("snapshot version {0} is newer than this program reads ({SNAPSHOT_VERSION})")]
    NewerVersion(u32),
}

impl Book {
    /// The state as a snapshot. Take it only where
    /// [`Book::between_orders`] holds (always between two commands), never
    /// while an order is part-way through entering.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            schema_version: SNAPSHOT_VERSION,
            symbol: self.market.symbol.to_string(),
            events_applied: self.events_applied,
            last_order_id: self.last_order_id,
            last_trade_id: self.last_trade_id,
            orders: self.resting_orders(),
            last_price: self.last_price(),
            stops: self.stop_orders(),
        }
    }

    /// A book restored from a snapshot of the same market.
    pub fn from_snapshot(market: Market, snapshot: &Snapshot) -> Result<Book, SnapshotError> {
        if snapshot.symbol != market.symbol.as_str() {
            return Err(SnapshotError::WrongMarket {
                expected: market.symbol.to_string(),
                found: snapshot.symbol.clone(),
            });
        }
        if snapshot.schema_version > SNAPSHOT_VERSION {
            return Err(SnapshotError::NewerVersion(snapshot.schema_version));
        }
        let mut book = Book::new(market);
        book.events_applied = snapshot.events_applied;
        book.last_order_id = snapshot.last_order_id;
        book.last_trade_id = snapshot.last_trade_id;
        for o in &snapshot.orders {
            book.restore(o);
        }
        book.last_price = snapshot.last_price.map(|p| book.market.event_ticks(p));
        for o in &snapshot.stops {
            book.restore_stop(o);
        }
        Ok(book)
    }
}
