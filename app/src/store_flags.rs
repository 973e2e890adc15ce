//! Which log a command works on, under which trading configuration, and
//! how its books' snapshots are laid out:
//! the flags the server (`exchange`) and the checker (`exchange check`)
//! share, so both read a store the same way.

use std::path::PathBuf;

use crate::server::{Connection, SNAPSHOT_EVERY, START_SNAPSHOT_EVERY};

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
    /// Events of a market between two snapshots of its book that the
    /// leader writes to the store (and the checker compares with the
    /// fold); a replay to any moment starts from the snapshot before it.
    /// Each interval is a series of its own: changing it makes the leader
    /// write the new series over the whole history.
    #[arg(long, env = "EXCHANGE_SNAPSHOT_EVERY", default_value_t = SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    pub snapshot_every: u64,
    /// Bytes of log after which a start snapshot is written: the ledger,
    /// the market data and the order history at one position, which a
    /// start takes up instead of folding the log before it. A snapshot is
    /// also never written before the log after the last one is as long as
    /// that snapshot.
    #[arg(long, env = "EXCHANGE_START_SNAPSHOT_EVERY", default_value_t = START_SNAPSHOT_EVERY, value_parser = clap::value_parser!(u64).range(1..))]
    pub start_snapshot_every: u64,
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
