//! Opening the events socket: dialled to Asterisk's `/ari/events`, or accepted from
//! Asterisk's outbound WebSocket client.

use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::{MaybeTlsStream, tungstenite};

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

/// Accepts Asterisk's outbound connection: checks its credentials and agrees on the
/// `ari` subprotocol.
// tungstenite's handshake callback returns its (large) ErrorResponse by value.
#[allow(clippy::result_large_err)]
pub(super) async fn accept(
    listener: &tokio::net::TcpListener,
    expected: Option<&str>,
) -> Result<Socket, Error> {
    let (stream, peer) = listener.accept().await.map_err(|e| {
        Error::transport(
            "accept",
            "accepting a connection failed",
            Delivery::NotSent,
            e,
        )
    })?;
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
