//! What several store test binaries share.

use store::EmbeddedStore;

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
