//! The trader's screen: order entry, open orders, balances and fills, with
//! the server functions behind them. Every server function checks the
//! session, and acts only on the caller's own orders.

use leptos::prelude::*;

use crate::account::{
    AuthForms, ClaimFaucet, LogIn, LogOut, LogOutEverywhere, SignUp, error_for, my_account,
    submit_to,
};
use crate::api::{AccountView, BalanceView, FillView, MarketView, OpenOrderView, OrderForm};
use crate::boundary::boundary;
use crate::codec::Json;
use crate::error::UserError;
use crate::live_market::{AccountFeed, LevelPick};
use leptos::server_fn::ServerFn;

/// Places an order from the order form; answers with a sentence saying
/// what happened to it.
#[server(endpoint = "place_order")]
pub async fn place_order(#[server(flatten)] form: OrderForm) -> Result<String, UserError> {
    use crate::server::orders::{describe, field_error};
    use crate::site::context::{count_new_order, current_account};
    let (exchange, account) = current_account()?;
    count_new_order(account)?;
    let order = form.parse()?;
    let symbol = form.symbol;
    let outcome = exchange.place(account, &symbol, order).await.map_err(|e| {
        field_error(
            e,
            order.quote_amount.is_some(),
            exchange.market_spec(&symbol),
        )
    })?;
    Ok(describe(&outcome, exchange.market_spec(&symbol)))
}

/// Cancels one of the caller's open orders.
#[server(endpoint = "cancel_order")]
pub async fn cancel_order(symbol: String, order_id: u64) -> Result<String, UserError> {
    use crate::site::context::current_account;
    let (exchange, account) = current_account()?;
    exchange.cancel(account, &symbol, order_id).await?;
    Ok(format!("Order {order_id} cancelled."))
}

/// Changes one of the caller's open orders: a new price and/or a new open
/// quantity (a smaller quantity at the same price keeps its place in the
/// queue; anything else goes to the back, and a price that crosses trades),
/// and for a stop or take-profit waiting for its trigger a new trigger
/// price.
#[server(endpoint = "amend_order")]
pub async fn amend_order(
    symbol: String,
    order_id: u64,
    price: Option<String>,
    quantity: Option<String>,
    trigger_price: Option<String>,
) -> Result<String, UserError> {
    use crate::server::orders::{amendment, describe_amendment, field_error};
    use crate::site::context::current_account;
    let (exchange, account) = current_account()?;
    let (price, quantity, trigger_price) = amendment(&price, &quantity, &trigger_price)?;
    let outcome = exchange
        .amend(account, &symbol, order_id, price, quantity, trigger_price)
        .await
        .map_err(|e| field_error(e, false, exchange.market_spec(&symbol)))?;
    Ok(describe_amendment(&outcome, exchange.market_spec(&symbol)))
}

/// Cancels every open order of the caller's, in one market or (with no
/// market) in all; answers how many.
#[server(endpoint = "cancel_all")]
pub async fn cancel_all(symbol: Option<String>) -> Result<String, UserError> {
    use crate::site::context::current_account;
    let (exchange, account) = current_account()?;
    let symbol = symbol.filter(|s| !s.is_empty());
    let n = exchange.cancel_all(account, symbol.as_deref()).await?;
    let orders = if n == 1 { "order" } else { "orders" };
    Ok(match symbol {
        Some(s) => format!("Cancelled {n} {orders} on {s}."),
        None => format!("Cancelled {n} {orders}."),
    })
}

/// The whole trading side of the terminal: log-in forms for visitors; for a
/// logged-in trader their account bar, order entry, open orders, balances
/// and fills. The account data is fetched again after every action and
/// once a second, without touching what the trader is typing. A price
/// picked in the book goes into the order form.
#[component]
pub fn TraderPanel(
    pick: RwSignal<Option<LevelPick>>,
    markets: StoredValue<Vec<MarketView>>,
) -> impl IntoView {
    let sign_up = ServerAction::<SignUp>::new();
    let log_in = ServerAction::<LogIn>::new();
    let log_out = ServerAction::<LogOut>::new();
    let log_out_everywhere = ServerAction::<LogOutEverywhere>::new();
    let faucet = ServerAction::<ClaimFaucet>::new();
    let place = ServerAction::<PlaceOrder>::new();
    let cancel = ServerAction::<CancelOrder>::new();
    let cancel_all = ServerAction::<CancelAll>::new();
    let amend = ServerAction::<AmendOrder>::new();
    // The first paint has the account of the session cookie (read while
    // the server renders); the browser then asks again after every action,
    // takes the feed's pushes in between, and shows a change only when
    // there is one.
    let first = SharedValue::<_, Json>::new_with_encoding(first_account).into_inner();
    let account = RwSignal::new(first);
    // Only the newest request's answer is shown: an older one still on
    // its way (a poll sent before an order) must not undo a newer one.
    let asked = StoredValue::new(0u64);
    let refresh = move || {
        asked.update_value(|n| *n += 1);
        let ticket = asked.get_value();
        leptos::task::spawn_local(async move {
            if let Ok(now) = my_account().await
                && asked.get_value() == ticket
                && account.with_untracked(|a| *a != now)
            {
                account.set(now);
            }
        });
    };
    // Effects run only in the browser: ask there, never on the server.
    // After an action the answer is asked for at once; everything else
    // (fills of resting orders, stops that fire, settlement) comes over the
    // page's feed. A new session needs a new socket: it names the account.
    let feed = use_context::<AccountFeed>();
    let sessions = [
        sign_up.version(),
        log_in.version(),
        log_out.version(),
        log_out_everywhere.version(),
    ];
    let orders = [
        faucet.version(),
        place.version(),
        cancel.version(),
        cancel_all.version(),
        amend.version(),
    ];
    Effect::new(move |_| {
        for version in sessions.iter().chain(&orders) {
            version.track();
        }
        refresh();
    });
    Effect::new(move |before: Option<usize>| {
        let now = sessions.iter().map(|v| v.get()).sum();
        if before.is_some_and(|b| b != now)
            && let Some(feed) = feed
        {
            feed.restart();
        }
        now
    });
    let notice = RwSignal::new(None::<String>);
    if let Some(feed) = feed {
        Effect::new(move |_| match feed.latest.get() {
            Some(Some(now)) if account.with_untracked(|a| a.as_ref() != Some(&now)) => {
                account.set(Some(now));
            }
            // The socket's session ended: ask whether this page has one.
            Some(None) => refresh(),
            _ => {}
        });
        Effect::new(move |_| {
            let Some(f) = feed.fill.get() else { return };
            // A fill the panel already lists (the answer to the trader's own
            // order came first) needs no notice.
            let known = account.with_untracked(|a| {
                a.as_ref().is_some_and(|a| {
                    a.fills
                        .iter()
                        .any(|k| k.trade_id == f.trade_id && k.symbol == f.symbol)
                })
            });
            if known {
                return;
            }
            let verb = if f.side == "buy" { "Bought" } else { "Sold" };
            let base = f.symbol.split('-').next().unwrap_or_default();
            let text = format!(
                "{verb} {} {base} at {} (order {}, {})",
                f.quantity, f.price, f.order_id, f.role
            );
            notice.set(Some(text.clone()));
            set_timeout(
                move || {
                    if notice.get_untracked().as_deref() == Some(text.as_str()) {
                        notice.set(None);
                    }
                },
                std::time::Duration::from_secs(8),
            );
        });
    }
    let view_of = move || account.get();
    let logged_in = move || account.with(Option::is_some);

    boundary(view! {
            <Show when=logged_in fallback=move || view! { <AuthForms sign_up log_in /> }>
                <div class="account-bar">
                    <span>"Signed in as " <strong data-testid="username">{move || view_of().map(|v| v.username)}</strong></span>
                    <form action=ClaimFaucet::url() method="post" on:submit=move |ev| submit_to(faucet, &ev)>
                        <button type="submit">"Get demo funds"</button>
                    </form>
                    <a class="history-link" href="/history" target="_blank">"History"</a>
                    <a class="history-link" href="/keys" target="_blank">"API keys"</a>
                    <form action=LogOut::url() method="post" on:submit=move |ev| submit_to(log_out, &ev)>
                        <button type="submit" class="secondary">"Log out"</button>
                    </form>
                    <form action=LogOutEverywhere::url() method="post" on:submit=move |ev| submit_to(log_out_everywhere, &ev)>
                        <button type="submit" class="secondary" title="End every session of this account, on every device">
                            "Log out everywhere"
                        </button>
                    </form>
                </div>
                <p class="form-error" role="alert">{error_for(faucet.value(), None)}</p>
                <p class="fill-notice" role="status" data-testid="fill-notice" hidden=move || notice.with(Option::is_none)>
                    {move || notice.get()}
                </p>
                <OrderEntry place markets pick />
                <Balances rows=Signal::derive(move || view_of().map(|v| v.balances).unwrap_or_default()) />
                <OpenOrders cancel cancel_all amend markets rows=Signal::derive(move || view_of().map(|v| v.open_orders).unwrap_or_default()) />
                <Fills rows=Signal::derive(move || view_of().map(|v| v.fills).unwrap_or_default()) />
            </Show>
    })
}

/// The account of the page's session cookie, as the page paints it first.
#[cfg(feature = "ssr")]
fn first_account() -> Option<AccountView> {
    crate::site::context::account_view_now()
}

/// In the browser the first paint's account comes with the page.
#[cfg(not(feature = "ssr"))]
fn first_account() -> Option<AccountView> {
    None
}

/// The order form. Fields the chosen order type does not use are hidden.
/// A level picked in the book makes it a limit order at that price, in
/// that market, and moves on to the quantity.
#[component]
fn OrderEntry(
    place: ServerAction<PlaceOrder>,
    markets: StoredValue<Vec<MarketView>>,
    pick: RwSignal<Option<LevelPick>>,
) -> impl IntoView {
    use leptos::html::{Input, Select};
    use orderbook::OrderKind;
    let order_kind = RwSignal::new(OrderKind::Limit);
    let (price_input, quantity_input) = (NodeRef::<Input>::new(), NodeRef::<Input>::new());
    let (market_select, type_select) = (NodeRef::<Select>::new(), NodeRef::<Select>::new());
    Effect::new(move |_| {
        let Some(picked) = pick.get() else { return };
        if let Some(select) = market_select.get() {
            select.set_value(&picked.symbol);
        }
        if let Some(select) = type_select.get() {
            select.set_value(OrderKind::Limit.as_str());
        }
        order_kind.set(OrderKind::Limit);
        if let Some(input) = price_input.get() {
            input.set_value(&picked.price);
        }
        if let Some(input) = quantity_input.get() {
            let _ = input.focus();
        }
    });
    let side = RwSignal::new("buy".to_string());
    let is_market = move || order_kind.get().is_market();
    let has_trigger = move || order_kind.get().has_trigger();
    let result = place.value();
    let ok = move || result.get().and_then(Result::ok);
    let field = move |name: &'static str,
                      label: &'static str,
                      hidden: Signal<bool>,
                      node: NodeRef<Input>| {
        let id = format!("order-{name}");
        let error_id = format!("{id}-error");
        view! {
            <div class="field" hidden=move || hidden.get()>
                <label for=id.clone()>{label}</label>
                <input id=id name=name node_ref=node inputmode="decimal" autocomplete="off" aria-describedby=error_id.clone()
                    aria-invalid=move || error_for(result, Some(name))().is_some().to_string() />
                <p id=error_id class="field-error" role="alert">{error_for(result, Some(name))}</p>
            </div>
        }
    };
    boundary(view! {
        <section class="order-entry" aria-labelledby="order-entry-title">
            <h3 id="order-entry-title">"Place an order"</h3>
            <form action=PlaceOrder::url() method="post" on:submit=move |ev| submit_to(place, &ev)>
                <div class="field">
                    <label for="order-symbol">"Market"</label>
                    <select id="order-symbol" name="symbol" node_ref=market_select>
                        {markets
                            .get_value()
                            .into_iter()
                            .map(|m| view! { <option value=m.symbol.clone()>{m.symbol.clone()}</option> })
                            .collect_view()}
                    </select>
                </div>
                <fieldset class="side-choice">
                    <legend>"Side"</legend>
                    <label class="buy">
                        <input type="radio" name="side" value="buy" checked on:change=move |_| side.set("buy".into()) />
                        "Buy"
                    </label>
                    <label class="sell">
                        <input type="radio" name="side" value="sell" on:change=move |_| side.set("sell".into()) />
                        "Sell"
                    </label>
                </fieldset>
                <div class="field">
                    <label for="order-type">"Order type"</label>
                    <select id="order-type" name="order_type" node_ref=type_select on:change=move |ev| {
                        if let Ok(kind) = event_target_value(&ev).parse() {
                            order_kind.set(kind);
                        }
                    }>
                        {OrderKind::ALL
                            .iter()
                            .map(|kind| view! { <option value=kind.as_str()>{kind.label()}</option> })
                            .collect_view()}
                    </select>
                </div>
                {field(
                    "trigger_price",
                    "Trigger price (the last trade price that starts it)",
                    Signal::derive(move || !has_trigger()),
                    NodeRef::new(),
                )}
                {field("price", "Price", Signal::derive(is_market), price_input)}
                // A stop-market buy is sized by what it may spend: that much is
                // held until it fires.
                {field(
                    "quantity",
                    "Quantity",
                    Signal::derive(move || has_trigger() && is_market() && side.get() == "buy"),
                    quantity_input,
                )}
                {field(
                    "quote_amount",
                    "Amount to spend (market buys, instead of quantity)",
                    Signal::derive(move || !(is_market() && side.get() == "buy")),
                    NodeRef::new(),
                )}
                <div class="field">
                    <label for="order-tif">"Time in force"</label>
                    <select id="order-tif" name="time_in_force">
                        <option value="GTC" hidden=is_market>"Good till cancelled"</option>
                        <option value="IOC">"Immediate or cancel"</option>
                        <option value="FOK">"Fill or kill"</option>
                    </select>
                    <p class="field-error" role="alert">{error_for(result, Some("time_in_force"))}</p>
                </div>
                <div class="field">
                    <label for="order-stp">"If it would trade with your own order"</label>
                    <select id="order-stp" name="self_trade_prevention">
                        <option value="cancel_taker">"Cancel this order (keep the resting one)"</option>
                        <option value="cancel_maker">"Cancel the resting order"</option>
                        <option value="cancel_both">"Cancel both"</option>
                    </select>
                    <p class="field-error" role="alert">{error_for(result, Some("self_trade_prevention"))}</p>
                </div>
                <div class="field checkbox" hidden=move || is_market() || has_trigger()>
                    <input id="order-post-only" type="checkbox" name="post_only" value="on" />
                    <label for="order-post-only">"Post only (never take liquidity)"</label>
                    <p class="field-error" role="alert">{error_for(result, Some("post_only"))}</p>
                </div>
                <button type="submit" class=move || format!("place {}", side.get())>
                    {move || if side.get() == "buy" { "Place buy order" } else { "Place sell order" }}
                </button>
                <p class="form-error" role="alert">{error_for(result, None)}</p>
                <p class="form-ok" role="status" data-testid="order-result">{ok}</p>
            </form>
        </section>
    })
}

#[component]
fn Balances(rows: Signal<Vec<BalanceView>>) -> impl IntoView {
    boundary(view! {
        <section aria-labelledby="balances-title">
            <h3 id="balances-title">"Balances"</h3>
            <table class="data balances">
                <thead><tr><th>"Asset"</th><th>"Available"</th><th>"Reserved"</th><th>"Total"</th></tr></thead>
                <tbody>
                    {move || rows.get().into_iter().map(|b| {
                        let asset = b.asset.clone();
                        view! {
                        <tr data-asset=asset>
                            <td>{b.asset}</td><td class="num available">{b.available}</td>
                            <td class="num reserved">{b.reserved}</td><td class="num total">{b.total}</td>
                        </tr>
                    }}).collect_view()}
                </tbody>
            </table>
            <p class="empty" hidden=move || !rows.get().is_empty()>"No funds yet: get demo funds to start."</p>
        </section>
    })
}

#[component]
fn OpenOrders(
    cancel: ServerAction<CancelOrder>,
    cancel_all: ServerAction<CancelAll>,
    amend: ServerAction<AmendOrder>,
    markets: StoredValue<Vec<MarketView>>,
    rows: Signal<Vec<OpenOrderView>>,
) -> impl IntoView {
    let done = move || cancel_all.value().get().and_then(Result::ok);
    let amended = amend.value();
    boundary(view! {
        <section aria-labelledby="open-orders-title">
            <h3 id="open-orders-title">"Open orders"</h3>
            <form class="cancel-all" action=CancelAll::url() method="post" on:submit=move |ev| submit_to(cancel_all, &ev)>
                <label for="cancel-all-market" class="visually-hidden">"Cancel all orders in"</label>
                <select id="cancel-all-market" name="symbol">
                    <option value="">"All markets"</option>
                    {markets.get_value().into_iter().map(|m| view! {
                        <option value=m.symbol.clone()>{m.symbol.clone()}</option>
                    }).collect_view()}
                </select>
                <button type="submit" class="secondary" disabled=move || rows.with(Vec::is_empty)>"Cancel all"</button>
            </form>
            <p class="form-ok" role="status" data-testid="cancel-all-result">{done}</p>
            <p class="form-error" role="alert">{error_for(cancel_all.value(), None)}</p>
            <p class="form-error" role="alert">{error_for(cancel.value(), None)}</p>
            <p class="form-ok" role="status" data-testid="amend-result">{move || amended.get().and_then(Result::ok)}</p>
            <p class="form-error" role="alert" data-testid="amend-error">
                {move || amended.get().and_then(Result::err).map(|e| e.message)}
            </p>
            <table class="data open-orders">
                <thead><tr>
                    <th>"Order"</th><th>"Market"</th><th>"Side"</th><th>"Price"</th>
                    <th>"Quantity"</th><th>"Filled"</th><th>"Status"</th><th></th>
                </tr></thead>
                <tbody>
                    // Keyed by the whole row: a row that did not change keeps
                    // its elements, so an amendment being typed survives the
                    // next poll unless that very order changed.
                    <For each=move || rows.get() key=|o| o.clone() let:o>{{
                        let label = format!("Cancel order {}", o.order_id);
                        let (amend_price, amend_quantity, amend_trigger) = (
                            format!("amend-{}-price", o.order_id),
                            format!("amend-{}-quantity", o.order_id),
                            format!("amend-{}-trigger", o.order_id),
                        );
                        // A stop or take-profit waiting: what starts it, and
                        // a new trigger price in its amendment.
                        let waiting = o.trigger.clone().map(|kind| {
                            let at = o.trigger_price.clone().unwrap_or_default();
                            (format!("waiting: {} at {at}", kind.replace('_', "-")), at)
                        });
                        let shown_price = if o.price.is_empty() { "market".to_string() } else { o.price.clone() };
                        let status = waiting.as_ref().map_or(o.status.clone(), |w| w.0.clone());
                        let no_price = o.price.is_empty();
                        let trigger_input = waiting.map(|(_, at)| view! {
                            <label for=amend_trigger.clone()>"New trigger price"</label>
                            <input id=amend_trigger name="trigger_price" inputmode="decimal" autocomplete="off" value=at />
                        });
                        let size = o.quote_amount.clone().map_or(o.quantity.clone(), |q| format!("{q} (quote)"));
                        view! {
                            <tr data-order-id=o.order_id.to_string()>
                                <td>{o.order_id}</td><td>{o.symbol.clone()}</td>
                                <td class=o.side.clone()>{o.side.clone()}</td>
                                <td class="num">{shown_price}</td><td class="num">{size}</td>
                                <td class="num filled">{o.filled}</td><td class="status">{status}</td>
                                <td class="order-actions">
                                    <form action=CancelOrder::url() method="post" on:submit=move |ev| submit_to(cancel, &ev)>
                                        <input type="hidden" name="symbol" value=o.symbol.clone() />
                                        <input type="hidden" name="order_id" value=o.order_id.to_string() />
                                        <button type="submit" class="secondary" aria-label=label>"Cancel"</button>
                                    </form>
                                    <details class="amend">
                                        <summary aria-label=format!("Amend order {}", o.order_id)>"Amend"</summary>
                                        <form action=AmendOrder::url() method="post" on:submit=move |ev| submit_to(amend, &ev)>
                                            <input type="hidden" name="symbol" value=o.symbol />
                                            <input type="hidden" name="order_id" value=o.order_id.to_string() />
                                            {trigger_input}
                                            <label for=amend_price.clone() hidden=no_price>"New price"</label>
                                            <input id=amend_price name="price" inputmode="decimal" autocomplete="off" value=o.price.clone() hidden=no_price />
                                            <label for=amend_quantity.clone()>"Open quantity"</label>
                                            <input id=amend_quantity name="quantity" inputmode="decimal" autocomplete="off" value=o.remaining />
                                            <button type="submit" class="secondary">"Save"</button>
                                        </form>
                                    </details>
                                </td>
                            </tr>
                        }
                    }}</For>
                </tbody>
            </table>
            <p class="empty" hidden=move || !rows.get().is_empty()>"No open orders."</p>
        </section>
    })
}

#[component]
fn Fills(rows: Signal<Vec<FillView>>) -> impl IntoView {
    boundary(view! {
        <section aria-labelledby="fills-title">
            <h3 id="fills-title">"My trades"</h3>
            <table class="data fills">
                <thead><tr>
                    <th>"Trade"</th><th>"Market"</th><th>"Side"</th><th>"Role"</th>
                    <th>"Price"</th><th>"Quantity"</th><th>"Fee"</th>
                </tr></thead>
                <tbody>
                    {move || rows.get().into_iter().map(|f| view! {
                        <tr data-trade-id=f.trade_id.to_string()>
                            <td>{f.trade_id}</td><td>{f.symbol}</td><td class=f.side.clone()>{f.side.clone()}</td>
                            <td>{f.role}</td><td class="num">{f.price}</td><td class="num">{f.quantity}</td>
                            <td class="num fee">{format!("{} {}", f.fee, f.fee_asset)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            <p class="empty" hidden=move || !rows.get().is_empty()>"No trades yet."</p>
        </section>
    })
}
