//! How resources cross from the server-rendered page into the browser.
//!
//! Leptos's default resource codec decodes JSON from a `&str`, while server
//! functions decode their JSON replies from bytes. Each reader is a separate
//! copy of every type's deserializer in the WASM, so a type that is both a
//! resource and a server function's reply was in the bundle twice. [`Json`]
//! reads resources from bytes too: one copy per type.

use codee::{Decoder, Encoder};
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
