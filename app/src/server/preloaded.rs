//! The log as start-up reads it: `$all` read once from the beginning, each
//! market and account event decoded once, and the same events handed to
//! every fold start builds (the ledger, the books, the market data, the
//! order history). Each of them then
//! follows the live tail from the position this read reached, so no event
//! is read or folded twice at start and none between the read and the
//! tail is missed.
//!
//! Before, each fold read the log on its own: every market stream for the
//! ledger and the books, `$all` again for the market data and again for
//! the order history, and the whole ledger once more when the server
//! claimed the lead.

use std::collections::HashMap;
use std::sync::Arc;

use accounts::{AccountEvent, Ledger};
use eventstore::Client;
use orderbook::{Event, Market, MarketSpec};

use super::live_tail::{Streams, TailEvent};
use super::streams::{
    ACCOUNTS_STREAM, Decoded, StreamError, account_stream, feed_position, market_stream,
    read_all_from_start,
};
use crate::api::FeedPosition;

/// The market and account events of the whole log, in the store's order,
/// and how far the read went.
#[derive(Debug, Default)]
pub struct Preloaded {
    pub events: Vec<Arc<TailEvent>>,
    /// The position of the last event read, of any stream (`None`: the log
    /// was empty). Every event up to it is in `events` if it is a market's
    /// or an account's; a fold of `events` follows the tail from here.
    pub position: Option<FeedPosition>,
}

impl Preloaded {
    /// Reads the whole log once. Call it after the tail has started, so
    /// that following the tail from [`Preloaded::position`] misses nothing.
    /// A market or account event that cannot be decoded stops the read: the
    /// task that writes its stream could not start on it either.
    pub async fn read(client: &Client) -> Result<Preloaded, StreamError> {
        let mut preloaded = Preloaded::default();
        read_all_from_start(client, |e| {
            preloaded.position = Some(feed_position(e.position));
            if Streams::MarketsAndAccounts.covers(&e.stream_id) {
                preloaded.events.push(Arc::new(TailEvent::decode(&e)?));
            }
            Ok(())
        })
        .await?;
        Ok(preloaded)
    }

    /// One market's events in its stream's order, with their revisions.
    pub fn market<'a>(&'a self, market: &Market) -> impl Iterator<Item = (u64, &'a Event)> {
        let stream = market_stream(market.symbol.as_str());
        self.events
            .iter()
            .filter(move |e| e.stream == stream)
            .filter_map(|e| Some((e.revision, e.book()?)))
    }

    /// The ledger these events fold to: the accounts registry, then each
    /// account's own stream (as [`super::streams::load_ledger`] folds
    /// them), then the market streams' events in the store's order, as the
    /// live tail delivers them (so an account's fills across markets are in
    /// the log's order). A market event out of its stream's order (a gap)
    /// is an error, as a damaged stream is.
    pub fn ledger(&self, markets: &[Market]) -> Result<Ledger, StreamError> {
        let mut ledger = Ledger::new();
        let mut of_accounts: HashMap<&str, Vec<&AccountEvent>> = HashMap::new();
        for e in &self.events {
            let Decoded::Account(event) = &e.event else {
                continue;
            };
            if e.stream == ACCOUNTS_STREAM {
                ledger.apply(event);
            } else {
                of_accounts.entry(&e.stream).or_default().push(event);
            }
        }
        let ids: Vec<_> = ledger.accounts().map(|a| a.id).collect();
        for id in ids {
            for event in of_accounts
                .remove(account_stream(id).as_str())
                .unwrap_or_default()
            {
                ledger.apply(event);
            }
        }
        let specs: HashMap<String, &MarketSpec> = markets
            .iter()
            .map(|m| (market_stream(m.symbol.as_str()), &m.spec))
            .collect();
        for e in &self.events {
            let (Some(spec), Some(event)) = (specs.get(&e.stream), e.book()) else {
                continue;
            };
            ledger
                .apply_market(spec, e.revision, event)
                .map_err(|gap| StreamError::Corrupt {
                    stream: e.stream.clone(),
                    revision: e.revision,
                    reason: gap.to_string(),
                })?;
        }
        Ok(ledger)
    }
}
