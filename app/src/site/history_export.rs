//! The trader's history as CSV files to download: every order, and every
//! trade, of the account whose session cookie comes with the request,
//! newest first, filtered like the history on the page and by a time
//! range. The columns are listed in docs/trading.md; amounts are exact
//! decimals, times RFC 3339 in UTC to the millisecond.
//!
//! A file is streamed a chunk of rows at a time, each chunk read under the
//! history's lock only while it is copied, so a long history never holds
//! the lock others wait on, nor the whole file in memory. A download that
//! would hold more than [`MAX_ROWS`] rows is refused (400, saying how many)
//! rather than cut short: narrow the range or the market. Each download
//! spends [`EXPORT_WEIGHT`] of its address's request weight first.

use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Query};
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::trader::Trader;
use crate::api::{FillView, OrderRecordView};
use crate::server::OrderFilter;
use crate::server::request_limits::{EXPORT_WEIGHT, RequestLimits};
use crate::server::{Exchange, ExchangeError};
use crate::time_format::rfc3339;

/// The most rows one file holds.
pub const MAX_ROWS: usize = 100_000;
/// Rows read and sent at a time.
const CHUNK: usize = 1_000;

/// The columns of `orders.csv`, in order.
pub const ORDER_COLUMNS: [&str; 19] = [
    "placed_at",
    "updated_at",
    "market",
    "order_id",
    "side",
    "type",
    "time_in_force",
    "price",
    "quantity",
    "quote_amount",
    "filled",
    "average_price",
    "fee",
    "fee_asset",
    "state",
    "reason",
    "trigger",
    "trigger_price",
    "triggered_at",
];

/// The columns of `trades.csv`, in order.
pub const TRADE_COLUMNS: [&str; 11] = [
    "time",
    "market",
    "trade_id",
    "order_id",
    "side",
    "role",
    "price",
    "quantity",
    "quote_amount",
    "fee",
    "fee_asset",
];

/// What the download asks for: `?market=BTC-USD&state=filled&from_ms=…&to_ms=…`,
/// all optional (empty is all): orders placed, or trades made, from
/// `from_ms` up to but not including `to_ms` (milliseconds since the Unix
/// epoch).
#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    pub market: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub from_ms: Option<u64>,
    #[serde(default)]
    pub to_ms: Option<u64>,
}

/// Which file.
#[derive(Clone, Copy, Debug)]
pub enum Export {
    Orders,
    Trades,
}

/// Answers a download: the CSV, or 400 for an unknown market or state
/// (without a session, [`Trader`] answers 401).
pub async fn serve(
    export: Export,
    Extension(exchange): Extension<Exchange>,
    Trader { account, .. }: Trader,
    extensions: Extensions,
    Query(query): Query<ExportQuery>,
) -> Response {
    if let Some(refused) = over_weight(&extensions, EXPORT_WEIGHT) {
        return refused;
    }
    let bad = |message: String| (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response();
    let filter = match history_filter(&exchange, query.market, query.state) {
        Ok(f) => f,
        Err(message) => return bad(message),
    };
    let range = query.from_ms.unwrap_or(0)..query.to_ms.unwrap_or(u64::MAX);
    if range.is_empty() {
        return bad("from_ms must come before to_ms".to_string());
    }
    let rows = match export {
        Export::Orders => exchange.count_orders(account, &filter, &range),
        Export::Trades => exchange.count_trades(account, filter.symbol.as_deref(), &range),
    };
    if rows > MAX_ROWS {
        return bad(format!(
            "this download would hold {rows} rows, more than the {MAX_ROWS} one file holds: \
             narrow it with from_ms and to_ms, or a market"
        ));
    }
    let name = match export {
        Export::Orders => "orders",
        Export::Trades => "trades",
    };
    let rows = Rows {
        export,
        exchange,
        account,
        filter,
        range,
        cursor: None,
        header: true,
        done: false,
    };
    // A chunk that cannot be read ends the body with an error, so the
    // download is broken off where it stands, never passed off as whole.
    let body = Body::from_stream(futures::stream::unfold(rows, |mut rows| async move {
        let chunk = rows.next().await?;
        Some((chunk.map(Bytes::from), rows))
    }));
    let disposition = format!("attachment; filename=\"{name}.csv\"");
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Spends `weight` of the asking address's request weight and costly
/// reads' burst (see `RequestLimits::costly`); over either, the 429 to
/// answer instead.
pub fn over_weight(extensions: &Extensions, weight: u32) -> Option<Response> {
    let limits = extensions.get::<RequestLimits>()?;
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |c| c.0.ip());
    let over = limits.costly(address, weight, Instant::now()).err()?;
    let retry = HeaderValue::from(over.retry_after_s());
    let mut answer = (StatusCode::TOO_MANY_REQUESTS, format!("{over}\n")).into_response();
    answer.headers_mut().insert(header::RETRY_AFTER, retry);
    Some(answer)
}

/// A download under way: where it has got to.
struct Rows {
    export: Export,
    exchange: Exchange,
    account: orderbook::AccountId,
    filter: OrderFilter,
    /// Orders placed, or trades made, in this range (milliseconds).
    range: Range<u64>,
    /// The history's cursor for the next (older) chunk.
    cursor: Option<u64>,
    header: bool,
    done: bool,
}

impl Rows {
    /// The next chunk of the file, if any is left: newest first, each row
    /// read from the history as it stands when its chunk is read.
    async fn next(&mut self) -> Option<Result<String, ExchangeError>> {
        if self.done {
            return None;
        }
        let mut out = String::new();
        if std::mem::take(&mut self.header) {
            match self.export {
                Export::Orders => line(&mut out, &ORDER_COLUMNS),
                Export::Trades => line(&mut out, &TRADE_COLUMNS),
            }
        }
        let (times, next) = match self.export {
            Export::Orders => {
                let page = match self
                    .exchange
                    .order_history(self.account, &self.filter, self.cursor, CHUNK)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => return Some(Err(e)),
                };
                let kept: Vec<_> = page
                    .orders
                    .into_iter()
                    .filter(|o| self.range.contains(&o.placed_ms))
                    .collect();
                order_rows(&mut out, &kept);
                let oldest = kept.last().map(|o| o.placed_ms);
                (oldest, page.next)
            }
            Export::Trades => {
                let symbol = self.filter.symbol.as_deref();
                let page = match self
                    .exchange
                    .trade_history(self.account, symbol, self.cursor, CHUNK)
                    .await
                {
                    Ok(page) => page,
                    Err(e) => return Some(Err(e)),
                };
                let kept: Vec<_> = page
                    .trades
                    .into_iter()
                    .filter(|t| self.range.contains(&t.at_ms))
                    .collect();
                trade_rows(&mut out, &kept);
                (kept.last().map(|t| t.at_ms), page.next)
            }
        };
        // Newest first: once a chunk reaches back before the range, or the
        // history ends, there is nothing more to send.
        let before_range = times.is_some_and(|t| t <= self.range.start) && self.range.start > 0;
        self.cursor = next;
        self.done = next.is_none() || before_range;
        Some(Ok(out))
    }
}

/// The states a history can be filtered by.
pub const STATES: [&str; 4] = ["open", "filled", "cancelled", "rejected"];

/// Reads a history filter: empty fields are "all"; a market must be
/// listed and a state one of [`STATES`].
pub fn history_filter(
    exchange: &Exchange,
    market: Option<String>,
    state: Option<String>,
) -> Result<OrderFilter, String> {
    let symbol = market.filter(|m| !m.is_empty());
    if let Some(m) = &symbol
        && exchange.market_spec(m).is_none()
    {
        return Err(format!("there is no market {m}"));
    }
    let state = state.filter(|s| !s.is_empty());
    if let Some(s) = &state
        && !STATES.contains(&s.as_str())
    {
        return Err(format!("choose a state of {}", STATES.join(", ")));
    }
    Ok(OrderFilter { symbol, state })
}

/// One CSV field: quoted when it holds a comma, a quote or a line break.
fn field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

fn line(out: &mut String, fields: &[&str]) {
    let fields: Vec<String> = fields.iter().map(|f| field(f)).collect();
    out.push_str(&fields.join(","));
    out.push_str("\r\n");
}

/// Rows of `orders.csv`.
fn order_rows(out: &mut String, orders: &[OrderRecordView]) {
    for o in orders {
        let id = o.order_id.map(|i| i.to_string()).unwrap_or_default();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        line(
            out,
            &[
                &rfc3339(o.placed_ms),
                &rfc3339(o.updated_ms),
                &o.symbol,
                &id,
                &o.side,
                &o.order_type,
                &opt(&o.time_in_force),
                &opt(&o.price),
                &opt(&o.quantity),
                &opt(&o.quote_amount),
                &o.filled,
                &opt(&o.average_price),
                &opt(&o.fee),
                &opt(&o.fee_asset),
                &o.state,
                &opt(&o.reason),
                &opt(&o.trigger),
                &opt(&o.trigger_price),
                &o.triggered_ms.map(rfc3339).unwrap_or_default(),
            ],
        );
    }
}

/// Rows of `trades.csv`.
fn trade_rows(out: &mut String, trades: &[FillView]) {
    for t in trades {
        line(
            out,
            &[
                &rfc3339(t.at_ms),
                &t.symbol,
                &t.trade_id.to_string(),
                &t.order_id.to_string(),
                &t.side,
                &t.role,
                &t.price,
                &t.quantity,
                &t.quote_amount,
                &t.fee,
                &t.fee_asset,
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reason with a comma and a quote stays one field.
    #[test]
    fn fields_are_quoted_only_when_they_must_be() {
        let mut out = String::new();
        line(&mut out, &["a", "b, c", "say \"hi\"", ""]);
        assert_eq!(out, "a,\"b, c\",\"say \"\"hi\"\"\",\r\n");
    }
}
