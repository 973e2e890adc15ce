//! What the tests that run the server binary share: starting it (its log
//! kept), and a small HTTP/1.1 client for its server functions. Each test
//! binary uses a part of it.
#![allow(dead_code)]

pub mod proxy;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Runs `exchange check` on the log `args` name (`--data DIR` or
/// `--eventstore-url URL`): whether it passed, and its report (with what
/// it said on stderr).
pub fn check(args: &[&str]) -> (bool, String) {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/exchange.json");
    let out = Command::new(env!("CARGO_BIN_EXE_exchange"))
        .args(["check", "--config", config])
        .args(args)
        .env_remove("EVENTSTORE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    let passed = out.status.success() && report.contains("every ledger rule holds");
    let stderr = String::from_utf8_lossy(&out.stderr);
    (passed, format!("{report}{stderr}"))
}

/// A running server binary, where it listens, and its log so far.
pub struct Spawned {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The thread reading the log: done once the server closed its end.
    pub reader: std::thread::JoinHandle<()>,
}

/// Starts the server binary on a fresh loopback port with the repository's
/// configuration and `args`, and waits until it listens.
pub fn spawn(args: &[&str]) -> Spawned {
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/exchange.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_exchange"))
        .args(["--addr", "127.0.0.1:0", "--site-root", "/nonexistent"])
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("EVENTSTORE_URL")
        .env("RUST_LOG", "warn,app::server=info,app::site=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("the exchange binary starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(Vec::new()));
    let addr = loop {
        let Some(Ok(line)) = lines.next() else {
            let log = log.lock().unwrap().join("\n");
            panic!("the exchange exited before it listened:\n{log}");
        };
        let listening = line
            .find("listening on http://")
            .map(|at| line[at + "listening on http://".len()..].trim().to_string());
        log.lock().unwrap().push(line);
        if let Some(addr) = listening {
            break addr.parse().unwrap();
        }
    };
    // Keep reading the log so the child never blocks on a full pipe.
    let kept = log.clone();
    let reader = std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    Spawned {
        child,
        addr,
        log,
        reader,
    }
}

/// A small HTTP/1.1 client, one request a connection, as much as the
/// server functions need: status, the session cookie, the body.
pub async fn post(
    addr: SocketAddr,
    name: &str,
    cookie: Option<&str>,
    form: &str,
) -> std::io::Result<(u16, Option<String>, String)> {
    let mut stream = TcpStream::connect(addr).await?;
    let cookie = cookie.map_or(String::new(), |c| format!("Cookie: session={c}\r\n"));
    let request = format!(
        "POST /api/{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: \
         application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: \
         {}\r\nConnection: close\r\n{cookie}\r\n{form}",
        form.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("a cut-off answer"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let mut session = None;
    let mut chunked = false;
    for line in head.lines().skip(1) {
        let (k, v) = line.split_once(':').unwrap_or((line, ""));
        let k = k.to_ascii_lowercase();
        if k == "set-cookie"
            && let Some(token) = v.trim().strip_prefix("session=")
        {
            session = Some(token.split(';').next().unwrap().to_string());
        }
        if k == "transfer-encoding" && v.trim().eq_ignore_ascii_case("chunked") {
            chunked = true;
        }
    }
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Ok((status, session, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}
