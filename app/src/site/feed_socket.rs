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
