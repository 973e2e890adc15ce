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
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::{Body, Bytes};
use axum::extract::FromRequest;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::channel::{mpsc, oneshot};
use futures::stream::SplitSink;
use futures::{Future, Sink, SinkExt, Stream, StreamExt};
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

/// Messages from the browser held between the socket and the feed.
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
        let (hand_over, handed) = oneshot::channel();
        let (hand_back, handed_back) = oneshot::channel();
        let to_socket = SocketSink {
            socket: Upgrade::Waiting(handed),
            hand_back: Some(hand_back),
        };
        // A read buffer of the default 128 KiB for messages of 1 KiB would
        // be most of what a socket costs the server.
        let response = upgrade
            .read_buffer_size(READ_BUFFER)
            .max_message_size(MAX_MESSAGE)
            .max_frame_size(MAX_MESSAGE)
            .on_upgrade(move |socket| carry::<I>(socket, to_feed, hand_over, handed_back));
        Ok((from_socket, to_socket, response))
    }
}

/// The feed's side of the socket: its sending half, written to directly
/// by the task that runs the feed (no hop through another task for each
/// frame). The socket exists only once the upgrade is done, after the
/// feed has started, so the first send waits for it; when the feed is
/// done with it, it goes back to [`carry`], which closes the socket.
struct SocketSink {
    socket: Upgrade,
    hand_back: Option<oneshot::Sender<SplitSink<WebSocket, Message>>>,
}

enum Upgrade {
    Waiting(oneshot::Receiver<SplitSink<WebSocket, Message>>),
    Open(SplitSink<WebSocket, Message>),
    /// The upgrade failed or the browser left before it was done.
    Gone,
}

impl SocketSink {
    /// The socket's sending half, once the upgrade has handed it over.
    fn poll_socket(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<&mut SplitSink<WebSocket, Message>, axum::Error>> {
        if let Upgrade::Waiting(handed) = &mut self.socket {
            self.socket = match ready!(Pin::new(handed).poll(cx)) {
                Ok(socket) => Upgrade::Open(socket),
                Err(_) => Upgrade::Gone,
            };
        }
        match &mut self.socket {
            Upgrade::Open(socket) => Poll::Ready(Ok(socket)),
            _ => Poll::Ready(Err(axum::Error::new("the feed's socket was never opened"))),
        }
    }
}

impl Sink<Bytes> for SocketSink {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let socket = ready!(self.get_mut().poll_socket(cx))?;
        Pin::new(socket).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, bytes: Bytes) -> Result<(), Self::Error> {
        match &mut self.get_mut().socket {
            Upgrade::Open(socket) => Pin::new(socket).start_send(Message::Binary(bytes)),
            _ => Err(axum::Error::new(
                "sent to the feed's socket before it was ready",
            )),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let socket = ready!(self.get_mut().poll_socket(cx))?;
        Pin::new(socket).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let socket = ready!(self.get_mut().poll_socket(cx))?;
        Pin::new(socket).poll_close(cx)
    }
}

impl Drop for SocketSink {
    fn drop(&mut self) {
        if let (Upgrade::Open(socket), Some(back)) = (
            std::mem::replace(&mut self.socket, Upgrade::Gone),
            self.hand_back.take(),
        ) {
            let _ = back.send(socket);
        }
    }
}

/// Hands the socket's sending half to the feed and carries what the
/// browser sends to it, until the feed ends (the browser's leaving ends
/// it too: its requests stop); then closes the socket. A message the
/// socket cannot read, such as one over [`MAX_MESSAGE`] bytes, reaches
/// the feed as an error, which the feed answers with its refusal before it
/// ends; nothing more is read from that socket.
async fn carry<I: FromServerFnError>(
    socket: WebSocket,
    mut to_feed: mpsc::Sender<Result<Bytes, Bytes>>,
    hand_over: oneshot::Sender<SplitSink<WebSocket, Message>>,
    handed_back: oneshot::Receiver<SplitSink<WebSocket, Message>>,
) {
    let (out, mut incoming) = socket.split();
    // A feed already gone leaves the socket here to be closed.
    let unused = hand_over.send(out).err();
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
        // broke the socket); the feed then ends and hands the socket back.
        drop(to_feed);
        std::future::pending::<()>().await;
    };
    let done = async move {
        let out = match unused {
            Some(out) => Some(out),
            None => handed_back.await.ok(),
        };
        if let Some(mut out) = out {
            let _ = out.send(Message::Close(None)).await;
        }
    };
    tokio::select! {
        () = done => {}
        () = read => {}
    }
}
