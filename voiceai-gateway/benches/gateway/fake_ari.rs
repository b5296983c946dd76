//! A minimal Asterisk for the synthetic run: ARI over HTTP and the events WebSocket, on
//! 127.0.0.1, answering exactly what the gateway asks for a call.
//!
//! Requests answered (everything else is counted as unexpected and answered 404):
//! `GET /ari/events` (WebSocket), `GET /ari/asterisk/info`, `POST
//! /ari/channels/{id}/answer`, `POST /ari/bridges` (with `bridgeId`), `POST
//! /ari/bridges/{id}/addChannel|removeChannel`, `POST /ari/channels/externalMedia`
//! (AudioSocket: the fake then connects to `external_host` with the UUID from `data`, see
//! [`crate::fake_media`]), `GET /ari/channels/{id}/variable` (404: no variable is set),
//! `POST /ari/channels/{id}/variable`, `DELETE /ari/channels/{id}` (StasisEnd and
//! ChannelDestroyed follow; 404 once gone), `POST /ari/channels/{id}/continue`,
//! `DELETE /ari/bridges/{id}` (BridgeDestroyed follows), `POST|DELETE
//! /ari/bridges/{id}/moh`, `POST|DELETE /ari/applications/{app}/subscription` (the
//! client subscribes its app to each bridge it creates), `GET /ari/channels` and `GET
//! /ari/bridges` (empty lists, for a resync).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use voiceai_gateway::audio::AudioFormat;
use voiceai_gateway::audiosocket::CallUuid;

use crate::fake_media::{self, MediaContext, MediaSpec};

const TIMESTAMP: &str = "2026-01-01T00:00:00.000+0000";

/// What the fake has seen, for the report.
#[derive(Debug, Default)]
pub(crate) struct AriCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) bridges_created: AtomicU64,
    pub(crate) bridges_destroyed: AtomicU64,
    pub(crate) media_created: AtomicU64,
    pub(crate) continued: AtomicU64,
    pub(crate) unexpected: AtomicU64,
}

/// The fake Asterisk's state.
pub(crate) struct FakeAri {
    app: String,
    events: Mutex<Option<mpsc::UnboundedSender<String>>>,
    connected: watch::Sender<bool>,
    gone: Mutex<HashSet<String>>,
    next_stream: AtomicU32,
    pub(crate) counters: AriCounters,
    unexpected: Mutex<Vec<String>>,
    media: Arc<MediaContext>,
}

/// The caller channel id of synthetic call `index`.
pub(crate) fn caller_id(index: usize) -> String {
    format!("bench-caller-{index}")
}

fn channel(id: &str, name: &str, state: &str, caller: &str, exten: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "state": state,
        "protocol_id": "",
        "caller": {"name": "", "number": caller},
        "connected": {"name": "", "number": ""},
        "accountcode": "",
        "dialplan": {"context": "inbound", "exten": exten, "priority": 3, "app_name": "Stasis", "app_data": ""},
        "creationtime": TIMESTAMP,
        "language": "en"
    })
}

impl FakeAri {
    pub(crate) fn new(app: &str, media: Arc<MediaContext>) -> Arc<Self> {
        Arc::new(Self {
            app: app.to_owned(),
            events: Mutex::new(None),
            connected: watch::channel(false).0,
            gone: Mutex::new(HashSet::new()),
            next_stream: AtomicU32::new(0),
            counters: AriCounters::default(),
            unexpected: Mutex::new(Vec::new()),
            media,
        })
    }

    /// Serves on a free port of 127.0.0.1; returns the address.
    pub(crate) async fn serve(self: &Arc<Self>) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let router = Router::new()
            .route("/ari/events", get(events))
            .fallback(request)
            .with_state(self.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, router).await {
                eprintln!("fake ARI: {error}");
            }
        });
        Ok(address)
    }

    /// Changes of the events socket's state.
    pub(crate) fn connected(&self) -> watch::Receiver<bool> {
        self.connected.subscribe()
    }

    /// Requests the fake could not answer (the first few).
    pub(crate) fn unexpected(&self) -> Vec<String> {
        self.unexpected
            .lock()
            .map(|u| u.clone())
            .unwrap_or_default()
    }

    fn emit(&self, event: Value) {
        if let Ok(events) = self.events.lock() {
            if let Some(events) = events.as_ref() {
                let _ = events.send(event.to_string());
            }
        }
    }

    fn stasis_start(&self, channel: Value, args: &[&str]) -> Value {
        json!({"type": "StasisStart", "application": self.app, "timestamp": TIMESTAMP, "args": args, "channel": channel})
    }

    fn ended(&self, id: &str) {
        let channel = channel(id, id, "Up", "", "");
        self.emit(json!({"type": "StasisEnd", "application": self.app, "timestamp": TIMESTAMP, "channel": channel}));
        self.emit(
            json!({"type": "ChannelDestroyed", "application": self.app, "timestamp": TIMESTAMP,
            "cause": 16, "cause_txt": "Normal Clearing", "channel": channel}),
        );
    }

    /// A caller enters the app (dialled `exten`, calling from `caller`).
    pub(crate) fn call_in(&self, index: usize, exten: &str, caller: &str) {
        let id = caller_id(index);
        let channel = channel(
            &id,
            &format!("PJSIP/bench-{index:08}"),
            "Ring",
            caller,
            exten,
        );
        self.emit(self.stasis_start(channel, &[exten, caller]));
    }

    /// The caller hangs up (unless gone already).
    pub(crate) fn hang_up(&self, index: usize) {
        let id = caller_id(index);
        let fresh = self
            .gone
            .lock()
            .map(|mut g| g.insert(id.clone()))
            .unwrap_or(false);
        if fresh {
            self.ended(&id);
        }
    }

    /// Checks that the events the fake writes decode as the client decodes them.
    pub(crate) fn self_check(&self) -> Result<(), String> {
        let channel = channel("x", "PJSIP/x", "Ring", "1", "2");
        for event in [
            self.stasis_start(channel.clone(), &["2", "1"]),
            json!({"type": "StasisEnd", "application": self.app, "timestamp": TIMESTAMP, "channel": channel}),
            json!({"type": "ChannelDestroyed", "application": self.app, "timestamp": TIMESTAMP,
                "cause": 16, "cause_txt": "Normal Clearing", "channel": channel}),
            json!({"type": "BridgeDestroyed", "application": self.app, "timestamp": TIMESTAMP,
                "bridge": bridge("b")}),
        ] {
            match ari_client::model::Event::from_json_str(&event.to_string()) {
                Ok(ari_client::model::Event::Unknown { .. }) | Err(_) => {
                    return Err(format!("the fake's event does not decode: {event}"));
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    fn note_unexpected(&self, what: String) {
        self.counters.unexpected.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut list) = self.unexpected.lock() {
            if list.len() < 20 {
                list.push(what);
            }
        }
    }

    fn external_media(&self, query: &[(String, String)]) -> Response {
        let get = |name: &str| {
            query
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        let (Some(id), Some(host), Some(data)) =
            (get("channelId"), get("external_host"), get("data"))
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "channelId, external_host and data are required",
            );
        };
        let (Ok(host), Ok(uuid)) = (host.parse::<SocketAddr>(), data.parse::<CallUuid>()) else {
            return error(StatusCode::BAD_REQUEST, "bad external_host or data");
        };
        if get("encapsulation") != Some("audiosocket") {
            return error(StatusCode::BAD_REQUEST, "the fake speaks AudioSocket only");
        }
        let format = match get("format") {
            Some("slin") => AudioFormat::Slin,
            other => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("the fake streams slin only, not {other:?}"),
                );
            }
        };
        self.counters.media_created.fetch_add(1, Ordering::Relaxed);
        let stream = self.next_stream.fetch_add(1, Ordering::Relaxed);
        let channel = channel(id, &format!("AudioSocket/{host}-{uuid}"), "Up", "", "");
        // Asterisk connects while it creates the channel; StasisStart follows.
        tokio::spawn(fake_media::run(
            MediaSpec {
                host,
                uuid,
                stream,
                format,
            },
            self.media.clone(),
        ));
        self.emit(self.stasis_start(channel.clone(), &[]));
        axum::Json(channel).into_response()
    }
}

fn bridge(id: &str) -> Value {
    json!({
        "id": id, "technology": "simple_bridge", "bridge_type": "mixing",
        "bridge_class": "stasis", "creator": "Stasis", "name": "", "channels": [],
        "creationtime": TIMESTAMP
    })
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"message": message}))).into_response()
}

fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query_of(uri: &Uri) -> Vec<(String, String)> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

async fn events(State(ari): State<Arc<FakeAri>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |socket| run_events(ari, socket))
}

async fn run_events(ari: Arc<FakeAri>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let (sender, mut outgoing) = mpsc::unbounded_channel::<String>();
    if let Ok(mut events) = ari.events.lock() {
        *events = Some(sender);
    }
    ari.connected.send_replace(true);
    let writer = tokio::spawn(async move {
        while let Some(text) = outgoing.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                return;
            }
        }
    });
    // Reading answers the client's pings.
    while let Some(Ok(message)) = stream.next().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
    ari.connected.send_replace(false);
    writer.abort();
}

async fn request(State(ari): State<Arc<FakeAri>>, method: Method, uri: Uri) -> Response {
    ari.counters.requests.fetch_add(1, Ordering::Relaxed);
    let path = uri
        .path()
        .strip_prefix("/ari")
        .unwrap_or(uri.path())
        .to_owned();
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let query = query_of(&uri);
    match (&method, segments.as_slice()) {
        (&Method::GET, ["asterisk", "info"]) => axum::Json(json!({
            "system": {"version": "22.0.0-bench-fake", "entity_id": "00:00:00:00:00:00"}
        }))
        .into_response(),
        (&Method::GET, ["channels"]) | (&Method::GET, ["bridges"]) => {
            axum::Json(json!([])).into_response()
        }
        (&Method::POST, ["channels", "externalMedia"]) => ari.external_media(&query),
        (&Method::POST, ["channels", _, "answer"]) => {
            ari.counters.answered.fetch_add(1, Ordering::Relaxed);
            no_content()
        }
        (&Method::GET, ["channels", _, "variable"]) => {
            error(StatusCode::NOT_FOUND, "Provided variable was not found")
        }
        (&Method::POST, ["channels", _, "variable"]) => no_content(),
        (&Method::POST, ["channels", id, "continue"]) => {
            ari.counters.continued.fetch_add(1, Ordering::Relaxed);
            let id = (*id).to_owned();
            if let Ok(mut gone) = ari.gone.lock() {
                gone.insert(id.clone());
            }
            let channel = channel(&id, &id, "Ring", "", "");
            ari.emit(json!({"type": "StasisEnd", "application": ari.app, "timestamp": TIMESTAMP, "channel": channel}));
            no_content()
        }
        (&Method::DELETE, ["channels", id]) => {
            let id = (*id).to_owned();
            let fresh = ari
                .gone
                .lock()
                .map(|mut gone| gone.insert(id.clone()))
                .unwrap_or(false);
            if fresh {
                ari.ended(&id);
                no_content()
            } else {
                error(StatusCode::NOT_FOUND, "Channel not found")
            }
        }
        (&Method::POST, ["bridges"]) => {
            let Some((_, id)) = query.iter().find(|(k, _)| k == "bridgeId") else {
                return error(StatusCode::BAD_REQUEST, "the fake wants a bridgeId");
            };
            ari.counters.bridges_created.fetch_add(1, Ordering::Relaxed);
            axum::Json(bridge(id)).into_response()
        }
        (&Method::POST, ["bridges", _, "addChannel" | "removeChannel"]) => no_content(),
        (&Method::POST | &Method::DELETE, ["bridges", _, "moh"]) => no_content(),
        (&Method::DELETE, ["bridges", id]) => {
            ari.counters
                .bridges_destroyed
                .fetch_add(1, Ordering::Relaxed);
            ari.emit(json!({"type": "BridgeDestroyed", "application": ari.app,
                "timestamp": TIMESTAMP, "bridge": bridge(id)}));
            no_content()
        }
        (&Method::POST | &Method::DELETE, ["applications", name, "subscription"]) => {
            axum::Json(json!({
                "name": name, "channel_ids": [], "bridge_ids": [], "endpoint_ids": [],
                "device_names": [], "events_allowed": [], "events_disallowed": []
            }))
            .into_response()
        }
        _ => {
            ari.note_unexpected(format!("{method} {uri}"));
            error(
                StatusCode::NOT_FOUND,
                "the bench's fake Asterisk does not do this",
            )
        }
    }
}
