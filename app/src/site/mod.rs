//! The HTTP edge: the axum router in front of a running [`Exchange`] (the
//! pages, the server functions, the history downloads, the market feed's
//! socket and the built site's files), its configuration, and the `serve`
//! loop the binary runs until Ctrl-C or SIGTERM. Everything that reads a
//! request is here; `server` below it holds no handler.
//!
//! - `config`: the command line and what it makes of it;
//! - `security`: the content security policy, the headers on every answer
//!   and the refusal of other sites' pages;
//! - `trader`: who a request comes from (the [`Trader`] extractor);
//! - `context`: what server functions find in their context;
//! - `forward`: a follower passing order actions to the leader;
//! - `feed_socket` and `history_export`: the market feed's bounded socket
//!   and the CSV downloads;
//! - `connections`: the accept loop, with its caps and timeouts;
//! - `known_hosts`: the host names the server answers for.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::Request;
use axum::routing::get;
use axum::{Extension, Router};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::live_market::MarketFeed;
use crate::server::feed_limits::SocketCounts;
use crate::server::key_crypto::SealingKey;
use crate::server::request_limits::RequestLimits;
use crate::server::{Exchange, Settings, simulator};
use crate::shell::{App, not_found, shell};
use history_export::Export;
use security::{content_security_policy, same_origin_only, security_headers};

pub mod account_changes;
pub mod api_v1;
pub mod binance;
mod config;
pub mod connections;
pub mod context;
pub mod feed_socket;
mod forward;
pub mod history_export;
pub mod keys_page;
pub mod known_hosts;
pub mod plain_page;
mod proxies;
mod security;
pub mod signed;
pub mod socket_admission;
pub mod trader;

pub use config::{Config, SocketPolicy};
pub use known_hosts::KnownHosts;
pub use trader::Trader;

/// Builds the router for a running exchange: its pages, server functions
/// and the built site's files under `site_root`, served at `addr`.
pub fn router(
    site_root: &Path,
    addr: SocketAddr,
    exchange: Exchange,
    policy: SocketPolicy,
) -> Router {
    let options = LeptosOptions::builder()
        .output_name("exchange")
        .site_root(site_root.to_string_lossy().as_ref())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build();
    let routes = generate_route_list(App);
    let (feed, origins) = (policy.feed, policy.allowed_origins);
    let known_hosts = policy.known_hosts;
    let trusted: proxies::TrustedProxies = Arc::new(policy.trusted_proxies);
    let request_limits = RequestLimits::new(policy.api);
    let counts = SocketCounts::default();
    let stream_counts = counts.clone();
    let router_exchange = exchange.clone();
    let behind_tls = exchange.session_policy().secure_cookie;
    let forwarding = forward::Forwarding::new(exchange.clone());
    // What every server function finds in its context.
    let context = move || {
        provide_context(exchange.clone());
        provide_context(feed);
        provide_context(counts.clone());
    };
    let site = Router::new()
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || {
                content_security_policy();
                shell(options.clone())
            }
        })
        .fallback(leptos_axum::file_and_error_handler(not_found))
        .with_state(options);
    // The history page and its downloads are plain HTML and files behind
    // the session cookie. The market feed is served on a socket with a
    // message bound (see `feed_socket`); its path is matched before the
    // site's routes.
    Router::new()
        .route("/history", get(crate::history::serve))
        .route(
            "/history/orders.csv",
            get(|exchange, trader, extensions, query| {
                history_export::serve(Export::Orders, exchange, trader, extensions, query)
            }),
        )
        .route(
            "/history/trades.csv",
            get(|exchange, trader, extensions, query| {
                history_export::serve(Export::Trades, exchange, trader, extensions, query)
            }),
        )
        .route("/keys", get(keys_page::show).post(keys_page::create))
        .route("/keys/revoke", axum::routing::post(keys_page::revoke))
        .route(
            <MarketFeed as ServerFn>::PATH,
            get(move |request: Request| feed_socket::serve(request, context.clone())),
        )
        .nest(binance::PREFIX, binance::routes())
        .nest(api_v1::PREFIX, api_v1::routes())
        .merge(binance::stream_routes())
        .route("/api/docs", get(api_v1::docs_page))
        .fallback_service(site)
        // Checked on the server the request came to, then passed on.
        .layer(axum::middleware::from_fn_with_state(
            forwarding,
            forward::to_leader,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(origins),
            same_origin_only,
        ))
        .layer(axum::middleware::from_fn_with_state(
            known_hosts,
            known_hosts::known_host_only,
        ))
        .layer(axum::middleware::map_response_with_state(
            behind_tls,
            security_headers,
        ))
        .layer(axum::middleware::from_fn(security::private_no_store))
        // Every request carries the exchange: the history's handlers take
        // it, and a request's `Trader` is looked up in it.
        .layer(Extension(router_exchange))
        .layer(Extension(request_limits))
        .layer(Extension(stream_counts))
        .layer(Extension(feed))
        // Outermost: everything inside sees the client behind the proxies.
        .layer(axum::middleware::from_fn_with_state(
            trusted,
            proxies::resolve,
        ))
}

/// Starts the exchange and serves it until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let mut settings = Settings::load(&config.store.config)?;
    settings.sessions = config.session_policy();
    settings.max_open_orders = config.max_open_orders.max(1);
    settings.max_stop_orders = config.max_stop_orders;
    settings.snapshot_every = config.store.snapshot_every;
    settings.start_snapshot_every = config.store.start_snapshot_every;
    match config.api_key_secret_path() {
        Some(path) => settings.sealing = Arc::new(SealingKey::load_or_create(&path)?),
        None => tracing::warn!(
            "no --api-key-secret-file: HMAC API keys made now stop working when this server \
             restarts, and other servers cannot check them"
        ),
    }
    // Bound first: the address (a port 0 made real) is the server's name
    // in the leader's claim.
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    settings.leader = config.leader_settings(listener.local_addr()?);
    let markets = settings.markets.clone();
    let exchange = Exchange::start(settings, config.store.connection()).await?;
    // The bots run until the server stops, and stop before it does.
    let bots = config.simulate.then(|| {
        let every = std::time::Duration::from_millis(config.simulate_every_ms.max(10));
        tracing::info!("market simulator on");
        simulator::start(exchange.clone(), markets, every)
    });
    let app = router(
        &config.site_root,
        listener.local_addr()?,
        exchange.clone(),
        config.socket_policy(),
    );
    tracing::info!("listening on http://{}", listener.local_addr()?);
    connections::serve(
        listener,
        app,
        config.connection_limits(),
        config.trusted_proxies.clone(),
        shutdown_signal(),
    )
    .await?;
    if let Some(bots) = bots {
        bots.abort();
        let _ = bots.await;
    }
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
