//! The native API's public endpoints: anyone may call them.

use axum::Json;
use axum::extract::{Extension, Path, Query};

use super::refusal::Refused;
use super::schema::{
    Candle, CandlesQuery, Depth, DepthQuery, Level, Market, ServerTime, Ticker, Trade, TradesQuery,
};
use crate::candles::Interval;
use crate::server::clock::now_ms;
use crate::server::{Exchange, TradesFrom};

type Answer<T> = Result<Json<T>, Refused>;

fn spec(x: &Exchange, symbol: &str) -> Result<orderbook::MarketSpec, Refused> {
    x.market_spec(symbol)
        .ok_or_else(|| Refused::not_found(format!("there is no market {symbol}")))
}

/// A count within `1..=most`, `default` when absent.
pub fn within(
    value: Option<usize>,
    name: &str,
    default: usize,
    most: usize,
) -> Result<usize, Refused> {
    match value.unwrap_or(default) {
        n @ 1.. if n <= most => Ok(n),
        n => Err(Refused::bad(format!("{name} must be 1 to {most}, not {n}"))),
    }
}

/// The server's clock, to check yours against (signed requests must be
/// within their window of it).
#[utoipa::path(get, path = "/time", tag = "market data",
    responses((status = 200, body = ServerTime)))]
pub async fn time() -> Json<ServerTime> {
    Json(ServerTime {
        server_time_ms: now_ms(),
    })
}

/// Every market and the rules its orders must follow.
#[utoipa::path(get, path = "/markets", tag = "market data",
    responses((status = 200, body = Vec<Market>)))]
pub async fn markets(Extension(x): Extension<Exchange>) -> Json<Vec<Market>> {
    let paused = x.stats().paused();
    let markets = x.market_specs().into_iter().map(|s| Market {
        status: if paused.contains(&s.symbol) {
            "paused"
        } else {
            "trading"
        }
        .to_string(),
        max_price: s.tick_size * rust_decimal::Decimal::from(orderbook::MAX_TICKS),
        max_quantity: s.lot_size * rust_decimal::Decimal::from(orderbook::MAX_LOTS),
        max_value: orderbook::Market::new(s.clone())
            .map_or(rust_decimal::Decimal::ZERO, |m| m.max_value()),
        order_kinds: orderbook::OrderKind::ALL
            .iter()
            .map(|k| k.as_str().to_string())
            .collect(),
        symbol: s.symbol,
        base: s.base,
        quote: s.quote,
        tick_size: s.tick_size,
        lot_size: s.lot_size,
        min_quantity: s.min_quantity,
    });
    Json(markets.collect())
}

/// A market's book, to any depth, with its update id.
#[utoipa::path(get, path = "/markets/{symbol}/depth", tag = "market data",
    params(("symbol" = String, Path, description = "`BTC-USD`"), DepthQuery),
    responses((status = 200, body = Depth), (status = 404, body = super::schema::ApiError)))]
pub async fn depth(
    Extension(x): Extension<Exchange>,
    Path(symbol): Path<String>,
    Query(q): Query<DepthQuery>,
) -> Answer<Depth> {
    spec(&x, &symbol)?;
    let levels = within(q.levels, "levels", 100, 5000)?;
    let book = x
        .book(&symbol)
        .ok_or_else(|| Refused::not_found(symbol.clone()))?;
    let depth = book.depth(levels);
    let side = |levels: Vec<orderbook::PriceLevel>| {
        levels
            .into_iter()
            .map(|l| Level {
                price: l.price,
                quantity: l.quantity,
                orders: l.orders,
            })
            .collect()
    };
    Ok(Json(Depth {
        update_id: book.events_applied(),
        bids: side(depth.bids),
        asks: side(depth.asks),
        symbol,
    }))
}

/// A market's trades, oldest first: from an id, from a time, or the
/// newest.
#[utoipa::path(get, path = "/markets/{symbol}/trades", tag = "market data",
    params(("symbol" = String, Path, description = "`BTC-USD`"), TradesQuery),
    responses((status = 200, body = Vec<Trade>), (status = 400, body = super::schema::ApiError)))]
pub async fn trades(
    Extension(x): Extension<Exchange>,
    Path(symbol): Path<String>,
    Query(q): Query<TradesQuery>,
) -> Answer<Vec<Trade>> {
    spec(&x, &symbol)?;
    let limit = within(q.limit, "limit", 100, 1000)?;
    let from = match (q.from_id, q.start_ms) {
        (Some(_), Some(_)) => return Err(Refused::bad("give from_id or start_ms, not both")),
        (Some(id), None) => TradesFrom::Id(id),
        (None, Some(t)) => TradesFrom::Time(t),
        (None, None) => TradesFrom::Newest(limit),
    };
    let trades = x.trades(&symbol, from, q.end_ms, limit).await?;
    Ok(Json(trades.iter().map(Trade::of).collect()))
}

/// A market's candles of one interval, exact.
#[utoipa::path(get, path = "/markets/{symbol}/candles", tag = "market data",
    params(("symbol" = String, Path, description = "`BTC-USD`"), CandlesQuery),
    responses((status = 200, body = Vec<Candle>), (status = 400, body = super::schema::ApiError)))]
pub async fn candles(
    Extension(x): Extension<Exchange>,
    Path(symbol): Path<String>,
    Query(q): Query<CandlesQuery>,
) -> Answer<Vec<Candle>> {
    spec(&x, &symbol)?;
    let interval = Interval::from_label(&q.interval).ok_or_else(|| {
        let offered: Vec<&str> = Interval::ALL.iter().map(|i| i.label()).collect();
        Refused::bad(format!("interval must be one of {}", offered.join(", ")))
    })?;
    let limit = within(q.limit, "limit", 500, 1000)?;
    let candles = x
        .exact_candles(&symbol, interval, q.start_ms, q.end_ms, limit)
        .unwrap_or_default();
    Ok(Json(candles.iter().map(Candle::of).collect()))
}

/// A market's last 24 hours and its best prices now.
#[utoipa::path(get, path = "/markets/{symbol}/ticker", tag = "market data",
    params(("symbol" = String, Path, description = "`BTC-USD`")),
    responses((status = 200, body = Ticker), (status = 404, body = super::schema::ApiError)))]
pub async fn ticker(
    Extension(x): Extension<Exchange>,
    Path(symbol): Path<String>,
) -> Answer<Ticker> {
    spec(&x, &symbol)?;
    let day = x.last_day(&symbol).flatten();
    let book = x
        .book(&symbol)
        .ok_or_else(|| Refused::not_found(symbol.clone()))?;
    Ok(Json(Ticker::of(&symbol, day, &book)))
}
