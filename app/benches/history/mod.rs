//! A long market history for the benches (`viewers`, `replay`), written
//! to the store before the exchange starts.

use std::time::Instant;

use app::server::Settings;
use orderbook::Side;
use rust_decimal::Decimal;

/// The market the history is written to.
pub const SYMBOL: &str = "BTC-USD";

/// The two traders' accounts.
pub const TRADERS: [u64; 2] = [1_000_000_000, 1_000_000_001];

/// Writes a history of at least `events` events to the market's stream
/// before the exchange starts: the pure engine's own decisions for two
/// traders crossing orders of 0.001 BTC around 30,000 (accepts, trades,
/// fills), appended 1,000 events at a time, each trade with the fees the
/// market task stamps in. The two traders have accounts (opened first in
/// the accounts registry), so the server's ledger keeps their fills as a
/// real one would; `ACCOUNTS=0` in the environment leaves them without,
/// as the history was written before 2026-12-07. With `RESTING=n` (default
/// 0) the history starts with n sells far above the trading, which rest
/// for the whole of it: a deep book.
pub async fn write_history(dir: &std::path::Path, settings: &Settings, events: u64) {
    use app::server::streams::{
        ACCOUNTS_STREAM, account_event_data, expected, market_event_data, market_stream,
    };
    use eventstore::AppendToStreamOptions;
    use orderbook::{Book, Command, OrderType, PlaceOrder, SelfTradePrevention};
    let started = Instant::now();
    let store = store::EmbeddedStore::start(dir, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = eventstore::Client::new(store.connection_string().parse().unwrap()).unwrap();
    let market = settings
        .markets
        .iter()
        .find(|m| m.symbol.as_str() == SYMBOL)
        .unwrap()
        .clone();
    let mut book = Book::new(market.clone());
    let mut batch = Vec::new();
    let mut written = 0u64;
    // One event a microsecond, ending about now.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let at = now - events;
    let resting: u64 = std::env::var("RESTING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let accounts = std::env::var("ACCOUNTS").map_or(true, |v| v != "0");
    if accounts {
        let opened = (0..TRADERS.len()).map(|i| {
            account_event_data(&accounts::AccountEvent::AccountOpened {
                account: TRADERS[i],
                username: format!("trader{i}"),
                password_hash: "not a hash: nobody logs in".into(),
                at,
            })
        });
        let options = AppendToStreamOptions::default().expected_revision(expected(0));
        client
            .append_to_stream(ACCOUNTS_STREAM, &options, opened.collect::<Vec<_>>())
            .await
            .unwrap();
    }
    let mut i = 0u64;
    while written + (batch.len() as u64) < events {
        let side = if i.is_multiple_of(2) {
            Side::Sell
        } else {
            Side::Buy
        };
        let (side, base) = if i < resting {
            (Side::Sell, 40_000 + i as i64)
        } else {
            (side, 30_000)
        };
        let ticks = Decimal::new((i / 2 % 200) as i64, 2);
        let command = Command::Place(PlaceOrder {
            client_order_id: None,
            symbol: market.symbol,
            order_id: book.last_order_id() + 1,
            account: TRADERS[(i % 2) as usize],
            side,
            order_type: OrderType::Limit,
            price: Some(Decimal::from(base) + ticks),
            quantity: Some(Decimal::new(1, 3)),
            quote_amount: None,
            time_in_force: None,
            post_only: false,
            self_trade_prevention: SelfTradePrevention::default(),
            at: at + i,
            trigger: None,
        });
        for mut event in book.decide(&command) {
            if accounts {
                settings.fees.stamp(&mut event);
            }
            book.apply(&event);
            batch.push(market_event_data(&event));
        }
        i += 1;
        if batch.len() >= 1000 {
            let options = AppendToStreamOptions::default().expected_revision(expected(written));
            let n = batch.len() as u64;
            client
                .append_to_stream(market_stream(SYMBOL), &options, std::mem::take(&mut batch))
                .await
                .unwrap();
            written += n;
        }
    }
    if !batch.is_empty() {
        let options = AppendToStreamOptions::default().expected_revision(expected(written));
        written += batch.len() as u64;
        client
            .append_to_stream(market_stream(SYMBOL), &options, batch)
            .await
            .unwrap();
    }
    store.stop().await.unwrap();
    eprintln!(
        "history: {written} events ({} trades) in {:.1?}",
        book.last_trade_id(),
        started.elapsed()
    );
}
