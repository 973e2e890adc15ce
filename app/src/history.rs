//! The trader's history: every order they ever placed (with its state, its
//! fills and why it ended) and every trade, newest first, a page at a time
//! to any depth, filtered by market (and orders by state), and downloadable
//! as CSV with the same filters. The server functions read the order
//! history read model and the ledger; both answer only the caller's own.

use leptos::prelude::*;

use crate::api::{FillView, MarketView, OrderHistoryPage, OrderRecordView, TradeHistoryPage};
use crate::boundary::boundary;
use crate::chart::labels::utc_time;
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
    use crate::server::context::current_account;
    use crate::server::history_export::history_filter;
    let (exchange, account) = current_account().await?;
    let filter = history_filter(&exchange, market, state).map_err(UserError::new)?;
    let limit = page_limit(limit)?;
    Ok(exchange.order_history(account, &filter, before, limit))
}

/// A page of the caller's trades, newest first, in `market` (empty is
/// all) from just before the cursor `before`.
#[server(endpoint = "my_trades")]
pub async fn my_trades(
    market: Option<String>,
    before: Option<u64>,
    limit: Option<usize>,
) -> Result<TradeHistoryPage, UserError> {
    use crate::server::context::current_account;
    use crate::server::history_export::history_filter;
    let (exchange, account) = current_account().await?;
    let filter = history_filter(&exchange, market, None).map_err(UserError::new)?;
    let limit = page_limit(limit)?;
    Ok(exchange.trade_history(account, filter.symbol.as_deref(), before, limit))
}

#[cfg(feature = "ssr")]
fn page_limit(limit: Option<usize>) -> Result<usize, UserError> {
    match limit.unwrap_or(PAGE) {
        n @ 1..=PAGE_MAX => Ok(n),
        _ => Err(UserError::new(format!("a page holds 1 to {PAGE_MAX} rows"))),
    }
}

/// Which history is shown.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Tab {
    Orders,
    Trades,
}

/// The history, over the terminal while `open` (the trade panel is too
/// narrow for its columns). While open it asks again every few seconds
/// (and after the account changes) for as many rows as it shows, so states
/// and new orders appear without a reload; an older answer never replaces
/// a newer one. Escape or the close button closes it.
#[component]
pub fn History(
    markets: StoredValue<Vec<MarketView>>,
    changed: Signal<()>,
    open: RwSignal<bool>,
) -> impl IntoView {
    use leptos::html::Button;
    let tab = RwSignal::new(Tab::Orders);
    let market = RwSignal::new(String::new());
    let state = RwSignal::new(String::new());
    let orders = RwSignal::new(Vec::<OrderRecordView>::new());
    let trades = RwSignal::new(Vec::<FillView>::new());
    let next = RwSignal::new(None::<u64>);
    let error = RwSignal::new(None::<String>);
    let asked = StoredValue::new(0u64);
    // Loads from the newest (as many rows as are shown) or, with a cursor,
    // the page older than what is shown.
    let load = move |older: Option<u64>| {
        asked.update_value(|n| *n += 1);
        let ticket = asked.get_value();
        let (tab, market, state) = (
            tab.get_untracked(),
            market.get_untracked(),
            state.get_untracked(),
        );
        let shown = match tab {
            Tab::Orders => orders.with_untracked(Vec::len),
            Tab::Trades => trades.with_untracked(Vec::len),
        };
        let limit = if older.is_some() {
            PAGE
        } else {
            shown.clamp(PAGE, PAGE_MAX)
        };
        leptos::task::spawn_local(async move {
            let market = Some(market);
            let answer = match tab {
                Tab::Orders => my_orders(market, Some(state), older, Some(limit))
                    .await
                    .map(|p| (Some(p.orders), None, p.next)),
                Tab::Trades => my_trades(market, older, Some(limit))
                    .await
                    .map(|p| (None, Some(p.trades), p.next)),
            };
            if asked.get_value() != ticket {
                return;
            }
            match answer {
                Ok((o, t, cursor)) => {
                    error.set(None);
                    keep(orders, o, older.is_some());
                    keep(trades, t, older.is_some());
                    next.set(cursor);
                }
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let reload = move || {
        orders.set(Vec::new());
        trades.set(Vec::new());
        load(None);
    };
    let close_button = NodeRef::<Button>::new();
    Effect::new(move |_| {
        changed.track();
        if open.get() {
            load(None);
            if let Some(b) = close_button.get_untracked() {
                let _ = b.focus();
            }
        }
    });
    Effect::new(move |_| {
        set_interval(
            move || {
                if open.get_untracked() {
                    load(None);
                }
            },
            std::time::Duration::from_secs(3),
        )
    });
    let csv = move || {
        let (file, state) = match tab.get() {
            Tab::Orders => ("orders", state.get()),
            Tab::Trades => ("trades", String::new()),
        };
        format!("/history/{file}.csv?market={}&state={state}", market.get())
    };
    let tab_button = move |which: Tab, label: &'static str| {
        view! {
            <button type="button" role="tab" aria-selected=move || (tab.get() == which).to_string()
                on:click=move |_| { tab.set(which); reload(); }>{label}</button>
        }
    };
    boundary(view! {
        <section class="history" role="dialog" aria-labelledby="history-title" hidden=move || !open.get()
            on:keydown=move |ev| if ev.key() == "Escape" { open.set(false) }>
            <div class="history-head">
                <h3 id="history-title">"History"</h3>
                <button type="button" class="secondary" node_ref=close_button on:click=move |_| open.set(false)>"Close"</button>
            </div>
            <div class="history-bar">
                <div role="tablist" aria-label="History">
                    {tab_button(Tab::Orders, "Orders")}
                    {tab_button(Tab::Trades, "Trades")}
                </div>
                <label for="history-market" class="visually-hidden">"Market"</label>
                <select id="history-market" on:change=move |ev| { market.set(event_target_value(&ev)); reload(); }>
                    <option value="">"All markets"</option>
                    {markets.get_value().into_iter().map(|m| view! {
                        <option value=m.symbol.clone()>{m.symbol.clone()}</option>
                    }).collect_view()}
                </select>
                <label for="history-state" class="visually-hidden">"State"</label>
                <select id="history-state" hidden=move || tab.get() != Tab::Orders
                    on:change=move |ev| { state.set(event_target_value(&ev)); reload(); }>
                    <option value="">"Every state"</option>
                    <option value="open">"Open"</option>
                    <option value="filled">"Filled"</option>
                    <option value="cancelled">"Cancelled"</option>
                    <option value="rejected">"Rejected"</option>
                </select>
                <a class="download" href=csv download="">"Download CSV"</a>
            </div>
            <p class="form-error" role="alert">{move || error.get()}</p>
            <div hidden=move || tab.get() != Tab::Orders>
                <OrderRows rows=orders.into() />
            </div>
            <div hidden=move || tab.get() != Tab::Trades>
                <TradeRows rows=trades.into() />
            </div>
            <button type="button" class="secondary older" hidden=move || next.get().is_none()
                on:click=move |_| load(next.get_untracked())>"Load older"</button>
        </section>
    })
}

#[component]
fn OrderRows(rows: Signal<Vec<OrderRecordView>>) -> impl IntoView {
    boundary(view! {
        <table class="data order-history">
            <thead><tr>
                <th>"Placed (UTC)"</th><th>"Market"</th><th>"Order"</th><th>"Side"</th><th>"Type"</th>
                <th>"Price"</th><th>"Quantity"</th><th>"Filled"</th><th>"Avg price"</th><th>"Fee"</th><th>"State"</th><th>"Fills"</th>
            </tr></thead>
            <tbody>
                {move || rows.get().into_iter().map(|o| {
                    let fee = o.fee.clone().map(|f| format!("{f} {}", o.fee_asset.clone().unwrap_or_default()));
                    let size = o.quantity.clone().or_else(|| o.quote_amount.clone().map(|q| format!("{q} (quote)")));
                    let id = o.order_id.map(|i| i.to_string());
                    let shown_id = id.clone().unwrap_or_else(|| "—".into());
                    let reason = o.reason.clone();
                    view! {
                        <tr data-state=o.state.clone() data-order-id=id.clone()>
                            <td>{utc_time(o.placed_ms)}</td><td>{o.symbol}</td><td>{shown_id}</td>
                            <td class=o.side.clone()>{o.side.clone()}</td>
                            <td>{o.order_type} " " {o.time_in_force}</td>
                            <td class="num">{o.price.unwrap_or_else(|| "market".into())}</td>
                            <td class="num">{size}</td><td class="num filled">{o.filled}</td>
                            <td class="num">{o.average_price}</td><td class="num">{fee}</td>
                            <td class="state" title=o.reason.clone()>
                                {o.state.replace('_', " ")}
                                {reason.map(|r| view! { <span class="reason">{r}</span> })}
                            </td>
                            <td class="fills">{fills(o.fills)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <p class="empty" hidden=move || !rows.with(Vec::is_empty)>"No orders."</p>
    })
}

/// Puts a page into `rows`: after them when it is an older page, instead
/// of them (only if anything changed) when it is the newest.
fn keep<T: PartialEq + Send + Sync + 'static>(
    rows: RwSignal<Vec<T>>,
    page: Option<Vec<T>>,
    older: bool,
) {
    let Some(page) = page else { return };
    if older {
        rows.update(|r| r.extend(page));
    } else if rows.with_untracked(|r| *r != page) {
        rows.set(page);
    }
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

#[component]
fn TradeRows(rows: Signal<Vec<FillView>>) -> impl IntoView {
    boundary(view! {
        <table class="data trade-history">
            <thead><tr>
                <th>"Time (UTC)"</th><th>"Market"</th><th>"Trade"</th><th>"Order"</th><th>"Side"</th><th>"Role"</th>
                <th>"Price"</th><th>"Quantity"</th><th>"Total"</th><th>"Fee"</th>
            </tr></thead>
            <tbody>
                {move || rows.get().into_iter().map(|t| view! {
                    <tr data-trade-id=t.trade_id.to_string()>
                        <td>{utc_time(t.at_ms)}</td><td>{t.symbol}</td><td>{t.trade_id}</td><td>{t.order_id}</td>
                        <td class=t.side.clone()>{t.side.clone()}</td><td>{t.role}</td>
                        <td class="num">{t.price}</td><td class="num">{t.quantity}</td><td class="num">{t.quote_amount}</td>
                        <td class="num">{format!("{} {}", t.fee, t.fee_asset)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        <p class="empty" hidden=move || !rows.with(Vec::is_empty)>"No trades."</p>
    })
}
