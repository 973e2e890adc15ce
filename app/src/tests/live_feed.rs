//! The live feed, driven as the websocket server function drives it.

use std::time::Duration;

use futures::{SinkExt, StreamExt, channel::mpsc};
use leptos::prelude::ServerFnError;

use super::*;
use crate::api::{FeedMessage, FeedPosition, FeedRequest};
use crate::server::feed::open;
use crate::server::feed_limits::FeedLimits;

async fn exchange(dir: &std::path::Path) -> Exchange {
    Exchange::start(
        settings(),
        Connection::Embedded {
            data: dir.join("events"),
        },
    )
    .await
    .unwrap()
}

async fn trader(x: &Exchange, name: &str) -> orderbook::AccountId {
    let token = x.sign_up(name, "correct horse").await.unwrap();
    let account = x.use_session(&token).unwrap();
    x.claim_faucet(account).await.unwrap();
    account
}

fn limit(side: orderbook::Side, price: u64, qty: &str) -> OrderTerms {
    limit_terms(side, &price.to_string(), qty)
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
    messages: crate::server::feed::FeedStream,
    /// The account position as the page keeps it: the last account
    /// message's, or the last fill's it took.
    account_position: Option<FeedPosition>,
    /// The fills the page was told of (listed in a view, or sent on their
    /// own), once it has its first view.
    told: Option<std::collections::HashSet<(String, u64, u64)>>,
    /// The account's view as the page holds it: the last whole one with
    /// every change since applied.
    view: Option<crate::api::AccountView>,
    /// How many account messages came as changes.
    changes: usize,
}

impl Feed {
    fn open(x: &Exchange) -> Feed {
        Feed::open_with(x, FeedLimits::default())
    }

    fn open_with(x: &Exchange, limits: FeedLimits) -> Feed {
        let (requests, rx) = mpsc::channel(4);
        Feed::over(
            requests,
            open(x.clone(), rx.into(), limits, None, None, None),
        )
    }

    /// A page's end of a feed: its requests and the messages they bring.
    fn over(
        requests: mpsc::Sender<Result<FeedRequest, ServerFnError>>,
        messages: crate::server::feed::FeedStream,
    ) -> Feed {
        Feed {
            requests,
            messages,
            account_position: None,
            told: None,
            view: None,
            changes: 0,
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
        let mut message = tokio::time::timeout(Duration::from_secs(10), self.messages.next())
            .await
            .expect("the feed went quiet")
            .unwrap();
        // Changes are applied to the view the page holds, as the page
        // does: what a test sees is the view they make.
        match message {
            FeedMessage::AccountChanged { changes, position } => {
                let view = self.view.as_mut().expect("changes before a whole view");
                view.apply(*changes);
                self.changes += 1;
                message = FeedMessage::Account {
                    view: Some(Box::new(view.clone())),
                    position,
                };
            }
            FeedMessage::Account { ref view, .. } => self.view = view.as_deref().cloned(),
            _ => {}
        }
        // The page takes a fill only past the account position it holds
        // (so a resumed one is not shown twice): one at or before it is
        // lost to the trader.
        match &message {
            FeedMessage::Account { position, view } => {
                self.account_position = *position;
                // The page shows a notice only for a fill its list does not
                // have: a later view must not list a fill before the fill
                // itself was sent.
                let listed = view.iter().flat_map(|v| &v.fills);
                let listed: Vec<_> = listed
                    .map(|f| (f.symbol.clone(), f.trade_id, f.order_id))
                    .collect();
                if let Some(told) = &self.told {
                    for f in &listed {
                        assert!(
                            told.contains(f),
                            "a view lists fill {f:?} before it was sent"
                        );
                    }
                }
                self.told.get_or_insert_default().extend(listed);
            }
            FeedMessage::Fill { position, fill } => {
                let key = (fill.symbol.clone(), fill.trade_id, fill.order_id);
                self.told.get_or_insert_default().insert(key);
                assert!(
                    Some(*position) > self.account_position,
                    "fill of trade {} at {position:?} comes after an account position \
                     {:?}: the page would drop it",
                    fill.trade_id,
                    self.account_position
                );
                self.account_position = Some(*position);
            }
            _ => {}
        }
        message
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

#[tokio::test]
async fn depth_goes_out_again_only_when_the_page_may_lack_it() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let a = trader(&x, "alice").await;
    x.place(a, "BTC-USD", limit(orderbook::Side::Sell, 101, "0.5"))
        .await
        .unwrap();
    // Once that order's depth is published, the book is quiet.
    let published = x.depth_updates("BTC-USD").unwrap();
    while published.borrow().depth.asks.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A new page has the depth in its snapshot: the next update (the
    // heartbeat's, the book unchanged) brings it no second copy.
    let mut page = Feed::open(&x);
    page.watch("BTC-USD", None).await;
    let FeedMessage::Snapshot(snapshot) = page.next().await else {
        panic!("a snapshot first")
    };
    assert_eq!(snapshot.depth.asks.len(), 1);
    let FeedMessage::Heartbeat { .. } = page.next().await else {
        panic!("the heartbeat saying the link is up")
    };
    match page.next().await {
        FeedMessage::Heartbeat { .. } => {}
        other => panic!("only a heartbeat while the book is quiet, got {other:?}"),
    }
    // A page resuming from there may have missed changes: depth at once.
    let from = snapshot.position.expect("the order's event has a position");
    let mut resumed = Feed::open(&x);
    resumed.watch("BTC-USD", Some(from)).await;
    let FeedMessage::Heartbeat { .. } = resumed.next().await else {
        panic!("a resumed page gets no snapshot")
    };
    match resumed.next().await {
        FeedMessage::Depth { depth, .. } => assert_eq!(depth.asks.len(), 1),
        other => panic!("the depth first, got {other:?}"),
    }
}

fn store_stats(x: &Exchange) -> StoreStats {
    x.stats()
        .store
        .expect("the exchange runs its embedded store")
}

/// Waits until `n` readers follow the live tail.
async fn wait_for_readers(x: &Exchange, n: usize) {
    for _ in 0..200 {
        if x.stats().tail_readers == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{} tail readers, expected {n}", x.stats().tail_readers);
}

/// The tail's readers before any viewer: the market data, the order
/// history, the accounts task, and per market its task and its book
/// diffs' publisher.
fn base_readers(x: &Exchange) -> usize {
    3 + 2 * x.markets().len()
}

#[tokio::test]
async fn the_server_holds_one_store_subscription_however_many_feeds_watch() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let (a, b) = (trader(&x, "alice").await, trader(&x, "bob").await);
    let mut feeds = Vec::new();
    for i in 0..20 {
        let mut feed = Feed::open(&x);
        let symbol = if i % 2 == 0 { "BTC-USD" } else { "ETH-USD" };
        feed.watch(symbol, None).await;
        let FeedMessage::Snapshot(_) = feed.next().await else {
            panic!()
        };
        feeds.push(feed);
    }
    // Depth ticks, heartbeats and trades wake every feed; none of that
    // costs a store subscription.
    for _ in 0..3 {
        trade(&x, "BTC-USD", a, b, 1).await;
        trade(&x, "ETH-USD", a, b, 1).await;
        for f in &mut feeds {
            f.trades(1).await;
        }
    }
    let stats = store_stats(&x);
    assert_eq!(stats.live_subscribers, 1, "the live tail's, and no other");
    assert_eq!(stats.subscriptions_opened, 1);
    assert_eq!(x.stats().tail_readers, base_readers(&x) + 20);
}

#[tokio::test]
async fn a_feed_ends_its_reader_when_the_browser_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let base = base_readers(&x);
    wait_for_readers(&x, base).await;
    let mut feeds = Vec::new();
    for _ in 0..5 {
        let mut feed = Feed::open(&x);
        feed.watch("BTC-USD", None).await;
        let FeedMessage::Snapshot(_) = feed.next().await else {
            panic!()
        };
        feeds.push(feed);
    }
    wait_for_readers(&x, base + 5).await;
    assert_eq!(
        viewers(&x),
        [("BTC-USD".to_string(), 5), ("ETH-USD".to_string(), 0)]
    );
    feeds.truncate(2);
    wait_for_readers(&x, base + 2).await;
    // Closing only the request half also ends the feed (its socket is
    // waiting on it, and so drops it).
    let mut feed = feeds.pop().unwrap();
    feed.requests.close_channel();
    while feed.messages.next().await.is_some() {}
    drop(feed);
    wait_for_readers(&x, base + 1).await;
    drop(feeds);
    wait_for_readers(&x, base).await;
    // Nothing of any feed is left: no reader, no follower of the depth.
    assert_eq!(
        viewers(&x),
        [("BTC-USD".to_string(), 0), ("ETH-USD".to_string(), 0)]
    );
}

/// Each market's viewers, as the exchange counts them.
fn viewers(x: &Exchange) -> Vec<(String, usize)> {
    let markets = x.stats().markets.into_iter();
    markets.map(|m| (m.symbol, m.viewers)).collect()
}

#[tokio::test]
async fn a_slow_viewer_holds_up_nobody_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let (a, b) = (trader(&x, "alice").await, trader(&x, "bob").await);
    let mut slow = Feed::open(&x);
    let mut quick = Feed::open(&x);
    for feed in [&mut slow, &mut quick] {
        feed.watch("BTC-USD", None).await;
        let FeedMessage::Snapshot(_) = feed.next().await else {
            panic!("a snapshot first")
        };
    }
    // The slow page reads nothing while 100 trades are made, more than
    // its socket would hold: the trading and the quick page go on.
    trade(&x, "BTC-USD", a, b, 100).await;
    let quick_ids: Vec<u64> = quick.trades(100).await.iter().map(|t| t.1).collect();
    assert_eq!(quick_ids, (1..=100).collect::<Vec<_>>());
    // When it reads again it gets every one of them, in order, once.
    let got = slow.trades(100).await;
    let ids: Vec<u64> = got.iter().map(|t| t.1).collect();
    assert_eq!(ids, (1..=100).collect::<Vec<_>>());
    assert!(got.windows(2).all(|w| w[0].2 < w[1].2));
}

/// The beginning of the store, where a page that has seen nothing resumes.
const START: FeedPosition = FeedPosition {
    commit: 0,
    prepare: 0,
};

/// An exchange restarted after 30 trades between its two traders, so its
/// tail's window holds none of them.
async fn restarted_after_30_trades(
    dir: &std::path::Path,
) -> (Exchange, orderbook::AccountId, orderbook::AccountId) {
    let x = exchange(dir).await;
    let (a, b) = (trader(&x, "alice").await, trader(&x, "bob").await);
    trade(&x, "BTC-USD", a, b, 30).await;
    x.stop().await;
    (exchange(dir).await, a, b)
}

#[tokio::test]
async fn a_feed_far_behind_reads_the_store_and_joins_the_tail_with_no_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    // A page resumes from the very beginning of the store while trading
    // goes on: it reads the store, reaches the window, and takes the rest
    // live.
    let (x, a, b) = restarted_after_30_trades(dir.path()).await;
    let trading = tokio::spawn({
        let x = x.clone();
        async move { trade(&x, "BTC-USD", a, b, 50).await }
    });
    let mut feed = Feed::open(&x);
    feed.watch("BTC-USD", Some(START)).await;
    let got = feed.trades(80).await;
    trading.await.unwrap();
    let ids: Vec<u64> = got.iter().map(|t| t.1).collect();
    assert_eq!(ids, (1..=80).collect::<Vec<_>>());
    assert!(got.windows(2).all(|w| w[0].2 < w[1].2));
}

#[tokio::test]
async fn a_page_resuming_from_further_back_than_the_replay_bound_gets_a_fresh_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    // The market data has read the 30 trades back.
    let (x, a, b) = restarted_after_30_trades(dir.path()).await;
    while x.snapshot("BTC-USD").unwrap().trades.len() < 30 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let behind = x.tail().bytes_behind(START);
    assert!(behind > 0);
    // Within the bound: every trade again (as the test above shows at
    // length); one byte short of the distance: a snapshot of now instead.
    let within = FeedLimits {
        replay_bytes: behind,
        ..FeedLimits::default()
    };
    let mut feed = Feed::open_with(&x, within);
    feed.watch("BTC-USD", Some(START)).await;
    let ids: Vec<u64> = feed.trades(30).await.iter().map(|t| t.1).collect();
    assert_eq!(ids, (1..=30).collect::<Vec<_>>());
    let beyond = FeedLimits {
        replay_bytes: behind - 1,
        ..FeedLimits::default()
    };
    let mut feed = Feed::open_with(&x, beyond);
    feed.watch("BTC-USD", Some(START)).await;
    let FeedMessage::Snapshot(snapshot) = feed.next().await else {
        panic!("a snapshot first")
    };
    assert_eq!(snapshot.trades.first().map(|t| t.trade_id), Some(30));
    assert_eq!(snapshot.position, x.snapshot("BTC-USD").unwrap().position);
    // Then live trades, none of the old ones again.
    trade(&x, "BTC-USD", a, b, 2).await;
    let ids: Vec<u64> = feed.trades(2).await.iter().map(|t| t.1).collect();
    assert_eq!(ids, [31, 32]);

    // Within the bound but over the address's pace: one resume a minute
    // replays, the next socket of the same address gets a snapshot.
    use crate::server::request_limits::{ApiLimits, RESUME_WEIGHT, RequestLimits};
    let limits = RequestLimits::new(ApiLimits {
        weight_per_minute_per_address: RESUME_WEIGHT,
        ..ApiLimits::default()
    });
    let address = std::net::IpAddr::from([192, 0, 2, 1]);
    let paced = |x: &Exchange| {
        let (requests, rx) = mpsc::channel(4);
        let resumes = crate::server::feed::Resumes {
            limits: limits.clone(),
            address,
        };
        let unbounded = FeedLimits {
            replay_bytes: u64::MAX,
            ..FeedLimits::default()
        };
        let messages = open(x.clone(), rx.into(), unbounded, None, None, Some(resumes));
        Feed::over(requests, messages)
    };
    let mut first = paced(&x);
    first.watch("BTC-USD", Some(START)).await;
    let ids: Vec<u64> = first.trades(32).await.iter().map(|t| t.1).collect();
    assert_eq!(ids, (1..=32).collect::<Vec<_>>());
    let mut second = paced(&x);
    second.watch("BTC-USD", Some(START)).await;
    let FeedMessage::Snapshot(snapshot) = second.next().await else {
        panic!("over the pace: a snapshot first")
    };
    assert_eq!(snapshot.trades.first().map(|t| t.trade_id), Some(32));
}

#[tokio::test]
async fn a_socket_over_its_limits_is_told_why_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    // A symbol far longer than any market's.
    let mut feed = Feed::open(&x);
    feed.watch(&"X".repeat(10_000), None).await;
    let FeedMessage::Refused(why) = feed.next().await else {
        panic!("refused")
    };
    assert!(why.contains("at most 32 bytes"), "{why}");
    assert!(feed.messages.next().await.is_none(), "and closed");
    // Market switches beyond the burst.
    let mut feed = Feed::open(&x);
    let burst = FeedLimits::default().watch_burst;
    let mut requests = feed.requests.clone();
    tokio::spawn(async move {
        for _ in 0..=burst {
            let watch = FeedRequest::Watch {
                symbol: "BTC-USD".into(),
                from: None,
            };
            if requests.send(Ok(watch)).await.is_err() {
                return;
            }
        }
    });
    let mut refused = None;
    while let Some(m) = feed.messages.next().await {
        if let FeedMessage::Refused(why) = m {
            refused = Some(why);
        }
    }
    assert!(refused.unwrap().contains("too many market switches"));
    // Nobody else noticed: a fresh feed works.
    let mut feed = Feed::open(&x);
    feed.watch("BTC-USD", None).await;
    assert!(matches!(feed.next().await, FeedMessage::Snapshot(_)));
}

#[tokio::test]
async fn a_trade_through_one_server_reaches_the_others_tape_depth_book_and_accounts() {
    let dir = tempfile::tempdir().unwrap();
    let store =
        store::EmbeddedStore::start(&dir.path().join("events"), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
    let url = store.connection_string();
    let a = Exchange::start(settings(), Connection::External(url.clone()))
        .await
        .unwrap();
    // Another server (by its address), following A, which leads.
    let mut follower = settings();
    follower.leader.url = "http://127.0.0.1:9".into();
    let b = Exchange::start(follower, Connection::External(url))
        .await
        .unwrap();
    let (seller, buyer) = (trader(&a, "alice").await, trader(&a, "bob").await);
    let mut on_b = Feed::open(&b);
    on_b.watch("BTC-USD", None).await;
    let FeedMessage::Snapshot(_) = on_b.next().await else {
        panic!()
    };
    // A resting order placed through A shows in B's depth, and a trade
    // through A is on B's tape, within a second each.
    a.place(seller, "BTC-USD", limit(orderbook::Side::Sell, 100, "0.03"))
        .await
        .unwrap();
    let depth = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            if let FeedMessage::Depth { depth, .. } = on_b.next().await
                && !depth.asks.is_empty()
            {
                return depth;
            }
        }
    })
    .await
    .expect("B's depth shows A's order within a second");
    assert_eq!(
        (
            depth.asks[0].price.as_str(),
            depth.asks[0].quantity.as_str()
        ),
        ("100", "0.03")
    );
    a.place(buyer, "BTC-USD", limit(orderbook::Side::Buy, 100, "0.01"))
        .await
        .unwrap();
    let trades = tokio::time::timeout(Duration::from_secs(1), on_b.trades(1))
        .await
        .expect("B's tape shows A's trade within a second");
    assert_eq!((trades[0].0.as_str(), trades[0].1), ("BTC-USD", 1));
    // B's book took A's events without writing anything itself.
    let same = tokio::time::timeout(Duration::from_secs(1), async {
        while b.book("BTC-USD").unwrap().events_applied()
            != a.book("BTC-USD").unwrap().events_applied()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(same.is_ok(), "B's book is A's within a second");
    let appends = |x: &Exchange| x.stats().markets.iter().map(|m| m.appends).sum::<u64>();
    assert_eq!(appends(&b), 0);
    // And B's ledger took A's account events: the accounts A opened, their
    // balances after the trade and the seller's open order show the same
    // on B.
    let same = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            let views = |x: &Exchange| (x.view(seller), x.view(buyer));
            let on_a = views(&a);
            if on_a.0.is_some() && views(&b) == on_a {
                return on_a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("B shows A's accounts as A does within a second");
    assert_eq!(same.0.unwrap().open_orders.len(), 1, "the rest of the sell");
    assert_eq!(b.account_id("alice"), Some(seller));
    a.stop().await;
    b.stop().await;
    store.stop().await.unwrap();
}

impl Feed {
    fn open_as(x: &Exchange, session: Option<&str>) -> Feed {
        let (requests, rx) = mpsc::channel(4);
        Feed::over(
            requests,
            open(
                x.clone(),
                rx.into(),
                FeedLimits::default(),
                None,
                session.map(str::to_string),
                None,
            ),
        )
    }

    async fn follow(&mut self, from: Option<FeedPosition>) {
        self.requests
            .send(Ok(FeedRequest::Account { from }))
            .await
            .unwrap();
    }

    /// The next account message, skipping the market's.
    async fn account(&mut self) -> (Option<Box<crate::api::AccountView>>, Option<FeedPosition>) {
        loop {
            if let FeedMessage::Account { view, position } = self.next().await {
                return (view, position);
            }
        }
    }

    /// The next `n` fills (trade id, position), skipping everything else.
    async fn fills(&mut self, n: usize) -> Vec<(u64, FeedPosition)> {
        let mut out = Vec::new();
        while out.len() < n {
            if let FeedMessage::Fill { position, fill } = self.next().await {
                out.push((fill.trade_id, position));
            }
        }
        out
    }
}

/// The private part of the feed: the account of the socket's session and
/// nobody else's, its fills as they settle, its view when it changes; a
/// reconnect from the last position misses no fill; a socket without a
/// session, or whose session ended, follows nobody.
#[tokio::test]
async fn a_feed_follows_its_sessions_account_and_resumes_without_missing_a_fill() {
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let token = x.sign_up("alice", "correct horse").await.unwrap();
    let a = x.use_session(&token).unwrap();
    x.claim_faucet(a).await.unwrap();
    let b = trader(&x, "bob").await;

    let mut nobody = Feed::open_as(&x, None);
    nobody.follow(None).await;
    assert_eq!(nobody.account().await, (None, None));
    let mut forged = Feed::open_as(&x, Some("not-a-session"));
    forged.follow(None).await;
    assert_eq!(forged.account().await.0, None);

    let mut feed = Feed::open_as(&x, Some(&token));
    feed.watch("BTC-USD", None).await;
    feed.follow(None).await;
    let (view, _) = feed.account().await;
    assert_eq!(view.unwrap().username, "alice");
    // Bob sells to Alice twice: two fills of hers, each once, in order.
    trade(&x, "BTC-USD", b, a, 2).await;
    let fills = feed.fills(2).await;
    assert_eq!(fills.iter().map(|f| f.0).collect::<Vec<_>>(), [1, 2]);
    let mut view = feed.account().await;
    while view.0.as_ref().unwrap().fills.len() < 2 {
        view = feed.account().await;
    }
    // After the first whole view, what moved came as changes only, and
    // they make the view the exchange has.
    assert!(feed.changes > 0, "every view was sent whole");
    assert_eq!(view.0.as_deref(), x.view(a).as_ref());
    let resume = fills[1].1;
    drop(feed);

    // Away for one trade: resuming from the last position gets its fill.
    trade(&x, "BTC-USD", b, a, 1).await;
    let mut feed = Feed::open_as(&x, Some(&token));
    feed.follow(Some(resume)).await;
    let (view, _) = feed.account().await;
    assert!(view.is_some());
    assert_eq!(feed.fills(1).await[0].0, 3);

    // Logged out: the next look at the account says there is none.
    x.log_out(&token).await.unwrap();
    trade(&x, "BTC-USD", b, a, 1).await;
    assert_eq!(feed.account().await, (None, None));
}

/// A following socket asks for its account's view at every depth
/// publication: the view is built again only when the account or one of
/// its open orders moved, and then it shows what moved.
#[tokio::test]
async fn an_accounts_view_is_built_again_only_when_what_it_is_made_from_moved() {
    use crate::server::AccountRead;
    let dir = tempfile::tempdir().unwrap();
    let x = exchange(dir.path()).await;
    let (alice, bob, carol) = (
        trader(&x, "alice").await,
        trader(&x, "bob").await,
        trader(&x, "carol").await,
    );
    let changed = |read: AccountRead| match read {
        AccountRead::Changed(inputs, view) => (inputs, *view),
        other => panic!("expected a new view, got {other:?}"),
    };
    let (inputs, first) = changed(x.view_since(alice, None));
    assert!(matches!(
        x.view_since(alice, Some(&inputs)),
        AccountRead::Unchanged
    ));
    // Other traders' trades in a book she has no order in change nothing
    // she is shown.
    trade(&x, "BTC-USD", bob, carol, 2).await;
    assert!(matches!(
        x.view_since(alice, Some(&inputs)),
        AccountRead::Unchanged
    ));
    // Her own order changes her account.
    x.place(alice, "BTC-USD", limit(orderbook::Side::Sell, 101, "0.5"))
        .await
        .unwrap();
    let (inputs, resting) = changed(x.view_since(alice, Some(&inputs)));
    assert_ne!(resting, first);
    assert_eq!(resting.open_orders.len(), 1);
    assert!(matches!(
        x.view_since(alice, Some(&inputs)),
        AccountRead::Unchanged
    ));
    // A trade against it changes her balances and what is still open.
    x.place(bob, "BTC-USD", limit(orderbook::Side::Buy, 101, "0.2"))
        .await
        .unwrap();
    let (inputs, filled) = changed(x.view_since(alice, Some(&inputs)));
    assert_eq!(filled.open_orders[0].remaining, "0.3");
    assert_eq!(Some(&filled), x.view(alice).as_ref());
    assert!(matches!(
        x.view_since(alice, Some(&inputs)),
        AccountRead::Unchanged
    ));
    // Others' orders in the book her order rests in move that book, not
    // her order: nothing she is shown changed, and nothing is rebuilt.
    x.place(carol, "BTC-USD", limit(orderbook::Side::Buy, 90, "0.1"))
        .await
        .unwrap();
    x.place(bob, "BTC-USD", limit(orderbook::Side::Sell, 120, "0.1"))
        .await
        .unwrap();
    assert!(matches!(
        x.view_since(alice, Some(&inputs)),
        AccountRead::Unchanged
    ));
    assert!(matches!(x.view_since(999, None), AccountRead::Unknown));
    x.stop().await;
}
