//! Opening a client WebSocket to this client's Asterisk, for the events socket and the
//! media sockets alike: one place for the URL, credentials, TLS, the time-out and the
//! mapping of every failure to [`Error`].

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::client::Client;
use crate::error::{Delivery, Error};

/// A WebSocket to or from Asterisk.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The settings of every socket to Asterisk: messages up to 16 MiB, read 4 KiB at a time.
///
/// tungstenite zeroes its whole read chunk before each read (128 KiB by default), and the
/// chunk stays allocated as long as the socket; events are a few KiB and media frames
/// (50 a second on each media socket) a few hundred bytes, so a small chunk saves that
/// work on every frame and the memory on every call; a larger message is read in steps.
pub(crate) fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
        .read_buffer_size(4 << 10)
}

/// What [`open`] opens, and how its errors speak of it.
pub(crate) struct OpenRequest {
    /// The operation errors name, e.g. `events.eventWebsocket`.
    pub(crate) operation: &'static str,
    /// Appended to the endpoint's `ws(s)://host[:port][/prefix]`, e.g. `/ari/events?app=a`.
    pub(crate) path_and_query: String,
    /// How error messages name the target, e.g. `media WebSocket`. The URL goes in only
    /// when it holds no secret (a media URL holds the connection id).
    pub(crate) describe: String,
    /// The `Sec-WebSocket-Protocol` to ask for.
    pub(crate) subprotocol: Option<&'static str>,
    /// Whether to send the client's ARI credentials (Basic `Authorization`).
    pub(crate) authorize: bool,
    /// What the spec says of a refusal status; 401 has a default.
    pub(crate) refusal_reason: fn(u16) -> Option<&'static str>,
}

/// Opens a WebSocket to the client's Asterisk, within `connect_timeout + request_timeout`.
///
/// # Errors
/// An HTTP refusal is [`Error::Api`] (with Asterisk's message); no answer in time is
/// [`Error::Timeout`]; anything else is [`Error::Transport`], [`Delivery::NotSent`] when
/// no connection could be made.
pub(crate) async fn open(client: &Client, request: OpenRequest) -> Result<Socket, Error> {
    let OpenRequest {
        operation,
        path_and_query,
        describe,
        subprotocol,
        authorize,
        refusal_reason,
    } = request;
    let url = format!("{}{path_and_query}", client.inner.endpoint.ws_base());
    // The URL stays out of the message: a media URL carries a secret.
    let mut handshake = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::Config(format!("{describe}: unusable URL: {e}")))?;
    if authorize {
        let mut authorization = HeaderValue::from_str(&client.credentials().basic_authorization())
            .map_err(|_| Error::Config("the ARI credentials cannot go in an HTTP header".into()))?;
        authorization.set_sensitive(true);
        handshake
            .headers_mut()
            .insert("Authorization", authorization);
    }
    if let Some(protocol) = subprotocol {
        handshake
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    }
    let connector = match &client.inner.tls {
        Some(config) => Connector::Rustls(config.clone()),
        None => Connector::Plain,
    };
    let timeout = client.inner.connect_timeout + client.inner.request_timeout;
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        handshake,
        Some(socket_config()),
        true,
        Some(connector),
    );
    let error = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok((socket, _))) => return Ok(socket),
        Ok(Err(error)) => error,
        Err(_) => {
            return Err(Error::Timeout {
                operation: operation.to_owned(),
                timeout,
            });
        }
    };
    Err(match error {
        tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Error::Api {
                operation: operation.to_owned(),
                status,
                reason: refusal_reason(status).or(if status == 401 {
                    Some("Unauthorized: wrong ARI user or password")
                } else {
                    None
                }),
                message: refusal_message(&body),
                body,
            }
        }
        error => {
            let (what, delivery) = match &error {
                tungstenite::Error::Io(_) => ("connect failed", Delivery::NotSent),
                _ => ("handshake failed", Delivery::Unknown),
            };
            Error::Transport {
                operation: operation.to_owned(),
                message: format!("{describe}: {what}"),
                delivery,
                source: Some(Box::new(error)),
            }
        }
    })
}

/// What a refusal's body says: the `message` of a JSON body, the first paragraph of an
/// HTML page (Asterisk's own error pages), or the text itself.
fn refusal_message(body: &str) -> Option<String> {
    if let Ok(json) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(message) = json.get("message").and_then(serde_json::Value::as_str) {
            return Some(message.to_owned());
        }
    }
    let paragraph = body
        .split_once("<p>")
        .and_then(|(_, rest)| rest.split_once("</p>"))
        .map(|(paragraph, _)| paragraph);
    let text = paragraph.unwrap_or(body).trim();
    (!text.is_empty()).then(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpListener;

    use super::*;
    use crate::Credentials;

    fn client(url: &str) -> Client {
        Client::builder(url)
            .credentials(Credentials::new("user", "secret-password"))
            .connect_timeout(Duration::from_millis(200))
            .request_timeout(Duration::from_millis(200))
            .build()
            .unwrap()
    }

    fn request(path_and_query: &str) -> OpenRequest {
        OpenRequest {
            operation: "test.open",
            path_and_query: path_and_query.to_owned(),
            describe: "test WebSocket".to_owned(),
            subprotocol: Some("media"),
            authorize: true,
            refusal_reason: |status| (status == 404).then_some("no such thing"),
        }
    }

    /// Answers one connection with `response` once the request head is in, and hands
    /// back the request.
    async fn answer_once(response: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buffer = [0_u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buffer[..n]),
                }
            }
            socket.write_all(response.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&head).into_owned()
        });
        (url, served)
    }

    #[test]
    fn refusal_messages_come_from_json_html_or_text() {
        assert_eq!(
            refusal_message(r#"{"message":"Invalid application provided in query"}"#).as_deref(),
            Some("Invalid application provided in query")
        );
        // Asterisk 22.10's answer to an unknown /media/<id>.
        let page = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\r\n<html><head>\r\n<title>404 Not found</title>\r\n</head><body>\r\n<h1>Not found</h1>\r\n<p>WebSocket instance not found</p>\r\n<hr />\r\n</body></html>\r\n";
        assert_eq!(
            refusal_message(page).as_deref(),
            Some("WebSocket instance not found")
        );
        assert_eq!(refusal_message(" busy \n").as_deref(), Some("busy"));
        assert_eq!(refusal_message(""), None);
        assert_eq!(refusal_message("<p>"), Some("<p>".to_owned()));
    }

    #[tokio::test]
    async fn a_refusal_is_an_api_error_with_the_callers_reason() {
        let (url, served) = answer_once(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 24\r\nConnection: close\r\n\r\n{\"message\":\"not there\"}\n",
        )
        .await;
        let error = open(&client(&url), request("/media/abc?x=1"))
            .await
            .unwrap_err();
        match &error {
            Error::Api {
                operation,
                status: 404,
                reason: Some("no such thing"),
                message: Some(message),
                body,
            } => {
                assert_eq!(operation, "test.open");
                assert_eq!(message, "not there");
                assert!(body.contains("not there"), "{body}");
            }
            other => panic!("expected a 404 Api error, got {other:?}"),
        }
        let head = tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("the server saw the request within 5 s")
            .unwrap();
        assert!(head.starts_with("GET /media/abc?x=1 HTTP/1.1"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("sec-websocket-protocol: media"), "{head}");
        assert!(
            lower.contains("authorization: basic dxnlcjpzzwnyzxqtcgfzc3dvcmq="),
            "{head}"
        );
    }

    #[tokio::test]
    async fn a_401_says_the_credentials_are_wrong_and_credentials_are_optional() {
        let (url, served) =
            answer_once("HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n").await;
        let mut anonymous = request("/x");
        anonymous.authorize = false;
        anonymous.subprotocol = None;
        let error = open(&client(&url), anonymous).await.unwrap_err();
        assert!(error.is_unauthorized(), "{error:?}");
        assert!(
            matches!(&error, Error::Api { reason: Some(r), message: None, .. } if r.contains("wrong ARI user")),
            "{error:?}"
        );
        let head = tokio::time::timeout(Duration::from_secs(5), served)
            .await
            .expect("the server saw the request within 5 s")
            .unwrap()
            .to_ascii_lowercase();
        assert!(!head.contains("authorization"), "{head}");
        assert!(!head.contains("sec-websocket-protocol"), "{head}");
    }

    #[tokio::test]
    async fn no_listener_is_not_sent_and_the_message_holds_no_url_nor_cause() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let error = open(&client(&url), request("/media/the-secret-id"))
            .await
            .unwrap_err();
        assert_eq!(error.delivery(), Delivery::NotSent, "{error:?}");
        match &error {
            Error::Transport {
                message, source, ..
            } => {
                assert_eq!(message, "test WebSocket: connect failed");
                assert!(source.is_some());
            }
            other => panic!("expected a transport error, got {other:?}"),
        }
        let mut chain = error.to_string();
        let mut cause = std::error::Error::source(&error);
        while let Some(next) = cause {
            chain.push_str(&format!(" / {next}"));
            cause = next.source();
        }
        assert!(!chain.contains("the-secret-id"), "{chain}");
    }

    #[tokio::test]
    async fn a_silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let started = std::time::Instant::now();
        let error =
            tokio::time::timeout(Duration::from_secs(5), open(&client(&url), request("/x")))
                .await
                .expect("open gave up within 5 s")
                .unwrap_err();
        assert!(
            matches!(error, Error::Timeout { timeout, .. } if timeout == Duration::from_millis(400)),
            "{error:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(400));
        drop(listener);
    }
}
