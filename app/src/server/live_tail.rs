//! The server's one live subscription to the store, and the readers that
//! share it.
//!
//! One supervised task holds a single `$all` subscription filtered on the
//! server to the market and account streams, decodes each event once and keeps the
//! newest [`WINDOW`] of them, with their `$all` positions, in memory. Every
//! consumer in the process (each browser's feed, the market data, each
//! market task and the accounts task following their own streams) reads through a [`TailReader`]:
//! its own position and its own place in the window. A reader whose
//! position the window still covers takes events from it; one that is
//! behind (it started further back, or was too slow and the window moved
//! past it) reads the store by itself, a page at a time, until the window
//! covers it again. The tail never waits for a reader, so a slow reader
//! slows nobody else; and positions only grow, so at the switch from the
//! store to the window nothing is missed or given twice.
//!
//! This keeps a subscription per connected client, as the readers are
//! that, while the store serves one subscription per server however many
//! browsers watch (a real EventStoreDB cluster behind several exchange
//! servers then carries one per server, not one per viewer).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use eventstore::{Client, SubscriptionEvent};
use futures::StreamExt;
use futures::stream::BoxStream;
use orderbook::Event;
use tokio::sync::watch;

use super::lock::unpoisoned;
use super::streams::{
    ACCOUNT_STREAM_PREFIX, Decoded, MARKET_STREAM_PREFIX, StreamError, decode, feed_position,
    last_position, read_all_after, subscribe_to_markets_and_accounts,
};
use super::supervise::supervise;
use super::views::trade_view;
use super::window::Window;
use crate::api::{FeedPosition, TradeView};
use crate::shared_json::SharedJson;

/// Events the window keeps: at a few hundred bytes each, a few MB, and at
/// a thousand trades a second some seconds of every market.
pub const WINDOW: usize = 16_384;
/// Events a reader behind the window reads from the store at a time.
const PAGE: usize = 512;

/// Which streams a reader wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Streams {
    /// Every market stream.
    Markets,
    /// One market stream, by name.
    Market(String),
    /// The accounts registry and every account's stream.
    Accounts,
    /// Every market stream and every account stream, in the store's order.
    MarketsAndAccounts,
    /// One account's stream, by name, and every market stream (where its
    /// orders trade), in the store's order.
    AccountAndMarkets(String),
}

impl Streams {
    pub(crate) fn covers(&self, stream: &str) -> bool {
        match self {
            Streams::Markets => stream.starts_with(MARKET_STREAM_PREFIX),
            Streams::Market(name) => name == stream,
            Streams::Accounts => stream.starts_with(ACCOUNT_STREAM_PREFIX),
            Streams::MarketsAndAccounts => {
                Streams::Markets.covers(stream) || Streams::Accounts.covers(stream)
            }
            Streams::AccountAndMarkets(name) => name == stream || Streams::Markets.covers(stream),
        }
    }
}

/// One event as the tail decoded it.
#[derive(Debug, PartialEq)]
pub struct TailEvent {
    pub position: FeedPosition,
    /// The stream the event is in.
    pub stream: String,
    pub revision: u64,
    pub event: Decoded,
    /// The trade as the tape shows it, made once here rather than by each
    /// of the viewers it goes to.
    pub trade: Option<SharedJson<TradeView>>,
}

impl TailEvent {
    /// Decodes an event of a stream the tail follows.
    pub(super) fn decode(e: &eventstore::RecordedEvent) -> Result<TailEvent, StreamError> {
        let event = decode(e)?;
        let trade = match &event {
            Decoded::Book(event) => trade_view(event).map(SharedJson::new),
            Decoded::Account(_) => None,
        };
        Ok(TailEvent {
            position: feed_position(e.position),
            stream: e.stream_id.clone(),
            revision: e.revision,
            event,
            trade,
        })
    }

    /// The book event, for readers of market streams.
    pub fn book(&self) -> Option<&Event> {
        match &self.event {
            Decoded::Book(e) => Some(e),
            Decoded::Account(_) => None,
        }
    }
}

/// The shared tail. Cheap to clone.
#[derive(Clone)]
pub struct LiveTail {
    client: Client,
    window: Arc<RwLock<Window<TailEvent>>>,
    /// The window's end, for readers to wait on.
    end: watch::Sender<u64>,
    /// The window's end as of each followed stream's newest event: a
    /// reader of one market wakes for that market's events only, not for
    /// every other market's and account's.
    followed: Arc<HashMap<String, watch::Sender<u64>>>,
    /// Readers alive now.
    readers: Arc<AtomicUsize>,
    /// Set when the server stops: the subscription ends before the store
    /// goes down under it.
    stopping: watch::Sender<bool>,
    /// Whether the subscription is still open.
    running: watch::Sender<bool>,
}

impl LiveTail {
    /// Starts the supervised tail from the end of `$all` as it is now, so
    /// everything appended from here on reaches the window. Whoever loads
    /// state from the store before following the tail should read it after
    /// this returns and follow from [`LiveTail::reached`] taken first.
    /// `followed` are the streams readers follow one at a time (the market
    /// streams): the window keeps an index of each.
    pub async fn start(client: Client, followed: Vec<String>) -> Result<LiveTail, StreamError> {
        LiveTail::start_with(client, WINDOW, followed).await
    }

    /// [`LiveTail::start`] with a window of `capacity` events.
    pub async fn start_with(
        client: Client,
        capacity: usize,
        followed: Vec<String>,
    ) -> Result<LiveTail, StreamError> {
        let start = last_position(&client).await?;
        let window = Arc::new(RwLock::new(Window::new(start, capacity, &followed)));
        let tail = LiveTail {
            client,
            window,
            end: watch::Sender::new(0),
            followed: Arc::new(
                followed
                    .into_iter()
                    .map(|s| (s, watch::Sender::new(0)))
                    .collect(),
            ),
            readers: Arc::default(),
            stopping: watch::Sender::new(false),
            running: watch::Sender::new(true),
        };
        let task = tail.clone();
        supervise("live tail".into(), move || task.clone().run());
        Ok(tail)
    }

    /// The store's client the tail reads with.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The newest position the tail has reached: a reader from here gets
    /// everything appended after it.
    pub fn reached(&self) -> Option<FeedPosition> {
        unpoisoned(self.window.read()).reached()
    }

    /// How far `position` lies behind the window, in bytes of `$all`.
    pub fn bytes_behind(&self, position: FeedPosition) -> u64 {
        unpoisoned(self.window.read()).bytes_behind(position)
    }

    /// A reader of `streams` that has seen everything up to `from`.
    pub fn reader(&self, streams: Streams, from: Option<FeedPosition>) -> TailReader {
        self.readers.fetch_add(1, Ordering::Relaxed);
        let end = match &streams {
            Streams::Market(name) => self.followed.get(name).unwrap_or(&self.end),
            // An account's reader wakes for every event and passes over the
            // others': accounts have no index of their own (there can be
            // millions), and only logged-in pages read one.
            Streams::Markets
            | Streams::Accounts
            | Streams::MarketsAndAccounts
            | Streams::AccountAndMarkets(_) => &self.end,
        };
        TailReader {
            end: end.subscribe(),
            tail: self.clone(),
            streams,
            position: from,
            seq: None,
        }
    }

    /// How many readers follow the tail now (every viewer's feed, the
    /// market data, the order history, the accounts task and every market
    /// task).
    pub fn readers(&self) -> usize {
        self.readers.load(Ordering::Relaxed)
    }

    /// Ends the subscription (and with it the tail: readers get nothing
    /// more) and waits until it is closed, so the store can stop without
    /// a subscriber to tell.
    pub async fn stop(&self) {
        self.stopping.send_replace(true);
        let mut running = self.running.subscribe();
        let _ = running.wait_for(|r| !*r).await;
    }

    async fn run(self) {
        let mut stopping = self.stopping.subscribe();
        tokio::select! {
            () = self.follow() => {}
            _ = stopping.wait_for(|s| *s) => {}
        }
        self.running.send_replace(false);
    }

    async fn follow(&self) {
        let mut pause = Duration::from_millis(50);
        loop {
            let from = self.reached();
            let mut subscription = subscribe_to_markets_and_accounts(&self.client, from).await;
            loop {
                match subscription.next_subscription_event().await {
                    Ok(SubscriptionEvent::EventAppeared(e)) => {
                        pause = Duration::from_millis(50);
                        let e = e.get_original_event();
                        let event = match TailEvent::decode(e) {
                            Ok(event) => event,
                            // The task that writes the stream refuses to start on
                            // such an event; viewers are better off without it.
                            Err(why) => {
                                tracing::error!(
                                    "an unreadable event is left out of the live tail: {why}"
                                );
                                continue;
                            }
                        };
                        let position = event.position;
                        let followed = self.followed.get(&event.stream);
                        let end = {
                            let mut window = unpoisoned(self.window.write());
                            window.push(position, &e.stream_id, event);
                            window.end()
                        };
                        if let Some(followed) = followed {
                            followed.send_replace(end);
                        }
                        self.end.send_replace(end);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("the live tail's subscription dropped, resubscribing: {e}");
                        break;
                    }
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
}

/// What a reader got: the events of its streams after its last position
/// (possibly none, when a page read from the store held only others'), and
/// the position it has now seen everything up to.
#[derive(Debug)]
pub struct Progress {
    pub events: Vec<Arc<TailEvent>>,
    pub position: Option<FeedPosition>,
}

/// One consumer's own subscription inside the tail: see the module docs.
pub struct TailReader {
    tail: LiveTail,
    streams: Streams,
    position: Option<FeedPosition>,
    /// The reader's place in the window; `None` while it reads the store.
    seq: Option<u64>,
    end: watch::Receiver<u64>,
}

impl Drop for TailReader {
    fn drop(&mut self) {
        self.tail.readers.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A reader as a stream of what it gets.
pub type TailStream = BoxStream<'static, Result<Progress, StreamError>>;

impl TailReader {
    /// The reader as a stream, for `select!`: dropping the branch that lost
    /// drops no store read in flight, as dropping a `next()` future would.
    pub fn into_stream(self) -> TailStream {
        futures::stream::unfold(self, |mut r| async move {
            let progress = r.next().await;
            Some((progress, r))
        })
        .boxed()
    }

    /// [`TailReader::next`] for a follower that can only wait: a failed
    /// store read is logged (as `who`'s) and tried again after 250 ms.
    pub async fn next_retrying(&mut self, who: &str) -> Progress {
        loop {
            match self.next().await {
                Ok(p) => return p,
                Err(e) => {
                    tracing::warn!("{who} cannot read the store, retrying: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
            }
        }
    }

    /// Waits for what comes after the reader's position. Cancel-safe: the
    /// reader moves on only when this returns.
    pub async fn next(&mut self) -> Result<Progress, StreamError> {
        loop {
            // Marked seen before looking, so an event pushed after the look
            // still wakes the wait below.
            self.end.borrow_and_update();
            let taken = {
                let window = unpoisoned(self.tail.window.read());
                let seq = match self.seq {
                    Some(seq) => Some(seq),
                    None => window.seq_after(self.position),
                };
                let wants = |e: &TailEvent| self.streams.covers(&e.stream);
                seq.and_then(|seq| {
                    let held = match &self.streams {
                        Streams::Market(name) if window.follows(name) => {
                            window.held_of(name, seq, PAGE)
                        }
                        _ => window.held_from(seq, PAGE, wants),
                    };
                    Some((seq, held?))
                })
            };
            match taken {
                Some((seq, held)) if held.passed > 0 => {
                    self.seq = Some(seq + held.passed);
                    self.position = held.last;
                    return Ok(Progress {
                        events: held.kept,
                        position: self.position,
                    });
                }
                Some((seq, _)) => {
                    // Up to date: wait for the window to grow.
                    self.seq = Some(seq);
                    if self.end.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => {
                    // Behind the window (or fell out of it): the store.
                    self.seq = None;
                    // Boxed: the store read's future is large, and this
                    // one is made anew for every event a reader waits for.
                    return Box::pin(self.read_store()).await;
                }
            }
        }
    }

    /// One page of `$all` after the reader's position, from the store.
    async fn read_store(&mut self) -> Result<Progress, StreamError> {
        let page = read_all_after(&self.tail.client, self.position, PAGE).await?;
        let mut events = Vec::new();
        let mut position = self.position;
        for e in &page {
            position = Some(feed_position(e.position));
            if self.streams.covers(&e.stream_id) {
                events.push(Arc::new(TailEvent::decode(e)?));
            }
        }
        if position == self.position {
            // Nothing after it in the store, yet the window does not cover
            // it: the window's start is an event the store read should have
            // returned. Wait for the tail rather than ask again at once.
            let _ = self.end.changed().await;
        }
        self.position = position;
        Ok(Progress { events, position })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancelled(order_id: u64) -> eventstore::EventData {
        super::super::streams::market_event_data(&Event::OrderCancelled(
            orderbook::OrderCancelled {
                symbol: orderbook::Symbol::new("BTC-USD").unwrap(),
                order_id,
                account: 1,
                side: orderbook::Side::Buy,
                price: None,
                remaining_quantity: None,
                remaining_quote_amount: None,
                reason: orderbook::CancelReason::User,
                at: 0,
            },
        ))
    }

    /// Order ids of what a reader gets until it has `n` of its stream's.
    async fn take(reader: &mut TailReader, n: usize) -> Vec<u64> {
        let mut ids = Vec::new();
        while ids.len() < n {
            for e in reader.next().await.unwrap().events {
                let Some(Event::OrderCancelled(c)) = e.book() else {
                    panic!()
                };
                ids.push(c.order_id);
            }
        }
        ids
    }

    #[tokio::test]
    async fn a_reader_that_fell_out_of_the_window_reads_the_store_and_misses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = store::EmbeddedStore::start(dir.path(), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let client = Client::new(store.connection_string().parse().unwrap()).unwrap();
        let append = |stream: &'static str, ids: std::ops::Range<u64>| {
            let client = client.clone();
            async move {
                for id in ids {
                    let options = eventstore::AppendToStreamOptions::default();
                    client
                        .append_to_stream(stream, &options, cancelled(id))
                        .await
                        .unwrap();
                }
            }
        };
        // Before the tail starts: only the store has these.
        append("orderbook-BTC-USD", 0..10).await;
        let tail = LiveTail::start_with(client.clone(), 8, vec!["orderbook-BTC-USD".into()])
            .await
            .unwrap();
        let btc = || Streams::Market("orderbook-BTC-USD".into());
        let mut from_start = tail.reader(btc(), None);
        let mut live = tail.reader(btc(), tail.reached());
        // Interleaved with another market's and a non-market stream's events.
        for i in 0..6 {
            append("orderbook-BTC-USD", 10 + i * 5..15 + i * 5).await;
            append("orderbook-ETH-USD", 0..3).await;
            append("account-1", 0..2).await;
        }
        // The live reader keeps up from the window... or, once the window
        // has moved past it (8 events of 48), from the store: either way
        // all 30 in order, once.
        assert_eq!(take(&mut live, 30).await, (10..40).collect::<Vec<_>>());
        assert_eq!(take(&mut from_start, 40).await, (0..40).collect::<Vec<_>>());
        // Both are now in the window and take what comes next from it.
        append("orderbook-BTC-USD", 40..42).await;
        assert_eq!(take(&mut live, 2).await, [40, 41]);
        assert_eq!(take(&mut from_start, 2).await, [40, 41]);
        store.stop().await.unwrap();
    }
}
