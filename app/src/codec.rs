//! How resources cross from the server-rendered page into the browser.
//!
//! Leptos's default resource codec decodes JSON from a `&str`, while server
//! functions decode their JSON replies from bytes. Each reader is a separate
//! copy of every type's deserializer in the WASM, so a type that is both a
//! resource and a server function's reply was in the bundle twice. [`Json`]
//! reads resources from bytes too: one copy per type.
//!
//! [`BoundedJson`] is the market feed's request encoding: JSON too, but a
//! request larger than [`MAX_FEED_REQUEST`] is refused before it is parsed.

use codee::{Decoder, Encoder};
use leptos::server_fn::{Bytes, ContentType, Decodes, Encodes, Format, FormatType};
use serde::{Serialize, de::DeserializeOwned};

/// JSON, read from bytes like the server functions' replies.
pub struct Json;

impl<T: Serialize> Encoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = String;

    fn encode(value: &T) -> Result<String, Self::Error> {
        serde_json::to_string(value)
    }
}

impl<T: DeserializeOwned> Decoder<T> for Json {
    type Error = serde_json::Error;
    type Encoded = str;

    fn decode(encoded: &str) -> Result<T, Self::Error> {
        serde_json::from_slice(encoded.as_bytes())
    }
}

/// The largest market-feed request the server parses, in bytes.
pub const MAX_FEED_REQUEST: usize = 1024;

/// JSON of at most [`MAX_FEED_REQUEST`] bytes, for what browsers send on
/// the market feed's socket (one anonymous socket must not make the server
/// parse and keep megabytes).
pub struct BoundedJson;

impl ContentType for BoundedJson {
    const CONTENT_TYPE: &'static str = "application/json";
}

impl FormatType for BoundedJson {
    const FORMAT_TYPE: Format = Format::Text;
}

impl<T: Serialize> Encodes<T> for BoundedJson {
    type Error = serde_json::Error;

    fn encode(output: &T) -> Result<Bytes, Self::Error> {
        serde_json::to_vec(output).map(Bytes::from)
    }
}

impl<T: DeserializeOwned> Decodes<T> for BoundedJson {
    type Error = String;

    fn decode(bytes: Bytes) -> Result<T, String> {
        if bytes.len() > MAX_FEED_REQUEST {
            return Err(format!(
                "a request on this socket may be at most {MAX_FEED_REQUEST} bytes; this one was {}",
                bytes.len()
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| format!("unreadable request: {e}"))
    }
}
