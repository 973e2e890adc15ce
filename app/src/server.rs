//! The axum server that serves the pages, the WASM bundle and the server
//! functions.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::{App, shell};

/// How the server is configured: every flag also reads an environment
/// variable, and every value has a default that works from the repository
/// root after `cargo leptos build`.
#[derive(Clone, Debug, clap::Parser)]
#[command(name = "exchange", about = "Serves the exchange's web site.")]
pub struct Config {
    /// Address the web server listens on.
    #[arg(long, env = "EXCHANGE_ADDR", default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,
    /// Folder holding the built site (the WASM bundle, JS and CSS).
    #[arg(long, env = "LEPTOS_SITE_ROOT", default_value = "target/site")]
    pub site_root: PathBuf,
}

/// Builds the router for a configuration.
pub fn router(config: &Config) -> Router {
    let options = LeptosOptions::builder()
        .output_name("exchange")
        .site_root(config.site_root.to_string_lossy().as_ref())
        .site_pkg_dir("pkg")
        .site_addr(config.addr)
        .build();
    let routes = generate_route_list(App);
    Router::new()
        .leptos_routes(&options, routes, {
            let options = options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(options)
}

/// Serves until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> std::io::Result<()> {
    let app = router(&config);
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    tracing::info!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app.into_make_service())
        .with_graceful_shutdown(shutdown_signal())
        .await
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
