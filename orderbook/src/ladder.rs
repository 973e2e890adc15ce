//! The resting orders of a book, kept for price-time priority.
//!
//! Orders live in a slab (a `Vec` with a free list) and each price level is a
//! doubly linked FIFO queue threaded through it, so joining the back of a
//! level, leaving from anywhere and walking in priority order are all cheap.
//! Each side keeps its levels in a sorted `Vec` with the best price at the
//! end: almost all activity is near the touch, where inserting and removing
//! moves little memory.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use crate::order::{AccountId, OrderId, OrderType, SelfTradePrevention, Side, Timestamp};

pub(crate) const NIL: u32 = u32::MAX;

/// One order in the slab.
#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub id: OrderId,
    pub account: AccountId,
    pub side: Side,
    pub order_type: OrderType,
    /// Limit price in ticks (0 for market orders).
    pub price: u64,
    /// Open quantity in lots (for quote-sized orders: unused, 0).
    pub remaining: u64,
    /// Unspent quote amount in notional units, for quote-sized orders.
    pub quote_remaining: u128,
    pub quote_sized: bool,
    pub filled: u64,
    pub post_only: bool,
    pub stp: SelfTradePrevention,
    pub accepted_at: Timestamp,
    /// Whether the node is queued in a price level.
    pub queued: bool,
    pub prev: u32,
    pub next: u32,
}

/// One price level: its queue and its total open quantity.
#[derive(Clone, Debug)]
pub(crate) struct Level {
    pub price: u64,
    pub total: u64,
    pub count: u32,
    pub head: u32,
    pub tail: u32,
}

/// One side's levels, best price last.
#[derive(Clone, Debug)]
pub(crate) struct BookSide {
    pub side: Side,
    pub levels: Vec<Level>,
}

impl BookSide {
    pub fn new(side: Side) -> Self {
        BookSide {
            side,
            levels: Vec::new(),
        }
    }

    /// A sort key that is larger for better prices on this side.
    #[inline]
    fn key(&self, price: u64) -> u64 {
        match self.side {
            Side::Buy => price,
            Side::Sell => u64::MAX - price,
        }
    }

    #[inline]
    pub fn find(&self, price: u64) -> Result<usize, usize> {
        let key = self.key(price);
        // Search from the best end: most lookups are near it.
        let n = self.levels.len();
        if let Some(best) = self.levels.last() {
            let best_key = self.key(best.price);
            if key == best_key {
                return Ok(n - 1);
            }
            if key > best_key {
                return Err(n);
            }
        }
        self.levels
            .binary_search_by_key(&key, |l| self.key(l.price))
    }

    pub fn best(&self) -> Option<&Level> {
        self.levels.last()
    }

    /// Levels from best to worst.
    pub fn iter_best_first(&self) -> impl Iterator<Item = &Level> {
        self.levels.iter().rev()
    }
}

/// Fast hashing for exchange-assigned sequential ids (not user-chosen keys).
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        // Fibonacci hashing spreads sequential ids over the table.
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type IdMap = HashMap<OrderId, u32, BuildHasherDefault<IdHasher>>;

/// Every order the book holds: resting ones, and for the span of one
/// command's events, the incoming one.
#[derive(Clone, Debug)]
pub(crate) struct Ladder {
    pub bids: BookSide,
    pub asks: BookSide,
    pub nodes: Vec<Node>,
    free: Vec<u32>,
    pub index: IdMap,
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder {
            bids: BookSide::new(Side::Buy),
            asks: BookSide::new(Side::Sell),
            nodes: Vec::new(),
            free: Vec::new(),
            index: IdMap::default(),
        }
    }
}

impl Ladder {
    pub fn side(&self, side: Side) -> &BookSide {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut BookSide {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    #[inline]
    pub fn get(&self, id: OrderId) -> Option<(u32, &Node)> {
        let slot = *self.index.get(&id)?;
        Some((slot, &self.nodes[slot as usize]))
    }

    /// Adds an order; limit orders join the back of their level.
    pub fn insert(&mut self, node: Node) -> u32 {
        let limit = node.order_type == OrderType::Limit;
        let id = node.id;
        let slot = match self.free.pop() {
            Some(s) => {
                self.nodes[s as usize] = node;
                s
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as u32
            }
        };
        self.index.insert(id, slot);
        if limit {
            self.enqueue(slot);
        }
        slot
    }

    /// Puts a node at the back of the level for its price.
    pub fn enqueue(&mut self, slot: u32) {
        let (side, price, qty) = {
            let n = &self.nodes[slot as usize];
            (n.side, n.price, n.remaining)
        };
        let s = self.side_mut(side);
        let at = match s.find(price) {
            Ok(i) => i,
            Err(i) => {
                s.levels.insert(
                    i,
                    Level {
                        price,
                        total: 0,
                        count: 0,
                        head: NIL,
                        tail: NIL,
                    },
                );
                i
            }
        };
        let level = &mut s.levels[at];
        let old_tail = level.tail;
        level.tail = slot;
        if old_tail == NIL {
            level.head = slot;
        }
        level.total += qty;
        level.count += 1;
        if old_tail != NIL {
            self.nodes[old_tail as usize].next = slot;
        }
        let n = &mut self.nodes[slot as usize];
        n.prev = old_tail;
        n.next = NIL;
        n.queued = true;
    }

    /// Takes a node out of its level, dropping the level when it empties.
    pub fn dequeue(&mut self, slot: u32) {
        let (side, price, qty, prev, next) = {
            let n = &self.nodes[slot as usize];
            if !n.queued {
                return;
            }
            (n.side, n.price, n.remaining, n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        let s = self.side_mut(side);
        if let Ok(i) = s.find(price) {
            let level = &mut s.levels[i];
            if level.head == slot {
                level.head = next;
            }
            if level.tail == slot {
                level.tail = prev;
            }
            level.total -= qty;
            level.count -= 1;
            if level.count == 0 {
                s.levels.remove(i);
            }
        }
        let n = &mut self.nodes[slot as usize];
        n.queued = false;
        n.prev = NIL;
        n.next = NIL;
    }

    /// Removes an order from the book entirely.
    pub fn remove(&mut self, id: OrderId) -> Option<Node> {
        let slot = self.index.remove(&id)?;
        self.dequeue(slot);
        self.free.push(slot);
        Some(self.nodes[slot as usize].clone())
    }

    /// Reduces a node's open quantity by `lots` (a fill), keeping its level
    /// total in step.
    pub fn reduce(&mut self, slot: u32, lots: u64) {
        let n = &mut self.nodes[slot as usize];
        n.remaining -= lots;
        n.filled += lots;
        let (queued, side, price) = (n.queued, n.side, n.price);
        if queued {
            let s = self.side_mut(side);
            if let Ok(i) = s.find(price) {
                s.levels[i].total -= lots;
            }
        }
    }

    /// Sets a queued node's open quantity in place (priority kept).
    pub fn resize_in_place(&mut self, slot: u32, lots: u64) {
        let n = &mut self.nodes[slot as usize];
        let old = n.remaining;
        n.remaining = lots;
        let (side, price) = (n.side, n.price);
        let s = self.side_mut(side);
        if let Ok(i) = s.find(price) {
            s.levels[i].total = s.levels[i].total - old + lots;
        }
    }

    /// Walks one level's queue from its head.
    pub fn queue(&self, level: &Level) -> QueueIter<'_> {
        QueueIter {
            ladder: self,
            at: level.head,
        }
    }
}

pub(crate) struct QueueIter<'a> {
    ladder: &'a Ladder,
    at: u32,
}

impl<'a> Iterator for QueueIter<'a> {
    type Item = (u32, &'a Node);
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.at == NIL {
            return None;
        }
        let slot = self.at;
        let node = &self.ladder.nodes[slot as usize];
        self.at = node.next;
        Some((slot, node))
    }
}
