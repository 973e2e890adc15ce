//! What every viewer of a market is sent besides its trades: the book's
//! depth and the 24-hour ticker, worked out by one task per market and
//! published on a `watch` that each viewer's feed holds a receiver of.
//!
//! A publication follows a change of the book at once when the book was
//! quiet, and at most every [`DEPTH_EVERY`] while it keeps changing; with no
//! change it still comes every [`HEARTBEAT`], so the ticker's 24-hour window
//! moves on and an idle page hears that its link is up. Why one publisher:
//! when every feed waited on the book itself and kept its own timers, each
//! book change woke every viewer twice or three times before its depth went
//! out, and at 10,000 viewers those wake-ups delayed the trades behind
//! them. Now a viewer wakes once per publication, whatever the book did.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::clock::now_ms;
use super::market_data::MarketData;
use super::market_task::MarketHandle;
use super::supervise::supervise;
use super::views::depth_view;
use crate::api::{DepthView, TickerView};
use crate::shared_json::SharedJson;

/// Price levels shown per side of the depth view.
pub const DEPTH_LEVELS: usize = 20;
/// The shortest time between two publications while the book changes.
pub const DEPTH_EVERY: Duration = Duration::from_millis(100);
/// The longest time between two publications.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

/// One publication: the same shared values (and their JSON, made once)
/// go to every viewer.
#[derive(Clone, Debug)]
pub struct DepthUpdate {
    /// The book revision (events applied) the depth is of.
    pub revision: u64,
    pub depth: SharedJson<DepthView>,
    pub ticker: SharedJson<TickerView>,
}

/// Where a market's depth updates are published: each viewer subscribes,
/// and the count of receivers is the count of its viewers.
pub type DepthUpdates = Arc<watch::Sender<Arc<DepthUpdate>>>;

/// Starts the supervised publisher of one market's depth updates. The
/// first update is there at once.
pub fn start(market: MarketHandle, data: MarketData) -> DepthUpdates {
    let symbol = market.market.symbol.to_string();
    let updates = Arc::new(watch::Sender::new(Arc::new(update(&market, &data, None))));
    let tx = updates.clone();
    supervise(format!("depth of {symbol}"), move || {
        publish(market.clone(), data.clone(), tx.clone())
    });
    updates
}

/// The update as of now; the depth of `last` is reused when the book has
/// not moved since.
fn update(market: &MarketHandle, data: &MarketData, last: Option<&DepthUpdate>) -> DepthUpdate {
    let book = market.book();
    let revision = book.events_applied();
    let depth = match last {
        Some(last) if last.revision == revision => last.depth.clone(),
        _ => SharedJson::new(depth_view(book.depth(DEPTH_LEVELS))),
    };
    let symbol = market.market.symbol.as_str();
    let ticker = data
        .read(symbol, |tape, _| tape.ticker(now_ms()))
        .unwrap_or_default();
    let ticker = match last {
        Some(last) if *last.ticker == ticker => last.ticker.clone(),
        _ => SharedJson::new(ticker),
    };
    DepthUpdate {
        revision,
        depth,
        ticker,
    }
}

async fn publish(market: MarketHandle, data: MarketData, tx: DepthUpdates) {
    let mut revision = market.revision();
    loop {
        // A change, or the heartbeat's time. The market's task holds the
        // revision's sender for as long as the exchange runs.
        if let Ok(Err(_)) = tokio::time::timeout(HEARTBEAT, revision.changed()).await {
            return;
        }
        revision.borrow_and_update();
        let next = update(&market, &data, Some(&tx.borrow()));
        tx.send_replace(Arc::new(next));
        tokio::time::sleep(DEPTH_EVERY).await;
    }
}
