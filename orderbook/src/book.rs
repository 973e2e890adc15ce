//! The book's state: what folding its events gives, and what can be asked of it.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::client_ids::{ClientIds, ClientOrderId};
use crate::event::{Event, OrderAccepted};
use crate::ladder::{Ladder, NIL, Node};
use crate::market::{Market, Symbol};
use crate::order::{
    AccountId, OrderId, OrderType, SelfTradePrevention, Side, TimeInForce, Timestamp, TradeId,
    Trigger,
};
use crate::stops::{HeldStop, HeldStops};

/// One market's order book. Its state changes only through [`Book::apply`];
/// [`Book::decide`] reads it to turn a command into events.
#[derive(Clone, Debug)]
pub struct Book {
    pub(crate) market: Market,
    pub(crate) ladder: Ladder,
    pub(crate) last_order_id: OrderId,
    pub(crate) last_trade_id: TradeId,
    /// The last trade's price in ticks: what triggers are compared with.
    pub(crate) last_price: Option<u64>,
    /// Stop and take-profit orders waiting for their trigger.
    pub(crate) stops: HeldStops,
    /// The client ids of the open orders that have one.
    pub(crate) client_ids: ClientIds,
    pub(crate) events_applied: u64,
}

/// Aggregated open quantity at one price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceLevel {
    pub price: Decimal,
    pub quantity: Decimal,
    pub orders: u32,
}

/// The best levels of each side, best first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Depth {
    pub bids: Vec<PriceLevel>,
    pub asks: Vec<PriceLevel>,
}

/// Where an open order stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Resting with nothing filled yet.
    Open,
    /// Resting with part filled.
    PartiallyFilled,
}

/// A stop or take-profit order held off the book for its trigger, as seen
/// from outside: the order that enters when the trigger fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopOrder {
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    /// What it enters as: a market or a limit order.
    pub order_type: OrderType,
    pub trigger: Trigger,
    /// The limit price it enters at (limit orders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// Its base quantity; absent when sized by quote amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quote_amount: Option<Decimal>,
    pub time_in_force: TimeInForce,
    pub self_trade_prevention: SelfTradePrevention,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    pub accepted_at: Timestamp,
}

/// An open order as seen from outside. Orders that filled or were cancelled
/// are no longer in the book; their history is in the events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestingOrder {
    pub order_id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub price: Decimal,
    pub remaining_quantity: Decimal,
    pub filled_quantity: Decimal,
    pub status: OrderStatus,
    pub post_only: bool,
    pub self_trade_prevention: SelfTradePrevention,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_order_id: Option<ClientOrderId>,
    pub accepted_at: Timestamp,
}

impl Book {
    pub fn new(market: Market) -> Book {
        Book {
            market,
            ladder: Ladder::default(),
            last_order_id: 0,
            last_trade_id: 0,
            last_price: None,
            stops: HeldStops::default(),
            client_ids: ClientIds::default(),
            events_applied: 0,
        }
    }

    pub fn market(&self) -> &Market {
        &self.market
    }

    pub fn symbol(&self) -> &Symbol {
        &self.market.symbol
    }

    /// How many events this state is the fold of.
    pub fn events_applied(&self) -> u64 {
        self.events_applied
    }

    pub fn last_trade_id(&self) -> TradeId {
        self.last_trade_id
    }

    pub fn last_order_id(&self) -> OrderId {
        self.last_order_id
    }

    /// The price of the last trade: what stop and take-profit triggers are
    /// compared with. `None` until the market first trades.
    pub fn last_price(&self) -> Option<Decimal> {
        self.last_price.map(|p| self.market.price(p))
    }

    /// Folds one event into the state. Events come from [`Book::decide`] (or
    /// the log of earlier decisions), so they are trusted to be consistent.
    pub fn apply(&mut self, event: &Event) {
        self.events_applied += 1;
        let m = &self.market;
        match event {
            Event::OrderAccepted(e) => {
                self.last_order_id = self.last_order_id.max(e.order_id);
                if let Some(id) = &e.client_order_id {
                    self.client_ids.insert(e.account, id.clone(), e.order_id);
                }
                let node = accepted_node(m, e);
                match e.trigger.as_deref() {
                    Some(t) => self.stops.insert(HeldStop {
                        node,
                        kind: t.kind,
                        trigger: m.event_ticks(t.price),
                        time_in_force: e.time_in_force,
                    }),
                    None => {
                        self.ladder.insert(node);
                    }
                }
            }
            Event::OrderRejected(_) | Event::StreamFenced(_) | Event::OrderRefused(_) => {}
            Event::TradeExecuted(e) => {
                self.last_trade_id = e.trade_id;
                let lots = m.event_lots(e.quantity);
                // A trade is at the maker's price: read it from the maker
                // rather than convert the event's decimal again.
                let price = match self.ladder.get(e.maker_order_id) {
                    Some((slot, maker)) => {
                        let price = maker.price;
                        self.ladder.reduce(slot, lots);
                        price
                    }
                    None => m.event_ticks(e.price),
                };
                self.last_price = Some(price);
                if let Some((slot, taker)) = self.ladder.get(e.taker_order_id) {
                    if taker.quote_sized {
                        let n = &mut self.ladder.nodes[slot as usize];
                        n.quote_remaining -= u128::from(price) * u128::from(lots);
                        n.filled += lots;
                    } else {
                        self.ladder.reduce(slot, lots);
                    }
                }
            }
            Event::OrderCancelled(e) => {
                if !self.ladder.remove(e.order_id) {
                    self.stops.remove(e.order_id);
                }
                self.client_ids.remove(e.order_id);
            }
            Event::OrderFilled(e) => {
                self.ladder.remove(e.order_id);
                self.client_ids.remove(e.order_id);
            }
            Event::OrderAmended(e) => {
                let Some((slot, _)) = self.ladder.get(e.order_id) else {
                    return;
                };
                let lots = m.event_lots(e.quantity);
                if e.priority_kept {
                    self.ladder.resize_in_place(slot, lots);
                } else {
                    let price = m.event_ticks(e.price);
                    self.ladder.dequeue(slot);
                    let n = &mut self.ladder.nodes[slot as usize];
                    n.price = price;
                    n.remaining = lots;
                    self.ladder.join(slot);
                }
            }
            Event::StopTriggered(e) => {
                if let Some(held) = self.stops.remove(e.order_id) {
                    self.ladder.insert(held.node);
                }
            }
            Event::StopAmended(e) => {
                if let Some(mut held) = self.stops.remove(e.order_id) {
                    held.trigger = m.event_ticks(e.trigger_price);
                    if let Some(p) = e.price {
                        held.node.price = m.event_ticks(p);
                    }
                    if let Some(q) = e.quantity {
                        held.node.remaining = m.event_lots(q);
                    }
                    self.stops.insert(held);
                }
            }
        }
        self.ladder.settle_crossing();
    }

    /// Folds a sequence of events into a new book.
    pub fn replay<'a>(market: Market, events: impl IntoIterator<Item = &'a Event>) -> Book {
        let mut book = Book::new(market);
        for e in events {
            book.apply(e);
        }
        book
    }

    /// The best bid: price and total open quantity there.
    pub fn best_bid(&self) -> Option<PriceLevel> {
        self.ladder.bids.best().map(|l| self.level_view(l))
    }

    /// The best ask: price and total open quantity there.
    pub fn best_ask(&self) -> Option<PriceLevel> {
        self.ladder.asks.best().map(|l| self.level_view(l))
    }

    /// The best `levels` price levels of each side (L2 depth), best first.
    pub fn depth(&self, levels: usize) -> Depth {
        let side = |s: Side| {
            self.ladder
                .side(s)
                .iter_best_first()
                .take(levels)
                .map(|l| self.level_view(l))
                .collect()
        };
        Depth {
            bids: side(Side::Buy),
            asks: side(Side::Sell),
        }
    }

    /// The open quantity resting at one price on one side (zero for a
    /// price off the grid or with no order).
    pub fn quantity_at(&self, side: Side, price: Decimal) -> Decimal {
        let Ok(ticks) = self.market.ticks(price) else {
            return Decimal::ZERO;
        };
        match self.ladder.side(side).level_at(ticks) {
            Some(level) => self.market.quantity(level.total),
            None => Decimal::ZERO,
        }
    }

    /// An open order, or `None` when no order with that id rests here.
    pub fn order(&self, id: OrderId) -> Option<RestingOrder> {
        let (_, n) = self.ladder.get(id)?;
        n.queued().then(|| self.order_view(n))
    }

    /// Whether every open order rests on its level or is held for its
    /// trigger: none is part-way through entering (a limit order still
    /// crossing, a market order still taking). Between two commands this
    /// always holds, and inside one it holds wherever the entering order
    /// has come to rest or gone; only there is a [`Snapshot`] the whole
    /// state (it keeps resting and held orders, not an entering one).
    /// Costs a walk of the open orders.
    ///
    /// [`Snapshot`]: crate::Snapshot
    pub fn between_orders(&self) -> bool {
        let nodes = &self.ladder.nodes;
        self.ladder.crossing == NIL
            && self
                .ladder
                .index
                .values()
                .all(|&slot| nodes[slot as usize].queued())
    }

    /// Every resting order in priority order: bids best first, then asks
    /// best first, each level from its oldest order.
    pub fn resting_orders(&self) -> Vec<RestingOrder> {
        let mut out = Vec::with_capacity(self.ladder.index.len());
        for side in [Side::Buy, Side::Sell] {
            for level in self.ladder.side(side).iter_best_first() {
                out.extend(self.ladder.queue(level).map(|(_, n)| self.order_view(n)));
            }
        }
        out
    }

    /// The open order (resting or held for its trigger) that `account`
    /// placed under its own id `client_order_id`.
    pub fn order_by_client_id(
        &self,
        account: AccountId,
        client_order_id: &ClientOrderId,
    ) -> Option<OrderId> {
        self.client_ids.order(account, client_order_id)
    }

    /// An open order's client id, when it was placed with one.
    pub fn client_order_id(&self, order: OrderId) -> Option<&ClientOrderId> {
        self.client_ids.of_order(order)
    }

    /// A stop or take-profit order still waiting for its trigger.
    pub fn stop_order(&self, id: OrderId) -> Option<StopOrder> {
        self.stops.get(id).map(|h| self.stop_view(h))
    }

    /// Every order waiting for its trigger, oldest (lowest id) first.
    pub fn stop_orders(&self) -> Vec<StopOrder> {
        let mut held: Vec<&HeldStop> = self.stops.iter().collect();
        held.sort_unstable_by_key(|h| h.node.id);
        held.into_iter().map(|h| self.stop_view(h)).collect()
    }

    fn stop_view(&self, h: &HeldStop) -> StopOrder {
        let (m, n) = (&self.market, &h.node);
        let limit = n.order_type == OrderType::Limit;
        StopOrder {
            order_id: n.id,
            account: n.account,
            side: n.side,
            order_type: n.order_type,
            trigger: Trigger {
                kind: h.kind,
                price: m.price(h.trigger),
            },
            price: limit.then(|| m.price(n.price)),
            quantity: (!n.quote_sized).then(|| m.quantity(n.remaining)),
            quote_amount: n.quote_sized.then(|| m.quote_amount(n.quote_remaining)),
            time_in_force: h.time_in_force,
            self_trade_prevention: n.stp,
            client_order_id: self.client_ids.of_order(n.id).cloned(),
            accepted_at: n.accepted_at,
        }
    }

    fn level_view(&self, l: &crate::ladder::Level) -> PriceLevel {
        PriceLevel {
            price: self.market.price(l.price),
            quantity: self.market.quantity(l.total),
            orders: l.count,
        }
    }

    fn order_view(&self, n: &Node) -> RestingOrder {
        RestingOrder {
            order_id: n.id,
            account: n.account,
            side: n.side,
            price: self.market.price(n.price),
            remaining_quantity: self.market.quantity(n.remaining),
            filled_quantity: self.market.quantity(n.filled),
            status: if n.filled == 0 {
                OrderStatus::Open
            } else {
                OrderStatus::PartiallyFilled
            },
            post_only: n.post_only,
            self_trade_prevention: n.stp,
            client_order_id: self.client_ids.of_order(n.id).cloned(),
            accepted_at: n.accepted_at,
        }
    }

    /// Whether an order on `side` at `price` ticks would trade at once.
    pub(crate) fn crosses(&self, side: Side, price: u64) -> bool {
        self.ladder.crosses(side, price)
    }

    /// Restores a resting order from a snapshot at the back of its level.
    pub(crate) fn restore(&mut self, o: &RestingOrder) {
        let m = &self.market;
        self.ladder.insert(Node {
            id: o.order_id,
            account: o.account,
            side: o.side,
            order_type: OrderType::Limit,
            price: m.event_ticks(o.price),
            remaining: m.event_lots(o.remaining_quantity),
            quote_remaining: 0,
            quote_sized: false,
            filled: m.event_lots(o.filled_quantity),
            post_only: o.post_only,
            stp: o.self_trade_prevention,
            accepted_at: o.accepted_at,
            level: NIL,
            prev: NIL,
            next: NIL,
        });
        if let Some(id) = &o.client_order_id {
            self.client_ids.insert(o.account, id.clone(), o.order_id);
        }
    }

    /// Restores a held order from a snapshot: as its acceptance put it.
    pub(crate) fn restore_stop(&mut self, o: &StopOrder) {
        let m = &self.market;
        let accepted = OrderAccepted {
            symbol: m.symbol,
            order_id: o.order_id,
            account: o.account,
            side: o.side,
            order_type: o.order_type,
            price: o.price,
            quantity: o.quantity,
            quote_amount: o.quote_amount,
            time_in_force: o.time_in_force,
            post_only: false,
            self_trade_prevention: o.self_trade_prevention,
            trigger: Some(Box::new(o.trigger)),
            client_order_id: o.client_order_id.clone(),
            at: o.accepted_at,
        };
        if let Some(id) = &o.client_order_id {
            self.client_ids.insert(o.account, id.clone(), o.order_id);
        }
        self.stops.insert(HeldStop {
            node: accepted_node(m, &accepted),
            kind: o.trigger.kind,
            trigger: m.event_ticks(o.trigger.price),
            time_in_force: o.time_in_force,
        });
    }
}

/// The order an acceptance describes, as it enters the book (or waits for
/// its trigger): nothing filled, not queued yet.
fn accepted_node(m: &Market, e: &OrderAccepted) -> Node {
    let quote = e.quote_amount.map(|q| m.event_units(q));
    Node {
        id: e.order_id,
        account: e.account,
        side: e.side,
        order_type: e.order_type,
        price: e.price.map_or(0, |p| m.event_ticks(p)),
        remaining: e.quantity.map_or(0, |q| m.event_lots(q)),
        quote_remaining: quote.unwrap_or(0),
        quote_sized: quote.is_some(),
        filled: 0,
        post_only: e.post_only,
        stp: e.self_trade_prevention,
        accepted_at: e.at,
        level: NIL,
        prev: NIL,
        next: NIL,
    }
}
