//! Binance's market streams over a websocket, at `/compat/binance/ws` and
//! any path under it (ccxt opens `/ws/0`, `/ws/1`, ...; `/ws/<stream>`
//! subscribes to that stream at once). A client sends
//! `{"method":"SUBSCRIBE","params":["btcusd@trade"],"id":1}` (and
//! `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`) and gets each stream's events:
//!
//! - `<symbol>@trade` and `<symbol>@aggTrade`: every trade;
//! - `<symbol>@kline_<interval>`: the current candle after each trade;
//! - `<symbol>@ticker` and `<symbol>@miniTicker`: the 24-hour ticker,
//!   each second;
//! - `<symbol>@depth` and `<symbol>@depth@100ms`: the whole book's diffs
//!   every second or 100 ms, with `U`/`u` from the counter the REST
//!   depth's `lastUpdateId` reports, so a local book syncs without gaps.
//!
//! A client that falls too far behind is closed (it reconnects and syncs
//! again); one address holds at most the feed's socket limit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket};
use axum::response::Response;
use orderbook::{MarketSpec, Side};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::reply::market_id;
use super::wire::number;
use crate::candles::Interval;
use crate::server::Exchange;
use crate::server::book_diffs::{self, BookDiff, DiffSum};
use crate::server::clock::now_ms;
use crate::server::feed_limits::WatchRate;
use crate::site::socket_admission::admit;

/// The most streams one connection may follow.
const MAX_STREAMS: usize = 200;

/// One stream a client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Trade,
    AggTrade,
    Kline(Interval),
    Ticker,
    MiniTicker,
    Depth { every_ms: u64 },
}

/// `/ws` and anything under it: a stream name in the path is subscribed.
pub async fn serve(request: Request) -> Response {
    let first: Vec<String> = request
        .uri()
        .path()
        .split('/')
        .filter(|s| s.contains('@'))
        .map(str::to_string)
        .collect();
    match admit(request).await {
        Err(refused) => refused,
        Ok(a) => a.upgrade.on_upgrade(move |socket| async move {
            let _slot = a.slot;
            let rate = WatchRate::new(&a.limits, Instant::now());
            Connection::new(a.exchange).run(socket, first, rate).await;
        }),
    }
}

/// What a connection follows, and the tasks that bring it each market's
/// diffs.
struct Connection {
    x: Exchange,
    streams: BTreeMap<String, (MarketSpec, Kind)>,
    /// Per market followed: the task forwarding its diffs.
    forwarders: BTreeMap<String, JoinHandle<()>>,
    tx: mpsc::Sender<Incoming>,
    rx: mpsc::Receiver<Incoming>,
    /// Depth diffs gathered since the last send, per market, and when the
    /// last was sent.
    pending: BTreeMap<String, (DiffSum, u64)>,
    /// Per market with a kline stream: the update id its candles must
    /// reach before the candle after its last trades is sent.
    klines_due: BTreeMap<String, u64>,
}

enum Incoming {
    Diff(String, Arc<BookDiff>),
    Lagged(String),
}

impl Drop for Connection {
    fn drop(&mut self) {
        for task in self.forwarders.values() {
            task.abort();
        }
    }
}

impl Connection {
    fn new(x: Exchange) -> Connection {
        let (tx, rx) = mpsc::channel(256);
        Connection {
            x,
            streams: BTreeMap::new(),
            forwarders: BTreeMap::new(),
            tx,
            rx,
            pending: BTreeMap::new(),
            klines_due: BTreeMap::new(),
        }
    }

    /// Serves the connection, taking requests at `rate` (the feed's:
    /// five a second, as Binance's, unless the operator says otherwise).
    async fn run(mut self, mut socket: WebSocket, first: Vec<String>, mut rate: WatchRate) {
        if !first.is_empty()
            && let Err(e) = self.subscribe(&first)
        {
            let _ = socket
                .send(text(json!({ "error": { "code": 2, "msg": e } })))
                .await;
            return;
        }
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                message = socket.recv() => {
                    let Some(Ok(message)) = message else { return };
                    let text = match message {
                        Message::Text(t) => t.to_string(),
                        Message::Close(_) => return,
                        _ => continue,
                    };
                    if !rate.allow(Instant::now()) {
                        let _ = socket.send(text_error(None, 3, "too many requests on this connection")).await;
                        return;
                    }
                    let answer = self.request(&text);
                    if socket.send(answer).await.is_err() {
                        return;
                    }
                }
                Some(incoming) = self.rx.recv() => {
                    match incoming {
                        Incoming::Diff(symbol, diff) => {
                            for m in self.on_diff(&symbol, &diff) {
                                if socket.send(m).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Incoming::Lagged(symbol) => {
                            tracing::info!(symbol, "a market stream client fell behind; closing it");
                            let _ = socket.send(Message::Close(None)).await;
                            return;
                        }
                    }
                }
                _ = tick.tick() => {
                    for m in self.on_tick() {
                        if socket.send(m).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    }

    /// A client's request, answered.
    fn request(&mut self, body: &str) -> Message {
        let Ok(request) = serde_json::from_str::<Value>(body) else {
            return text_error(None, 2, "the request is not JSON");
        };
        let id = request.get("id").cloned();
        let params: Vec<String> = request
            .get("params")
            .and_then(|p| p.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let result = match request.get("method").and_then(|m| m.as_str()) {
            Some("SUBSCRIBE") => self.subscribe(&params).map(|()| Value::Null),
            Some("UNSUBSCRIBE") => {
                for p in &params {
                    self.streams.remove(&p.to_lowercase());
                }
                self.drop_unfollowed();
                Ok(Value::Null)
            }
            Some("LIST_SUBSCRIPTIONS") => Ok(json!(self.streams.keys().collect::<Vec<_>>())),
            Some(other) => Err(format!(
                "unknown method {other}: use SUBSCRIBE, UNSUBSCRIBE or LIST_SUBSCRIPTIONS"
            )),
            None => Err("a request needs a method".to_string()),
        };
        match result {
            Ok(result) => text(json!({ "result": result, "id": id })),
            Err(msg) => text_error(id, 2, &msg),
        }
    }

    fn subscribe(&mut self, names: &[String]) -> Result<(), String> {
        let specs = self.x.market_specs();
        let mut parsed = Vec::new();
        for name in names {
            parsed.push((name.to_lowercase(), parse_stream(&specs, name)?));
        }
        if self.streams.len() + parsed.len() > MAX_STREAMS {
            return Err(format!(
                "a connection follows at most {MAX_STREAMS} streams"
            ));
        }
        for (name, (spec, kind)) in parsed {
            self.follow(&spec.symbol);
            self.streams.insert(name, (spec, kind));
        }
        Ok(())
    }

    /// Starts bringing a market's diffs here, if nothing does yet.
    fn follow(&mut self, symbol: &str) {
        if self.forwarders.contains_key(symbol) {
            return;
        }
        let Some(diffs) = self.x.book_diffs(symbol) else {
            return;
        };
        let name = symbol.to_string();
        let task = book_diffs::forward(diffs.subscribe(), self.tx.clone(), move |d| match d {
            Some(d) => Incoming::Diff(name.clone(), d),
            None => Incoming::Lagged(name.clone()),
        });
        self.forwarders.insert(symbol.to_string(), task);
    }

    /// Stops the forwarders of markets no stream follows any more.
    fn drop_unfollowed(&mut self) {
        let followed: BTreeSet<String> = self
            .streams
            .values()
            .map(|(s, _)| s.symbol.clone())
            .collect();
        self.forwarders.retain(|symbol, task| {
            let keep = followed.contains(symbol);
            if !keep {
                task.abort();
            }
            keep
        });
        self.pending.retain(|symbol, _| followed.contains(symbol));
        self.klines_due
            .retain(|symbol, _| followed.contains(symbol));
    }

    /// What a diff sends now: trades and candles at once; depth is
    /// gathered for the next tick.
    fn on_diff(&mut self, symbol: &str, diff: &BookDiff) -> Vec<Message> {
        let mut out = Vec::new();
        let now = now_ms();
        let mut depth = false;
        for (spec, kind) in self.streams.values().filter(|(s, _)| s.symbol == symbol) {
            let id = market_id(spec);
            match kind {
                Kind::Trade => out.extend(diff.trades.iter().map(|t| {
                    text(json!({
                        "e": "trade", "E": now, "s": id, "t": t.trade_id, "p": number(t.price),
                        "q": number(t.quantity), "T": t.executed_at / 1000,
                        "m": t.taker_side == Side::Sell, "M": true,
                    }))
                })),
                Kind::AggTrade => out.extend(diff.trades.iter().map(|t| {
                    text(json!({
                        "e": "aggTrade", "E": now, "s": id, "a": t.trade_id, "p": number(t.price),
                        "q": number(t.quantity), "f": t.trade_id, "l": t.trade_id,
                        "T": t.executed_at / 1000, "m": t.taker_side == Side::Sell, "M": true,
                    }))
                })),
                Kind::Kline(_) if !diff.trades.is_empty() => {
                    self.klines_due.insert(symbol.to_string(), diff.last_update);
                }
                Kind::Depth { .. } => depth = true,
                _ => {}
            }
        }
        if depth {
            self.pending
                .entry(symbol.to_string())
                .or_default()
                .0
                .add(diff);
        }
        out.extend(self.due_klines());
        out
    }

    /// The candles after the trades seen, for each market whose candles
    /// now hold them; the others stay due and are tried at the next tick.
    fn due_klines(&mut self) -> Vec<Message> {
        let now = now_ms();
        let mut out = Vec::new();
        self.klines_due.retain(|symbol, events| {
            let ready = self.x.candle_events(symbol).unwrap_or(0) >= *events;
            if !ready {
                return true;
            }
            for (spec, kind) in self.streams.values() {
                let Kind::Kline(interval) = *kind else {
                    continue;
                };
                if spec.symbol != *symbol {
                    continue;
                }
                let candle = self.x.exact_candles(symbol, interval, None, None, 1);
                let Some(c) = candle.and_then(|c| c.last().copied()) else {
                    continue;
                };
                let id = market_id(spec);
                out.push(text(json!({
                    "e": "kline", "E": now, "s": id,
                    "k": {
                        "t": c.start_ms, "T": c.start_ms + interval.millis() - 1, "s": id,
                        "i": interval.label(), "f": -1, "L": -1,
                        "o": number(c.open), "c": number(c.close), "h": number(c.high),
                        "l": number(c.low), "v": number(c.volume), "n": c.trades,
                        "x": false, "q": number(c.quote_volume), "V": "0", "Q": "0", "B": "0",
                    }
                })));
            }
            false
        });
        out
    }

    /// Every 100 ms: the klines and depth diffs that are due, and each
    /// second the tickers.
    fn on_tick(&mut self) -> Vec<Message> {
        let now = now_ms();
        let mut out = self.due_klines();
        let streams: Vec<(MarketSpec, Kind)> = self.streams.values().cloned().collect();
        for (spec, kind) in &streams {
            let id = market_id(spec);
            match kind {
                Kind::Depth { every_ms } => {
                    let Some((sum, last_sent)) = self.pending.get_mut(&spec.symbol) else {
                        continue;
                    };
                    if now < *last_sent + every_ms {
                        continue;
                    }
                    let Some(d) = sum.take() else {
                        continue;
                    };
                    *last_sent = now;
                    let side = |levels: &[(Decimal, Decimal)]| -> Vec<[String; 2]> {
                        levels
                            .iter()
                            .map(|(p, q)| [number(*p), number(*q)])
                            .collect()
                    };
                    out.push(text(json!({
                        "e": "depthUpdate", "E": now, "s": id, "U": d.first_update,
                        "u": d.last_update, "b": side(&d.bids), "a": side(&d.asks),
                    })));
                }
                Kind::MiniTicker if now % 1000 < 100 => {
                    let Some(Some(d)) = self.x.last_day(&spec.symbol) else {
                        continue;
                    };
                    out.push(text(json!({
                        "e": "24hrMiniTicker", "E": now, "s": id,
                        "c": number(d.close), "o": number(d.open), "h": number(d.high),
                        "l": number(d.low), "v": number(d.volume), "q": number(d.quote_volume),
                    })));
                }
                Kind::Ticker if now % 1000 < 100 => {
                    let Some(Some(d)) = self.x.last_day(&spec.symbol) else {
                        continue;
                    };
                    let change = d.close - d.open;
                    out.push(text(json!({
                        "e": "24hrTicker", "E": now, "s": id,
                        "p": number(change),
                        "P": number((change * Decimal::ONE_HUNDRED / d.open).round_dp(3)),
                        "w": number((d.quote_volume / d.volume).round_dp(spec.tick_size.scale())),
                        "c": number(d.close), "o": number(d.open), "h": number(d.high),
                        "l": number(d.low), "v": number(d.volume), "q": number(d.quote_volume),
                        "O": d.start_ms, "C": now, "n": d.trades,
                    })));
                }
                _ => {}
            }
        }
        out
    }
}

/// A stream's name read: `<symbol>@<kind>`.
fn parse_stream(specs: &[MarketSpec], name: &str) -> Result<(MarketSpec, Kind), String> {
    let lower = name.to_lowercase();
    let (id, kind) = lower
        .split_once('@')
        .ok_or_else(|| format!("{name}: a stream is <symbol>@<kind>"))?;
    let spec = specs
        .iter()
        .find(|s| market_id(s).to_lowercase() == id)
        .ok_or_else(|| format!("{name}: there is no market {id}"))?
        .clone();
    let kind = match kind {
        "trade" => Kind::Trade,
        "aggtrade" => Kind::AggTrade,
        "ticker" => Kind::Ticker,
        "miniticker" => Kind::MiniTicker,
        "depth" | "depth@1000ms" => Kind::Depth { every_ms: 1000 },
        "depth@100ms" => Kind::Depth { every_ms: 100 },
        k => match k.strip_prefix("kline_").and_then(Interval::from_label) {
            Some(i) => Kind::Kline(i),
            None => {
                return Err(format!(
                    "{name}: the streams are trade, aggTrade, kline_<interval>, ticker, miniTicker, depth \
                     and depth@100ms"
                ));
            }
        },
    };
    Ok((spec, kind))
}

fn text(value: Value) -> Message {
    Message::Text(value.to_string().into())
}

fn text_error(id: Option<Value>, code: i32, msg: &str) -> Message {
    text(json!({ "error": { "code": code, "msg": msg }, "id": id }))
}
