//! Which log a command works on, and under which trading configuration:
//! the flags the server (`exchange`) and the checker (`exchange check`)
//! share, so both read a store the same way.

use std::path::PathBuf;

use crate::server::Connection;

/// The event store and the trading configuration.
#[derive(Clone, Debug, clap::Args)]
pub struct StoreFlags {
    /// An EventStoreDB/KurrentDB connection string, such as
    /// `esdb://localhost:2113?tls=false`. Without one the embedded event
    /// store in `--data` is used, started in this process on a loopback
    /// port (so no other process may have it open).
    #[arg(long, env = "EVENTSTORE_URL")]
    pub eventstore_url: Option<String>,
    /// Where the embedded event store keeps its files.
    #[arg(long, env = "EXCHANGE_DATA", default_value = "data/events")]
    pub data: PathBuf,
    /// The trading configuration: markets, fees and the faucet.
    #[arg(long, env = "EXCHANGE_CONFIG", default_value = "config/exchange.json")]
    pub config: PathBuf,
}

impl StoreFlags {
    /// Where the events live, as these flags say.
    pub fn connection(&self) -> Connection {
        match &self.eventstore_url {
            Some(url) => Connection::External(url.clone()),
            None => Connection::Embedded {
                data: self.data.clone(),
            },
        }
    }
}
