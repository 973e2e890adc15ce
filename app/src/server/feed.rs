//! One browser's live feed: its own `$all` subscription, filtered on the
//! server to the order book's event types, from the position the browser
//! asks for, speaking the `FeedRequest`/`FeedMessage` protocol of `api`.
//!
//! The task never waits for a browser while it holds a subscription: every
//! subscription of the process shares one HTTP/2 connection to the store,
//! so a subscription left unread would stall the others (and the matching
//! engine's appends) once the connection's flow-control window filled.
//! Instead, trades go into a small bounded queue; when it is full the task
//! drops the subscription, waits for room, and subscribes again from the
//! last trade the browser was given, catching up from the store. The task
//! ends, and its subscription with it, as soon as the browser goes away.

use std::time::Duration;

use eventstore::{Client, SubscribeToAllOptions, SubscriptionEvent, SubscriptionFilter};
use futures::StreamExt;
use futures::stream::BoxStream;
use leptos::prelude::ServerFnError;
use leptos::server_fn::BoxedStream;
use orderbook::Event;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::MissedTickBehavior;
use tokio_stream::wrappers::ReceiverStream;

use super::exchange::Exchange;
use super::streams::{feed_position, market_stream, start_after};
use super::views::trade_view;
use crate::api::{FeedMessage, FeedPosition, FeedRequest};

/// Messages queued for one browser before the feed waits for it.
pub const QUEUE: usize = 256;
/// How often an idle feed says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// The shortest time between two depth updates to one browser.
pub const DEPTH_EVERY: Duration = Duration::from_millis(100);

/// The event types a market page needs: trades, and whatever changes depth.
/// `OrderFilled` is left out: it always follows a `TradeExecuted` of the
/// same book, which already says the depth moved, and every event in the
/// filter is sent to every viewer of every market.
pub fn book_filter() -> SubscriptionFilter {
    [
        "TradeExecuted",
        "OrderAccepted",
        "OrderCancelled",
        "OrderAmended",
    ]
    .into_iter()
    .fold(SubscriptionFilter::on_event_type(), |f, t| f.add_prefix(t))
}

type Out = Result<FeedMessage, ServerFnError>;

/// Starts the feed task for one socket and returns the stream it fills.
pub fn open(
    exchange: Exchange,
    requests: BoxedStream<FeedRequest, ServerFnError>,
) -> ReceiverStream<Out> {
    let (tx, rx) = mpsc::channel(QUEUE);
    tokio::spawn(run(exchange, requests, tx));
    ReceiverStream::new(rx)
}

/// What the feed is watching now.
struct Watch {
    symbol: String,
    /// The watched book's stream.
    stream: String,
    /// The last position the browser has been given (or was told about).
    position: Option<FeedPosition>,
    /// `None` while the browser is behind: resubscribe when it has room.
    subscription: Option<Events>,
}

/// A subscription read as a stream of its events.
///
/// `Subscription::next_subscription_event` is not cancel-safe: dropping
/// its future in the middle of a read drops the gRPC stream, and the next
/// call subscribes again (a reset stream on the shared connection, a fresh
/// catch-up in the store, and after 1,024 such resets the client's h2 layer
/// closes the whole connection). `select!` drops the futures of the branches
/// that lose, which here is most wake-ups (heartbeats, depth ticks), so the
/// feed reads through `unfold`, which keeps the read in flight across polls.
type Events = BoxStream<'static, eventstore::Result<SubscriptionEvent>>;

fn subscribe(client: &Client, from: Option<FeedPosition>) -> Events {
    let options = SubscribeToAllOptions::default()
        .position(start_after(from))
        .filter(book_filter());
    let client = client.clone();
    futures::stream::once(async move { client.subscribe_to_all(&options).await })
        .flat_map(|subscription| {
            futures::stream::unfold(subscription, |mut s| async move {
                Some((s.next_subscription_event().await, s))
            })
        })
        .boxed()
}

async fn next(watch: &mut Option<Watch>) -> eventstore::Result<SubscriptionEvent> {
    match watch.as_mut().and_then(|w| w.subscription.as_mut()) {
        Some(events) => match events.next().await {
            Some(event) => event,
            None => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

/// What offering a message to the browser's queue came to.
enum Offer {
    Taken,
    Full,
    Gone,
}

fn offer(tx: &mpsc::Sender<Out>, message: FeedMessage) -> Offer {
    match tx.try_send(Ok(message)) {
        Ok(()) => Offer::Taken,
        Err(TrySendError::Full(_)) => Offer::Full,
        Err(TrySendError::Closed(_)) => Offer::Gone,
    }
}

async fn run(
    exchange: Exchange,
    mut requests: BoxedStream<FeedRequest, ServerFnError>,
    tx: mpsc::Sender<Out>,
) {
    let client = exchange.client();
    let mut watch: Option<Watch> = None;
    // Ticks missed while a branch was off come one at a time, not in a
    // burst: the depth wait below counts ticks as time, and a burst made it
    // give up on a book that was a few milliseconds from being published
    // and send the depth without the new order.
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut depth_timer = tokio::time::interval(DEPTH_EVERY);
    depth_timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The stream revision of the last book event seen, until depth that
    // includes it has been sent, and how many ticks it has waited.
    let mut depth_due: Option<(u64, u32)> = None;
    loop {
        let lagging = watch.as_ref().is_some_and(|w| w.subscription.is_none());
        let outcome = tokio::select! {
            () = tx.closed() => return,
            request = requests.next() => match request {
                Some(Ok(FeedRequest::Watch { symbol, from })) => {
                    // Let go of the old subscription before anything waits.
                    watch = None;
                    if exchange.market_spec(&symbol).is_none() {
                        offer(&tx, FeedMessage::Refused(format!("there is no market {symbol}")))
                    } else {
                        let position = match from {
                            Some(p) => Some(p),
                            None => {
                                let Some(snapshot) = exchange.snapshot(&symbol) else { return };
                                let position = snapshot.position;
                                if tx.send(Ok(FeedMessage::Snapshot(snapshot))).await.is_err() {
                                    return;
                                }
                                position
                            }
                        };
                        let subscription = Some(subscribe(&client, position));
                        // Say at once that the link is up and where it stands.
                        let ticker = exchange.ticker(&symbol).unwrap_or_default();
                        let hello = FeedMessage::Heartbeat { symbol: symbol.clone(), position, ticker };
                        watch = Some(Watch { stream: market_stream(&symbol), symbol, position, subscription });
                        offer(&tx, hello)
                    }
                }
                // The browser closed its half, or sent something unreadable.
                _ => return,
            },
            permit = tx.reserve(), if lagging => {
                // The browser has room again: catch up from the store.
                drop(permit);
                if let Some(w) = watch.as_mut() {
                    w.subscription = Some(subscribe(&client, w.position));
                }
                Offer::Taken
            }
            event = next(&mut watch) => {
                let Some(w) = watch.as_mut() else { continue };
                match event {
                    Ok(SubscriptionEvent::EventAppeared(e)) => {
                        let e = e.get_original_event();
                        let position = feed_position(e.position);
                        // The stream says whose event it is: only the watched
                        // book's trades are worth parsing.
                        let ours = e.stream_id == w.stream;
                        if ours {
                            depth_due = Some((e.revision, 0));
                        }
                        let trade = if ours && e.event_type == "TradeExecuted" {
                            let event = std::str::from_utf8(&e.data).ok().and_then(|s| Event::from_json(s).ok());
                            event.as_ref().and_then(trade_view)
                        } else {
                            None
                        };
                        let taken = match trade {
                            Some(trade) => {
                                let symbol = w.symbol.clone();
                                offer(&tx, FeedMessage::Trade { symbol, position, trade })
                            }
                            None => Offer::Taken,
                        };
                        match taken {
                            Offer::Taken => w.position = Some(position),
                            // Behind: stop reading; resume after the last trade given.
                            Offer::Full => w.subscription = None,
                            Offer::Gone => return,
                        }
                        Offer::Taken
                    }
                    Ok(SubscriptionEvent::Checkpoint(p)) => {
                        w.position = Some(feed_position(p));
                        Offer::Taken
                    }
                    Ok(_) => Offer::Taken,
                    Err(e) => {
                        // The store went away or dropped us: resume where we were.
                        tracing::debug!("feed subscription dropped, resubscribing: {e}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        w.subscription = Some(subscribe(&client, w.position));
                        Offer::Taken
                    }
                }
            }
            _ = depth_timer.tick(), if depth_due.is_some() && !lagging => {
                let (revision, waited) = depth_due.unwrap_or_default();
                let book = watch.as_ref().and_then(|w| exchange.book(&w.symbol).map(|b| (w.symbol.clone(), b)));
                match book {
                    // The event reached us before the market task published
                    // the book that holds it: wait a little for it (another
                    // server's events reach this book only when it reloads).
                    Some((_, b)) if b.events_applied() <= revision && waited < 10 => {
                        depth_due = Some((revision, waited + 1));
                        Offer::Taken
                    }
                    Some((symbol, _)) => {
                        depth_due = None;
                        match exchange.depth(&symbol) {
                            Some(depth) => match offer(&tx, FeedMessage::Depth { symbol: symbol.clone(), depth }) {
                                // The ticker moves with the book's trades too.
                                Offer::Taken => heartbeat_of(&exchange, &tx, watch.as_ref()),
                                other => other,
                            },
                            None => Offer::Taken,
                        }
                    }
                    None => {
                        depth_due = None;
                        Offer::Taken
                    }
                }
            }
            _ = heartbeat.tick(), if !lagging => heartbeat_of(&exchange, &tx, watch.as_ref()),
        };
        // A full queue only delays heartbeats and depth; a trade that did
        // not fit was handled above.
        if let Offer::Gone = outcome {
            return;
        }
    }
}

fn heartbeat_of(exchange: &Exchange, tx: &mpsc::Sender<Out>, watch: Option<&Watch>) -> Offer {
    match watch {
        Some(w) => {
            let ticker = exchange.ticker(&w.symbol).unwrap_or_default();
            let message = FeedMessage::Heartbeat {
                symbol: w.symbol.clone(),
                position: w.position,
                ticker,
            };
            offer(tx, message)
        }
        None => Offer::Taken,
    }
}
