//! How the exchange's events travel to and from the event store: stream
//! names, event ids, payloads, the append and the reads everything else
//! uses, and where a subscription to `$all` starts. Every call the server
//! makes to the store goes through here.

use std::collections::BTreeMap;
use std::sync::Arc;

use accounts::AccountEvent;
use eventstore::{
    AppendToStreamOptions, Client, Error, EventData, ExpectedRevision, Position, ReadAllOptions,
    ReadStreamOptions, StreamPosition, SubscribeToAllOptions, SubscriptionFilter,
};
use orderbook::Event;
use uuid::Uuid;

use crate::api::FeedPosition;

/// The registry of accounts: one `AccountOpened` per account, in id order.
pub const ACCOUNTS_STREAM: &str = "accounts";

/// What every market stream's name starts with.
pub const MARKET_STREAM_PREFIX: &str = "orderbook-";

/// One market's order book events.
pub fn market_stream(symbol: &str) -> String {
    format!("{MARKET_STREAM_PREFIX}{symbol}")
}

/// What the accounts registry's and every account stream's name starts with.
pub const ACCOUNT_STREAM_PREFIX: &str = "account";

/// One account's balance and session events.
pub fn account_stream(account: u64) -> String {
    format!("{ACCOUNT_STREAM_PREFIX}-{account}")
}

/// Event ids derived from what an event *is* (a market revision, an order's
/// reservation), so a retried append of the same fact is recognised by the
/// store as a duplicate and dropped.
pub fn derived_id(key: &str) -> Uuid {
    // A fixed namespace of our own; any constant works, it must never change.
    const NAMESPACE: Uuid = Uuid::from_u128(0x6a0e_5d1c_2b7f_4c8e_9f31_0d4a_8e2b_c7f1);
    Uuid::new_v5(&NAMESPACE, key.as_bytes())
}

/// A JSON event to append, with its id.
fn event_data(kind: &str, json: String, id: Uuid) -> EventData {
    let raw = serde_json::value::RawValue::from_string(json).expect("our events are valid JSON");
    EventData::json(kind, &raw)
        .expect("raw JSON always serialises")
        .id(id)
}

/// The id an account event is stored under. Facts that may be retried get
/// ids derived from what they are; the rest are new each time.
fn account_event_id(e: &AccountEvent) -> Uuid {
    match e {
        AccountEvent::FundsReserved {
            symbol, order_id, ..
        } => derived_id(&format!("reserve/{symbol}/{order_id}")),
        AccountEvent::FundsReleased {
            symbol, order_id, ..
        } => derived_id(&format!("release/{symbol}/{order_id}")),
        AccountEvent::TradeSettled(t) => derived_id(&format!(
            "settle/{}/{}/{}",
            t.symbol, t.market_revision, t.account
        )),
        _ => Uuid::new_v4(),
    }
}

/// An account event as the accounts task stores it.
pub fn account_event_data(e: &AccountEvent) -> EventData {
    event_data(e.kind(), e.to_json(), account_event_id(e))
}

/// A market event as its market's task stores it, with a new id: the task
/// builds each batch's data once and sends that same data again when it
/// retries, so the store recognises a retry by its ids and expected
/// revision.
pub fn market_event_data(e: &Event) -> EventData {
    market_event_payload(e).0
}

/// [`market_event_data`], and how many bytes of JSON it carries.
pub fn market_event_payload(e: &Event) -> (EventData, usize) {
    let json = e.to_json();
    let bytes = json.len();
    (event_data(e.kind(), json, Uuid::new_v4()), bytes)
}

/// What the store said when it refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("the stream moved on: another writer appended first")]
    WrongExpectedVersion,
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    #[error("the event store refused these credentials")]
    AccessDenied,
    #[error("stored event {stream}@{revision} cannot be read: {reason}")]
    Corrupt {
        stream: String,
        revision: u64,
        reason: String,
    },
}

impl From<Error> for StreamError {
    fn from(e: Error) -> Self {
        match e {
            Error::WrongExpectedVersion { .. } => StreamError::WrongExpectedVersion,
            // Asking again will not change it.
            Error::AccessDenied => StreamError::AccessDenied,
            other => StreamError::Unavailable(other.to_string()),
        }
    }
}

/// How long start-up waits for a store that does not answer before it
/// gives up.
pub const START_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs a read until the store answers: an unavailable store (a dropped
/// connection, a node being elected) is asked again, with a growing
/// pause, for up to [`START_PATIENCE`]; anything else the store says (a
/// damaged event above all) is returned at once.
pub async fn until_answered<T, Fut>(
    what: &str,
    mut read: impl FnMut() -> Fut,
) -> Result<T, StreamError>
where
    Fut: std::future::Future<Output = Result<T, StreamError>>,
{
    let started = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        match read().await {
            Err(StreamError::Unavailable(e)) if started.elapsed() < START_PATIENCE => {
                tracing::warn!("{what}: the event store did not answer, asking again: {e}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

/// The expected revision for a stream that holds `count` events.
pub fn expected(count: u64) -> ExpectedRevision {
    match count {
        0 => ExpectedRevision::NoStream,
        n => ExpectedRevision::Exact(n - 1),
    }
}

/// An event of a market or account stream, decoded.
#[derive(Debug, PartialEq)]
pub enum Decoded {
    /// From a market stream.
    Book(Event),
    /// From the accounts registry or an account's stream.
    Account(AccountEvent),
}

/// Decodes an event of a market stream or of an account stream (the
/// registry included), by the stream it is in.
pub fn decode(e: &eventstore::RecordedEvent) -> Result<Decoded, StreamError> {
    let corrupt = |reason: String| StreamError::Corrupt {
        stream: e.stream_id.clone(),
        revision: e.revision,
        reason,
    };
    if e.stream_id.starts_with(MARKET_STREAM_PREFIX) {
        decode_market_event(&e.data)
            .map(Decoded::Book)
            .map_err(corrupt)
    } else {
        AccountEvent::from_json(&e.data)
            .map(Decoded::Account)
            .map_err(|err| corrupt(err.to_string()))
    }
}

/// Appends events atomically, only if the stream holds exactly `count`.
pub async fn append(
    client: &Client,
    stream: &str,
    count: u64,
    events: Vec<EventData>,
) -> Result<(), StreamError> {
    append_at(client, stream, count, events).await.map(|_| ())
}

/// [`append`], answering where in `$all` the events were written.
pub async fn append_at(
    client: &Client,
    stream: &str,
    count: u64,
    events: Vec<EventData>,
) -> Result<FeedPosition, StreamError> {
    let options = AppendToStreamOptions::default().expected_revision(expected(count));
    let written = client.append_to_stream(stream, &options, events).await?;
    Ok(feed_position(written.position))
}

/// Lets the store drop all but the newest `count` events of a stream
/// (its `$maxCount`).
pub async fn keep_newest(client: &Client, stream: &str, count: u64) -> Result<(), StreamError> {
    let keep = eventstore::StreamMetadataBuilder::new().max_count(count);
    set_metadata(client, stream, keep).await
}

/// Sets a stream's metadata (what the store may drop of it).
async fn set_metadata(
    client: &Client,
    stream: &str,
    metadata: eventstore::StreamMetadataBuilder,
) -> Result<(), StreamError> {
    let metadata = metadata.build();
    client
        .set_stream_metadata(stream, &Default::default(), &metadata)
        .await?;
    Ok(())
}

/// Reads a whole stream forwards, decoding each event; a stream that does
/// not exist reads as empty.
pub async fn read_stream<T>(
    client: &Client,
    stream: &str,
    decode: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<Vec<T>, StreamError> {
    read_stream_with(client, stream, &ReadStreamOptions::default(), decode).await
}

/// Reads a stream as `options` say, decoding each event.
async fn read_stream_with<T>(
    client: &Client,
    stream: &str,
    options: &ReadStreamOptions,
    decode: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<Vec<T>, StreamError> {
    let mut out = Vec::new();
    each_record(client, stream, options, |e| {
        let item = decode(&e.data).map_err(|reason| StreamError::Corrupt {
            stream: stream.to_string(),
            revision: e.revision,
            reason,
        })?;
        out.push(item);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Reads a stream as `options` say, handing each event as stored to
/// `each` in order; a stream that does not exist reads as empty.
async fn each_record(
    client: &Client,
    stream: &str,
    options: &ReadStreamOptions,
    mut each: impl FnMut(eventstore::RecordedEvent) -> Result<(), StreamError>,
) -> Result<(), StreamError> {
    let mut read = match client.read_stream(stream, options).await {
        Ok(read) => read,
        Err(Error::ResourceNotFound) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    loop {
        match read.next().await {
            Ok(Some(e)) => {
                if let Some(e) = original(e) {
                    each(e)?;
                }
            }
            Ok(None) | Err(Error::ResourceNotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
}

fn decode_market_event(b: &[u8]) -> Result<Event, String> {
    let text = std::str::from_utf8(b).map_err(|e| e.to_string())?;
    Event::from_json(text).map_err(|e| e.to_string())
}

/// Reads a market's whole stream.
pub async fn load_market(client: &Client, symbol: &str) -> Result<Vec<Event>, StreamError> {
    read_stream(client, &market_stream(symbol), decode_market_event).await
}

/// Which way a part of a stream is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Forwards,
    Backwards,
}

/// Reads up to `count` events of a market's stream starting at `revision`
/// and going the way asked (backwards: that event and the ones before it).
pub async fn read_market(
    client: &Client,
    symbol: &str,
    revision: u64,
    count: u64,
    direction: Direction,
) -> Result<Vec<Event>, StreamError> {
    if count == 0 {
        return Ok(Vec::new());
    }
    let options = ReadStreamOptions::default()
        .position(StreamPosition::Position(revision))
        .max_count(usize::try_from(count).unwrap_or(usize::MAX));
    let options = match direction {
        Direction::Forwards => options.forwards(),
        Direction::Backwards => options.backwards(),
    };
    read_stream_with(
        client,
        &market_stream(symbol),
        &options,
        decode_market_event,
    )
    .await
}

/// Wanted revisions of a market closer together than this many events
/// are read in one go (the events between come along and are passed over).
const READ_GAP: u64 = 64;

/// The most events one read of [`read_market_at`] asks for.
const READ_MOST: u64 = 4096;

/// The events at `revisions` (ascending) of a market's stream, in that
/// order: a run of nearby revisions at a time, so a page of a trader's
/// history spread over a long stream is a few reads, not one each. A
/// revision the stream does not reach is an error: whoever asked knew an
/// event to be there.
async fn read_market_at(
    client: &Client,
    symbol: &str,
    revisions: &[u64],
) -> Result<Vec<Event>, StreamError> {
    let mut out = Vec::with_capacity(revisions.len());
    let mut rest = revisions;
    while let Some(&first) = rest.first() {
        let mut run = 1;
        while run < rest.len()
            && rest[run].saturating_sub(rest[run - 1]) <= READ_GAP
            && rest[run].saturating_sub(first) < READ_MOST
        {
            run += 1;
        }
        let (this, after) = rest.split_at(run);
        rest = after;
        let count = this[run - 1].saturating_sub(first) + 1;
        let events = read_market(client, symbol, first, count, Direction::Forwards).await?;
        for &revision in this {
            let at = revision
                .checked_sub(first)
                .and_then(|i| usize::try_from(i).ok());
            let event = at.and_then(|i| events.get(i));
            let event = event.ok_or_else(|| StreamError::Corrupt {
                stream: market_stream(symbol),
                revision,
                reason: "the stream ends before it".to_string(),
            })?;
            out.push(event.clone());
        }
    }
    Ok(out)
}

/// Answers made from events at known revisions of market streams: per
/// market, the revisions wanted (in any order), each with the slot of
/// `found` its answer goes to and what `make` needs to make it from the
/// event there. `make` says why, when that event is not the one expected:
/// the stream and the reader disagree, and the read fails as corrupt.
pub async fn read_back<W, T>(
    client: &Client,
    wanted: BTreeMap<Arc<str>, Vec<(u64, usize, W)>>,
    found: &mut [Option<T>],
    mut make: impl FnMut(&Arc<str>, u64, &Event, W) -> Result<T, String>,
) -> Result<(), StreamError> {
    for (symbol, mut places) in wanted {
        places.sort_unstable_by_key(|p| p.0);
        let revisions: Vec<u64> = places.iter().map(|p| p.0).collect();
        let events = read_market_at(client, &symbol, &revisions).await?;
        for ((revision, slot, w), event) in places.into_iter().zip(&events) {
            let answer =
                make(&symbol, revision, event, w).map_err(|reason| StreamError::Corrupt {
                    stream: market_stream(&symbol),
                    revision,
                    reason,
                })?;
            if let Some(f) = found.get_mut(slot) {
                *f = Some(answer);
            }
        }
    }
    Ok(())
}

/// Every event of a stream as stored (data and metadata), undecoded; a
/// stream that does not exist reads as empty.
pub async fn read_records(
    client: &Client,
    stream: &str,
) -> Result<Vec<eventstore::RecordedEvent>, StreamError> {
    records(client, stream, &ReadStreamOptions::default()).await
}

/// The events a read of a stream gives, as stored.
async fn records(
    client: &Client,
    stream: &str,
    options: &ReadStreamOptions,
) -> Result<Vec<eventstore::RecordedEvent>, StreamError> {
    let mut out = Vec::new();
    each_record(client, stream, options, |e| {
        out.push(e);
        Ok(())
    })
    .await?;
    Ok(out)
}

/// Up to `count` events of a stream from `revision` on, as stored.
pub async fn read_from(
    client: &Client,
    stream: &str,
    revision: u64,
    count: u64,
) -> Result<Vec<eventstore::RecordedEvent>, StreamError> {
    records(client, stream, &from_revision(revision, count)).await
}

/// Hands each of up to `count` events of a stream from `revision` on to
/// `each` as it arrives (so a long read holds one at a time).
pub async fn each_from(
    client: &Client,
    stream: &str,
    revision: u64,
    count: u64,
    each: impl FnMut(eventstore::RecordedEvent) -> Result<(), StreamError>,
) -> Result<(), StreamError> {
    each_record(client, stream, &from_revision(revision, count), each).await
}

/// A read of up to `count` events from `revision` on, forwards.
fn from_revision(revision: u64, count: u64) -> ReadStreamOptions {
    ReadStreamOptions::default()
        .position(StreamPosition::Position(revision))
        .forwards()
        .max_count(count as usize)
}

/// The newest `count` events of a stream, newest first, as stored.
pub async fn read_newest(
    client: &Client,
    stream: &str,
    count: usize,
) -> Result<Vec<eventstore::RecordedEvent>, StreamError> {
    let options = ReadStreamOptions::default()
        .position(StreamPosition::End)
        .backwards()
        .max_count(count);
    records(client, stream, &options).await
}

/// Hides a stream's events before `revision` (its `$tb`): the store may
/// drop them.
pub async fn truncate_before(
    client: &Client,
    stream: &str,
    revision: u64,
) -> Result<(), StreamError> {
    let keep = eventstore::StreamMetadataBuilder::new().truncate_before(revision);
    set_metadata(client, stream, keep).await
}

/// The id of the event at `position` of `$all`, `None` if the log holds
/// no event there.
pub async fn event_id_at(
    client: &Client,
    position: FeedPosition,
) -> Result<Option<Uuid>, StreamError> {
    let options = ReadAllOptions::default()
        .position(start_after(Some(position)))
        .forwards()
        .max_count(1);
    let mut read = client.read_all(&options).await?;
    let first = read.next().await?.and_then(original);
    Ok(first
        .filter(|e| feed_position(e.position) == position)
        .map(|e| e.id))
}

/// The id the event at `revision` of a market's stream is stored under,
/// `None` if the stream does not reach it.
pub async fn market_event_id(
    client: &Client,
    symbol: &str,
    revision: u64,
) -> Result<Option<Uuid>, StreamError> {
    let read = read_from(client, &market_stream(symbol), revision, 1).await?;
    Ok(read
        .first()
        .filter(|e| e.revision == revision)
        .map(|e| e.id))
}

/// The last event of a stream, `None` for a stream that holds none.
pub async fn last_event(
    client: &Client,
    stream: &str,
) -> Result<Option<eventstore::RecordedEvent>, StreamError> {
    Ok(read_newest(client, stream, 1).await?.into_iter().next())
}

/// The position of the last event in `$all`, `None` for an empty store.
pub async fn last_position(client: &Client) -> Result<Option<FeedPosition>, StreamError> {
    let options = ReadAllOptions::default()
        .position(StreamPosition::End)
        .backwards()
        .max_count(1);
    let mut read = client.read_all(&options).await?;
    Ok(read
        .next()
        .await?
        .map(|e| feed_position(e.get_original_event().position)))
}

/// Up to `max` events of `$all` after `from` (from the beginning for
/// `None`), in order.
pub async fn read_all_after(
    client: &Client,
    from: Option<FeedPosition>,
    max: usize,
) -> Result<Vec<eventstore::RecordedEvent>, StreamError> {
    let options = ReadAllOptions::default()
        .position(start_after(from))
        .forwards()
        .max_count(max);
    let mut read = client.read_all(&options).await?;
    let mut events = Vec::new();
    while let Some(e) = read.next().await?.and_then(original) {
        // Reading from a position includes the event at it.
        if Some(feed_position(e.position)) > from {
            events.push(e);
        }
    }
    Ok(events)
}

/// Reads `$all` from the beginning to its end in one read, handing each
/// event to `each` in order as it arrives: the tests' reference for what
/// the log holds, read otherwise than start's paged read (`log_read.rs`)
/// and the checker's.
#[cfg(test)]
pub async fn read_all_from_start(
    client: &Client,
    mut each: impl FnMut(eventstore::RecordedEvent) -> Result<(), StreamError>,
) -> Result<(), StreamError> {
    let options = ReadAllOptions::default()
        .position(StreamPosition::Start)
        .forwards();
    let mut read = client.read_all(&options).await?;
    while let Some(e) = read.next().await?.and_then(original) {
        each(e)?;
    }
    Ok(())
}

/// The event a read gave, taken out of it (as `get_original_event` shows
/// it: the link, if the read resolved one).
fn original(e: eventstore::ResolvedEvent) -> Option<eventstore::RecordedEvent> {
    e.link.or(e.event)
}

/// A subscription to `$all` after `from` (`None`: from the beginning),
/// filtered by the store to the market and account streams.
pub async fn subscribe_to_markets_and_accounts(
    client: &Client,
    from: Option<FeedPosition>,
) -> eventstore::Subscription {
    let options = SubscribeToAllOptions::default()
        .position(start_after(from))
        .filter(
            SubscriptionFilter::on_stream_name()
                .add_prefix(MARKET_STREAM_PREFIX)
                .add_prefix(ACCOUNT_STREAM_PREFIX),
        );
    client.subscribe_to_all(&options).await
}

/// Where a subscription to `$all` starts: after `from`, or at the beginning.
pub fn start_after(from: Option<FeedPosition>) -> StreamPosition<Position> {
    match from {
        Some(p) => StreamPosition::Position(Position {
            commit: p.commit,
            prepare: p.prepare,
        }),
        None => StreamPosition::Start,
    }
}

/// A position in `$all` as the wire carries it.
pub fn feed_position(p: Position) -> FeedPosition {
    FeedPosition {
        commit: p.commit,
        prepare: p.prepare,
    }
}
