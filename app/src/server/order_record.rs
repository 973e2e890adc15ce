//! What the order history (`order_history.rs`) keeps of one order: an
//! [`OrderRecord`] while it is open or when it must be kept whole, a
//! [`ClosedOrder`] once it has closed with the terms it was accepted with,
//! and the row a closed order is packed as (`order_list.rs`, and the
//! history's snapshot).

use std::sync::Arc;

use accounts::compact_table::{TableError, TableReader, TableWriter};
use orderbook::{
    CancelReason, ClientOrderId, Event, OrderAccepted, OrderId, OrderTerms, Symbol, Timestamp,
};
use rust_decimal::Decimal;

/// Where an order is in its life.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderState {
    Open,
    PartiallyFilled,
    Filled,
    Cancelled(CancelReason),
    /// Refused before it reached the book, with the trader's reason.
    Rejected(String),
}

impl OrderState {
    /// The state's name, as the history shows and filters it.
    pub fn name(&self) -> &'static str {
        match self {
            OrderState::Open => "open",
            OrderState::PartiallyFilled => "partially_filled",
            OrderState::Filled => "filled",
            OrderState::Cancelled(_) => "cancelled",
            OrderState::Rejected(_) => "rejected",
        }
    }
}

/// One order as the history knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderRecord {
    /// The market's name, shared by every record of it: a history of
    /// millions of orders keeps one copy.
    pub symbol: Arc<str>,
    /// None for an order refused before it was given an id.
    pub order_id: Option<OrderId>,
    /// As accepted (a refusal's as asked), after any amendment: the
    /// limit price, the whole base quantity (filled and open) and the
    /// trigger's price are the amended ones.
    pub terms: OrderTerms,
    /// The trader's own id for it, when they gave one.
    pub client_order_id: Option<ClientOrderId>,
    /// Base quantity filled, and the quote amount it traded for.
    pub filled: Decimal,
    pub filled_quote: Decimal,
    pub state: OrderState,
    /// When a stop or take-profit order's trigger fired.
    pub triggered_at: Option<Timestamp>,
    pub placed_at: Timestamp,
    /// The last time anything happened to it.
    pub updated_at: Timestamp,
}

impl OrderRecord {
    /// A placement refused before it was given an id.
    pub(super) fn refused(
        symbol: Arc<str>,
        terms: OrderTerms,
        client_order_id: Option<ClientOrderId>,
        reason: &str,
        at: Timestamp,
    ) -> OrderRecord {
        OrderRecord {
            symbol,
            order_id: None,
            terms,
            client_order_id,
            filled: Decimal::ZERO,
            filled_quote: Decimal::ZERO,
            state: OrderState::Rejected(reason.to_string()),
            triggered_at: None,
            placed_at: at,
            updated_at: at,
        }
    }

    /// The record with a decision's events about it folded in: its fills
    /// and how it ended (a cancel's answer, before the history has it).
    pub fn with_events(mut self, events: &[Event]) -> OrderRecord {
        let Some(id) = self.order_id else {
            return self;
        };
        for e in events {
            match e {
                Event::OrderCancelled(c) if c.order_id == id => {
                    self.state = OrderState::Cancelled(c.reason);
                    self.updated_at = c.at;
                }
                Event::OrderFilled(f) if f.order_id == id => {
                    self.state = OrderState::Filled;
                    self.updated_at = f.at;
                }
                _ => {}
            }
        }
        self
    }

    /// The average price of what filled, if anything did.
    pub fn average_price(&self) -> Option<Decimal> {
        (!self.filled.is_zero()).then(|| (self.filled_quote / self.filled).round_dp(8))
    }
}

/// A closed order whose terms are still those it was accepted with: how
/// it ended, and where those terms are written (80 bytes, and about 20 as
/// a packed row, where the whole record takes over 200; a trader's history
/// is mostly these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedOrder {
    /// Its market's place in the history's list of market names (see
    /// `OrderHistory::symbol_of`): two bytes, where the name takes 16.
    pub(super) market: u16,
    pub order_id: OrderId,
    /// The revision of its `OrderAccepted` in the market's stream.
    pub accepted_revision: u64,
    pub client_order_id: Option<ClientOrderId>,
    pub filled: Decimal,
    pub filled_quote: Decimal,
    /// Why it was cancelled; none if it filled.
    pub cancelled: Option<CancelReason>,
    pub placed_at: Timestamp,
    pub updated_at: Timestamp,
}

impl ClosedOrder {
    /// The whole record, given its market's name and the `OrderAccepted`
    /// it was accepted with.
    pub fn record(&self, symbol: Arc<str>, accepted: &OrderAccepted) -> OrderRecord {
        OrderRecord {
            symbol,
            order_id: Some(self.order_id),
            terms: accepted.terms(),
            client_order_id: self.client_order_id.clone(),
            filled: self.filled,
            filled_quote: self.filled_quote,
            state: match self.cancelled {
                Some(reason) => OrderState::Cancelled(reason),
                None => OrderState::Filled,
            },
            triggered_at: None,
            placed_at: self.placed_at,
            updated_at: self.updated_at,
        }
    }

    /// Writes this order as a row: its market's place, then the change in
    /// its id, in the revision of its `OrderAccepted` and in when it was
    /// placed from `last` (the row before's, zeros for the first; they
    /// become this one's); how long after that it last changed; what
    /// filled and the quote it filled for; how it ended (0 filled, else
    /// [`cancel_code`]); its client id (empty: none).
    pub fn write_row(&self, rows: &mut TableWriter, last: &mut [u64; 3]) {
        let [id, revision, placed] = last;
        rows.number(u64::from(self.market));
        rows.delta(self.order_id, id);
        rows.delta(self.accepted_revision, revision);
        rows.delta(self.placed_at, placed);
        rows.delta(self.updated_at, &mut self.placed_at.clone());
        rows.decimal(self.filled);
        rows.decimal(self.filled_quote);
        rows.number(self.cancelled.map_or(0, cancel_code));
        rows.text(self.client_order_id.as_ref().map_or("", |c| c.as_str()));
    }

    /// Reads a row [`ClosedOrder::write_row`] wrote, of an order in one of
    /// `markets` markets: an error for a row it cannot have written.
    pub fn read_row(
        rows: &mut TableReader,
        last: &mut [u64; 3],
        markets: usize,
    ) -> Result<ClosedOrder, String> {
        let text = |e: TableError| e.to_string();
        let [id, revision, placed] = last;
        let market = rows.number().map_err(text)?;
        let market = (u16::try_from(market).ok())
            .filter(|m| usize::from(*m) < markets)
            .ok_or_else(|| format!("an order is in market {market}, which it does not list"))?;
        let order_id = rows.delta(id).map_err(text)?;
        let accepted_revision = rows.delta(revision).map_err(text)?;
        let placed_at = rows.delta(placed).map_err(text)?;
        let updated_at = rows.delta(&mut placed_at.clone()).map_err(text)?;
        let filled = rows.decimal().map_err(text)?;
        let filled_quote = rows.decimal().map_err(text)?;
        let code = rows.number().map_err(text)?;
        let cancelled =
            cancel_reason(code).ok_or_else(|| format!("order {order_id} ended as {code}"))?;
        let client_order_id = match rows.text().map_err(text)? {
            "" => None,
            id => Some(ClientOrderId::try_from(id.to_string()).map_err(|e| e.to_string())?),
        };
        Ok(ClosedOrder {
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
}

/// How a cancelled order's reason is written in a row (0 is an order
/// that filled).
fn cancel_code(reason: CancelReason) -> u64 {
    match reason {
        CancelReason::User => 1,
        CancelReason::ImmediateOrCancelRemainder => 2,
        CancelReason::FillOrKillUnfilled => 3,
        CancelReason::MarketOrderRemainder => 4,
        CancelReason::SelfTradePrevention => 5,
    }
}

/// How an order ended, from its row's code: `None` for a code
/// [`cancel_code`] never writes.
fn cancel_reason(code: u64) -> Option<Option<CancelReason>> {
    let reasons = [
        CancelReason::User,
        CancelReason::ImmediateOrCancelRemainder,
        CancelReason::FillOrKillUnfilled,
        CancelReason::MarketOrderRemainder,
        CancelReason::SelfTradePrevention,
    ];
    match code {
        0 => Some(None),
        _ => reasons
            .into_iter()
            .find(|r| cancel_code(*r) == code)
            .map(Some),
    }
}

/// One of an account's orders as the history keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderEntry {
    /// Open, refused, or closed with other terms than it was accepted
    /// with.
    Whole {
        record: Box<OrderRecord>,
        /// The revision of its `OrderAccepted` while its terms are still
        /// those written there: once it closes, it is kept as a
        /// [`ClosedOrder`]. None once amended or triggered, and for an
        /// order folded without its revision.
        accepted_revision: Option<u64>,
    },
    Closed(ClosedOrder),
}

impl OrderEntry {
    pub fn order_id(&self) -> Option<OrderId> {
        match self {
            OrderEntry::Whole { record, .. } => record.order_id,
            OrderEntry::Closed(c) => Some(c.order_id),
        }
    }

    pub fn placed_at(&self) -> Timestamp {
        match self {
            OrderEntry::Whole { record, .. } => record.placed_at,
            OrderEntry::Closed(c) => c.placed_at,
        }
    }

    /// Its state's [`OrderState::name`].
    pub fn state_name(&self) -> &'static str {
        match self {
            OrderEntry::Whole { record, .. } => record.state.name(),
            OrderEntry::Closed(c) if c.cancelled.is_some() => "cancelled",
            OrderEntry::Closed(_) => "filled",
        }
    }

    pub fn client_order_id(&self) -> Option<&ClientOrderId> {
        match self {
            OrderEntry::Whole { record, .. } => record.client_order_id.as_ref(),
            OrderEntry::Closed(c) => c.client_order_id.as_ref(),
        }
    }

    /// The market and id by which an order kept whole is found: one with
    /// an id (a refusal has none) in a market named by a symbol.
    pub fn whole_key(&self) -> Option<(Symbol, OrderId)> {
        let OrderEntry::Whole { record, .. } = self else {
            return None;
        };
        Some((Symbol::new(&record.symbol).ok()?, record.order_id?))
    }

    /// The record, if kept whole.
    pub fn whole(&self) -> Option<&OrderRecord> {
        match self {
            OrderEntry::Whole { record, .. } => Some(record),
            OrderEntry::Closed(_) => None,
        }
    }

    pub(super) fn whole_mut(&mut self) -> Option<&mut OrderRecord> {
        match self {
            OrderEntry::Whole { record, .. } => Some(record),
            OrderEntry::Closed(_) => None,
        }
    }

    /// Kept as a [`ClosedOrder`] if it has closed with the terms it was
    /// accepted with; `market` is its market's place in the history's list.
    pub(super) fn settle(&mut self, market: u16) {
        let OrderEntry::Whole {
            record,
            accepted_revision: Some(accepted_revision),
        } = self
        else {
            return;
        };
        let (Some(order_id), None) = (record.order_id, record.triggered_at) else {
            return;
        };
        let cancelled = match &record.state {
            OrderState::Filled => None,
            OrderState::Cancelled(reason) => Some(*reason),
            _ => return,
        };
        *self = OrderEntry::Closed(ClosedOrder {
            market,
            order_id,
            accepted_revision: *accepted_revision,
            client_order_id: record.client_order_id.take(),
            filled: record.filled,
            filled_quote: record.filled_quote,
            cancelled,
            placed_at: record.placed_at,
            updated_at: record.updated_at,
        });
    }
}
