//! How fast the time machine rebuilds a moment of a long history: a market
//! of `EVENTS` events (default 1,000,000) is written to the store, the
//! exchange starts on it, writes its book's snapshots (a history written
//! without them gets them all once a server leads it), and
//! `exchange.replay` goes to `MOMENTS` moments spread over the history
//! (default 200), each timed from the call to the view (book from the
//! stored snapshot before the moment plus the events after it, both read
//! from the store, tape read back, candles). The baseline, in the same
//! run, is the replay without snapshots: read the stream from the start
//! and fold every event up to the moment with the pure engine (`NAIVE`
//! moments, default 5). It reports how long start takes, and of that how
//! long the embedded store takes to open the log on its own (with its
//! segments' seals, and again without them, reading every record back);
//! and the process's resident memory
//! once the history is read (the store runs in the same process), and
//! again once the allocator has given back what is free.
//!
//! ```sh
//! cargo bench -p app --features ssr --bench replay
//! ```

use std::time::{Duration, Instant};

use app::server::{Connection, Exchange, ReplayTo, Settings, start_snapshots};

mod figures;
mod history;
#[allow(dead_code)]
mod process;
use figures::{env_list, percentile};
use history::{SYMBOL, write_history};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut samples: Vec<f64>) -> String {
    samples.sort_by(f64::total_cmp);
    format!(
        "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (n {})",
        percentile(&samples, 0.5),
        percentile(&samples, 0.99),
        samples[samples.len() - 1],
        samples.len()
    )
}

fn embedded(data: &std::path::Path) -> Connection {
    Connection::Embedded {
        data: data.to_path_buf(),
    }
}

/// Once the first start's snapshot of what start folds is written, stops
/// the exchange and starts it again on the same log, which now takes the
/// snapshot up and folds only the log after it; reports both starts.
async fn restart(
    exchange: Exchange,
    settings: &Settings,
    data: &std::path::Path,
    total: u64,
    first_start: Duration,
) -> Exchange {
    let waiting = Instant::now();
    while exchange.stats().start_snapshot == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the start snapshot was written {:.1?} after the replays",
        waiting.elapsed()
    );
    exchange.stop().await;
    let started = Instant::now();
    let exchange = Exchange::start(settings.clone(), embedded(data))
        .await
        .unwrap();
    let again = started.elapsed();
    assert!(
        exchange.stats().start_snapshot > 0,
        "the start took the snapshot up"
    );
    assert!(exchange.candle_events(SYMBOL) >= Some(total));
    println!(
        "start on {total} events: from the first event {first_start:.1?}, from the start snapshot {again:.1?} ({:.3}x)",
        again.as_secs_f64() / first_start.as_secs_f64()
    );
    // Of that, what taking the snapshot up costs (read, checked, parsed,
    // and the log after it folded), done again on its own.
    let client = exchange.client();
    let taking_up = Instant::now();
    let from = start_snapshots::FoldFrom::NewestSnapshot;
    let folds = start_snapshots::fold_log(&client, &settings.markets, from, None)
        .await
        .unwrap();
    let taken = folds.from.expect("a snapshot to start from").taken;
    println!(
        "the start snapshot ({} bytes of JSON in {} parts) taken up in {:.1?}",
        taken.bytes,
        taken.parts,
        taking_up.elapsed()
    );
    exchange
}

/// How long a page of a trader's order history with its fills takes (50
/// orders, the newest and from the middle of the history), against what
/// each page did before the ledger kept its fills' spans (issue #29): a
/// look at every fill of the account for the page's orders.
async fn history_pages(exchange: &Exchange) {
    use app::server::order_history::OrderFilter;
    let trader = history::TRADERS[0];
    let filter = OrderFilter::default();
    let orders = exchange.count_orders(trader, &filter, &(0..u64::MAX)) as u64;
    for (what, before) in [("newest", None), ("middle", Some(orders / 2))] {
        let (mut page, mut every) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            let began = Instant::now();
            let got = exchange
                .order_history(trader, &filter, before, 50)
                .await
                .unwrap();
            page.push(ms(began.elapsed()));
            let ids = got.orders.iter().filter_map(|o| o.order_id);
            let ids = ids.clone().min().unwrap()..=ids.max().unwrap();
            let began = Instant::now();
            let scanned = exchange
                .fills(trader, |a| {
                    (a.fills.iter())
                        .filter(|(_, f)| ids.contains(&f.order_id))
                        .map(|(i, _)| i)
                        .collect()
                })
                .await
                .unwrap();
            every.push(ms(began.elapsed()));
            let filled: usize = got.orders.iter().map(|o| o.fills.len()).sum();
            assert_eq!(
                filled,
                scanned.len(),
                "the page has every fill of its orders"
            );
        }
        let (page, every) = (summary(page), summary(every));
        println!(
            "order history page ({what}, 50 orders of {orders}): {page}; a look at every fill for its orders: {every}"
        );
    }
    // One order by its id, as a program asks for it: the newest, and one
    // from the middle of the history (closed long ago).
    for (what, before) in [("newest", None), ("middle", Some(orders / 2))] {
        let got = exchange
            .order_history(trader, &filter, before, 1)
            .await
            .unwrap();
        let order = &got.orders[0];
        let (symbol, id) = (order.symbol.clone(), order.order_id.unwrap());
        let mut took = Vec::new();
        for _ in 0..20 {
            let began = Instant::now();
            let found = exchange
                .order_record(trader, &symbol, &app::server::OrderRef::Id(id))
                .await
                .unwrap();
            took.push(ms(began.elapsed()));
            assert_eq!(found.and_then(|f| f.order_id), Some(id));
        }
        println!("an order by its id ({what}): {}", summary(took));
    }
    // What a trades download counts first, under the ledger's lock: every
    // fill, and those of one market in the newest tenth of the history.
    let trades = exchange.count_trades(trader, None, &(0..u64::MAX)) as u64;
    let newest = exchange
        .fills(trader, |a| vec![a.fills.len() - 1])
        .await
        .unwrap()[0]
        .at
        / 1000;
    let oldest = exchange.fills(trader, |_| vec![0]).await.unwrap()[0].at / 1000;
    let tenth = newest - (newest - oldest) / 10..u64::MAX;
    for (what, symbol, at) in [
        ("all", None, 0..u64::MAX),
        ("one market, the newest tenth", Some(SYMBOL), tenth.clone()),
    ] {
        let timed = counted(trades, || exchange.count_trades(trader, symbol, &at));
        println!("count of {trades} trades ({what}): {timed}");
    }
    // What an orders download counts first, under the history's lock:
    // every order, and the cancelled ones of one market in the newest
    // tenth of the history.
    let cancelled = OrderFilter {
        symbol: Some(SYMBOL.to_string()),
        state: Some("cancelled".to_string()),
    };
    for (what, filter, at) in [
        ("all", &filter, 0..u64::MAX),
        (
            "cancelled in one market, the newest tenth",
            &cancelled,
            tenth,
        ),
    ] {
        let timed = counted(orders, || exchange.count_orders(trader, filter, &at));
        println!("count of {orders} orders ({what}): {timed}");
    }
}

/// `count` timed 20 times, each answer at most `most`, as `summary` puts
/// it.
fn counted(most: u64, count: impl Fn() -> usize) -> String {
    let mut timed = Vec::new();
    for _ in 0..20 {
        let began = Instant::now();
        let n = count();
        timed.push(ms(began.elapsed()));
        assert!(n as u64 <= most);
    }
    summary(timed)
}

/// How long the embedded store takes to open the log in `data`, alone.
async fn open_alone(data: &std::path::Path) -> Duration {
    let opening = Instant::now();
    let store = store::EmbeddedStore::start(data, ([127, 0, 0, 1], 0).into())
        .await
        .unwrap();
    let took = opening.elapsed();
    store.stop().await.unwrap();
    took
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let events: u64 = env_list("EVENTS", "1000000")[0];
    let moments: u64 = env_list("MOMENTS", "200")[0];
    let naive: u64 = env_list("NAIVE", "5")[0];
    let settings = Settings::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/exchange.json"
    )))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("events");
    write_history(&data, &settings, events).await;
    // What the start below spends opening the embedded store, measured
    // on its own: with its segments' seals, then as before seals, every
    // record read back (stopping waits until they are sealed again).
    let with_seals = open_alone(&data).await;
    for file in std::fs::read_dir(&data).unwrap() {
        let path = file.unwrap().path();
        if path.extension().is_some_and(|x| x == "seal") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let without = open_alone(&data).await;
    eprintln!(
        "the embedded store alone opens the log in {with_seals:.1?}; reading every record back (no seals) {without:.1?} ({:.3}x)",
        with_seals.as_secs_f64() / without.as_secs_f64()
    );
    let started = Instant::now();
    let exchange = Exchange::start(settings.clone(), embedded(&data))
        .await
        .unwrap();
    // The market data reads the history at start.
    let total = loop {
        let folded = exchange.candle_events(SYMBOL).unwrap();
        if folded >= events {
            break folded;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first_start = started.elapsed();
    eprintln!("start: {total} events read in {first_start:.1?}");
    let every = settings.snapshot_every;
    let writing = Instant::now();
    loop {
        let stats = exchange.stats();
        let market = stats.markets.iter().find(|m| m.symbol == SYMBOL).unwrap();
        if market.snapshots >= total / every {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "{} snapshots of the book (every {every} events) written in {:.1?} after start",
        total / every,
        writing.elapsed()
    );
    let mib = || process::usage(std::process::id()).0 as f64 / 1048576.0;
    let rss = mib();
    // Memory start-up freed (its one read of the log) that the allocator
    // kept: given back, what is left is what the process holds. 4096 is
    // jemalloc's MALLCTL_ARENAS_ALL: every arena purges its free pages.
    let purge = c"arena.4096.purge";
    // SAFETY: a purge reads and writes nothing through the null pointers;
    // it only returns free pages to the system.
    let purged = unsafe {
        tikv_jemalloc_sys::mallctl(
            purge.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(purged, 0, "jemalloc refused to purge");
    println!(
        "resident memory with the history read: {rss:.0} MiB; {:.0} MiB once the allocator gives back what is free",
        mib()
    );
    history_pages(&exchange).await;
    let mut timed = Vec::new();
    let mut depth_levels = 0;
    for k in 0..moments {
        // Spread over the whole history, mostly between snapshots.
        let n = (k * 7_919_993 + 1) % total;
        let began = Instant::now();
        let view = exchange.replay(SYMBOL, ReplayTo::Events(n)).await.unwrap();
        timed.push(ms(began.elapsed()));
        assert_eq!(view.events, n);
        depth_levels += view.depth.bids.len() + view.depth.asks.len();
    }
    println!(
        "replay to a moment of {total} events (snapshots): {}; {:.1} levels a moment",
        summary(timed.clone()),
        depth_levels as f64 / moments as f64
    );
    let exchange = restart(exchange, &settings, &data, total, first_start).await;
    if naive == 0 {
        exchange.stop().await;
        return;
    }
    let market = settings
        .markets
        .iter()
        .find(|m| m.symbol.as_str() == SYMBOL)
        .unwrap();
    let mut from_start = Vec::new();
    for k in 0..naive {
        let n = total - (k * total / naive.max(1)) - 1;
        let began = Instant::now();
        let all = app::server::streams::load_market(&exchange.client(), SYMBOL)
            .await
            .unwrap();
        let book = orderbook::Book::replay(market.clone(), &all[..n as usize]);
        from_start.push(ms(began.elapsed()));
        let view = exchange.replay(SYMBOL, ReplayTo::Events(n)).await.unwrap();
        assert_eq!(
            app::server::depth_view(book.depth(20)),
            view.depth,
            "the replay from a snapshot is the stream's"
        );
    }
    let mut sorted = timed;
    sorted.sort_by(f64::total_cmp);
    let p99 = percentile(&sorted, 0.99);
    let naive_p50 = {
        let mut s = from_start.clone();
        s.sort_by(f64::total_cmp);
        percentile(&s, 0.5)
    };
    println!(
        "baseline, read from the start and fold: {}; replay p99 / baseline p50 = {:.4}",
        summary(from_start),
        p99 / naive_p50
    );
    exchange.stop().await;
}
