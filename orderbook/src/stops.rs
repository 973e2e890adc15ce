//! Orders held off the book until their trigger fires: stops and
//! take-profits, indexed by trigger price so a trade finds the orders its
//! price fires without looking at the others.
//!
//! An order waits for the price to rise to its trigger (a buy stop, a sell
//! take-profit) or to fall to it (a sell stop, a buy take-profit). A held
//! order's trigger is never already reached by the last trade price: it is
//! refused at placement (and at amendment) when it is, and it fires at the
//! first trade that reaches it. So the orders one trade fires all lie
//! between the price before that trade and the trade's own.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};

use crate::ladder::Node;
use crate::order::{OrderId, TimeInForce, TriggerKind};

/// One held order: the order as it will enter the book, and its trigger.
#[derive(Clone, Debug)]
pub(crate) struct HeldStop {
    /// What enters the book when the trigger fires (not queued).
    pub node: Node,
    pub kind: TriggerKind,
    /// The trigger price in ticks.
    pub trigger: u64,
    pub time_in_force: TimeInForce,
}

/// Every held order of one book.
#[derive(Clone, Debug, Default)]
pub(crate) struct HeldStops {
    orders: HashMap<OrderId, HeldStop>,
    /// Orders that fire when the price rises to their trigger: lowest
    /// trigger first, then oldest.
    rising: BTreeSet<(u64, OrderId)>,
    /// Orders that fire when the price falls to their trigger: highest
    /// trigger first, then oldest.
    falling: BTreeSet<(Reverse<u64>, OrderId)>,
}

impl HeldStops {
    pub fn is_empty(&self) -> bool {
        self.orders.is_empty()
    }

    pub fn get(&self, id: OrderId) -> Option<&HeldStop> {
        self.orders.get(&id)
    }

    /// Every held order, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &HeldStop> {
        self.orders.values()
    }

    pub fn insert(&mut self, held: HeldStop) {
        let id = held.node.id;
        if let Some(old) = self.orders.remove(&id) {
            self.unindex(&old);
        }
        if held.kind.fires_rising(held.node.side) {
            self.rising.insert((held.trigger, id));
        } else {
            self.falling.insert((Reverse(held.trigger), id));
        }
        self.orders.insert(id, held);
    }

    pub fn remove(&mut self, id: OrderId) -> Option<HeldStop> {
        let held = self.orders.remove(&id)?;
        self.unindex(&held);
        Some(held)
    }

    fn unindex(&mut self, held: &HeldStop) {
        let id = held.node.id;
        self.rising.remove(&(held.trigger, id));
        self.falling.remove(&(Reverse(held.trigger), id));
    }

    /// The orders a trade at `price` ticks fires, in the order the price
    /// passed their triggers: those waiting for a rise from the lowest
    /// trigger up, those waiting for a fall from the highest down, and at
    /// one trigger price the oldest (lowest id) first.
    pub fn fired_at(&self, price: u64) -> impl Iterator<Item = OrderId> + '_ {
        let rising = self.rising.range(..=(price, OrderId::MAX)).map(|k| k.1);
        let falling = self
            .falling
            .range(..=(Reverse(price), OrderId::MAX))
            .map(|k| k.1);
        rising.chain(falling)
    }
}
