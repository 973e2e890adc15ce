//! Every type that crosses the wire between the browser and the server: what
//! the server functions answer, what the market feed sends and is asked, and
//! the order form as it is posted.
//!
//! This is the bottom of the app: pages and the server both build on it, and
//! it imports nothing of the app but the candle series it carries and
//! the wrapper that shares a value's JSON among viewers. Amounts
//! are exact decimal strings as the engine wrote them; the page only parses
//! them to draw.

use serde::{Deserialize, Serialize};

use crate::candles::{Candle, Series};
use crate::shared_json::SharedJson;

/// Trades a tape shows: the live one on the page, and a replayed moment's.
pub const TAPE: usize = 50;

/// A position in the event store's `$all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FeedPosition {
    pub commit: u64,
    pub prepare: u64,
}

/// One trade as the tape shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeView {
    pub trade_id: u64,
    pub price: String,
    pub quantity: String,
    /// The taker's side: `buy` means the price was lifted.
    pub taker_side: String,
    pub at_ms: u64,
}

impl TradeView {
    /// Price and quantity as numbers, for drawing.
    pub fn amounts(&self) -> (f64, f64) {
        (
            self.price.parse().unwrap_or(0.0),
            self.quantity.parse().unwrap_or(0.0),
        )
    }
}

/// One price level with the running total from the best price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelView {
    pub price: String,
    pub quantity: String,
    pub cumulative: String,
}

/// The best levels of each side of a book, best first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthView {
    pub bids: Vec<LevelView>,
    pub asks: Vec<LevelView>,
}

/// The last 24 hours of a market, at one-minute resolution.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TickerView {
    pub last: Option<String>,
    pub change_pct: Option<f64>,
    pub high: Option<f64>,
    pub low: Option<f64>,
    pub volume: f64,
}

/// Older candles of one market and interval, for a chart scrolled back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CandleHistory {
    /// Oldest first, each starting before the time asked for.
    pub candles: Vec<Candle>,
    /// Whether the market has candles older than these.
    pub earlier: bool,
}

/// A market as it was after its first `events` events: the time machine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReplayView {
    pub symbol: String,
    /// The market's events replayed (its stream's first `events`).
    pub events: u64,
    /// The market's events so far: where replaying reaches the present.
    pub total: u64,
    /// The time of the last event replayed; `None` before the first.
    pub at_ms: Option<u64>,
    pub depth: DepthView,
    /// The last trades up to then, newest first.
    pub trades: Vec<TradeView>,
    /// The candles up to then, one series per interval.
    pub series: Vec<Series>,
}

/// Everything a market page shows, as of `position`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarketSnapshot {
    pub symbol: String,
    /// Trades up to and including this position are in the snapshot; `None`
    /// when the store held nothing yet.
    pub position: Option<FeedPosition>,
    /// Newest first.
    pub trades: Vec<TradeView>,
    /// One series per interval.
    pub series: Vec<Series>,
    pub ticker: TickerView,
    pub depth: DepthView,
}

/// What the browser asks of the market feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedRequest {
    /// Watch a market. With a position: resume after it. Without: send a
    /// fresh snapshot first and go on from there.
    Watch {
        symbol: String,
        from: Option<FeedPosition>,
    },
    /// Follow the account of the session the socket was opened with: its
    /// view now, then every fill and change. With a position: every fill
    /// after it as well (a reconnect misses none).
    Account { from: Option<FeedPosition> },
}

/// What the market feed sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeedMessage {
    /// Boxed: every message queued for a browser is as large as the
    /// largest kind, and this one is sent once a watch.
    Snapshot(Box<MarketSnapshot>),
    /// Shared, as depth is: one trade goes to every viewer as is.
    Trade {
        symbol: String,
        position: FeedPosition,
        trade: SharedJson<TradeView>,
    },
    /// Shared: one market's depth goes to every viewer of it as is.
    Depth {
        symbol: String,
        depth: SharedJson<DepthView>,
    },
    /// Sent every couple of seconds, and after trades: keeps idle proxies
    /// from closing the socket and moves the resume point forward.
    Heartbeat {
        symbol: String,
        position: Option<FeedPosition>,
        /// Shared by every viewer of the market.
        ticker: SharedJson<TickerView>,
    },
    /// The account of the socket's session, as the trade panel shows it,
    /// whenever it changed, with the position of the account's stream it
    /// includes (resume from there). `None`: the socket has no session.
    Account {
        view: Option<Box<AccountView>>,
        position: Option<FeedPosition>,
    },
    /// What changed in the account's view since the one sent before on
    /// this socket (see [`AccountView::changes_since`]), with the position
    /// of the account's stream it includes: a fill moves the balances and
    /// adds one line, not the whole view with its 200 fills.
    AccountChanged {
        changes: Box<AccountChanges>,
        position: Option<FeedPosition>,
    },
    /// One of the account's fills as it is settled, for a notice.
    Fill {
        position: FeedPosition,
        fill: Box<FillView>,
    },
    /// The request could not be served (an unknown market, say).
    Refused(String),
}

/// A listed market, as the order form needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketView {
    pub symbol: String,
    pub base: String,
    pub quote: String,
    pub tick_size: String,
    pub lot_size: String,
    pub min_quantity: String,
}

/// One asset of the caller's account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceView {
    pub asset: String,
    pub available: String,
    pub reserved: String,
    pub total: String,
}

/// One of the caller's open orders: resting on a book, or (a stop or
/// take-profit) waiting for its trigger.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OpenOrderView {
    pub symbol: String,
    pub order_id: u64,
    pub side: String,
    /// `limit` or `market` (a stop-market waiting).
    pub order_type: String,
    /// The limit price; empty for a stop-market.
    pub price: String,
    /// Base quantity; empty for a stop-market buy sized by quote amount.
    pub quantity: String,
    /// The quote amount a stop-market buy will spend.
    pub quote_amount: Option<String>,
    pub filled: String,
    /// What is still open: `quantity - filled`.
    pub remaining: String,
    /// `open`, `partially filled`, or `waiting` (for its trigger).
    pub status: String,
    /// `stop` or `take_profit`, with its trigger price, while waiting.
    pub trigger: Option<String>,
    pub trigger_price: Option<String>,
    pub at_ms: u64,
}

/// One of the caller's fills, with the fee charged on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillView {
    pub symbol: String,
    pub trade_id: u64,
    pub order_id: u64,
    pub side: String,
    pub role: String,
    pub price: String,
    pub quantity: String,
    /// What changed hands in quote: exactly `price * quantity`.
    pub quote_amount: String,
    pub fee: String,
    pub fee_asset: String,
    pub at_ms: u64,
}

/// One of the caller's orders in their history, with its fills.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRecordView {
    pub symbol: String,
    /// None for an order refused before it was given an id.
    pub order_id: Option<u64>,
    pub side: String,
    /// `limit` or `market`.
    pub order_type: String,
    /// `stop` or `take_profit` for an order that waited for a trigger, with
    /// its trigger price (after any amendment) and when it fired.
    pub trigger: Option<String>,
    pub trigger_price: Option<String>,
    pub triggered_ms: Option<u64>,
    /// `GTC`, `IOC` or `FOK`; none for a refused order.
    pub time_in_force: Option<String>,
    pub price: Option<String>,
    pub quantity: Option<String>,
    pub quote_amount: Option<String>,
    pub filled: String,
    pub average_price: Option<String>,
    /// The fees of its fills, in the asset they were taken in.
    pub fee: Option<String>,
    pub fee_asset: Option<String>,
    /// `open`, `partially_filled`, `filled`, `cancelled` or `rejected`.
    pub state: String,
    /// Why it was cancelled or rejected.
    pub reason: Option<String>,
    pub placed_ms: u64,
    pub updated_ms: u64,
    pub fills: Vec<FillView>,
}

/// A page of the caller's order history, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderHistoryPage {
    pub orders: Vec<OrderRecordView>,
    /// Pass as `before` for the next (older) page; none at the oldest.
    pub next: Option<u64>,
}

/// A page of the caller's trades, newest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeHistoryPage {
    pub trades: Vec<FillView>,
    pub next: Option<u64>,
}

/// Everything the caller sees of their own account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountView {
    pub username: String,
    pub balances: Vec<BalanceView>,
    pub open_orders: Vec<OpenOrderView>,
    pub fills: Vec<FillView>,
}

/// The parts of an account's view that changed: applied to the view
/// before ([`AccountView::apply`]), they make the view after.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountChanges {
    /// All the balances, if any changed.
    pub balances: Option<Vec<BalanceView>>,
    /// All the open orders, if any changed.
    pub open_orders: Option<Vec<OpenOrderView>>,
    /// The fills newer than the view before had, newest first.
    pub new_fills: Vec<FillView>,
    /// How many fills the view after lists: the new ones, then the newest
    /// of those before.
    pub fills_listed: usize,
}

impl AccountView {
    /// What changed from `before` to this view, if the change is one
    /// [`AccountChanges`] can say: the same trader, and fills that are
    /// new ones followed by the newest of those before.
    pub fn changes_since(&self, before: &AccountView) -> Option<AccountChanges> {
        if self.username != before.username {
            return None;
        }
        let new = match before.fills.first() {
            Some(newest) => self.fills.iter().position(|f| f == newest)?,
            None => self.fills.len(),
        };
        let kept = &self.fills[new..];
        if before.fills.get(..kept.len()) != Some(kept) {
            return None;
        }
        Some(AccountChanges {
            balances: (self.balances != before.balances).then(|| self.balances.clone()),
            open_orders: (self.open_orders != before.open_orders).then(|| self.open_orders.clone()),
            new_fills: self.fills[..new].to_vec(),
            fills_listed: self.fills.len(),
        })
    }

    /// The view after `changes`.
    pub fn apply(&mut self, changes: AccountChanges) {
        if let Some(balances) = changes.balances {
            self.balances = balances;
        }
        if let Some(open_orders) = changes.open_orders {
            self.open_orders = open_orders;
        }
        let mut fills = changes.new_fills;
        let kept = changes.fills_listed.saturating_sub(fills.len());
        fills.extend(self.fills.drain(..).take(kept));
        self.fills = fills;
    }
}

/// The order form's fields as a plain HTML form posts them: text, with the
/// fields the chosen order type hides left out. The server reads it into
/// an order and says beside which field a value is wrong.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderForm {
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub price: Option<String>,
    pub quantity: Option<String>,
    pub quote_amount: Option<String>,
    pub time_in_force: Option<String>,
    /// `on` when the post-only box is ticked.
    pub post_only: Option<String>,
    /// `cancel_taker` (the default), `cancel_maker` or `cancel_both`: what
    /// happens when the order would trade with the trader's own.
    pub self_trade_prevention: Option<String>,
    /// The trigger price of a stop or take-profit order (`order_type`
    /// `stop_limit`, `stop_market`, `take_profit_limit` or
    /// `take_profit_market`).
    pub trigger_price: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(trade_id: u64) -> FillView {
        FillView {
            symbol: "BTC-USD".into(),
            trade_id,
            order_id: 1,
            side: "buy".into(),
            role: "taker".into(),
            price: "30000".into(),
            quantity: "0.01".into(),
            quote_amount: "300".into(),
            fee: "0".into(),
            fee_asset: "BTC".into(),
            at_ms: trade_id,
        }
    }

    /// Newest first, `shown` of them, the newest being `newest`.
    fn view(newest: u64, shown: u64, usd: &str) -> AccountView {
        AccountView {
            username: "alice".into(),
            balances: vec![BalanceView {
                asset: "USD".into(),
                available: usd.into(),
                reserved: "0".into(),
                total: usd.into(),
            }],
            open_orders: Vec::new(),
            fills: (newest.saturating_sub(shown) + 1..=newest)
                .rev()
                .map(fill)
                .collect(),
        }
    }

    /// Changes carry only what moved, and applied to the view before they
    /// make the view after: new fills in front, the oldest falling off a
    /// full list; what they cannot say is not said.
    #[test]
    fn an_accounts_changes_make_the_next_view() {
        let pairs = [
            (view(0, 0, "100"), view(1, 1, "70")),
            (view(5, 5, "100"), view(7, 7, "40")),
            (view(200, 200, "100"), view(203, 200, "10")),
            (view(200, 200, "100"), view(200, 200, "100")),
        ];
        for (before, after) in pairs {
            let changes = after.changes_since(&before).unwrap();
            assert_eq!(
                changes.new_fills.len() as u64,
                after.fills.first().map_or(0, |f| f.trade_id)
                    - before.fills.first().map_or(0, |f| f.trade_id)
            );
            assert_eq!(
                changes.balances.is_some(),
                after.balances != before.balances
            );
            assert_eq!(changes.open_orders, None);
            let mut made = before.clone();
            made.apply(changes);
            assert_eq!(made, after);
        }
        // Another trader, or more new fills than a view lists: whole.
        let mut bob = view(3, 3, "100");
        bob.username = "bob".into();
        assert_eq!(bob.changes_since(&view(2, 2, "100")), None);
        assert_eq!(
            view(500, 200, "1").changes_since(&view(200, 200, "1")),
            None
        );
    }
}
