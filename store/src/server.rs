//! Serving the store over gRPC, in-process or standalone.

use std::net::SocketAddr;
use std::path::Path;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;

use crate::auth::{Access, Users};
use crate::conn::Conn;
use crate::limits::MAX_APPEND_SIZE;
use crate::proto::gossip::gossip_server::GossipServer;
use crate::proto::server_features::server_features_server::ServerFeaturesServer;
use crate::proto::streams::streams_server::StreamsServer;
use crate::service::{FeaturesService, GossipService, StreamsService};
use crate::store::{Options, Store, StoreError};

/// Streams a client may reset before the server accepted them.
pub const PENDING_RESETS: usize = 65_536;
/// The HTTP/2 connection window. h2 lets small DATA frames that the service
/// has not read yet take up at most half of it; every subscription request
/// is one, so a process opening thousands of subscriptions at once needs a
/// window far above hyper's 1 MiB default or h2 ends the connection with
/// ENHANCE_YOUR_CALM ("too_many_data_frames").
pub const CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Serves `store` on `listener` to those `access` admits until `shutdown`
/// resolves. Live subscriptions are then ended with UNAVAILABLE so the
/// server can close.
pub async fn serve(
    store: Store,
    listener: TcpListener,
    access: Access,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    let on_shutdown = store.clone();
    tonic::transport::Server::builder()
        // One client connection carries every subscription of a process
        // (the exchange opens one per connected browser). When thousands
        // start at once, h2's default of 20 streams reset before they are
        // accepted would end the whole connection; allow as many as there
        // can be subscriptions in flight.
        .http2_max_pending_accept_reset_streams(Some(PENDING_RESETS))
        .initial_connection_window_size(CONNECTION_WINDOW)
        .add_service(InterceptedService::new(
            StreamsServer::new(StreamsService { store })
                .max_decoding_message_size(MAX_APPEND_SIZE * 2)
                .max_encoding_message_size(MAX_APPEND_SIZE * 2),
            access.interceptor(),
        ))
        .add_service(ServerFeaturesServer::new(FeaturesService))
        .add_service(GossipServer::new(GossipService { addr }))
        .serve_with_incoming_shutdown(incoming(listener), async move {
            shutdown.await;
            on_shutdown.begin_shutdown();
        })
        .await
}

/// Accepted connections, tuned for latency (see [`crate::conn`]).
fn incoming(listener: TcpListener) -> impl futures::Stream<Item = std::io::Result<Conn>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|conn| Conn::new(conn?))
}

/// A store served on a loopback port inside this process.
pub struct EmbeddedStore {
    store: Store,
    addr: SocketAddr,
    users: Option<Users>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl EmbeddedStore {
    /// Opens the store in `dir` and listens on `addr` (port 0 picks a free
    /// port) before returning, so a client can connect at once. Only one
    /// user, `admin` with a password drawn at random now, may use it: the
    /// [`connection_string`](EmbeddedStore::connection_string) carries it,
    /// so only whoever this process hands that to can read or write.
    pub async fn start(dir: &Path, addr: SocketAddr) -> Result<EmbeddedStore, StoreError> {
        let access = Access::Users(Users::random_admin()?);
        EmbeddedStore::start_with(dir, addr, Options::default(), access).await
    }

    /// [`EmbeddedStore::start`] with options and the access to enforce
    /// (insecure only on a loopback address).
    pub async fn start_with(
        dir: &Path,
        addr: SocketAddr,
        options: Options,
        access: Access,
    ) -> Result<EmbeddedStore, StoreError> {
        access.check(addr)?;
        let (store, recovery) = Store::open_with(dir, options)?;
        tracing::info!(
            events = recovery.records,
            checkpoint = recovery.checkpoint,
            torn_bytes_cut = recovery.truncated_bytes,
            dir = %dir.display(),
            "event store opened"
        );
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let users = match &access {
            Access::Users(users) => Some(users.clone()),
            Access::Insecure => None,
        };
        let task = tokio::spawn(serve(store.clone(), listener, access, async {
            let _ = stopped.await;
        }));
        Ok(EmbeddedStore {
            store,
            addr,
            users,
            stop: Some(stop),
            task,
        })
    }

    /// The store behind the server, for in-process use.
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The connection string for the official client, with the first
    /// user's credentials: hand it only to whoever may write.
    pub fn connection_string(&self) -> String {
        let credentials = self
            .users
            .as_ref()
            .map(|u| format!("{}:{}@", u.first().0, u.first().1));
        self.connection_string_with(&credentials.unwrap_or_default())
    }

    /// The connection string with the password left out, to print or log.
    pub fn public_connection_string(&self) -> String {
        let credentials = self
            .users
            .as_ref()
            .map(|u| format!("{}:PASSWORD@", u.first().0));
        self.connection_string_with(&credentials.unwrap_or_default())
    }

    fn connection_string_with(&self, credentials: &str) -> String {
        format!(
            "esdb://{credentials}{}?tls=false&discoveryInterval=0&maxDiscoverAttempts=10",
            self.addr
        )
    }

    /// Ends subscriptions, stops serving and closes the store
    /// ([`Store::close`]): when this returns the log's checkpoint is on
    /// disk and the directory may be opened again.
    pub async fn stop(mut self) -> Result<(), tonic::transport::Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let served = (&mut self.task).await.unwrap_or(Ok(()));
        self.store.close().await;
        served
    }
}
