//! A TCP proxy for tests, between an exchange server and its store: the
//! faults of a network. It can swallow what the store answers (while the
//! store still writes what it is sent), delay the answers, cut every
//! connection, and cut the server off altogether. The router tests include
//! this file as a `#[path]` module; the tests that run the server binary
//! use it through `client`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    faults: Arc<Faults>,
    cut: watch::Sender<u64>,
}

/// What the proxy does to traffic now.
#[derive(Default)]
struct Faults {
    /// Dropping what the store answers.
    swallow: AtomicBool,
    /// Refusing every connection: the server behind it is cut off.
    partitioned: AtomicBool,
    /// Holding each answer this long before passing it on.
    delay_ms: AtomicU64,
}

impl Proxy {
    /// A proxy on a loopback port to the store at `to`.
    pub async fn start(to: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let faults = Arc::new(Faults::default());
        let (cut, cuts) = watch::channel(0u64);
        let shared = faults.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.partitioned.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(to).await else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let mut cut_up = cuts.clone();
                cut_up.borrow_and_update();
                let mut cut_down = cuts.clone();
                cut_down.borrow_and_update();
                let faults = shared.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        tokio::select! {
                            n = client_read.read(&mut buf) => match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => if server_write.write_all(&buf[..n]).await.is_err() { return },
                            },
                            _ = cut_up.changed() => return,
                        }
                    }
                });
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        tokio::select! {
                            n = server_read.read(&mut buf) => match n {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if faults.swallow.load(Ordering::SeqCst) {
                                        continue;
                                    }
                                    let delay = faults.delay_ms.load(Ordering::SeqCst);
                                    if delay > 0 {
                                        tokio::time::sleep(Duration::from_millis(delay)).await;
                                    }
                                    if client_write.write_all(&buf[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            },
                            _ = cut_down.changed() => return,
                        }
                    }
                });
            }
        });
        Proxy { addr, faults, cut }
    }

    /// Drops what the store answers (`true`) or passes it on again.
    pub fn swallow(&self, on: bool) {
        self.faults.swallow.store(on, Ordering::SeqCst);
    }

    /// Holds each answer of the store this long (zero: none).
    pub fn delay(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.faults.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Closes every connection through the proxy (new ones go through).
    pub fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }

    /// Cuts the server behind the proxy off from the store (`true`: every
    /// connection closed, new ones refused) or lets it back.
    pub fn partition(&self, on: bool) {
        self.faults.partitioned.store(on, Ordering::SeqCst);
        if on {
            self.cut();
        }
    }
}
