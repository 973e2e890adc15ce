//! Candles from every trade ever made, and the time machine's replays.

use super::*;

/// Calls `candles_before` for BTC-USD.
async fn history(
    s: &Server,
    interval: &str,
    before_ms: u64,
    limit: usize,
) -> Result<crate::api::CandleHistory, UserError> {
    let (before, limit) = (before_ms.to_string(), limit.to_string());
    let form = [
        ("symbol", "BTC-USD"),
        ("interval", interval),
        ("before_ms", &before),
        ("limit", &limit),
    ];
    Browser::default().call(s, "candles_before", &form).await
}

/// Trades of long ago (written before the exchange starts, as an earlier
/// server would have left them): the history of candles reaches back to
/// the first trade, page by page, in every interval, agrees with what a
/// page is sent first, and is the same after a restart (it is rebuilt
/// from the events). Bad requests get clear errors.
#[tokio::test]
async fn older_candles_come_from_every_trade_ever_made() {
    use crate::api::{CandleHistory, MarketSnapshot};
    use crate::candles::Interval;
    use orderbook::{Command, OrderType, PlaceOrder, SelfTradePrevention, Side};
    let dir = tempfile::tempdir().unwrap();
    let minute = 60_000u64;
    // 600 trades, one a minute, the last an hour ago.
    let first = (clock::now_ms() / minute - 660) * minute;
    let price_of = |i: u64| 30_000 + i % 50;
    {
        let (store, client) = open_stopped(dir.path()).await;
        let market = settings().markets.remove(0);
        let mut book = orderbook::Book::new(market.clone());
        let mut data = Vec::new();
        for i in 0..600u64 {
            let at = (first + i * minute) * 1000 + 500;
            for (side, account) in [(Side::Sell, 900_001), (Side::Buy, 900_002)] {
                let command = Command::Place(PlaceOrder {
                    client_order_id: None,
                    symbol: market.symbol,
                    order_id: book.last_order_id() + 1,
                    account,
                    side,
                    order_type: OrderType::Limit,
                    price: Some(Decimal::from(price_of(i))),
                    quantity: Some(d("0.01")),
                    quote_amount: None,
                    time_in_force: None,
                    post_only: false,
                    self_trade_prevention: SelfTradePrevention::default(),
                    at,
                    trigger: None,
                });
                for e in book.decide(&command) {
                    book.apply(&e);
                    data.push(market_event_data(&e));
                }
            }
        }
        let stream = streams::market_stream(market.symbol.as_str());
        streams::append(&client, &stream, 0, data).await.unwrap();
        store.stop().await.unwrap();
    }
    for _ in 0..2 {
        let s = start(dir.path()).await;
        let now = clock::now_ms();
        // The projection reads every event at start; wait until it has.
        let mut newest = CandleHistory {
            candles: Vec::new(),
            earlier: false,
        };
        for _ in 0..200 {
            newest = history(&s, "1m", now, 250).await.unwrap();
            if newest.candles.last().map(|c| c.start_ms) == Some(first + 599 * minute) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(newest.candles.len(), 250);
        assert!(newest.earlier);
        // Page back to the first trade.
        let mut all = newest.candles.clone();
        let mut pages = 1;
        let mut earlier = newest.earlier;
        while earlier {
            let page = history(&s, "1m", all[0].start_ms, 250).await.unwrap();
            earlier = page.earlier;
            all.splice(0..0, page.candles);
            pages += 1;
        }
        assert_eq!(pages, 3);
        assert_eq!(all.len(), 600);
        for (i, c) in all.iter().enumerate() {
            let i = i as u64;
            assert_eq!(c.start_ms, first + i * minute);
            let price = price_of(i) as f64;
            assert_eq!(
                (c.open, c.high, c.low, c.close),
                (price, price, price, price)
            );
            assert!((c.volume - 0.01).abs() < 1e-12);
        }
        // What a page is sent first is the newest of the same candles.
        let mut b = Browser::default();
        let page: MarketSnapshot = b
            .call(&s, "market_page", &[("symbol", "BTC-USD")])
            .await
            .unwrap();
        let minutes = page
            .series
            .iter()
            .find(|s| s.interval == Interval::M1)
            .unwrap();
        assert_eq!(
            minutes.candles.len(),
            crate::server::market_data::CANDLES_SENT
        );
        assert_eq!(
            minutes.candles[..],
            all[600 - crate::server::market_data::CANDLES_SENT..]
        );
        // Every interval holds every trade: the volumes add up.
        for interval in Interval::ALL {
            let got = history(&s, interval.label(), now, 1000).await.unwrap();
            assert!(!got.earlier, "{interval:?}");
            let volume: f64 = got.candles.iter().map(|c| c.volume).sum();
            assert!((volume - 6.0).abs() < 1e-9, "{interval:?}: {volume}");
            let expected = (interval.start(first)..=first + 599 * minute)
                .step_by(interval.millis() as usize)
                .count();
            assert_eq!(got.candles.len(), expected, "{interval:?}");
        }
        // Bad requests are refused with what to do instead.
        let refused = |r: Result<CandleHistory, UserError>| r.unwrap_err().message;
        assert!(
            refused(history(&s, "2m", now, 10).await)
                .contains("no interval \"2m\"; use one of 1m, 5m")
        );
        assert!(refused(history(&s, "1m", now, 0).await).contains("1 to 1000 candles"));
        assert!(refused(history(&s, "1m", now, 1001).await).contains("1 to 1000 candles"));
        let mut b = Browser::default();
        let unknown = b
            .call::<CandleHistory>(
                &s,
                "candles_before",
                &[
                    ("symbol", "DOGE-USD"),
                    ("interval", "1m"),
                    ("before_ms", "1"),
                    ("limit", "1"),
                ],
            )
            .await;
        assert_eq!(refused(unknown), "there is no market DOGE-USD");
        s.exchange.stop().await;
    }
}

/// The time machine over the router: the market after its first n events
/// is the stream's first n events replayed by the pure engine (its depth),
/// with the trades among them on its tape, newest first; a time replays
/// every event up to it. Bad requests are refused with what to ask.
#[tokio::test]
async fn a_replay_is_the_stream_replayed_to_that_moment() {
    use crate::api::ReplayView;
    let dir = tempfile::tempdir().unwrap();
    let s = start(dir.path()).await.unpaced();
    let mut a = Browser::sign_up(&s, "alice").await;
    let mut b = Browser::sign_up(&s, "bob").await;
    for (price, qty) in [("30010", "0.01"), ("30020", "0.02"), ("30030", "0.03")] {
        a.limit(&s, "sell", price, qty).await.unwrap();
    }
    for (price, qty) in [("29990", "0.01"), ("30015", "0.015"), ("30030", "0.02")] {
        b.limit(&s, "buy", price, qty).await.unwrap();
    }
    a.limit(&s, "sell", "29980", "0.005").await.unwrap();
    let events = load_market(&s.exchange.client(), "BTC-USD").await.unwrap();
    let market = settings().markets.remove(0);
    let replay = |form: Vec<(&'static str, String)>| {
        let s = &s;
        async move {
            let mut form = form;
            form.push(("symbol", "BTC-USD".to_string()));
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            Browser::default()
                .call::<ReplayView>(s, "replay_market", &form)
                .await
        }
    };
    // The market data follows the store: wait until it has every event.
    for _ in 0..100 {
        let r = replay(vec![("events", u64::MAX.to_string())])
            .await
            .unwrap();
        if r.total == events.len() as u64 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for n in 0..=events.len() {
        let got = replay(vec![("events", n.to_string())]).await.unwrap();
        let book = orderbook::Book::replay(market.clone(), &events[..n]);
        assert_eq!(got.events, n as u64);
        assert_eq!(got.total, events.len() as u64);
        assert_eq!(
            got.depth,
            views::depth_view(book.depth(20)),
            "after {n} events"
        );
        let tape: Vec<_> = events[..n]
            .iter()
            .rev()
            .filter_map(views::trade_view)
            .collect();
        assert_eq!(got.trades, tape, "after {n} events");
        assert_eq!(got.at_ms, n.checked_sub(1).map(|i| events[i].at() / 1000));
        let closes: Vec<f64> = got.series[0].candles.iter().map(|c| c.close).collect();
        let last_trade = tape.first().map(|t| t.amounts().0);
        assert_eq!(closes.last().copied(), last_trade, "after {n} events");
    }
    assert!(events.len() > 12, "{}", events.len());
    // A time: every event up to it.
    let at = events[7].at() / 1000;
    let got = replay(vec![("at_ms", at.to_string())]).await.unwrap();
    let upto = events.iter().filter(|e| e.at() / 1000 <= at).count();
    assert_eq!(got.events, upto as u64);
    assert!(upto >= 8);
    // Past the end is the present.
    let got = replay(vec![("events", "1000000".into())]).await.unwrap();
    assert_eq!(got.events, events.len() as u64);
    for bad in [vec![], vec![("events", "1".into()), ("at_ms", "1".into())]] {
        let message = replay(bad).await.unwrap_err().message;
        assert!(message.contains("either events"), "{message}");
    }
    let unknown = Browser::default()
        .call::<ReplayView>(
            &s,
            "replay_market",
            &[("symbol", "DOGE-USD"), ("events", "1")],
        )
        .await
        .unwrap_err();
    assert_eq!(unknown.message, "there is no market DOGE-USD");
    s.exchange.stop().await;
}
