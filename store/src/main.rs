//! `store`: the embedded event store as a standalone server.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Serves an EventStoreDB-compatible event store over cleartext gRPC.
#[derive(Parser)]
#[command(name = "store")]
struct Args {
    /// Address to listen on.
    #[arg(long, env = "STORE_LISTEN", default_value = "127.0.0.1:2113")]
    listen: SocketAddr,
    /// Directory holding the event log.
    #[arg(long, env = "STORE_DATA", default_value = "data/events")]
    data: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let server = store::EmbeddedStore::start(&args.data, args.listen).await?;
    // The line tests and scripts wait for: the store is accepting clients.
    println!(
        "listening on {} ({})",
        server.addr(),
        server.connection_string()
    );
    tokio::signal::ctrl_c().await?;
    tracing::info!("shutting down: ending subscriptions");
    server.stop().await?;
    Ok(())
}
