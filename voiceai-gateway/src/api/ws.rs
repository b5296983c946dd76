//! The live event WebSockets.
//!
//! - `/ws/frontend`: `call_started`, `call_answered`, `call_ended`, `dtmf`, `transcript`
//!   and `backend_state` of every call; a client sends `{"type":"join_call","callId":...}`
//!   to also receive that call's detail events (`media_stats` every second) and
//!   `{"type":"leave_call","callId":...}` to stop. Each is answered
//!   `{"type":"ack","action":"join_call","callId":...}`.
//! - `/ws/monitor`: every event of every call, and the gateway's `stats` every second
//!   (with `"asterisk"`: the ARI connection, each server's in `servers`, and whether calls
//!   are taken).
//!
//! Both first send `{"type":"connected","client":...,"activeCalls":[...]}` (the monitor's
//! also has `endedCalls`, the recently ended calls, and `asterisk`), and answer
//! `{"type":"ping"}` with `{"type":"pong"}`. Each client has a bounded queue: one that
//! falls behind (its queue is full, or the event bus moved past it) is closed with code
//! 1008 and a reason saying it was too slow; publishing never waits for it. The server
//! pings every [`super::ApiConfig::ws_ping_interval`] and closes a client silent for two
//! intervals.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior, timeout};

use super::{AppState, WsShutdown};
use crate::calls::CallSnapshot;
use crate::events::{EventKind, MonitorEvent, timestamp};

/// The largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// Calls one frontend client may join.
const MAX_JOINED: usize = 64;
/// How long one send to a client may take before the client is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing client has to answer the close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Close code for a client that was too slow or misbehaved (policy violation).
const CLOSE_POLICY: u16 = 1008;
/// Close code for the server going away (shutdown, idle client).
const CLOSE_GOING_AWAY: u16 = 1001;

/// Which socket a client connected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Frontend,
    Monitor,
}

impl Role {
    const fn name(self) -> &'static str {
        match self {
            Self::Frontend => "frontend",
            Self::Monitor => "monitor",
        }
    }
}

/// `GET /ws/frontend`.
#[utoipa::path(
    get,
    path = "/ws/frontend",
    tag = "events",
    summary = "WebSocket: call events for a frontend",
    description = "A WebSocket (upgrade). Sends `connected` (with the active calls), then \
        `call_started`, `call_answered`, `call_ended`, `dtmf`, `transcript` and \
        `backend_state` of every call as JSON text messages. Send \
        `{\"type\":\"join_call\",\"callId\":...}` to also get that call's detail events \
        (`media_stats` every second), `leave_call` to stop, `ping` for a `pong`. The token \
        goes in `Authorization: Bearer` or the `token` query parameter (browsers).",
    security(("bearer" = [])),
    params(("token" = Option<String>, Query, description = "The API token, when the client cannot send headers")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request"),
        (status = 401, description = "No or a wrong token", body = super::ErrorReply),
    )
)]
pub(crate) async fn frontend(
    upgrade: WebSocketUpgrade,
    State(state): State<AppState>,
    shutdown: Option<Extension<WsShutdown>>,
) -> Response {
    accept(upgrade, state, shutdown, Role::Frontend)
}

/// `GET /ws/monitor`.
#[utoipa::path(
    get,
    path = "/ws/monitor",
    tag = "events",
    summary = "WebSocket: every event of every call, and the gateway's stats",
    description = "A WebSocket (upgrade). Sends `connected` (with the active calls), then \
        every event of every call (including `media_stats`) and the gateway's `stats` \
        every second, as JSON text messages; answers `ping` with `pong`. The live monitor \
        page (`GET /`) reads it. Token as for `/ws/frontend`.",
    security(("bearer" = [])),
    params(("token" = Option<String>, Query, description = "The API token, when the client cannot send headers")),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request"),
        (status = 401, description = "No or a wrong token", body = super::ErrorReply),
    )
)]
pub(crate) async fn monitor(
    upgrade: WebSocketUpgrade,
    State(state): State<AppState>,
    shutdown: Option<Extension<WsShutdown>>,
) -> Response {
    accept(upgrade, state, shutdown, Role::Monitor)
}

fn accept(
    upgrade: WebSocketUpgrade,
    state: AppState,
    shutdown: Option<Extension<WsShutdown>>,
    role: Role,
) -> Response {
    // Subscribed before the upgrade is answered: the client sees every event published
    // once its handshake is done.
    let events = state.calls.events().subscribe();
    let shutdown = shutdown.map(|Extension(shutdown)| shutdown);
    upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_failed_upgrade(move |error| {
            tracing::debug!(%error, client = role.name(), "WebSocket upgrade failed");
        })
        .on_upgrade(move |socket| async move {
            tracing::debug!(client = role.name(), "WebSocket client connected");
            let _counted = state.calls.metrics().ws_client(role.name());
            Client::new(state, role, events, shutdown).run(socket).await;
            tracing::debug!(client = role.name(), "WebSocket client gone");
        })
}

/// What a client may send.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    call_id: Option<String>,
}

/// The first message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Connected<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    client: &'static str,
    active_calls: &'a [CallSnapshot],
    /// Monitor only: the recently ended calls, oldest first (the page's "last ended").
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_calls: Option<&'a [CallSnapshot]>,
    /// Monitor only: the ARI connection now (later ones come with each `stats`).
    #[serde(skip_serializing_if = "Option::is_none")]
    asterisk: Option<AsteriskState>,
    timestamp: String,
}

/// The ARI connection as monitor clients see it, in `connected` and in each `stats`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AsteriskState {
    connected: bool,
    host: String,
    ari_port: u16,
    app_name: String,
    asterisk_version: Option<String>,
    /// Whether the gateway takes new calls (connected and not draining).
    accepting_calls: bool,
    /// Each server's connection (the fields above describe the first, or all).
    servers: Vec<ServerState>,
}

/// One Asterisk server's connection, in [`AsteriskState`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ServerState {
    name: String,
    host: String,
    ari_port: u16,
    app_name: String,
    connected: bool,
    asterisk_version: Option<String>,
}

impl AsteriskState {
    fn now(state: &AppState) -> Self {
        let ari = state.control.ari();
        let servers = state
            .control
            .ari_servers()
            .into_iter()
            .map(|server| ServerState {
                name: server.name,
                host: server.host,
                ari_port: server.ari_port,
                app_name: server.app_name,
                connected: server.connected,
                asterisk_version: server.asterisk_version,
            })
            .collect();
        Self {
            accepting_calls: ari.connected && state.control.accepting_calls(),
            connected: ari.connected,
            host: ari.host,
            ari_port: ari.ari_port,
            app_name: ari.app_name,
            asterisk_version: ari.asterisk_version,
            servers,
        }
    }
}

/// `stats` as monitor clients get it: the bus's message with the ARI connection added
/// as `"asterisk"` (the bus's `stats` comes from the registry, which does not know ARI).
/// `None` when `json` is not an object.
fn stats_with_asterisk(json: &str, asterisk: &AsteriskState) -> Option<String> {
    let body = json.trim_end().strip_suffix('}')?;
    let asterisk = serde_json::to_string(asterisk).ok()?;
    let separator = if body.trim_end().ends_with('{') {
        ""
    } else {
        ","
    };
    Some(format!("{body}{separator}\"asterisk\":{asterisk}}}"))
}

/// The answer to `join_call` / `leave_call`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Ack<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    action: &'a str,
    call_id: &'a str,
    /// Whether the registry knows the call (active or recently ended).
    known: bool,
    timestamp: String,
}

/// `pong` and `error`.
#[derive(Debug, Serialize)]
struct Notice<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
    timestamp: String,
}

fn json(value: &impl Serialize) -> String {
    // Our own types always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

/// Why a client is closed: its code and reason.
type Closing = (u16, String);

/// What the client loop does next.
enum Step {
    /// Go on.
    Go,
    /// The client went away (or its writer did).
    Gone,
    /// The client sent a close frame (answered by the writer).
    ClientClosed,
    /// Close the client with this code and reason.
    Close(Closing),
}

/// One client: the events it gets and the calls it joined.
struct Client {
    state: AppState,
    role: Role,
    events: broadcast::Receiver<Arc<MonitorEvent>>,
    shutdown: Option<WsShutdown>,
    joined: HashSet<String>,
}

impl Client {
    fn new(
        state: AppState,
        role: Role,
        events: broadcast::Receiver<Arc<MonitorEvent>>,
        shutdown: Option<WsShutdown>,
    ) -> Self {
        Self {
            state,
            role,
            events,
            shutdown,
            joined: HashSet::new(),
        }
    }

    fn wants(&self, event: &MonitorEvent) -> bool {
        match self.role {
            Role::Monitor => true,
            Role::Frontend => match event.kind {
                EventKind::Stats => false,
                kind if kind.is_detail() => event
                    .call_id
                    .as_deref()
                    .is_some_and(|call_id| self.joined.contains(call_id)),
                _ => true,
            },
        }
    }

    async fn run(mut self, socket: WebSocket) {
        let (sink, mut stream) = socket.split();
        let config = self.state.config.clone();
        let (queue, queued) = mpsc::channel::<Message>(config.ws_queue.max(1));
        let (close, close_requested) = oneshot::channel::<Closing>();
        let ping_interval = config.ws_ping_interval.max(Duration::from_millis(10));
        let writer = tokio::spawn(write(sink, queued, close_requested, ping_interval));
        // The shutdown handle (if any) lives as long as this client, so `serve` can wait
        // for the close frames.
        let mut closing = self
            .shutdown
            .as_ref()
            .map(|shutdown| shutdown.closing.clone());

        let active = self.state.calls.active();
        let monitor = self.role == Role::Monitor;
        let ended = monitor.then(|| self.state.calls.ended());
        let hello = json(&Connected {
            kind: "connected",
            client: self.role.name(),
            active_calls: &active,
            ended_calls: ended.as_deref(),
            asterisk: monitor.then(|| AsteriskState::now(&self.state)),
            timestamp: timestamp(SystemTime::now()),
        });
        let mut step = self.offer(&queue, hello);

        let mut last_heard = Instant::now();
        let mut idle_check = tokio::time::interval(ping_interval);
        idle_check.set_missed_tick_behavior(MissedTickBehavior::Delay);

        while let Step::Go = step {
            step = tokio::select! {
                () = shutting_down(&mut closing) => {
                    // What happened before the shutdown still reaches the client (the
                    // drained calls' `call_ended`): `select!` may pick this branch first.
                    let mut step = Step::Go;
                    while let (Step::Go, Ok(event)) = (&step, self.events.try_recv()) {
                        if self.wants(&event) {
                            step = self.offer(&queue, event.json.as_ref());
                        }
                    }
                    match step {
                        Step::Go => {
                            Step::Close((CLOSE_GOING_AWAY, "server shutting down".to_owned()))
                        }
                        other => other,
                    }
                }
                event = self.events.recv() => match event {
                    Ok(event) if self.role == Role::Monitor && event.kind == EventKind::Stats => {
                        let asterisk = AsteriskState::now(&self.state);
                        match stats_with_asterisk(&event.json, &asterisk) {
                            Some(stats) => self.offer(&queue, stats),
                            None => self.offer(&queue, event.json.as_ref()),
                        }
                    }
                    Ok(event) if self.wants(&event) => self.offer(&queue, event.json.as_ref()),
                    Ok(_) => Step::Go,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        Step::Close(self.too_slow(&format!("{missed} events missed")))
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        Step::Close((CLOSE_GOING_AWAY, "server shutting down".to_owned()))
                    }
                },
                message = stream.next() => match message {
                    None | Some(Err(_)) => Step::Gone,
                    Some(Ok(message)) => {
                        last_heard = Instant::now();
                        match message {
                            Message::Text(text) => match self.answer(&text) {
                                Some(reply) => self.offer(&queue, reply),
                                None => Step::Go,
                            },
                            Message::Close(_) => Step::ClientClosed,
                            Message::Binary(_) => Step::Close((
                                CLOSE_POLICY,
                                "binary messages are not accepted".to_owned(),
                            )),
                            Message::Ping(_) | Message::Pong(_) => Step::Go,
                        }
                    }
                },
                _ = idle_check.tick() => {
                    if last_heard.elapsed() > ping_interval * 2 {
                        Step::Close((CLOSE_GOING_AWAY, "no answer to pings: client idle".to_owned()))
                    } else {
                        Step::Go
                    }
                }
            };
        }

        // No more events for this client: the bus forgets it at once.
        drop(self.events);
        if let Step::Close(verdict) = step {
            let _ = close.send(verdict);
            drop(queue);
            // The closing handshake: read until the client answers (or gives up), so that
            // what it still has to read is not lost to a reset.
            let _ = timeout(CLOSE_WAIT, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        } else {
            drop(close);
            drop(queue);
        }
        let _ = timeout(SEND_TIMEOUT + CLOSE_WAIT, writer).await;
    }

    /// Queues `text` for the client; a full queue means the client is too slow.
    fn offer(&self, queue: &mpsc::Sender<Message>, text: impl Into<Utf8Bytes>) -> Step {
        match queue.try_send(Message::Text(text.into())) {
            Ok(()) => Step::Go,
            Err(mpsc::error::TrySendError::Full(_)) => {
                Step::Close(self.too_slow("its queue of events is full"))
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Step::Gone,
        }
    }

    fn too_slow(&self, why: &str) -> Closing {
        tracing::info!(
            client = self.role.name(),
            why,
            "WebSocket client dropped: too slow"
        );
        (CLOSE_POLICY, format!("client too slow: {why}"))
    }

    /// The answer to a client's text message, if any.
    fn answer(&mut self, text: &str) -> Option<String> {
        let now = || timestamp(SystemTime::now());
        let error = |message: &str| {
            Some(json(&Notice {
                kind: "error",
                message: Some(message),
                timestamp: now(),
            }))
        };
        let message: ClientMessage = match serde_json::from_str(text) {
            Ok(message) => message,
            Err(_) => {
                return error(
                    "messages are JSON objects with a \"type\": join_call, leave_call or ping",
                );
            }
        };
        match message.kind.as_str() {
            "ping" => Some(json(&Notice {
                kind: "pong",
                message: None,
                timestamp: now(),
            })),
            action @ ("join_call" | "leave_call") => {
                let Some(call_id) = message
                    .call_id
                    .filter(|id| !id.is_empty() && id.len() <= 128)
                else {
                    return error(&format!("{action} needs a \"callId\""));
                };
                if action == "join_call" {
                    if self.joined.len() >= MAX_JOINED && !self.joined.contains(&call_id) {
                        return error(&format!("at most {MAX_JOINED} calls can be joined"));
                    }
                    self.joined.insert(call_id.clone());
                } else {
                    self.joined.remove(&call_id);
                }
                Some(json(&Ack {
                    kind: "ack",
                    action,
                    known: self.state.calls.get(&call_id).is_some(),
                    call_id: &call_id,
                    timestamp: now(),
                }))
            }
            _ => error("unknown message type: expected join_call, leave_call or ping"),
        }
    }
}

/// Completes when the server shuts down; never without a shutdown handle.
async fn shutting_down(closing: &mut Option<watch::Receiver<bool>>) {
    match closing {
        Some(closing) => {
            // A dropped sender is a shutdown too.
            let _ = closing.wait_for(|closing| *closing).await;
        }
        None => std::future::pending().await,
    }
}

/// Sends the queued messages and pings; on a close request, drops what is queued and sends
/// the close frame. Every send has a deadline: a client that does not read is dropped.
async fn write(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Message>,
    mut close_requested: oneshot::Receiver<Closing>,
    ping_interval: Duration,
) {
    let mut ping = tokio::time::interval_at(Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let message = tokio::select! {
            biased;
            closing = &mut close_requested => {
                match closing {
                    Ok((code, reason)) => {
                        if code == CLOSE_GOING_AWAY {
                            // Going away (shutdown): what is queued goes out first, e.g. the
                            // drained calls' `call_ended` (bounded; a slow client is not
                            // waited for).
                            let _ = timeout(CLOSE_WAIT, async {
                                while let Ok(message) = queued.try_recv() {
                                    if sink.send(message).await.is_err() {
                                        break;
                                    }
                                }
                            })
                            .await;
                        }
                        let frame = CloseFrame { code, reason: reason.into() };
                        let _ = timeout(SEND_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
                    }
                    // No verdict: the client went away or closed; finish the handshake.
                    Err(_) => {
                        let _ = timeout(CLOSE_WAIT, sink.close()).await;
                    }
                }
                return;
            }
            message = queued.recv() => match message {
                Some(message) => message,
                None => {
                    let _ = timeout(CLOSE_WAIT, sink.close()).await;
                    return;
                }
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        match timeout(SEND_TIMEOUT, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asterisk() -> AsteriskState {
        AsteriskState {
            connected: true,
            host: "127.0.0.1".to_owned(),
            ari_port: 8088,
            app_name: "voiceai".to_owned(),
            asterisk_version: None,
            accepting_calls: false,
            servers: vec![ServerState {
                name: "lab".to_owned(),
                host: "127.0.0.1".to_owned(),
                ari_port: 8088,
                app_name: "voiceai".to_owned(),
                connected: true,
                asterisk_version: None,
            }],
        }
    }

    #[test]
    fn stats_keep_their_fields_and_gain_the_ari_connection() {
        let stats = r#"{"type":"stats","activeCalls":2,"timestamp":"2026-01-01T00:00:00.000Z"}"#;
        let joined = stats_with_asterisk(stats, &asterisk()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&joined).unwrap();
        assert_eq!(value["type"], "stats");
        assert_eq!(value["activeCalls"], 2);
        assert_eq!(value["timestamp"], "2026-01-01T00:00:00.000Z");
        assert_eq!(value["asterisk"]["connected"], true);
        assert_eq!(value["asterisk"]["ariPort"], 8088);
        assert_eq!(value["asterisk"]["acceptingCalls"], false);
        assert_eq!(value["asterisk"]["servers"][0]["name"], "lab");
        assert_eq!(value["asterisk"]["servers"][0]["connected"], true);
        let empty = stats_with_asterisk("{}", &asterisk()).unwrap();
        let value: serde_json::Value = serde_json::from_str(&empty).unwrap();
        assert_eq!(value["asterisk"]["appName"], "voiceai");
        assert_eq!(stats_with_asterisk("[1]", &asterisk()), None);
    }
}
