//! Binance's WebSocket API at `/compat/binance/ws-api/v3`, as much of it
//! as clients use to trade and follow an account over one connection:
//!
//! - `session.logon` (signed like any request), `session.status`,
//!   `session.logout`: once logged on, the connection's requests need no
//!   signature of their own: the key is checked again (live, not expired,
//!   allowed from this address, its scope) but no signature is verified.
//!   That is what makes an Ed25519 key cheap to trade with: its 50 µs
//!   verification happens once per connection, not once per order;
//! - `order.place` and `order.cancel`: the REST endpoints' parameters and
//!   answers, from the session's key or signed in the request (then
//!   checked as REST checks it), counted against the same per-address and
//!   per-key weights and per-account order rate (not the connection's
//!   request rate, which every other method spends);
//! - `userDataStream.subscribe` (logged on) and
//!   `userDataStream.subscribe.signature` (ccxt ≥ 4.5.5 follows orders and
//!   balances this way), `userDataStream.unsubscribe`: an
//!   `executionReport` for each change of the account's orders (new,
//!   trade, cancelled or expired, amended, a stop that fired) and an
//!   `outboundAccountPosition` with the balances after them, each as
//!   `{"subscriptionId": 0, "event": {...}}`;
//! - `ping` and `time`.
//!
//! The orders are followed from a copy of the order history taken with
//! the log position it is the fold of, so no change is missed or sent
//! twice; the balances are the ledger's once it has folded the change.
//! Orders over this socket are decided by the server it is connected to:
//! a follower answers that it is not taking orders (connect to the
//! leader, or use REST, which followers pass on).

use std::time::Instant;

use accounts::api_key::Scope;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use orderbook::{AccountId, CancelReason};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

use super::orders;
use super::reply::{Refusal, market_id};
use super::wire::{number, side_word, status_word, stp_word, type_word};
use crate::server::clock::now_ms;
use crate::server::feed_limits::WatchRate;
use crate::server::request_limits::RequestLimits;
use crate::server::{Exchange, OrderRecord, SignedRequest};
use crate::site::account_changes::{self, AccountChange, OrderChange};
use crate::site::signed::{Params, SignedRefusal, fresh};
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
            let limits = a.request_limits.unwrap_or_default();
            Connection {
                x: a.exchange,
                ip: a.ip,
                limits,
                session: None,
                following: None,
            }
            .run(socket, rate)
            .await;
        }),
    }
}

/// One connection: who it is logged on as, and whose account it follows.
struct Connection {
    x: Exchange,
    ip: std::net::IpAddr,
    limits: RequestLimits,
    /// The key the connection logged on with, its account, and when.
    session: Option<(String, AccountId, u64)>,
    following: Option<(AccountId, JoinHandle<()>)>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        if let Some((_, task)) = &self.following {
            task.abort();
        }
    }
}

impl Connection {
    /// Serves the connection, taking requests at `rate` (the feed's).
    async fn run(mut self, mut socket: WebSocket, mut rate: WatchRate) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Value>(1024);
        let connected = now_ms();
        loop {
            tokio::select! {
                message = socket.recv() => {
                    let Some(Ok(message)) = message else { break };
                    let body = match message {
                        Message::Text(t) => t.to_string(),
                        Message::Close(_) => break,
                        _ => continue,
                    };
                    let request = serde_json::from_str::<Value>(&body).unwrap_or(Value::Null);
                    // Orders spend the API's weights and order rate instead.
                    let order = request["method"].as_str().is_some_and(|m| m.starts_with("order."));
                    if !order && !rate.allow(Instant::now()) {
                        let answer = error(Value::Null, 429, -1003, "too many requests on this connection");
                        let _ = socket.send(text(answer)).await;
                        break;
                    }
                    let answer = match request {
                        Value::Null => error(Value::Null, 400, -1100, "the request is not JSON"),
                        request => self.answer(&request, connected, &tx).await,
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
    }

    async fn answer(
        &mut self,
        request: &Value,
        connected: u64,
        tx: &tokio::sync::mpsc::Sender<Value>,
    ) -> Value {
        let id = request.get("id").cloned().unwrap_or(Value::Null);
        let empty = Map::new();
        let params = request
            .get("params")
            .and_then(|p| p.as_object())
            .unwrap_or(&empty);
        let method = request.get("method").and_then(|m| m.as_str());
        let result = match method {
            Some("ping") => Ok(json!({})),
            Some("time") => Ok(json!({ "serverTime": now_ms() })),
            Some("session.logon") => match signed_by(&self.x, params, self.ip, Scope::Read) {
                Err(e) => Err(Refusal::from(e)),
                Ok((account, key)) => {
                    self.session = Some((key, account, now_ms()));
                    Ok(self.status(connected))
                }
            },
            Some("session.status") => Ok(self.status(connected)),
            Some("session.logout") => {
                self.session = None;
                Ok(self.status(connected))
            }
            Some("order.place" | "order.cancel") => self.order(method, params).await,
            Some("userDataStream.subscribe.signature") => {
                match signed_by(&self.x, params, self.ip, Scope::Read) {
                    Err(e) => Err(Refusal::from(e)),
                    Ok((account, _)) => self.subscribe(account, tx),
                }
            }
            Some("userDataStream.subscribe") => match &self.session {
                Some((_, account, _)) => self.subscribe(*account, tx),
                None => Err(Refusal::from(SignedRefusal::NoKey)),
            },
            Some("userDataStream.unsubscribe") => {
                if let Some((_, task)) = self.following.take() {
                    task.abort();
                }
                Ok(json!({}))
            }
            Some(other) => Err(Refusal::bad(-1100, format!("unknown method {other}"))),
            None => Err(Refusal::bad(-1102, "a request needs a method")),
        };
        match result {
            Ok(v) => ok(id, v),
            Err(r) => error(id, r.status.as_u16(), r.code, &r.msg),
        }
    }

    /// Binance's answer to the `session.*` methods.
    fn status(&self, connected: u64) -> Value {
        let (key, since) = match &self.session {
            Some((key, _, since)) => (Value::from(key.clone()), Value::from(*since)),
            None => (Value::Null, Value::Null),
        };
        json!({
            "apiKey": key, "authorizedSince": since, "connectedSince": connected,
            "returnRateLimits": false, "serverTime": now_ms(),
            "userDataStream": self.following.is_some(),
        })
    }

    /// `order.place` or `order.cancel`, for the session's key or the one
    /// that signed the request.
    async fn order(
        &mut self,
        method: Option<&str>,
        params: &Map<String, Value>,
    ) -> Result<Value, Refusal> {
        let (account, key) = match (&self.session, params.contains_key("signature")) {
            (Some((key, _, _)), false) => {
                let allowed = self.x.key_still_allows(key, self.ip, Scope::Trade);
                let account = allowed.map_err(SignedRefusal::from)?;
                (account, key.clone())
            }
            _ => signed_by(&self.x, params, self.ip, Scope::Trade)?,
        };
        let now = Instant::now();
        self.limits.address(self.ip, 1, now)?;
        self.limits.key(&key, 1, now)?;
        let form = Params(params.iter().map(|(k, v)| (k.clone(), raw(v))).collect());
        if method == Some("order.place") {
            self.limits.order(account, now)?;
            orders::place_order(&self.x, account, &form).await
        } else {
            orders::cancel_order(&self.x, account, &form, "orderId", "origClientOrderId").await
        }
    }

    fn subscribe(
        &mut self,
        account: AccountId,
        tx: &tokio::sync::mpsc::Sender<Value>,
    ) -> Result<Value, Refusal> {
        match &self.following {
            // Subscribing again changes nothing.
            Some((followed, _)) if *followed == account => {}
            Some(_) => {
                return Err(Refusal::bad(
                    -1100,
                    "this connection already follows another account",
                ));
            }
            None => {
                let task = tokio::spawn(follow(self.x.clone(), account, tx.clone()));
                self.following = Some((account, task));
            }
        }
        Ok(json!({ "subscriptionId": 0 }))
    }
}

/// A parameter as it is signed: a string as it is, anything else as JSON.
fn raw(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The account (and key) a request is signed for, with `scope`: its
/// parameters but `signature`, sorted by name, as `k=v` joined by `&`.
fn signed_by(
    x: &Exchange,
    params: &Map<String, Value>,
    ip: std::net::IpAddr,
    scope: Scope,
) -> Result<(AccountId, String), SignedRefusal> {
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
    let account = x.authenticate(&SignedRequest {
        key_id: &key_id,
        payload: payload.as_bytes(),
        signature: &signature,
        from: ip,
        scope,
    })?;
    Ok((account, key_id))
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

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}
