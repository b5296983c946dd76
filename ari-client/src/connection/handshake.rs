//! Opening the events socket: dialled to Asterisk's `/ari/events`, or accepted from
//! Asterisk's outbound WebSocket client.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::{MaybeTlsStream, tungstenite};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::client::Client;
use crate::error::{Delivery, Error};
use crate::websocket::{self, OpenRequest, Socket};

/// Dials `/ari/events` for `apps`.
pub(super) async fn dial(
    client: &Client,
    apps: &[String],
    subscribe_all: bool,
) -> Result<Socket, Error> {
    let app_list: Vec<String> = apps
        .iter()
        .map(|a| ari_model::operation::encode_path_segment(a))
        .collect();
    let path_and_query = format!(
        "/ari/events?app={}&subscribeAll={subscribe_all}",
        app_list.join(",")
    );
    let describe = format!(
        "events WebSocket {}{path_and_query}",
        client.inner.endpoint.ws_base()
    );
    websocket::open(
        client,
        OpenRequest {
            operation: "events.eventWebsocket",
            path_and_query,
            describe,
            subprotocol: None,
            authorize: true,
            refusal_reason: <ari_model::operations::events::EventWebsocket as ari_model::Operation>::error_reason,
        },
    )
    .await
}

/// How long a peer that connected may take over the WebSocket handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts connections on `listener` until `cancel`, each handshake in a task of its own
/// under a time-out (a peer that connects and says nothing holds up no one), and hands
/// over the result of each: a socket, or why the peer was refused.
pub(super) fn acceptor(
    listener: TcpListener,
    expected: Option<String>,
    cancel: CancellationToken,
) -> mpsc::Receiver<Result<Socket, Error>> {
    let (sockets_tx, sockets_rx) = mpsc::channel(4);
    let expected: Option<Arc<str>> = expected.map(Into::into);
    tokio::spawn(
        async move {
            loop {
                let accepted = tokio::select! {
                    () = cancel.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // E.g. out of file descriptors: do not spin.
                        tracing::warn!(%error, "accepting an outbound ARI connection failed");
                        tokio::select! {
                            () = cancel.cancelled() => return,
                            () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        }
                    }
                };
                let sockets = sockets_tx.clone();
                let expected = expected.clone();
                tokio::spawn(async move {
                    let shaken = tokio::time::timeout(
                        HANDSHAKE_TIMEOUT,
                        accept(stream, peer, expected.as_deref()),
                    )
                    .await
                    .unwrap_or_else(|_| {
                        Err(Error::Timeout {
                            operation: format!("WebSocket handshake with {peer}"),
                            timeout: HANDSHAKE_TIMEOUT,
                        })
                    });
                    let _ = sockets.send(shaken).await;
                });
            }
        }
        .in_current_span(),
    );
    sockets_rx
}

/// Completes Asterisk's outbound connection: checks its credentials and agrees on the
/// `ari` subprotocol.
// tungstenite's handshake callback returns its (large) ErrorResponse by value.
#[allow(clippy::result_large_err)]
async fn accept(
    stream: tokio::net::TcpStream,
    peer: std::net::SocketAddr,
    expected: Option<&str>,
) -> Result<Socket, Error> {
    let check = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let presented = request
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok());
        if let Some(expected) = expected {
            if presented != Some(expected) {
                let mut refusal = ErrorResponse::new(Some("unauthorized".to_owned()));
                *refusal.status_mut() = StatusCode::UNAUTHORIZED;
                return Err(refusal);
            }
        }
        let offers_ari = request
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|p| p.trim() == "ari"));
        if offers_ari {
            response
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("ari"));
        }
        Ok(response)
    };
    tokio_tungstenite::accept_hdr_async_with_config(
        MaybeTlsStream::Plain(stream),
        check,
        Some(websocket::socket_config()),
    )
    .await
    .map_err(|error: tungstenite::Error| {
        Error::transport(
            "accept",
            format!("WebSocket handshake with {peer} failed"),
            Delivery::NotSent,
            error,
        )
    })
}
