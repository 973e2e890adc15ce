//! An account's changes as they reach the log, for the sockets that push
//! them to programs (the Binance-compatible account stream and the native
//! API's `account` channel): each change of one of its orders (with the
//! order as it stands after it) and then its balances. The orders are
//! followed from a copy of the order history taken with the log position
//! it is the fold of, so no change is missed or sent twice; the balances
//! are the ledger's once it has folded the change.
//!
//! Every change carries the log position it was made at, and a follower
//! may start from such a position (a program that reconnects): it is
//! first told, in one [`Caught`], every trade of its orders since that
//! position and each order those events touched as it stands now, and
//! then each change from there, as ever. A position further back than the
//! feed's replay limit is refused, as the page's feed would read it.

use std::collections::BTreeMap;
use std::time::Duration;

use accounts::Balance;
use orderbook::{AccountId, CancelReason, Event, Side, TradeExecuted};
use rust_decimal::Decimal;
use tokio::sync::mpsc;

use crate::api::FeedPosition;
use crate::server::live_tail::Streams;
use crate::server::order_history::OrderHistory;
use crate::server::{Exchange, OrderRecord};

/// What happened to an order.
#[derive(Clone, Debug, PartialEq)]
pub enum OrderChange {
    /// It was accepted (resting, or waiting for its trigger).
    New,
    /// Its trigger fired: it entered the book.
    Triggered,
    Amended,
    /// It traded: the trade, whether it was the maker, and its fee in the
    /// asset it received.
    Trade {
        trade: TradeExecuted,
        maker: bool,
        fee: Decimal,
        fee_asset: String,
    },
    /// It left the book with something unfilled.
    Cancelled(CancelReason),
}

/// A change of one of the account's orders.
#[derive(Clone, Debug)]
pub struct OrderUpdate {
    pub symbol: String,
    /// The order after the change; `filled` says when a trade was its
    /// last (its state says so only once its `OrderFilled` is folded).
    pub record: OrderRecord,
    pub change: OrderChange,
    pub filled: bool,
    pub at_ms: u64,
    /// Where in the log the change was made: a follower that resumes from
    /// here is told of every change after it.
    pub position: FeedPosition,
}

/// A trade of one of the account's orders, told to a follower that
/// resumes.
#[derive(Clone, Debug)]
pub struct MissedTrade {
    pub symbol: String,
    pub order_id: u64,
    /// An [`OrderChange::Trade`].
    pub change: OrderChange,
}

/// What a follower that resumes missed: the trades of its orders since
/// its position, and each order the missed events touched as it stands
/// at `position`, which is where the changes told after it start.
#[derive(Clone, Debug)]
pub struct Caught {
    pub trades: Vec<MissedTrade>,
    pub orders: Vec<OrderRecord>,
    pub position: FeedPosition,
}

/// One change the account's socket is told of.
#[derive(Clone, Debug)]
pub enum AccountChange {
    Caught(Box<Caught>),
    Order(Box<OrderUpdate>),
    /// The balances after the changes up to the position.
    Balances(BTreeMap<String, Balance>, FeedPosition),
}

/// Whether a follower may resume from `since`: within `replay_bytes` of
/// the log's window.
pub fn may_resume(x: &Exchange, since: FeedPosition, replay_bytes: u64) -> bool {
    x.tail().bytes_behind(since) <= replay_bytes
}

/// Follows `account` until the receiver is dropped, from `since` when
/// given (see the module docs; check it with [`may_resume`] first).
pub async fn follow(
    x: Exchange,
    account: AccountId,
    since: Option<FeedPosition>,
    tx: mpsc::Sender<AccountChange>,
) {
    let (open, position) = x.open_orders_at(account);
    if let (Some(since), Some(now)) = (since, position)
        && since < now
    {
        let (caught, last) = catch_up(&x, account, since, now, &open).await;
        if tx
            .send(AccountChange::Caught(Box::new(caught)))
            .await
            .is_err()
        {
            return;
        }
        if !send_balances(&x, account, last, now, &tx).await {
            return;
        }
    }
    let mut mine = OrderHistory::default();
    for o in open {
        mine.adopt(account, o);
    }
    let mut reader = x.tail().reader(Streams::Markets, position);
    loop {
        let progress = reader.next_retrying("an account stream").await;
        let events: Vec<Mine> = progress
            .events
            .iter()
            .filter_map(|e| {
                let event = e.book()?;
                Some((event.symbol().as_str(), e.revision, event, e.position))
            })
            .collect();
        let mut touched: Option<(String, u64, FeedPosition)> = None;
        for (i, (symbol, revision, event, position)) in events.iter().enumerate() {
            // Kept whole: each change is sent with the order's record.
            mine.apply_market(event, None);
            let Some(change) = order_change(&x, &mine, account, &events[i..]) else {
                continue;
            };
            touched = Some((symbol.to_string(), *revision, *position));
            if tx.send(change).await.is_err() {
                return;
            }
        }
        if let Some((symbol, revision, position)) = touched
            && !send_balances(&x, account, [(symbol, revision)], position, &tx).await
        {
            return;
        }
    }
}

/// Sends the account's balances as of `position`, once the ledger has
/// folded each market's event at the revision given (waiting up to two
/// seconds for each); false when the receiver is gone.
async fn send_balances(
    x: &Exchange,
    account: AccountId,
    folded: impl IntoIterator<Item = (String, u64)>,
    position: FeedPosition,
    tx: &mpsc::Sender<AccountChange>,
) -> bool {
    for (symbol, revision) in folded {
        for _ in 0..400 {
            if x.ledger_reached(&symbol) > revision {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let balances = AccountChange::Balances(x.balances(account), position);
    tx.send(balances).await.is_ok()
}

/// A market event read: its market, revision, the event and its position.
type Mine<'a> = (&'a str, u64, &'a Event, FeedPosition);

/// What happened to the account's orders between `since` and `now`, where
/// `open` are its open orders at `now`: read from the log, which a
/// caller has checked is near enough ([`may_resume`]); with the last
/// revision of each market whose events touched them.
async fn catch_up(
    x: &Exchange,
    account: AccountId,
    since: FeedPosition,
    now: FeedPosition,
    open: &[OrderRecord],
) -> (Caught, BTreeMap<String, u64>) {
    let mut trades = Vec::new();
    let mut last = BTreeMap::new();
    let mut touched = std::collections::BTreeSet::new();
    let mut reader = x.tail().reader(Streams::Markets, Some(since));
    'read: loop {
        let progress = reader.next_retrying("an account stream").await;
        for e in &progress.events {
            if e.position > now {
                break 'read;
            }
            let Some(event) = e.book() else { continue };
            let symbol = event.symbol().as_str();
            let Some((order_id, change)) = change_of(x, account, symbol, event) else {
                continue;
            };
            touched.insert((symbol.to_string(), order_id));
            last.insert(symbol.to_string(), e.revision);
            if let OrderChange::Trade { .. } = change {
                let symbol = symbol.to_string();
                trades.push(MissedTrade {
                    symbol,
                    order_id,
                    change,
                });
            }
        }
        if progress.position.is_some_and(|p| p >= now) {
            break;
        }
    }
    // Those open at `now` are as `open` has them; the others had closed
    // by then, and a closed order changes no more.
    let mut orders = Vec::new();
    for (symbol, order_id) in touched {
        let record = match open
            .iter()
            .find(|o| *o.symbol == *symbol && o.order_id == Some(order_id))
        {
            Some(o) => Some(o.clone()),
            // Read as the reader of the tail reads: again until the
            // store answers, rather than leave the order out.
            None => loop {
                let which = crate::server::OrderRef::Id(order_id);
                match x.order_record(account, &symbol, &which).await {
                    Ok(record) => break record,
                    Err(e) => {
                        tracing::warn!("an account stream's catch-up, reading again: {e}");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            },
        };
        orders.extend(record);
    }
    let caught = Caught {
        trades,
        orders,
        position: now,
    };
    (caught, last)
}

/// The account's order an event is about, and what it does to it.
fn change_of(
    x: &Exchange,
    account: AccountId,
    symbol: &str,
    event: &Event,
) -> Option<(u64, OrderChange)> {
    match event {
        Event::OrderAccepted(a) if a.account == account => Some((a.order_id, OrderChange::New)),
        Event::StopTriggered(s) if s.account == account => {
            Some((s.order_id, OrderChange::Triggered))
        }
        Event::OrderAmended(a) if a.account == account => Some((a.order_id, OrderChange::Amended)),
        Event::OrderCancelled(c) if c.account == account => {
            Some((c.order_id, OrderChange::Cancelled(c.reason)))
        }
        Event::TradeExecuted(t) => trade_change(x, account, symbol, t),
        _ => None,
    }
}

/// A trade as a change of the account's order in it.
fn trade_change(
    x: &Exchange,
    account: AccountId,
    symbol: &str,
    t: &TradeExecuted,
) -> Option<(u64, OrderChange)> {
    let maker = t.maker_account == account;
    if !maker && t.taker_account != account {
        return None;
    }
    let side = if maker {
        t.taker_side.opposite()
    } else {
        t.taker_side
    };
    let spec = x.market_spec(symbol)?;
    let fee = t
        .fees
        .as_deref()
        .map_or(Decimal::ZERO, |f| if maker { f.maker } else { f.taker });
    let fee_asset = if side == Side::Buy {
        spec.base
    } else {
        spec.quote
    };
    let id = if maker {
        t.maker_order_id
    } else {
        t.taker_order_id
    };
    let change = OrderChange::Trade {
        trade: t.clone(),
        maker,
        fee,
        fee_asset,
    };
    Some((id, change))
}

/// The change the first of `events` makes to one of the account's orders
/// (the rest follow it).
fn order_change(
    x: &Exchange,
    mine: &OrderHistory,
    account: AccountId,
    events: &[Mine],
) -> Option<AccountChange> {
    let (symbol, _, event, position) = events[0];
    let after = &events[1..];
    let (order_id, change) = change_of(x, account, symbol, event)?;
    // `mine` folds without revisions, so it keeps every order whole.
    let record = mine
        .order(account, symbol, order_id)?
        .entry
        .whole()?
        .clone();
    let filled = matches!(change, OrderChange::Trade { .. }) && completes(order_id, after);
    Some(AccountChange::Order(Box::new(OrderUpdate {
        symbol: symbol.to_string(),
        record,
        change,
        filled,
        at_ms: event.at() / 1000,
        position,
    })))
}

/// Whether the order's next word in these events is that it filled.
fn completes(order_id: u64, after: &[Mine]) -> bool {
    for (_, _, e, _) in after {
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
