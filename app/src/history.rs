//! The trader's history: every order they ever placed (with its state, its
//! fills and why it ended) and every trade, newest first, a page at a time
//! to any depth, filtered by market (and orders by state), and downloadable
//! as CSV with the same filters. Both the server functions (the JSON API)
//! and the page read the order history read model and the ledger, and
//! answer only the caller's own.
//!
//! The page, `/history`, is plain HTML the server renders with no script
//! at all: its filters are a GET form, its older pages and downloads are
//! links. Built into the terminal's bundle it cost 32 KB of gzipped WASM
//! (8% of the bundle's budget) for tables a trader reads, not trades from.

use leptos::prelude::*;

use crate::api::{OrderHistoryPage, TradeHistoryPage};
use crate::error::UserError;

/// Rows a page holds unless asked for fewer.
pub const PAGE: usize = 50;
/// The most rows one request may ask for.
pub const PAGE_MAX: usize = 500;

/// A page of the caller's orders, newest first: those of `market` and
/// `state` (empty is all) from just before the cursor `before`.
#[server(endpoint = "my_orders")]
pub async fn my_orders(
    market: Option<String>,
    state: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
) -> Result<OrderHistoryPage, UserError> {
    use crate::server::request_limits::HISTORY_WEIGHT;
    use crate::site::context::{current_account, spend_weight};
    use crate::site::history_export::history_filter;
    spend_weight(HISTORY_WEIGHT).await?;
    let (exchange, account) = current_account()?;
    let filter = history_filter(&exchange, market, state).map_err(UserError::new)?;
    let limit = page_limit(limit)?;
    Ok(exchange
        .order_history(account, &filter, before, limit)
        .await?)
}

/// A page of the caller's trades, newest first, in `market` (empty is
/// all) from just before the cursor `before`.
#[server(endpoint = "my_trades")]
pub async fn my_trades(
    market: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
) -> Result<TradeHistoryPage, UserError> {
    use crate::server::request_limits::HISTORY_WEIGHT;
    use crate::site::context::{current_account, spend_weight};
    use crate::site::history_export::history_filter;
    spend_weight(HISTORY_WEIGHT).await?;
    let (exchange, account) = current_account()?;
    let filter = history_filter(&exchange, market, None).map_err(UserError::new)?;
    let limit = page_limit(limit)?;
    Ok(exchange
        .trade_history(account, filter.symbol.as_deref(), before, limit)
        .await?)
}

#[cfg(feature = "ssr")]
fn page_limit(limit: Option<usize>) -> Result<usize, UserError> {
    match limit.unwrap_or(PAGE) {
        n @ 1..=PAGE_MAX => Ok(n),
        _ => Err(UserError::new(format!("a page holds 1 to {PAGE_MAX} rows"))),
    }
}

#[cfg(feature = "ssr")]
pub use page::serve;

/// The server-rendered history page.
#[cfg(feature = "ssr")]
mod page {
    use axum::Extension;
    use axum::extract::Query;
    use axum::http::StatusCode;
    use axum::response::Response;
    use leptos::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::PAGE;
    use crate::api::{FillView, OrderRecordView};
    use crate::server::OrderFilter;
    use crate::server::{Exchange, ExchangeError};
    use crate::site::history_export::history_filter;
    use crate::site::plain_page::page;
    use crate::site::trader::Trader;
    use crate::time_format::utc_time;

    /// What the page is asked for, and what its links ask for:
    /// `/history?tab=trades&market=BTC-USD&state=filled&before=40`, every
    /// field optional (the orders of every market, newest first).
    #[derive(Clone, Debug, Default, Deserialize, Serialize)]
    pub struct HistoryQuery {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tab: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        market: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        before: Option<String>,
    }

    /// Which history the page shows.
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Tab {
        Orders,
        Trades,
    }

    impl Tab {
        fn name(self) -> &'static str {
            match self {
                Tab::Orders => "orders",
                Tab::Trades => "trades",
            }
        }
    }

    /// What one page shows, read and checked from its query.
    struct Shown {
        tab: Tab,
        filter: OrderFilter,
        before: Option<u64>,
    }

    impl Shown {
        fn read(exchange: &Exchange, q: HistoryQuery) -> Result<Shown, String> {
            let tab = match q.tab.as_deref().unwrap_or_default() {
                "" | "orders" => Tab::Orders,
                "trades" => Tab::Trades,
                other => {
                    return Err(format!(
                        "there is no history tab {other:?}: choose orders or trades"
                    ));
                }
            };
            let state = q.state.filter(|_| tab == Tab::Orders);
            let filter = history_filter(exchange, q.market, state)?;
            let before = match q.before.as_deref().unwrap_or_default() {
                "" => None,
                b => Some(
                    b.parse::<u64>()
                        .map_err(|_| format!("the page cursor {b:?} is not a number"))?,
                ),
            };
            Ok(Shown {
                tab,
                filter,
                before,
            })
        }

        /// The address of this page with another tab, filter or cursor.
        fn link(&self, tab: Tab, before: Option<u64>) -> String {
            let query = HistoryQuery {
                tab: Some(tab.name().to_string()),
                market: self.filter.symbol.clone(),
                state: self.filter.state.clone().filter(|_| tab == Tab::Orders),
                before: before.map(|b| b.to_string()),
            };
            format!(
                "/history?{}",
                serde_urlencoded::to_string(&query).unwrap_or_default()
            )
        }

        /// The CSV of everything this page's filter holds.
        fn download(&self) -> String {
            let query = HistoryQuery {
                market: self.filter.symbol.clone(),
                state: self.filter.state.clone(),
                ..HistoryQuery::default()
            };
            let file = self.tab.name();
            format!(
                "/history/{file}.csv?{}",
                serde_urlencoded::to_string(&query).unwrap_or_default()
            )
        }
    }

    /// Answers `/history`: the caller's page (200), a page saying to log in
    /// (401 without a session), or one saying what is wrong with the address
    /// (400). Never cached: it is one trader's own. Each page spends
    /// `HISTORY_WEIGHT` of the address's request weight first (429 over it).
    pub async fn serve(
        Extension(exchange): Extension<Exchange>,
        trader: Option<Trader>,
        extensions: axum::http::Extensions,
        Query(query): Query<HistoryQuery>,
    ) -> Response {
        use crate::server::request_limits::HISTORY_WEIGHT;
        if let Some(refused) = crate::site::history_export::over_weight(&extensions, HISTORY_WEIGHT)
        {
            return refused;
        }
        let (status, body) = match trader.map(|t| t.account) {
            None => (
                StatusCode::UNAUTHORIZED,
                view! {
                    <p role="alert">"Log in on the trading terminal to see your history."</p>
                }
                .into_any(),
            ),
            Some(account) => match Shown::read(&exchange, query) {
                Err(message) => (
                    StatusCode::BAD_REQUEST,
                    view! {
                        <p role="alert">{message}</p>
                        <p><a href="/history">"Show all your orders"</a></p>
                    }
                    .into_any(),
                ),
                Ok(shown) => match history(&exchange, account, &shown).await {
                    Ok(body) => (StatusCode::OK, body),
                    // The store could not be read just now.
                    Err(e) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        view! { <p role="alert">{e.to_string()}</p> }.into_any(),
                    ),
                },
            },
        };
        page(status, "History", "History", body)
    }

    /// Tabs, the filter form, the rows of one page, and the way to older ones.
    async fn history(
        exchange: &Exchange,
        account: orderbook::AccountId,
        shown: &Shown,
    ) -> Result<AnyView, ExchangeError> {
        let (rows, next) = match shown.tab {
            Tab::Orders => {
                let page = exchange
                    .order_history(account, &shown.filter, shown.before, PAGE)
                    .await?;
                (order_rows(page.orders), page.next)
            }
            Tab::Trades => {
                let symbol = shown.filter.symbol.as_deref();
                let page = exchange
                    .trade_history(account, symbol, shown.before, PAGE)
                    .await?;
                (trade_rows(page.trades), page.next)
            }
        };
        let tab = |which: Tab, label: &'static str| {
            let current = (shown.tab == which).then_some("page");
            view! { <a href=shown.link(which, None) aria-current=current>{label}</a> }
        };
        let market = shown.filter.symbol.clone().unwrap_or_default();
        let state = shown.filter.state.clone().unwrap_or_default();
        let markets = exchange
            .markets()
            .into_iter()
            .map(|m| {
                let selected = m.symbol == market;
                let symbol = m.symbol.clone();
                view! { <option value=m.symbol selected=selected>{symbol}</option> }
            })
            .collect_view();
        let states = [
            ("open", "Open"),
            ("filled", "Filled"),
            ("cancelled", "Cancelled"),
            ("rejected", "Rejected"),
        ]
        .map(
            |(value, label)| view! { <option value=value selected=state == value>{label}</option> },
        );
        let newest = shown.before.is_some().then(|| {
            view! {
                <a href=shown.link(shown.tab, None)>"Newest"</a>
            }
        });
        let older =
            next.map(|n| view! { <a href=shown.link(shown.tab, Some(n)) rel="next">"Older"</a> });
        Ok(view! {
            <nav class="history-tabs" aria-label="History">
                {tab(Tab::Orders, "Orders")}
                {tab(Tab::Trades, "Trades")}
            </nav>
            <form class="history-bar" method="get" action="/history">
                <input type="hidden" name="tab" value=shown.tab.name() />
                <label>"Market " <select name="market">
                    <option value="">"All markets"</option>
                    {markets}
                </select></label>
                {(shown.tab == Tab::Orders).then(|| view! {
                    <label>"State " <select name="state">
                        <option value="">"Every state"</option>
                        {states}
                    </select></label>
                })}
                <button type="submit">"Show"</button>
                <a class="download" href=shown.download() download="">"Download CSV"</a>
            </form>
            {rows}
            <nav class="pages" aria-label="Pages">{newest}{older}</nav>
        }
        .into_any())
    }

    fn order_rows(rows: Vec<OrderRecordView>) -> AnyView {
        if rows.is_empty() {
            return view! { <p class="empty">"No orders."</p> }.into_any();
        }
        view! {
            <table class="data order-history">
                <thead><tr>
                    <th>"Placed (UTC)"</th><th>"Market"</th><th>"Order"</th><th>"Side"</th><th>"Type"</th>
                    <th>"Price"</th><th>"Quantity"</th><th>"Filled"</th><th>"Avg price"</th><th>"Fee"</th><th>"State"</th><th>"Fills"</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|o| {
                        let fee = o.fee.clone().map(|f| format!("{f} {}", o.fee_asset.clone().unwrap_or_default()));
                        let size = o.quantity.clone().or_else(|| o.quote_amount.clone().map(|q| format!("{q} (quote)")));
                        let id = o.order_id.map(|i| i.to_string());
                        let shown_id = id.clone().unwrap_or_else(|| "—".into());
                        let reason = o.reason.clone();
                        let kind = kind(&o);
                        view! {
                            <tr data-state=o.state.clone() data-order-id=id>
                                <td>{utc_time(o.placed_ms)}</td><td>{o.symbol}</td><td>{shown_id}</td>
                                <td class=o.side.clone()>{o.side.clone()}</td>
                                <td>{kind} " " {o.time_in_force}</td>
                                <td class="num">{o.price.unwrap_or_else(|| "market".into())}</td>
                                <td class="num">{size}</td><td class="num filled">{o.filled}</td>
                                <td class="num">{o.average_price}</td><td class="num">{fee}</td>
                                <td class="state">
                                    {o.state.replace('_', " ")}
                                    {reason.map(|r| view! { <span class="reason">{r}</span> })}
                                </td>
                                <td class="fills">{fills(o.fills)}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    }

    /// An order's type, with the trigger it waited for (and whether it
    /// fired): "stop market at 105 (fired)".
    fn kind(o: &OrderRecordView) -> String {
        let Some(trigger) = &o.trigger else {
            return o.order_type.clone();
        };
        let price = o.trigger_price.clone().unwrap_or_default();
        let fired = if o.triggered_ms.is_some() {
            " (fired)"
        } else {
            ""
        };
        format!(
            "{} {} at {price}{fired}",
            trigger.replace('_', "-"),
            o.order_type
        )
    }

    /// An order's fills, folded away under their count.
    fn fills(fills: Vec<FillView>) -> Option<impl IntoView> {
        let count = match fills.len() {
            0 => return None,
            1 => "1 fill".to_string(),
            n => format!("{n} fills"),
        };
        Some(view! {
            <details>
                <summary>{count}</summary>
                <ul>
                    {fills.into_iter().map(|f| view! {
                        <li data-trade-id=f.trade_id.to_string()>
                            {format!("{} at {} ({}), fee {} {}", f.quantity, f.price, f.role, f.fee, f.fee_asset)}
                        </li>
                    }).collect_view()}
                </ul>
            </details>
        })
    }

    fn trade_rows(rows: Vec<FillView>) -> AnyView {
        if rows.is_empty() {
            return view! { <p class="empty">"No trades."</p> }.into_any();
        }
        view! {
            <table class="data trade-history">
                <thead><tr>
                    <th>"Time (UTC)"</th><th>"Market"</th><th>"Trade"</th><th>"Order"</th><th>"Side"</th><th>"Role"</th>
                    <th>"Price"</th><th>"Quantity"</th><th>"Total"</th><th>"Fee"</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|t| view! {
                        <tr data-trade-id=t.trade_id.to_string()>
                            <td>{utc_time(t.at_ms)}</td><td>{t.symbol}</td><td>{t.trade_id}</td><td>{t.order_id}</td>
                            <td class=t.side.clone()>{t.side.clone()}</td><td>{t.role}</td>
                            <td class="num">{t.price}</td><td class="num">{t.quantity}</td><td class="num">{t.quote_amount}</td>
                            <td class="num">{format!("{} {}", t.fee, t.fee_asset)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    }
}
