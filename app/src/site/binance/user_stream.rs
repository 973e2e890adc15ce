//! Binance's WebSocket API, as much of it as clients use to follow an
//! account: `userDataStream.subscribe.signature` (ccxt ≥ 4.5.5 follows
//! orders and balances this way), `userDataStream.unsubscribe`, `ping`
//! and `time`, at `/compat/binance/ws-api/v3`. A subscription sends an
//! `executionReport` for each change of the account's orders (new,
//! trade, cancelled or expired, amended, a stop that fired) and an
//! `outboundAccountPosition` with the balances after them, each as
//! `{"subscriptionId": 0, "event": {...}}`.
//!
//! The orders are followed from a copy of the order history taken with
//! the log position it is the fold of, so no change is missed or sent
//! twice; the balances are the ledger's once it has folded the change.

use std::time::Duration;

use accounts::api_key::Scope;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use orderbook::{AccountId, CancelReason, Event, Side};
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::reply::market_id;
use super::socket_admission::admit;
use super::wire::{number, side_word, status_word, stp_word, type_word};
use crate::server::clock::now_ms;
use crate::server::live_tail::Streams;
use crate::server::order_history::OrderHistory;
use crate::server::{Exchange, OrderRecord, SignedRequest};
use crate::site::signed::{SignedRefusal, fresh};

/// Where the WebSocket API is served.
pub const WS_API: &str = "/compat/binance/ws-api/v3";

/// The WebSocket API's socket.
pub async fn serve(request: Request) -> Response {
    match admit(request).await {
        Err(refused) => refused,
        Ok(a) => a.upgrade.on_upgrade(move |socket| async move {
            let _slot = a.slot;
            run(a.exchange, socket, a.ip).await;
        }),
    }
}

async fn run(x: Exchange, mut socket: WebSocket, ip: std::net::IpAddr) {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(1024);
    let mut following: Option<(AccountId, JoinHandle<()>)> = None;
    loop {
        tokio::select! {
            message = socket.recv() => {
                let Some(Ok(message)) = message else { break };
                let body = match message {
                    Message::Text(t) => t.to_string(),
                    Message::Close(_) => break,
                    _ => continue,
                };
                let answer = match serde_json::from_str::<Value>(&body) {
                    Err(_) => error(Value::Null, 400, -1100, "the request is not JSON"),
                    Ok(request) => {
                        let id = request.get("id").cloned().unwrap_or(Value::Null);
                        let params = request.get("params").and_then(|p| p.as_object()).cloned().unwrap_or_default();
                        match request.get("method").and_then(|m| m.as_str()) {
                            Some("ping") => ok(id, json!({})),
                            Some("time") => ok(id, json!({ "serverTime": now_ms() })),
                            Some("userDataStream.subscribe.signature") => {
                                match (subscriber(&x, &params, ip), &following) {
                                    (Err(e), _) => refusal(id, &e),
                                    // Subscribing again changes nothing.
                                    (Ok(account), Some((followed, _))) if account == *followed => {
                                        ok(id, json!({ "subscriptionId": 0 }))
                                    }
                                    (Ok(_), Some(_)) => error(id, 400, -1100, "this connection already follows another account"),
                                    (Ok(account), None) => {
                                        let task = tokio::spawn(follow(x.clone(), account, tx.clone()));
                                        following = Some((account, task));
                                        ok(id, json!({ "subscriptionId": 0 }))
                                    }
                                }
                            }
                            Some("userDataStream.unsubscribe") => {
                                if let Some((_, task)) = following.take() {
                                    task.abort();
                                }
                                ok(id, json!({}))
                            }
                            Some(other) => error(id, 400, -1100, &format!("unknown method {other}")),
                            None => error(id, 400, -1102, "a request needs a method"),
                        }
                    }
                };
                if socket.send(text(answer)).await.is_err() {
                    break;
                }
            }
            Some(event) = rx.recv() => {
                let wrapped = json!({ "subscriptionId": 0, "event": event });
                if socket.send(text(wrapped)).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some((_, task)) = following {
        task.abort();
    }
}

/// The account a subscribe request is signed for: its parameters but
/// `signature`, sorted by name, as `k=v` joined by `&`.
fn subscriber(
    x: &Exchange,
    params: &Map<String, Value>,
    ip: std::net::IpAddr,
) -> Result<AccountId, SignedRefusal> {
    let raw = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let key_id = params.get("apiKey").map(raw).ok_or(SignedRefusal::NoKey)?;
    let signature = params
        .get("signature")
        .map(raw)
        .ok_or(SignedRefusal::NoSignature)?;
    let timestamp = params
        .get("timestamp")
        .map(raw)
        .ok_or(SignedRefusal::NoTimestamp)?;
    let window = params.get("recvWindow").map(raw);
    fresh(&timestamp, window.as_deref(), now_ms())?;
    let mut names: Vec<&String> = params.keys().filter(|k| *k != "signature").collect();
    names.sort();
    let payload: Vec<String> = names
        .iter()
        .map(|k| format!("{k}={}", raw(&params[*k])))
        .collect();
    let payload = payload.join("&");
    Ok(x.authenticate(&SignedRequest {
        key_id: &key_id,
        payload: payload.as_bytes(),
        signature: &signature,
        from: ip,
        scope: Scope::Read,
    })?)
}

/// Follows the account's orders from the history's position on, sending
/// each change and then the balances.
async fn follow(x: Exchange, account: AccountId, tx: tokio::sync::mpsc::Sender<Value>) {
    let (open, position) = x.open_orders_at(account);
    let mut mine = OrderHistory::default();
    for o in open {
        mine.adopt(account, o);
    }
    let mut reader = x.tail().reader(Streams::Markets, position);
    loop {
        let progress = match reader.next().await {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("a user data stream cannot read the store, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
                continue;
            }
        };
        let events: Vec<(&str, u64, &Event)> = progress
            .events
            .iter()
            .filter_map(|e| Some((e.book()?.symbol().as_str(), e.revision, e.book()?)))
            .collect();
        let mut touched: Option<(String, u64)> = None;
        for (i, (symbol, revision, event)) in events.iter().enumerate() {
            mine.apply_market(event);
            let Some(report) = report(&x, &mine, account, symbol, event, &events[i + 1..]) else {
                continue;
            };
            touched = Some((symbol.to_string(), *revision));
            if tx.send(report).await.is_err() {
                return;
            }
        }
        if let Some((symbol, revision)) = touched {
            // The balances once the ledger has folded the change.
            for _ in 0..400 {
                if x.ledger_reached(&symbol) > revision {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let balances: Vec<Value> = x
                .balances(account)
                .iter()
                .map(
                    |(a, b)| json!({ "a": a, "f": number(b.available()), "l": number(b.reserved) }),
                )
                .collect();
            let now = now_ms();
            let position =
                json!({ "e": "outboundAccountPosition", "E": now, "u": now, "B": balances });
            if tx.send(position).await.is_err() {
                return;
            }
        }
    }
}

/// The `executionReport` an event makes for one of the account's orders.
fn report(
    x: &Exchange,
    mine: &OrderHistory,
    account: AccountId,
    symbol: &str,
    event: &Event,
    after: &[(&str, u64, &Event)],
) -> Option<Value> {
    let (order_id, exec) = match event {
        Event::OrderAccepted(a) if a.account == account => (a.order_id, "NEW"),
        Event::StopTriggered(s) if s.account == account => (s.order_id, "NEW"),
        Event::OrderAmended(a) if a.account == account => (a.order_id, "AMENDMENT"),
        Event::OrderCancelled(c) if c.account == account => (
            c.order_id,
            match c.reason {
                CancelReason::User => "CANCELED",
                CancelReason::SelfTradePrevention => "TRADE_PREVENTION",
                _ => "EXPIRED",
            },
        ),
        Event::TradeExecuted(t) if t.maker_account == account => (t.maker_order_id, "TRADE"),
        Event::TradeExecuted(t) if t.taker_account == account => (t.taker_order_id, "TRADE"),
        _ => return None,
    };
    let record: &OrderRecord = mine.order(account, symbol, order_id)?;
    let spec = x.market_spec(symbol)?;
    let mut status = status_word(&record.state);
    let (mut last_qty, mut last_price, mut fee, mut fee_asset, mut trade_id, mut maker) = (
        Default::default(),
        Default::default(),
        Default::default(),
        String::new(),
        -1i64,
        false,
    );
    if let Event::TradeExecuted(t) = event {
        maker = t.maker_order_id == order_id && t.maker_account == account;
        let side = if maker {
            t.taker_side.opposite()
        } else {
            t.taker_side
        };
        last_qty = t.quantity;
        last_price = t.price;
        fee = t.fees.as_deref().map_or(
            Default::default(),
            |f| if maker { f.maker } else { f.taker },
        );
        fee_asset = if side == Side::Buy {
            spec.base.clone()
        } else {
            spec.quote.clone()
        };
        trade_id = t.trade_id as i64;
        if completes(order_id, after) {
            status = "FILLED";
        }
    }
    let t = &record.terms;
    let now = now_ms();
    Some(json!({
        "e": "executionReport", "E": now, "s": market_id(&spec),
        "c": record.client_order_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        "S": side_word(t.side), "o": type_word(t),
        "f": t.time_in_force.map_or("GTC", |f| f.as_str()),
        "q": number(t.quantity.unwrap_or_default()), "p": number(t.price.unwrap_or_default()),
        "P": number(t.trigger.map(|x| x.price).unwrap_or_default()), "F": "0", "g": -1, "C": "",
        "x": exec, "X": status, "r": "NONE", "i": order_id,
        "l": number(last_qty), "z": number(record.filled), "L": number(last_price),
        "n": number(fee), "N": if fee_asset.is_empty() { Value::Null } else { json!(fee_asset) },
        "T": event.at() / 1000, "t": trade_id, "I": 0,
        "w": matches!(status, "NEW" | "PARTIALLY_FILLED") && (t.trigger.is_none() || record.triggered_at.is_some()),
        "m": maker, "M": false, "O": record.placed_at / 1000, "Z": number(record.filled_quote),
        "Y": number(last_price * last_qty), "Q": number(t.quote_amount.unwrap_or_default()),
        "W": record.placed_at / 1000, "V": stp_word(t.self_trade_prevention),
    }))
}

/// Whether the order's next word in these events is that it filled.
fn completes(order_id: u64, after: &[(&str, u64, &Event)]) -> bool {
    for (_, _, e) in after {
        match e {
            Event::OrderFilled(f) if f.order_id == order_id => return true,
            Event::TradeExecuted(t)
                if t.maker_order_id == order_id || t.taker_order_id == order_id =>
            {
                return false;
            }
            _ => {}
        }
    }
    false
}

fn ok(id: Value, result: Value) -> Value {
    json!({ "id": id, "status": 200, "result": result })
}

fn error(id: Value, status: u16, code: i32, msg: &str) -> Value {
    json!({ "id": id, "status": status, "error": { "code": code, "msg": msg } })
}

fn refusal(id: Value, e: &SignedRefusal) -> Value {
    let r = super::reply::Refusal::from(e.clone());
    error(id, r.status.as_u16(), r.code, &r.msg)
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}
