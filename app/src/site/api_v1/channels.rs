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
//! REST depth). Subscribing to a candles channel sends its current candle
//! at once; a ticker comes within the second.
//!
//! **Resuming** after a reconnect: a subscribe may carry `"since"`, an
//! object from channel names to where the client got to:
//! - `trades:<symbol>`: the last trade id it has; it is sent every trade
//!   after it, then the live ones, none twice;
//! - `depth:<symbol>`: the `last_update` its book stands at; the next
//!   depth message joins it (its `first_update` at most that plus one);
//! - `account`: the `position` of the last account message it has; it is
//!   sent one `resumed` message (every trade of its orders since, and each
//!   order those events touched as it stands now), its balances, and then
//!   each change as ever.
//!
//! A market resumes only when the socket does not follow it yet. A point
//! further back than the server keeps (the last 2,048 changes of a
//! market; the feed's `--feed-replay-bytes` of the log for the account) is
//! refused with an error and nothing is subscribed: read REST instead.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accounts::api_key::Scope;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use orderbook::AccountId;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::schema::{Balance, Candle, Fill, Order, Ticker, Trade};
use crate::api::FeedPosition;
use crate::candles::Interval;
use crate::server::book_diffs::{self, BookDiff, DiffReceiver, DiffSum, Resume};
use crate::server::clock::now_ms;
use crate::server::feed_limits::{FeedLimits, WatchRate};
use crate::server::request_limits::{RESUME_WEIGHT, RequestLimits};
use crate::server::{Exchange, OrderRecord, SignedRequest};
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
            Socket::new(a.exchange, a.ip, a.limits, a.request_limits)
                .run(socket)
                .await;
        }),
    }
}

enum Incoming {
    Diff(String, Arc<BookDiff>),
    Lagged(String),
    Account(Box<AccountChange>),
}

/// Where a subscribe asked its channels to start.
type Since = BTreeMap<Channel, Value>;

struct Socket {
    x: Exchange,
    ip: std::net::IpAddr,
    limits: FeedLimits,
    /// The address's request weight, which each resume spends.
    request_limits: Option<RequestLimits>,
    /// Per market: the id of the last trade sent.
    trades_sent: BTreeMap<String, u64>,
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
    fn new(
        x: Exchange,
        ip: std::net::IpAddr,
        limits: FeedLimits,
        request_limits: Option<RequestLimits>,
    ) -> Socket {
        let (tx, rx) = mpsc::channel(256);
        Socket {
            x,
            ip,
            limits,
            request_limits,
            trades_sent: BTreeMap::new(),
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
        let mut rate = WatchRate::new(&self.limits, Instant::now());
        loop {
            let out: Vec<Value> = tokio::select! {
                message = socket.recv() => {
                    let Some(Ok(message)) = message else { return };
                    let body = match message {
                        Message::Text(t) => t.to_string(),
                        Message::Close(_) => return,
                        _ => continue,
                    };
                    if !rate.allow(Instant::now()) {
                        let _ = socket.send(text(json!({ "type": "error", "message": "too many requests on this socket" }))).await;
                        return;
                    }
                    self.request(&body).await
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

    /// A client's request: its answer first, then what a subscribe sends
    /// at once (missed trades, current candles).
    async fn request(&mut self, body: &str) -> Vec<Value> {
        let error = |message: String| vec![json!({ "type": "error", "message": message })];
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
                    vec![json!({ "type": "logged_in" })]
                }
                Err(e) => error(e.to_string()),
            },
            Some("subscribe") => match self.subscribe(&names, &request["since"]) {
                Ok(sent) => {
                    let mut out = vec![self.subscribed()];
                    out.extend(sent);
                    out
                }
                Err(e) => error(e),
            },
            Some("unsubscribe") => {
                for name in &names {
                    if let Ok(c) = Channel::parse(&self.x, name) {
                        self.channels.remove(&c);
                    }
                }
                self.unfollow();
                vec![self.subscribed()]
            }
            _ => error("op is login, subscribe or unsubscribe".into()),
        }
    }

    fn subscribed(&self) -> Value {
        let channels: Vec<String> = self.channels.iter().map(Channel::name).collect();
        json!({ "type": "subscribed", "channels": channels })
    }

    /// Subscribes to `names`, each from where `since` says (see the module
    /// docs), and gives what is sent at once; or why not, having changed
    /// nothing.
    fn subscribe(&mut self, names: &[String], since: &Value) -> Result<Vec<Value>, String> {
        let mut parsed = Vec::new();
        for name in names {
            parsed.push(Channel::parse(&self.x, name)?);
        }
        if self.channels.len() + parsed.len() > MAX_CHANNELS {
            return Err(format!("a socket follows at most {MAX_CHANNELS} channels"));
        }
        if parsed.contains(&Channel::Account) && self.account.is_none() {
            return Err("log in first: the account channel needs a key with the read scope".into());
        }
        let since = self.since(&parsed, since)?;
        // A resume reads what was missed: it spends the address's weight
        // (as a page's feed resume does) before anything is read.
        if !since.is_empty()
            && let Some(limits) = &self.request_limits
        {
            limits
                .costly(self.ip, RESUME_WEIGHT, Instant::now())
                .map_err(|over| format!("{over}; or subscribe without since"))?;
        }
        // Every market resumed, checked before anything is followed.
        let mut resumed = BTreeMap::new();
        for (channel, at) in &since {
            let (Some(symbol), Some(at)) = (channel.symbol(), at.as_u64()) else {
                continue;
            };
            let resume = match channel {
                Channel::Trades(_) => Resume::Trade(at),
                _ => Resume::Update(at),
            };
            let entry: &mut Vec<Resume> = resumed.entry(symbol.to_string()).or_default();
            entry.push(resume);
        }
        let mut follows = BTreeMap::new();
        for (symbol, from) in &resumed {
            let diffs = self
                .x
                .book_diffs(symbol)
                .ok_or(format!("there is no market {symbol}"))?;
            let followed = diffs.follow(from).map_err(|e| format!("{symbol}: {e}"))?;
            follows.insert(symbol.clone(), followed);
        }
        let account_since = match since.get(&Channel::Account) {
            Some(at) => {
                Some(position(at).ok_or("account: since is a position an account message gave")?)
            }
            None => None,
        };
        if let Some(at) = account_since
            && !account_changes::may_resume(&self.x, at, self.limits.replay_bytes)
        {
            return Err("account: that position is further back than a resume may read; read the orders over REST".into());
        }
        let mut out = Vec::new();
        for (symbol, (kept, rx)) in follows {
            for diff in &kept {
                for (channel, at) in &since {
                    match channel {
                        Channel::Trades(s) if *s == symbol => {
                            let after = at.as_u64().unwrap_or(u64::MAX);
                            for t in diff.trades.iter().filter(|t| t.trade_id > after) {
                                out.push(trade_message(&symbol, t));
                                self.trades_sent.insert(symbol.clone(), t.trade_id);
                            }
                        }
                        Channel::Depth(s)
                            if *s == symbol
                                && diff.last_update > at.as_u64().unwrap_or(u64::MAX) =>
                        {
                            self.pending.entry(symbol.clone()).or_default().add(diff);
                        }
                        _ => {}
                    }
                }
            }
            self.start_market(&symbol, rx);
        }
        for c in parsed {
            self.follow(&c, account_since);
            if let Channel::Candles(symbol, label) = &c
                && let Some(candle) = self.current_candle(symbol, label)
            {
                out.push(json!({ "channel": c.name(), "data": candle }));
            }
            self.channels.insert(c);
        }
        Ok(out)
    }

    /// `since` read against the channels subscribed: each names one of
    /// them, of a market the socket does not follow yet.
    fn since(&self, parsed: &[Channel], since: &Value) -> Result<Since, String> {
        let Some(asked) = since.as_object() else {
            return match since {
                Value::Null => Ok(Since::new()),
                _ => Err("since is an object from channel names to where each got to".into()),
            };
        };
        let mut out = Since::new();
        for (name, at) in asked {
            let channel = Channel::parse(&self.x, name)?;
            if !parsed.contains(&channel) {
                return Err(format!("since names {name}, which this subscribe does not"));
            }
            match &channel {
                Channel::Trades(_) | Channel::Depth(_) if at.as_u64().is_none() => {
                    return Err(format!("since of {name} is a whole number"));
                }
                Channel::Candles(..) | Channel::Ticker(_) => {
                    return Err(format!(
                        "{name} needs no since: subscribing sends the current one"
                    ));
                }
                _ => {}
            }
            if let Some(symbol) = channel.symbol()
                && self.markets.contains_key(symbol)
            {
                return Err(format!(
                    "{name}: this socket already follows {symbol}; a market resumes only when first subscribed"
                ));
            }
            out.insert(channel, at.clone());
        }
        Ok(out)
    }

    fn current_candle(&self, symbol: &str, label: &str) -> Option<Candle> {
        let interval = Interval::from_label(label)?;
        let candles = self.x.exact_candles(symbol, interval, None, None, 1)?;
        candles.last().map(Candle::of)
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

    fn follow(&mut self, channel: &Channel, since: Option<FeedPosition>) {
        if let Channel::Account = channel {
            if self.following.is_none()
                && let Some(account) = self.account
            {
                let (tx, mut changes) = mpsc::channel(256);
                let x = self.x.clone();
                let producer = tokio::spawn(account_changes::follow(x, account, since, tx));
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
        if let Some(diffs) = self.x.book_diffs(symbol) {
            self.start_market(symbol, diffs.subscribe());
        }
    }

    /// Brings a market's diffs from `rx` to this socket.
    fn start_market(&mut self, symbol: &str, rx: DiffReceiver) {
        let name = symbol.to_string();
        let task = book_diffs::forward(rx, self.tx.clone(), move |d| match d {
            Some(d) => Incoming::Diff(name.clone(), d),
            None => Incoming::Lagged(name.clone()),
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
        self.trades_sent.retain(|s, _| wanted.contains(s));
        if !self.channels.contains(&Channel::Account)
            && let Some(t) = self.following.take()
        {
            t.abort();
        }
    }

    fn on_diff(&mut self, symbol: &str, diff: &BookDiff) -> Vec<Value> {
        let mut out = Vec::new();
        if self.channels.contains(&Channel::Trades(symbol.to_string())) {
            let sent = self.trades_sent.get(symbol).copied().unwrap_or(0);
            for t in diff.trades.iter().filter(|t| t.trade_id > sent) {
                out.push(trade_message(symbol, t));
                self.trades_sent.insert(symbol.to_string(), t.trade_id);
            }
        }
        if !diff.trades.is_empty() {
            for c in &self.channels {
                if let Channel::Candles(s, label) = c
                    && s == symbol
                    && let Some(candle) = self.current_candle(symbol, label)
                {
                    out.push(json!({ "channel": c.name(), "data": candle }));
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

/// An account change as the `account` channel's message, with the
/// position a client resumes from.
fn account_message(change: &AccountChange) -> Value {
    let (data, at) = match change {
        AccountChange::Caught(caught) => {
            let trades: Vec<Fill> = caught
                .trades
                .iter()
                .filter_map(|m| fill(&m.symbol, m.order_id, &m.change))
                .collect();
            let orders: Vec<Order> = caught.orders.iter().map(Order::of).collect();
            let resumed = json!({ "trades": trades, "orders": orders });
            (
                json!({ "change": "resumed", "resumed": resumed }),
                caught.position,
            )
        }
        AccountChange::Order(u) => {
            let mut order = Order::of(&u.record);
            if u.filled {
                order.state = "filled".to_string();
            }
            let what = match &u.change {
                OrderChange::New => "new",
                OrderChange::Triggered => "triggered",
                OrderChange::Amended => "amended",
                OrderChange::Trade { .. } => "trade",
                OrderChange::Cancelled(_) => "cancelled",
            };
            let fill = record_fill(&u.record, &u.change);
            (
                json!({ "change": what, "order": order, "fill": fill }),
                u.position,
            )
        }
        AccountChange::Balances(balances, at) => {
            let balances: Vec<Balance> = balances
                .iter()
                .map(|(asset, b)| Balance {
                    asset: asset.clone(),
                    total: b.total,
                    reserved: b.reserved,
                    available: b.available(),
                })
                .collect();
            (json!({ "balances": balances }), *at)
        }
    };
    json!({ "channel": "account", "position": position_text(at), "data": data })
}

fn record_fill(record: &OrderRecord, change: &OrderChange) -> Option<Fill> {
    fill(&record.symbol, record.order_id?, change)
}

/// A trade of one of the account's orders, as a [`Fill`].
fn fill(symbol: &str, order_id: u64, change: &OrderChange) -> Option<Fill> {
    let OrderChange::Trade {
        trade,
        maker,
        fee,
        fee_asset,
    } = change
    else {
        return None;
    };
    let side = if *maker {
        trade.taker_side.opposite()
    } else {
        trade.taker_side
    };
    Some(Fill {
        symbol: symbol.to_string(),
        trade_id: trade.trade_id,
        order_id,
        side: side.as_str().to_string(),
        role: if *maker { "maker" } else { "taker" }.to_string(),
        price: trade.price,
        quantity: trade.quantity,
        fee: *fee,
        fee_asset: fee_asset.clone(),
        at_ms: trade.executed_at / 1000,
    })
}

fn trade_message(symbol: &str, trade: &orderbook::TradeExecuted) -> Value {
    json!({ "channel": format!("trades:{symbol}"), "data": Trade::of(trade) })
}

/// A log position as the account channel writes it: `commit-prepare`.
fn position_text(p: FeedPosition) -> String {
    format!("{}-{}", p.commit, p.prepare)
}

fn position(v: &Value) -> Option<FeedPosition> {
    let (commit, prepare) = v.as_str()?.split_once('-')?;
    Some(FeedPosition {
        commit: commit.parse().ok()?,
        prepare: prepare.parse().ok()?,
    })
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}
