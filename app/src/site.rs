//! The axum server: the pages, the server functions and the built site's
//! files, in front of a running [`Exchange`]; its configuration, and the
//! `serve` loop the binary runs until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::server::{Connection, Exchange, Settings, simulator};
use crate::shell::{App, not_found, shell};

/// How the server is configured: every flag also reads an environment
/// variable, and every value has a default that works from the repository
/// root after `scripts/build-site.sh` (or `cargo leptos build`).
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "exchange", about = "Serves the exchange's web site.")]
pub struct Config {
    /// Address the web server listens on.
    #[arg(long, env = "EXCHANGE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Folder holding the built site (the WASM bundle, JS and CSS).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
    /// An EventStoreDB/KurrentDB connection string, such as
    /// `esdb://localhost:2113?tls=false`. Without one the exchange starts
    /// its own embedded event store on a loopback port.
    #[arg(long, env = "EVENTSTORE_URL")]
    pub eventstore_url: Option<String>,
    /// Where the embedded event store keeps its files.
    #[arg(long, env = "EXCHANGE_DATA", default_value = "data/events")]
    pub data: PathBuf,
    /// The trading configuration: markets, fees and the faucet.
    #[arg(long, env = "EXCHANGE_CONFIG", default_value = "config/exchange.json")]
    pub config: PathBuf,
    /// Run the market simulator: bot accounts that trade every market.
    #[arg(long, env = "EXCHANGE_SIMULATE")]
    pub simulate: bool,
    /// How often each market's simulated traders act, in milliseconds.
    #[arg(long, env = "EXCHANGE_SIMULATE_EVERY_MS", default_value_t = 250)]
    pub simulate_every_ms: u64,
}

impl Config {
    pub fn connection(&self) -> Connection {
        match &self.eventstore_url {
            Some(url) => Connection::External(url.clone()),
            None => Connection::Embedded {
                data: self.data.clone(),
            },
        }
    }
}

/// Builds the router for a running exchange: its pages, server functions
/// and the built site's files under `site_root`, served at `addr`.
pub fn router(site_root: &Path, addr: SocketAddr, exchange: Exchange) -> Router {
    let options = LeptosOptions::builder()
        .output_name("exchange")
        .site_root(site_root.to_string_lossy().as_ref())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build();
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes_with_context(
            &options,
            routes,
            move || provide_context(exchange.clone()),
            {
                let options = options.clone();
                move || shell(options.clone())
            },
        )
        .fallback(leptos_axum::file_and_error_handler(not_found))
        .with_state(options)
}

/// Starts the exchange and serves it until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let settings = Settings::load(&config.config)?;
    let markets = settings.markets.clone();
    let exchange = Exchange::start(settings, config.connection()).await?;
    if config.simulate {
        let every = std::time::Duration::from_millis(config.simulate_every_ms.max(10));
        // The bots run for as long as the server does.
        drop(simulator::start(exchange.clone(), markets, every));
        tracing::info!("market simulator on");
    }
    let app = router(&config.site_root, config.addr, exchange.clone());
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    exchange.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
