//! The axum server: the pages, the server functions and the built site's
//! files, in front of a running [`Exchange`]; its configuration, and the
//! `serve` loop the binary runs until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leptos::prelude::*;
use leptos::server_fn::ServerFn;
use leptos_axum::{LeptosRoutes, generate_route_list};

use crate::feed_socket;
use crate::live_market::MarketFeed;
use crate::server::feed_limits::{FeedLimits, SocketCounts};
use crate::server::history_export::{self, Export};
use crate::server::leadership::LeaderSettings;
use crate::server::{
    Connection, Exchange, MAX_OPEN_ORDERS, MAX_STOP_ORDERS, SessionPolicy, Settings, simulator,
};
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
    /// Market-feed sockets one client address may hold open.
    #[arg(long, env = "EXCHANGE_FEED_SOCKETS_PER_ADDRESS", default_value_t = FeedLimits::default().sockets_per_address)]
    pub feed_sockets_per_address: usize,
    /// Requests (market switches, account follows) a feed socket may send
    /// per second.
    #[arg(long, env = "EXCHANGE_FEED_WATCHES_PER_SECOND", default_value_t = FeedLimits::default().watches_per_second)]
    pub feed_watches_per_second: u32,
    /// ...and in a burst.
    #[arg(long, env = "EXCHANGE_FEED_WATCH_BURST", default_value_t = FeedLimits::default().watch_burst)]
    pub feed_watch_burst: u32,
    /// How far back (bytes of the store's log behind the live window) a
    /// page may resume and be sent every trade it missed; from further back
    /// it gets a fresh snapshot.
    #[arg(long, env = "EXCHANGE_FEED_REPLAY_BYTES", default_value_t = FeedLimits::default().replay_bytes)]
    pub feed_replay_bytes: u64,
    /// Other origins (`https://example.com`, comma-separated) whose pages
    /// may open the market feed and call the server functions; the site's
    /// own origin always may.
    #[arg(long, env = "EXCHANGE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Minutes a session may go unused before the server ends it.
    #[arg(long, env = "EXCHANGE_SESSION_IDLE_MINUTES", default_value_t = SessionPolicy::default().idle.as_secs() / 60)]
    pub session_idle_minutes: u64,
    /// Days a session lasts at most, used or not.
    #[arg(long, env = "EXCHANGE_SESSION_MAX_DAYS", default_value_t = SessionPolicy::default().absolute.as_secs() / 86_400)]
    pub session_max_days: u64,
    /// Sessions one account may hold; logging in once more ends the oldest.
    #[arg(long, env = "EXCHANGE_SESSIONS_PER_ACCOUNT", default_value_t = SessionPolicy::default().per_account)]
    pub sessions_per_account: usize,
    /// Orders one account may have open at once, over all markets.
    #[arg(long, env = "EXCHANGE_MAX_OPEN_ORDERS", default_value_t = MAX_OPEN_ORDERS)]
    pub max_open_orders: usize,
    /// Stop and take-profit orders one account may have waiting for their
    /// trigger at once, over all markets (they count as open orders too).
    #[arg(long, env = "EXCHANGE_MAX_STOP_ORDERS", default_value_t = MAX_STOP_ORDERS)]
    pub max_stop_orders: usize,
    /// Send the session cookie only over TLS (`Secure`): set it when the
    /// server runs behind HTTPS.
    #[arg(long, env = "EXCHANGE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Where other exchange servers on the same store reach this one to
    /// pass it order actions when it leads (`http://10.0.0.5:3000`); also
    /// its name in the leader's claim. Default: `http://` and `--addr`.
    #[arg(long, env = "EXCHANGE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// How long, in milliseconds, the leader's claim stands unrenewed
    /// before another server on the same store takes over.
    #[arg(long, env = "EXCHANGE_LEADER_LEASE_MS", default_value_t = 2000)]
    pub leader_lease_ms: u64,
}

impl Config {
    pub fn session_policy(&self) -> SessionPolicy {
        SessionPolicy {
            idle: Duration::from_secs(self.session_idle_minutes.max(1) * 60),
            absolute: Duration::from_secs(self.session_max_days.max(1) * 86_400),
            per_account: self.sessions_per_account.max(1),
            secure_cookie: self.secure_cookies,
        }
    }

    pub fn socket_policy(&self) -> SocketPolicy {
        SocketPolicy {
            feed: FeedLimits {
                sockets_per_address: self.feed_sockets_per_address,
                watches_per_second: self.feed_watches_per_second,
                watch_burst: self.feed_watch_burst,
                replay_bytes: self.feed_replay_bytes,
            },
            allowed_origins: self.allowed_origins.clone(),
        }
    }

    pub fn leader_settings(&self, addr: SocketAddr) -> LeaderSettings {
        LeaderSettings {
            url: self
                .advertise_url
                .clone()
                .unwrap_or_else(|| format!("http://{addr}")),
            lease: Duration::from_millis(self.leader_lease_ms.max(100)),
        }
    }

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
    let counts = SocketCounts::default();
    // The history page and its downloads are plain HTML and files behind
    // the session cookie.
    let (orders_csv, trades_csv) = (exchange.clone(), exchange.clone());
    let history_page = exchange.clone();
    let forwarding = crate::forward::Forwarding::new(exchange.clone());
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
    // The market feed is served on a socket with a message bound (see
    // `feed_socket`); its path is matched before the site's routes.
    Router::new()
        .route(
            "/history",
            get(move |headers, query| crate::history::serve(history_page.clone(), headers, query)),
        )
        .route(
            "/history/orders.csv",
            get(move |headers, query| {
                history_export::serve(orders_csv.clone(), Export::Orders, headers, query)
            }),
        )
        .route(
            "/history/trades.csv",
            get(move |headers, query| {
                history_export::serve(trades_csv.clone(), Export::Trades, headers, query)
            }),
        )
        .route(
            <MarketFeed as ServerFn>::PATH,
            get(move |request: Request| feed_socket::serve(request, context.clone())),
        )
        .fallback_service(site)
        // Checked on the server the request came to, then passed on.
        .layer(axum::middleware::from_fn_with_state(
            forwarding,
            crate::forward::to_leader,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(origins),
            same_origin_only,
        ))
        .layer(axum::middleware::map_response(security_headers))
}

/// The page's content security policy, with the nonce of the page being
/// rendered (Leptos puts it on the scripts it writes): scripts only from
/// this site or with that nonce, WebAssembly allowed, connections (the
/// server functions and the market feed's websocket) only to this site, no
/// framing by any page, no plugins, forms posting only here. Inline styles
/// stay allowed: the chart's crosshair and last-price line are placed with
/// `style` attributes.
fn content_security_policy() {
    let (Some(answer), Some(nonce)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        leptos::nonce::use_nonce(),
    ) else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        answer.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// Headers on every answer: no type sniffing, no framing (also for answers
/// that carry no page policy), and no full address sent to other sites.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    response
}

/// Who may open which sockets (see [`FeedLimits`]).
#[derive(Clone, Debug, Default)]
pub struct SocketPolicy {
    pub feed: FeedLimits,
    /// Origins besides the site's own whose pages may open a websocket or
    /// call a server function.
    pub allowed_origins: Vec<String>,
}

/// Whether a request came from a page of another origin than this site's
/// (and not one of the origins allowed besides it). Browsers send `Origin`
/// on every websocket and every cross-origin post; a client that sends
/// none is not a page of another site.
fn foreign_origin<'a>(headers: &'a HeaderMap, allowed: &[String]) -> Option<&'a str> {
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or_default();
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let own = host.is_some_and(|h| {
        origin.strip_prefix("http://") == Some(h) || origin.strip_prefix("https://") == Some(h)
    });
    (!own && !allowed.iter().any(|a| a == origin)).then_some(origin)
}

/// What a server function's body may be: what the page's forms and the
/// server functions' own client send. Anything else (`text/plain` above
/// all, which a page of any site can post without asking) is refused.
const SERVER_FN_BODIES: [&str; 2] = ["application/x-www-form-urlencoded", "application/json"];

/// Keeps other sites from acting in a visitor's name, since every request
/// carries the visitor's cookies: a websocket upgrade or a server function
/// call from a page of another origin is refused with 403, and so is a
/// server function posted with a body type no page of this site sends.
async fn same_origin_only(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let upgrade = headers.get(header::UPGRADE).and_then(|v| v.to_str().ok());
    let socket = upgrade.is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let server_fn = request.method() == Method::POST && request.uri().path().starts_with("/api/");
    if (socket || server_fn)
        && let Some(origin) = foreign_origin(headers, &allowed)
    {
        let what = if socket { "a websocket" } else { "a request" };
        tracing::info!(origin, "refused {what} from another site");
        let why = format!(
            "{what} from {origin} is refused: only this site's own pages may make one \
             (the server allows more with --allowed-origins)"
        );
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    if server_fn {
        let body = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let essence = body.map(|b| b.split(';').next().unwrap_or_default().trim());
        let accepted =
            essence.is_some_and(|e| SERVER_FN_BODIES.iter().any(|a| e.eq_ignore_ascii_case(a)));
        if !accepted {
            let why = format!(
                "a request with a body of type {} is refused: send {}",
                body.unwrap_or("(none)"),
                SERVER_FN_BODIES.join(" or ")
            );
            return (StatusCode::FORBIDDEN, why).into_response();
        }
    }
    next.run(request).await
}

/// Starts the exchange and serves it until Ctrl-C or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let mut settings = Settings::load(&config.config)?;
    settings.sessions = config.session_policy();
    settings.max_open_orders = config.max_open_orders.max(1);
    settings.max_stop_orders = config.max_stop_orders;
    // Bound first: the address (a port 0 made real) is the server's name
    // in the leader's claim.
    let listener = tokio::net::TcpListener::bind(config.addr).await?;
    settings.leader = config.leader_settings(listener.local_addr()?);
    let markets = settings.markets.clone();
    let exchange = Exchange::start(settings, config.connection()).await?;
    if config.simulate {
        let every = std::time::Duration::from_millis(config.simulate_every_ms.max(10));
        // The bots run for as long as the server does.
        drop(simulator::start(exchange.clone(), markets, every));
        tracing::info!("market simulator on");
    }
    let app = router(
        &config.site_root,
        config.addr,
        exchange.clone(),
        config.socket_policy(),
    );
    tracing::info!("listening on http://{}", listener.local_addr()?);
    // The client's address counts its feed sockets.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
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
