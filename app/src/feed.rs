//! Live market data: what a page shows of one market, and the websocket
//! server function that keeps it current.
//!
//! The page is first rendered from a [`MarketSnapshot`] taken at an event
//! store position. The browser then opens [`market_feed`] and asks to
//! watch the market from that position; for that one client the server
//! opens its own `$all` subscription, filtered on the server by event type
//! to the order book's events, and forwards the trades of the watched
//! market, depth when the book changed, and a heartbeat with the ticker
//! and the position reached. Asking to watch another market switches the
//! subscription on the same socket. When the socket drops, the browser
//! reconnects with backoff and resumes from the last position it received,
//! so no trade is missed or shown twice.

use leptos::prelude::*;
use leptos::server_fn::{BoxedStream, Websocket, codec::JsonEncoding};
use serde::{Deserialize, Serialize};

use crate::candles::Series;
use crate::error::UserError;

/// A position in the event store's `$all`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FeedPosition {
    pub commit: u64,
    pub prepare: u64,
}

/// One trade as the tape shows it. Amounts are exact decimal strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TradeView {
    pub trade_id: u64,
    pub price: String,
    pub quantity: String,
    /// The taker's side: `buy` means the price was lifted.
    pub taker_side: String,
    pub at_ms: u64,
}

/// One price level with the running total from the best price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelView {
    pub price: String,
    pub quantity: String,
    pub cumulative: String,
}

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

impl TradeView {
    /// Price and quantity as numbers, for drawing.
    pub fn amounts(&self) -> (f64, f64) {
        (
            self.price.parse().unwrap_or(0.0),
            self.quantity.parse().unwrap_or(0.0),
        )
    }
}

impl TickerView {
    /// The ticker from one-minute candles and the last trade: the window is
    /// the minutes that overlap the last 24 hours.
    pub fn from_minutes(minutes: &Series, last: Option<&TradeView>, now_ms: u64) -> TickerView {
        let since = now_ms.saturating_sub(86_400_000);
        let window: Vec<_> = minutes
            .candles
            .iter()
            .filter(|c| c.start_ms + 60_000 > since)
            .collect();
        let last_price = last.map(|t| t.amounts().0);
        let open = window.first().map(|c| c.open);
        TickerView {
            last: last.map(|t| t.price.clone()),
            change_pct: match (open, last_price) {
                (Some(o), Some(l)) if o > 0.0 => Some((l - o) / o * 100.0),
                _ => None,
            },
            high: window.iter().map(|c| c.high).reduce(f64::max),
            low: window.iter().map(|c| c.low).reduce(f64::min),
            volume: window.iter().fold(0.0, |v, c| v + c.volume),
        }
    }
}

/// What the browser asks of the feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedRequest {
    /// Watch a market. With a position: resume after it. Without: send a
    /// fresh snapshot first and go on from there.
    Watch {
        symbol: String,
        from: Option<FeedPosition>,
    },
}

/// What the feed sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FeedMessage {
    Snapshot(MarketSnapshot),
    Trade {
        symbol: String,
        position: FeedPosition,
        trade: TradeView,
    },
    Depth {
        symbol: String,
        depth: DepthView,
    },
    /// Sent every couple of seconds, and after trades: keeps idle proxies
    /// from closing the socket and moves the resume point forward.
    Heartbeat {
        symbol: String,
        position: Option<FeedPosition>,
        ticker: TickerView,
    },
    /// The request could not be served (an unknown market, say).
    Refused(String),
}

/// The market page's data as of now, for the first paint.
#[server(endpoint = "market_page")]
pub async fn market_page(symbol: String) -> Result<MarketSnapshot, UserError> {
    let exchange = crate::server::context::exchange()?;
    exchange
        .snapshot(&symbol)
        .ok_or_else(|| UserError::new(format!("there is no market {symbol}")))
}

/// The live feed of one browser page: see the module docs.
#[server(protocol = Websocket<JsonEncoding, JsonEncoding>)]
pub async fn market_feed(
    requests: BoxedStream<FeedRequest, ServerFnError>,
) -> Result<BoxedStream<FeedMessage, ServerFnError>, ServerFnError> {
    let exchange = crate::server::context::exchange().map_err(|e| ServerFnError::new(e.message))?;
    Ok(crate::server::feed::open(exchange, requests).into())
}
