//! The rules a book must keep, checked from outside its matching code.
//!
//! [`check_book`] looks at one state; [`OrderAudit`] follows a run's events and
//! checks what holds across them: quantity is conserved, trades respect the
//! taker's limit and the makers' price-time priority.

use std::collections::HashMap;

use rust_decimal::Decimal;

use crate::book::Book;
use crate::command::Command;
use crate::event::Event;
use crate::ladder::NIL;
use crate::order::{OrderId, OrderType, Side};

/// A broken rule, in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant broken: {0}")]
pub struct BookViolation(pub String);

fn fail<T>(msg: String) -> Result<T, BookViolation> {
    Err(BookViolation(msg))
}

/// Checks a book between commands: not crossed, levels sorted and non-empty,
/// totals and counts equal to their queues, no order with nothing open, and
/// no order outside a level.
pub fn check_book(book: &Book) -> Result<(), BookViolation> {
    if let (Some(bid), Some(ask)) = (book.ladder.bids.best(), book.ladder.asks.best())
        && bid.price >= ask.price
    {
        return fail(format!(
            "book crossed: bid {} >= ask {}",
            bid.price, ask.price
        ));
    }
    let mut queued = 0usize;
    for side in [Side::Buy, Side::Sell] {
        let s = book.ladder.side(side);
        for pair in s.levels.windows(2) {
            let in_order = match side {
                Side::Buy => pair[0].price < pair[1].price,
                Side::Sell => pair[0].price > pair[1].price,
            };
            if !in_order {
                return fail(format!("{side:?} levels out of order at {}", pair[1].price));
            }
        }
        for level in &s.levels {
            let (mut total, mut count, mut prev) = (0u64, 0u32, NIL);
            for (slot, n) in book.ladder.queue(level) {
                if n.prev != prev || n.price != level.price || n.side != side || !n.queued {
                    return fail(format!("order {} misplaced in level {}", n.id, level.price));
                }
                if n.remaining == 0 {
                    return fail(format!("order {} rests with nothing open", n.id));
                }
                total += n.remaining;
                count += 1;
                prev = slot;
            }
            if level.tail != prev || count == 0 || total != level.total || count != level.count {
                return fail(format!(
                    "level {} totals disagree with its queue",
                    level.price
                ));
            }
            queued += count as usize;
        }
    }
    if queued != book.ladder.index.len() {
        return fail(format!(
            "{} orders indexed but {queued} resting",
            book.ladder.index.len()
        ));
    }
    Ok(())
}

#[derive(Clone, Debug, Default)]
struct OrderSums {
    side: Option<Side>,
    limit: Option<Decimal>,
    placed: Decimal,
    filled: Decimal,
    cancelled: Decimal,
    quote_sized: bool,
}

/// Follows a run's events and checks the rules that span them.
#[derive(Debug)]
pub struct OrderAudit {
    orders: HashMap<OrderId, OrderSums>,
    last_trade_id: u64,
    /// Orders the last recorded command touched: only their sums can change.
    touched: Vec<OrderId>,
}

impl Default for OrderAudit {
    fn default() -> Self {
        Self::new()
    }
}

impl OrderAudit {
    pub fn new() -> OrderAudit {
        OrderAudit {
            orders: HashMap::new(),
            last_trade_id: 0,
            touched: Vec::new(),
        }
    }

    /// Checks one command's events against the book *before* they were
    /// applied (for priority), then records them.
    pub fn record(
        &mut self,
        before: &Book,
        command: &Command,
        events: &[Event],
    ) -> Result<(), BookViolation> {
        if let Command::Amend(a) = command
            && let Some(o) = self.orders.get_mut(&a.order_id)
            && let Some(Event::OrderAmended(e)) = events.first()
        {
            // The open quantity changed by amendment, not by fill or cancel.
            o.placed = o.placed - e.old_quantity + e.quantity;
            o.limit = Some(e.price);
        }
        let mut taken: HashMap<OrderId, Decimal> = HashMap::new();
        self.touched.clear();
        for event in events {
            self.touched.extend(touched_orders(event));
            match event {
                Event::OrderAccepted(e) => {
                    let o = self.orders.entry(e.order_id).or_default();
                    o.side = Some(e.side);
                    o.limit = e.price;
                    o.placed = e.quantity.unwrap_or_default();
                    o.quote_sized = e.quote_amount.is_some();
                    if e.order_type == OrderType::Market && e.price.is_some() {
                        return fail(format!("market order {} has a price", e.order_id));
                    }
                }
                Event::TradeExecuted(t) => {
                    if t.trade_id != self.last_trade_id + 1 {
                        return fail(format!(
                            "trade id {} after {}",
                            t.trade_id, self.last_trade_id
                        ));
                    }
                    self.last_trade_id = t.trade_id;
                    if t.quantity <= Decimal::ZERO || t.maker_account == t.taker_account {
                        return fail(format!("trade {} is empty or a self-trade", t.trade_id));
                    }
                    self.check_priority(before, t, &mut taken)?;
                    for id in [t.maker_order_id, t.taker_order_id] {
                        let o = self.orders.entry(id).or_default();
                        o.filled += t.quantity;
                        if let (Some(limit), Some(side)) = (o.limit, o.side) {
                            let ok = match side {
                                Side::Buy => t.price <= limit,
                                Side::Sell => t.price >= limit,
                            };
                            if !ok {
                                return fail(format!(
                                    "trade {} at {} breaks order {id}'s limit {limit}",
                                    t.trade_id, t.price
                                ));
                            }
                        }
                    }
                }
                Event::OrderCancelled(e) => {
                    let o = self.orders.entry(e.order_id).or_default();
                    o.cancelled += e.remaining_quantity.unwrap_or_default();
                    self.check_conserved(e.order_id)?;
                    self.orders.remove(&e.order_id);
                }
                Event::OrderFilled(e) => {
                    let o = self.orders.entry(e.order_id).or_default();
                    if !o.quote_sized && o.filled != o.placed {
                        return fail(format!(
                            "order {} filled {} of {}",
                            e.order_id, o.filled, o.placed
                        ));
                    }
                    self.orders.remove(&e.order_id);
                }
                Event::OrderAmended(_) | Event::OrderRejected(_) => {}
            }
        }
        Ok(())
    }

    /// Placed = filled + cancelled + open, for every order sized by quantity
    /// that the last recorded command touched (no other order's sums moved).
    pub fn check_open_orders(&self, book: &Book) -> Result<(), BookViolation> {
        for id in &self.touched {
            let Some(o) = self.orders.get(id) else {
                continue;
            };
            if o.quote_sized {
                continue;
            }
            let open = book
                .order(*id)
                .map(|r| r.remaining_quantity)
                .unwrap_or_default();
            if o.placed != o.filled + o.cancelled + open {
                return fail(format!(
                    "order {id}: placed {} != filled {} + cancelled {} + open {open}",
                    o.placed, o.filled, o.cancelled
                ));
            }
        }
        Ok(())
    }

    fn check_conserved(&self, id: OrderId) -> Result<(), BookViolation> {
        let o = &self.orders[&id];
        if !o.quote_sized && o.placed != o.filled + o.cancelled {
            return fail(format!(
                "order {id}: placed {} != filled {} + cancelled {}",
                o.placed, o.filled, o.cancelled
            ));
        }
        Ok(())
    }

    /// A maker may trade only if every order ahead of it (better price, or
    /// same price and earlier in the queue) was already taken in full by this
    /// command, cancelled by self-trade prevention, or is the taker's own.
    fn check_priority(
        &self,
        before: &Book,
        t: &crate::event::TradeExecuted,
        taken: &mut HashMap<OrderId, Decimal>,
    ) -> Result<(), BookViolation> {
        let maker_side = t.taker_side.opposite();
        for level in before.ladder.side(maker_side).iter_best_first() {
            for (_, n) in before.ladder.queue(level) {
                if n.id == t.maker_order_id {
                    *taken.entry(n.id).or_default() += t.quantity;
                    return Ok(());
                }
                let open = before.market.quantity(n.remaining);
                let fully_taken = taken.get(&n.id).is_some_and(|q| *q == open);
                if !fully_taken && n.account != t.taker_account {
                    return fail(format!(
                        "trade {} took maker {} ahead of order {}",
                        t.trade_id, t.maker_order_id, n.id
                    ));
                }
            }
        }
        // The maker was not resting before the command: impossible.
        fail(format!(
            "trade {}: maker {} was not resting",
            t.trade_id, t.maker_order_id
        ))
    }
}

fn touched_orders(event: &Event) -> impl Iterator<Item = OrderId> {
    let (a, b) = match event {
        Event::OrderAccepted(e) => (e.order_id, None),
        Event::OrderRejected(e) => (e.order_id, None),
        Event::TradeExecuted(e) => (e.maker_order_id, Some(e.taker_order_id)),
        Event::OrderCancelled(e) => (e.order_id, None),
        Event::OrderAmended(e) => (e.order_id, None),
        Event::OrderFilled(e) => (e.order_id, None),
    };
    std::iter::once(a).chain(b)
}
