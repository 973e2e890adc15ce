//! The native API's signed endpoints: your orders, fills and balances.
//! Each checks its key, timestamp and signature (`site::signed`) before
//! it does anything; reads need the `read` scope, orders `trade`.

use std::time::Instant;

use accounts::api_key::Scope;
use axum::Json;
use axum::extract::{Extension, OriginalUri, Path, Request};
use axum::http::request::Parts;
use orderbook::{
    AccountId, ClientOrderId, Event, OrderKind, OrderTerms, SelfTradePrevention, Side, TimeInForce,
    Trigger,
};
use serde::de::DeserializeOwned;

use super::public::within;
use super::refusal::Refused;
use super::schema::{
    Amendment, Balance, Cancelled, Fill, FillPage, HistoryQuery, MineQuery, NewOrder, Order,
    OrderPage, Placed,
};
use crate::server::clock::now_ms;
use crate::server::request_limits::RequestLimits;
use crate::server::{Exchange, OrderFilter, OrderRecord, OrderRef};
use crate::site::signed::authenticate_native;

type Answer<T> = Result<Json<T>, Refused>;

/// The largest body a request may have.
const MAX_BODY: usize = 64 * 1024;

/// A signed request, checked: its account, its parts and its body.
struct Signed {
    account: AccountId,
    parts: Parts,
    body: String,
}

impl Signed {
    async fn check(x: &Exchange, request: Request, scope: Scope) -> Result<Signed, Refused> {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_BODY)
            .await
            .map_err(|_| Refused::bad(format!("the body is over {MAX_BODY} bytes")))?;
        let body = String::from_utf8(bytes.to_vec())
            .map_err(|_| Refused::bad("the body is not UTF-8 JSON"))?;
        // The path as the client sent (and signed) it, before routing
        // took the prefix off.
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_string(), |o| o.path().to_string());
        let (account, key) = authenticate_native(x, &parts, &path, &body, scope, now_ms())?;
        if let Some(limits) = parts.extensions.get::<RequestLimits>() {
            limits.key(&key, 1, Instant::now())?;
        }
        Ok(Signed {
            account,
            parts,
            body,
        })
    }

    fn query<T: DeserializeOwned>(&self) -> Result<T, Refused> {
        let q = self.parts.uri.query().unwrap_or_default();
        // Refuses what is not form-encoded UTF-8 rather than read it lossily.
        crate::site::signed::Params::parse(q, "").map_err(Refused::bad)?;
        serde_urlencoded::from_str(q)
            .map_err(|e| Refused::bad(format!("the query cannot be read: {e}")))
    }

    fn json<T: DeserializeOwned>(&self) -> Result<T, Refused> {
        serde_json::from_str(&self.body)
            .map_err(|e| Refused::bad(format!("the body cannot be read: {e}")))
    }
}

fn word<T: std::str::FromStr>(value: Option<&str>, name: &str) -> Result<Option<T>, Refused>
where
    T::Err: std::fmt::Display,
{
    value
        .map(|v| {
            v.parse::<T>()
                .map_err(|e| Refused::bad(format!("{name}: {e}")))
        })
        .transpose()
}

fn terms(o: &NewOrder) -> Result<OrderTerms, Refused> {
    let side: Side = word(Some(&o.side), "side")?.expect("given");
    let kind: OrderKind = word(Some(&o.kind), "kind")?.expect("given");
    let trigger = match (kind.trigger(), o.trigger_price) {
        (Some(kind), Some(price)) => Some(Trigger { kind, price }),
        (Some(_), None) => {
            return Err(Refused::bad(format!(
                "a {} order needs a trigger_price",
                o.kind
            )));
        }
        (None, Some(_)) => {
            return Err(Refused::bad(format!(
                "a {} order takes no trigger_price",
                o.kind
            )));
        }
        (None, None) => None,
    };
    Ok(OrderTerms {
        side,
        order_type: kind.order_type(),
        price: o.price,
        quantity: o.quantity,
        quote_amount: o.quote_amount,
        time_in_force: word::<TimeInForce>(o.time_in_force.as_deref(), "time_in_force")?,
        post_only: o.post_only,
        self_trade_prevention: word::<SelfTradePrevention>(
            o.self_trade_prevention.as_deref(),
            "self_trade_prevention",
        )?
        .unwrap_or_default(),
        trigger,
    })
}

/// One of the account's orders, as the history has it.
async fn record(
    x: &Exchange,
    account: AccountId,
    symbol: &str,
    r: &OrderRef,
) -> Result<OrderRecord, Refused> {
    x.market_spec(symbol)
        .ok_or_else(|| Refused::not_found(format!("there is no market {symbol}")))?;
    x.order_record(account, symbol, r)
        .await?
        .ok_or_else(|| Refused::not_found("you have no such order in this market"))
}

fn client_id(s: &str) -> Result<ClientOrderId, Refused> {
    s.parse()
        .map_err(|e| Refused::bad(format!("client_order_id: {e}")))
}

/// Places an order. Its answer has the order as its own decision left it
/// and the fills of that decision.
#[utoipa::path(post, path = "/orders", tag = "orders", request_body = NewOrder,
    responses((status = 200, body = Placed), (status = 400, body = super::schema::ApiError),
        (status = 401, body = super::schema::ApiError), (status = 429, body = super::schema::ApiError)))]
pub async fn place(Extension(x): Extension<Exchange>, request: Request) -> Answer<Placed> {
    let signed = Signed::check(&x, request, Scope::Trade).await?;
    if let Some(limits) = signed.parts.extensions.get::<RequestLimits>() {
        limits.order(signed.account, Instant::now())?;
    }
    let new: NewOrder = signed.json()?;
    let terms = terms(&new)?;
    let client = new.client_order_id.as_deref().map(client_id).transpose()?;
    let outcome = x
        .place_named(signed.account, &new.symbol, terms, client)
        .await?;
    let record = OrderRecord::from_events(
        signed.account,
        &new.symbol,
        outcome.order_id,
        &outcome.events,
    )
    .ok_or_else(|| Refused::bad("the order's acceptance is missing from its outcome"))?;
    let trades: Vec<_> = outcome
        .events
        .iter()
        .filter_map(|e| match e {
            Event::TradeExecuted(t) => Some(t.trade_id),
            _ => None,
        })
        .collect();
    let fills = x
        .decision_fills(signed.account, &new.symbol, &trades)
        .await?
        .iter()
        .filter(|f| f.order_id == outcome.order_id)
        .map(Fill::of)
        .collect();
    Ok(Json(Placed {
        order: Order::of(&record),
        fills,
    }))
}

/// Your open orders, newest first: of one market, or all.
#[utoipa::path(get, path = "/orders", tag = "orders", params(MineQuery),
    responses((status = 200, body = Vec<Order>), (status = 401, body = super::schema::ApiError)))]
pub async fn open_orders(
    Extension(x): Extension<Exchange>,
    request: Request,
) -> Answer<Vec<Order>> {
    let signed = Signed::check(&x, request, Scope::Read).await?;
    let q: MineQuery = signed.query()?;
    let filter = OrderFilter {
        symbol: q.symbol,
        state: Some("open".into()),
    };
    Ok(Json(
        x.order_records(signed.account, &filter)
            .await?
            .iter()
            .map(Order::of)
            .collect(),
    ))
}

/// Cancels every open order of yours, in one market or all, each market
/// in one decision.
#[utoipa::path(delete, path = "/orders", tag = "orders", params(MineQuery),
    responses((status = 200, body = Cancelled), (status = 401, body = super::schema::ApiError)))]
pub async fn cancel_all(Extension(x): Extension<Exchange>, request: Request) -> Answer<Cancelled> {
    let signed = Signed::check(&x, request, Scope::Trade).await?;
    let q: MineQuery = signed.query()?;
    let cancelled = x
        .cancel_all_orders(signed.account, q.symbol.as_deref())
        .await?;
    let mut orders = Vec::new();
    for c in cancelled {
        let events = [Event::OrderCancelled(c.clone())];
        let r = record(
            &x,
            signed.account,
            c.symbol.as_str(),
            &OrderRef::Id(c.order_id),
        )
        .await?;
        orders.push(Order::of(&r.with_events(&events)));
    }
    Ok(Json(Cancelled { orders }))
}

/// One of your orders, by the exchange's id.
#[utoipa::path(get, path = "/orders/{symbol}/{order_id}", tag = "orders",
    params(("symbol" = String, Path), ("order_id" = u64, Path)),
    responses((status = 200, body = Order), (status = 404, body = super::schema::ApiError)))]
pub async fn get_order(
    Extension(x): Extension<Exchange>,
    Path((symbol, id)): Path<(String, u64)>,
    request: Request,
) -> Answer<Order> {
    let signed = Signed::check(&x, request, Scope::Read).await?;
    let r = record(&x, signed.account, &symbol, &OrderRef::Id(id)).await?;
    Ok(Json(Order::of(&r)))
}

/// One of your orders, by your own id for it (the newest with that id).
#[utoipa::path(get, path = "/orders/{symbol}/client/{client_order_id}", tag = "orders",
    params(("symbol" = String, Path), ("client_order_id" = String, Path)),
    responses((status = 200, body = Order), (status = 404, body = super::schema::ApiError)))]
pub async fn get_by_client_id(
    Extension(x): Extension<Exchange>,
    Path((symbol, client)): Path<(String, String)>,
    request: Request,
) -> Answer<Order> {
    let signed = Signed::check(&x, request, Scope::Read).await?;
    let r = record(
        &x,
        signed.account,
        &symbol,
        &OrderRef::Client(client_id(&client)?),
    )
    .await?;
    Ok(Json(Order::of(&r)))
}

/// Cancels one of your open orders.
#[utoipa::path(delete, path = "/orders/{symbol}/{order_id}", tag = "orders",
    params(("symbol" = String, Path), ("order_id" = u64, Path)),
    responses((status = 200, body = Order), (status = 404, body = super::schema::ApiError)))]
pub async fn cancel(
    Extension(x): Extension<Exchange>,
    Path((symbol, id)): Path<(String, u64)>,
    request: Request,
) -> Answer<Order> {
    let signed = Signed::check(&x, request, Scope::Trade).await?;
    cancelled(&x, signed.account, &symbol, id).await
}

/// Cancels one of your open orders, by your own id for it.
#[utoipa::path(delete, path = "/orders/{symbol}/client/{client_order_id}", tag = "orders",
    params(("symbol" = String, Path), ("client_order_id" = String, Path)),
    responses((status = 200, body = Order), (status = 404, body = super::schema::ApiError)))]
pub async fn cancel_by_client_id(
    Extension(x): Extension<Exchange>,
    Path((symbol, client)): Path<(String, String)>,
    request: Request,
) -> Answer<Order> {
    let signed = Signed::check(&x, request, Scope::Trade).await?;
    let client = client_id(&client)?;
    let book = x
        .book(&symbol)
        .ok_or_else(|| Refused::not_found(format!("there is no market {symbol}")))?;
    let id = book
        .order_by_client_id(signed.account, &client)
        .ok_or_else(|| {
            Refused::not_found("you have no open order with this client id in this market")
        })?;
    cancelled(&x, signed.account, &symbol, id).await
}

async fn cancelled(x: &Exchange, account: AccountId, symbol: &str, id: u64) -> Answer<Order> {
    let outcome = x.cancel(account, symbol, id).await?;
    let r = record(x, account, symbol, &OrderRef::Id(id)).await?;
    Ok(Json(Order::of(&r.with_events(&outcome.events))))
}

/// Changes an open order's price, open quantity or trigger price. The
/// order keeps its id; a smaller quantity at the same price keeps its
/// place in the queue.
#[utoipa::path(patch, path = "/orders/{symbol}/{order_id}", tag = "orders", request_body = Amendment,
    params(("symbol" = String, Path), ("order_id" = u64, Path)),
    responses((status = 200, body = Order), (status = 400, body = super::schema::ApiError)))]
pub async fn amend(
    Extension(x): Extension<Exchange>,
    Path((symbol, id)): Path<(String, u64)>,
    request: Request,
) -> Answer<Order> {
    let signed = Signed::check(&x, request, Scope::Trade).await?;
    let a: Amendment = signed.json()?;
    let outcome = x
        .amend(
            signed.account,
            &symbol,
            id,
            a.price,
            a.quantity,
            a.trigger_price,
        )
        .await?;
    // The history folds the amendment a moment later; wait for it.
    let deadline = Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let r = record(&x, signed.account, &symbol, &OrderRef::Id(id)).await?;
        let amended = outcome
            .events
            .iter()
            .all(|e| e.at() / 1000 <= r.updated_at / 1000);
        if amended || Instant::now() > deadline {
            return Ok(Json(Order::of(&r.with_events(&outcome.events))));
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A page of your order history, newest first.
#[utoipa::path(get, path = "/history/orders", tag = "account", params(HistoryQuery),
    responses((status = 200, body = OrderPage), (status = 401, body = super::schema::ApiError)))]
pub async fn order_history(
    Extension(x): Extension<Exchange>,
    request: Request,
) -> Answer<OrderPage> {
    let signed = Signed::check(&x, request, Scope::Read).await?;
    let q: HistoryQuery = signed.query()?;
    let limit = within(q.limit, "limit", 50, 500)?;
    let filter = OrderFilter {
        symbol: q.symbol,
        state: q.state,
    };
    let (orders, next) = x
        .order_record_page(signed.account, &filter, q.before, limit)
        .await?;
    Ok(Json(OrderPage {
        orders: orders
            .iter()
            .filter(|o| o.order_id.is_some())
            .map(Order::of)
            .collect(),
        next,
    }))
}

/// A page of your fills, newest first.
#[utoipa::path(get, path = "/history/fills", tag = "account", params(HistoryQuery),
    responses((status = 200, body = FillPage), (status = 401, body = super::schema::ApiError)))]
pub async fn fill_history(Extension(x): Extension<Exchange>, request: Request) -> Answer<FillPage> {
    let signed = Signed::check(&x, request, Scope::Read).await?;
    let q: HistoryQuery = signed.query()?;
    let limit = within(q.limit, "limit", 50, 500)?;
    let (fills, next) = x
        .fill_page(signed.account, q.symbol.as_deref(), q.before, limit)
        .await?;
    Ok(Json(FillPage {
        fills: fills.iter().map(Fill::of).collect(),
        next,
    }))
}

/// Your balances: total, what open orders hold, and what is available.
#[utoipa::path(get, path = "/balances", tag = "account",
    responses((status = 200, body = Vec<Balance>), (status = 401, body = super::schema::ApiError)))]
pub async fn balances(Extension(x): Extension<Exchange>, request: Request) -> Answer<Vec<Balance>> {
    let signed = Signed::check(&x, request, Scope::Read).await?;
    let balances = x.balances(signed.account);
    Ok(Json(
        balances
            .into_iter()
            .map(|(asset, b)| Balance {
                asset,
                total: b.total,
                reserved: b.reserved,
                available: b.available(),
            })
            .collect(),
    ))
}
