//! The live feed, driven as the websocket server function drives it.

use std::time::Duration;

use futures::{SinkExt, StreamExt, channel::mpsc};
use leptos::prelude::ServerFnError;
use rust_decimal::Decimal;

use super::feed::open;
use super::*;
use crate::api::{FeedMessage, FeedPosition, FeedRequest};

async fn exchange(dir: &std::path::Path) -> Exchange {
    let settings = Settings::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/exchange.json"
    )))
    .unwrap();
    Exchange::start(
        settings,
        Connection::Embedded {
            data: dir.join("events"),
        },
    )
    .await
    .unwrap()
}

async fn trader(x: &Exchange, name: &str) -> orderbook::AccountId {
    let token = x.sign_up(name, "correct horse").await.unwrap();
    let account = x.account_for(&token).unwrap();
    x.claim_faucet(account).await.unwrap();
    account
}

fn limit(side: orderbook::Side, price: u64, qty: &str) -> OrderRequest {
    OrderRequest {
        side,
        order_type: orderbook::OrderType::Limit,
        price: Some(Decimal::from(price)),
        quantity: Some(qty.parse().unwrap()),
        quote_amount: None,
        time_in_force: None,
        post_only: false,
    }
}

/// `n` trades on a market: sells resting, buys crossing them.
async fn trade(x: &Exchange, symbol: &str, seller: u64, buyer: u64, n: usize) {
    for _ in 0..n {
        x.place(seller, symbol, limit(orderbook::Side::Sell, 100, "0.01"))
            .await
            .unwrap();
        x.place(buyer, symbol, limit(orderbook::Side::Buy, 100, "0.01"))
            .await
            .unwrap();
    }
}

struct Feed {
    requests: mpsc::Sender<Result<FeedRequest, ServerFnError>>,
    messages: tokio_stream::wrappers::ReceiverStream<Result<FeedMessage, ServerFnError>>,
}

impl Feed {
    fn open(x: &Exchange) -> Feed {
        let (requests, rx) = mpsc::channel(4);
        Feed {
            requests,
            messages: open(x.clone(), rx.into()),
        }
    }

    async fn watch(&mut self, symbol: &str, from: Option<FeedPosition>) {
        let symbol = symbol.to_string();
        self.requests
            .send(Ok(FeedRequest::Watch { symbol, from }))
            .await
            .unwrap();
    }

    async fn next(&mut self) -> FeedMessage {
        tokio::time::timeout(Duration::from_secs(10), self.messages.next())
            .await
            .expect("the feed went quiet")
            .unwrap()
            .unwrap()
    }

    /// The next `n` trades (symbol, trade id, position), skipping the rest.
    async fn trades(&mut self, n: usize) -> Vec<(String, u64, FeedPosition)> {
        let mut out = Vec::new();
        while out.len() < n {
            if let FeedMessage::Trade {
                symbol,
                position,
                trade,
            } = self.next().await
            {
                out.push((symbol, trade.trade_id, position));
            }
        }
        out
    }
}

#[tokio::test]
async fn a_feed_sends_a_snapshot_then_only_its_markets_trades() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let (a, b) = (trader(&x, "alice").await, trader(&x, "bob").await);
    trade(&x, "BTC-USD", a, b, 2).await;
    let mut feed = Feed::open(&x);
    feed.watch("BTC-USD", None).await;
    let FeedMessage::Snapshot(snapshot) = feed.next().await else {
        panic!("the first message is the snapshot")
    };
    // The projection may not have caught up with the last trades yet; the
    // feed goes on from the snapshot's position, so none is lost.
    let seen = snapshot.trades.len() as u64;
    trade(&x, "ETH-USD", a, b, 3).await;
    trade(&x, "BTC-USD", a, b, 2).await;
    let trades = feed.trades(4 - seen as usize).await;
    let ids: Vec<u64> = trades.iter().map(|t| t.1).collect();
    assert_eq!(ids, ((seen + 1)..=4).collect::<Vec<_>>());
    assert!(trades.iter().all(|t| t.0 == "BTC-USD"));
    assert!(trades.windows(2).all(|w| w[0].2 < w[1].2));
}

#[tokio::test]
async fn trades_arrive_once_each_across_a_reconnect_under_concurrent_trading() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let (a, b) = (trader(&x, "alice").await, trader(&x, "bob").await);
    let mut feed = Feed::open(&x);
    feed.watch("BTC-USD", None).await;
    let FeedMessage::Snapshot(_) = feed.next().await else {
        panic!()
    };
    let trading = tokio::spawn({
        let x = x.clone();
        async move { trade(&x, "BTC-USD", a, b, 60).await }
    });
    let first = feed.trades(20).await;
    drop(feed);
    let resume = first.last().unwrap().2;
    let mut feed = Feed::open(&x);
    feed.watch("BTC-USD", Some(resume)).await;
    let rest = feed.trades(40).await;
    trading.await.unwrap();
    let ids: Vec<u64> = first.iter().chain(&rest).map(|t| t.1).collect();
    assert_eq!(ids, (1..=60).collect::<Vec<_>>());
}

#[tokio::test]
async fn switching_markets_on_one_socket() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let (a, b) = (trader(&x, "alice").await, trader(&x, "bob").await);
    let mut feed = Feed::open(&x);
    feed.watch("BTC-USD", None).await;
    let FeedMessage::Snapshot(s) = feed.next().await else {
        panic!()
    };
    assert_eq!(s.symbol, "BTC-USD");
    feed.watch("ETH-USD", None).await;
    loop {
        if let FeedMessage::Snapshot(s) = feed.next().await {
            assert_eq!(s.symbol, "ETH-USD");
            break;
        }
    }
    trade(&x, "BTC-USD", a, b, 1).await;
    trade(&x, "ETH-USD", a, b, 1).await;
    let t = feed.trades(1).await;
    assert_eq!((t[0].0.as_str(), t[0].1), ("ETH-USD", 1));
    feed.watch("DOGE-USD", None).await;
    loop {
        if let FeedMessage::Refused(m) = feed.next().await {
            assert_eq!(m, "there is no market DOGE-USD");
            break;
        }
    }
}

#[tokio::test]
async fn depth_and_heartbeats_follow_the_book() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let a = trader(&x, "alice").await;
    let mut feed = Feed::open(&x);
    feed.watch("BTC-USD", None).await;
    let FeedMessage::Snapshot(_) = feed.next().await else {
        panic!()
    };
    x.place(a, "BTC-USD", limit(orderbook::Side::Sell, 101, "0.5"))
        .await
        .unwrap();
    x.place(a, "BTC-USD", limit(orderbook::Side::Sell, 102, "0.25"))
        .await
        .unwrap();
    let (mut depth, mut heartbeat) = (None, false);
    while depth.is_none() || !heartbeat {
        match feed.next().await {
            FeedMessage::Depth { depth: d, .. } if d.asks.len() == 2 => depth = Some(d),
            FeedMessage::Heartbeat { position, .. } => heartbeat = position.is_some(),
            _ => {}
        }
    }
    let depth = depth.unwrap();
    assert_eq!(
        (
            depth.asks[1].price.as_str(),
            depth.asks[1].cumulative.as_str()
        ),
        ("102", "0.75")
    );
}

fn store_stats(x: &Exchange) -> StoreStats {
    x.stats()
        .store
        .expect("the exchange runs its embedded store")
}

/// Waits until the embedded store serves `n` live subscriptions.
async fn wait_for_subscribers(x: &Exchange, n: usize) {
    for _ in 0..200 {
        if store_stats(x).live_subscribers == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "{} live subscribers, expected {n}",
        store_stats(x).live_subscribers
    );
}

/// The market data projection's own subscription.
const PROJECTION: usize = 1;

#[tokio::test]
async fn a_feed_keeps_one_subscription_while_trades_depth_and_heartbeats_flow() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let (a, b) = (trader(&x, "alice").await, trader(&x, "bob").await);
    let mut feed = Feed::open(&x);
    feed.watch("BTC-USD", None).await;
    let FeedMessage::Snapshot(_) = feed.next().await else {
        panic!()
    };
    wait_for_subscribers(&x, PROJECTION + 1).await;
    let opened = store_stats(&x).subscriptions_opened;
    // Depth ticks and heartbeats wake the feed between trades; none of
    // those wake-ups may cost it its subscription.
    for _ in 0..3 {
        trade(&x, "BTC-USD", a, b, 1).await;
        feed.trades(1).await;
        let mut depth = false;
        while !depth {
            depth = matches!(feed.next().await, FeedMessage::Depth { .. });
        }
    }
    while !matches!(feed.next().await, FeedMessage::Heartbeat { .. }) {}
    assert_eq!(store_stats(&x).subscriptions_opened, opened);
}

#[tokio::test]
async fn a_feed_ends_its_subscription_when_the_browser_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let base = PROJECTION;
    wait_for_subscribers(&x, base).await;
    let mut feeds = Vec::new();
    for _ in 0..5 {
        let mut feed = Feed::open(&x);
        feed.watch("BTC-USD", None).await;
        let FeedMessage::Snapshot(_) = feed.next().await else {
            panic!()
        };
        feeds.push(feed);
    }
    wait_for_subscribers(&x, base + 5).await;
    feeds.truncate(2);
    wait_for_subscribers(&x, base + 2).await;
    // Closing only the request half also ends the feed.
    let mut feed = feeds.pop().unwrap();
    feed.requests.close_channel();
    wait_for_subscribers(&x, base + 1).await;
    drop(feeds);
    wait_for_subscribers(&x, base).await;
}
