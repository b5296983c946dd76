//! HTTP/1.1 with `outbound-dialer serve` over 127.0.0.1, as an operator's client would
//! speak it: one exchange a connection (`Connection: close`), JSON answers.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Every HTTP exchange ends by then.
pub const HTTP_DEADLINE: Duration = Duration::from_secs(10);

/// An answer: the status and the JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.body)
    }
}

/// One exchange, read to the end (the body up to its `Content-Length`); `body` (JSON)
/// is sent when not empty.
pub async fn exchange(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> std::io::Result<Answer> {
    let mut stream = TcpStream::connect(address).await?;
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let invalid =
        |why: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{why}: {text}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("no end of headers"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status"))?;
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    let body = match length {
        Some(length) => body.get(..length).ok_or_else(|| invalid("short body"))?,
        None => body,
    };
    let body = serde_json::from_str(body).map_err(|_| invalid("not JSON"))?;
    Ok(Answer { status, body })
}

/// An exchange that must succeed within [`HTTP_DEADLINE`].
pub async fn call(address: SocketAddr, method: &str, path: &str, body: &str) -> Answer {
    tokio::time::timeout(HTTP_DEADLINE, exchange(address, method, path, body))
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no answer within {HTTP_DEADLINE:?}"))
        .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
}

/// Polls `/status` (within `within`) until `ready` holds; returns that status.
pub async fn status_until(
    address: SocketAddr,
    within: Duration,
    what: &str,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let answer = call(address, "GET", "/status", "").await;
        assert_eq!(answer.status, 200, "{answer}");
        if ready(&answer.body) {
            return answer.body;
        }
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}; last /status: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
