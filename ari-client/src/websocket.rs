//! Opening a client WebSocket to Asterisk (events and media sockets): one place for the
//! URL, credentials, TLS, time-out and the mapping of refusals to errors.

use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream, tungstenite};

use crate::client::Client;
use crate::error::{Delivery, Error};

/// A WebSocket to or from Asterisk.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The settings of every socket to Asterisk: messages up to 16 MiB, read 16 KiB at a time.
///
/// tungstenite zeroes its whole read chunk before each read (128 KiB by default); events
/// are a few KiB and media frames less, so a smaller chunk saves that work on every frame.
pub(crate) fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(16 << 20))
        .max_frame_size(Some(16 << 20))
        .read_buffer_size(16 << 10)
}

/// What to open.
pub(crate) struct OpenRequest {
    /// Names the operation in errors, e.g. `events.eventWebsocket`.
    pub(crate) operation: &'static str,
    /// Path and query after the endpoint's base, e.g. `/ari/events?app=x`.
    pub(crate) path_and_query: String,
    /// The target as errors may show it (never a secret such as a media connection id).
    pub(crate) describe: String,
    /// A `Sec-WebSocket-Protocol` to offer.
    pub(crate) subprotocol: Option<&'static str>,
    /// Whether to send the client's ARI credentials.
    pub(crate) authorize: bool,
    /// What the spec documents for a refusal status.
    pub(crate) refusal_reason: fn(u16) -> Option<&'static str>,
}

/// Opens a WebSocket to this client's Asterisk within `connect_timeout + request_timeout`.
pub(crate) async fn open(client: &Client, request: OpenRequest) -> Result<Socket, Error> {
    let operation = request.operation;
    let url = format!(
        "{}{}",
        client.inner.endpoint.ws_base(),
        request.path_and_query
    );
    let mut http = url
        .as_str()
        .into_client_request()
        .map_err(|_| Error::Config(format!("{}: not a usable URL", request.describe)))?;
    if request.authorize {
        let mut authorization = HeaderValue::from_str(&client.credentials().basic_authorization())
            .map_err(|_| Error::Config("the ARI credentials cannot go in an HTTP header".into()))?;
        authorization.set_sensitive(true);
        http.headers_mut().insert("Authorization", authorization);
    }
    if let Some(protocol) = request.subprotocol {
        http.headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static(protocol));
    }
    let connector = match &client.inner.tls {
        Some(config) => Connector::Rustls(config.clone()),
        None => Connector::Plain,
    };
    let timeout = client.inner.connect_timeout + client.inner.request_timeout;
    let connecting = tokio_tungstenite::connect_async_tls_with_config(
        http,
        Some(socket_config()),
        true,
        Some(connector),
    );
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => Err(Error::Timeout {
            operation: operation.to_owned(),
            timeout,
        }),
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(tungstenite::Error::Http(response))) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .or_else(|| (!body.is_empty()).then(|| body.clone()));
            let reason = (request.refusal_reason)(status).or(if status == 401 {
                Some("Unauthorized: wrong ARI user or password")
            } else {
                None
            });
            Err(Error::Api {
                operation: operation.to_owned(),
                status,
                reason,
                message,
                body,
            })
        }
        Ok(Err(error)) => {
            let delivery = match &error {
                tungstenite::Error::Io(_) => Delivery::NotSent,
                _ => Delivery::Unknown,
            };
            Err(Error::transport(
                operation,
                format!("cannot open the {}", request.describe),
                delivery,
                error,
            ))
        }
    }
}
