//! Restarts, old logs, two servers on one store, leadership, and a store
//! that stops answering.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::*;
use crate::server::live_tail::{self, TailEvent};
use crate::server::log_read::{LOG_PAGE, LogFold, LogRead};
use crate::server::start_snapshots;

#[tokio::test]
async fn a_restart_rebuilds_books_accounts_and_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b, before_a, before_b);
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        b = Browser::sign_up(&s, "bob").await;
        a.limit(&s, "sell", "30000", "0.5").await.unwrap();
        b.limit(&s, "buy", "30000", "0.1").await.unwrap();
        b.limit(&s, "buy", "29000", "0.1").await.unwrap();
        before_a = a.account(&s).await.unwrap();
        before_b = b.account(&s).await.unwrap();
        s.exchange.stop().await;
    }
    let s = start(dir.path()).await;
    assert_eq!(a.account(&s).await.unwrap(), before_a);
    assert_eq!(b.account(&s).await.unwrap(), before_b);
    // Order ids go on from where they were.
    let msg = a.limit(&s, "sell", "29000", "0.1").await.unwrap();
    assert!(msg.starts_with("Order 4 filled"), "{msg}");
    check_store(&s).await;
}

/// What a server shows of every account and market, for comparing two
/// servers' folds of one log: each account's view, orders and fills, and
/// each market's depth, tape, candles and moments replayed (the fences a
/// restart writes change none of these).
///
/// An account's fills are listed in the order its ledger folded them: as
/// decided on the live server, in the log's order after a restart. Across
/// two markets decided at once these may differ, so fills are compared in
/// the order of their markets and trade ids.
async fn everything_shown(
    s: &Server,
    accounts: &[orderbook::AccountId],
    events: &BTreeMap<&str, u64>,
) -> Vec<String> {
    let mut shown = Vec::new();
    for &account in accounts {
        let all = OrderFilter::default();
        let orders = s.exchange.order_records(account, &all).await.unwrap();
        let mut view = s.exchange.view(account).unwrap();
        view.fills
            .sort_by(|a, b| (&a.symbol, a.trade_id).cmp(&(&b.symbol, b.trade_id)));
        let all = |a: &accounts::Account| (0..a.fills.len()).collect();
        let mut fills = s.exchange.fills(account, all).await.unwrap();
        fills.sort_by(|a, b| (&a.symbol, a.trade_id).cmp(&(&b.symbol, b.trade_id)));
        assert!(
            fills.len() <= crate::server::views::FILLS_SHOWN,
            "the view shows every fill"
        );
        shown.push(format!("{account}: {view:?}"));
        shown.push(format!("{account}: {orders:?}"));
        shown.push(format!("{account}: {fills:?}"));
    }
    for symbol in ["BTC-USD", "ETH-USD"] {
        let snapshot = s.exchange.snapshot(symbol).unwrap();
        shown.push(format!("{symbol}: {:?}", snapshot.depth));
        shown.push(format!("{symbol}: {:?}", snapshot.trades));
        shown.push(format!("{symbol}: {:?}", snapshot.series));
        let events = events[symbol];
        for n in [0, 1, events / 3, events / 2, events - 1, events] {
            let mut moment = s
                .exchange
                .replay(symbol, ReplayTo::Events(n))
                .await
                .unwrap();
            // The restart's fence is one more event after the last moment.
            moment.total = 0;
            shown.push(format!("{symbol} after {n}: {moment:?}"));
        }
    }
    shown
}

/// A restart reads the log once and builds every fold from that read: the
/// ledger, the books, the market data with the time machine, and the order
/// history. After a busy random flow on both markets (trades, refusals,
/// amendments, stops, cancels), everything the restarted server shows is
/// what the first server showed, which it had folded live, event by event,
/// as it decided; and its ledger is the one the log folds to read stream
/// by stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_folds_one_read_of_the_log_into_what_the_live_server_showed() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = BTreeMap::new();
    let (accounts, before);
    {
        let s = start(dir.path()).await;
        (accounts, _, _) = super::trading_rules::random_traders(&s, 4, 0, 80).await;
        let trades = s.exchange.book("BTC-USD").unwrap().last_trade_id();
        assert!(trades > 10, "{trades} trades");
        for symbol in ["BTC-USD", "ETH-USD"] {
            events.insert(symbol, s.exchange.book(symbol).unwrap().events_applied());
        }
        // The market data and the order history follow the tail: what
        // they show is read once they have stopped moving.
        let mut shown = everything_shown(&s, &accounts, &events).await;
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            let again = everything_shown(&s, &accounts, &events).await;
            if again == shown {
                break;
            }
            shown = again;
        }
        before = shown;
        s.exchange.stop().await;
    }
    let s = start(dir.path()).await;
    let after = everything_shown(&s, &accounts, &events).await;
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(b, a);
    }
    assert_eq!(before.len(), after.len());
    let folded = reload_ledger(&s).await;
    for &account in &accounts {
        let kept = s.exchange.balances(account);
        let folded = folded.account(account).unwrap();
        for (asset, balance) in kept {
            assert_eq!(balance, folded.balance(&asset), "{account} {asset}");
        }
    }
    check_store(&s).await;
}

/// What start's read of the log hands a fold: every market and account
/// event (by stream and revision), the end position of `$all`, or the
/// error the fold stopped on.
#[derive(Default)]
struct Seen {
    events: Vec<(String, u64)>,
    /// Fails on this page (counted from 0), to stop the fold there.
    fails_on: Option<usize>,
    pages: usize,
}

impl LogFold for Seen {
    fn fold_page(&mut self, events: &[Arc<TailEvent>]) -> Result<(), streams::StreamError> {
        if self.fails_on == Some(self.pages) {
            return Err(streams::StreamError::Unavailable("this fold stops".into()));
        }
        self.pages += 1;
        self.events
            .extend(events.iter().map(|e| (e.stream.clone(), e.revision)));
        Ok(())
    }
}

/// Start reads the log a page at a time into every fold at once. Each
/// fold is handed every market and account event exactly once, in the
/// store's order, whatever the page size and however many other events
/// (the leader's claim, the books' snapshots) lie between; it learns
/// where `$all` ends; and a fold that stops on an error stops nobody else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_read_at_start_hands_every_fold_each_event_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut config = settings();
        config.snapshot_every = 4;
        let data = dir.path().join("events");
        let s = start_on_with(config, Connection::Embedded { data }).await;
        super::trading_rules::random_traders(&s, 3, 0, 40).await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        s.exchange.stop().await;
    }
    let (_store, client) = open_stopped(dir.path()).await;
    let (mut expected, mut others, mut end) = (Vec::new(), 0, None);
    streams::read_all_from_start(&client, |e| {
        end = Some(streams::feed_position(e.position));
        if live_tail::Streams::MarketsAndAccounts.covers(&e.stream_id) {
            expected.push((e.stream_id.clone(), e.revision));
        } else {
            others += 1;
        }
        Ok(())
    })
    .await
    .unwrap();
    assert!(expected.len() > 100, "{} events", expected.len());
    assert!(others > 5, "{others} events of other streams");
    assert!(expected.len() + others < LOG_PAGE);
    for page in [2, 3, 7, 64, LOG_PAGE] {
        let mut read = LogRead::new(page);
        let first = read.fold(Seen::default());
        let stopping = read.fold(Seen {
            fails_on: Some(1),
            ..Seen::default()
        });
        let second = read.fold(Seen::default());
        read.run(&client).await.unwrap();
        for folding in [first, second] {
            let (seen, position) = folding.finish().await.unwrap();
            assert_eq!(seen.events, expected, "pages of {page}");
            assert_eq!(position, end, "pages of {page}");
        }
        // The whole log is one page of the largest size, and more of any
        // other: the fold that stops on its second page stops there.
        let stopped = stopping.finish().await;
        assert_eq!(stopped.is_err(), page != LOG_PAGE, "pages of {page}");
    }
}

/// A log written before fees were in trades settled each trade with ledger
/// events after the market's append. A crash in between left the
/// reservation in the account stream and the trade in the market stream,
/// and nothing settled: written here as that version wrote them, with the
/// exchange stopped. The trade is settled at the next start, once.
#[tokio::test]
async fn a_settlement_an_old_log_lost_in_a_crash_is_made_exactly_once_at_restart() {
    use orderbook::{Command, PlaceOrder, SelfTradePrevention};
    let dir = tempfile::tempdir().unwrap();
    let (mut a, mut b);
    let bob;
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        b = Browser::sign_up(&s, "bob").await;
        a.limit(&s, "sell", "30000", "0.5").await.unwrap();
        bob = s
            .exchange
            .use_session(b.cookie.as_deref().unwrap())
            .unwrap();
        s.exchange.stop().await;
    }
    {
        let (store, client) = open_stopped(dir.path()).await;
        let market = settings().markets.remove(0);
        let symbol = market.symbol.to_string();
        let events = load_market(&client, &symbol).await.unwrap();
        let book = orderbook::Book::replay(market.clone(), &events);
        let order_id = book.last_order_id() + 1;
        let place = PlaceOrder {
            client_order_id: None,
            symbol: market.symbol,
            order_id,
            account: bob,
            side: orderbook::Side::Buy,
            order_type: orderbook::OrderType::Limit,
            price: Some(d("30000")),
            quantity: Some(d("0.1")),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::CancelTaker,
            at: 2,
            trigger: None,
        };
        // The book decides without fees, as that version wrote trades.
        let decision = book.decide(&Command::Place(place.clone()));
        let trades = decision
            .iter()
            .filter(|e| matches!(e, orderbook::Event::TradeExecuted(t) if t.fees.is_none()));
        assert_eq!(trades.count(), 1, "{decision:?}");
        let (asset, amount) = accounts::order_cost(&market.spec, &place, &decision);
        let reserve = accounts::AccountEvent::FundsReserved {
            account: bob,
            symbol: symbol.clone(),
            order_id,
            asset,
            amount,
            at: 2,
        };
        append_account_events(&client, &[reserve]).await;
        let data = decision.iter().map(market_event_data).collect();
        let stream = streams::market_stream(&symbol);
        streams::append(&client, &stream, events.len() as u64, data)
            .await
            .unwrap();
        // No start snapshot is written down while the trade awaits its
        // settlement: a start from it would not know to settle it.
        let markets = settings().markets;
        let first = start_snapshots::FoldFrom::FirstEvent;
        let folds = start_snapshots::fold_log(&client, &markets, first, None);
        let (folds, written) = start_snapshots::write_down(folds.await.unwrap()).await;
        assert!(folds.ledger.awaits_legacy_settlements());
        assert!(written.is_none());
        store.stop().await.unwrap();
    }
    for _ in 0..2 {
        let s = start(dir.path()).await;
        assert_eq!(b.balance(&s, "USD").await, (d("7000"), d("0")));
        assert_eq!(b.balance(&s, "BTC").await, (d("1.0998"), d("0")));
        assert_eq!(a.balance(&s, "USD").await, (d("12997"), d("0")));
        assert_eq!(a.account(&s).await.unwrap().fills.len(), 1);
        check_store(&s).await;
        s.exchange.stop().await;
    }
}

/// A log written before fees were in trades held funds with their own
/// events: a crash between an order's reservation and its market append
/// left a `FundsReserved` that no order in the market stream names. It
/// holds nothing: only open orders on a book hold funds.
#[tokio::test]
async fn an_old_reservation_whose_order_never_reached_the_book_holds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut a;
    let alice;
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        alice = s
            .exchange
            .use_session(a.cookie.as_deref().unwrap())
            .unwrap();
        s.exchange.stop().await;
    }
    {
        let (store, client) = open_stopped(dir.path()).await;
        let reserve = accounts::AccountEvent::FundsReserved {
            account: alice,
            symbol: "BTC-USD".into(),
            order_id: 7,
            asset: "USD".into(),
            amount: d("500"),
            at: 1,
        };
        append_account_events(&client, &[reserve]).await;
        store.stop().await.unwrap();
    }
    let s = start(dir.path()).await;
    assert_eq!(a.balance(&s, "USD").await, (d("10000"), d("0")));
    let msg = a.limit(&s, "buy", "100", "1").await.unwrap();
    assert_eq!(msg, "Order 1 is on the book.");
    check_store(&s).await;
}

/// A log of version 2 held an amendment's extra with its own event: a
/// crash before the amendment's append left the extra held with the
/// order's terms unchanged. An order holds what its terms cost, so the
/// extra is not held, and nothing of what the order needs is given back.
#[tokio::test]
async fn an_extra_an_old_log_held_for_a_lost_amendment_is_not_held() {
    let dir = tempfile::tempdir().unwrap();
    let mut a;
    let alice;
    {
        let s = start(dir.path()).await;
        a = Browser::sign_up(&s, "alice").await;
        alice = s
            .exchange
            .use_session(a.cookie.as_deref().unwrap())
            .unwrap();
        a.limit(&s, "buy", "100", "0.5").await.unwrap();
        a.limit(&s, "sell", "30000", "0.2").await.unwrap();
        s.exchange.stop().await;
    }
    {
        // What the amendment held before the crash took its append away.
        let (store, client) = open_stopped(dir.path()).await;
        let more = accounts::AccountEvent::ReservationChanged {
            account: alice,
            symbol: "BTC-USD".into(),
            order_id: 1,
            asset: "USD".into(),
            change: d("25"),
            market_revision: None,
            at: 1,
        };
        append_account_events(&client, &[more]).await;
        store.stop().await.unwrap();
    }
    let s = start(dir.path()).await;
    assert_eq!(a.balance(&s, "USD").await, (d("9950"), d("50")));
    assert_eq!(a.balance(&s, "BTC").await, (d("0.8"), d("0.2")));
    check_store(&s).await;
}

#[tokio::test]
async fn two_servers_on_one_store_stay_correct() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::EmbeddedStore::start(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = store.connection_string();
    let s1 = start_listening(Connection::External(url.clone())).await;
    assert!(matches!(
        s1.exchange.role(),
        leadership::Role::Leader { .. }
    ));
    let mut a = Browser::sign_up(&s1, "alice").await;
    let s2 = start_listening(Connection::External(url.clone())).await;
    // The second follows the first, and passes its order actions on.
    assert!(
        matches!(
            s2.exchange.role(),
            leadership::Role::Follower { leader: Some(_) }
        ),
        "{:?}",
        s2.exchange.role()
    );
    let mut b = Browser::sign_up(&s2, "bob").await;
    a.limit(&s1, "sell", "100", "1").await.unwrap();
    let msg = b.limit(&s2, "buy", "100", "0.4").await.unwrap();
    assert!(msg.starts_with("Order 2 filled"), "{msg}");
    // All of Alice's BTC is sold or on the book.
    let err = a.limit(&s1, "sell", "101", "0.5").await.unwrap_err();
    assert!(err.message.starts_with("insufficient BTC"), "{err:?}");
    let msg = b.limit(&s2, "buy", "100", "0.6").await.unwrap();
    assert!(msg.starts_with("Order 3 filled"), "{msg}");
    let s3 = start_listening(Connection::External(url)).await;
    assert_eq!(a.balance(&s3, "BTC").await, (d("0"), d("0")));
    assert_eq!(a.balance(&s3, "USD").await, (d("10099.9"), d("0")));
    assert_eq!(b.balance(&s3, "BTC").await, (d("1.998"), d("0")));
    check_store(&s3).await;
}

/// A server started under the name of one that still runs (as a restarted
/// server is) takes the lead at once and fences every market stream; the
/// old leader learns of the fence from the stream it follows and stops
/// taking orders (503, nothing written), and the order it held still holds
/// exactly what it held. Through the new leader an amendment then holds
/// its extra once.
#[tokio::test]
async fn a_restarted_leader_fences_out_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::EmbeddedStore::start(dir.path(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = store.connection_string();
    let direct = eventstore::Client::new(url.parse().unwrap()).unwrap();
    // One name (a restart takes over at once) and a long lease: a busy
    // machine's late renewal must not make the new leader step down.
    let mut config = settings();
    config.leader.lease = std::time::Duration::from_secs(30);
    let start = || start_on_with(config.clone(), Connection::External(url.clone()));
    let s1 = start().await;
    let mut a = Browser::sign_up(&s1, "alice").await;
    a.limit(&s1, "buy", "100", "0.1").await.unwrap();
    assert_eq!(a.balance(&s1, "USD").await, (d("9990"), d("10")));
    let s2 = start().await;
    assert_eq!(s2.exchange.role(), leadership::Role::Leader { term: 2 });
    let fenced = load_market(&direct, "BTC-USD").await.unwrap();
    assert!(
        matches!(fenced.last(), Some(orderbook::Event::StreamFenced(f)) if f.term == 2),
        "{:?}",
        fenced.last()
    );
    let amend = [
        ("symbol", "BTC-USD"),
        ("order_id", "1"),
        ("price", "150"),
        ("quantity", "0.1"),
    ];
    let err = a
        .call::<String>(&s1, "amend_order", &amend)
        .await
        .unwrap_err();
    assert_eq!(a.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{err:?}");
    assert!(
        err.message.starts_with("this server is not taking orders"),
        "{err:?}"
    );
    assert!(
        matches!(s1.exchange.role(), leadership::Role::Follower { .. }),
        "the old leader stepped down: {:?}",
        s1.exchange.role()
    );
    assert_eq!(
        load_market(&direct, "BTC-USD").await.unwrap().len(),
        fenced.len(),
        "nothing of the old leader's decision is in the stream"
    );
    assert_eq!(a.balance(&s2, "USD").await, (d("9990"), d("10")));
    let said: String = a.call(&s2, "amend_order", &amend).await.unwrap();
    assert!(said.starts_with("Order 1 amended to 0.1 at 150"), "{said}");
    assert_eq!(a.balance(&s2, "USD").await, (d("9985"), d("15")));
    check_store(&s2).await;
}

// The fault-injecting proxy the binary tests use too: one file, compiled
// into both (these tests use a part of it).
#[path = "../../tests/client/proxy.rs"]
#[allow(dead_code)]
mod proxy;
use proxy::Proxy;

/// A store in `dir`, a client straight to it, a [`Proxy`] in front of it
/// and the connection string through the proxy.
async fn store_behind_proxy(
    dir: &Path,
) -> (store::EmbeddedStore, eventstore::Client, Proxy, String) {
    let store = store::EmbeddedStore::start(dir, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let direct = eventstore::Client::new(store.connection_string().parse().unwrap()).unwrap();
    let proxy = Proxy::start(store.addr()).await;
    let url = store.connection_string().replace(
        &store.addr().port().to_string(),
        &proxy.addr.port().to_string(),
    );
    (store, direct, proxy, url)
}

/// An append the store wrote but whose answer was lost is tried again
/// identically until the store answers: the market is paused meanwhile
/// (the exchange's side, 503), and when the answer comes the order is in
/// the stream once, answered once, and every balance follows.
#[tokio::test]
async fn an_append_whose_answer_is_lost_is_retried_identically_and_lands_once() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, direct, proxy, url) = store_behind_proxy(dir.path()).await;
    let s = start_on(Connection::External(url)).await;
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    b.limit(&s, "sell", "30000", "0.1").await.unwrap();
    let before = load_market(&direct, "BTC-USD").await.unwrap().len();
    // From now on the store writes but its answers are lost.
    proxy.swallow(true);
    let buy = {
        let s_router = s.router.clone();
        let exchange = s.exchange.clone();
        let mut a2 = Browser {
            cookie: a.cookie.clone(),
            ..Browser::default()
        };
        tokio::spawn(async move {
            let s = Server {
                router: s_router,
                exchange,
            };
            a2.limit(&s, "buy", "30000", "0.1").await
        })
    };
    // Wait until the store has the order's events.
    let mut landed = Vec::new();
    for _ in 0..500 {
        landed = load_market(&direct, "BTC-USD").await.unwrap();
        if landed.len() > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(landed.len() > before, "the append never reached the store");
    // The answer is lost: cut the connections so the client sees an error
    // rather than waiting out its deadline; the market pauses and retries.
    proxy.cut();
    for _ in 0..500 {
        if s.exchange.stats().paused() == ["BTC-USD"] {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(s.exchange.stats().paused(), ["BTC-USD"]);
    // Retries go on, each the same append: three more tries, each lost
    // (the connections cut until the try fails).
    let unanswered = || {
        let stats = s.exchange.stats();
        let btc = stats.markets.iter().find(|m| m.symbol == "BTC-USD");
        btc.unwrap().unanswered
    };
    for _ in 0..3 {
        let before = unanswered();
        for _ in 0..500 {
            if unanswered() > before {
                break;
            }
            proxy.cut();
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(unanswered() > before, "the append is tried again");
        assert_eq!(s.exchange.stats().paused(), ["BTC-USD"]);
    }
    assert_eq!(
        load_market(&direct, "BTC-USD").await.unwrap().len(),
        landed.len(),
        "the retries were the same append"
    );
    let err = a.limit(&s, "buy", "29000", "0.1").await.unwrap_err();
    assert!(
        err.message.starts_with("market BTC-USD is paused"),
        "{err:?}"
    );
    assert_eq!(a.status, Some(StatusCode::SERVICE_UNAVAILABLE));
    // The network heals: the same append is answered as already written.
    proxy.swallow(false);
    let msg = buy.await.unwrap().unwrap();
    assert!(msg.starts_with("Order 2 filled"), "{msg}");
    assert!(s.exchange.stats().paused().is_empty());
    let after = load_market(&direct, "BTC-USD").await.unwrap();
    assert_eq!(after.len(), landed.len(), "written once");
    let trades = after
        .iter()
        .filter(|e| matches!(e, orderbook::Event::TradeExecuted(_)));
    assert_eq!(trades.count(), 1);
    assert_eq!(a.balance(&s, "BTC").await, (d("1.0998"), d("0")));
    assert_eq!(b.balance(&s, "BTC").await, (d("0.9"), d("0")));
    check_store(&s).await;
}

/// A leader cut off from the store past a follower's lease (its own lease
/// is long, so it still believes it leads: a process paused and resumed
/// is the same case) has an order in flight. The follower takes over and
/// fences every market. When the old leader is back, its append meets the
/// fence: nothing of it is written, it steps down and answers 503, and
/// from then on passes order actions to the new leader.
#[tokio::test]
async fn an_old_leaders_append_meets_the_fence_and_it_steps_down() {
    let dir = tempfile::tempdir().unwrap();
    let (store, direct, proxy, through_proxy) = store_behind_proxy(dir.path()).await;
    // The old leader: reached through the proxy, with a 30 s lease.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut config = settings();
    config.leader = leadership::LeaderSettings {
        url: format!("http://{}", listener.local_addr().unwrap()),
        lease: std::time::Duration::from_secs(30),
    };
    let s1 = start_on_with(config, Connection::External(through_proxy)).await;
    serve_on(listener, s1.router.clone(), Default::default());
    assert_eq!(s1.exchange.role(), leadership::Role::Leader { term: 1 });
    let mut a = Browser::sign_up(&s1, "alice").await;
    a.limit(&s1, "buy", "100", "0.1").await.unwrap();
    let s2 = start_listening(Connection::External(store.connection_string())).await;
    assert!(matches!(
        s2.exchange.role(),
        leadership::Role::Follower { leader: Some(_) }
    ));
    proxy.partition(true);
    let order = {
        let (router, exchange) = (s1.router.clone(), s1.exchange.clone());
        let mut a1 = Browser {
            cookie: a.cookie.clone(),
            ..Browser::default()
        };
        tokio::spawn(async move {
            let s = Server { router, exchange };
            let answer = a1.limit(&s, "buy", "99", "0.1").await;
            (answer, a1.status)
        })
    };
    // The follower sees the claim stand still for its lease, and takes over.
    for _ in 0..400 {
        if s2.exchange.role() == (leadership::Role::Leader { term: 2 }) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(s2.exchange.role(), leadership::Role::Leader { term: 2 });
    assert_eq!(s1.exchange.role(), leadership::Role::Leader { term: 1 });
    let fenced = load_market(&direct, "BTC-USD").await.unwrap();
    proxy.partition(false);
    let (answer, status) = order.await.unwrap();
    let err = answer.unwrap_err();
    assert_eq!(status, Some(StatusCode::SERVICE_UNAVAILABLE), "{err:?}");
    assert!(
        err.message.starts_with("this server is not taking orders"),
        "{err:?}"
    );
    assert_eq!(
        load_market(&direct, "BTC-USD").await.unwrap().len(),
        fenced.len(),
        "nothing of the old leader's batch is in the stream"
    );
    assert!(
        matches!(s1.exchange.role(), leadership::Role::Follower { .. }),
        "{:?}",
        s1.exchange.role()
    );
    // Once it has read the claim, it passes orders on to the new leader.
    for _ in 0..400 {
        if matches!(
            s1.exchange.role(),
            leadership::Role::Follower { leader: Some(_) }
        ) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let msg = a.limit(&s1, "buy", "99", "0.1").await.unwrap();
    assert!(msg.starts_with("Order 2 is on the book"), "{msg}");
    assert_eq!(a.balance(&s2, "USD").await, (d("9980.1"), d("19.9")));
    check_store(&s2).await;
}

/// A store out of reach (a restart, a network fault) loses no server for
/// good. One starting meanwhile waits for the store and starts once it is
/// back (with a new client: the official one gives up for good when its
/// first call fails midway). For a running one, the order in flight
/// meanwhile waits (the market paused, others told so with a 503) and
/// lands once the store is back, and it takes orders again. Its outage
/// lasts until more of its calls have failed than the client's discovery
/// allows (`maxDiscoverAttempts` in the connection string): a client that
/// has once connected to a single node reconnects on each call and never
/// gives up, and the live tail it feeds the market data from resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_trades_again_once_its_store_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_store, _direct, proxy, url) = store_behind_proxy(dir.path()).await;
    proxy.partition(true);
    let starting = tokio::spawn(start_on(Connection::External(url.clone())));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    proxy.partition(false);
    let s = tokio::time::timeout(std::time::Duration::from_secs(20), starting)
        .await
        .expect("the server starts once its store is back")
        .unwrap();
    let mut a = Browser::sign_up(&s, "alice").await;
    a.limit(&s, "buy", "100", "0.1").await.unwrap();
    proxy.partition(true);
    let in_flight = {
        let (router, exchange) = (s.router.clone(), s.exchange.clone());
        let mut a1 = Browser {
            cookie: a.cookie.clone(),
            ..Browser::default()
        };
        tokio::spawn(async move {
            let s = Server { router, exchange };
            a1.limit(&s, "buy", "99", "0.1").await
        })
    };
    let unanswered = || {
        let stats = s.exchange.stats();
        let btc = stats.markets.iter().find(|m| m.symbol == "BTC-USD");
        btc.unwrap().unanswered
    };
    let patience: u64 = url_parameter(&url, "maxDiscoverAttempts");
    for _ in 0..1200 {
        if unanswered() > patience {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        unanswered() > patience,
        "the append was tried {} times, not past the client's {patience} discovery attempts",
        unanswered()
    );
    assert_eq!(s.exchange.stats().paused(), ["BTC-USD"]);
    let err = a.limit(&s, "buy", "98", "0.1").await.unwrap_err();
    assert_eq!(a.status, Some(StatusCode::SERVICE_UNAVAILABLE), "{err:?}");
    proxy.partition(false);
    let landed = tokio::time::timeout(std::time::Duration::from_secs(20), in_flight)
        .await
        .expect("the order in flight lands once the store is back")
        .unwrap()
        .unwrap();
    assert!(landed.starts_with("Order 2 is on the book"), "{landed}");
    let msg = a.limit(&s, "buy", "98", "0.1").await.unwrap();
    assert!(msg.starts_with("Order 3 is on the book"), "{msg}");
    // The live tail resumed: a trade after the outage reaches the tape.
    let mut b = Browser::sign_up(&s, "bob").await;
    let msg = b.limit(&s, "sell", "100", "0.1").await.unwrap();
    assert!(msg.starts_with("Order 4 filled"), "{msg}");
    let on_tape = || s.exchange.snapshot("BTC-USD").unwrap().trades.len();
    for _ in 0..400 {
        if on_tape() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(on_tape(), 1, "the market data follows the store again");
    check_store(&s).await;
}

/// The value of `name` in a connection string's query.
fn url_parameter(url: &str, name: &str) -> u64 {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let value = query
        .split('&')
        .find_map(|p| p.strip_prefix(&format!("{name}=")));
    let value = value.unwrap_or_else(|| panic!("{url} sets no {name}"));
    value.parse().unwrap()
}
