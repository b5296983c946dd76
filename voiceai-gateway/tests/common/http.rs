//! A small HTTP and WebSocket client for the gateway's REST API and event sockets.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Response headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub text: String,
}

impl Reply {
    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// The header `name` (lower-case), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends requests to `base` (e.g. `http://127.0.0.1:40123`), with a bearer token when set.
#[derive(Clone)]
pub struct Http {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: Option<String>,
}

impl Http {
    /// A client of `base` without a token.
    pub fn new(base: &str) -> Http {
        Http {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// The same client sending `Authorization: Bearer <token>`.
    pub fn with_token(&self, token: &str) -> Http {
        Http {
            token: Some(token.to_owned()),
            ..self.clone()
        }
    }

    /// `GET <path>`.
    ///
    /// # Errors
    /// When the request fails or takes over 10 s.
    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.send("GET", path, &[], Bytes::new()).await
    }

    /// `POST <path>` with a JSON body.
    ///
    /// # Errors
    /// As [`Http::get`].
    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Reply, String> {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            Bytes::from(body.to_string()),
        )
        .await
    }

    /// `POST <path>` with a form body (as Twilio's REST API takes), e.g. `Status=completed`.
    ///
    /// # Errors
    /// As [`Http::get`].
    pub async fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Result<Reply, String> {
        let body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        self.send("POST", path, &all, Bytes::from(body)).await
    }

    /// Any request: `method`, `path`, extra `headers`, raw `body`.
    ///
    /// # Errors
    /// As [`Http::get`].
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| format!("building {method} {path}: {e}"))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{method} {path}: {e}"))?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| format!("{method} {path}: reading the body: {e}"))?
                .to_bytes();
            Ok(Reply {
                status,
                headers,
                text: String::from_utf8_lossy(&body).into_owned(),
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"))?
    }
}

/// `application/x-www-form-urlencoded` escaping.
pub fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(byte as char);
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `Basic` authorization header value for `user:password`.
pub fn basic_auth(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A WebSocket client (e.g. of `/ws/frontend`), reading JSON messages with deadlines.
pub struct WsClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects to `url`, with `Authorization: Bearer <token>` when given.
    ///
    /// # Errors
    /// When the handshake fails (the error text holds the HTTP status) or takes over 10 s.
    pub async fn connect(url: &str, token: Option<&str>) -> Result<WsClient, String> {
        let mut request = url
            .into_client_request()
            .map_err(|e| format!("{url}: {e}"))?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| format!("token: {e}"))?;
            request.headers_mut().insert("authorization", value);
        }
        let (socket, _) =
            tokio::time::timeout(REQUEST_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .map_err(|_| format!("{url}: no handshake within {REQUEST_TIMEOUT:?}"))?
                .map_err(|e| format!("{url}: {e}"))?;
        Ok(WsClient { socket })
    }

    /// Sends a JSON text message.
    ///
    /// # Errors
    /// When the socket is closed.
    pub async fn send_json(&mut self, value: &Value) -> Result<(), String> {
        self.socket
            .send(Message::text(value.to_string()))
            .await
            .map_err(|e| format!("sending: {e}"))
    }

    /// The next text message as JSON (pings and binary frames skipped).
    ///
    /// # Errors
    /// After `within` without one, on close (the error holds the close frame), or when it
    /// is not JSON.
    pub async fn next_json(&mut self, within: Duration) -> Result<Value, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| format!("no message within {within:?}"))?
                .ok_or("the WebSocket ended")?
                .map_err(|e| format!("the WebSocket failed: {e}"))?;
            match frame {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| format!("not JSON ({e}): {}", text.as_str()));
                }
                Message::Close(frame) => return Err(format!("closed: {frame:?}")),
                _ => {}
            }
        }
    }

    /// Messages until one for which `matches` holds; earlier ones are returned too, in
    /// order, with it last.
    ///
    /// # Errors
    /// When none does within `within`.
    pub async fn wait_for(
        &mut self,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Vec<Value>, String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self
                .next_json(left)
                .await
                .map_err(|e| format!("{e}; seen before: {seen:?}"))?;
            let done = matches(&message);
            seen.push(message);
            if done {
                return Ok(seen);
            }
        }
    }

    /// The underlying socket, for anything else.
    pub fn socket(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.socket
    }
}
