//! The feed's socket limits over real websockets to a served site.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message};

use super::settings;
use crate::api::{FeedMessage, FeedRequest};
use crate::server::{Connection, Exchange};
use crate::site::connections::ConnectionLimits;
use crate::site::feed_socket::MAX_MESSAGE;

type WebSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A feed's socket, and the messages of the last frame not yet looked at.
struct Socket {
    ws: WebSocket,
    ready: VecDeque<FeedMessage>,
}

impl Socket {
    async fn send(&mut self, message: Message) -> Result<(), tungstenite::Error> {
        self.ws.send(message).await
    }
}

/// The site served on a loopback port (see [`serve`]), and a router of its
/// own for the requests a test sends without a socket.
pub(super) async fn served(dir: &Path) -> (super::Server, SocketAddr) {
    let (exchange, addr) = serve(dir).await;
    let router = crate::site::router(
        Path::new("target/site"),
        addr,
        exchange.clone(),
        Default::default(),
    );
    (super::Server { router, exchange }, addr)
}

/// Serves the whole site on a loopback port, as the binary does.
pub(super) async fn serve(dir: &Path) -> (Exchange, SocketAddr) {
    serve_with(dir, Default::default(), Default::default()).await
}

/// As [`serve`], under these connection caps and timeouts and this
/// router's policy.
pub(super) async fn serve_with(
    dir: &Path,
    limits: ConnectionLimits,
    policy: crate::site::SocketPolicy,
) -> (Exchange, SocketAddr) {
    let exchange = Exchange::start(
        settings(),
        Connection::Embedded {
            data: dir.join("events"),
        },
    )
    .await
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let site = crate::site::router(Path::new("target/site"), addr, exchange.clone(), policy);
    super::serve_on(listener, site, limits);
    (exchange, addr)
}

async fn connect(addr: SocketAddr) -> Socket {
    use leptos::server_fn::ServerFn;
    let url = format!(
        "ws://{addr}{}",
        <crate::live_market::MarketFeed as ServerFn>::PATH
    );
    Socket {
        ws: tokio_tungstenite::connect_async(url).await.unwrap().0,
        ready: VecDeque::new(),
    }
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
/// Each websocket message is a frame: a tag byte (0: a value) and the
/// JSON array of the messages the feed had ready at once.
async fn next(socket: &mut Socket) -> Option<FeedMessage> {
    loop {
        if let Some(message) = socket.ready.pop_front() {
            return Some(message);
        }
        let message = tokio::time::timeout(Duration::from_secs(5), socket.ws.next())
            .await
            .expect("the feed answers within 5 s");
        match message {
            Some(Ok(Message::Binary(bytes))) => {
                assert_eq!(bytes[0], 0, "a value, not a transport error");
                let frame: Vec<FeedMessage> = serde_json::from_slice(&bytes[1..]).unwrap();
                assert!(!frame.is_empty(), "a frame carries a message at least");
                socket.ready.extend(frame);
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
    open.pop().unwrap().ws.close(None).await.unwrap();
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
        match tokio::time::timeout(Duration::from_secs(5), big.ws.next()).await {
            Ok(Some(Ok(Message::Binary(bytes)))) => {
                let frame: Vec<FeedMessage> = serde_json::from_slice(&bytes[1..]).unwrap();
                assert!(matches!(frame[..], [FeedMessage::Refused(_)]), "{frame:?}");
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

/// What the feed has ready at once goes out as one websocket message: a
/// watch's snapshot and the heartbeat that says where it stands come in
/// one frame, not two.
#[tokio::test]
async fn messages_ready_at_once_share_one_frame() {
    let dir = tempfile::tempdir().unwrap();
    let (exchange, addr) = serve(dir.path()).await;
    let mut socket = connect(addr).await;
    socket.send(watch("BTC-USD")).await.unwrap();
    assert!(matches!(
        next(&mut socket).await,
        Some(FeedMessage::Snapshot(_))
    ));
    assert!(
        matches!(
            socket.ready.pop_front(),
            Some(FeedMessage::Heartbeat { symbol, .. }) if symbol == "BTC-USD"
        ),
        "the heartbeat is in the snapshot's frame"
    );
    exchange.stop().await;
}
