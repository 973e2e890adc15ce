//! One keep-alive HTTP/1.1 connection from a chosen loopback address,
//! posting forms the way a browser's page does: what the benches that
//! drive the server over real sockets share.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;

/// One keep-alive HTTP/1.1 connection from a chosen loopback address.
pub struct Connection {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    host: SocketAddr,
}

impl Connection {
    pub async fn open(server: SocketAddr, from: Ipv4Addr) -> Connection {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
        let stream = socket.connect(server).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (read, writer) = stream.into_split();
        Connection {
            reader: BufReader::new(read),
            writer,
            host: server,
        }
    }

    /// Posts a form to a server function; answers the status, the session
    /// cookie if one was set, and the body.
    pub async fn post(
        &mut self,
        name: &str,
        cookie: Option<&str>,
        form: &str,
    ) -> (u16, Option<String>, String) {
        let cookie = cookie.map_or(String::new(), |c| format!("Cookie: session={c}\r\n"));
        self.form(&format!("/api/{name}"), &cookie, form).await
    }

    /// Posts a form to `path` with extra header lines (each ending in CRLF).
    pub async fn form(
        &mut self,
        path: &str,
        headers: &str,
        form: &str,
    ) -> (u16, Option<String>, String) {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: \
             application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: \
             {}\r\n{headers}\r\n{form}",
            self.host,
            form.len()
        );
        self.writer.write_all(request.as_bytes()).await.unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).await.unwrap();
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {line:?}"));
        let (mut length, mut chunked, mut session) = (0, false, None);
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.unwrap();
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            let (k, v) = header.split_once(':').unwrap_or((header, ""));
            match k.to_ascii_lowercase().as_str() {
                "content-length" => length = v.trim().parse().unwrap(),
                "transfer-encoding" => chunked = v.trim().eq_ignore_ascii_case("chunked"),
                "set-cookie" => {
                    if let Some(token) = v.trim().strip_prefix("session=") {
                        session = token.split(';').next().map(str::to_string);
                    }
                }
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                self.reader.read_line(&mut line).await.unwrap();
                let size = usize::from_str_radix(line.trim(), 16).unwrap();
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).await.unwrap();
                if size == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..size]);
            }
        } else {
            body.resize(length, 0);
            self.reader.read_exact(&mut body).await.unwrap();
        }
        (status, session, String::from_utf8_lossy(&body).into_owned())
    }
}
