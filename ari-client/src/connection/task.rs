//! The background task of an app connection: connects, reads every frame as it arrives,
//! reconnects with backoff when the socket drops, and resyncs after each reconnect.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ari_model::Event;
use ari_model::operations::applications;
use futures::stream::SplitSink;
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::handshake;
use super::rest::RestRoute;
use super::resync::{confirm_gone, resync};
use super::update::Update;
use crate::backoff::Backoff;
use crate::client::Client;
use crate::error::{Delivery, Error};
use crate::router::Router;
use crate::websocket::Socket;

/// How long an accepted socket waits for Asterisk's first frame before we write to it.
const ACCEPTED_SOCKET_GRACE: Duration = Duration::from_secs(2);

/// A connection that stayed up this long earns a fresh, short backoff.
const STABLE_CONNECTION: Duration = Duration::from_secs(5);

/// Where sockets come from: dialled to Asterisk, or accepted from it.
pub(super) enum Source {
    Dial {
        subscribe_all: bool,
        /// Subscribed for every app after each dial (see the builder's `event_sources`).
        event_sources: Vec<String>,
    },
    /// Handshakes done by [`handshake::acceptor`], so one silent peer cannot hold up
    /// Asterisk's connection.
    Accept {
        sockets: mpsc::Receiver<Result<Socket, Error>>,
    },
}

/// Ping period, and how long past an unanswered ping the socket counts as dead.
#[derive(Debug, Clone, Copy)]
pub(super) struct Keepalive {
    pub(super) ping_interval: Duration,
    pub(super) pong_timeout: Duration,
}

pub(super) struct Task {
    /// Dials the events socket (dial mode) and re-reads state after a reconnect (over
    /// HTTP, or over the socket itself for an outbound server, whose Asterisk may not
    /// be reachable over HTTP).
    pub(super) client: Client,
    pub(super) apps: Vec<String>,
    pub(super) source: Source,
    pub(super) keepalive: Keepalive,
    pub(super) backoff: Backoff,
    pub(super) updates: broadcast::Sender<Update>,
    pub(super) cancel: CancellationToken,
    /// REST-over-WebSocket requests: (request id, text).
    pub(super) outgoing: mpsc::Receiver<(String, String)>,
    pub(super) router: Arc<Router>,
    pub(super) rest: RestRoute,
}

fn lost(message: impl Into<String>) -> Error {
    Error::Transport {
        operation: "events".to_owned(),
        message: message.into(),
        delivery: Delivery::Unknown,
        source: None,
    }
}

impl Task {
    fn publish(&self, update: Update) {
        self.router.offer_incoming(&update);
        self.router.dispatch(&update);
        // No subscriber is fine: updates are for whoever listens.
        let _ = self.updates.send(update);
    }

    pub(super) async fn run(mut self, mut ready: Option<oneshot::Sender<Result<(), Error>>>) {
        let mut connected_before = false;
        loop {
            let cancel = self.cancel.clone();
            let attempt = tokio::select! {
                () = cancel.cancelled() => return,
                attempt = self.next_socket() => attempt,
            };
            let socket = match attempt {
                Ok(socket) => socket,
                Err(error) if matches!(self.source, Source::Accept { .. }) => {
                    tracing::warn!(error = %error.chain(), "refused an outbound ARI connection");
                    // Asterisk retries on its own schedule.
                    self.publish(Update::ReconnectFailed {
                        error: Arc::new(error),
                        retry_in: Duration::ZERO,
                    });
                    continue;
                }
                Err(error) => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Err(error));
                        return;
                    }
                    let retry_in = self.backoff.next().unwrap_or(Duration::from_secs(1));
                    tracing::warn!(error = %error.chain(), retry_in_ms = retry_in.as_millis() as u64, "ARI events connection failed");
                    self.publish(Update::ReconnectFailed {
                        error: Arc::new(error),
                        retry_in,
                    });
                    tokio::select! {
                        () = self.cancel.cancelled() => return,
                        () = tokio::time::sleep(retry_in) => continue,
                    }
                }
            };
            // Work tied to this socket (a resync) ends with it.
            let session = self.cancel.child_token();
            if connected_before {
                tracing::warn!("ARI events connection re-established");
                self.publish(Update::Reconnected);
                self.spawn_resync(session.clone());
            } else {
                tracing::info!("ARI events connection established");
                self.publish(Update::Connected);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(Ok(()));
                }
            }
            connected_before = true;
            let up_since = Instant::now();
            let ended = self.read(socket).await;
            session.cancel();
            let Some(error) = ended else {
                return;
            };
            if up_since.elapsed() > STABLE_CONNECTION {
                self.backoff.reset();
            }
            let error = Arc::new(error);
            self.rest.fail_pending(&error);
            if matches!(self.source, Source::Accept { .. }) {
                // Asterisk dials again by itself: just wait for it.
                tracing::warn!(error = %error.chain(), "outbound ARI connection lost; waiting for Asterisk to reconnect");
                self.publish(Update::Disconnected { error });
                continue;
            }
            let delay = self.backoff.next().unwrap_or(Duration::from_secs(1));
            tracing::warn!(error = %error.chain(), retry_in_ms = delay.as_millis() as u64, "ARI events connection lost");
            self.publish(Update::Disconnected { error });
            tokio::select! {
                () = self.cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    async fn next_socket(&mut self) -> Result<Socket, Error> {
        match &mut self.source {
            Source::Dial {
                subscribe_all,
                event_sources,
            } => {
                let socket = handshake::dial(&self.client, &self.apps, *subscribe_all).await?;
                // The apps exist once their socket is open; events of these sources
                // arrive on it from the subscription on.
                if !event_sources.is_empty() {
                    for app in &self.apps {
                        let subscribe = applications::Subscribe::new(app, event_sources.clone());
                        self.client.applications().subscribe(subscribe).await?;
                    }
                }
                Ok(socket)
            }
            Source::Accept { sockets } => match sockets.recv().await {
                Some(socket) => socket,
                // The acceptor only stops when the connection closes.
                None => std::future::pending().await,
            },
        }
    }

    /// Re-reads state until it succeeds or the socket it belongs to is gone (a later
    /// socket starts its own resync; a stale one must not end handles on old data).
    fn spawn_resync(&self, session: CancellationToken) {
        let client = self.client.clone();
        let apps = self.apps.clone();
        let updates = self.updates.clone();
        let router = self.router.clone();
        tokio::spawn(
            async move {
                let mut backoff = Backoff::default();
                loop {
                    let attempt = resync_once(&client, &apps, &router);
                    let failure = tokio::select! {
                        () = session.cancelled() => return,
                        outcome = attempt => match outcome {
                            Ok((update, gone, mark)) => {
                                router.resynced(&update, &gone, mark);
                                let _ = updates.send(update);
                                return;
                            }
                            Err(error) => error,
                        },
                    };
                    let retry_in = backoff.next().unwrap_or(Duration::from_secs(1));
                    tracing::warn!(error = %failure.chain(), retry_in_ms = retry_in.as_millis() as u64, "ARI resync failed");
                    let update = Update::ResyncFailed {
                        error: Arc::new(failure),
                    };
                    router.dispatch(&update);
                    let _ = updates.send(update);
                    tokio::select! {
                        () = session.cancelled() => return,
                        () = tokio::time::sleep(retry_in) => {}
                    }
                }
            }
            .in_current_span(),
        );
    }

    /// Reads until the socket fails (returns why) or the connection is closed (`None`).
    async fn read(&mut self, socket: Socket) -> Option<Error> {
        let (mut sink, mut stream) = socket.split();
        let Keepalive {
            ping_interval,
            pong_timeout,
        } = self.keepalive;
        let mut ticker = tokio::time::interval(ping_interval);
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
                        None => return Some(lost("Asterisk closed the connection")),
                        Some(Err(error)) => {
                            return Some(Error::transport("events", "reading the events socket failed", Delivery::Unknown, error));
                        }
                        Some(Ok(Message::Text(text))) => self.dispatch(text.as_str()),
                        Some(Ok(Message::Binary(bytes))) => self.publish(Update::Undecodable {
                            error: "a binary frame on the events socket".to_owned(),
                            raw: String::from_utf8_lossy(&bytes).into_owned(),
                        }),
                        Some(Ok(Message::Close(frame))) => {
                            return Some(lost(match frame {
                                Some(frame) => format!("Asterisk closed the connection ({} {})", frame.code, frame.reason),
                                None => "Asterisk closed the connection".to_owned(),
                            }));
                        }
                        Some(Ok(_)) => {}
                    }
                }
                _ = ticker.tick(), if may_write => {
                    if last_heard.elapsed() > ping_interval + pong_timeout {
                        return Some(lost(format!("no answer to pings for {:?}: the connection is half-open", last_heard.elapsed())));
                    }
                    if let Some(error) = send(&mut sink, Message::Ping(Vec::new().into()), pong_timeout).await {
                        return Some(error);
                    }
                }
                Some((request_id, text)) = self.outgoing.recv(), if may_write => {
                    // A request whose caller gave up (time-out, dropped) is not sent late.
                    if !self.rest.claim_for_writing(&request_id) {
                        continue;
                    }
                    if let Some(error) = send(&mut sink, Message::text(text), pong_timeout).await {
                        return Some(error);
                    }
                }
            }
        }
    }

    fn dispatch(&self, text: &str) {
        let update = match Event::from_json_str(text) {
            Ok(event) => {
                if let Event::RESTResponse(response) = &event {
                    self.rest.answer(response);
                }
                Update::Event(Arc::new(event))
            }
            Err(error) => {
                tracing::warn!(%error, "undecodable ARI event");
                let error = error.to_string();
                self.rest.undecodable(text, &error);
                Update::Undecodable {
                    error,
                    raw: text.to_owned(),
                }
            }
        };
        self.publish(update);
    }
}

/// One resync: the lists, then a single GET for each object that seems gone. Returns the
/// `Resynced` update, the objects confirmed gone, and the subscription mark it judged.
async fn resync_once(
    client: &Client,
    apps: &[String],
    router: &Router,
) -> Result<(Update, Vec<crate::router::Object>, u64), Error> {
    // Handles made from here on may follow objects created after the lists are read.
    let mark = router.mark();
    let (playbacks, recordings) = router.followed_playbacks_and_recordings();
    let (snapshot, live) = resync(client, apps, playbacks, recordings).await?;
    let gone = confirm_gone(client, router.absent(&live, mark)).await?;
    Ok((Update::Resynced(Arc::new(snapshot)), gone, mark))
}

async fn send(
    sink: &mut SplitSink<Socket, Message>,
    message: Message,
    within: Duration,
) -> Option<Error> {
    match tokio::time::timeout(within, sink.send(message)).await {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(Error::transport(
            "events",
            "writing to the events socket failed",
            Delivery::Unknown,
            error,
        )),
        Err(_) => Some(lost(format!("a write did not complete within {within:?}"))),
    }
}
