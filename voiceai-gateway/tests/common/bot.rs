//! An AI backend for tests: a WebSocket server on 127.0.0.1 that speaks Twilio Media
//! Streams or the raw protocol, records everything each connection brings, and behaves as
//! each test tells it (echo, bursts of tone, marks, clear, transcripts, normal close,
//! abrupt abort, refusing or no longer listening).
//!
//! ```ignore
//! let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
//! // run the gateway with --backend-url bot.url("/bot") ...
//! let conn = bot.wait_for_connection(WAIT).await.unwrap();
//! conn.wait_frames(50, WAIT).await.unwrap();
//! conn.send(Action::Mark("m1".into())).unwrap();
//! conn.wait_mark("m1", WAIT).await.unwrap();
//! ```
//!
//! Every wait takes how long it may wait and fails with a summary of what the connection
//! saw so far.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use voiceai_gateway::audio::AudioFormat;
use voiceai_gateway::audio::codec::{
    alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear,
};
use voiceai_gateway::protocol::ProtocolKind;

/// Something the bot does on a connection.
#[derive(Debug, Clone)]
pub enum Action {
    /// `duration` of a sine tone of `frequency` Hz, sent at once (a burst), in messages of
    /// `chunk` audio each (20 ms: one frame a message; `duration`: one message).
    Tone {
        /// Hz.
        frequency: f64,
        /// How much audio in all.
        duration: Duration,
        /// How much audio per message.
        chunk: Duration,
    },
    /// Audio bytes in the connection's format (μ-law for Twilio), as one message.
    Audio(Vec<u8>),
    /// A `mark` with this name.
    Mark(String),
    /// A `clear` (barge-in).
    Clear,
    /// A transcript message: the JSON as given, as a text frame.
    Transcript(Value),
    /// Any text frame.
    Text(String),
    /// Raw protocol `hangup`.
    Hangup(Option<String>),
    /// Raw protocol `transfer`.
    Transfer {
        /// The extension.
        extension: String,
        /// The context, when given.
        context: Option<String>,
    },
    /// A close frame with this code (1000: the bot ended the conversation), then the
    /// socket closes.
    Close(u16),
    /// Drop the TCP connection at once (RST, no close frame), as a crashed bot does.
    Abort,
}

impl Action {
    /// `seconds` of a tone of `frequency` Hz, all at once in 20 ms messages.
    pub fn tone(frequency: f64, duration: Duration) -> Action {
        Action::Tone {
            frequency,
            duration,
            chunk: Duration::from_millis(20),
        }
    }

    /// A transcript as the seed's backend sends it.
    pub fn transcript(speaker: &str, text: &str) -> Action {
        Action::Transcript(json!({"event": "transcript", "speaker": speaker, "text": text}))
    }
}

/// What the bot does by itself on each new connection.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Send every inbound audio frame back as it came.
    pub echo: bool,
    /// Actions once the opening (`start`) has arrived.
    pub on_start: Vec<Action>,
    /// Actions once this many inbound audio frames have arrived.
    pub after_frames: Option<(usize, Vec<Action>)>,
    /// Actions after each DTMF digit.
    pub on_dtmf: Vec<Action>,
    /// Actions when a mark comes back from the gateway.
    pub on_mark: Vec<Action>,
}

impl Behaviour {
    /// Records only; sends nothing by itself.
    pub fn silent() -> Behaviour {
        Behaviour::default()
    }

    /// Echoes every inbound frame.
    pub fn echo() -> Behaviour {
        Behaviour {
            echo: true,
            ..Behaviour::default()
        }
    }

    /// Adds actions to do once `start` has arrived.
    pub fn on_start(mut self, actions: impl IntoIterator<Item = Action>) -> Behaviour {
        self.on_start.extend(actions);
        self
    }

    /// Sets actions to do once `frames` inbound frames have arrived.
    pub fn after_frames(
        mut self,
        frames: usize,
        actions: impl IntoIterator<Item = Action>,
    ) -> Behaviour {
        self.after_frames = Some((frames, actions.into_iter().collect()));
        self
    }

    /// Sets actions to do after each DTMF digit.
    pub fn on_dtmf(mut self, actions: impl IntoIterator<Item = Action>) -> Behaviour {
        self.on_dtmf = actions.into_iter().collect();
        self
    }

    /// Sets actions to do when a mark comes back.
    pub fn on_mark(mut self, actions: impl IntoIterator<Item = Action>) -> Behaviour {
        self.on_mark = actions.into_iter().collect();
        self
    }
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// The gateway sent a close frame with this code and reason.
    ByPeer(u16, String),
    /// The connection ended without a close frame (reset, EOF, error).
    Abnormal(String),
    /// The bot closed it (an [`Action::Close`] or [`Action::Abort`]).
    ByBot,
}

/// A mark the gateway sent back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkBack {
    /// Its name.
    pub name: String,
    /// Raw protocol only: `played` (false when a clear dropped it).
    pub played: Option<bool>,
}

/// What one connection has seen so far.
#[derive(Debug, Clone, Default)]
pub struct Record {
    /// The request path (with query).
    pub path: String,
    /// The handshake's headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Every text message from the gateway, parsed, in order.
    pub texts: Vec<Value>,
    /// Twilio `connected`.
    pub connected: Option<Value>,
    /// Twilio or raw `start`.
    pub start: Option<Value>,
    /// Inbound audio frames (media messages or binary frames).
    pub frames: usize,
    /// Each inbound frame's payload size in bytes, in order.
    pub frame_bytes: Vec<usize>,
    /// When each inbound frame arrived.
    pub frame_times: Vec<Instant>,
    /// Inbound audio decoded to linear samples.
    pub samples: Vec<i16>,
    /// Sample rate of `samples` (8000 for Twilio; the raw `start`'s format).
    pub sample_rate: u32,
    /// DTMF digits in order.
    pub dtmf: String,
    /// Marks the gateway sent back, in order.
    pub marks: Vec<MarkBack>,
    /// The `stop` message.
    pub stop: Option<Value>,
    /// Messages the gateway sent after `stop`.
    pub after_stop: usize,
    /// Audio the bot sent, in bytes of the connection's format.
    pub sent_audio_bytes: usize,
    /// Malformed messages (not JSON, binary on Twilio, ...).
    pub malformed: Vec<String>,
    /// How it ended, once it has.
    pub closed: Option<Closed>,
}

impl Record {
    /// The header `name` (lower-case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `event` of every text message, in order.
    pub fn events(&self) -> Vec<String> {
        self.texts
            .iter()
            .map(|t| t["event"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    fn summary(&self) -> String {
        format!(
            "path {:?}, start {}, frames {}, dtmf {:?}, marks {:?}, stop {}, closed {:?}, events {:?}, malformed {:?}",
            self.path,
            self.start.is_some(),
            self.frames,
            self.dtmf,
            self.marks,
            self.stop.is_some(),
            self.closed,
            self.events()
                .iter()
                .filter(|e| *e != "media")
                .collect::<Vec<_>>(),
            self.malformed,
        )
    }
}

enum Command {
    Act(Action),
}

/// One connection to the bot, as the test sees it.
#[derive(Clone)]
pub struct Conn {
    record: Arc<Mutex<Record>>,
    changed: watch::Receiver<u64>,
    commands: mpsc::UnboundedSender<Command>,
}

impl Conn {
    /// A copy of what it has seen so far.
    pub fn record(&self) -> Record {
        self.record.lock().unwrap().clone()
    }

    /// Inbound frames so far.
    pub fn frames(&self) -> usize {
        self.record.lock().unwrap().frames
    }

    /// The inbound audio so far, decoded, and its sample rate.
    pub fn samples(&self) -> (Vec<i16>, u32) {
        let record = self.record.lock().unwrap();
        (record.samples.clone(), record.sample_rate)
    }

    /// Makes the bot do `action` on this connection now.
    ///
    /// # Errors
    /// When the connection is over.
    pub fn send(&self, action: Action) -> Result<(), String> {
        self.commands
            .send(Command::Act(action))
            .map_err(|_| "the bot's connection is over".to_owned())
    }

    /// Waits until `check` finds what it wants in the record.
    ///
    /// # Errors
    /// After `within` without it; the error names `what` and summarises the record.
    pub async fn wait_until<T>(
        &self,
        what: &str,
        within: Duration,
        mut check: impl FnMut(&Record) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut changed = self.changed.clone();
        loop {
            {
                let record = self.record.lock().unwrap();
                if let Some(found) = check(&record) {
                    return Ok(found);
                }
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                // The connection task ended: one last look.
                Ok(Err(_)) => {
                    let record = self.record.lock().unwrap();
                    return check(&record).ok_or_else(|| {
                        format!("bot: {what}: the connection is over: {}", record.summary())
                    });
                }
                Err(_) => {
                    let record = self.record.lock().unwrap();
                    return Err(format!(
                        "bot: no {what} within {within:?}: {}",
                        record.summary()
                    ));
                }
            }
        }
    }

    /// The `start` message (Twilio: after `connected`).
    ///
    /// # Errors
    /// After `within` without it.
    pub async fn wait_start(&self, within: Duration) -> Result<Value, String> {
        self.wait_until("start", within, |r| r.start.clone()).await
    }

    /// Waits for at least `count` inbound frames; returns how many there are.
    ///
    /// # Errors
    /// After `within` with fewer.
    pub async fn wait_frames(&self, count: usize, within: Duration) -> Result<usize, String> {
        self.wait_until(&format!("{count} frames"), within, |r| {
            (r.frames >= count).then_some(r.frames)
        })
        .await
    }

    /// Waits for at least `count` DTMF digits; returns all digits so far.
    ///
    /// # Errors
    /// After `within` with fewer.
    pub async fn wait_dtmf(&self, count: usize, within: Duration) -> Result<String, String> {
        self.wait_until(&format!("{count} DTMF digits"), within, |r| {
            (r.dtmf.chars().count() >= count).then(|| r.dtmf.clone())
        })
        .await
    }

    /// Waits for the gateway to send back the mark `name`.
    ///
    /// # Errors
    /// After `within` without it.
    pub async fn wait_mark(&self, name: &str, within: Duration) -> Result<MarkBack, String> {
        self.wait_until(&format!("mark {name:?}"), within, |r| {
            r.marks.iter().find(|m| m.name == name).cloned()
        })
        .await
    }

    /// Waits for the first text message whose `event` is `event`.
    ///
    /// # Errors
    /// After `within` without it.
    pub async fn wait_event(&self, event: &str, within: Duration) -> Result<Value, String> {
        self.wait_until(&format!("{event} message"), within, |r| {
            r.texts.iter().find(|t| t["event"] == event).cloned()
        })
        .await
    }

    /// The `stop` message.
    ///
    /// # Errors
    /// After `within` without it.
    pub async fn wait_stop(&self, within: Duration) -> Result<Value, String> {
        self.wait_until("stop", within, |r| r.stop.clone()).await
    }

    /// How the connection ended.
    ///
    /// # Errors
    /// When it has not ended within `within`.
    pub async fn wait_closed(&self, within: Duration) -> Result<Closed, String> {
        self.wait_until("end of connection", within, |r| r.closed.clone())
            .await
    }

    /// The frequency of the inbound audio's tone over the last `last` of it (all of it when
    /// shorter), or `None` for silence or no single tone.
    pub fn inbound_tone(&self, last: Duration) -> Option<f64> {
        let (samples, rate) = self.samples();
        let keep = (last.as_secs_f64() * f64::from(rate)) as usize;
        let from = samples.len().saturating_sub(keep);
        ari_lab::audio::detect_tone(&samples[from..], rate)
    }
}

struct Shared {
    protocol: ProtocolKind,
    behaviour: Mutex<Behaviour>,
    refuse: Mutex<Option<u16>>,
    conns: Mutex<Vec<Conn>>,
    count: watch::Sender<usize>,
}

/// The test backend server.
pub struct Bot {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
    handed_out: Mutex<usize>,
}

impl Bot {
    /// Listens on a free port of 127.0.0.1.
    ///
    /// # Panics
    /// When it cannot listen.
    pub async fn start(protocol: ProtocolKind, behaviour: Behaviour) -> Bot {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            protocol,
            behaviour: Mutex::new(behaviour),
            refuse: Mutex::new(None),
            conns: Mutex::new(Vec::new()),
            count: watch::channel(0).0,
        });
        let accept = Some(tokio::spawn(accept_loop(listener, shared.clone())));
        Bot {
            addr,
            shared,
            accept,
            handed_out: Mutex::new(0),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `ws://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Changes what the bot does on connections from now on.
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = behaviour;
    }

    /// Answers handshakes from now on with this HTTP status (`None`: accept again).
    pub fn refuse_with(&self, status: Option<u16>) {
        *self.shared.refuse.lock().unwrap() = status;
    }

    /// Stops listening (connections are refused at TCP); open connections stay up.
    pub async fn stop_listening(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
    }

    /// Listens again on the same port.
    ///
    /// # Panics
    /// When the port cannot be had again within 5 s.
    pub async fn listen_again(&mut self) {
        self.stop_listening().await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error) if Instant::now() < deadline => {
                    // The port was just released: there is no event to wait on.
                    eprintln!("bot: rebinding {}: {error}", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("bot: cannot listen on {} again: {error}", self.addr),
            }
        };
        self.accept = Some(tokio::spawn(accept_loop(listener, self.shared.clone())));
    }

    /// Every connection so far, in order of arrival.
    pub fn connections(&self) -> Vec<Conn> {
        self.shared.conns.lock().unwrap().clone()
    }

    /// Waits for the connection number `index` (0: the first ever).
    ///
    /// # Errors
    /// After `within` with fewer connections.
    pub async fn wait_connection(&self, index: usize, within: Duration) -> Result<Conn, String> {
        let mut count = self.shared.count.subscribe();
        let found = tokio::time::timeout(within, count.wait_for(|&n| n > index)).await;
        match found {
            Ok(Ok(_)) => Ok(self.shared.conns.lock().unwrap()[index].clone()),
            _ => Err(format!(
                "bot: no connection #{} within {within:?} ({} so far)",
                index + 1,
                self.shared.conns.lock().unwrap().len()
            )),
        }
    }

    /// Waits for the next connection this method has not returned yet.
    ///
    /// # Errors
    /// After `within` without one.
    pub async fn wait_for_connection(&self, within: Duration) -> Result<Conn, String> {
        let index = *self.handed_out.lock().unwrap();
        let conn = self.wait_connection(index, within).await?;
        *self.handed_out.lock().unwrap() = index + 1;
        Ok(conn)
    }
}

impl Drop for Bot {
    fn drop(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(error) = serve(stream, shared).await {
                eprintln!("bot: connection failed: {error}");
            }
        });
    }
}

type Ws = WebSocketStream<TcpStream>;

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> Result<(), String> {
    let refuse = *shared.refuse.lock().unwrap();
    let mut path = String::new();
    let mut headers = Vec::new();
    // The signature is tungstenite's `Callback`.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        path = request.uri().to_string();
        headers = request
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        match refuse {
            Some(status) => {
                let mut refused = ErrorResponse::new(Some("refused by the test bot".into()));
                *refused.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::from_u16(
                    status,
                )
                .unwrap_or(tokio_tungstenite::tungstenite::http::StatusCode::SERVICE_UNAVAILABLE);
                Err(refused)
            }
            None => Ok(response),
        }
    };
    let ws = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::accept_hdr_async(stream, callback),
    )
    .await
    .map_err(|_| "handshake took over 10 s".to_owned())?
    .map_err(|e| format!("handshake: {e}"))?;

    let behaviour = shared.behaviour.lock().unwrap().clone();
    let record = Arc::new(Mutex::new(Record {
        path,
        headers,
        sample_rate: 8000,
        ..Record::default()
    }));
    let (changed_tx, changed_rx) = watch::channel(0u64);
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let conn = Conn {
        record: record.clone(),
        changed: changed_rx,
        commands: commands_tx,
    };
    {
        let mut conns = shared.conns.lock().unwrap();
        conns.push(conn);
        let count = conns.len();
        shared.count.send_replace(count);
    }
    let mut session = Session {
        protocol: shared.protocol,
        behaviour,
        record,
        changed: changed_tx,
        format: match shared.protocol {
            ProtocolKind::Twilio => AudioFormat::Ulaw,
            _ => AudioFormat::Slin16,
        },
        stream_sid: String::new(),
        after_frames_done: false,
    };
    session.run(ws, commands_rx).await;
    Ok(())
}

struct Session {
    protocol: ProtocolKind,
    behaviour: Behaviour,
    record: Arc<Mutex<Record>>,
    changed: watch::Sender<u64>,
    format: AudioFormat,
    stream_sid: String,
    after_frames_done: bool,
}

/// What to do after handling one message.
enum Next {
    Go,
    /// The bot closed or aborted.
    Over,
}

impl Session {
    fn update(&self, change: impl FnOnce(&mut Record)) {
        change(&mut self.record.lock().unwrap());
        self.changed.send_modify(|n| *n += 1);
    }

    async fn run(&mut self, mut ws: Ws, mut commands: mpsc::UnboundedReceiver<Command>) {
        loop {
            tokio::select! {
                incoming = ws.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => {
                            self.update(|r| r.closed = Some(Closed::Abnormal(error.to_string())));
                            return;
                        }
                        None => {
                            self.update(|r| {
                                r.closed.get_or_insert(Closed::Abnormal("end of stream without a close frame".into()));
                            });
                            return;
                        }
                    };
                    let actions = match message {
                        Message::Text(text) => self.on_text(text.as_str()),
                        Message::Binary(data) => self.on_binary(&data),
                        Message::Close(frame) => {
                            let (code, reason) = frame
                                .map(|f| (u16::from(f.code), f.reason.as_str().to_owned()))
                                .unwrap_or((1005, String::new()));
                            self.update(|r| r.closed = Some(Closed::ByPeer(code, reason)));
                            // tungstenite answers the close frame; flush it out.
                            let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                            return;
                        }
                        _ => Vec::new(),
                    };
                    for action in actions {
                        if let Next::Over = self.act(&mut ws, action).await {
                            return;
                        }
                    }
                }
                command = commands.recv() => {
                    let Some(Command::Act(action)) = command else { continue };
                    if let Next::Over = self.act(&mut ws, action).await {
                        return;
                    }
                }
            }
        }
    }

    /// Records a text message; returns the actions it triggers.
    fn on_text(&mut self, text: &str) -> Vec<Action> {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            self.update(|r| r.malformed.push(text.chars().take(200).collect()));
            return Vec::new();
        };
        let event = value["event"].as_str().unwrap_or("").to_owned();
        let mut actions = Vec::new();
        let mut record = self.record.lock().unwrap();
        if record.stop.is_some() {
            record.after_stop += 1;
        }
        record.texts.push(value.clone());
        match (self.protocol, event.as_str()) {
            (ProtocolKind::Twilio, "connected") => record.connected = Some(value),
            (_, "start") => {
                if self.protocol == ProtocolKind::Twilio {
                    self.stream_sid = value["streamSid"].as_str().unwrap_or("").to_owned();
                } else {
                    let encoding = value["format"]["encoding"].as_str().unwrap_or("slin16");
                    self.format = encoding.parse().unwrap_or(AudioFormat::Slin16);
                    record.sample_rate = self.format.sample_rate();
                }
                record.start = Some(value);
                actions.extend(self.behaviour.on_start.iter().cloned());
            }
            (ProtocolKind::Twilio, "media") => {
                let payload = value["media"]["payload"].as_str().unwrap_or("");
                match base64::engine::general_purpose::STANDARD.decode(payload) {
                    Ok(bytes) => {
                        drop(record);
                        return self.on_audio(&bytes);
                    }
                    Err(error) => record.malformed.push(format!("media payload: {error}")),
                }
            }
            (_, "dtmf") => {
                let digit = match self.protocol {
                    ProtocolKind::Twilio => value["dtmf"]["digit"].as_str(),
                    _ => value["digit"].as_str(),
                };
                record.dtmf.push_str(digit.unwrap_or("?"));
                actions.extend(self.behaviour.on_dtmf.iter().cloned());
            }
            (_, "mark") => {
                let name = match self.protocol {
                    ProtocolKind::Twilio => value["mark"]["name"].as_str(),
                    _ => value["name"].as_str(),
                };
                record.marks.push(MarkBack {
                    name: name.unwrap_or("").to_owned(),
                    played: value["played"].as_bool(),
                });
                actions.extend(self.behaviour.on_mark.iter().cloned());
            }
            (_, "stop") => record.stop = Some(value),
            _ => {}
        }
        drop(record);
        self.changed.send_modify(|n| *n += 1);
        actions
    }

    fn on_binary(&mut self, data: &[u8]) -> Vec<Action> {
        if self.protocol == ProtocolKind::Twilio {
            self.update(|r| {
                r.malformed
                    .push(format!("binary frame of {} bytes", data.len()))
            });
            return Vec::new();
        }
        self.on_audio(data)
    }

    /// Records an inbound frame; returns the actions it triggers.
    fn on_audio(&mut self, bytes: &[u8]) -> Vec<Action> {
        let samples = decode(self.format, bytes);
        let frames = {
            let mut record = self.record.lock().unwrap();
            record.frames += 1;
            record.frame_bytes.push(bytes.len());
            record.frame_times.push(Instant::now());
            record.samples.extend(samples);
            record.frames
        };
        self.changed.send_modify(|n| *n += 1);
        let mut actions = Vec::new();
        if self.behaviour.echo {
            actions.push(Action::Audio(bytes.to_vec()));
        }
        if let Some((count, after)) = &self.behaviour.after_frames {
            if !self.after_frames_done && frames >= *count {
                self.after_frames_done = true;
                actions.extend(after.iter().cloned());
            }
        }
        actions
    }

    async fn act(&mut self, ws: &mut Ws, action: Action) -> Next {
        let result = match action {
            Action::Tone {
                frequency,
                duration,
                chunk,
            } => {
                let rate = self.format.sample_rate();
                let samples = ari_lab::audio::sine(frequency, rate, duration.as_secs_f64(), 8000);
                let audio = encode(self.format, &samples);
                let per_message = (self.format.frame_bytes() as u128 * chunk.as_millis().max(20)
                    / 20)
                    .max(1) as usize;
                let mut result = Ok(());
                for piece in audio.chunks(per_message) {
                    result = self.send_audio(ws, piece).await;
                    if result.is_err() {
                        break;
                    }
                }
                result
            }
            Action::Audio(bytes) => self.send_audio(ws, &bytes).await,
            Action::Mark(name) => {
                let text = match self.protocol {
                    ProtocolKind::Twilio => {
                        json!({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}})
                    }
                    _ => json!({"event": "mark", "name": name}),
                };
                ws.send(Message::text(text.to_string())).await
            }
            Action::Clear => {
                let text = match self.protocol {
                    ProtocolKind::Twilio => json!({"event": "clear", "streamSid": self.stream_sid}),
                    _ => json!({"event": "clear"}),
                };
                ws.send(Message::text(text.to_string())).await
            }
            Action::Transcript(value) => ws.send(Message::text(value.to_string())).await,
            Action::Text(text) => ws.send(Message::text(text)).await,
            Action::Hangup(reason) => {
                let text = json!({"event": "hangup", "reason": reason});
                ws.send(Message::text(text.to_string())).await
            }
            Action::Transfer { extension, context } => {
                let text = json!({"event": "transfer", "extension": extension, "context": context});
                ws.send(Message::text(text.to_string())).await
            }
            Action::Close(code) => {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: "the test bot ends the conversation".into(),
                };
                let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(Some(frame))).await;
                // Read until the gateway answers the close (bounded).
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while let Some(Ok(_)) = ws.next().await {}
                })
                .await;
                self.update(|r| r.closed = Some(Closed::ByBot));
                return Next::Over;
            }
            Action::Abort => {
                // SO_LINGER 0: the kernel resets the connection on close instead of a
                // graceful FIN; a zero linger never blocks.
                #[allow(deprecated)]
                let _ = ws.get_ref().set_linger(Some(Duration::ZERO));
                self.update(|r| r.closed = Some(Closed::ByBot));
                return Next::Over;
            }
        };
        match result {
            Ok(()) => Next::Go,
            Err(error) => {
                self.update(|r| {
                    r.closed
                        .get_or_insert(Closed::Abnormal(format!("sending: {error}")));
                });
                Next::Over
            }
        }
    }

    async fn send_audio(
        &mut self,
        ws: &mut Ws,
        bytes: &[u8],
    ) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let message = match self.protocol {
            ProtocolKind::Twilio => {
                let payload = base64::engine::general_purpose::STANDARD.encode(bytes);
                Message::text(
                    json!({"event": "media", "streamSid": self.stream_sid, "media": {"payload": payload}})
                        .to_string(),
                )
            }
            _ => Message::binary(bytes.to_vec()),
        };
        ws.send(message).await?;
        self.update(|r| r.sent_audio_bytes += bytes.len());
        Ok(())
    }
}

/// Linear samples of audio bytes in `format`.
pub fn decode(format: AudioFormat, bytes: &[u8]) -> Vec<i16> {
    match format {
        AudioFormat::Ulaw => bytes.iter().map(|&b| ulaw_to_linear(b)).collect(),
        AudioFormat::Alaw => bytes.iter().map(|&b| alaw_to_linear(b)).collect(),
        _ => bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect(),
    }
}

/// Audio bytes in `format` of linear samples.
pub fn encode(format: AudioFormat, samples: &[i16]) -> Vec<u8> {
    match format {
        AudioFormat::Ulaw => samples.iter().map(|&s| linear_to_ulaw(s)).collect(),
        AudioFormat::Alaw => samples.iter().map(|&s| linear_to_alaw(s)).collect(),
        _ => samples.iter().flat_map(|s| s.to_le_bytes()).collect(),
    }
}
