//! The trader's history as CSV files to download: every order, and every
//! trade, of the account whose session cookie comes with the request,
//! newest first, filtered like the history on the page. The columns are
//! listed in docs/trading.md; amounts are exact decimals, times RFC 3339 in UTC
//! to the millisecond.

use axum::Extension;
use axum::extract::Query;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::trader::Trader;
use crate::api::{FillView, OrderRecordView};
use crate::server::Exchange;
use crate::server::OrderFilter;
use crate::time_format::rfc3339;

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

/// What the download asks for: `?market=BTC-USD&state=filled`, both
/// optional (empty is all).
#[derive(Debug, Default, Deserialize)]
pub struct ExportQuery {
    #[serde(default)]
    pub market: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
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
    Query(query): Query<ExportQuery>,
) -> Response {
    let filter = match history_filter(&exchange, query.market, query.state) {
        Ok(f) => f,
        Err(message) => return (StatusCode::BAD_REQUEST, format!("{message}\n")).into_response(),
    };
    let (name, body) = match export {
        Export::Orders => ("orders", orders_csv(&exchange.all_orders(account, &filter))),
        Export::Trades => {
            let trades =
                exchange.trade_history(account, filter.symbol.as_deref(), None, usize::MAX);
            ("trades", trades_csv(&trades.trades))
        }
    };
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

pub fn orders_csv(orders: &[OrderRecordView]) -> String {
    let mut out = String::new();
    line(&mut out, &ORDER_COLUMNS);
    for o in orders {
        let id = o.order_id.map(|i| i.to_string()).unwrap_or_default();
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        line(
            &mut out,
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
    out
}

pub fn trades_csv(trades: &[FillView]) -> String {
    let mut out = String::new();
    line(&mut out, &TRADE_COLUMNS);
    for t in trades {
        line(
            &mut out,
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
    out
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
