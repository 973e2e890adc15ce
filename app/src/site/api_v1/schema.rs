//! The native API's wire types: what `/api/v1` takes and answers, each
//! documented in the OpenAPI document by its `ToSchema`. Every amount is
//! an exact decimal string; every time is milliseconds since the Unix
//! epoch.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// The server's clock.
#[derive(Serialize, ToSchema)]
pub struct ServerTime {
    pub server_time_ms: u64,
}

/// A market and the rules of its orders.
#[derive(Serialize, ToSchema)]
pub struct Market {
    /// `BTC-USD`.
    pub symbol: String,
    pub base: String,
    pub quote: String,
    /// Every price is a multiple of this.
    pub tick_size: Decimal,
    /// Every quantity is a multiple of this.
    pub lot_size: Decimal,
    pub min_quantity: Decimal,
    pub max_price: Decimal,
    pub max_quantity: Decimal,
    /// The most an order may be worth: price × quantity, or a quote amount.
    pub max_value: Decimal,
    /// `trading`, or `paused` (orders refused until its last write is
    /// confirmed).
    pub status: String,
    /// `limit`, `market`, `stop_limit`, `stop_market`, `take_profit_limit`,
    /// `take_profit_market`.
    pub order_kinds: Vec<String>,
}

/// One price level: its price, the open quantity there, and how many
/// orders make it.
#[derive(Serialize, ToSchema)]
pub struct Level {
    pub price: Decimal,
    pub quantity: Decimal,
    pub orders: u32,
}

/// A market's book as of one update.
#[derive(Serialize, ToSchema)]
pub struct Depth {
    pub symbol: String,
    /// The market's update counter (its event stream's revision): every
    /// change to the market counts one, and the depth stream's diffs carry
    /// the same counter.
    pub update_id: u64,
    /// Best first.
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
}

/// A trade of the market.
#[derive(Serialize, ToSchema)]
pub struct Trade {
    /// Sequential per market, from 1.
    pub trade_id: u64,
    pub price: Decimal,
    pub quantity: Decimal,
    pub quote_quantity: Decimal,
    /// The incoming order's side: `buy` means the price was lifted.
    pub taker_side: String,
    pub at_ms: u64,
}

/// A candle, exact: its trades' prices and summed quantities.
#[derive(Serialize, ToSchema)]
pub struct Candle {
    pub start_ms: u64,
    pub open: Decimal,
    pub high: Decimal,
    pub low: Decimal,
    pub close: Decimal,
    pub volume: Decimal,
    pub quote_volume: Decimal,
    pub trades: u64,
}

/// The last 24 hours of a market, exact, and its best prices now.
#[derive(Serialize, ToSchema)]
pub struct Ticker {
    pub symbol: String,
    /// None when the market did not trade in the last 24 hours.
    pub open: Option<Decimal>,
    pub high: Option<Decimal>,
    pub low: Option<Decimal>,
    pub close: Option<Decimal>,
    pub volume: Decimal,
    pub quote_volume: Decimal,
    pub trades: u64,
    /// The last trade's price, of any day.
    pub last_price: Option<Decimal>,
    pub best_bid: Option<Decimal>,
    pub best_ask: Option<Decimal>,
}

/// Which trades: by id, by time, or the newest.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TradesQuery {
    /// From this trade id on.
    pub from_id: Option<u64>,
    /// From this time on (ms).
    pub start_ms: Option<u64>,
    /// None after this time (ms).
    pub end_ms: Option<u64>,
    /// At most this many: 1 to 1000, 100 by default.
    pub limit: Option<usize>,
}

/// Which candles.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CandlesQuery {
    /// `1m`, `5m`, `15m`, `1h`, `4h`, `1d` or `1w`.
    pub interval: String,
    /// The first `limit` candles from this time; without it the newest.
    pub start_ms: Option<u64>,
    /// None starting after this time.
    pub end_ms: Option<u64>,
    /// 1 to 1000, 500 by default.
    pub limit: Option<usize>,
}

/// How deep a book to send.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DepthQuery {
    /// Levels per side: 1 to 5000, 100 by default.
    pub levels: Option<usize>,
}

/// A new order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewOrder {
    pub symbol: String,
    /// `buy` or `sell`.
    pub side: String,
    /// `limit`, `market`, `stop_limit`, `stop_market`, `take_profit_limit`
    /// or `take_profit_market`.
    pub kind: String,
    /// The limit price: for the limit kinds.
    pub price: Option<Decimal>,
    /// The base quantity; or give `quote_amount` for a market order.
    pub quantity: Option<Decimal>,
    pub quote_amount: Option<Decimal>,
    /// The trigger price of a stop or take-profit.
    pub trigger_price: Option<Decimal>,
    /// `GTC`, `IOC` or `FOK` (GTC for limit orders, IOC for market orders).
    pub time_in_force: Option<String>,
    #[serde(default)]
    pub post_only: bool,
    /// `cancel_taker` (the default), `cancel_maker` or `cancel_both`.
    pub self_trade_prevention: Option<String>,
    /// Your own id for the order (1 to 36 of letters, digits and `.:/_-`),
    /// unique among your open orders in the market.
    pub client_order_id: Option<String>,
}

/// A change to an open order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Amendment {
    pub price: Option<Decimal>,
    /// The new open quantity.
    pub quantity: Option<Decimal>,
    /// For an order waiting for its trigger.
    pub trigger_price: Option<Decimal>,
}

/// One of your orders.
#[derive(Serialize, ToSchema)]
pub struct Order {
    pub symbol: String,
    pub order_id: u64,
    pub client_order_id: Option<String>,
    pub side: String,
    pub kind: String,
    pub price: Option<Decimal>,
    pub quantity: Option<Decimal>,
    pub quote_amount: Option<Decimal>,
    pub trigger_price: Option<Decimal>,
    pub time_in_force: Option<String>,
    pub post_only: bool,
    pub self_trade_prevention: String,
    pub filled: Decimal,
    pub filled_quote: Decimal,
    pub average_price: Option<Decimal>,
    /// `open`, `partially_filled`, `filled` or `cancelled`.
    pub state: String,
    /// Why it was cancelled: `user`, `immediate_or_cancel_remainder`,
    /// `fill_or_kill_unfilled`, `market_order_remainder`,
    /// `self_trade_prevention`.
    pub reason: Option<String>,
    /// When a stop or take-profit fired (none while it waits).
    pub triggered_ms: Option<u64>,
    pub placed_ms: u64,
    pub updated_ms: u64,
}

/// One of your fills.
#[derive(Serialize, ToSchema)]
pub struct Fill {
    pub symbol: String,
    pub trade_id: u64,
    pub order_id: u64,
    pub side: String,
    /// `maker` or `taker`.
    pub role: String,
    pub price: Decimal,
    pub quantity: Decimal,
    /// The fee, in the asset you received.
    pub fee: Decimal,
    pub fee_asset: String,
    pub at_ms: u64,
}

/// A placed order, and its fills in the decision that placed it.
#[derive(Serialize, ToSchema)]
pub struct Placed {
    pub order: Order,
    pub fills: Vec<Fill>,
}

/// Orders cancelled at once.
#[derive(Serialize, ToSchema)]
pub struct Cancelled {
    pub orders: Vec<Order>,
}

/// One asset of your account.
#[derive(Serialize, ToSchema)]
pub struct Balance {
    pub asset: String,
    pub total: Decimal,
    /// What open orders hold.
    pub reserved: Decimal,
    pub available: Decimal,
}

/// Which of your orders or fills.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MineQuery {
    /// One market, or all.
    pub symbol: Option<String>,
}

/// A page of your history, newest first.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    pub symbol: Option<String>,
    /// Orders only: `open`, `partially_filled`, `filled`, `cancelled`,
    /// `rejected`.
    pub state: Option<String>,
    /// The `next` of the page before.
    pub before: Option<u64>,
    /// 1 to 500, 50 by default.
    pub limit: Option<usize>,
}

/// A page of your orders, newest first.
#[derive(Serialize, ToSchema)]
pub struct OrderPage {
    pub orders: Vec<Order>,
    /// Pass as `before` for the next (older) page; none at the oldest.
    pub next: Option<u64>,
}

/// A page of your fills, newest first.
#[derive(Serialize, ToSchema)]
pub struct FillPage {
    pub fills: Vec<Fill>,
    pub next: Option<u64>,
}

/// Why a request was refused: nothing it asked for was done.
#[derive(Serialize, ToSchema)]
pub struct ApiError {
    /// A stable word to branch on: `bad_request`, `unauthorized`,
    /// `not_found`, `rejected`, `insufficient_funds`, `too_many_requests`,
    /// `unavailable`.
    pub code: String,
    /// What was wrong, in words a trader can act on.
    pub message: String,
}

impl Order {
    pub fn of(o: &crate::server::OrderRecord) -> Order {
        use crate::server::OrderState;
        let t = &o.terms;
        Order {
            symbol: o.symbol.to_string(),
            order_id: o.order_id.unwrap_or_default(),
            client_order_id: o.client_order_id.as_ref().map(|c| c.to_string()),
            side: t.side.as_str().to_string(),
            kind: t.kind().as_str().to_string(),
            price: t.price,
            quantity: t.quantity,
            quote_amount: t.quote_amount,
            trigger_price: t.trigger.map(|x| x.price),
            time_in_force: t.time_in_force.map(|x| x.as_str().to_string()),
            post_only: t.post_only,
            self_trade_prevention: t.self_trade_prevention.as_str().to_string(),
            filled: o.filled,
            filled_quote: o.filled_quote,
            average_price: o.average_price(),
            state: o.state.name().to_string(),
            reason: match &o.state {
                // The reason's word in the events (`user`, ...).
                OrderState::Cancelled(r) => serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string)),
                OrderState::Rejected(r) => Some(r.clone()),
                _ => None,
            },
            triggered_ms: o.triggered_at.map(|t| t / 1000),
            placed_ms: o.placed_at / 1000,
            updated_ms: o.updated_at / 1000,
        }
    }
}

impl Fill {
    pub fn of(t: &accounts::TradeSettled) -> Fill {
        Fill {
            symbol: t.symbol.to_string(),
            trade_id: t.trade_id,
            order_id: t.order_id,
            side: t.side.as_str().to_string(),
            role: match t.role {
                accounts::Role::Maker => "maker",
                accounts::Role::Taker => "taker",
            }
            .to_string(),
            price: t.price,
            quantity: t.quantity,
            fee: t.fee,
            fee_asset: t.received_asset.to_string(),
            at_ms: t.at / 1000,
        }
    }
}

impl Trade {
    pub fn of(t: &orderbook::TradeExecuted) -> Trade {
        Trade {
            trade_id: t.trade_id,
            price: t.price,
            quantity: t.quantity,
            quote_quantity: (t.price * t.quantity).normalize(),
            taker_side: t.taker_side.as_str().to_string(),
            at_ms: t.executed_at / 1000,
        }
    }
}

impl Ticker {
    /// A market's last 24 hours (none when it did not trade in them) and
    /// its book now.
    pub fn of(
        symbol: &str,
        day: Option<crate::server::exact_candles::ExactCandle>,
        book: &orderbook::Book,
    ) -> Ticker {
        Ticker {
            symbol: symbol.to_string(),
            open: day.map(|d| d.open),
            high: day.map(|d| d.high),
            low: day.map(|d| d.low),
            close: day.map(|d| d.close),
            volume: day.map(|d| d.volume).unwrap_or_default(),
            quote_volume: day.map(|d| d.quote_volume).unwrap_or_default(),
            trades: day.map_or(0, |d| d.trades),
            last_price: book.last_price(),
            best_bid: book.best_bid().map(|l| l.price),
            best_ask: book.best_ask().map(|l| l.price),
        }
    }
}

impl Candle {
    pub fn of(c: &crate::server::exact_candles::ExactCandle) -> Candle {
        Candle {
            start_ms: c.start_ms,
            open: c.open.normalize(),
            high: c.high.normalize(),
            low: c.low.normalize(),
            close: c.close.normalize(),
            volume: c.volume.normalize(),
            quote_volume: c.quote_volume.normalize(),
            trades: c.trades,
        }
    }
}
