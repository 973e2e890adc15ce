//! The native API's websocket, `/api/v1/ws`: a client subscribes to
//! channels and gets each one's messages as `{"channel", "data"}`.
//!
//! - `trades:<symbol>`: each trade (a [`Trade`]);
//! - `candles:<symbol>:<interval>`: the current exact candle after each
//!   trade (a [`Candle`]);
//! - `ticker:<symbol>`: the 24-hour [`Ticker`], each second;
//! - `depth:<symbol>`: the whole book's changed levels every 100 ms, with
//!   `first_update` and `last_update` from the counter `GET
//!   /markets/{symbol}/depth` reports as `update_id`: apply a diff whose
//!   `first_update` is at most your book's `update_id + 1` and whose
//!   `last_update` is past it, then each next one, whose `first_update`
//!   is the last one's `last_update + 1`;
//! - `account` (after `login`): each change of your orders (the [`Order`]
//!   after it, what changed, and a trade's [`Fill`]) and your balances
//!   after them.
//!
//! Requests: `{"op":"subscribe","channels":[...]}`, `{"op":"unsubscribe",
//! ...}`, and `{"op":"login","key","timestamp","signature"}` signed as a
//! REST request to `GET /api/v1/ws` with no query and no body. A client
//! that falls too far behind a market is closed (it syncs again from the
//! REST depth). Not yet: resuming a channel from a position after a
//! reconnect; a client re-reads REST and subscribes again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use accounts::api_key::Scope;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use orderbook::AccountId;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

use super::schema::{Balance, Candle, Fill, Order, Ticker, Trade};
use crate::candles::Interval;
use crate::server::book_diffs::{BookDiff, DiffSum};
use crate::server::clock::now_ms;
use crate::server::{Exchange, SignedRequest};
use crate::site::account_changes::{self, AccountChange, OrderChange};
use crate::site::signed::{SignedRefusal, fresh, native_payload};
use crate::site::socket_admission::admit;

/// The socket's path.
pub const PATH: &str = "/ws";
/// The most channels one socket may follow.
const MAX_CHANNELS: usize = 100;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Channel {
    Trades(String),
    Candles(String, &'static str),
    Ticker(String),
    Depth(String),
    Account,
}

impl Channel {
    fn parse(x: &Exchange, name: &str) -> Result<Channel, String> {
        let parts: Vec<&str> = name.split(':').collect();
        let market = |s: &str| match x.market_spec(s) {
            Some(_) => Ok(s.to_string()),
            None => Err(format!("{name}: there is no market {s}")),
        };
        match parts.as_slice() {
            ["trades", s] => Ok(Channel::Trades(market(s)?)),
            ["ticker", s] => Ok(Channel::Ticker(market(s)?)),
            ["depth", s] => Ok(Channel::Depth(market(s)?)),
            ["candles", s, i] => {
                let interval = Interval::from_label(i).ok_or(format!("{name}: no interval {i}"))?;
                Ok(Channel::Candles(market(s)?, interval.label()))
            }
            ["account"] => Ok(Channel::Account),
            _ => Err(format!(
                "{name}: the channels are trades:<symbol>, candles:<symbol>:<interval>, \
                 ticker:<symbol>, depth:<symbol> and account"
            )),
        }
    }

    fn symbol(&self) -> Option<&str> {
        match self {
            Channel::Trades(s)
            | Channel::Ticker(s)
            | Channel::Depth(s)
            | Channel::Candles(s, _) => Some(s),
            Channel::Account => None,
        }
    }

    fn name(&self) -> String {
        match self {
            Channel::Trades(s) => format!("trades:{s}"),
            Channel::Candles(s, i) => format!("candles:{s}:{i}"),
            Channel::Ticker(s) => format!("ticker:{s}"),
            Channel::Depth(s) => format!("depth:{s}"),
            Channel::Account => "account".to_string(),
        }
    }
}

/// `/api/v1/ws`.
pub async fn serve(request: Request) -> Response {
    match admit(request).await {
        Err(refused) => refused,
        Ok(a) => a.upgrade.on_upgrade(move |socket| async move {
            let _slot = a.slot;
            Socket::new(a.exchange, a.ip).run(socket).await;
        }),
    }
}

enum Incoming {
    Diff(String, Arc<BookDiff>),
    Lagged(String),
    Account(Box<AccountChange>),
}

struct Socket {
    x: Exchange,
    ip: std::net::IpAddr,
    account: Option<AccountId>,
    channels: BTreeSet<Channel>,
    markets: BTreeMap<String, JoinHandle<()>>,
    following: Option<JoinHandle<()>>,
    tx: mpsc::Sender<Incoming>,
    rx: mpsc::Receiver<Incoming>,
    /// Per market: the depth changes since the last send.
    pending: BTreeMap<String, DiffSum>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.markets.values().for_each(JoinHandle::abort);
        if let Some(t) = &self.following {
            t.abort();
        }
    }
}

impl Socket {
    fn new(x: Exchange, ip: std::net::IpAddr) -> Socket {
        let (tx, rx) = mpsc::channel(256);
        Socket {
            x,
            ip,
            account: None,
            channels: BTreeSet::new(),
            markets: BTreeMap::new(),
            following: None,
            tx,
            rx,
            pending: BTreeMap::new(),
        }
    }

    async fn run(mut self, mut socket: WebSocket) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let mut requests = (0u32, now_ms() / 1000);
        loop {
            let out: Vec<Value> = tokio::select! {
                message = socket.recv() => {
                    let Some(Ok(message)) = message else { return };
                    let body = match message {
                        Message::Text(t) => t.to_string(),
                        Message::Close(_) => return,
                        _ => continue,
                    };
                    let second = now_ms() / 1000;
                    if requests.1 != second {
                        requests = (0, second);
                    }
                    requests.0 += 1;
                    if requests.0 > 5 {
                        let _ = socket.send(text(json!({ "type": "error", "message": "at most 5 requests a second" }))).await;
                        return;
                    }
                    vec![self.request(&body)]
                }
                Some(incoming) = self.rx.recv() => match incoming {
                    Incoming::Diff(symbol, diff) => self.on_diff(&symbol, &diff),
                    Incoming::Account(change) => vec![account_message(&change)],
                    Incoming::Lagged(symbol) => {
                        let message = format!("fell behind {symbol}: read the depth again and subscribe anew");
                        let _ = socket.send(text(json!({ "type": "error", "message": message }))).await;
                        return;
                    }
                },
                _ = tick.tick() => self.on_tick(),
            };
            for value in out {
                if socket.send(text(value)).await.is_err() {
                    return;
                }
            }
        }
    }

    fn request(&mut self, body: &str) -> Value {
        let error = |message: String| json!({ "type": "error", "message": message });
        let Ok(request) = serde_json::from_str::<Value>(body) else {
            return error("a request is a JSON object with an op".into());
        };
        let names: Vec<String> = request["channels"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        match request["op"].as_str() {
            Some("login") => match self.login(&request) {
                Ok(account) => {
                    self.account = Some(account);
                    json!({ "type": "logged_in" })
                }
                Err(e) => error(e.to_string()),
            },
            Some("subscribe") => {
                let mut parsed = Vec::new();
                for name in &names {
                    match Channel::parse(&self.x, name) {
                        Ok(c) => parsed.push(c),
                        Err(e) => return error(e),
                    }
                }
                if self.channels.len() + parsed.len() > MAX_CHANNELS {
                    return error(format!("a socket follows at most {MAX_CHANNELS} channels"));
                }
                if parsed.contains(&Channel::Account) && self.account.is_none() {
                    return error(
                        "log in first: the account channel needs a key with the read scope".into(),
                    );
                }
                for c in parsed {
                    self.follow(&c);
                    self.channels.insert(c);
                }
                json!({ "type": "subscribed", "channels": self.channels.iter().map(Channel::name).collect::<Vec<_>>() })
            }
            Some("unsubscribe") => {
                for name in &names {
                    if let Ok(c) = Channel::parse(&self.x, name) {
                        self.channels.remove(&c);
                    }
                }
                self.unfollow();
                json!({ "type": "subscribed", "channels": self.channels.iter().map(Channel::name).collect::<Vec<_>>() })
            }
            _ => error("op is login, subscribe or unsubscribe".into()),
        }
    }

    fn login(&self, request: &Value) -> Result<AccountId, SignedRefusal> {
        let field = |k: &str| request[k].as_str().map(str::to_string);
        let key = field("key").ok_or(SignedRefusal::NoKey)?;
        let timestamp = field("timestamp").ok_or(SignedRefusal::NoTimestamp)?;
        let signature = field("signature").ok_or(SignedRefusal::NoSignature)?;
        fresh(&timestamp, None, now_ms())?;
        let payload = native_payload(&timestamp, "GET", "/api/v1/ws", "", "");
        Ok(self.x.authenticate(&SignedRequest {
            key_id: &key,
            payload: payload.as_bytes(),
            signature: &signature,
            from: self.ip,
            scope: Scope::Read,
        })?)
    }

    fn follow(&mut self, channel: &Channel) {
        if let Channel::Account = channel {
            if self.following.is_none()
                && let Some(account) = self.account
            {
                let (tx, mut changes) = mpsc::channel(256);
                let producer = tokio::spawn(account_changes::follow(self.x.clone(), account, tx));
                let out = self.tx.clone();
                self.following = Some(tokio::spawn(async move {
                    while let Some(change) = changes.recv().await {
                        if out.send(Incoming::Account(Box::new(change))).await.is_err() {
                            break;
                        }
                    }
                    producer.abort();
                }));
            }
            return;
        }
        let Some(symbol) = channel.symbol() else {
            return;
        };
        if self.markets.contains_key(symbol) {
            return;
        }
        let Some(mut diffs) = self.x.book_diffs(symbol) else {
            return;
        };
        let (out, name) = (self.tx.clone(), symbol.to_string());
        let task = tokio::spawn(async move {
            loop {
                let incoming = match diffs.recv().await {
                    Ok(d) => Incoming::Diff(name.clone(), d),
                    Err(broadcast::error::RecvError::Lagged(_)) => Incoming::Lagged(name.clone()),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let lagged = matches!(incoming, Incoming::Lagged(_));
                if out.send(incoming).await.is_err() || lagged {
                    return;
                }
            }
        });
        self.markets.insert(symbol.to_string(), task);
    }

    fn unfollow(&mut self) {
        let wanted: BTreeSet<String> = self
            .channels
            .iter()
            .filter_map(|c| c.symbol().map(str::to_string))
            .collect();
        self.markets.retain(|s, t| {
            let keep = wanted.contains(s);
            if !keep {
                t.abort();
            }
            keep
        });
        self.pending.retain(|s, _| wanted.contains(s));
        if !self.channels.contains(&Channel::Account)
            && let Some(t) = self.following.take()
        {
            t.abort();
        }
    }

    fn on_diff(&mut self, symbol: &str, diff: &BookDiff) -> Vec<Value> {
        let mut out = Vec::new();
        if self.channels.contains(&Channel::Trades(symbol.to_string())) {
            for t in &diff.trades {
                out.push(json!({ "channel": format!("trades:{symbol}"), "data": Trade::of(t) }));
            }
        }
        if !diff.trades.is_empty() {
            for c in &self.channels {
                if let Channel::Candles(s, label) = c
                    && s == symbol
                    && let Some(interval) = Interval::from_label(label)
                    && let Some(candle) = self
                        .x
                        .exact_candles(symbol, interval, None, None, 1)
                        .and_then(|c| c.last().copied())
                {
                    out.push(json!({ "channel": c.name(), "data": Candle::of(&candle) }));
                }
            }
        }
        if self.channels.contains(&Channel::Depth(symbol.to_string())) {
            self.pending
                .entry(symbol.to_string())
                .or_default()
                .add(diff);
        }
        out
    }

    fn on_tick(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        let levels = |side: &[(Decimal, Decimal)]| -> Vec<Value> {
            side.iter()
                .map(|(p, q)| json!({ "price": p.normalize(), "quantity": q.normalize() }))
                .collect()
        };
        for (symbol, sum) in self.pending.iter_mut() {
            let Some(d) = sum.take() else { continue };
            out.push(json!({
                "channel": format!("depth:{symbol}"),
                "data": {
                    "first_update": d.first_update, "last_update": d.last_update,
                    "bids": levels(&d.bids), "asks": levels(&d.asks),
                }
            }));
        }
        if now_ms() % 1000 < 100 {
            for c in &self.channels {
                if let Channel::Ticker(symbol) = c
                    && let Some(book) = self.x.book(symbol)
                {
                    let day = self.x.last_day(symbol).flatten();
                    let ticker = Ticker::of(symbol, day, &book);
                    out.push(json!({ "channel": c.name(), "data": ticker }));
                }
            }
        }
        out
    }
}

/// An account change as the `account` channel's message.
fn account_message(change: &AccountChange) -> Value {
    let data = match change {
        AccountChange::Order(u) => {
            let (record, change) = (&u.record, &u.change);
            let mut order = Order::of(record);
            if u.filled {
                order.state = "filled".to_string();
            }
            let (what, fill) = match change {
                OrderChange::New => ("new", None),
                OrderChange::Triggered => ("triggered", None),
                OrderChange::Amended => ("amended", None),
                OrderChange::Trade {
                    trade,
                    maker,
                    fee,
                    fee_asset,
                } => (
                    "trade",
                    Some(Fill {
                        symbol: record.symbol.clone(),
                        trade_id: trade.trade_id,
                        order_id: record.order_id.unwrap_or_default(),
                        side: record.terms.side.as_str().to_string(),
                        role: if *maker { "maker" } else { "taker" }.to_string(),
                        price: trade.price,
                        quantity: trade.quantity,
                        fee: *fee,
                        fee_asset: fee_asset.clone(),
                        at_ms: trade.executed_at / 1000,
                    }),
                ),
                OrderChange::Cancelled(_) => ("cancelled", None),
            };
            json!({ "change": what, "order": order, "fill": fill })
        }
        AccountChange::Balances(balances) => {
            let balances: Vec<Balance> = balances
                .iter()
                .map(|(asset, b)| Balance {
                    asset: asset.clone(),
                    total: b.total,
                    reserved: b.reserved,
                    available: b.available(),
                })
                .collect();
            json!({ "balances": balances })
        }
    };
    json!({ "channel": "account", "data": data })
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}
