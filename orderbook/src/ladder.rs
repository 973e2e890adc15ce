//! The resting orders of a book, kept for price-time priority.
//!
//! Orders live in a slab (a `Vec` with a free list) and each price level is a
//! doubly linked FIFO queue threaded through it, so joining the back of a
//! level, leaving from anywhere and walking in priority order are all cheap.
//! Each side keeps its levels in a sorted `Vec` with the best price at the
//! end: almost all activity is near the touch, where inserting and removing
//! moves little memory, and a level that empties elsewhere is kept, empty,
//! for the next order at its price (see [`BookSide`]).

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
    /// The slot of the level the node is queued in (see [`BookSide`]), or
    /// `NIL` when it is not queued.
    pub level: u32,
    pub prev: u32,
    pub next: u32,
}

impl Node {
    /// Whether the node is queued in a price level.
    #[inline]
    pub fn queued(&self) -> bool {
        self.level != NIL
    }
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

/// One side's levels. Each level lives in a slot of `levels` that does not
/// move while it is open, so a queued order names its level's slot and
/// leaving or shrinking never searches. `sorted` orders the slots by price,
/// best last, each beside its sort key so a search reads one array.
///
/// A level that empties away from the best end stays in `sorted`, empty,
/// so an order that later comes to its price (an amendment, a new order
/// near the touch) finds it without moving the entries after it. Empty
/// levels at the best end are dropped at once, so the last entry is always
/// the best open level, and all of them are swept out when they outnumber
/// the open ones, so they never cost more than the open levels do.
///
/// Around the touch, a window indexed by price gives a level's slot without
/// searching (`WINDOW` prices; a price outside it is searched for in
/// `sorted`). It is centred where the side's first level opens, and again
/// whenever a new best level opens outside it.
#[derive(Clone, Debug)]
pub(crate) struct BookSide {
    pub side: Side,
    /// (sort key, level slot), best last.
    pub sorted: Vec<(u64, u32)>,
    pub levels: Vec<Level>,
    free: Vec<u32>,
    /// How many entries of `sorted` are empty levels.
    pub empty: usize,
    /// The slot of the level in `sorted` at each price from `window_base`,
    /// or `NIL`; empty until the side's first level opens (`recentre`).
    pub window: Vec<u32>,
    pub window_base: u64,
}

/// How many empty levels a side keeps before sweeping, however few open
/// ones it has.
const KEPT_EMPTY: usize = 64;

/// How many prices the window spans (8 KiB of slots).
const WINDOW: u64 = 2048;

impl BookSide {
    pub fn new(side: Side) -> Self {
        BookSide {
            side,
            sorted: Vec::new(),
            levels: Vec::new(),
            free: Vec::new(),
            empty: 0,
            window: Vec::new(),
            window_base: 0,
        }
    }

    /// Where `price` sits in the window, if it does.
    #[inline]
    fn window_index(&self, price: u64) -> Option<usize> {
        let offset = price.checked_sub(self.window_base)?;
        (offset < self.window.len() as u64).then_some(offset as usize)
    }

    /// Notes that the level in `slot` is (or, with `NIL`, no longer is) in
    /// `sorted` at `price`.
    #[inline]
    fn note_in_window(&mut self, price: u64, slot: u32) {
        if let Some(i) = self.window_index(price) {
            self.window[i] = slot;
        }
    }

    /// The slot of the level at `price` (open or kept empty), from the
    /// window where it covers `price`, else by search; or where in `sorted`
    /// a level at `price` would go.
    #[inline]
    fn slot_at(&self, price: u64) -> Result<u32, usize> {
        if let Some(i) = self.window_index(price)
            && self.window[i] != NIL
        {
            return Ok(self.window[i]);
        }
        self.find(price).map(|i| self.sorted[i].1)
    }

    /// The slot of the level at `price`, made (or an empty one reused) if
    /// there is none.
    fn open_level(&mut self, price: u64) -> u32 {
        match self.slot_at(price) {
            Ok(slot) => {
                if self.levels[slot as usize].count == 0 {
                    self.empty -= 1;
                }
                slot
            }
            Err(i) => {
                let level = Level {
                    price,
                    total: 0,
                    count: 0,
                    head: NIL,
                    tail: NIL,
                };
                let slot = match self.free.pop() {
                    Some(slot) => {
                        self.levels[slot as usize] = level;
                        slot
                    }
                    None => {
                        self.levels.push(level);
                        (self.levels.len() - 1) as u32
                    }
                };
                self.sorted.insert(i, (self.key(price), slot));
                if i + 1 == self.sorted.len() && self.window_index(price).is_none() {
                    // A new best outside the window (or the side's first
                    // level, before there is a window): the touch is here.
                    self.recentre(price);
                } else {
                    self.note_in_window(price, slot);
                }
                slot
            }
        }
    }

    /// Accounts for the level in `slot` having just emptied.
    fn level_emptied(&mut self, slot: u32) {
        if self.sorted.last().is_some_and(|&(_, s)| s == slot) {
            self.drop_level(slot);
            while let Some(&(_, s)) = self.sorted.last()
                && self.levels[s as usize].count == 0
            {
                self.drop_level(s);
                self.empty -= 1;
            }
            return;
        }
        self.empty += 1;
        if self.empty > KEPT_EMPTY.max(self.sorted.len() - self.empty) {
            let mut gone = Vec::with_capacity(self.empty);
            let levels = &self.levels;
            self.sorted.retain(|&(_, s)| {
                let open = levels[s as usize].count > 0;
                if !open {
                    gone.push(s);
                }
                open
            });
            for s in gone {
                self.note_in_window(self.levels[s as usize].price, NIL);
                self.free.push(s);
            }
            self.empty = 0;
        }
    }

    /// Centres the window on `price` and names in it the levels of
    /// `sorted` that fall there.
    fn recentre(&mut self, price: u64) {
        self.window.clear();
        self.window.resize(WINDOW as usize, NIL);
        self.window_base = price.saturating_sub(WINDOW / 2);
        for i in 0..self.sorted.len() {
            let slot = self.sorted[i].1;
            self.note_in_window(self.levels[slot as usize].price, slot);
        }
    }

    /// Drops the best entry of `sorted`, the level in `slot`.
    fn drop_level(&mut self, slot: u32) {
        self.sorted.pop();
        self.note_in_window(self.levels[slot as usize].price, NIL);
        self.free.push(slot);
    }

    /// A sort key that is larger for better prices on this side.
    #[inline]
    fn key(&self, price: u64) -> u64 {
        match self.side {
            Side::Buy => price,
            Side::Sell => u64::MAX - price,
        }
    }

    /// Where `price` is (or would go) in `sorted`.
    #[inline]
    fn find(&self, price: u64) -> Result<usize, usize> {
        let key = self.key(price);
        // Look at the best end first: most lookups are near it.
        let n = self.sorted.len();
        if let Some(&(best_key, _)) = self.sorted.last() {
            if key == best_key {
                return Ok(n - 1);
            }
            if key > best_key {
                return Err(n);
            }
        }
        self.sorted.binary_search_by_key(&key, |&(k, _)| k)
    }

    /// The level at `price`, open or kept empty.
    pub fn level_at(&self, price: u64) -> Option<&Level> {
        let slot = self.slot_at(price).ok()?;
        Some(&self.levels[slot as usize])
    }

    pub fn best(&self) -> Option<&Level> {
        let &(_, slot) = self.sorted.last()?;
        Some(&self.levels[slot as usize])
    }

    /// Open levels from best to worst.
    pub fn iter_best_first(&self) -> impl Iterator<Item = &Level> {
        self.sorted
            .iter()
            .rev()
            .map(|&(_, slot)| &self.levels[slot as usize])
            .filter(|l| l.count > 0)
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
    /// The incoming limit order while it crosses the other side (its
    /// trades are being folded), or `NIL`. It joins its level only once
    /// nothing crosses it, so a taker that fills never touches its own
    /// side, and the book is never crossed between events.
    pub crossing: u32,
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder {
            bids: BookSide::new(Side::Buy),
            asks: BookSide::new(Side::Sell),
            nodes: Vec::new(),
            free: Vec::new(),
            index: IdMap::default(),
            crossing: NIL,
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
            self.join(slot);
        }
        slot
    }

    /// Whether a price on `side` reaches the other side's best level.
    #[inline]
    pub fn crosses(&self, side: Side, price: u64) -> bool {
        match (side, self.side(side.opposite()).best()) {
            (Side::Buy, Some(ask)) => price >= ask.price,
            (Side::Sell, Some(bid)) => price <= bid.price,
            (_, None) => false,
        }
    }

    /// Queues a limit order at its price, or holds it out as the crossing
    /// order when it reaches the other side (its trades follow).
    pub fn join(&mut self, slot: u32) {
        let n = &self.nodes[slot as usize];
        if self.crosses(n.side, n.price) {
            // This engine rests or closes one entering order before the
            // next enters. Should a log do otherwise, the earlier one rests
            // at once, as every order did before crossing ones were held.
            let earlier = std::mem::replace(&mut self.crossing, slot);
            if earlier != NIL {
                self.enqueue(earlier);
            }
        } else {
            self.enqueue(slot);
        }
    }

    /// Queues the crossing order once nothing on the other side crosses it
    /// and some of it is left; run after every event.
    #[inline]
    pub fn settle_crossing(&mut self) {
        if self.crossing == NIL {
            return;
        }
        let n = &self.nodes[self.crossing as usize];
        if n.remaining > 0 && !self.crosses(n.side, n.price) {
            let slot = std::mem::replace(&mut self.crossing, NIL);
            self.enqueue(slot);
        }
    }

    /// Puts a node at the back of the level for its price.
    pub fn enqueue(&mut self, slot: u32) {
        let (side, price, qty) = {
            let n = &self.nodes[slot as usize];
            (n.side, n.price, n.remaining)
        };
        let s = self.side_mut(side);
        let at = s.open_level(price);
        let level = &mut s.levels[at as usize];
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
        n.level = at;
    }

    /// Takes a node out of its level, dropping the level when it empties.
    pub fn dequeue(&mut self, slot: u32) {
        let (side, at, qty, prev, next) = {
            let n = &self.nodes[slot as usize];
            if !n.queued() {
                return;
            }
            (n.side, n.level, n.remaining, n.prev, n.next)
        };
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        let s = self.side_mut(side);
        let level = &mut s.levels[at as usize];
        if level.head == slot {
            level.head = next;
        }
        if level.tail == slot {
            level.tail = prev;
        }
        level.total -= qty;
        level.count -= 1;
        if level.count == 0 {
            s.level_emptied(at);
        }
        let n = &mut self.nodes[slot as usize];
        n.level = NIL;
        n.prev = NIL;
        n.next = NIL;
    }

    /// Removes an order from the book entirely; whether it was here.
    pub fn remove(&mut self, id: OrderId) -> bool {
        let Some(slot) = self.index.remove(&id) else {
            return false;
        };
        if self.crossing == slot {
            self.crossing = NIL;
        }
        self.dequeue(slot);
        self.free.push(slot);
        true
    }

    /// Reduces a node's open quantity by `lots` (a fill), keeping its level
    /// total in step.
    pub fn reduce(&mut self, slot: u32, lots: u64) {
        let n = &mut self.nodes[slot as usize];
        n.remaining -= lots;
        n.filled += lots;
        let (at, side) = (n.level, n.side);
        if at != NIL {
            self.side_mut(side).levels[at as usize].total -= lots;
        }
    }

    /// Sets a queued node's open quantity in place (priority kept).
    pub fn resize_in_place(&mut self, slot: u32, lots: u64) {
        let n = &mut self.nodes[slot as usize];
        let old = n.remaining;
        n.remaining = lots;
        let (at, side) = (n.level, n.side);
        if at != NIL {
            let level = &mut self.side_mut(side).levels[at as usize];
            level.total = level.total - old + lots;
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
