//! What several store test binaries share.

#![allow(dead_code)] // each test binary uses its own part

use bytes::Bytes;
use store::{EmbeddedStore, NewEvent, Options};

/// Segments of 4 KiB, so that a few hundred events span many.
pub fn small_segments() -> Options {
    Options {
        segment_size: 4096,
        ..Options::default()
    }
}

/// The `i`th event of a test log: about a hundred bytes of JSON.
pub fn event(i: u64) -> NewEvent {
    NewEvent {
        id: u128::from(i) + 1,
        event_type: Bytes::from_static(b"Appended"),
        is_json: true,
        custom_metadata: Bytes::new(),
        data: Bytes::from(format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(60))),
    }
}

/// A store on loopback that asks no credentials, for tests that speak raw
/// gRPC without them (credentials have tests of their own, in `auth.rs`).
pub async fn insecure(dir: &std::path::Path) -> EmbeddedStore {
    EmbeddedStore::start_with(
        dir,
        "127.0.0.1:0".parse().unwrap(),
        store::Options::default(),
        store::Access::Insecure,
    )
    .await
    .unwrap()
}
