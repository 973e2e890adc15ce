//! The public endpoints: anyone may call them, no key needed. `ping`,
//! `time`, `exchangeInfo`, `depth`, `trades`, `aggTrades`, `klines` and
//! the tickers, each as Binance answers it.

use axum::Json;
use axum::extract::{Extension, RawQuery};
use orderbook::{MarketSpec, Side, TradeExecuted};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::reply::{Refusal, market, market_id};
use super::wire::{ORDER_TYPES, STP_MODES, number};
use crate::candles::Interval;
use crate::server::clock::now_ms;
use crate::server::exact_candles::ExactCandle;
use crate::server::{Exchange, TradesFrom};
use crate::site::signed::Params;

type Answer = Result<Json<Value>, Refusal>;

/// The query's parameters.
pub fn query(raw: Option<String>) -> Result<Params, Refusal> {
    Params::parse(raw.as_deref().unwrap_or_default(), "").map_err(|e| Refusal::bad(-1100, e))
}

/// A whole-number parameter within `1..=most` (`default` when absent).
pub fn count(params: &Params, name: &str, default: usize, most: usize) -> Result<usize, Refusal> {
    match params.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=most).contains(n))
            .ok_or_else(|| Refusal::bad(-1100, format!("'{name}' must be 1 to {most}, not {v:?}"))),
    }
}

/// A time in ms (or µs, told apart by size) parameter.
pub fn time_ms(params: &Params, name: &str) -> Result<Option<u64>, Refusal> {
    params
        .get(name)
        .map(|v| {
            v.parse::<u64>()
                .map(|t| if t > 100_000_000_000_000 { t / 1000 } else { t })
                .map_err(|_| Refusal::illegal(name, format!("{v:?} is not a time in ms")))
        })
        .transpose()
}

pub async fn ping() -> Json<Value> {
    Json(json!({}))
}

pub async fn time() -> Json<Value> {
    Json(json!({ "serverTime": now_ms() }))
}

pub async fn exchange_info(Extension(x): Extension<Exchange>, RawQuery(q): RawQuery) -> Answer {
    let params = query(q)?;
    let paused = x.stats().paused();
    let wanted: Option<Vec<String>> = match (params.get("symbol"), params.get("symbols")) {
        (Some(s), _) => Some(vec![s.to_string()]),
        (None, Some(list)) => Some(
            serde_json::from_str(list)
                .map_err(|_| Refusal::illegal("symbols", "give a JSON list of symbols"))?,
        ),
        (None, None) => None,
    };
    let specs = match &wanted {
        None => x.market_specs(),
        Some(ids) => ids
            .iter()
            .map(|id| market(&x, Some(id)))
            .collect::<Result<_, _>>()?,
    };
    let symbols: Vec<Value> = specs
        .iter()
        .map(|spec| symbol_info(spec, paused.contains(&spec.symbol)))
        .collect();
    Ok(Json(json!({
        "timezone": "UTC",
        "serverTime": now_ms(),
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": symbols,
    })))
}

fn symbol_info(spec: &MarketSpec, paused: bool) -> Value {
    let price_scale = spec.tick_size.scale();
    let qty_scale = spec.lot_size.scale();
    let max_price = spec.tick_size * Decimal::from(orderbook::MAX_TICKS);
    let max_qty = spec.lot_size * Decimal::from(orderbook::MAX_LOTS);
    json!({
        "symbol": market_id(spec),
        "status": if paused { "HALT" } else { "TRADING" },
        "baseAsset": spec.base,
        "baseAssetPrecision": qty_scale,
        "quoteAsset": spec.quote,
        "quotePrecision": price_scale,
        "quoteAssetPrecision": price_scale,
        "baseCommissionPrecision": qty_scale,
        "quoteCommissionPrecision": price_scale,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": false,
        "ocoAllowed": false,
        "otoAllowed": false,
        "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": false,
        "cancelReplaceAllowed": true,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": number(spec.tick_size),
                "maxPrice": number(max_price),
                "tickSize": number(spec.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": number(spec.min_quantity),
                "maxQty": number(max_qty),
                "stepSize": number(spec.lot_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": number(spec.min_quantity),
                "maxQty": number(max_qty),
                "stepSize": number(spec.lot_size),
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_TAKER",
        "allowedSelfTradePreventionModes": STP_MODES,
    })
}

pub async fn depth(Extension(x): Extension<Exchange>, RawQuery(q): RawQuery) -> Answer {
    let params = query(q)?;
    let spec = market(&x, params.get("symbol"))?;
    let limit = count(&params, "limit", 100, 5000)?;
    let book = x
        .book(&spec.symbol)
        .ok_or_else(|| Refusal::unknown_symbol(&spec.symbol))?;
    let depth = book.depth(limit);
    let side = |levels: &[orderbook::PriceLevel]| -> Vec<[String; 2]> {
        levels
            .iter()
            .map(|l| [number(l.price), number(l.quantity)])
            .collect()
    };
    Ok(Json(json!({
        // The market stream's revision: one counter for every change.
        "lastUpdateId": book.events_applied(),
        "bids": side(&depth.bids),
        "asks": side(&depth.asks),
    })))
}

/// Recent trades: the newest `limit` (up to 1000), oldest first.
pub async fn trades(Extension(x): Extension<Exchange>, RawQuery(q): RawQuery) -> Answer {
    let params = query(q)?;
    let spec = market(&x, params.get("symbol"))?;
    let limit = count(&params, "limit", 500, 1000)?;
    let trades = x
        .trades(&spec.symbol, TradesFrom::Newest(limit), None, limit)
        .await?;
    let out: Vec<Value> = trades
        .iter()
        .map(|t| {
            json!({
                "id": t.trade_id,
                "price": number(t.price),
                "qty": number(t.quantity),
                "quoteQty": number(t.price * t.quantity),
                "time": t.executed_at / 1000,
                "isBuyerMaker": t.taker_side == Side::Sell,
                "isBestMatch": true,
            })
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// Trades as aggregates (one per trade here: every trade is one price and
/// one taker), by id (`fromId`), by time (`startTime`/`endTime`, at most
/// an hour apart, as on Binance), or the newest.
pub async fn agg_trades(Extension(x): Extension<Exchange>, RawQuery(q): RawQuery) -> Answer {
    let params = query(q)?;
    let spec = market(&x, params.get("symbol"))?;
    let limit = count(&params, "limit", 500, 1000)?;
    let start = time_ms(&params, "startTime")?;
    let end = time_ms(&params, "endTime")?;
    let from_id = params
        .get("fromId")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| Refusal::illegal("fromId", "not a trade id"))
        })
        .transpose()?;
    if let (Some(s), Some(e)) = (start, end)
        && (e < s || e - s > 3_600_000)
    {
        return Err(Refusal::bad(
            -1127,
            "More than 1 hours between startTime and endTime (or endTime before startTime).",
        ));
    }
    let from = match (from_id, start) {
        (Some(_), Some(_)) => {
            return Err(Refusal::bad(-1128, "Give fromId or startTime, not both."));
        }
        (Some(id), None) => TradesFrom::Id(id),
        (None, Some(s)) => TradesFrom::Time(s),
        (None, None) if end.is_some() => return Err(Refusal::missing("startTime")),
        (None, None) => TradesFrom::Newest(limit),
    };
    let trades = x.trades(&spec.symbol, from, end, limit).await?;
    Ok(Json(Value::Array(trades.iter().map(agg_trade).collect())))
}

fn agg_trade(t: &TradeExecuted) -> Value {
    json!({
        "a": t.trade_id,
        "p": number(t.price),
        "q": number(t.quantity),
        "f": t.trade_id,
        "l": t.trade_id,
        "T": t.executed_at / 1000,
        "m": t.taker_side == Side::Sell,
        "M": true,
    })
}

/// Candles: the newest `limit`, or from `startTime`, or up to `endTime`,
/// in exact decimals. Only intervals that had trades have one.
pub async fn klines(Extension(x): Extension<Exchange>, RawQuery(q): RawQuery) -> Answer {
    let params = query(q)?;
    let spec = market(&x, params.get("symbol"))?;
    let label = params
        .get("interval")
        .ok_or_else(|| Refusal::missing("interval"))?;
    let interval = Interval::from_label(label).ok_or_else(|| {
        let offered: Vec<&str> = Interval::ALL.iter().map(|i| i.label()).collect();
        Refusal::bad(
            -1120,
            format!(
                "Invalid interval {label}: this exchange keeps {}.",
                offered.join(", ")
            ),
        )
    })?;
    let limit = count(&params, "limit", 500, 1000)?;
    let start = time_ms(&params, "startTime")?;
    let end = time_ms(&params, "endTime")?;
    let candles = x
        .exact_candles(&spec.symbol, interval, start, end, limit)
        .ok_or_else(|| Refusal::unknown_symbol(&spec.symbol))?;
    let out: Vec<Value> = candles
        .iter()
        .map(|c| {
            json!([
                c.start_ms,
                number(c.open),
                number(c.high),
                number(c.low),
                number(c.close),
                number(c.volume),
                c.start_ms + interval.millis() - 1,
                number(c.quote_volume),
                c.trades,
                "0",
                "0",
                "0"
            ])
        })
        .collect();
    Ok(Json(Value::Array(out)))
}

/// The 24-hour ticker of one market, or of every market, exact: folded
/// from the minutes of the last 24 hours.
pub async fn ticker_24hr(Extension(x): Extension<Exchange>, RawQuery(q): RawQuery) -> Answer {
    per_market(&x, q, |x, spec| {
        let day = x.last_day(&spec.symbol).flatten();
        let (bid, ask) = best(x, spec);
        let now = now_ms();
        let zero = || "0".to_string();
        let (change, change_pct) = day.map_or((Decimal::ZERO, Decimal::ZERO), |d| {
            let change = d.close - d.open;
            (change, (change * Decimal::ONE_HUNDRED / d.open).round_dp(3))
        });
        let average = |d: ExactCandle| (d.quote_volume / d.volume).round_dp(spec.tick_size.scale());
        json!({
            "symbol": market_id(spec),
            "priceChange": number(change),
            "priceChangePercent": number(change_pct),
            "weightedAvgPrice": day.map_or_else(zero, |d| number(average(d))),
            "lastPrice": day.map_or_else(zero, |d| number(d.close)),
            "openPrice": day.map_or_else(zero, |d| number(d.open)),
            "highPrice": day.map_or_else(zero, |d| number(d.high)),
            "lowPrice": day.map_or_else(zero, |d| number(d.low)),
            "volume": day.map_or_else(zero, |d| number(d.volume)),
            "quoteVolume": day.map_or_else(zero, |d| number(d.quote_volume)),
            "count": day.map_or(0, |d| d.trades),
            "bidPrice": bid.0, "bidQty": bid.1,
            "askPrice": ask.0, "askQty": ask.1,
            "openTime": day.map_or(now - 86_400_000, |d| d.start_ms),
            "closeTime": now,
        })
    })
}

/// The last trade's price (of every trade ever, not just today's).
pub async fn ticker_price(Extension(x): Extension<Exchange>, RawQuery(q): RawQuery) -> Answer {
    per_market(&x, q, |x, spec| {
        let last = x.book(&spec.symbol).and_then(|b| b.last_price());
        json!({ "symbol": market_id(spec), "price": number(last.unwrap_or_default()) })
    })
}

pub async fn book_ticker(Extension(x): Extension<Exchange>, RawQuery(q): RawQuery) -> Answer {
    per_market(&x, q, |x, spec| {
        let (bid, ask) = best(x, spec);
        json!({
            "symbol": market_id(spec),
            "bidPrice": bid.0, "bidQty": bid.1,
            "askPrice": ask.0, "askQty": ask.1,
        })
    })
}

/// The best bid and ask (price, quantity), exactly, from the book.
fn best(x: &Exchange, spec: &MarketSpec) -> ((String, String), (String, String)) {
    let zero = || ("0".to_string(), "0".to_string());
    let Some(book) = x.book(&spec.symbol) else {
        return (zero(), zero());
    };
    let level = |l: Option<orderbook::PriceLevel>| {
        l.map_or_else(zero, |l| (number(l.price), number(l.quantity)))
    };
    (level(book.best_bid()), level(book.best_ask()))
}

/// One market's answer for `symbol`, or a list of every market's.
fn per_market(
    x: &Exchange,
    q: Option<String>,
    one: impl Fn(&Exchange, &MarketSpec) -> Value,
) -> Answer {
    let params = query(q)?;
    if params.get("symbol").is_some() {
        let spec = market(x, params.get("symbol"))?;
        return Ok(Json(one(x, &spec)));
    }
    let all = x.market_specs().iter().map(|s| one(x, s)).collect();
    Ok(Json(Value::Array(all)))
}
