//! How the exchange's events travel to and from the event store: stream
//! names, event ids, payloads, and the two calls everything else uses.

use eventstore::{
    AppendToStreamOptions, Client, Error, EventData, ExpectedRevision, ReadStreamOptions,
};
use uuid::Uuid;

/// The registry of accounts: one `AccountOpened` per account, in id order.
pub const ACCOUNTS_STREAM: &str = "accounts";

/// One market's order book events.
pub fn market_stream(symbol: &str) -> String {
    format!("orderbook-{symbol}")
}

/// One account's balance and session events.
pub fn account_stream(account: u64) -> String {
    format!("account-{account}")
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
pub fn event_data(kind: &str, json: String, id: Uuid) -> EventData {
    let raw = serde_json::value::RawValue::from_string(json).expect("our events are valid JSON");
    EventData::json(kind, &raw)
        .expect("raw JSON always serialises")
        .id(id)
}

/// What the store said when it refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the stream moved on: another writer appended first")]
    WrongExpectedVersion,
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    #[error("stored event {stream}@{revision} cannot be read: {reason}")]
    Corrupt {
        stream: String,
        revision: u64,
        reason: String,
    },
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::WrongExpectedVersion { .. } => StoreError::WrongExpectedVersion,
            other => StoreError::Unavailable(other.to_string()),
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

/// Appends events atomically, only if the stream holds exactly `count`.
pub async fn append(
    client: &Client,
    stream: &str,
    count: u64,
    events: Vec<EventData>,
) -> Result<(), StoreError> {
    let options = AppendToStreamOptions::default().expected_revision(expected(count));
    client.append_to_stream(stream, &options, events).await?;
    Ok(())
}

/// Reads a whole stream forwards, decoding each event; a stream that does
/// not exist reads as empty.
pub async fn read_stream<T>(
    client: &Client,
    stream: &str,
    decode: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<Vec<T>, StoreError> {
    let mut read = match client
        .read_stream(stream, &ReadStreamOptions::default())
        .await
    {
        Ok(read) => read,
        Err(Error::ResourceNotFound) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out = Vec::new();
    loop {
        match read.next().await {
            Ok(Some(resolved)) => {
                let e = resolved.get_original_event();
                let item = decode(&e.data).map_err(|reason| StoreError::Corrupt {
                    stream: stream.to_string(),
                    revision: e.revision,
                    reason,
                })?;
                out.push(item);
            }
            Ok(None) | Err(Error::ResourceNotFound) => return Ok(out),
            Err(e) => return Err(e.into()),
        }
    }
}
