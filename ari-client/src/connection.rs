//! The events WebSocket of one or more Stasis apps, kept up forever.
//!
//! A background task owns the socket. It reads every frame as it arrives and publishes it
//! into a bounded broadcast buffer, so it never waits on the application (Asterisk drops
//! readers that fall 100 ms behind). A subscriber that falls behind the buffer gets
//! [`Update::Lagged`] with the number of updates it missed — never a silent drop.
//!
//! When the socket drops, subscribers get [`Update::Disconnected`]; the task reconnects
//! with jittered backoff, then sends [`Update::Reconnected`] and, once it has re-read
//! `GET /applications/{app}` and the channels and bridges listed there,
//! [`Update::Resynced`] with that snapshot: Asterisk does not queue events for a
//! disconnected client, so this is how a program rebuilds its state.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ari_model::models::{Application, Bridge, Channel};
use ari_model::operations::{applications, bridges, channels};
use ari_model::{Event, Operation as _};
use futures::stream::SplitSink;
use futures::{SinkExt as _, Stream, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::{Delivery, Error};

/// What an [`AppConnection`] delivers: events, and markers of the connection's life.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Update {
    /// The first connection is up.
    Connected,
    /// The connection dropped; events until [`Update::Reconnected`] are lost.
    Disconnected {
        /// Why, in words.
        reason: String,
    },
    /// The connection is up again after a drop.
    Reconnected,
    /// State re-read after a reconnect: rebuild yours from it. Events delivered after
    /// `Reconnected` may predate the snapshot.
    Resynced(Arc<Snapshot>),
    /// Re-reading state after a reconnect failed; the connection itself is up.
    ResyncFailed {
        /// Why.
        error: String,
    },
    /// An event.
    Event(Arc<Event>),
    /// A frame that is not a decodable event (kept, with why).
    Undecodable {
        /// Why it did not decode.
        error: String,
        /// The frame as received (binary frames lossily as text).
        raw: String,
    },
    /// This subscriber fell behind the buffer and missed this many updates.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// The state of the connection's apps, read after a reconnect.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Each app as `GET /applications/{app}` lists it.
    pub applications: Vec<Application>,
    /// The channels the apps own (those that still existed when read).
    pub channels: Vec<Channel>,
    /// The bridges the apps own (those that still existed when read).
    pub bridges: Vec<Bridge>,
}

/// Builder of an [`AppConnection`]; see [`Client::app_connection`] and
/// [`Client::outbound_server`].
#[derive(Debug, Clone)]
pub struct AppConnectionBuilder {
    client: Client,
    apps: Vec<String>,
    listen: Option<std::net::SocketAddr>,
    expected: Option<crate::Credentials>,
    subscribe_all: bool,
    buffer: usize,
    ping_interval: Duration,
    pong_timeout: Duration,
    backoff: Backoff,
}

impl AppConnectionBuilder {
    pub(crate) fn new(client: Client, apps: Vec<String>) -> Self {
        AppConnectionBuilder {
            client,
            apps,
            listen: None,
            expected: None,
            subscribe_all: false,
            buffer: 4096,
            ping_interval: Duration::from_secs(10),
            pong_timeout: Duration::from_secs(10),
            backoff: Backoff::default(),
        }
    }

    /// Receive every event of the system, not only those of the apps' objects.
    #[must_use]
    pub fn subscribe_all(mut self, all: bool) -> Self {
        self.subscribe_all = all;
        self
    }

    /// How many updates a subscriber of [`AppConnection::updates`] may fall behind
    /// before it gets [`Update::Lagged`] (default 4096). Updates are kept only until every
    /// subscriber has read them.
    #[must_use]
    pub fn buffer(mut self, updates: usize) -> Self {
        self.buffer = updates.max(16);
        self
    }

    /// How often to ping Asterisk (default 10 s), and how long past an unanswered ping
    /// the connection counts as dead (default 10 s): this catches half-open sockets.
    #[must_use]
    pub fn keepalive(mut self, ping_interval: Duration, pong_timeout: Duration) -> Self {
        self.ping_interval = ping_interval.max(Duration::from_millis(10));
        self.pong_timeout = pong_timeout.max(Duration::from_millis(10));
        self
    }

    /// Delays between reconnect attempts (default 250 ms doubling to 30 s, jittered).
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// For [`Client::outbound_server`]: the user and password Asterisk must present
    /// (websocket_client.conf `username`/`password`). Without them any peer that reaches
    /// the listening address is accepted.
    #[must_use]
    pub fn expect_credentials(mut self, credentials: crate::Credentials) -> Self {
        self.expected = Some(credentials);
        self
    }

    /// For [`Client::outbound_server`]: listens, and returns at once with the address
    /// bound. Asterisk connects whenever it is ready (and again after each drop); wait
    /// for [`Update::Connected`].
    ///
    /// # Errors
    /// When the address cannot be bound, or the builder was not made by
    /// [`Client::outbound_server`].
    pub async fn bind(self) -> Result<(AppConnection, std::net::SocketAddr), Error> {
        let Some(address) = self.listen else {
            return Err(Error::Config(
                "bind() is for Client::outbound_server; use connect()".into(),
            ));
        };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {address}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("listening address: {e}")))?;
        let expected = self
            .expected
            .as_ref()
            .map(crate::Credentials::basic_authorization);
        let connection = self.spawn_with(Source::Accept { listener, expected }, None);
        Ok((connection, bound))
    }

    /// Connects, and returns once the first connection is up; from then on reconnects
    /// forever.
    ///
    /// # Errors
    /// When the first connection fails (wrong credentials, Asterisk down, ...).
    pub async fn connect(self) -> Result<AppConnection, Error> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let connection = self.spawn(Some(ready_tx));
        match ready_rx.await {
            Ok(Ok(())) => Ok(connection),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(Error::Closed),
        }
    }

    /// Starts connecting in the background and returns at once, with a subscriber made
    /// before the connection task started (so its first update is [`Update::Connected`]);
    /// retries until Asterisk answers.
    pub fn start(self) -> (AppConnection, Updates) {
        let (updates, _) = broadcast::channel(self.buffer);
        let first = Updates::new(updates.subscribe());
        let source = Source::Dial {
            subscribe_all: self.subscribe_all,
        };
        (self.spawn_on(updates, source, None), first)
    }

    fn spawn(self, ready: Option<oneshot::Sender<Result<(), Error>>>) -> AppConnection {
        let source = Source::Dial {
            subscribe_all: self.subscribe_all,
        };
        self.spawn_with(source, ready)
    }

    fn spawn_with(
        self,
        source: Source,
        ready: Option<oneshot::Sender<Result<(), Error>>>,
    ) -> AppConnection {
        let (updates, _) = broadcast::channel(self.buffer);
        self.spawn_on(updates, source, ready)
    }

    fn spawn_on(
        self,
        updates: broadcast::Sender<Update>,
        source: Source,
        ready: Option<oneshot::Sender<Result<(), Error>>>,
    ) -> AppConnection {
        let (outgoing_tx, outgoing_rx) = mpsc::channel(256);
        let cancel = CancellationToken::new();
        let router = Arc::new(crate::router::Router::default());
        let shared = Arc::new(Shared {
            router: router.clone(),
            updates: updates.clone(),
            cancel: cancel.clone(),
            apps: self.apps.clone(),
            outgoing: outgoing_tx,
            client: self.client.clone(),
        });
        let span = tracing::info_span!("ari_events", apps = %self.apps.join(","));
        let task = Task {
            client: self.client.clone(),
            apps: self.apps,
            source,
            ping_interval: self.ping_interval,
            pong_timeout: self.pong_timeout,
            backoff: self.backoff,
            updates,
            cancel,
            outgoing: outgoing_rx,
            router: router.clone(),
        };
        self.client.attach_websocket(WebSocketRoute {
            outgoing: shared.outgoing.clone(),
            updates: shared.updates.clone(),
        });
        tokio::spawn(
            async move {
                task.run(ready).await;
                // Handles' streams end with the connection.
                router.close();
            }
            .instrument(span),
        );
        AppConnection {
            shared,
            client: self.client,
        }
    }
}

struct Shared {
    updates: broadcast::Sender<Update>,
    cancel: CancellationToken,
    apps: Vec<String>,
    outgoing: mpsc::Sender<String>,
    client: Client,
    router: Arc<crate::router::Router>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.client.detach_websocket(&WebSocketRoute {
            outgoing: self.outgoing.clone(),
            updates: self.updates.clone(),
        });
    }
}

/// A live events connection for one or more Stasis apps. Clones share it; it closes
/// when the last clone is dropped (or on [`AppConnection::close`]).
#[derive(Clone)]
pub struct AppConnection {
    shared: Arc<Shared>,
    client: Client,
}

impl std::fmt::Debug for AppConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppConnection")
            .field("apps", &self.shared.apps)
            .finish_non_exhaustive()
    }
}

impl AppConnection {
    /// Every update from now on, as a stream. Each call is an independent subscriber.
    pub fn updates(&self) -> Updates {
        Updates::new(self.shared.updates.subscribe())
    }

    pub(crate) fn router(&self) -> &Arc<crate::router::Router> {
        &self.shared.router
    }

    /// Live per-object subscriptions (handles' event streams), for leak checks.
    pub fn object_subscriptions(&self) -> usize {
        self.shared.router.len()
    }

    /// The apps this connection serves.
    pub fn apps(&self) -> &[String] {
        &self.shared.apps
    }

    /// The first app (the one handles originate into).
    pub fn app(&self) -> &str {
        self.shared.apps.first().map_or("", String::as_str)
    }

    /// The client this connection uses for REST.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Closes the connection for every clone; their update streams end.
    pub fn close(&self) {
        self.shared.cancel.cancel();
    }
}

/// Where REST-over-WebSocket requests go: the events socket's writer, and the updates
/// their answers arrive in.
#[derive(Clone)]
pub(crate) struct WebSocketRoute {
    outgoing: mpsc::Sender<String>,
    updates: broadcast::Sender<Update>,
}

impl WebSocketRoute {
    pub(crate) fn same_as(&self, other: &WebSocketRoute) -> bool {
        self.outgoing.same_channel(&other.outgoing)
    }

    /// Sends a `RESTRequest` and waits for the `RESTResponse` with its request id.
    pub(crate) async fn request(
        &self,
        request: String,
        request_id: &str,
    ) -> Result<ari_model::events::RESTResponse, Error> {
        // Subscribed before sending, so the answer cannot slip past.
        let mut answers = self.updates.subscribe();
        self.outgoing
            .send(request)
            .await
            .map_err(|_| Error::Closed)?;
        loop {
            match answers.recv().await {
                Ok(Update::Event(event)) => {
                    if let Event::RESTResponse(response) = event.as_ref() {
                        if response.request_id == request_id {
                            return Ok(response.as_ref().clone());
                        }
                    }
                }
                // An answer we cannot decode is still the answer: report it, don't wait.
                Ok(Update::Undecodable { error, raw }) => {
                    let id = serde_json::from_str::<serde_json::Value>(&raw)
                        .ok()
                        .and_then(|v| {
                            v.get("request_id")
                                .and_then(|i| i.as_str())
                                .map(str::to_owned)
                        });
                    if id.as_deref() == Some(request_id) {
                        return Err(Error::Decode {
                            operation: "RESTResponse".to_owned(),
                            message: error,
                            body: raw,
                        });
                    }
                }
                // The socket that carried the request is gone: no answer will come on
                // the next one. Whether Asterisk acted on it is unknown.
                Ok(Update::Disconnected { reason }) => {
                    return Err(Error::Transport {
                        operation: "RESTRequest".to_owned(),
                        message: format!("the events socket dropped before the answer: {reason}"),
                        delivery: Delivery::Unknown,
                        source: None,
                    });
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return Err(Error::Closed),
            }
        }
    }
}

/// A stream of [`Update`]s; see [`AppConnection::updates`].
pub struct Updates {
    inner: std::pin::Pin<Box<dyn Stream<Item = Update> + Send + Sync>>,
}

impl Updates {
    pub(crate) fn new(receiver: broadcast::Receiver<Update>) -> Self {
        let inner = futures::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(update) => Some((update, receiver)),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    Some((Update::Lagged { missed }, receiver))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Updates {
            inner: Box::pin(inner),
        }
    }
}

impl Stream for Updates {
    type Item = Update;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Update>> {
        self.inner.poll_next_unpin(cx)
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// How long an accepted socket waits for Asterisk's first frame before we write to it.
const ACCEPTED_SOCKET_GRACE: Duration = Duration::from_secs(2);

/// Where sockets come from: dialled to Asterisk, or accepted from it.
enum Source {
    Dial {
        subscribe_all: bool,
    },
    Accept {
        listener: tokio::net::TcpListener,
        expected: Option<String>,
    },
}

struct Task {
    client: Client,
    apps: Vec<String>,
    source: Source,
    ping_interval: Duration,
    pong_timeout: Duration,
    backoff: Backoff,
    updates: broadcast::Sender<Update>,
    cancel: CancellationToken,
    outgoing: mpsc::Receiver<String>,
    router: Arc<crate::router::Router>,
}

impl Task {
    fn publish(&self, update: Update) {
        self.router.dispatch(&update);
        // No subscriber is fine: updates are for whoever listens.
        let _ = self.updates.send(update);
    }

    async fn run(mut self, mut ready: Option<oneshot::Sender<Result<(), Error>>>) {
        let mut connected_before = false;
        loop {
            let attempt = tokio::select! {
                () = self.cancel.cancelled() => return,
                attempt = self.next_socket() => attempt,
            };
            let socket = match attempt {
                Ok(socket) => socket,
                Err(error) if matches!(self.source, Source::Accept { .. }) => {
                    tracing::warn!(%error, "refused an outbound ARI connection");
                    continue;
                }
                Err(error) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(error));
                        return;
                    }
                    let delay = self.backoff.next().unwrap_or(Duration::from_secs(1));
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "ARI events connection failed");
                    tokio::select! {
                        () = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(delay) => continue,
                    }
                }
            };
            if connected_before {
                tracing::warn!("ARI events connection re-established");
                self.publish(Update::Reconnected);
                self.spawn_resync();
            } else {
                tracing::info!("ARI events connection established");
                self.publish(Update::Connected);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            connected_before = true;
            let up_since = Instant::now();
            let Some(reason) = self.read(socket).await else {
                return;
            };
            // A connection that stayed up a while earns a fresh, short backoff.
            if up_since.elapsed() > Duration::from_secs(5) {
                self.backoff.reset();
            }
            if matches!(self.source, Source::Accept { .. }) {
                // Asterisk dials again by itself: just wait for it.
                tracing::warn!(%reason, "outbound ARI connection lost; waiting for Asterisk to reconnect");
                self.publish(Update::Disconnected { reason });
                continue;
            }
            let delay = self.backoff.next().unwrap_or(Duration::from_secs(1));
            tracing::warn!(%reason, retry_in_ms = delay.as_millis() as u64, "ARI events connection lost");
            self.publish(Update::Disconnected { reason });
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn next_socket(&self) -> Result<Socket, Error> {
        match &self.source {
            Source::Dial { subscribe_all } => {
                connect_socket(&self.client, &self.apps, *subscribe_all).await
            }
            Source::Accept { listener, expected } => {
                accept_socket(listener, expected.as_deref()).await
            }
        }
    }

    fn spawn_resync(&self) {
        let client = self.client.clone();
        let apps = self.apps.clone();
        let updates = self.updates.clone();
        let router = self.router.clone();
        tokio::spawn(
            async move {
                let update = match resync(&client, &apps).await {
                    Ok(snapshot) => Update::Resynced(Arc::new(snapshot)),
                    Err(error) => Update::ResyncFailed {
                        error: error.to_string(),
                    },
                };
                router.dispatch(&update);
                let _ = updates.send(update);
            }
            .in_current_span(),
        );
    }

    /// Reads until the socket fails (returns why) or the connection is closed (`None`).
    async fn read(&mut self, socket: Socket) -> Option<String> {
        let (mut sink, mut stream) = socket.split();
        let mut ticker = tokio::time::interval(self.ping_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        let mut last_heard = Instant::now();
        // Asterisk's WebSocket client reads our handshake answer through a buffered line
        // reader and then waits on the socket itself, so a frame that arrives together
        // with the answer sits unseen in that buffer until another frame follows (a
        // REST request would wait for its time-out). Asterisk speaks first on the
        // connections it dials, after reading the answer (ApplicationRegistered for each
        // app), so on accepted sockets we write nothing until it has spoken, or until
        // a grace period passes should it have nothing to say.
        let mut may_write = !matches!(self.source, Source::Accept { .. });
        let grace = tokio::time::sleep(ACCEPTED_SOCKET_GRACE);
        tokio::pin!(grace);
        loop {
            tokio::select! {
                () = self.cancel.cancelled() => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(None))).await;
                    return None;
                }
                () = &mut grace, if !may_write => {
                    tracing::debug!("Asterisk has not spoken on the accepted socket; writing anyway");
                    may_write = true;
                }
                frame = stream.next() => {
                    last_heard = Instant::now();
                    may_write = true;
                    match frame {
                        None => return Some("Asterisk closed the connection".to_owned()),
                        Some(Err(error)) => return Some(format!("read failed: {error}")),
                        Some(Ok(Message::Text(text))) => self.dispatch(text.as_str()),
                        Some(Ok(Message::Binary(bytes))) => self.publish(Update::Undecodable {
                            error: "a binary frame on the events socket".to_owned(),
                            raw: String::from_utf8_lossy(&bytes).into_owned(),
                        }),
                        Some(Ok(Message::Close(frame))) => {
                            return Some(match frame {
                                Some(frame) => format!("Asterisk closed the connection ({} {})", frame.code, frame.reason),
                                None => "Asterisk closed the connection".to_owned(),
                            });
                        }
                        Some(Ok(_)) => {}
                    }
                }
                _ = ticker.tick(), if may_write => {
                    if last_heard.elapsed() > self.ping_interval + self.pong_timeout {
                        return Some(format!("no answer to pings for {:?}: the connection is half-open", last_heard.elapsed()));
                    }
                    if let Some(reason) = self.send(&mut sink, Message::Ping(Vec::new().into())).await {
                        return Some(reason);
                    }
                }
                Some(text) = self.outgoing.recv(), if may_write => {
                    if let Some(reason) = self.send(&mut sink, Message::text(text)).await {
                        return Some(reason);
                    }
                }
            }
        }
    }

    async fn send(
        &self,
        sink: &mut SplitSink<Socket, Message>,
        message: Message,
    ) -> Option<String> {
        match tokio::time::timeout(self.pong_timeout, sink.send(message)).await {
            Ok(Ok(())) => None,
            Ok(Err(error)) => Some(format!("write failed: {error}")),
            Err(_) => Some(format!(
                "a write did not complete within {:?}",
                self.pong_timeout
            )),
        }
    }

    fn dispatch(&self, text: &str) {
        let update = match Event::from_json_str(text) {
            Ok(event) => Update::Event(Arc::new(event)),
            Err(error) => {
                tracing::warn!(%error, "undecodable ARI event");
                Update::Undecodable {
                    error: error.to_string(),
                    raw: text.to_owned(),
                }
            }
        };
        self.publish(update);
    }
}

async fn connect_socket(
    client: &Client,
    apps: &[String],
    subscribe_all: bool,
) -> Result<Socket, Error> {
    let operation = "events.eventWebsocket".to_owned();
    let endpoint = &client.inner.endpoint;
    let app_list: Vec<String> = apps
        .iter()
        .map(|a| ari_model::operation::encode_path_segment(a))
        .collect();
    let url = format!(
        "{}/ari/events?app={}&subscribeAll={subscribe_all}",
        endpoint.ws_base(),
        app_list.join(",")
    );
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::Config(format!("events URL {url}: {e}")))?;
    let mut authorization = HeaderValue::from_str(&client.credentials().basic_authorization())
        .map_err(|_| Error::Config("the ARI credentials cannot go in an HTTP header".into()))?;
    authorization.set_sensitive(true);
    request.headers_mut().insert("Authorization", authorization);
    let connector = match &client.inner.tls {
        Some(config) => Some(Connector::Rustls(config.clone())),
        None => Some(Connector::Plain),
    };
    let config = socket_config();
    let timeout = client.inner.connect_timeout + client.inner.request_timeout;
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
    match tokio::time::timeout(timeout, connecting).await {
        Err(_) => Err(Error::Timeout { operation, timeout }),
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
            let reason = ari_model::operations::events::EventWebsocket::error_reason(status).or(
                if status == 401 {
                    Some("Unauthorized: wrong ARI user or password")
                } else {
                    None
                },
            );
            Err(Error::Api {
                operation,
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
            Err(Error::Transport {
                operation,
                message: format!("events WebSocket to {url}: {error}"),
                delivery,
                source: Some(Box::new(error)),
            })
        }
    }
}

/// Accepts Asterisk's outbound connection: checks its credentials and agrees on the
/// `ari` subprotocol.
// tungstenite's handshake callback returns its (large) ErrorResponse by value.
#[allow(clippy::result_large_err)]
async fn accept_socket(
    listener: &tokio::net::TcpListener,
    expected: Option<&str>,
) -> Result<Socket, Error> {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let (stream, peer) = listener.accept().await.map_err(|e| Error::Transport {
        operation: "accept".into(),
        message: e.to_string(),
        delivery: Delivery::NotSent,
        source: None,
    })?;
    let check = |request: &Request, mut response: Response| -> Result<Response, ErrorResponse> {
        let presented = request
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok());
        if let Some(expected) = expected {
            if presented != Some(expected) {
                let mut refusal = ErrorResponse::new(Some("unauthorized".to_owned()));
                *refusal.status_mut() = tungstenite::http::StatusCode::UNAUTHORIZED;
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
        Some(socket_config()),
    )
    .await
    .map_err(|error| Error::Transport {
        operation: "accept".into(),
        message: format!("WebSocket handshake with {peer} failed: {error}"),
        delivery: Delivery::NotSent,
        source: Some(Box::new(error)),
    })
}

/// Re-reads the apps and the channels and bridges they own.
async fn resync(client: &Client, apps: &[String]) -> Result<Snapshot, Error> {
    let mut snapshot = Snapshot::default();
    for app in apps {
        snapshot.applications.push(
            client
                .applications()
                .get(applications::Get::new(app.as_str()))
                .await?,
        );
    }
    let channel_ids: Vec<_> = snapshot
        .applications
        .iter()
        .flat_map(|a| a.channel_ids.iter().cloned())
        .collect();
    let bridge_ids: Vec<_> = snapshot
        .applications
        .iter()
        .flat_map(|a| a.bridge_ids.iter().cloned())
        .collect();
    for id in channel_ids {
        match client.channels().get(channels::Get::new(id)).await {
            Ok(channel) => snapshot.channels.push(channel),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    for id in bridge_ids {
        match client.bridges().get(bridges::Get::new(id)).await {
            Ok(bridge) => snapshot.bridges.push(bridge),
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok(snapshot)
}

impl Client {
    /// Serve an ARI outbound WebSocket (Asterisk 22.5+, ari.conf
    /// `type=outbound_websocket`): Asterisk connects to `listen` and sends the events of
    /// `apps` there. The result is an [`AppConnection`] like any other; call
    /// [`AppConnectionBuilder::bind`] on the builder. REST goes over HTTP, or over this
    /// socket with [`crate::ClientBuilder::rest_over_websocket`].
    pub fn outbound_server<I, S>(
        &self,
        apps: I,
        listen: std::net::SocketAddr,
    ) -> AppConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut builder = self.app_connection(apps);
        builder.listen = Some(listen);
        builder
    }

    /// An events connection for `apps` (Stasis application names); call
    /// [`AppConnectionBuilder::connect`] on it.
    pub fn app_connection<I, S>(&self, apps: I) -> AppConnectionBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        AppConnectionBuilder::new(self.clone(), apps.into_iter().map(Into::into).collect())
    }
}
