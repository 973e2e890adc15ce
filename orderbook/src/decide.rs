//! Deciding: a command and the current state give a list of events. Nothing
//! here mutates the book; matching (`matching.rs`) walks the resting orders
//! in priority order and describes what would happen, and [`Book::apply`]
//! makes it so.

use std::collections::HashSet;

use crate::book::Book;
use crate::command::{AmendOrder, CancelOrder, Command, PlaceOrder};
use crate::event::{
    Event, OrderAccepted, OrderAmended, OrderCancelled, OrderRejected, StopAmended, StopTriggered,
};
use crate::ladder::Node;
use crate::matching::{Stop, Taker, Want, held_taker};
use crate::order::{AccountId, OrderId, OrderType, TimeInForce, Timestamp, TradeId, Trigger};
use crate::reason::{CancelReason, RejectReason};
use crate::stops::HeldStop;

impl Book {
    /// Turns a command into the events that describe its outcome, appending
    /// them to `out`. A refused command yields one `OrderRejected`.
    ///
    /// When the command's trades fire held stop or take-profit orders, the
    /// same decision enters them, one after the other in the order they
    /// fired (see the crate docs), each against the book as the events
    /// before it left it; their trades may fire more, which enter after.
    pub fn decide_into(&self, command: &Command, out: &mut Vec<Event>) {
        let start = out.len();
        let rejected = match command {
            Command::Place(c) => self.place(c, out),
            Command::Cancel(c) => self.cancel(c, out),
            Command::Amend(c) => self.amend(c, out),
        };
        if let Err((order_id, account, at, reason)) = rejected {
            out.push(Event::OrderRejected(OrderRejected {
                symbol: self.market.symbol,
                order_id,
                account,
                reason,
                at,
            }));
        }
        if self.stops.is_empty() {
            return;
        }
        let mut fired = Fired::default();
        self.fire_held(&out[start..], &mut fired);
        if fired.queue.is_empty() {
            return;
        }
        // Entering a fired order needs the book after the events so far:
        // a copy, taken only when something fires.
        let mut book = self.clone();
        for e in &out[start..] {
            book.apply(e);
        }
        let at = command.at();
        let mut next = 0;
        while let Some(&(id, trade_id, price)) = fired.queue.get(next) {
            next += 1;
            let from = out.len();
            book.enter_held(id, trade_id, price, at, out);
            for e in &out[from..] {
                book.apply(e);
            }
            book.fire_held(&out[from..], &mut fired);
        }
    }

    /// Adds to `fired` the held orders the trades among `events` fire, in
    /// trade order; for one trade, in the order the price passed their
    /// triggers: rising triggers from the lowest up, falling ones from the
    /// highest down, and at one trigger price the oldest (lowest id) first.
    /// An order fires once, at the first trade that reaches its trigger.
    fn fire_held(&self, events: &[Event], fired: &mut Fired) {
        for e in events {
            let Event::TradeExecuted(t) = e else { continue };
            let price = self.market.event_ticks(t.price);
            for id in self.stops.fired_at(price) {
                if fired.seen.insert(id) {
                    fired.queue.push((id, t.trade_id, price));
                }
            }
        }
    }

    /// Enters a held order whose trigger fired: `StopTriggered`, then what
    /// the order does as if just placed (trades, then filled, cancelled or
    /// resting).
    fn enter_held(
        &self,
        id: OrderId,
        trade_id: TradeId,
        price: u64,
        at: Timestamp,
        out: &mut Vec<Event>,
    ) {
        let Some(held) = self.stops.get(id) else {
            return;
        };
        let (m, n) = (&self.market, &held.node);
        out.push(Event::StopTriggered(StopTriggered {
            symbol: m.symbol,
            order_id: n.id,
            account: n.account,
            side: n.side,
            trigger: Trigger {
                kind: held.kind,
                price: m.price(held.trigger),
            },
            trade_id,
            last_price: m.price(price),
            at,
        }));
        let (taker, want) = held_taker(held, at);
        self.enter(&taker, n.order_type, held.time_in_force, want, out);
    }

    /// Turns a command into events.
    pub fn decide(&self, command: &Command) -> Vec<Event> {
        let mut out = Vec::new();
        self.decide_into(command, &mut out);
        out
    }

    /// Decides and applies at once, returning the events.
    pub fn execute(&mut self, command: &Command) -> Vec<Event> {
        let mut events = Vec::new();
        self.execute_into(command, &mut events);
        events
    }

    /// Decides and applies at once, appending the events to `out` (a buffer
    /// the caller reuses, so a hot loop does not allocate a list per command).
    pub fn execute_into(&mut self, command: &Command, out: &mut Vec<Event>) {
        let start = out.len();
        self.decide_into(command, out);
        for e in &out[start..] {
            self.apply(e);
        }
    }

    fn place(&self, c: &PlaceOrder, out: &mut Vec<Event>) -> Result<(), Rejection> {
        let reject = |reason| (c.order_id, c.account, c.at, reason);
        let m = &self.market;
        if c.symbol != m.symbol {
            return Err(reject(RejectReason::WrongMarket));
        }
        if c.order_id <= self.last_order_id {
            return Err(reject(RejectReason::DuplicateOrderId));
        }
        if let Some(id) = &c.client_order_id
            && self.client_ids.order(c.account, id).is_some()
        {
            return Err(reject(RejectReason::DuplicateClientOrderId));
        }
        let limit = match (c.order_type, c.price) {
            (OrderType::Limit, Some(p)) => Some(m.ticks(p).map_err(reject)?),
            (OrderType::Limit, None) => return Err(reject(RejectReason::MissingPrice)),
            (OrderType::Market, Some(_)) => return Err(reject(RejectReason::PriceOnMarketOrder)),
            (OrderType::Market, None) => None,
        };
        let want = match (c.quantity, c.quote_amount) {
            (Some(q), None) => Want::Lots(m.lots(q).map_err(reject)?),
            (None, Some(a)) if c.order_type == OrderType::Market => {
                Want::Quote(m.notional_units(a).map_err(reject)?)
            }
            (None, Some(_)) => return Err(reject(RejectReason::QuoteAmountNeedsMarketOrder)),
            _ => return Err(reject(RejectReason::QuantityOrQuoteAmount)),
        };
        if let (Some(ticks), Want::Lots(lots)) = (limit, &want) {
            m.check_value(ticks, *lots).map_err(reject)?;
        }
        let tif = c.time_in_force.unwrap_or(match c.order_type {
            OrderType::Limit => TimeInForce::GoodTillCancelled,
            OrderType::Market => TimeInForce::ImmediateOrCancel,
        });
        if c.order_type == OrderType::Market && tif == TimeInForce::GoodTillCancelled {
            return Err(reject(RejectReason::MarketOrderCannotRest));
        }
        if matches!(want, Want::Quote(_)) && tif == TimeInForce::FillOrKill {
            return Err(reject(RejectReason::FillOrKillNeedsQuantity));
        }
        let trigger = match c.trigger {
            None => None,
            Some(_) if c.post_only => return Err(reject(RejectReason::PostOnlyWithTrigger)),
            Some(t) => {
                let ticks = m.ticks(t.price).map_err(reject)?;
                let last = self.last_price.ok_or(reject(RejectReason::NoLastPrice))?;
                if t.kind.fires(c.side, ticks, last) {
                    return Err(reject(RejectReason::TriggerAlreadyReached));
                }
                Some(Trigger {
                    kind: t.kind,
                    price: m.price(ticks),
                })
            }
        };
        if trigger.is_none()
            && c.order_type == OrderType::Market
            && self.ladder.side(c.side.opposite()).best().is_none()
        {
            return Err(reject(RejectReason::NoLiquidity));
        }
        if c.post_only {
            if c.order_type != OrderType::Limit || tif != TimeInForce::GoodTillCancelled {
                return Err(reject(RejectReason::PostOnlyNeedsGtcLimit));
            }
            if limit.is_some_and(|p| self.crosses(c.side, p)) {
                return Err(reject(RejectReason::PostOnlyWouldTake));
            }
        }

        out.push(Event::OrderAccepted(OrderAccepted {
            symbol: m.symbol,
            order_id: c.order_id,
            account: c.account,
            side: c.side,
            order_type: c.order_type,
            price: c.price.map(|_| m.price(limit.unwrap_or(0))),
            quantity: match want {
                Want::Lots(l) => Some(m.quantity(l)),
                Want::Quote(_) => None,
            },
            quote_amount: match want {
                Want::Quote(u) => Some(m.quote_amount(u)),
                Want::Lots(_) => None,
            },
            time_in_force: tif,
            post_only: c.post_only,
            self_trade_prevention: c.self_trade_prevention,
            trigger: trigger.map(Box::new),
            client_order_id: c.client_order_id.clone(),
            at: c.at,
        }));
        if trigger.is_some() {
            // Held off the book until a trade reaches the trigger.
            return Ok(());
        }
        let taker = Taker {
            id: c.order_id,
            account: c.account,
            side: c.side,
            limit,
            stp: c.self_trade_prevention,
            at: c.at,
        };
        self.enter(&taker, c.order_type, tif, want, out);
        Ok(())
    }

    /// What an accepted order does on entering the book: trade what it can,
    /// then fill, be cancelled (with what is left and why), or rest.
    fn enter(
        &self,
        taker: &Taker,
        order_type: OrderType,
        tif: TimeInForce,
        want: Want,
        out: &mut Vec<Event>,
    ) {
        let limit = taker.limit;
        if tif == TimeInForce::FillOrKill {
            let (stop, _) = self.cross(taker, want, None);
            if stop != Stop::Filled {
                out.push(self.cancelled(taker, limit, want, CancelReason::FillOrKillUnfilled));
                return;
            }
        }
        let (stop, left) = self.cross(taker, want, Some(out));
        let remainder = match (stop, order_type, tif) {
            (Stop::Filled, ..) => None,
            (Stop::SelfTrade, ..) => Some(CancelReason::SelfTradePrevention),
            (Stop::Exhausted, OrderType::Market, _) => Some(CancelReason::MarketOrderRemainder),
            (Stop::Exhausted, _, TimeInForce::GoodTillCancelled) => return,
            (Stop::Exhausted, _, _) => Some(CancelReason::ImmediateOrCancelRemainder),
        };
        out.push(match remainder {
            None => self.filled(taker),
            Some(reason) => self.cancelled(taker, limit, left, reason),
        });
    }

    fn cancel(&self, c: &CancelOrder, out: &mut Vec<Event>) -> Result<(), Rejection> {
        let n = match self.owned(c.order_id, c.account, &c.symbol, c.at)? {
            Owned::Resting(n) => n,
            Owned::Held(h) => {
                out.push(self.held_cancelled(h, c.at));
                return Ok(());
            }
        };
        out.push(Event::OrderCancelled(OrderCancelled {
            symbol: self.market.symbol,
            order_id: n.id,
            account: n.account,
            side: n.side,
            price: Some(self.market.price(n.price)),
            remaining_quantity: Some(self.market.quantity(n.remaining)),
            remaining_quote_amount: None,
            reason: CancelReason::User,
            at: c.at,
        }));
        Ok(())
    }

    fn amend(&self, c: &AmendOrder, out: &mut Vec<Event>) -> Result<(), Rejection> {
        let reject = |reason| (c.order_id, c.account, c.at, reason);
        let n = match self.owned(c.order_id, c.account, &c.symbol, c.at)? {
            Owned::Resting(_) if c.trigger_price.is_some() => {
                return Err(reject(RejectReason::NotATriggerOrder));
            }
            Owned::Resting(n) => n,
            Owned::Held(h) => return self.amend_held(h, c, out),
        };
        let m = &self.market;
        let price = match c.price {
            Some(p) => m.ticks(p).map_err(reject)?,
            None => n.price,
        };
        let lots = match c.quantity {
            Some(q) => m.lots(q).map_err(reject)?,
            None => n.remaining,
        };
        if price == n.price && lots == n.remaining {
            return Err(reject(RejectReason::AmendmentChangesNothing));
        }
        m.check_value(price, lots).map_err(reject)?;
        let crosses = price != n.price && self.crosses(n.side, price);
        if n.post_only && crosses {
            return Err(reject(RejectReason::PostOnlyWouldTake));
        }
        out.push(Event::OrderAmended(OrderAmended {
            symbol: m.symbol,
            order_id: n.id,
            account: n.account,
            side: n.side,
            old_price: m.price(n.price),
            old_quantity: m.quantity(n.remaining),
            price: m.price(price),
            quantity: m.quantity(lots),
            priority_kept: price == n.price && lots < n.remaining,
            at: c.at,
        }));
        if crosses {
            let taker = Taker {
                id: n.id,
                account: n.account,
                side: n.side,
                limit: Some(price),
                stp: n.stp,
                at: c.at,
            };
            let (stop, left) = self.cross(&taker, Want::Lots(lots), Some(out));
            match stop {
                Stop::Filled => out.push(self.filled(&taker)),
                Stop::SelfTrade => out.push(self.cancelled(
                    &taker,
                    Some(price),
                    left,
                    CancelReason::SelfTradePrevention,
                )),
                Stop::Exhausted => {}
            }
        }
        Ok(())
    }

    /// Changes a held order's trigger price, limit price (a stop-limit's)
    /// or quantity (one sized by quantity). The new trigger must not be
    /// reached already, as at placement.
    fn amend_held(
        &self,
        h: &HeldStop,
        c: &AmendOrder,
        out: &mut Vec<Event>,
    ) -> Result<(), Rejection> {
        let reject = |reason| (c.order_id, c.account, c.at, reason);
        let (m, n) = (&self.market, &h.node);
        let limit = n.order_type == OrderType::Limit;
        let trigger = match c.trigger_price {
            Some(p) => m.ticks(p).map_err(reject)?,
            None => h.trigger,
        };
        let price = match c.price {
            Some(_) if !limit => return Err(reject(RejectReason::PriceOnMarketOrder)),
            Some(p) => m.ticks(p).map_err(reject)?,
            None => n.price,
        };
        let lots = match c.quantity {
            Some(_) if n.quote_sized => return Err(reject(RejectReason::QuantityOrQuoteAmount)),
            Some(q) => m.lots(q).map_err(reject)?,
            None => n.remaining,
        };
        if trigger == h.trigger && price == n.price && lots == n.remaining {
            return Err(reject(RejectReason::AmendmentChangesNothing));
        }
        if limit && !n.quote_sized {
            m.check_value(price, lots).map_err(reject)?;
        }
        if self
            .last_price
            .is_some_and(|last| h.kind.fires(n.side, trigger, last))
        {
            return Err(reject(RejectReason::TriggerAlreadyReached));
        }
        let sized = !n.quote_sized;
        out.push(Event::StopAmended(Box::new(StopAmended {
            symbol: m.symbol,
            order_id: n.id,
            account: n.account,
            side: n.side,
            old_trigger_price: m.price(h.trigger),
            trigger_price: m.price(trigger),
            old_price: limit.then(|| m.price(n.price)),
            price: limit.then(|| m.price(price)),
            old_quantity: sized.then(|| m.quantity(n.remaining)),
            quantity: sized.then(|| m.quantity(lots)),
            at: c.at,
        })));
        Ok(())
    }

    /// The open order `id` (resting, or held for its trigger), if `account`
    /// owns it.
    fn owned(
        &self,
        id: OrderId,
        account: AccountId,
        symbol: &crate::market::Symbol,
        at: Timestamp,
    ) -> Result<Owned<'_>, Rejection> {
        if *symbol != self.market.symbol {
            return Err((id, account, at, RejectReason::WrongMarket));
        }
        // The held orders are looked in only when no order rests by that id.
        let (owner, owned) = match self.ladder.get(id) {
            Some((_, n)) if n.queued() => (n.account, Owned::Resting(n)),
            _ => match self.stops.get(id) {
                Some(h) => (h.node.account, Owned::Held(h)),
                None => return Err((id, account, at, RejectReason::UnknownOrder)),
            },
        };
        if owner != account {
            return Err((id, account, at, RejectReason::NotOrderOwner));
        }
        Ok(owned)
    }

    /// A held order cancelled by its owner: it releases what it would have
    /// entered with.
    fn held_cancelled(&self, h: &HeldStop, at: Timestamp) -> Event {
        let (taker, want) = held_taker(h, at);
        self.cancelled(&taker, taker.limit, want, CancelReason::User)
    }
}

type Rejection = (OrderId, AccountId, Timestamp, RejectReason);

/// An order a cancel or amendment names.
enum Owned<'a> {
    Resting(&'a Node),
    Held(&'a HeldStop),
}

/// Held orders fired during one decision, in the order they enter: each
/// with the trade that fired it and that trade's price in ticks.
#[derive(Default)]
struct Fired {
    queue: Vec<(OrderId, TradeId, u64)>,
    seen: HashSet<OrderId>,
}
