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
//! stream, from which a page reads their terms back; runs of them are
//! packed (`order_list.rs`). Open orders, refusals and orders whose terms
//! changed (amended, or a stop that fired) are kept whole.

use std::cell::Cell;
use std::collections::HashMap;
use std::ops::{ControlFlow, Range, RangeInclusive};
use std::sync::Arc;

use accounts::AccountEvent;
use orderbook::{AccountId, ClientOrderId, Event, OrderId, Symbol, Timestamp};
use rust_decimal::Decimal;

use super::order_list::{OrderList, RunBounds};
pub use super::order_record::{ClosedOrder, OrderEntry, OrderRecord, OrderState};

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

/// Which of an account's orders in one market a read asks for (Binance's
/// `allOrders`): those with ids from `from` on, placed in `placed_ms`
/// (milliseconds since the Unix epoch), up to `limit` of them: the first
/// from the oldest, or with `newest` the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarketOrders {
    pub from: Option<OrderId>,
    pub placed_ms: RangeInclusive<u64>,
    pub limit: usize,
    pub newest: bool,
}

/// An order as a read takes it out of the history: its market's name and
/// the order as kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub symbol: Arc<str>,
    pub entry: OrderEntry,
}

impl OrderRecord {
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
}

/// A page of one account's history, newest first.
#[derive(Debug, PartialEq, Eq)]
pub struct OrderPage {
    pub orders: Vec<Listed>,
    /// The cursor of the next (older) page, if there are older orders.
    pub next: Option<u64>,
}

/// Every account's orders. Pure: folded from events, no I/O.
#[derive(Debug, Default)]
pub struct OrderHistory {
    pub(super) accounts: HashMap<AccountId, OrderList>,
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
                self.add(a.account, record, revision);
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
            Ok(_) if record.order_id.is_some() => self.add(account, record, None),
            _ => self.refused(account, record),
        }
    }

    /// Adds an accepted order to the end of the account's list (the
    /// order it entered the log in). It is found by its market and id
    /// while it can change, and by the runs' bounds once it is packed.
    fn add(&mut self, account: AccountId, record: OrderRecord, accepted_revision: Option<u64>) {
        self.accounts
            .entry(account)
            .or_default()
            .push(OrderEntry::Whole {
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
        let list = self.accounts.get_mut(&account)?;
        match list.whole_mut(symbol, id)? {
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
        let market = match self.market(name) {
            Some(at) => at,
            None => {
                let shared = self.name(name);
                self.markets.push(shared);
                self.markets.len() - 1
            }
        };
        let Some(list) = self.accounts.get_mut(&account) else {
            return;
        };
        list.close(symbol, id, |entry| {
            if let Some(o) = entry.whole_mut() {
                o.state = state;
                o.updated_at = at;
            }
            // Beyond 65,536 markets an order stays whole.
            if let Ok(market) = u16::try_from(market) {
                entry.settle(market);
            }
        });
    }

    /// The place of market `name` in the list closed orders name.
    fn market(&self, name: &str) -> Option<usize> {
        self.markets.iter().position(|m| &**m == name)
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

    /// Whether the packed runs whose bounds these are can hold orders of
    /// market `symbol` (of any, without one): `None` if no closed order is
    /// in it, so no run can.
    fn runs_of(&self, symbol: Option<&str>) -> Option<impl Fn(&RunBounds) -> bool + use<>> {
        let market = match symbol {
            Some(name) => Some(u16::try_from(self.market(name)?).ok()?),
            None => None,
        };
        Some(move |b: &RunBounds| market.is_none_or(|m| b.has(m)))
    }

    /// The newest of the account's orders in market `symbol` that `found`
    /// picks, looking only in the runs `wanted` lets through.
    fn find(
        &self,
        account: AccountId,
        symbol: &str,
        wanted: impl Fn(&RunBounds) -> bool,
        found: impl Fn(&OrderEntry) -> bool,
    ) -> Option<Listed> {
        let list = self.accounts.get(&account)?;
        let mut listed = None;
        let _ = list.walk(0..list.len(), true, wanted, |_, o| {
            if found(o) && &**self.symbol_of(o) == symbol {
                listed = Some(self.listed(o));
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        });
        listed
    }

    /// One of the account's orders in a market, by the exchange's id.
    pub fn order(&self, account: AccountId, symbol: &str, id: OrderId) -> Option<Listed> {
        let market = Symbol::new(symbol).ok()?;
        if let Some(whole) = self.accounts.get(&account)?.whole(market, id) {
            return Some(self.listed(whole));
        }
        let market = self.market(symbol).and_then(|m| u16::try_from(m).ok());
        let wanted = |b: &RunBounds| market.is_some_and(|m| b.can_hold(m, id));
        self.find(account, symbol, wanted, |o| o.order_id() == Some(id))
    }

    /// The account's orders in one market that `wanted` asks for, oldest
    /// first. Ids grow with the log, so the walk goes in the list's order
    /// and stops at the limit; runs that cannot hold such orders are not
    /// unpacked.
    pub fn in_market(
        &self,
        account: AccountId,
        symbol: &str,
        wanted: &MarketOrders,
    ) -> Vec<OrderEntry> {
        let &MarketOrders {
            from,
            ref placed_ms,
            limit,
            newest,
        } = wanted;
        let Some(list) = self.accounts.get(&account) else {
            return Vec::new();
        };
        let start = placed_ms.start().saturating_mul(1000);
        let placed = start..placed_ms.end().saturating_add(1).saturating_mul(1000);
        // No run can hold orders of a market without closed orders.
        let market = self.market(symbol).and_then(|m| u16::try_from(m).ok());
        let runs = |b: &RunBounds| {
            market.is_some_and(|m| b.reaches(m, from.unwrap_or(0))) && b.placed_in(&placed)
        };
        let mut orders = Vec::new();
        let _ = list.walk(0..list.len(), newest, runs, |_, o| {
            let kept = o.order_id() >= from.or(Some(0))
                && placed_ms.contains(&(o.placed_at() / 1000))
                && &**self.symbol_of(o) == symbol;
            if !kept {
                return ControlFlow::Continue(());
            }
            if orders.len() == limit {
                return ControlFlow::Break(());
            }
            orders.push(o.clone());
            ControlFlow::Continue(())
        });
        if newest {
            orders.reverse();
        }
        orders
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
        let wanted = self.runs_of(Some(symbol));
        let wanted = |b: &RunBounds| wanted.as_ref().is_some_and(|w| w(b));
        let found =
            |o: &OrderEntry| o.order_id().is_some() && o.client_order_id() == Some(client_order_id);
        self.find(account, symbol, wanted, found)
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

    /// An order kept whole (a closed order changes no more).
    fn order_mut(
        &mut self,
        account: AccountId,
        symbol: Symbol,
        id: OrderId,
    ) -> Option<&mut OrderRecord> {
        let list = self.accounts.get_mut(&account)?;
        list.whole_mut(symbol, id)?.whole_mut()
    }

    /// Whether the rows of packed runs with these bounds (closed orders,
    /// each filled or cancelled) can be among those `filter` keeps.
    fn rows_kept_by(&self, filter: &OrderFilter) -> impl Fn(&RunBounds) -> bool + use<> {
        let closed = (filter.state.as_deref()).is_none_or(|s| s == "filled" || s == "cancelled");
        let of_market = self.runs_of(filter.symbol.as_deref()).filter(|_| closed);
        move |b: &RunBounds| of_market.as_ref().is_some_and(|m| m(b))
    }

    /// Up to `limit` of the account's orders that the filter keeps, newest
    /// first, from just before the cursor `before` (a place in the list;
    /// from the newest without one), and the cursor of the next (older)
    /// page if there are older orders. Lists that only grow keep their
    /// cursors valid.
    pub fn page(
        &self,
        account: AccountId,
        filter: &OrderFilter,
        before: Option<u64>,
        limit: usize,
    ) -> OrderPage {
        let (mut orders, mut next) = (Vec::new(), None);
        if let Some(list) = self.accounts.get(&account) {
            let end = before.map_or(list.len(), |b| usize::try_from(b).unwrap_or(usize::MAX));
            let _ = list.walk(0..end, true, self.rows_kept_by(filter), |place, o| {
                if !filter.keeps(self.symbol_of(o), o) {
                    return ControlFlow::Continue(());
                }
                if orders.len() == limit {
                    next = Some(place as u64 + 1);
                    return ControlFlow::Break(());
                }
                orders.push(self.listed(o));
                ControlFlow::Continue(())
            });
        }
        OrderPage { orders, next }
    }

    /// Every order of the account the filter keeps, newest first.
    pub fn all(&self, account: AccountId, filter: &OrderFilter) -> Vec<Listed> {
        self.page(account, filter, None, usize::MAX).orders
    }

    /// How many of the account's orders the filter keeps that were placed
    /// in `placed_ms` (milliseconds since the Unix epoch). The rows of a
    /// packed run placed wholly in it are counted from the run's bounds,
    /// without unpacking it.
    pub fn count(&self, account: AccountId, filter: &OrderFilter, placed_ms: &Range<u64>) -> usize {
        let Some(list) = self.accounts.get(&account) else {
            return 0;
        };
        let placed = placed_ms.start.saturating_mul(1000)..placed_ms.end.saturating_mul(1000);
        let kept = self.rows_kept_by(filter);
        // Where `kept` lets a run through, a market the filter names has
        // closed orders, so it has a place.
        let market = (filter.symbol.as_deref())
            .and_then(|s| self.market(s))
            .and_then(|m| u16::try_from(m).ok());
        let cancelled = match filter.state.as_deref() {
            Some("cancelled") => Some(true),
            Some("filled") => Some(false),
            _ => None,
        };
        let from_bounds = Cell::new(0);
        let wanted = |b: &RunBounds| {
            if !kept(b) || !b.placed_in(&placed) {
                return false;
            }
            if b.placed_within(&placed) {
                from_bounds.set(from_bounds.get() + b.rows(market, cancelled));
                return false;
            }
            true
        };
        let mut n = 0;
        let _ = list.walk(0..list.len(), false, wanted, |_, o| {
            let placed_ms = placed_ms.contains(&(o.placed_at() / 1000));
            n += usize::from(placed_ms && filter.keeps(self.symbol_of(o), o));
            ControlFlow::Continue(())
        });
        n + from_bounds.get()
    }
}

#[cfg(test)]
mod tests {
    use orderbook::{Book, Command, Market, OrderType, PlaceOrder, SelfTradePrevention, Side};

    use super::*;
    use orderbook::CancelReason;

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

    /// Up to 100 of a market's orders, the first or the newest.
    fn every(newest: bool) -> MarketOrders {
        MarketOrders {
            from: None,
            placed_ms: 0..=u64::MAX,
            limit: 100,
            newest,
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
        let kinds: Vec<(Option<OrderId>, bool)> = (h.h.in_market(7, "BTC-USD", &every(false)))
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
            h.h.in_market(8, "BTC-USD", &every(true))[..],
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
        // A market without a closed order yet lists its open ones.
        let of_7 = (placed.iter()).filter(|(a, symbol, ..)| *a == 7 && *symbol == eth.symbol);
        let of_7: Vec<Option<OrderId>> = of_7.map(|(_, _, id, _)| Some(*id)).collect();
        let listed = h.h.in_market(7, eth.symbol.as_str(), &every(true));
        assert_eq!(
            listed.iter().map(OrderEntry::order_id).collect::<Vec<_>>(),
            of_7
        );
        assert!(of_7.len() > 3);
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
