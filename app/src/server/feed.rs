//! One browser's live feed, speaking the `FeedRequest`/`FeedMessage`
//! protocol of `api`: a subscription of its own inside the server's one
//! store subscription (a [`TailReader`] of the watched market's stream,
//! from the position the browser asks for), the depth of the book the
//! market task publishes, and heartbeats.
//!
//! The feed never makes the tail wait: it takes events only when the
//! browser's queue has room, and a feed that falls behind the tail's window
//! reads the store by itself until it catches up (see `live_tail`). A page
//! that resumes from further back than [`FeedLimits::replay_bytes`] is sent
//! a fresh snapshot instead of every trade since: its chart and tape end up
//! the same, and a crowd of pages waking from sleep does not turn into a
//! crowd of long store reads that slow every live viewer. Depth and
//! heartbeats follow the market's published depth updates
//! (`depth_updates`): worked out once for all viewers, at most every
//! [`DEPTH_EVERY`](super::depth_updates::DEPTH_EVERY) and at least every
//! [`HEARTBEAT`](super::depth_updates::HEARTBEAT); a feed sends the depth
//! only when it is not the one it sent last.
//! The task ends as soon as the browser goes away or breaks a limit
//! ([`FeedLimits`]), when it is told why.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use leptos::prelude::ServerFnError;
use leptos::server_fn::BoxedStream;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::depth_updates::DepthUpdate;
use super::exchange::Exchange;
use super::feed_limits::{FeedLimits, SocketSlot, WatchRate};
use super::live_tail::{Progress, Streams, TailStream};
use super::streams::{StreamError, market_stream};
use crate::api::{DepthView, FeedMessage, FeedPosition, FeedRequest, TickerView};

/// Messages queued for one browser before the feed waits for it.
pub const QUEUE: usize = 256;
/// The longest symbol a `Watch` may name.
pub const MAX_SYMBOL: usize = 32;

type Out = Result<FeedMessage, ServerFnError>;

/// Starts the feed task for one socket and returns the stream it fills.
/// `slot` is the socket's place among its address's sockets, held as long
/// as the feed runs.
pub fn open(
    exchange: Exchange,
    requests: BoxedStream<FeedRequest, ServerFnError>,
    limits: FeedLimits,
    slot: Option<SocketSlot>,
) -> ReceiverStream<Out> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(async move {
        run(exchange, requests, limits, tx).await;
        drop(slot);
    });
    ReceiverStream::new(rx)
}

/// A feed that only refuses: says why and closes.
pub fn refuse(why: String) -> ReceiverStream<Out> {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(FeedMessage::Refused(why)));
    ReceiverStream::new(rx)
}

/// What the feed is watching now.
struct Watch {
    symbol: String,
    /// The last position the browser has been given (or was told about).
    position: Option<FeedPosition>,
}

/// The next events of the watched market (never, while none is watched).
async fn next_events(events: &mut Option<TailStream>) -> Result<Progress, StreamError> {
    match events.as_mut() {
        Some(events) => match events.next().await {
            Some(p) => p,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// Resolves when the watched market publishes a depth update.
async fn published(updates: &mut Option<watch::Receiver<Arc<DepthUpdate>>>) {
    if let Some(u) = updates.as_mut()
        && u.changed().await.is_ok()
    {
        return;
    }
    std::future::pending().await
}

/// What the browser is told of a message the socket or the decoder could
/// not read: the reason itself, without `server_fn`'s framing words.
fn unreadable(e: ServerFnError) -> String {
    match e {
        ServerFnError::Request(why) => why,
        ServerFnError::Deserialization(why) | ServerFnError::Args(why) => {
            format!("unreadable request ({why}); closing this socket")
        }
        other => format!("{other}; closing this socket"),
    }
}

/// Why a request ends the feed.
fn check(request: &FeedRequest, rate: &mut WatchRate) -> Result<(), String> {
    let FeedRequest::Watch { symbol, .. } = request;
    if symbol.len() > MAX_SYMBOL {
        return Err(format!(
            "a market symbol has at most {MAX_SYMBOL} bytes; closing this socket"
        ));
    }
    if !rate.allow(Instant::now()) {
        return Err("too many market switches on this socket; closing it".into());
    }
    Ok(())
}

async fn run(
    exchange: Exchange,
    mut requests: BoxedStream<FeedRequest, ServerFnError>,
    limits: FeedLimits,
    tx: mpsc::Sender<Out>,
) {
    let mut rate = WatchRate::new(&limits, Instant::now());
    let mut watch: Option<Watch> = None;
    let mut events: Option<TailStream> = None;
    let mut updates: Option<watch::Receiver<Arc<DepthUpdate>>> = None;
    // The depth the browser was sent last (or has in its snapshot).
    let mut sent_depth: Option<Arc<DepthView>> = None;
    // What the browser is to get next, in order; while anything waits
    // here the feed takes no more events, so this holds one page at most.
    let mut pending: VecDeque<FeedMessage> = VecDeque::new();
    loop {
        while !pending.is_empty() {
            match tx.try_reserve() {
                Ok(permit) => permit.send(Ok(pending.pop_front().expect("not empty"))),
                Err(mpsc::error::TrySendError::Full(())) => break,
                Err(mpsc::error::TrySendError::Closed(())) => return,
            }
        }
        let idle = pending.is_empty();
        // In this order when several are ready: a trade waiting goes out
        // before depth and heartbeats are worked out. A browser that has
        // gone has closed its requests too; one that only stopped reading
        // is noticed at the next message for it (a heartbeat at the latest).
        tokio::select! {
            biased;
            request = requests.next() => {
                let request = match request {
                    Some(Ok(r)) => r,
                    Some(Err(e)) => {
                        let _ = tx.try_send(Ok(FeedMessage::Refused(unreadable(e))));
                        return;
                    }
                    // The browser closed its half.
                    None => return,
                };
                if let Err(why) = check(&request, &mut rate) {
                    let _ = tx.try_send(Ok(FeedMessage::Refused(why)));
                    return;
                }
                let FeedRequest::Watch { symbol, from } = request;
                // Whatever was queued for the old market is dropped.
                watch = None;
                events = None;
                pending.clear();
                updates = exchange.depth_updates(&symbol);
                let Some(published) = updates.as_mut() else {
                    pending.push_back(FeedMessage::Refused(format!("there is no market {symbol}")));
                    continue;
                };
                // Too far back to replay: start over from a snapshot.
                let from = from.filter(|p| exchange.tail().bytes_behind(*p) <= limits.replay_bytes);
                let position = match from {
                    Some(p) => Some(p),
                    None => {
                        let Some(snapshot) = exchange.snapshot(&symbol) else { return };
                        let position = snapshot.position;
                        pending.push_back(FeedMessage::Snapshot(Box::new(snapshot)));
                        position
                    }
                };
                let reader = exchange.tail().reader(Streams::Market(market_stream(&symbol)), position);
                events = Some(reader.into_stream());
                let w = watch.insert(Watch { symbol, position });
                // Say at once that the link is up and where it stands.
                let update = published.borrow().clone();
                pending.push_back(heartbeat_of(w, &update.ticker));
                if from.is_some() {
                    // A resumed page may have missed depth changes.
                    sent_depth = None;
                    published.mark_changed();
                } else {
                    sent_depth = Some(update.depth.clone());
                }
            }
            permit = tx.reserve(), if !idle => {
                let Ok(permit) = permit else { return };
                permit.send(Ok(pending.pop_front().expect("not idle")));
            }
            progress = next_events(&mut events), if idle => {
                let Some(w) = watch.as_mut() else { continue };
                match progress {
                    Ok(progress) => {
                        for e in &progress.events {
                            if let Some(trade) = &e.trade {
                                let symbol = w.symbol.clone();
                                pending.push_back(FeedMessage::Trade { symbol, position: e.position, trade: trade.clone() });
                            }
                        }
                        w.position = progress.position.or(w.position);
                    }
                    Err(e) => {
                        // The store could not be read: the reader tries again.
                        tracing::debug!("a feed's read of the store failed, retrying: {e}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                }
            }
            () = published(&mut updates), if idle => {
                let (Some(w), Some(u)) = (watch.as_ref(), updates.as_mut()) else { continue };
                let update = u.borrow_and_update().clone();
                if !sent_depth.as_ref().is_some_and(|d| Arc::ptr_eq(d, &update.depth)) {
                    let depth = update.depth.clone();
                    pending.push_back(FeedMessage::Depth { symbol: w.symbol.clone(), depth: depth.clone() });
                    sent_depth = Some(depth);
                }
                pending.push_back(heartbeat_of(w, &update.ticker));
            }
        }
    }
}

fn heartbeat_of(w: &Watch, ticker: &Arc<TickerView>) -> FeedMessage {
    FeedMessage::Heartbeat {
        symbol: w.symbol.clone(),
        position: w.position,
        ticker: ticker.clone(),
    }
}
