//! What a trader may see of their own account: balances, open orders,
//! and the pages of their order and trade history.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use std::time::Duration;

use accounts::FillRef;
use orderbook::{AccountId, Book, ClientOrderId, OrderId, TradeId};

use super::Exchange;
use crate::api::{AccountView, OrderHistoryPage, OrderRecordView, TradeHistoryPage};
use crate::server::exchange_error::ExchangeError;
use crate::server::order_history::{OrderFilter, OrderRecord};
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
    ) -> Result<Option<OrderRecord>, ExchangeError> {
        let find = || {
            self.0.order_history.read(|h| match which {
                OrderRef::Id(id) => h.order(account, symbol, *id),
                OrderRef::Client(c) => h.by_client_id(account, symbol, c),
            })
        };
        let mut found = find();
        if found.is_none() {
            let Some(book) = self.book(symbol) else {
                return Ok(None);
            };
            let decided = match which {
                OrderRef::Id(id) => *id <= book.last_order_id(),
                OrderRef::Client(c) => book.order_by_client_id(account, c).is_some(),
            };
            let deadline = tokio::time::Instant::now() + HISTORY_CATCH_UP;
            while decided && found.is_none() && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
                found = find();
            }
        }
        let Some(entry) = found else {
            return Ok(None);
        };
        Ok(self.records(vec![entry]).await?.pop())
    }

    /// Every order of the account that `filter` keeps, newest first, as
    /// the history has them.
    pub async fn order_records(
        &self,
        account: AccountId,
        filter: &OrderFilter,
    ) -> Result<Vec<OrderRecord>, ExchangeError> {
        let entries = self.0.order_history.read(|h| h.all(account, filter));
        self.records(entries).await
    }

    /// A page of the account's orders as the history has them, newest
    /// first, and the cursor of the next (older) page.
    pub async fn order_record_page(
        &self,
        account: AccountId,
        filter: &OrderFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<OrderRecord>, Option<u64>), ExchangeError> {
        let page = self
            .0
            .order_history
            .read(|h| h.page(account, filter, before, limit));
        Ok((self.records(page.orders).await?, page.next))
    }

    /// A page of the account's fills, newest first, and the cursor of the
    /// next (older) page.
    pub async fn fill_page(
        &self,
        account: AccountId,
        symbol: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<(Vec<accounts::TradeSettled>, Option<u64>), ExchangeError> {
        let mut next = None;
        let page = self
            .fills(account, |a| {
                let keep = |f: &FillRef| symbol.is_none_or(|s| s == &*f.symbol);
                let (page, after) = a.fills.newest_first(before, limit, keep);
                next = after;
                page
            })
            .await?;
        Ok((page, next))
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
        // Open orders are kept whole.
        self.0.order_history.read_at(|h, position| {
            let open = h.all(account, &filter);
            let open = open
                .iter()
                .filter_map(|o| o.entry.whole().cloned())
                .collect();
            (open, position)
        })
    }

    /// How many of a market's events the ledger has folded.
    pub fn ledger_reached(&self, symbol: &str) -> u64 {
        self.0.ledger.read(|l| l.market_events(symbol))
    }

    /// The account's fills of the trades of one decision in a market
    /// (the ledger has folded it), oldest first.
    pub async fn decision_fills(
        &self,
        account: AccountId,
        symbol: &str,
        trades: &[TradeId],
    ) -> Result<Vec<accounts::TradeSettled>, ExchangeError> {
        self.fills(account, |a| {
            // The newest fills are the decision's: look back until each of
            // its trades is found.
            let mut left: Vec<TradeId> = trades.to_vec();
            let mut found = Vec::new();
            for (i, f) in a.fills.iter_newest_first() {
                if left.is_empty() {
                    break;
                }
                if &*f.symbol == symbol
                    && let Some(at) = left.iter().position(|t| *t == f.trade_id)
                {
                    left.swap_remove(at);
                    found.push(i);
                }
            }
            found.reverse();
            found
        })
        .await
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
    /// fills.
    pub async fn order_history(
        &self,
        account: AccountId,
        filter: &OrderFilter,
        before: Option<u64>,
        limit: usize,
    ) -> Result<OrderHistoryPage, ExchangeError> {
        let (orders, next) = self
            .order_record_page(account, filter, before, limit)
            .await?;
        Ok(OrderHistoryPage {
            orders: self.with_fills(account, &orders).await?,
            next,
        })
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
        // Whole runs of fills in the range are counted without unpacking.
        let at = at_ms.start.saturating_mul(1000)..at_ms.end.saturating_mul(1000);
        self.0
            .ledger
            .read(|l| l.account(account).map_or(0, |a| a.fills.count(symbol, &at)))
    }

    /// Each order's view with its fills.
    async fn with_fills(
        &self,
        account: AccountId,
        orders: &[OrderRecord],
    ) -> Result<Vec<OrderRecordView>, ExchangeError> {
        let keys: HashSet<(&str, OrderId)> = orders
            .iter()
            .filter_map(|o| Some((&*o.symbol, o.order_id?)))
            .collect();
        // Per market, the page's range of ids: only the runs of fills
        // that can hold them are looked at (under the ledger's read lock),
        // not every fill of the account.
        let mut ranges: HashMap<&str, (OrderId, OrderId)> = HashMap::new();
        for &(symbol, id) in &keys {
            let r = ranges.entry(symbol).or_insert((id, id));
            *r = (r.0.min(id), r.1.max(id));
        }
        let fills = self
            .fills(account, |a| {
                let mut page: Vec<usize> = (ranges.values())
                    .flat_map(|&(lo, hi)| a.fills.of_orders(lo..=hi))
                    .filter(|(_, f)| keys.contains(&(&*f.symbol, f.order_id)))
                    .map(|(i, _)| i)
                    .collect();
                page.sort_unstable();
                page.dedup();
                page
            })
            .await?;
        let mut by_order: HashMap<(&str, OrderId), Vec<&accounts::TradeSettled>> = HashMap::new();
        for f in &fills {
            by_order
                .entry((&*f.symbol, f.order_id))
                .or_default()
                .push(f);
        }
        Ok(orders
            .iter()
            .map(|o| {
                let key = o.order_id.map(|id| (&*o.symbol, id));
                let of = key.and_then(|k| by_order.remove(&k)).unwrap_or_default();
                order_record_view(o, of)
            })
            .collect())
    }

    /// A page of the account's trades (one market's, or all), newest
    /// first, from just before the cursor `before`.
    pub async fn trade_history(
        &self,
        account: AccountId,
        symbol: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Result<TradeHistoryPage, ExchangeError> {
        let (page, next) = self.fill_page(account, symbol, before, limit).await?;
        Ok(TradeHistoryPage {
            trades: page.iter().map(fill_view).collect(),
            next,
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
