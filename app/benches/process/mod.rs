//! The server process a bench runs against: starting it (its own store
//! in a temporary folder, killed when dropped), and what the bench reads
//! of it: its memory and CPU.

use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The server, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bin` (the `exchange` binary) on a free port with the
/// repository's configuration, its own data folder and `args`, and waits
/// until it listens.
pub async fn start_server(bin: &str, args: &[&str]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    // A free port: bound here, released, then given to the server.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/exchange.json");
    let child = Command::new(bin)
        .arg("--addr")
        .arg(addr.to_string())
        .arg("--data")
        .arg(dir.path().join("events"))
        .arg("--site-root")
        .arg(dir.path().join("site"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("the exchange binary starts");
    let started = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the server listens within a minute"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Server {
        child,
        addr,
        _dir: dir,
    }
}

/// A process's resident memory in bytes and CPU time so far, from /proc.
pub fn usage(pid: u32) -> (u64, Duration) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are
    // the 14th and 15th of the whole line.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<u64> = after
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    // The kernel's clock ticks are 100 a second on Linux.
    (rss_kb * 1024, Duration::from_millis(ticks * 10))
}
