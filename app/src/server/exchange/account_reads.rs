//! What a trader may see of their own account: balances, open orders,
//! and the pages of their order and trade history.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use std::time::Duration;

use orderbook::{AccountId, Book, ClientOrderId, OrderId};

use super::Exchange;
use crate::api::{AccountView, OrderHistoryPage, OrderRecordView, TradeHistoryPage};
use crate::server::order_history::{OrderFilter, OrderRecord, newest_first};
use crate::server::views::{
    account_view, fill_view, open_order_view, order_record_view, stop_order_view,
};

/// Which of a trader's orders: by the exchange's id or by their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OrderRef {
    Id(OrderId),
    Client(ClientOrderId),
}

/// What an account's view is made from: how many events changed the
/// account, and its open orders as their books show them. The same inputs
/// make the same view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ViewInputs {
    changes: u64,
    open_orders: Vec<crate::api::OpenOrderView>,
}

/// An account's view, read only when it may have changed.
#[derive(Debug)]
pub enum AccountRead {
    /// No such account.
    Unknown,
    /// Made from the same inputs as the view given.
    Unchanged,
    Changed(ViewInputs, Box<AccountView>),
}

/// How long a read waits for the order history to catch up with an order
/// the book already has (the history follows the log a moment behind).
const HISTORY_CATCH_UP: Duration = Duration::from_secs(2);

impl Exchange {
    /// One of the account's orders in a market, as the history has it.
    /// An order the book has already decided but the history has not yet
    /// folded is waited for, so a trader reads their own writes.
    pub async fn order_record(
        &self,
        account: AccountId,
        symbol: &str,
        which: &OrderRef,
    ) -> Option<OrderRecord> {
        let find = || {
            self.0.order_history.read(|h| match which {
                OrderRef::Id(id) => h.order(account, symbol, *id).cloned(),
                OrderRef::Client(c) => h.by_client_id(account, symbol, c).cloned(),
            })
        };
        if let Some(found) = find() {
            return Some(found);
        }
        let book = self.book(symbol)?;
        let decided = match which {
            OrderRef::Id(id) => *id <= book.last_order_id(),
            OrderRef::Client(c) => book.order_by_client_id(account, c).is_some(),
        };
        if !decided {
            return None;
        }
        let deadline = tokio::time::Instant::now() + HISTORY_CATCH_UP;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(found) = find() {
                return Some(found);
            }
        }
        None
    }

    /// Every order of the account that `filter` keeps, newest first, as
    /// the history has them.
    pub fn order_records(&self, account: AccountId, filter: &OrderFilter) -> Vec<OrderRecord> {
        self.0.order_history.read(|h| h.all(account, filter))
    }

    /// A page of the account's orders as the history has them, newest
    /// first, and the cursor of the next (older) page.
    pub fn order_record_page(
        &self,
        account: AccountId,
        filter: &OrderFilter,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<OrderRecord>, Option<u64>) {
        let page = self
            .0
            .order_history
            .read(|h| h.page(account, filter, before, limit));
        (page.orders, page.next)
    }

    /// A page of the account's fills, newest first, and the cursor of the
    /// next (older) page.
    pub fn fill_page(
        &self,
        account: AccountId,
        symbol: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<accounts::TradeSettled>, Option<u64>) {
        self.0.ledger.read(|l| {
            let trades = l.account(account).map_or(&[][..], |a| a.trades.as_slice());
            let keep = |t: &accounts::TradeSettled| symbol.is_none_or(|s| s == &*t.symbol);
            let (page, next) = newest_first(trades, before, limit, keep);
            (page.into_iter().cloned().collect(), next)
        })
    }

    /// The account's open orders as the history has them, and the log
    /// position that history is the fold of.
    pub fn open_orders_at(
        &self,
        account: AccountId,
    ) -> (Vec<OrderRecord>, Option<crate::api::FeedPosition>) {
        let filter = OrderFilter {
            symbol: None,
            state: Some("open".into()),
        };
        self.0
            .order_history
            .read_at(|h, position| (h.all(account, &filter), position))
    }

    /// How many of a market's events the ledger has folded.
    pub fn ledger_reached(&self, symbol: &str) -> u64 {
        self.0.ledger.read(|l| l.market_events(symbol))
    }

    /// The account's fills in one market (or all), oldest first.
    pub fn fills(&self, account: AccountId, symbol: Option<&str>) -> Vec<accounts::TradeSettled> {
        self.0.ledger.read(|l| {
            let trades = l.account(account).map_or(&[][..], |a| a.trades.as_slice());
            let mine = trades
                .iter()
                .filter(|t| symbol.is_none_or(|s| &*t.symbol == s));
            mine.cloned().collect()
        })
    }

    /// The account's balances per asset.
    pub fn balances(&self, account: AccountId) -> BTreeMap<String, accounts::Balance> {
        self.0
            .ledger
            .read(|l| l.account(account).map(|a| a.balances.clone()))
            .unwrap_or_default()
    }

    /// A page of the account's orders, newest first: up to `limit` that
    /// `filter` keeps, from just before the cursor `before`; each with its
    /// fills from the ledger.
    pub fn order_history(
        &self,
        account: AccountId,
        filter: &OrderFilter,
        before: Option<u64>,
        limit: usize,
    ) -> OrderHistoryPage {
        let page = self
            .0
            .order_history
            .read(|h| h.page(account, filter, before, limit));
        OrderHistoryPage {
            orders: self.with_fills(account, &page.orders),
            next: page.next,
        }
    }

    /// How many of the account's orders `filter` keeps were placed in
    /// `placed_ms` (milliseconds since the Unix epoch).
    pub fn count_orders(
        &self,
        account: AccountId,
        filter: &OrderFilter,
        placed_ms: &std::ops::Range<u64>,
    ) -> usize {
        self.0
            .order_history
            .read(|h| h.count(account, filter, placed_ms))
    }

    /// How many of the account's trades in `symbol` (or all) were made in
    /// `at_ms` (milliseconds since the Unix epoch).
    pub fn count_trades(
        &self,
        account: AccountId,
        symbol: Option<&str>,
        at_ms: &std::ops::Range<u64>,
    ) -> usize {
        self.0.ledger.read(|l| {
            let trades = l.account(account).map_or(&[][..], |a| a.trades.as_slice());
            trades
                .iter()
                .filter(|t| {
                    symbol.is_none_or(|s| s == &*t.symbol) && at_ms.contains(&(t.at / 1000))
                })
                .count()
        })
    }

    fn with_fills(&self, account: AccountId, orders: &[OrderRecord]) -> Vec<OrderRecordView> {
        self.0.ledger.read(|l| {
            let trades = l.account(account).map_or(&[][..], |a| a.trades.as_slice());
            let mut fills: HashMap<(&str, OrderId), Vec<&accounts::TradeSettled>> = orders
                .iter()
                .filter_map(|o| Some(((&*o.symbol, o.order_id?), Vec::new())))
                .collect();
            for t in trades {
                if let Some(f) = fills.get_mut(&(&*t.symbol, t.order_id)) {
                    f.push(t);
                }
            }
            orders
                .iter()
                .map(|o| {
                    let key = o.order_id.map(|id| (&*o.symbol, id));
                    let of = key.and_then(|k| fills.remove(&k)).unwrap_or_default();
                    order_record_view(o, of)
                })
                .collect()
        })
    }

    /// A page of the account's trades (one market's, or all), newest
    /// first, from just before the cursor `before`.
    pub fn trade_history(
        &self,
        account: AccountId,
        symbol: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> TradeHistoryPage {
        self.0.ledger.read(|l| {
            let trades = l.account(account).map_or(&[][..], |a| a.trades.as_slice());
            let keep = |t: &accounts::TradeSettled| symbol.is_none_or(|s| s == &*t.symbol);
            let (page, next) = newest_first(trades, before, limit, keep);
            TradeHistoryPage {
                trades: page.into_iter().map(fill_view).collect(),
                next,
            }
        })
    }

    /// Everything a trader sees of their own account.
    pub fn view(&self, account: AccountId) -> Option<AccountView> {
        match self.view_since(account, None) {
            AccountRead::Changed(_, view) => Some(*view),
            AccountRead::Unchanged | AccountRead::Unknown => None,
        }
    }

    /// The account's view, unless what it is made from is still `since`
    /// (then nothing is built: a socket following an account asks at
    /// every depth publication, and most find nothing changed). Its open
    /// orders are looked up in their books first (a lookup each) and
    /// compared, rather than how far those books have moved: other
    /// traders' orders move a busy book ten times a second, and each move
    /// rebuilt the whole view (its balances and 200 fills) for every
    /// socket following an account with an order there.
    pub fn view_since(&self, account: AccountId, since: Option<&ViewInputs>) -> AccountRead {
        // The account's reservations name its open orders: look just those
        // up in the books instead of scanning every resting order.
        let Some((changes, reserved)) = self.0.ledger.read(|l| {
            let a = l.account(account)?;
            let reserved: Vec<(String, OrderId)> = a.reservations.keys().cloned().collect();
            Some((a.changes, reserved))
        }) else {
            return AccountRead::Unknown;
        };
        let mut books: BTreeMap<&str, Arc<Book>> = BTreeMap::new();
        for (symbol, _) in &reserved {
            if let Some(market) = self.0.markets.get(symbol) {
                books.entry(symbol).or_insert_with(|| market.book());
            }
        }
        let mut open_orders = Vec::new();
        for (symbol, order_id) in &reserved {
            let Some(book) = books.get(symbol.as_str()) else {
                continue;
            };
            // Reserved but not in the book: still on its way, or already
            // done and waiting for settlement. Either way not resting.
            if let Some(o) = book.order(*order_id).filter(|o| o.account == account) {
                open_orders.push(open_order_view(symbol, &o));
            } else if let Some(o) = book.stop_order(*order_id).filter(|o| o.account == account) {
                open_orders.push(stop_order_view(symbol, &o));
            }
        }
        // Read before the view is built, so the view is never older than
        // what it is said to be made from.
        let inputs = ViewInputs {
            changes,
            open_orders: open_orders.clone(),
        };
        if since == Some(&inputs) {
            return AccountRead::Unchanged;
        }
        let view = self
            .0
            .ledger
            .read(|l| Some(account_view(l.account(account)?, open_orders)));
        match view {
            Some(view) => AccountRead::Changed(inputs, Box::new(view)),
            None => AccountRead::Unknown,
        }
    }
}
