//! A minimal ARI events WebSocket on plain tokio-tungstenite, for tests that prove the lab.

use std::time::Duration;

use futures::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Message, http::HeaderValue};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Lab;
use crate::rest::Error;

/// An open `/ari/events` connection for one Stasis app.
pub struct Events {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Events {
    /// Connects to `/ari/events?app=<app>&subscribeAll=true` with the lab's credentials.
    ///
    /// # Errors
    /// When the WebSocket handshake fails.
    pub async fn connect_all(lab: &Lab, app: &str) -> Result<Events, Error> {
        Self::connect_query(lab, &format!("app={app}&subscribeAll=true")).await
    }

    /// Connects to `/ari/events?app=<app>` with the lab's credentials.
    ///
    /// # Errors
    /// When the WebSocket handshake fails.
    pub async fn connect(lab: &Lab, app: &str) -> Result<Events, Error> {
        Self::connect_query(lab, &format!("app={app}")).await
    }

    async fn connect_query(lab: &Lab, query: &str) -> Result<Events, Error> {
        let ws_base = lab.ari_url.replacen("http", "ws", 1);
        let mut request = format!("{ws_base}/ari/events?{query}").into_client_request()?;
        request
            .headers_mut()
            .insert("Authorization", HeaderValue::from_str(&lab.basic_auth())?);
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Events { socket })
    }

    /// Sends a text frame (e.g. a `RESTRequest`).
    ///
    /// # Errors
    /// When the socket is closed.
    pub async fn send_text(&mut self, text: &str) -> Result<(), Error> {
        self.socket.send(Message::text(text)).await?;
        Ok(())
    }

    /// The next event as JSON, or an error after `within` without one.
    ///
    /// # Errors
    /// On time-out, a closed socket or a frame that is not JSON.
    pub async fn next(&mut self, within: Duration) -> Result<serde_json::Value, Error> {
        Ok(self.next_raw(within).await?.0)
    }

    /// The next event as JSON and as the exact text Asterisk sent (member order kept).
    ///
    /// # Errors
    /// On time-out, a closed socket or a frame that is not JSON.
    pub async fn next_raw(
        &mut self,
        within: Duration,
    ) -> Result<(serde_json::Value, String), Error> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .map_err(|_| format!("no event within {within:?}"))?
                .ok_or("the events WebSocket closed")??;
            match frame {
                Message::Text(text) => {
                    return Ok((
                        serde_json::from_str(text.as_str())?,
                        text.as_str().to_owned(),
                    ));
                }
                Message::Close(frame) => {
                    return Err(format!("the events WebSocket closed: {frame:?}").into());
                }
                _ => {}
            }
        }
    }

    /// Events until one of type `kind` for which `matches` holds; earlier ones are dropped.
    ///
    /// # Errors
    /// When no such event arrives within `within`.
    pub async fn wait_for(
        &mut self,
        kind: &str,
        within: Duration,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> Result<serde_json::Value, Error> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let event = self
                .next(left)
                .await
                .map_err(|e| format!("waiting for {kind}: {e}"))?;
            if event["type"] == kind && matches(&event) {
                return Ok(event);
            }
        }
    }
}
