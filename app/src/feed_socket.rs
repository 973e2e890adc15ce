//! The market feed's websocket with a bound on what a browser may send.
//!
//! `leptos_axum` serves websocket server functions with axum's default
//! websocket settings, which read a message of up to 64 MiB into memory
//! before the server function sees a byte of it; the `#[server]` macro does
//! not let a function pick another server type to change that. So the site
//! routes the market feed's path here: the same server function
//! (`MarketFeed::run_body`, with the same context the other server
//! functions get) and the same wire protocol (`server_fn`'s `Websocket`),
//! on a socket that refuses any message over [`MAX_MESSAGE`] bytes. The
//! browser's side is the unchanged Leptos client.

use std::borrow::Cow;

use axum::body::{Body, Bytes};
use axum::extract::FromRequest;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::{Sink, SinkExt, Stream, StreamExt};
use leptos::prelude::*;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use leptos::server_fn::request::Req;
use leptos::server_fn::{Protocol, ServerFn};

use crate::live_market::MarketFeed;

/// The largest message a browser may send on the feed's socket, in bytes:
/// a `Watch` request is well under 200. Anything longer closes the socket
/// after it is refused.
pub const MAX_MESSAGE: usize = 1024;

/// What the socket reads from the network at a time.
const READ_BUFFER: usize = 4096;

/// Messages held between the socket and the feed in each direction.
const BUFFER: usize = 16;

/// Serves one market-feed upgrade: the server function on a bounded
/// socket, in an owner holding `parts` and what `context` provides, as
/// `leptos_axum` does for every other server function.
pub async fn serve(request: Request<Body>, context: impl Fn() + Send + 'static) -> Response {
    let (parts, body) = request.into_parts();
    let owner = Owner::new();
    owner.with(|| provide_context(parts.clone()));
    owner.with(context);
    let request = BoundedSocket(Request::from_parts(parts, body));
    let run = <<MarketFeed as ServerFn>::Protocol as Protocol<
        MarketFeed,
        <MarketFeed as ServerFn>::Output,
        <MarketFeed as ServerFn>::Client,
        FeedServer,
        ServerFnError,
    >>::run_server(request, MarketFeed::run_body);
    match owner.with(|| ScopedFuture::new(run)).await {
        Ok(response) => response,
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

/// The server side of [`serve`]: axum's request and response, with
/// [`BoundedSocket`] as the request.
pub struct FeedServer;

impl<E, I, O> leptos::server_fn::server::Server<E, I, O> for FeedServer
where
    E: FromServerFnError + Send + Sync,
    I: FromServerFnError + Send + Sync,
    O: FromServerFnError + Send + Sync,
{
    type Request = BoundedSocket;
    type Response = Response<Body>;

    fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Result<(), E> {
        tokio::spawn(future);
        Ok(())
    }
}

/// An upgrade request whose websocket reads at most [`MAX_MESSAGE`] bytes
/// a message; everything else is axum's request as it is.
pub struct BoundedSocket(Request<Body>);

impl<E, I, O> Req<E, I, O> for BoundedSocket
where
    E: FromServerFnError + Send,
    I: FromServerFnError + Send,
    O: FromServerFnError + Send,
{
    type WebsocketResponse = Response;

    fn as_query(&self) -> Option<&str> {
        <Request<Body> as Req<E, I, O>>::as_query(&self.0)
    }

    fn to_content_type(&self) -> Option<Cow<'_, str>> {
        <Request<Body> as Req<E, I, O>>::to_content_type(&self.0)
    }

    fn accepts(&self) -> Option<Cow<'_, str>> {
        <Request<Body> as Req<E, I, O>>::accepts(&self.0)
    }

    fn referer(&self) -> Option<Cow<'_, str>> {
        <Request<Body> as Req<E, I, O>>::referer(&self.0)
    }

    async fn try_into_bytes(self) -> Result<Bytes, E> {
        <Request<Body> as Req<E, I, O>>::try_into_bytes(self.0).await
    }

    async fn try_into_string(self) -> Result<String, E> {
        <Request<Body> as Req<E, I, O>>::try_into_string(self.0).await
    }

    fn try_into_stream(
        self,
    ) -> Result<impl Stream<Item = Result<Bytes, Bytes>> + Send + 'static, E> {
        <Request<Body> as Req<E, I, O>>::try_into_stream(self.0)
    }

    async fn try_into_websocket(
        self,
    ) -> Result<
        (
            impl Stream<Item = Result<Bytes, Bytes>> + Send + 'static,
            impl Sink<Bytes> + Send + 'static,
            Response,
        ),
        E,
    > {
        let upgrade = WebSocketUpgrade::from_request(self.0, &())
            .await
            .map_err(|e| E::from_server_fn_error(ServerFnErrorErr::Request(e.to_string())))?;
        let (to_feed, from_socket) = mpsc::channel(BUFFER);
        let (to_socket, from_feed) = mpsc::channel(BUFFER);
        // A read buffer of the default 128 KiB for messages of 1 KiB would
        // be most of what a socket costs the server.
        let response = upgrade
            .read_buffer_size(READ_BUFFER)
            .max_message_size(MAX_MESSAGE)
            .max_frame_size(MAX_MESSAGE)
            .on_upgrade(move |socket| carry::<I>(socket, to_feed, from_feed));
        Ok((from_socket, to_socket, response))
    }
}

/// Carries messages between the socket and the feed until the feed ends
/// (the browser's leaving ends it too: its requests stop). A message the
/// socket cannot read, such as one over [`MAX_MESSAGE`] bytes, reaches
/// the feed as an error, which the feed answers with its refusal before it
/// ends; nothing more is read from that socket.
async fn carry<I: FromServerFnError>(
    socket: WebSocket,
    mut to_feed: mpsc::Sender<Result<Bytes, Bytes>>,
    mut from_feed: mpsc::Receiver<Bytes>,
) {
    let (mut out, mut incoming) = socket.split();
    let read = async move {
        while let Some(message) = incoming.next().await {
            let item = match message {
                Ok(Message::Binary(bytes)) => Ok(bytes),
                Ok(Message::Text(text)) => Ok(Bytes::from(text)),
                Ok(Message::Close(_)) => break,
                // Pings are answered by the socket itself.
                Ok(_) => continue,
                Err(e) => Err(I::from_server_fn_error(ServerFnErrorErr::Request(format!(
                    "this socket's message could not be read ({e}); a message may be at most \
                     {MAX_MESSAGE} bytes, and the socket is closed"
                )))
                .ser()),
            };
            let failed = item.is_err();
            if to_feed.send(item).await.is_err() || failed {
                break;
            }
        }
        // Dropping `to_feed` here tells the feed the browser is done (or
        // broke the socket); the feed then ends and `write` with it.
        drop(to_feed);
        std::future::pending::<()>().await;
    };
    let write = async move {
        while let Some(bytes) = from_feed.next().await {
            if out.send(Message::Binary(bytes)).await.is_err() {
                return;
            }
        }
        let _ = out.send(Message::Close(None)).await;
    };
    tokio::select! {
        () = write => {}
        () = read => {}
    }
}

#[cfg(test)]
mod tests {
    //! The feed's socket limits over real websockets to a served site.

    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Duration;

    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{self, Message};

    use super::MAX_MESSAGE;
    use crate::api::{FeedMessage, FeedRequest};
    use crate::server::{Connection, Exchange, Settings};

    type Socket = tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >;

    /// Serves the whole site on a loopback port, as the binary does.
    async fn serve(dir: &Path) -> (Exchange, SocketAddr) {
        let settings = Settings::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/exchange.json"
        )))
        .unwrap();
        let exchange = Exchange::start(
            settings,
            Connection::Embedded {
                data: dir.join("events"),
            },
        )
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let site = crate::site::router(
            Path::new("target/site"),
            addr,
            exchange.clone(),
            Default::default(),
        );
        tokio::spawn(async move {
            axum::serve(
                listener,
                site.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
        });
        (exchange, addr)
    }

    async fn connect(addr: SocketAddr) -> Socket {
        use leptos::server_fn::ServerFn;
        let url = format!(
            "ws://{addr}{}",
            <crate::live_market::MarketFeed as ServerFn>::PATH
        );
        tokio_tungstenite::connect_async(url).await.unwrap().0
    }

    /// One request framed as the Leptos client frames it: a tag byte (0:
    /// a value) and the JSON.
    fn frame(request: &FeedRequest) -> Message {
        let mut bytes = vec![0];
        bytes.extend(serde_json::to_vec(request).unwrap());
        Message::Binary(bytes.into())
    }

    fn watch(symbol: &str) -> Message {
        frame(&FeedRequest::Watch {
            symbol: symbol.into(),
            from: None,
        })
    }

    /// The next feed message, or `None` once the server closed the socket.
    async fn next(socket: &mut Socket) -> Option<FeedMessage> {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
                .await
                .expect("the feed answers within 5 s");
            match message {
                Some(Ok(Message::Binary(bytes))) => {
                    assert_eq!(bytes[0], 0, "a value, not a transport error");
                    return Some(serde_json::from_slice(&bytes[1..]).unwrap());
                }
                Some(Ok(Message::Close(_))) | None => return None,
                Some(Ok(_)) => continue,
                Some(Err(tungstenite::Error::ConnectionClosed)) => return None,
                Some(Err(e)) => panic!("socket error: {e}"),
            }
        }
    }

    /// Skips what the feed still sends of an earlier market until the
    /// snapshot of `symbol`.
    async fn snapshot_of(socket: &mut Socket, symbol: &str) {
        loop {
            match next(socket).await {
                Some(FeedMessage::Snapshot(s)) if s.symbol == symbol => return,
                Some(FeedMessage::Refused(why)) => panic!("refused: {why}"),
                None => panic!("closed before the snapshot of {symbol}"),
                Some(_) => continue,
            }
        }
    }

    async fn refusal(socket: &mut Socket) -> String {
        match next(socket).await {
            Some(FeedMessage::Refused(why)) => {
                assert_eq!(next(socket).await, None, "closed after the refusal");
                why
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_seventeenth_socket_of_one_address_is_refused_and_a_closed_one_frees_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let (exchange, addr) = serve(dir.path()).await;
        let mut open = Vec::new();
        for _ in 0..16 {
            let mut socket = connect(addr).await;
            socket.send(watch("BTC-USD")).await.unwrap();
            snapshot_of(&mut socket, "BTC-USD").await;
            open.push(socket);
        }
        let mut seventeenth = connect(addr).await;
        let why = refusal(&mut seventeenth).await;
        assert!(why.contains("at most 16"), "{why}");
        // The open sockets go on as before.
        open[0].send(watch("ETH-USD")).await.unwrap();
        snapshot_of(&mut open[0], "ETH-USD").await;
        // A socket that closes gives its place back once its feed ended.
        open.pop().unwrap().close(None).await.unwrap();
        let mut waited = Duration::ZERO;
        loop {
            let mut again = connect(addr).await;
            again.send(watch("BTC-USD")).await.unwrap();
            match next(&mut again).await {
                Some(FeedMessage::Snapshot(_)) => break,
                Some(FeedMessage::Refused(_)) if waited < Duration::from_secs(5) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    waited += Duration::from_millis(50);
                }
                other => panic!("the freed place is not given: {other:?}"),
            }
        }
        exchange.stop().await;
    }

    #[tokio::test]
    async fn a_message_over_the_bound_is_refused_by_the_socket_and_nobody_else_notices() {
        let dir = tempfile::tempdir().unwrap();
        let (exchange, addr) = serve(dir.path()).await;
        let mut other = connect(addr).await;
        other.send(watch("BTC-USD")).await.unwrap();
        snapshot_of(&mut other, "BTC-USD").await;
        // Just over the bound: refused by the socket (not by the feed's
        // symbol check, which would need the message read), bound named.
        let mut over = connect(addr).await;
        over.send(watch(&"X".repeat(MAX_MESSAGE))).await.unwrap();
        let why = refusal(&mut over).await;
        assert!(
            why.contains(&format!("at most {MAX_MESSAGE} bytes")),
            "{why}"
        );
        // 1 MiB: the server stops reading at the frame's header and closes,
        // so the client may see its unsent rest reset instead of the
        // refusal; either way the socket ends.
        let mut big = connect(addr).await;
        let _ = big.send(watch(&"X".repeat(1 << 20))).await;
        let ended = loop {
            match tokio::time::timeout(Duration::from_secs(5), big.next()).await {
                Ok(Some(Ok(Message::Binary(bytes)))) => {
                    let message: FeedMessage = serde_json::from_slice(&bytes[1..]).unwrap();
                    assert!(matches!(message, FeedMessage::Refused(_)), "{message:?}");
                }
                Ok(Some(Ok(_))) => continue,
                Ok(None | Some(Err(_))) => break true,
                Err(_) => break false,
            }
        };
        assert!(ended, "the 1 MiB socket is closed");
        // A message at the bound still gets through to the feed, which
        // judges it (a symbol that long names no market).
        let mut long = connect(addr).await;
        let at_bound = MAX_MESSAGE
            - serde_json::to_vec(&FeedRequest::Watch {
                symbol: String::new(),
                from: None,
            })
            .unwrap()
            .len()
            - 1;
        long.send(watch(&"X".repeat(at_bound))).await.unwrap();
        let why = refusal(&mut long).await;
        assert!(why.contains("at most 32 bytes"), "{why}");
        // Not JSON: refused as unreadable.
        let mut garbled = connect(addr).await;
        garbled
            .send(Message::Binary(b"\0{not json".to_vec().into()))
            .await
            .unwrap();
        let why = refusal(&mut garbled).await;
        assert!(why.contains("unreadable request"), "{why}");
        // The first socket is still served.
        other.send(watch("ETH-USD")).await.unwrap();
        snapshot_of(&mut other, "ETH-USD").await;
        exchange.stop().await;
    }
}
