//! How the server is configured: its command line, every flag also read
//! from an environment variable, and what the flags make of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::connections::ConnectionLimits;
use super::known_hosts::KnownHosts;
use crate::server::feed_limits::FeedLimits;
use crate::server::leadership::LeaderSettings;
use crate::server::request_limits::ApiLimits;
use crate::server::{MAX_OPEN_ORDERS, MAX_STOP_ORDERS, SessionPolicy};
use crate::store_flags::StoreFlags;

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
    #[command(flatten)]
    pub store: StoreFlags,
    /// Run the market simulator: bot accounts that trade every market.
    #[arg(long, env = "EXCHANGE_SIMULATE")]
    pub simulate: bool,
    /// How often each market's simulated traders act, in milliseconds.
    #[arg(long, env = "EXCHANGE_SIMULATE_EVERY_MS", default_value_t = 250)]
    pub simulate_every_ms: u64,
    /// Market-feed sockets one client address may hold open.
    #[arg(long, env = "EXCHANGE_FEED_SOCKETS_PER_ADDRESS", default_value_t = FeedLimits::default().sockets_per_address)]
    pub feed_sockets_per_address: usize,
    /// Requests (market switches, account follows, subscriptions) a page's
    /// feed socket or an API socket may send per second.
    #[arg(long, env = "EXCHANGE_FEED_WATCHES_PER_SECOND", default_value_t = FeedLimits::default().watches_per_second)]
    pub feed_watches_per_second: u32,
    /// ...and in a burst.
    #[arg(long, env = "EXCHANGE_FEED_WATCH_BURST", default_value_t = FeedLimits::default().watch_burst)]
    pub feed_watch_burst: u32,
    /// How far back (bytes of the store's log behind the live window) a
    /// page may resume and be sent every trade it missed (from further back
    /// it gets a fresh snapshot), and an API socket's account channel may
    /// resume (from further back it is refused).
    #[arg(long, env = "EXCHANGE_FEED_REPLAY_BYTES", default_value_t = FeedLimits::default().replay_bytes)]
    pub feed_replay_bytes: u64,
    /// How long (ms) a market-feed socket's first ready message waits for
    /// others to go out in the same write (0: none): a trade and the depth
    /// change it makes then cost one write per socket, not two.
    #[arg(long, env = "EXCHANGE_FEED_GATHER_MS", default_value_t = FeedLimits::default().gather_ms)]
    pub feed_gather_ms: u64,
    /// Other origins (`https://example.com`, comma-separated) whose pages
    /// may open the market feed and call the server functions; the site's
    /// own origin always may.
    #[arg(long, env = "EXCHANGE_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Host names (comma-separated) requests may name in `Host` besides
    /// `localhost`, addresses, and the hosts of `--advertise-url` and
    /// `--allowed-origins`: the site's public name behind a reverse proxy.
    /// A request for any other host is refused (DNS rebinding).
    #[arg(long, env = "EXCHANGE_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
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
    /// Connections the server holds open at once, from everyone; one more
    /// is closed as soon as it is accepted.
    #[arg(long, env = "EXCHANGE_MAX_CONNECTIONS", default_value_t = ConnectionLimits::default().max_connections)]
    pub max_connections: usize,
    /// Connections one address (IPv6: one /64) may hold open at once; a
    /// trusted proxy is exempt. Websockets count in the feed's own cap
    /// once upgraded.
    #[arg(long, env = "EXCHANGE_CONNECTIONS_PER_ADDRESS", default_value_t = ConnectionLimits::default().per_address)]
    pub connections_per_address: usize,
    /// Milliseconds a connection may take to send a request's head (its
    /// line and headers) before it is closed.
    #[arg(long, env = "EXCHANGE_HEADER_TIMEOUT_MS", default_value_t = ConnectionLimits::default().header_timeout.as_millis() as u64)]
    pub header_timeout_ms: u64,
    /// Milliseconds a request's body may take to arrive once it is read;
    /// past it the request fails and does nothing.
    #[arg(long, env = "EXCHANGE_BODY_TIMEOUT_MS", default_value_t = ConnectionLimits::default().body_timeout.as_millis() as u64)]
    pub body_timeout_ms: u64,
    /// Send the session cookie only over TLS (`Secure`): set it when the
    /// server runs behind HTTPS.
    #[arg(long, env = "EXCHANGE_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// Reverse proxies (addresses or networks such as `10.0.0.0/8`,
    /// comma-separated) whose `Forwarded`/`X-Forwarded-For` name the
    /// client: every per-address limit then counts the client, not the
    /// proxy. Nobody else's such headers are believed.
    #[arg(long, env = "EXCHANGE_TRUSTED_PROXIES", value_delimiter = ',', value_parser = network)]
    pub trusted_proxies: Vec<String>,
    /// Where other exchange servers on the same store reach this one to
    /// pass it order actions when it leads (`http://10.0.0.5:3000`); also
    /// its name in the leader's claim. Default: `http://` and `--addr`.
    #[arg(long, env = "EXCHANGE_ADVERTISE_URL")]
    pub advertise_url: Option<String>,
    /// How long, in milliseconds, the leader's claim stands unrenewed
    /// before another server on the same store takes over.
    #[arg(long, env = "EXCHANGE_LEADER_LEASE_MS", default_value_t = 2000)]
    pub leader_lease_ms: u64,
    /// The file holding the 32-byte key that seals API keys' HMAC secrets
    /// (made on first start if missing). Every server on one store needs
    /// the same file. Default: `api-key.secret` beside `--data` with the
    /// embedded store; with an external store, none (a key held in memory
    /// only, so HMAC keys stop working when the server restarts).
    #[arg(long, env = "EXCHANGE_API_KEY_SECRET_FILE")]
    pub api_key_secret_file: Option<PathBuf>,
    /// Request weight (Binance's weights) one address may spend on the
    /// API per minute.
    #[arg(long, env = "EXCHANGE_API_WEIGHT_PER_MINUTE", default_value_t = ApiLimits::default().weight_per_minute_per_address)]
    pub api_weight_per_minute: u32,
    /// Request weight one API key may spend per minute.
    #[arg(long, env = "EXCHANGE_API_KEY_WEIGHT_PER_MINUTE", default_value_t = ApiLimits::default().weight_per_minute_per_key)]
    pub api_key_weight_per_minute: u32,
    /// New orders one account may place per 10 seconds, from the page
    /// and the API together.
    #[arg(long, alias = "api-orders-per-10s", env = "EXCHANGE_ORDERS_PER_10S", default_value_t = ApiLimits::default().orders_per_10s)]
    pub orders_per_10s: u32,
    /// Of an address's request weight, how much its costly reads
    /// (replays, older candles, history pages, downloads, feed resumes)
    /// may spend at once.
    #[arg(long, env = "EXCHANGE_COSTLY_BURST_PER_ADDRESS", default_value_t = ApiLimits::default().costly_burst_per_address)]
    pub costly_burst_per_address: u32,
}

impl Config {
    /// Where the API key sealing key is kept, if anywhere.
    pub fn api_key_secret_path(&self) -> Option<PathBuf> {
        self.api_key_secret_file.clone().or_else(|| {
            let embedded = self.store.eventstore_url.is_none();
            embedded.then(|| self.store.data.with_file_name("api-key.secret"))
        })
    }

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
                gather_ms: self.feed_gather_ms,
            },
            allowed_origins: self.allowed_origins.clone(),
            known_hosts: KnownHosts::new(
                &self.allowed_hosts,
                self.advertise_url
                    .iter()
                    .chain(&self.allowed_origins)
                    .map(String::as_str),
            ),
            trusted_proxies: self.trusted_proxies.clone(),
            api: ApiLimits {
                weight_per_minute_per_address: self.api_weight_per_minute,
                weight_per_minute_per_key: self.api_key_weight_per_minute,
                orders_per_10s: self.orders_per_10s,
                costly_burst_per_address: self.costly_burst_per_address,
            },
        }
    }

    pub fn connection_limits(&self) -> ConnectionLimits {
        ConnectionLimits {
            max_connections: self.max_connections.max(1),
            per_address: self.connections_per_address.max(1),
            header_timeout: Duration::from_millis(self.header_timeout_ms.max(1)),
            body_timeout: Duration::from_millis(self.body_timeout_ms.max(1)),
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
}

/// Who may open which sockets (see [`FeedLimits`]), and how much a
/// program may ask of the API (see [`ApiLimits`]).
#[derive(Clone, Debug, Default)]
pub struct SocketPolicy {
    pub feed: FeedLimits,
    pub api: ApiLimits,
    /// Origins besides the site's own whose pages may open a websocket or
    /// call a server function.
    pub allowed_origins: Vec<String>,
    /// The hosts requests may name (see `known_hosts`).
    pub known_hosts: KnownHosts,
    /// Proxies whose word on the client's address is taken (see `proxies`).
    pub trusted_proxies: Vec<String>,
}

/// A `--trusted-proxies` entry: an address or a network.
fn network(entry: &str) -> Result<String, String> {
    let entry = entry.trim();
    match accounts::valid_ip_or_network(entry) {
        true => Ok(entry.to_string()),
        false => Err(format!(
            "{entry} is not an address or a network (such as 10.0.0.0/8 or 2001:db8::/32)"
        )),
    }
}
