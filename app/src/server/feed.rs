//! One browser's live feed: its own `$all` subscription, filtered on the
//! server to the order book's event types, from the position the browser
//! asks for. See `crate::feed` for the protocol.
//!
//! The task sends into a small bounded queue and waits when it is full, so
//! a slow browser only slows its own subscription, which the store then
//! serves from disk until it catches up; the matching engine and other
//! browsers never wait for it. The task ends, and its subscription with it,
//! as soon as the browser goes away.

use std::time::Duration;

use eventstore::{
    Client, SubscribeToAllOptions, Subscription, SubscriptionEvent, SubscriptionFilter,
};
use futures::StreamExt;
use leptos::prelude::ServerFnError;
use leptos::server_fn::BoxedStream;
use orderbook::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::exchange::Exchange;
use super::market_data::{feed_position, start_after, trade_view};
use crate::feed::{FeedMessage, FeedPosition, FeedRequest};

/// Messages queued for one browser before the feed waits for it.
pub const QUEUE: usize = 256;
/// How often an idle feed says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// The shortest time between two depth updates to one browser.
pub const DEPTH_EVERY: Duration = Duration::from_millis(100);

/// The event types a market page needs: trades, and whatever changes depth.
pub fn book_filter() -> SubscriptionFilter {
    [
        "TradeExecuted",
        "OrderAccepted",
        "OrderCancelled",
        "OrderFilled",
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
    position: Option<FeedPosition>,
    subscription: Subscription,
}

fn subscribe(client: &Client, from: Option<FeedPosition>) -> impl Future<Output = Subscription> {
    let options = SubscribeToAllOptions::default()
        .position(start_after(from))
        .filter(book_filter());
    let client = client.clone();
    async move { client.subscribe_to_all(&options).await }
}

async fn next(watch: &mut Option<Watch>) -> eventstore::Result<SubscriptionEvent> {
    match watch {
        Some(w) => w.subscription.next_subscription_event().await,
        None => std::future::pending().await,
    }
}

async fn run(
    exchange: Exchange,
    mut requests: BoxedStream<FeedRequest, ServerFnError>,
    tx: mpsc::Sender<Out>,
) {
    let client = exchange.client();
    let mut watch: Option<Watch> = None;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut depth_timer = tokio::time::interval(DEPTH_EVERY);
    // The stream revision of the last book event seen, until depth that
    // includes it has been sent, and how many ticks it has waited.
    let mut depth_due: Option<(u64, u32)> = None;
    loop {
        let sent = tokio::select! {
            () = tx.closed() => return,
            request = requests.next() => match request {
                Some(Ok(FeedRequest::Watch { symbol, from })) => {
                    if exchange.market_spec(&symbol).is_none() {
                        watch = None;
                        tx.send(Ok(FeedMessage::Refused(format!("there is no market {symbol}")))).await
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
                        let subscription = subscribe(&client, position).await;
                        // Say at once that the link is up and where it stands.
                        let ticker = exchange.ticker(&symbol).unwrap_or_default();
                        let hello = FeedMessage::Heartbeat { symbol: symbol.clone(), position, ticker };
                        watch = Some(Watch { symbol, position, subscription });
                        tx.send(Ok(hello)).await
                    }
                }
                // The browser closed its half, or sent something unreadable.
                _ => return,
            },
            event = next(&mut watch) => {
                let Some(w) = watch.as_mut() else { continue };
                match event {
                    Ok(SubscriptionEvent::EventAppeared(e)) => {
                        let e = e.get_original_event();
                        let position = feed_position(e.position);
                        w.position = Some(position);
                        let event = std::str::from_utf8(&e.data).ok().and_then(|s| Event::from_json(s).ok());
                        match event {
                            Some(event) if event.symbol().as_str() == w.symbol => {
                                depth_due = Some((e.revision, 0));
                                match trade_view(&event) {
                                    Some(trade) => {
                                        let symbol = w.symbol.clone();
                                        tx.send(Ok(FeedMessage::Trade { symbol, position, trade })).await
                                    }
                                    None => Ok(()),
                                }
                            }
                            _ => Ok(()),
                        }
                    }
                    Ok(SubscriptionEvent::Checkpoint(p)) => {
                        w.position = Some(feed_position(p));
                        Ok(())
                    }
                    Ok(_) => Ok(()),
                    Err(e) => {
                        // The store went away or dropped us: resume where we were.
                        tracing::debug!("feed subscription dropped, resubscribing: {e}");
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        w.subscription = subscribe(&client, w.position).await;
                        Ok(())
                    }
                }
            }
            _ = depth_timer.tick(), if depth_due.is_some() => {
                let (revision, waited) = depth_due.unwrap_or_default();
                let book = watch.as_ref().and_then(|w| exchange.book(&w.symbol).map(|b| (w.symbol.clone(), b)));
                match book {
                    // The event reached us before the market task published
                    // the book that holds it: wait a little for it (another
                    // server's events reach this book only when it reloads).
                    Some((_, b)) if b.events_applied() <= revision && waited < 10 => {
                        depth_due = Some((revision, waited + 1));
                        Ok(())
                    }
                    Some((symbol, _)) => {
                        depth_due = None;
                        // The ticker moves with the book's trades too.
                        let ticker = exchange.ticker(&symbol).unwrap_or_default();
                        let position = watch.as_ref().and_then(|w| w.position);
                        let beat = FeedMessage::Heartbeat { symbol: symbol.clone(), position, ticker };
                        match exchange.depth(&symbol) {
                            Some(depth) => match tx.send(Ok(FeedMessage::Depth { symbol, depth })).await {
                                Ok(()) => tx.send(Ok(beat)).await,
                                e => e,
                            },
                            None => Ok(()),
                        }
                    }
                    None => {
                        depth_due = None;
                        Ok(())
                    }
                }
            }
            _ = heartbeat.tick() => match watch.as_ref() {
                Some(w) => {
                    let ticker = exchange.ticker(&w.symbol).unwrap_or_default();
                    let message = FeedMessage::Heartbeat { symbol: w.symbol.clone(), position: w.position, ticker };
                    tx.send(Ok(message)).await
                }
                None => Ok(()),
            },
        };
        if sent.is_err() {
            return;
        }
    }
}
