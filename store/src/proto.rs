//! The generated protocol types, nested as their protobuf packages are so the
//! generated cross-package paths (`super::...`) resolve.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

pub mod event_store {
    pub mod client {
        tonic::include_proto!("event_store.client");

        pub mod streams {
            tonic::include_proto!("event_store.client.streams");
        }
        pub mod server_features {
            tonic::include_proto!("event_store.client.server_features");
        }
        pub mod gossip {
            tonic::include_proto!("event_store.client.gossip");
        }
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}

pub use event_store::client::*;
