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

use std::time::Instant;

use accounts::api_key::Scope;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use orderbook::{AccountId, CancelReason};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::reply::market_id;
use super::wire::{number, side_word, status_word, stp_word, type_word};
use crate::server::clock::now_ms;
use crate::server::feed_limits::WatchRate;
use crate::server::{Exchange, OrderRecord, SignedRequest};
use crate::site::account_changes::{self, AccountChange, OrderChange};
use crate::site::signed::{SignedRefusal, fresh};
use crate::site::socket_admission::admit;

/// Where the WebSocket API is served.
pub const WS_API: &str = "/compat/binance/ws-api/v3";

/// The WebSocket API's socket.
pub async fn serve(request: Request) -> Response {
    match admit(request).await {
        Err(refused) => refused,
        Ok(a) => a.upgrade.on_upgrade(move |socket| async move {
            let _slot = a.slot;
            let rate = WatchRate::new(&a.limits, Instant::now());
            run(a.exchange, socket, a.ip, rate).await;
        }),
    }
}

/// Serves the connection, taking requests at `rate` (the feed's).
async fn run(x: Exchange, mut socket: WebSocket, ip: std::net::IpAddr, mut rate: WatchRate) {
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
                if !rate.allow(Instant::now()) {
                    let answer = error(Value::Null, 429, -1003, "too many requests on this connection");
                    let _ = socket.send(text(answer)).await;
                    break;
                }
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

/// The account's changes in Binance's words: an `executionReport` per
/// order change, an `outboundAccountPosition` per balance update.
async fn follow(x: Exchange, account: AccountId, tx: tokio::sync::mpsc::Sender<Value>) {
    let (changes_tx, mut changes) = tokio::sync::mpsc::channel(256);
    let producer = tokio::spawn(account_changes::follow(
        x.clone(),
        account,
        None,
        changes_tx,
    ));
    while let Some(change) = changes.recv().await {
        let event = match change {
            AccountChange::Order(u) => {
                let Some(spec) = x.market_spec(&u.symbol) else {
                    continue;
                };
                execution_report(&spec, &u.record, &u.change, u.filled, u.at_ms)
            }
            // Binance's stream does not resume: a client reads the
            // account over REST after a reconnect.
            AccountChange::Caught(_) => continue,
            AccountChange::Balances(balances, _) => {
                let balances: Vec<Value> = balances
                    .iter()
                    .map(|(a, b)| {
                        json!({ "a": a, "f": number(b.available()), "l": number(b.reserved) })
                    })
                    .collect();
                let now = now_ms();
                json!({ "e": "outboundAccountPosition", "E": now, "u": now, "B": balances })
            }
        };
        if tx.send(event).await.is_err() {
            break;
        }
    }
    producer.abort();
}

/// One order change as Binance's `executionReport`.
fn execution_report(
    spec: &orderbook::MarketSpec,
    record: &OrderRecord,
    change: &OrderChange,
    filled: bool,
    at_ms: u64,
) -> Value {
    let exec = match change {
        OrderChange::New | OrderChange::Triggered => "NEW",
        OrderChange::Amended => "AMENDMENT",
        OrderChange::Trade { .. } => "TRADE",
        OrderChange::Cancelled(CancelReason::User) => "CANCELED",
        OrderChange::Cancelled(CancelReason::SelfTradePrevention) => "TRADE_PREVENTION",
        OrderChange::Cancelled(_) => "EXPIRED",
    };
    let status = if filled {
        "FILLED"
    } else {
        status_word(&record.state)
    };
    let (last_qty, last_price, fee, fee_asset, trade_id, maker) = match change {
        OrderChange::Trade {
            trade,
            maker,
            fee,
            fee_asset,
        } => (
            trade.quantity,
            trade.price,
            *fee,
            json!(fee_asset),
            trade.trade_id as i64,
            *maker,
        ),
        _ => (
            Decimal::ZERO,
            Decimal::ZERO,
            Decimal::ZERO,
            Value::Null,
            -1,
            false,
        ),
    };
    let t = &record.terms;
    let working = t.trigger.is_none() || record.triggered_at.is_some();
    json!({
        "e": "executionReport", "E": now_ms(), "s": market_id(spec),
        "c": record.client_order_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        "S": side_word(t.side), "o": type_word(t),
        "f": t.time_in_force.map_or("GTC", |f| f.as_str()),
        "q": number(t.quantity.unwrap_or_default()), "p": number(t.price.unwrap_or_default()),
        "P": number(t.trigger.map(|x| x.price).unwrap_or_default()), "F": "0", "g": -1, "C": "",
        "x": exec, "X": status, "r": "NONE", "i": record.order_id.unwrap_or_default(),
        "l": number(last_qty), "z": number(record.filled), "L": number(last_price),
        "n": number(fee), "N": fee_asset, "T": at_ms, "t": trade_id, "I": 0,
        "w": matches!(status, "NEW" | "PARTIALLY_FILLED") && working,
        "m": maker, "M": false, "O": record.placed_at / 1000, "Z": number(record.filled_quote),
        "Y": number(last_price * last_qty), "Q": number(t.quote_amount.unwrap_or_default()),
        "W": record.placed_at / 1000, "V": stp_word(t.self_trade_prevention),
    })
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
