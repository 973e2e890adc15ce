//! The rules a book must keep, checked from outside its matching code.
//!
//! [`check_book`] looks at one state; [`OrderAudit`] follows a run's events and
//! checks what holds across them: quantity is conserved, trades respect the
//! taker's limit and the makers' price-time priority, and held stop and
//! take-profit orders neither trade nor fire before a trade reaches their
//! trigger, and fire once.

use std::collections::{HashMap, HashSet};

use rust_decimal::Decimal;

use crate::book::Book;
use crate::command::Command;
use crate::event::Event;
use crate::ladder::{Level, NIL};
use crate::order::{OrderId, OrderType, Side, TriggerKind};

/// A broken rule, in words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invariant broken: {0}")]
pub struct BookViolation(pub String);

fn fail<T>(msg: String) -> Result<T, BookViolation> {
    Err(BookViolation(msg))
}

/// Checks a book between commands: not crossed, no incoming order held out
/// as crossing, levels sorted (the empty ones kept for reuse truly empty,
/// and never the best) and named rightly by the window of prices, totals
/// and counts equal to their queues, no order with nothing open, and no
/// order outside a level.
pub fn check_book(book: &Book) -> Result<(), BookViolation> {
    if let (Some(bid), Some(ask)) = (book.ladder.bids.best(), book.ladder.asks.best())
        && bid.price >= ask.price
    {
        return fail(format!(
            "book crossed: bid {} >= ask {}",
            bid.price, ask.price
        ));
    }
    if book.ladder.crossing != NIL {
        return fail(format!(
            "order {} still held out as crossing between commands",
            book.ladder.nodes[book.ladder.crossing as usize].id
        ));
    }
    let mut queued = 0usize;
    for side in [Side::Buy, Side::Sell] {
        let s = book.ladder.side(side);
        let levels: Vec<(u32, &Level)> = s
            .sorted
            .iter()
            .map(|&(_, slot)| (slot, &s.levels[slot as usize]))
            .collect();
        for pair in levels.windows(2) {
            let in_order = match side {
                Side::Buy => pair[0].1.price < pair[1].1.price,
                Side::Sell => pair[0].1.price > pair[1].1.price,
            };
            if !in_order {
                return fail(format!(
                    "{side:?} levels out of order at {}",
                    pair[1].1.price
                ));
            }
        }
        if levels.last().is_some_and(|(_, l)| l.count == 0) {
            return fail(format!("{side:?} best level is empty"));
        }
        // The window of prices names exactly the levels in `sorted` at its
        // prices.
        let mut in_window = 0;
        for &(slot, level) in &levels {
            if let Some(offset) = level.price.checked_sub(s.window_base)
                && let Some(&named) = s.window.get(offset as usize)
            {
                if named != slot {
                    return fail(format!(
                        "{side:?} window names slot {named} at {}, not {slot}",
                        level.price
                    ));
                }
                in_window += 1;
            }
        }
        if s.window.iter().filter(|&&w| w != NIL).count() != in_window {
            return fail(format!("{side:?} window names a level that is gone"));
        }
        let empty = levels.iter().filter(|(_, l)| l.count == 0).count();
        if empty != s.empty {
            return fail(format!(
                "{side:?} has {empty} empty levels but counts {}",
                s.empty
            ));
        }
        for &(at, level) in &levels {
            if level.count == 0 {
                if level.total != 0 || level.head != NIL || level.tail != NIL {
                    return fail(format!("empty level {} holds something", level.price));
                }
                continue;
            }
            let (mut total, mut count, mut prev) = (0u64, 0u32, NIL);
            for (slot, n) in book.ladder.queue(level) {
                if n.prev != prev || n.price != level.price || n.side != side || n.level != at {
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
    check_held(book)?;
    check_client_ids(book)
}

/// Every client id names an open order of its own account, resting or
/// held: a closed order's id is free again.
fn check_client_ids(book: &Book) -> Result<(), BookViolation> {
    let mut open = 0;
    for (id, account) in book
        .ladder
        .index
        .keys()
        .map(|&id| {
            let (_, n) = book.ladder.get(id).expect("indexed order");
            (id, n.account)
        })
        .chain(book.stops.iter().map(|h| (h.node.id, h.node.account)))
    {
        if let Some(client_id) = book.client_ids.of_order(id) {
            if book.client_ids.order(account, client_id) != Some(id) {
                return fail(format!(
                    "order {id}'s client id {client_id} names another order"
                ));
            }
            open += 1;
        }
    }
    if open != book.client_ids.len() {
        return fail(format!(
            "{} client ids kept but {open} open orders have one",
            book.client_ids.len()
        ));
    }
    Ok(())
}

/// Held orders are off the book, and none is left waiting with its trigger
/// already reached by the last price (it would have fired at that trade).
fn check_held(book: &Book) -> Result<(), BookViolation> {
    for h in book.stops.iter() {
        let id = h.node.id;
        if book.ladder.get(id).is_some() {
            return fail(format!("held order {id} is also on the book"));
        }
        if let Some(last) = book.last_price
            && reaches(h.kind, h.node.side, h.trigger, last)
        {
            return fail(format!(
                "held order {id} ({:?} {:?} at {}) did not fire at last price {last}",
                h.kind, h.node.side, h.trigger
            ));
        }
        if h.node.remaining == 0 && !h.node.quote_sized {
            return fail(format!("held order {id} holds nothing"));
        }
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
    /// Stop and take-profit orders accepted and not yet fired or cancelled.
    held: HashSet<OrderId>,
    /// Every order that has fired.
    fired: HashSet<OrderId>,
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
            held: HashSet::new(),
            fired: HashSet::new(),
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
        // A fired order trades against the book as the command's earlier
        // events left it: priority is judged against that book.
        let mut during: Option<(Book, usize)> = None;
        let mut trades: HashMap<u64, &crate::event::TradeExecuted> = HashMap::new();
        self.touched.clear();
        for (i, event) in events.iter().enumerate() {
            self.touched.extend(touched_orders(event));
            match event {
                Event::StopTriggered(e) => {
                    book_at(before, &mut during, events, i);
                    taken.clear();
                    if !self.held.remove(&e.order_id) || !self.fired.insert(e.order_id) {
                        return fail(format!(
                            "order {} fired but was not held (or fired twice)",
                            e.order_id
                        ));
                    }
                    let Some(t) = trades.get(&e.trade_id) else {
                        return fail(format!(
                            "order {} fired by trade {}, not one of this command's",
                            e.order_id, e.trade_id
                        ));
                    };
                    if t.maker_order_id == e.order_id || t.taker_order_id == e.order_id {
                        return fail(format!("order {} fired on its own trade", e.order_id));
                    }
                    let m = &before.market;
                    let (trigger, last) = (m.event_ticks(e.trigger.price), m.event_ticks(t.price));
                    if t.price != e.last_price || !reaches(e.trigger.kind, e.side, trigger, last) {
                        return fail(format!(
                            "order {} fired by a trade at {} that does not reach {:?} {:?} at {}",
                            e.order_id, t.price, e.trigger.kind, e.side, e.trigger.price
                        ));
                    }
                }
                Event::StopAmended(e) => {
                    if !self.held.contains(&e.order_id) {
                        return fail(format!("order {} amended as held but is not", e.order_id));
                    }
                    let o = self.orders.entry(e.order_id).or_default();
                    if let (Some(old), Some(new)) = (e.old_quantity, e.quantity) {
                        o.placed = o.placed - old + new;
                    }
                    o.limit = e.price;
                }
                Event::OrderAccepted(e) => {
                    if e.trigger.is_some() {
                        self.held.insert(e.order_id);
                    }
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
                    trades.insert(t.trade_id, t);
                    if t.quantity <= Decimal::ZERO || t.maker_account == t.taker_account {
                        return fail(format!("trade {} is empty or a self-trade", t.trade_id));
                    }
                    for id in [t.maker_order_id, t.taker_order_id] {
                        if self.held.contains(&id) {
                            return fail(format!(
                                "trade {} by order {id}, held for its trigger",
                                t.trade_id
                            ));
                        }
                    }
                    let book = if during.is_some() {
                        book_at(before, &mut during, events, i)
                    } else {
                        before
                    };
                    self.check_priority(book, t, &mut taken)?;
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
                    self.held.remove(&e.order_id);
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
                Event::OrderAmended(_)
                | Event::OrderRejected(_)
                | Event::StreamFenced(_)
                | Event::OrderRefused(_) => {}
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
            // Open: resting on the book, or held for its trigger.
            let open = match book.order(*id) {
                Some(r) => r.remaining_quantity,
                None => book
                    .stop_order(*id)
                    .and_then(|s| s.quantity)
                    .unwrap_or_default(),
            };
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

/// Whether a trade at `price` reaches a trigger at `trigger` (both in
/// ticks), written out here from the rule rather than taken from the
/// engine, so a wrong comparison there is caught: buy stops and sell
/// take-profits at or above, sell stops and buy take-profits at or below.
fn reaches(kind: TriggerKind, side: Side, trigger: u64, price: u64) -> bool {
    match (kind, side) {
        (TriggerKind::Stop, Side::Buy) => price >= trigger,
        (TriggerKind::Stop, Side::Sell) => price <= trigger,
        (TriggerKind::TakeProfit, Side::Buy) => price <= trigger,
        (TriggerKind::TakeProfit, Side::Sell) => price >= trigger,
    }
}

/// The book as `events[..i]` of one command left it, kept in `during` and
/// brought up to date from where it was.
fn book_at<'a>(
    before: &Book,
    during: &'a mut Option<(Book, usize)>,
    events: &[Event],
    i: usize,
) -> &'a Book {
    let (book, applied) = during.get_or_insert_with(|| (before.clone(), 0));
    for e in &events[*applied..i] {
        book.apply(e);
    }
    *applied = i;
    book
}

fn touched_orders(event: &Event) -> impl Iterator<Item = OrderId> {
    let (a, b) = match event {
        Event::StreamFenced(_) | Event::OrderRefused(_) => return None.into_iter().chain(None),
        Event::OrderAccepted(e) => (e.order_id, None),
        Event::OrderRejected(e) => (e.order_id, None),
        Event::TradeExecuted(e) => (e.maker_order_id, Some(e.taker_order_id)),
        Event::OrderCancelled(e) => (e.order_id, None),
        Event::OrderAmended(e) => (e.order_id, None),
        Event::OrderFilled(e) => (e.order_id, None),
        Event::StopTriggered(e) => (e.order_id, None),
        Event::StopAmended(e) => (e.order_id, None),
    };
    Some(a).into_iter().chain(b)
}
