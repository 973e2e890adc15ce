//! The order history read model: every order every trader placed, with its
//! terms, what of it filled and how it ended, and every order the exchange
//! refused. It is folded from the market streams (`OrderAccepted`, the
//! trades, `OrderAmended`, `OrderFilled`, `OrderCancelled`) and the account
//! streams (`OrderRefused`) in the store's order, read from the beginning
//! at start and kept current by the live tail (`order_history_task.rs`), so it always is the fold of
//! the log, whichever exchange server wrote it.
//!
//! Each account's orders are kept in the order they entered the log, so a
//! page is a walk backwards from a place in that list, and the place (an
//! index that never moves, as orders are only ever added) is the cursor
//! of the next page: paging stays right while new orders come in.
//!
//! A history of millions of orders is mostly closed ones. Those closed
//! with the terms they were accepted with are kept as a [`ClosedOrder`]:
//! how they ended, and where their `OrderAccepted` is in the market's
//! stream, from which a page reads their terms back. Open orders, refusals
//! and orders whose terms changed (amended, or a stop that fired) are kept
//! whole.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use accounts::AccountEvent;
use orderbook::{
    AccountId, CancelReason, ClientOrderId, Event, OrderAccepted, OrderId, OrderTerms, Symbol,
    Timestamp,
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

/// Which orders a history page shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// One market, or all.
    pub symbol: Option<String>,
    /// One state by [`OrderState::name`] (`open` also takes partially
    /// filled orders: both are on the book), or all.
    pub state: Option<String>,
}

impl OrderFilter {
    fn keeps(&self, symbol: &str, o: &OrderEntry) -> bool {
        let state = o.state_name();
        self.symbol.as_deref().is_none_or(|s| s == symbol)
            && self.state.as_deref().is_none_or(|wanted| {
                wanted == state || (wanted == "open" && state == "partially_filled")
            })
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
    fn refused(
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

    /// One of `account`'s orders as the events of its decision leave it
    /// (those of the command that placed it, say), before the history has
    /// folded them.
    pub fn from_events(
        account: AccountId,
        symbol: &str,
        order_id: OrderId,
        events: &[Event],
    ) -> Option<OrderRecord> {
        let mut history = OrderHistory::default();
        for e in events {
            history.apply_market(e, None);
        }
        history
            .order(account, symbol, order_id)?
            .entry
            .whole()
            .cloned()
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
/// it ended, and where those terms are written (80 bytes, where the whole
/// record takes over 200, and a trader's history is mostly these).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosedOrder {
    /// Its market's place in the history's list of market names (see
    /// [`OrderHistory::symbol_of`]): two bytes, where the name takes 16.
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

/// An order as a read takes it out of the history: its market's name and
/// the order as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub symbol: Arc<str>,
    pub entry: OrderEntry,
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

    /// The record, if kept whole.
    pub fn whole(&self) -> Option<&OrderRecord> {
        match self {
            OrderEntry::Whole { record, .. } => Some(record),
            OrderEntry::Closed(_) => None,
        }
    }

    fn whole_mut(&mut self) -> Option<&mut OrderRecord> {
        match self {
            OrderEntry::Whole { record, .. } => Some(record),
            OrderEntry::Closed(_) => None,
        }
    }

    /// Kept as a [`ClosedOrder`] if it has closed with the terms it was
    /// accepted with; `market` is its market's place in the history's list.
    fn settle(&mut self, market: u16) {
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

/// A page of one account's history, newest first.
#[derive(Debug, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Listed>,
    /// The cursor of the next (older) page, if there are older orders.
    pub next: Option<u64>,
}

/// A page of a list kept oldest first, read newest first: up to `limit` of
/// the `items` that `keep` keeps, from just before the cursor `before` (an
/// index; the end without one), and the cursor of the next, older page if
/// there is more. The page is the items' indexes. Lists that only grow
/// keep their cursors valid.
pub fn newest_first<T>(
    items: &[T],
    before: Option<u64>,
    limit: usize,
    keep: impl Fn(&T) -> bool,
) -> (Vec<usize>, Option<u64>) {
    let end = before.map_or(items.len(), |b| (b as usize).min(items.len()));
    let mut page = Vec::new();
    for (i, item) in items[..end].iter().enumerate().rev() {
        if !keep(item) {
            continue;
        }
        if page.len() == limit {
            return (page, Some(i as u64 + 1));
        }
        page.push(i);
    }
    (page, None)
}

/// Every account's orders. Pure: folded from events, no I/O.
#[derive(Debug, Default)]
pub struct OrderHistory {
    pub(super) accounts: HashMap<AccountId, Vec<OrderEntry>>,
    /// Per account and market, the places of its accepted orders in the
    /// account's list, in order of their ids: a few bytes an order, where
    /// a map entry for each order ever placed took tens.
    pub(super) places: HashMap<(AccountId, Symbol), Vec<usize>>,
    /// The one shared copy of each market's name.
    names: HashMap<String, Arc<str>>,
    /// The markets closed orders are in, by their place here.
    pub(super) markets: Vec<Arc<str>>,
}

impl OrderHistory {
    /// Folds in one market event, at its revision in the market's stream
    /// when known (an order accepted without one is kept whole for good).
    pub fn apply_market(&mut self, event: &Event, revision: Option<u64>) {
        let symbol = *event.symbol();
        match event {
            Event::OrderAccepted(a) => {
                let record = OrderRecord {
                    symbol: self.name(symbol.as_str()),
                    order_id: Some(a.order_id),
                    terms: a.terms(),
                    client_order_id: a.client_order_id.clone(),
                    filled: Decimal::ZERO,
                    filled_quote: Decimal::ZERO,
                    state: OrderState::Open,
                    triggered_at: None,
                    placed_at: a.at,
                    updated_at: a.at,
                };
                self.add(a.account, symbol, record, revision);
            }
            Event::TradeExecuted(t) => {
                let orders = [
                    (t.maker_account, t.maker_order_id),
                    (t.taker_account, t.taker_order_id),
                ];
                for (account, id) in orders {
                    if let Some(o) = self.order_mut(account, symbol, id) {
                        o.filled += t.quantity;
                        o.filled_quote += t.price * t.quantity;
                        o.state = OrderState::PartiallyFilled;
                        o.updated_at = t.executed_at;
                    }
                }
            }
            Event::OrderAmended(a) => {
                if let Some(o) = self.terms_changed(a.account, symbol, a.order_id) {
                    o.terms.price = Some(a.price);
                    o.terms.quantity = Some(o.filled + a.quantity);
                    o.updated_at = a.at;
                }
            }
            Event::StopAmended(a) => {
                if let Some(o) = self.terms_changed(a.account, symbol, a.order_id) {
                    o.terms.price = a.price.or(o.terms.price);
                    o.terms.quantity = a.quantity.or(o.terms.quantity);
                    if let Some(t) = &mut o.terms.trigger {
                        t.price = a.trigger_price;
                    }
                    o.updated_at = a.at;
                }
            }
            Event::StopTriggered(t) => {
                if let Some(o) = self.terms_changed(t.account, symbol, t.order_id) {
                    o.triggered_at = Some(t.at);
                    o.updated_at = t.at;
                }
            }
            Event::OrderFilled(f) => {
                self.closed(f.account, symbol, f.order_id, OrderState::Filled, f.at);
            }
            Event::OrderCancelled(c) => {
                let state = OrderState::Cancelled(c.reason);
                self.closed(c.account, symbol, c.order_id, state, c.at);
            }
            Event::OrderRefused(r) => {
                let name = self.name(symbol.as_str());
                let record =
                    OrderRecord::refused(name, r.terms, r.client_order_id.clone(), &r.reason, r.at);
                self.refused(r.account, record);
            }
            // The exchange answers a rejection without writing it to the
            // book's stream; refused placements come as `OrderRefused`.
            Event::OrderRejected(_) | Event::StreamFenced(_) => {}
        }
    }

    /// Takes in an order another history folded (a copy that follows the
    /// log from where that one stood).
    pub fn adopt(&mut self, account: AccountId, record: OrderRecord) {
        // An order with an id was accepted by a market, whose name is a
        // symbol.
        match Symbol::new(&record.symbol) {
            Ok(symbol) if record.order_id.is_some() => self.add(account, symbol, record, None),
            _ => self.refused(account, record),
        }
    }

    /// Adds an accepted order to the account's list and finds it by its
    /// id from then on. Ids grow as a market accepts orders, so its place
    /// goes at the end; one adopted out of order is put where its id
    /// belongs.
    fn add(
        &mut self,
        account: AccountId,
        symbol: Symbol,
        record: OrderRecord,
        accepted_revision: Option<u64>,
    ) {
        let orders = self.accounts.entry(account).or_default();
        let places = self.places.entry((account, symbol)).or_default();
        let id = record.order_id;
        let at = places.partition_point(|&p| orders[p].order_id() < id);
        places.insert(at, orders.len());
        orders.push(OrderEntry::Whole {
            record: Box::new(record),
            accepted_revision,
        });
    }

    /// An open order whose terms are about to change: they are no longer
    /// those it was accepted with.
    fn terms_changed(
        &mut self,
        account: AccountId,
        symbol: Symbol,
        id: OrderId,
    ) -> Option<&mut OrderRecord> {
        match self.entry_mut(account, symbol, id)? {
            OrderEntry::Whole {
                record,
                accepted_revision,
            } => {
                *accepted_revision = None;
                Some(record)
            }
            OrderEntry::Closed(_) => None,
        }
    }

    /// An order has closed, in `state` at `at`: kept as a [`ClosedOrder`]
    /// if it can be.
    fn closed(
        &mut self,
        account: AccountId,
        symbol: Symbol,
        id: OrderId,
        state: OrderState,
        at: Timestamp,
    ) {
        let name = symbol.as_str();
        let market = match self.markets.iter().position(|m| &**m == name) {
            Some(at) => at,
            None => {
                let shared = self.name(name);
                self.markets.push(shared);
                self.markets.len() - 1
            }
        };
        let Some(entry) = self.entry_mut(account, symbol, id) else {
            return;
        };
        if let Some(o) = entry.whole_mut() {
            o.state = state;
            o.updated_at = at;
        }
        // Beyond 65,536 markets an order stays whole.
        if let Ok(market) = u16::try_from(market) {
            entry.settle(market);
        }
    }

    /// The name of the market an order is in.
    pub fn symbol_of<'a>(&'a self, entry: &'a OrderEntry) -> &'a Arc<str> {
        match entry {
            OrderEntry::Whole { record, .. } => &record.symbol,
            OrderEntry::Closed(c) => &self.markets[usize::from(c.market)],
        }
    }

    /// The order with its market's name, as a read takes it out.
    fn listed(&self, entry: &OrderEntry) -> Listed {
        Listed {
            symbol: self.symbol_of(entry).clone(),
            entry: entry.clone(),
        }
    }

    /// The place in the account's list of its order in a market.
    fn place(&self, account: AccountId, symbol: Symbol, id: OrderId) -> Option<usize> {
        let orders = self.accounts.get(&account)?;
        let places = self.places.get(&(account, symbol))?;
        let found = places.binary_search_by_key(&Some(id), |&p| orders[p].order_id());
        found.ok().map(|i| places[i])
    }

    /// One of the account's orders in a market, by the exchange's id.
    pub fn order(&self, account: AccountId, symbol: &str, id: OrderId) -> Option<Listed> {
        let at = self.place(account, Symbol::new(symbol).ok()?, id)?;
        Some(self.listed(&self.accounts[&account][at]))
    }

    /// The account's orders in one market, in the order of their ids.
    pub fn in_market(&self, account: AccountId, symbol: &str) -> Vec<&OrderEntry> {
        let (Some(orders), Ok(symbol)) = (self.accounts.get(&account), Symbol::new(symbol)) else {
            return Vec::new();
        };
        let places = self
            .places
            .get(&(account, symbol))
            .map_or(&[][..], Vec::as_slice);
        places.iter().map(|&p| &orders[p]).collect()
    }

    /// The account's newest order in a market placed under its own id
    /// `client_order_id` (an id is free again once its order closed, so an
    /// older order may have had it too). A refused placement is not an
    /// order: it is never the one found.
    pub fn by_client_id(
        &self,
        account: AccountId,
        symbol: &str,
        client_order_id: &ClientOrderId,
    ) -> Option<Listed> {
        let orders = self.accounts.get(&account)?;
        let found = orders.iter().rev().find(|o| {
            o.order_id().is_some()
                && &**self.symbol_of(o) == symbol
                && o.client_order_id() == Some(client_order_id)
        })?;
        Some(self.listed(found))
    }

    /// Folds in one account event (only refusals are history: those of
    /// logs before refusals were written to the market's stream).
    pub fn apply_account(&mut self, event: &AccountEvent) {
        if let AccountEvent::OrderRefused {
            account,
            symbol,
            reason,
            at,
            ..
        } = event
            && let Some(terms) = event.refused_terms()
        {
            let record = OrderRecord::refused(self.name(symbol), terms, None, reason, *at);
            self.refused(*account, record);
        }
    }

    fn refused(&mut self, account: AccountId, record: OrderRecord) {
        self.accounts
            .entry(account)
            .or_default()
            .push(OrderEntry::Whole {
                record: Box::new(record),
                accepted_revision: None,
            });
    }

    /// The shared copy of a market's name (of any name a refusal
    /// carried, too: a log may hold refusals for markets that never were).
    pub(super) fn name(&mut self, symbol: &str) -> Arc<str> {
        if let Some(name) = self.names.get(symbol) {
            return name.clone();
        }
        let name: Arc<str> = symbol.into();
        self.names.insert(symbol.to_string(), name.clone());
        name
    }

    fn entry_mut(
        &mut self,
        account: AccountId,
        symbol: Symbol,
        id: OrderId,
    ) -> Option<&mut OrderEntry> {
        let at = self.place(account, symbol, id)?;
        self.accounts.get_mut(&account)?.get_mut(at)
    }

    /// An order kept whole (a closed one changes no more).
    fn order_mut(
        &mut self,
        account: AccountId,
        symbol: Symbol,
        id: OrderId,
    ) -> Option<&mut OrderRecord> {
        self.entry_mut(account, symbol, id)?.whole_mut()
    }

    /// Up to `limit` of the account's orders that the filter keeps, newest
    /// first, from just before the cursor `before` (from the newest
    /// without one).
    pub fn page(
        &self,
        account: AccountId,
        filter: &OrderFilter,
        before: Option<u64>,
        limit: usize,
    ) -> OrderPage {
        let orders = self.accounts.get(&account).map_or(&[][..], Vec::as_slice);
        let keeps = |o: &OrderEntry| filter.keeps(self.symbol_of(o), o);
        let (page, next) = newest_first(orders, before, limit, keeps);
        OrderPage {
            orders: page.into_iter().map(|i| self.listed(&orders[i])).collect(),
            next,
        }
    }

    /// Every order of the account the filter keeps, newest first.
    pub fn all(&self, account: AccountId, filter: &OrderFilter) -> Vec<Listed> {
        self.page(account, filter, None, usize::MAX).orders
    }

    /// How many of the account's orders the filter keeps that were placed
    /// in `placed_ms` (milliseconds since the Unix epoch).
    pub fn count(&self, account: AccountId, filter: &OrderFilter, placed_ms: &Range<u64>) -> usize {
        let orders = self.accounts.get(&account).map_or(&[][..], Vec::as_slice);
        orders
            .iter()
            .filter(|o| {
                filter.keeps(self.symbol_of(o), o) && placed_ms.contains(&(o.placed_at() / 1000))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use orderbook::{Book, Command, Market, OrderType, PlaceOrder, SelfTradePrevention, Side};

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// A history and the market events it folded, from which a closed
    /// order's terms are read back as the exchange reads them from the
    /// store.
    #[derive(Default)]
    struct Folded {
        h: OrderHistory,
        log: HashMap<String, Vec<Event>>,
    }

    impl Folded {
        fn record(&self, listed: Listed) -> OrderRecord {
            match listed.entry {
                OrderEntry::Whole { record, .. } => *record,
                OrderEntry::Closed(c) => {
                    match &self.log[&*listed.symbol][c.accepted_revision as usize] {
                        Event::OrderAccepted(a) => c.record(listed.symbol.clone(), a),
                        other => panic!("{c:?} points at {other:?}"),
                    }
                }
            }
        }

        fn all(&self, account: AccountId, filter: &OrderFilter) -> Vec<OrderRecord> {
            let all = self.h.all(account, filter);
            all.into_iter().map(|e| self.record(e)).collect()
        }

        fn page(
            &self,
            account: AccountId,
            before: Option<u64>,
            limit: usize,
        ) -> (Vec<OrderRecord>, Option<u64>) {
            let page = self.h.page(account, &OrderFilter::default(), before, limit);
            let orders = page.orders.into_iter().map(|e| self.record(e));
            (orders.collect(), page.next)
        }

        fn order(&self, account: AccountId, symbol: &str, id: OrderId) -> Option<OrderRecord> {
            Some(self.record(self.h.order(account, symbol, id)?))
        }
    }

    /// Runs commands on a real book and folds its events into a history,
    /// each at its revision in the market's stream.
    fn run(book: &mut Book, history: &mut Folded, command: Command) {
        for e in book.decide(&command) {
            book.apply(&e);
            let log = history.log.entry(e.symbol().to_string()).or_default();
            history.h.apply_market(&e, Some(log.len() as u64));
            log.push(e);
        }
    }

    fn limit(id: u64, account: u64, side: Side, price: &str, qty: &str, at: u64) -> Command {
        Command::Place(PlaceOrder {
            client_order_id: None,
            symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
            order_id: id,
            account,
            side,
            order_type: OrderType::Limit,
            price: Some(d(price)),
            quantity: Some(d(qty)),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::CancelTaker,
            at,
            trigger: None,
        })
    }

    /// An amended order shows its new terms with what filled before, a
    /// partly filled order counts as open, and a cancelled one keeps its
    /// fills; the cursor walks back one page at a time.
    #[test]
    fn orders_follow_their_events_and_page_back() {
        let mut book = Book::new(Market::defaults().remove(0));
        let mut h = Folded::default();
        run(&mut book, &mut h, limit(1, 7, Side::Sell, "100", "1", 10));
        run(&mut book, &mut h, limit(2, 8, Side::Buy, "100", "0.25", 20));
        let amend = Command::Amend(orderbook::AmendOrder {
            symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
            order_id: 1,
            account: 7,
            price: Some(d("101")),
            quantity: Some(d("0.5")),
            at: 30,
            trigger_price: None,
        });
        run(&mut book, &mut h, amend);
        let seller = h.all(7, &OrderFilter::default());
        let o = &seller[0];
        assert_eq!(
            (o.terms.price, o.terms.quantity, o.filled),
            (Some(d("101")), Some(d("0.75")), d("0.25"))
        );
        assert_eq!(
            (o.state.clone(), o.updated_at),
            (OrderState::PartiallyFilled, 30)
        );
        let open = OrderFilter {
            state: Some("open".into()),
            ..OrderFilter::default()
        };
        assert_eq!(h.all(7, &open).len(), 1);
        assert_eq!(h.all(8, &open).len(), 0);
        assert_eq!(
            h.all(8, &OrderFilter::default())[0].state,
            OrderState::Filled
        );
        let cancel = Command::Cancel(orderbook::CancelOrder {
            symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
            order_id: 1,
            account: 7,
            at: 40,
        });
        run(&mut book, &mut h, cancel);
        let o = &h.all(7, &OrderFilter::default())[0];
        assert_eq!(
            (o.state.clone(), o.filled),
            (OrderState::Cancelled(CancelReason::User), d("0.25"))
        );
        assert_eq!(o.average_price(), Some(d("100")));

        for i in 0..5 {
            run(
                &mut book,
                &mut h,
                limit(10 + i, 9, Side::Buy, "50", "0.01", 50 + i),
            );
        }
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let (orders, next) = h.page(9, before, 2);
            seen.extend(orders.iter().map(|o| o.order_id.unwrap()));
            match next {
                Some(next) => before = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, [14, 13, 12, 11, 10]);
    }

    /// A closed order with the terms it was accepted with is kept as how
    /// it ended and where those terms are written; an open or amended one
    /// whole. Read back, each record is what a history that keeps every
    /// order whole has.
    #[test]
    fn closed_orders_are_kept_as_where_their_terms_are_written() {
        let mut book = Book::new(Market::defaults().remove(0));
        let mut h = Folded::default();
        let cancel = |id, at| {
            Command::Cancel(orderbook::CancelOrder {
                symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
                order_id: id,
                account: 7,
                at,
            })
        };
        run(&mut book, &mut h, limit(1, 7, Side::Sell, "100", "1", 10));
        run(&mut book, &mut h, limit(2, 8, Side::Buy, "100", "1", 20));
        run(&mut book, &mut h, limit(3, 7, Side::Sell, "105", "1", 30));
        run(&mut book, &mut h, cancel(3, 35));
        run(&mut book, &mut h, limit(4, 7, Side::Sell, "110", "1", 40));
        let amend = Command::Amend(orderbook::AmendOrder {
            symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
            order_id: 4,
            account: 7,
            price: Some(d("111")),
            quantity: None,
            at: 45,
            trigger_price: None,
        });
        run(&mut book, &mut h, amend);
        run(&mut book, &mut h, cancel(4, 47));
        run(&mut book, &mut h, limit(5, 7, Side::Sell, "120", "1", 50));
        let kinds: Vec<(Option<OrderId>, bool)> =
            h.h.in_market(7, "BTC-USD")
                .into_iter()
                .map(|e| (e.order_id(), matches!(e, OrderEntry::Closed(_))))
                .collect();
        assert_eq!(
            kinds,
            [
                (Some(1), true),
                (Some(3), true),
                (Some(4), false),
                (Some(5), false)
            ]
        );
        assert!(matches!(
            h.h.in_market(8, "BTC-USD")[..],
            [OrderEntry::Closed(_)]
        ));
        let mut whole = OrderHistory::default();
        for e in &h.log["BTC-USD"] {
            whole.apply_market(e, None);
        }
        for account in [7, 8] {
            let all = whole.all(account, &OrderFilter::default());
            let expected: Vec<OrderRecord> = all
                .iter()
                .map(|l| l.entry.whole().unwrap().clone())
                .collect();
            assert_eq!(h.all(account, &OrderFilter::default()), expected);
            for state in ["open", "filled", "cancelled"] {
                let filter = OrderFilter {
                    state: Some(state.into()),
                    symbol: None,
                };
                assert_eq!(
                    h.h.count(account, &filter, &(0..u64::MAX)),
                    whole.count(account, &filter, &(0..u64::MAX)),
                    "{account} {state}"
                );
            }
        }
    }

    /// Every order is found by its account, market and id, and its events
    /// change it alone: across two markets whose ids overlap, two accounts,
    /// and in a copy that adopted the orders out of their order.
    #[test]
    fn orders_are_found_by_account_market_and_id() {
        let mut markets = Market::defaults();
        let (btc, eth) = (markets.remove(0), markets.remove(0));
        let mut books = [Book::new(btc.clone()), Book::new(eth.clone())];
        let mut h = Folded::default();
        let mut placed = Vec::new();
        for i in 0..40u64 {
            let (market, book) = if i % 3 == 0 {
                (&eth, &mut books[1])
            } else {
                (&btc, &mut books[0])
            };
            let id = book.last_order_id() + 1;
            let account = 7 + i % 2;
            let price = (100 + i % 5).to_string();
            let mut command = limit(id, account, Side::Buy, &price, "1", i);
            if let Command::Place(p) = &mut command {
                p.symbol = market.symbol;
            }
            run(book, &mut h, command);
            placed.push((account, market.symbol, id, price));
        }
        // Ids are unique in a market, so another account never has one.
        let find = |h: &Folded| {
            for (account, symbol, id, price) in &placed {
                let o = h.order(*account, symbol.as_str(), *id).unwrap();
                assert_eq!((&*o.symbol, o.order_id), (symbol.as_str(), Some(*id)));
                assert_eq!(o.terms.price, Some(d(price)));
                let other = if *account == 7 { 8 } else { 7 };
                assert!(h.order(other, symbol.as_str(), *id).is_none());
            }
        };
        find(&h);
        // A seller takes one BTC bid: that order alone is filled.
        let id = books[0].last_order_id() + 1;
        run(
            &mut books[0],
            &mut h,
            limit(id, 9, Side::Sell, "100", "1", 99),
        );
        let filled = |h: &Folded| {
            let states = placed.iter().map(|(account, symbol, id, _)| {
                let o = h.order(*account, symbol.as_str(), *id).unwrap();
                o.state == OrderState::Filled
            });
            states.collect::<Vec<_>>()
        };
        let expected: Vec<bool> = placed
            .iter()
            .map(|(_, symbol, id, _)| *symbol == btc.symbol && books[0].order(*id).is_none())
            .collect();
        assert_eq!(filled(&h), expected);
        assert_eq!(expected.iter().filter(|f| **f).count(), 1);
        // Newest first: each market's ids come in falling.
        let mut copy = Folded::default();
        for account in [7, 8] {
            for o in h.all(account, &OrderFilter::default()) {
                copy.h.adopt(account, o);
            }
        }
        find(&copy);
        assert_eq!(filled(&copy), expected);
        assert!(copy.order(7, "NOT-A-MARKET", 1).is_none());
    }
}
