//! The signed endpoints: orders, the caller's trades and the account.
//! Each reads the request once, checks its key, timestamp and signature
//! (`site::signed`), and only then does what it asks. Reads need a key
//! with the `read` scope; placing and cancelling need `trade`.

use accounts::FillRef;
use accounts::api_key::Scope;
use axum::Json;
use axum::extract::{Extension, Request};
use std::time::Instant;

use axum::http::{Method, StatusCode};
use orderbook::{AccountId, ClientOrderId, Command, Event, OrderId, PlaceOrder};
use serde_json::{Value, json};

use super::market::{count, time_ms};
use super::reply::{Refusal, market, market_id};
use super::weights::weight;
use super::wire::{my_trade_json, new_order_json, number, order_json, order_terms};
use crate::server::clock::{now_micros, now_ms};
use crate::server::key_crypto::random_token;
use crate::server::order_history::MarketOrders;
use crate::server::request_limits::RequestLimits;
use crate::server::{Exchange, OrderFilter, OrderRecord, OrderRef};
use crate::site::signed::{KEY_HEADER, Params, RawRequest, authenticate};

type Answer = Result<Json<Value>, Refusal>;

/// The largest body a signed request may have.
const MAX_BODY: usize = 64 * 1024;

/// The request's account and parameters, once its key allows `scope` and
/// its signature holds.
async fn signed(
    x: &Exchange,
    request: Request,
    scope: Scope,
) -> Result<(AccountId, Params), Refusal> {
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| Refusal::bad(-1100, format!("the body is over {MAX_BODY} bytes")))?;
    let body = std::str::from_utf8(&bytes)
        .map_err(|_| Refusal::bad(-1100, "the body is not UTF-8 form data"))?;
    let query = parts.uri.query().unwrap_or_default();
    let params = Params::parse(query, body).map_err(|e| Refusal::bad(-1100, e))?;
    let raw = RawRequest { query, body };
    let account = authenticate(x, &parts, &raw, &params, scope, now_ms())?;
    // The key's own bucket, once the key is known to be real.
    if let (Some(limits), Some(key)) = (
        parts.extensions.get::<RequestLimits>(),
        parts.headers.get(KEY_HEADER).and_then(|k| k.to_str().ok()),
    ) {
        let weight = weight(&parts.method, parts.uri.path(), &params);
        limits.key(key, weight, Instant::now())?;
        if parts.method == Method::POST && parts.uri.path().starts_with("/order") {
            limits.order(account, Instant::now())?;
        }
    }
    Ok((account, params))
}

fn client_id(params: &Params, name: &str) -> Result<Option<ClientOrderId>, Refusal> {
    params
        .get(name)
        .map(|v| v.parse().map_err(|e| Refusal::illegal(name, e)))
        .transpose()
}

fn order_id(params: &Params, name: &str) -> Result<Option<OrderId>, Refusal> {
    params
        .get(name)
        .map(|v| {
            v.parse()
                .map_err(|_| Refusal::illegal(name, "not an order id"))
        })
        .transpose()
}

/// The order a request names by `orderId` or `origClientOrderId`.
fn which(params: &Params, id: &str, client: &str) -> Result<OrderRef, Refusal> {
    if let Some(id) = order_id(params, id)? {
        return Ok(OrderRef::Id(id));
    }
    client_id(params, client)?
        .map(OrderRef::Client)
        .ok_or_else(|| {
            Refusal::bad(
                -1102,
                format!("Param '{id}' or '{client}' must be sent, but both were empty/null!"),
            )
        })
}

/// The open order a reference names, as the book has it now.
fn open_order(x: &Exchange, account: AccountId, symbol: &str, r: &OrderRef) -> Option<OrderId> {
    match r {
        OrderRef::Id(id) => Some(*id),
        OrderRef::Client(c) => x.book(symbol)?.order_by_client_id(account, c),
    }
}

/// `POST /order`: a new order. Without `newClientOrderId` the exchange
/// names it, so every order can be found by a client id.
pub async fn place(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Trade).await?;
    Ok(Json(place_order(&x, account, &params).await?))
}

pub(super) async fn place_order(
    x: &Exchange,
    account: AccountId,
    params: &Params,
) -> Result<Value, Refusal> {
    let spec = market(x, params.get("symbol"))?;
    let terms = order_terms(|n| params.get(n).map(str::to_string))?;
    let client = match client_id(params, "newClientOrderId")? {
        Some(c) => c,
        None => generated_client_id()?,
    };
    let resp = params.get("newOrderRespType").unwrap_or("FULL");
    if !["ACK", "RESULT", "FULL"].contains(&resp) {
        return Err(Refusal::illegal(
            "newOrderRespType",
            "use ACK, RESULT or FULL",
        ));
    }
    let outcome = x
        .place_named(account, &spec.symbol, terms, Some(client))
        .await?;
    let record = OrderRecord::from_events(account, &spec.symbol, outcome.order_id, &outcome.events)
        .ok_or_else(|| {
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                -1000,
                "the order's acceptance is missing from its outcome",
            )
        })?;
    Ok(new_order_json(
        &spec,
        &record,
        &outcome.events,
        resp,
        now_ms(),
    ))
}

fn generated_client_id() -> Result<ClientOrderId, Refusal> {
    let token = random_token()
        .map_err(|e| Refusal::new(StatusCode::SERVICE_UNAVAILABLE, -1001, e.to_string()))?;
    format!("sx-{}", &token[..22]).parse().map_err(|_| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            -1000,
            "a generated client order id was refused",
        )
    })
}

/// `POST /order/test`: the order checked as the book would decide it
/// now, without placing it (the funds are not checked, as on Binance).
pub async fn test(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Trade).await?;
    let spec = market(&x, params.get("symbol"))?;
    let terms = order_terms(|n| params.get(n).map(str::to_string))?;
    let client = client_id(&params, "newClientOrderId")?;
    let book = x
        .book(&spec.symbol)
        .ok_or_else(|| Refusal::unknown_symbol(&spec.symbol))?;
    let command = PlaceOrder::new(
        *book.symbol(),
        book.last_order_id() + 1,
        account,
        terms,
        now_micros(),
    )
    .with_client_order_id(client);
    let decision = book.decide(&Command::Place(command));
    if let Some(Event::OrderRejected(r)) = decision.first() {
        return Err(crate::server::ExchangeError::from(r.reason).into());
    }
    Ok(Json(json!({})))
}

/// `GET /order`.
pub async fn get(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Read).await?;
    let spec = market(&x, params.get("symbol"))?;
    let r = which(&params, "orderId", "origClientOrderId")?;
    let record = x
        .order_record(account, &spec.symbol, &r)
        .await?
        .ok_or_else(Refusal::unknown_order)?;
    Ok(Json(order_json(&market_id(&spec), &record)))
}

/// `DELETE /order`: cancels an open order, answering it as cancelled.
pub async fn cancel(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Trade).await?;
    Ok(Json(
        cancel_order(&x, account, &params, "orderId", "origClientOrderId").await?,
    ))
}

pub(super) async fn cancel_order(
    x: &Exchange,
    account: AccountId,
    params: &Params,
    id: &str,
    client: &str,
) -> Result<Value, Refusal> {
    let spec = market(x, params.get("symbol"))?;
    let r = which(params, id, client)?;
    let unknown = || Refusal::bad(-2011, "Unknown order sent.");
    let order_id = open_order(x, account, &spec.symbol, &r).ok_or_else(unknown)?;
    let outcome = x.cancel(account, &spec.symbol, order_id).await?;
    let record = x
        .order_record(account, &spec.symbol, &OrderRef::Id(order_id))
        .await?
        .ok_or_else(unknown)?
        .with_events(&outcome.events);
    Ok(order_json(&market_id(&spec), &record))
}

/// `DELETE /openOrders`: cancels every open order of the market in one
/// decision, answering each as cancelled.
pub async fn cancel_all(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Trade).await?;
    let spec = market(&x, params.get("symbol"))?;
    let cancelled = x.cancel_all_orders(account, Some(&spec.symbol)).await?;
    let id = market_id(&spec);
    let mut out = Vec::new();
    for c in &cancelled {
        let events = [Event::OrderCancelled(c.clone())];
        if let Some(record) = x
            .order_record(account, &spec.symbol, &OrderRef::Id(c.order_id))
            .await?
        {
            out.push(order_json(&id, &record.with_events(&events)));
        }
    }
    Ok(Json(Value::Array(out)))
}

/// `GET /openOrders`: of one market, or of all.
pub async fn open_orders(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Read).await?;
    let spec = params
        .get("symbol")
        .map(|s| market(&x, Some(s)))
        .transpose()?;
    let filter = OrderFilter {
        symbol: spec.as_ref().map(|s| s.symbol.clone()),
        state: Some("open".to_string()),
    };
    Ok(Json(orders_json(
        &x,
        x.order_records(account, &filter).await?,
        true,
    )))
}

/// `GET /allOrders`: one market's orders, oldest first, from `orderId`
/// or within `startTime`..`endTime`, at most `limit`.
pub async fn all_orders(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Read).await?;
    let spec = market(&x, params.get("symbol"))?;
    let limit = count(&params, "limit", 500, 1000)?;
    let from = order_id(&params, "orderId")?;
    let (start, end) = (time_ms(&params, "startTime")?, time_ms(&params, "endTime")?);
    // A market's orders are those it accepted: Binance lists no refused
    // order (they never had an id). From a given start (an id or a time)
    // the first `limit`; without one, the newest `limit`, still oldest
    // first.
    let wanted = MarketOrders {
        from,
        placed_ms: start.unwrap_or(0)..=end.unwrap_or(u64::MAX),
        limit,
        newest: from.is_none() && start.is_none(),
    };
    let records = x.orders_in(account, &spec.symbol, wanted).await?;
    Ok(Json(orders_json(&x, records, false)))
}

/// Binance's window of a list kept oldest first: from a given start (an
/// id or a time) the first `limit`; without one, the newest `limit`, still
/// oldest first.
fn window(mut kept: Vec<usize>, limit: usize, from_a_start: bool) -> Vec<usize> {
    if from_a_start {
        kept.truncate(limit);
    } else {
        kept.drain(..kept.len().saturating_sub(limit));
    }
    kept
}

fn orders_json(x: &Exchange, records: Vec<OrderRecord>, newest_first: bool) -> Value {
    let specs = x.market_specs();
    let id = |symbol: &str| {
        specs
            .iter()
            .find(|s| s.symbol == symbol)
            .map(market_id)
            .unwrap_or_default()
    };
    let mut out: Vec<Value> = records
        .iter()
        .map(|o| order_json(&id(&o.symbol), o))
        .collect();
    if newest_first {
        out.reverse();
    }
    Value::Array(out)
}

/// `GET /myTrades`: one market's fills of the caller, oldest first.
pub async fn my_trades(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Read).await?;
    let spec = market(&x, params.get("symbol"))?;
    let limit = count(&params, "limit", 500, 1000)?;
    let order = order_id(&params, "orderId")?;
    let from = params
        .get("fromId")
        .map(|v| {
            v.parse::<u64>()
                .map_err(|_| Refusal::illegal("fromId", "not a trade id"))
        })
        .transpose()?;
    let (start, end) = (time_ms(&params, "startTime")?, time_ms(&params, "endTime")?);
    let symbol = spec.symbol.as_str();
    let fills = x
        .fills(account, |a| {
            let keep = |f: &FillRef| {
                &*f.symbol == symbol
                    && order.is_none_or(|o| f.order_id == o)
                    && from.is_none_or(|id| f.trade_id >= id)
                    && start.is_none_or(|s| f.at / 1000 >= s)
                    && end.is_none_or(|e| f.at / 1000 <= e)
            };
            // Only the fills that can be kept are looked at: one order's
            // where its id can be; else the newest until `limit` are
            // found, or from the start on until `limit` are.
            match (order, from.is_some() || start.is_some()) {
                (Some(o), from_a_start) => {
                    let of = a.fills.of_orders(o..=o).into_iter();
                    let kept = of.filter(|(_, f)| keep(f)).map(|(i, _)| i);
                    window(kept.collect(), limit, from_a_start)
                }
                (None, false) => {
                    let mut newest = a.fills.newest_first(None, limit, keep).0;
                    newest.reverse();
                    newest
                }
                (None, true) => {
                    let last = end.map_or(u64::MAX, |e| e.saturating_mul(1000).saturating_add(999));
                    let at = start.unwrap_or(0).saturating_mul(1000)..=last;
                    let of = a.fills.iter_between(at).filter(|(_, f)| keep(f));
                    of.map(|(i, _)| i).take(limit).collect()
                }
            }
        })
        .await?;
    let id = market_id(&spec);
    Ok(Json(Value::Array(
        fills.iter().map(|t| my_trade_json(&id, t)).collect(),
    )))
}

/// `GET /account`: the balances, free and locked (held by open orders).
pub async fn account(Extension(x): Extension<Exchange>, request: Request) -> Answer {
    let (account, params) = signed(&x, request, Scope::Read).await?;
    let omit_zero = params.get("omitZeroBalances") == Some("true");
    let balances: Vec<Value> = x
        .balances(account)
        .iter()
        .filter(|(_, b)| !(omit_zero && b.total.is_zero()))
        .map(|(asset, b)| {
            json!({ "asset": asset, "free": number(b.available()), "locked": number(b.reserved) })
        })
        .collect();
    Ok(Json(json!({
        "makerCommission": 0,
        "takerCommission": 0,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "canTrade": true,
        "canWithdraw": false,
        "canDeposit": false,
        "brokered": false,
        "requireSelfTradePrevention": false,
        "preventSor": false,
        "updateTime": now_ms(),
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": account,
    })))
}

/// `POST /order/cancelReplace`: cancels an order, then places a new one
/// (a new order id, as on Binance). With `STOP_ON_FAILURE` a failed cancel
/// places nothing; with `ALLOW_FAILURE` the new order is placed anyway.
/// The two steps are two decisions: if the new order fails after the
/// cancel, the answer says so (-2021) and the cancel stands.
pub async fn cancel_replace(
    Extension(x): Extension<Exchange>,
    request: Request,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    let fail = |r: Refusal| (r.status, Json(json!({ "code": r.code, "msg": r.msg })));
    let (account, params) = signed(&x, request, Scope::Trade).await.map_err(fail)?;
    let mode = params
        .get("cancelReplaceMode")
        .ok_or_else(|| fail(Refusal::missing("cancelReplaceMode")))?;
    let allow_failure = match mode {
        "STOP_ON_FAILURE" => false,
        "ALLOW_FAILURE" => true,
        other => {
            return Err(fail(Refusal::illegal(
                "cancelReplaceMode",
                format!("{other} is not STOP_ON_FAILURE or ALLOW_FAILURE"),
            )));
        }
    };
    let as_error = |r: &Refusal| json!({ "code": r.code, "msg": r.msg });
    let cancelled = cancel_order(
        &x,
        account,
        &params,
        "cancelOrderId",
        "cancelOrigClientOrderId",
    )
    .await;
    if let Err(r) = &cancelled
        && !allow_failure
    {
        return Err((
            StatusCode::BAD_REQUEST,
            Json(json!({
                "code": -2022,
                "msg": "Order cancel-replace failed.",
                "data": {
                    "cancelResult": "FAILURE",
                    "newOrderResult": "NOT_ATTEMPTED",
                    "cancelResponse": as_error(r),
                    "newOrderResponse": null,
                }
            })),
        ));
    }
    let placed = place_order(&x, account, &params).await;
    let result = |ok: bool| if ok { "SUCCESS" } else { "FAILURE" };
    let data = json!({
        "cancelResult": result(cancelled.is_ok()),
        "newOrderResult": result(placed.is_ok()),
        "cancelResponse": cancelled.as_ref().map_or_else(as_error, Clone::clone),
        "newOrderResponse": placed.as_ref().map_or_else(as_error, Clone::clone),
    });
    match (&cancelled, &placed) {
        (Ok(_), Ok(_)) => Ok(Json(data)),
        (Err(_), Err(_)) => Err((
            StatusCode::BAD_REQUEST,
            Json(json!({
                "code": -2022, "msg": "Order cancel-replace failed.", "data": data,
            })),
        )),
        _ => Err((
            StatusCode::CONFLICT,
            Json(json!({
                "code": -2021, "msg": "Order cancel-replace partially failed.", "data": data,
            })),
        )),
    }
}
