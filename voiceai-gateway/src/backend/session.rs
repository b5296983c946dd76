//! The two halves of one backend session, and the writer task between [`BackendTx`] and
//! the socket.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tracing::Instrument as _;

use super::{BackendClose, BackendError, BackendEvent, BackendSettings, DEFAULT_WRITE_STALL_LIMIT};
use crate::audio::codec::Transcoder;
use crate::audio::{AudioFormat, FRAME_MS};
use crate::protocol::twilio::{self, StreamIds};
use crate::protocol::{BackendMessage, CallInfo, ProtocolKind, raw};

/// A backend WebSocket.
type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Messages the writer task may hold for a backend that reads slowly: 128, about 2.5 s of
/// audio. A send that finds the queue full fails the session ([`BackendError::Stalled`]).
const QUEUE_MESSAGES: usize = 128;

/// How long [`BackendTx::stop`] waits for `stop` and the close frame to be written.
const STOP_TIMEOUT: Duration = Duration::from_secs(1);

/// How long [`BackendRx::recv`] keeps reading after the bot's close frame, so that the
/// answering close frame goes out and the bot can close the TCP connection.
const CLOSE_DRAIN: Duration = Duration::from_millis(500);

/// At most one warning about malformed messages this often.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Twilio `media` timestamps follow the media clock (+20 ms a frame) unless the wall
/// clock is ahead of it by more than this (frames missing): then they jump to it.
const CLOCK_GAP_MS: u64 = 100;

/// What both halves and the writer task share: how the session ended, once it has.
#[derive(Debug)]
struct Shared {
    ended: AtomicBool,
    end: Mutex<Option<BackendClose>>,
    /// Wakes [`BackendRx::recv`] when the write side ends the session.
    notify: Notify,
    /// [`BackendTx::set_write_stall_limit`], in milliseconds.
    stall_limit_ms: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Self {
            ended: AtomicBool::new(false),
            end: Mutex::new(None),
            notify: Notify::new(),
            stall_limit_ms: AtomicU64::new(DEFAULT_WRITE_STALL_LIMIT.as_millis() as u64),
        }
    }

    /// Records the end (the first one wins) and wakes the reader.
    fn end(&self, close: BackendClose) {
        let mut end = self.end.lock().unwrap_or_else(PoisonError::into_inner);
        if end.is_none() {
            *end = Some(close);
            self.ended.store(true, Ordering::Release);
            self.notify.notify_one();
        }
    }

    fn get(&self) -> Option<BackendClose> {
        if !self.ended.load(Ordering::Acquire) {
            return None;
        }
        self.end
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn stall_limit(&self) -> Duration {
        Duration::from_millis(self.stall_limit_ms.load(Ordering::Relaxed))
    }
}

/// Builds the session on an open socket: sends the opening, starts the writer task.
pub(super) async fn open(
    socket: Socket,
    settings: &BackendSettings,
    call: &CallInfo,
    ids: &StreamIds,
    leg_format: AudioFormat,
    url: Arc<str>,
) -> Result<(BackendTx, BackendRx), BackendError> {
    let (mut sink, stream) = socket.split();
    let wire = settings.wire_format();
    let send_error = |error: tungstenite::Error| BackendError::Send {
        url: url.to_string(),
        reason: error.to_string(),
    };
    let (tx_protocol, rx_protocol) = match settings.protocol {
        ProtocolKind::Twilio => {
            let (encoder, opening) = twilio::Encoder::start(ids.clone(), call);
            for message in opening {
                sink.send(text(message, &url)?).await.map_err(send_error)?;
            }
            (
                TxProtocol::Twilio {
                    encoder,
                    clock: MediaClock::new(Instant::now()),
                },
                RxProtocol::Twilio(twilio::Decoder::new()),
            )
        }
        ProtocolKind::Raw => {
            sink.send(Message::text(raw::start(call, wire)))
                .await
                .map_err(send_error)?;
            (TxProtocol::Raw, RxProtocol::Raw)
        }
    };
    let shared = Arc::new(Shared::new());
    let (queue, outgoing) = mpsc::channel(QUEUE_MESSAGES);
    let writer = tokio::spawn(write_loop(sink, outgoing, shared.clone()).in_current_span());
    tracing::debug!(backend = %url, protocol = %settings.protocol, %leg_format, %wire, "backend connected");
    let tx = BackendTx {
        queue,
        writer,
        protocol: tx_protocol,
        transcoder: Transcoder::new(leg_format, wire),
        scratch: BytesMut::with_capacity(wire.frame_bytes() * 2),
        shared: shared.clone(),
        url: url.clone(),
        frames_sent: 0,
    };
    let rx = BackendRx {
        stream,
        protocol: rx_protocol,
        transcoder: Transcoder::new(wire, leg_format),
        scratch: BytesMut::new(),
        shared,
        state: RxState::Open,
        malformed: Malformed::default(),
        url,
    };
    Ok((tx, rx))
}

/// A text message from UTF-8 JSON the encoders wrote.
fn text(json: Bytes, url: &str) -> Result<Message, BackendError> {
    Utf8Bytes::try_from(json)
        .map(Message::Text)
        .map_err(|_| BackendError::Send {
            url: url.to_owned(),
            reason: "an encoder wrote a message that is not UTF-8".to_owned(),
        })
}

/// The writer task: sends each queued message on its own and flushes it. A write the
/// backend does not take within the stall limit, or a failed write, ends the session.
/// Ends after a close frame, or when [`BackendTx`] is gone.
async fn write_loop(
    mut sink: SplitSink<Socket, Message>,
    mut outgoing: mpsc::Receiver<Message>,
    shared: Arc<Shared>,
) {
    while let Some(message) = outgoing.recv().await {
        let closing = matches!(message, Message::Close(_));
        let limit = shared.stall_limit();
        match tokio::time::timeout(limit, sink.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                if !closing {
                    shared.end(BackendClose::Abnormal(format!("send failed: {error}")));
                }
                return;
            }
            Err(_) => {
                shared.end(BackendClose::Abnormal(format!(
                    "the backend stopped reading (a write waited {limit:?})"
                )));
                return;
            }
        }
        if closing {
            return;
        }
    }
}

/// What the sending half keeps of its protocol.
enum TxProtocol {
    Twilio {
        encoder: twilio::Encoder,
        clock: MediaClock,
    },
    Raw,
}

/// Twilio `media` timestamps: milliseconds since the stream's start, on the media clock.
#[derive(Debug)]
struct MediaClock {
    started: Instant,
    last: Option<u64>,
}

impl MediaClock {
    fn new(started: Instant) -> Self {
        Self {
            started,
            last: None,
        }
    }

    /// The timestamp of a frame sent at `now`: the first is the time since the start, each
    /// next one 20 ms later, unless the wall clock is more than [`CLOCK_GAP_MS`] ahead.
    fn next(&mut self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started).as_millis() as u64;
        let timestamp = match self.last {
            None => elapsed,
            Some(last) => {
                let next = last + u64::from(FRAME_MS);
                if elapsed > next + CLOCK_GAP_MS {
                    elapsed
                } else {
                    next
                }
            }
        };
        self.last = Some(timestamp);
        timestamp
    }
}

/// The sending half of a backend session.
pub struct BackendTx {
    queue: mpsc::Sender<Message>,
    writer: JoinHandle<()>,
    protocol: TxProtocol,
    /// Leg format → wire format.
    transcoder: Transcoder,
    scratch: BytesMut,
    shared: Arc<Shared>,
    url: Arc<str>,
    frames_sent: u64,
}

impl fmt::Debug for BackendTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendTx")
            .field("url", &self.url)
            .field("frames_sent", &self.frames_sent)
            .field("ended", &self.shared.get())
            .finish_non_exhaustive()
    }
}

impl BackendTx {
    /// Sends one 20 ms frame of the caller's audio, in the leg format: transcoded to the
    /// protocol's format, one message, flushed at once by the writer task. Never waits for
    /// the network.
    ///
    /// # Errors
    /// [`BackendError::Stalled`] when the backend has not taken the last
    /// `QUEUE_MESSAGES` (128) messages (the session is then over); [`BackendError::Closed`]
    /// once the session is over for any reason.
    pub async fn send_audio(&mut self, frame: &[u8]) -> Result<(), BackendError> {
        self.check_open()?;
        let wire: &[u8] = if self.transcoder.from_format() == self.transcoder.to_format() {
            frame
        } else {
            self.scratch.clear();
            self.transcoder.convert(frame, &mut self.scratch);
            &self.scratch
        };
        if wire.is_empty() {
            return Ok(());
        }
        let message = match &mut self.protocol {
            TxProtocol::Twilio { encoder, clock } => {
                let timestamp = clock.next(Instant::now());
                text(encoder.media(wire, timestamp), &self.url)?
            }
            TxProtocol::Raw => Message::Binary(Bytes::copy_from_slice(wire)),
        };
        self.enqueue(message)?;
        self.frames_sent += 1;
        Ok(())
    }

    /// Sends a key the caller pressed. On Twilio, `A`-`D` are not sent (Twilio has none).
    ///
    /// # Errors
    /// [`BackendError::InvalidDigit`] for anything but `0`-`9`, `*`, `#`, `A`-`D`
    /// (lower case accepted); otherwise as [`send_audio`](Self::send_audio).
    pub async fn send_dtmf(&mut self, digit: char) -> Result<(), BackendError> {
        let digit = digit.to_ascii_uppercase();
        if !matches!(digit, '0'..='9' | '*' | '#' | 'A'..='D') {
            return Err(BackendError::InvalidDigit { digit });
        }
        self.check_open()?;
        let message = match &mut self.protocol {
            TxProtocol::Twilio { .. } if digit.is_ascii_alphabetic() => {
                tracing::debug!(%digit, "DTMF digit not sent: Twilio has no A-D");
                return Ok(());
            }
            TxProtocol::Twilio { encoder, .. } => text(encoder.dtmf(digit), &self.url)?,
            TxProtocol::Raw => Message::text(raw::dtmf(digit)),
        };
        self.enqueue(message)
    }

    /// Answers the backend's mark `name`: `played` when the audio before it has been
    /// played, not when a `clear` dropped it (Twilio's `mark` does not say which).
    ///
    /// # Errors
    /// As [`send_audio`](Self::send_audio).
    pub async fn send_mark(&mut self, name: &str, played: bool) -> Result<(), BackendError> {
        self.check_open()?;
        let message = match &mut self.protocol {
            TxProtocol::Twilio { encoder, .. } => text(encoder.mark(name), &self.url)?,
            TxProtocol::Raw => Message::text(raw::mark(name, played)),
        };
        self.enqueue(message)
    }

    /// Ends the session from the gateway's side: sends `stop` (raw: with `reason`), then a
    /// close frame with code 1000, waiting at most 1 s for them to be written. The
    /// [`BackendRx`] then returns `Closed(Normal)`.
    pub async fn stop(self, reason: raw::StopReason) {
        let Self {
            queue,
            mut writer,
            mut protocol,
            shared,
            url,
            ..
        } = self;
        if shared.get().is_none() {
            let stop = match &mut protocol {
                TxProtocol::Twilio { encoder, .. } => text(encoder.stop(), &url).ok(),
                TxProtocol::Raw => Some(Message::text(raw::stop(reason))),
            };
            let close = Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: Utf8Bytes::from_static(""),
            }));
            for message in stop.into_iter().chain([close]) {
                if queue.try_send(message).is_err() {
                    break;
                }
            }
        }
        drop(queue);
        if tokio::time::timeout(STOP_TIMEOUT, &mut writer)
            .await
            .is_err()
        {
            tracing::debug!(backend = %url, "backend did not take stop in time");
            writer.abort();
        }
        shared.end(BackendClose::Normal);
    }

    /// How many audio frames have been queued for the backend.
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }

    /// How long one write may wait for a backend that does not read before the session
    /// fails (default [`DEFAULT_WRITE_STALL_LIMIT`]).
    pub fn set_write_stall_limit(&mut self, limit: Duration) {
        let millis = u64::try_from(limit.as_millis()).unwrap_or(u64::MAX).max(1);
        self.shared.stall_limit_ms.store(millis, Ordering::Relaxed);
    }

    /// How the session ended, once it has (seen from either half).
    pub fn ended(&self) -> Option<BackendClose> {
        self.shared.get()
    }

    fn check_open(&self) -> Result<(), BackendError> {
        match self.shared.get() {
            None => Ok(()),
            Some(close) => Err(self.closed(close)),
        }
    }

    fn closed(&self, close: BackendClose) -> BackendError {
        BackendError::Closed {
            url: self.url.to_string(),
            reason: match close {
                BackendClose::Normal => "closed normally".to_owned(),
                BackendClose::Abnormal(reason) => reason,
            },
        }
    }

    fn enqueue(&mut self, message: Message) -> Result<(), BackendError> {
        match self.queue.try_send(message) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                let queued = QUEUE_MESSAGES;
                self.shared.end(BackendClose::Abnormal(format!(
                    "the backend stopped reading ({queued} messages waiting)"
                )));
                self.writer.abort();
                Err(BackendError::Stalled {
                    url: self.url.to_string(),
                    queued,
                })
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                let close = self
                    .shared
                    .get()
                    .unwrap_or_else(|| BackendClose::Abnormal("the writer stopped".to_owned()));
                Err(self.closed(close))
            }
        }
    }
}

/// What the receiving half keeps of its protocol.
enum RxProtocol {
    Twilio(twilio::Decoder),
    Raw,
}

/// Where the receiving half is in the session's life.
#[derive(Debug)]
enum RxState {
    Open,
    /// The bot sent a close frame; reading on until `deadline` sends the answer.
    Closing {
        close: BackendClose,
        deadline: Instant,
    },
    Closed(BackendClose),
}

/// Malformed messages: counted, warned about at most every [`WARN_EVERY`].
#[derive(Debug, Default)]
struct Malformed {
    count: u64,
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl Malformed {
    fn skip(&mut self, url: &str, what: &dyn fmt::Display) {
        self.count += 1;
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|last| now.duration_since(last) >= WARN_EVERY)
        {
            tracing::warn!(
                backend = %url,
                error = %what,
                skipped_since_last_warning = self.suppressed,
                "skipping a malformed backend message"
            );
            self.last_warning = Some(now);
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
            tracing::debug!(backend = %url, error = %what, "skipping a malformed backend message");
        }
    }
}

/// The receiving half of a backend session.
pub struct BackendRx {
    stream: SplitStream<Socket>,
    protocol: RxProtocol,
    /// Wire format → leg format.
    transcoder: Transcoder,
    scratch: BytesMut,
    shared: Arc<Shared>,
    state: RxState,
    malformed: Malformed,
    url: Arc<str>,
}

impl fmt::Debug for BackendRx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendRx")
            .field("url", &self.url)
            .field("state", &self.state)
            .field("malformed", &self.malformed.count)
            .finish_non_exhaustive()
    }
}

impl BackendRx {
    /// The next thing the backend asks for. [`BackendEvent::Closed`] comes last, and again
    /// on every later call. Malformed messages are logged and skipped. Cancel-safe: a
    /// `recv` dropped before it returns loses nothing.
    pub async fn recv(&mut self) -> BackendEvent {
        loop {
            match &self.state {
                RxState::Closed(close) => return BackendEvent::Closed(close.clone()),
                RxState::Closing { close, deadline } => {
                    let deadline = *deadline;
                    let close = close.clone();
                    match tokio::time::timeout_at(deadline, self.stream.next()).await {
                        Ok(Some(Ok(_))) => {}
                        Ok(Some(Err(_)) | None) | Err(_) => self.finish(close),
                    }
                }
                RxState::Open => {
                    let next = tokio::select! {
                        biased;
                        next = self.stream.next() => next,
                        () = self.shared.notify.notified() => {
                            let close = self.shared.get().unwrap_or_else(|| {
                                BackendClose::Abnormal("the session ended".to_owned())
                            });
                            self.finish(close);
                            continue;
                        }
                    };
                    if let Some(event) = self.handle(next) {
                        return event;
                    }
                }
            }
        }
    }

    /// How many malformed messages have been skipped.
    pub fn malformed_messages(&self) -> u64 {
        self.malformed.count
    }

    fn finish(&mut self, close: BackendClose) {
        self.shared.end(close.clone());
        self.state = RxState::Closed(close);
    }

    /// One item from the socket: an event to return, or `None` to read on.
    fn handle(
        &mut self,
        next: Option<Result<Message, tungstenite::Error>>,
    ) -> Option<BackendEvent> {
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(error)) => {
                self.finish(BackendClose::Abnormal(describe(&error)));
                return None;
            }
            None => {
                self.finish(BackendClose::Abnormal(
                    "the connection ended without a close frame".to_owned(),
                ));
                return None;
            }
        };
        match message {
            Message::Text(text) => self.text(&text),
            Message::Binary(data) => match self.protocol {
                RxProtocol::Raw => self.event(raw::decode_binary(data)),
                RxProtocol::Twilio(_) => {
                    self.malformed
                        .skip(&self.url, &"a binary frame (Twilio sends only text)");
                    None
                }
            },
            Message::Close(frame) => {
                let close = classify_close(frame.as_ref());
                tracing::debug!(backend = %self.url, ?close, "the backend closed");
                // Sends fail from now on, saying how the session ended.
                self.shared.end(close.clone());
                self.state = RxState::Closing {
                    close,
                    deadline: Instant::now() + CLOSE_DRAIN,
                };
                None
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => None,
        }
    }

    fn text(&mut self, text: &str) -> Option<BackendEvent> {
        let decoded = match &mut self.protocol {
            RxProtocol::Twilio(decoder) => decoder.decode(text),
            RxProtocol::Raw => raw::decode_text(text),
        };
        match decoded {
            Ok(BackendMessage::Ignored { event }) => {
                if let Some(transcript) = transcript(text) {
                    return Some(BackendEvent::Transcript(transcript));
                }
                tracing::trace!(backend = %self.url, %event, "ignoring a backend event");
                None
            }
            Ok(message) => self.event(message),
            Err(error) => {
                if let Some(transcript) = transcript(text) {
                    return Some(BackendEvent::Transcript(transcript));
                }
                self.malformed.skip(&self.url, &error);
                None
            }
        }
    }

    fn event(&mut self, message: BackendMessage) -> Option<BackendEvent> {
        Some(match message {
            BackendMessage::Audio(audio) => BackendEvent::Audio(self.leg_audio(audio)?),
            BackendMessage::Mark(name) => BackendEvent::Mark(name),
            BackendMessage::Clear => {
                self.transcoder.reset();
                BackendEvent::Clear
            }
            BackendMessage::Hangup { reason } => BackendEvent::Hangup { reason },
            BackendMessage::Transfer { extension, context } => {
                BackendEvent::Transfer { extension, context }
            }
            _ => return None,
        })
    }

    /// Backend audio in the leg format; `None` when nothing is whole yet.
    fn leg_audio(&mut self, audio: Bytes) -> Option<Bytes> {
        if self.transcoder.from_format() == self.transcoder.to_format() {
            return (!audio.is_empty()).then_some(audio);
        }
        self.transcoder.convert(&audio, &mut self.scratch);
        let out = self.scratch.split().freeze();
        (!out.is_empty()).then_some(out)
    }
}

/// A JSON object whose `event` or `type` is `"transcript"`.
fn transcript(text: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(text).ok()?;
    let is_transcript = ["event", "type"]
        .iter()
        .any(|key| value.get(key).and_then(Value::as_str) == Some("transcript"));
    is_transcript.then_some(value)
}

/// A close frame from the bot: 1000, 1001 or no code is normal.
fn classify_close(frame: Option<&CloseFrame>) -> BackendClose {
    match frame {
        None => BackendClose::Normal,
        Some(frame) if matches!(frame.code, CloseCode::Normal | CloseCode::Away) => {
            BackendClose::Normal
        }
        Some(frame) => {
            let code = u16::from(frame.code);
            let reason: String = frame.reason.chars().filter(|c| !c.is_control()).collect();
            BackendClose::Abnormal(if reason.is_empty() {
                format!("the backend closed with code {code}")
            } else {
                format!("the backend closed with code {code} ({reason})")
            })
        }
    }
}

/// A read error as an abnormal close's reason.
fn describe(error: &tungstenite::Error) -> String {
    use tungstenite::error::ProtocolError as Ws;
    match error {
        tungstenite::Error::Protocol(Ws::ResetWithoutClosingHandshake) => {
            "the connection was reset without a close frame".to_owned()
        }
        tungstenite::Error::Io(io)
            if matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            format!("the connection was reset without a close frame ({io})")
        }
        tungstenite::Error::Io(io) => format!("read failed: {io}"),
        tungstenite::Error::Capacity(capacity) => format!("message refused: {capacity}"),
        tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed => {
            "the connection is closed".to_owned()
        }
        other => format!("protocol error: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_media_clock_steps_20_ms_and_jumps_over_gaps() {
        let start = Instant::now();
        let mut clock = MediaClock::new(start);
        let at = |ms| start + Duration::from_millis(ms);
        assert_eq!(clock.next(at(3)), 3);
        // Frames in a burst still step by 20 ms.
        assert_eq!(clock.next(at(30)), 23);
        assert_eq!(clock.next(at(30)), 43);
        assert_eq!(clock.next(at(64)), 63);
        // A gap of a second: the timestamp follows the wall clock.
        assert_eq!(clock.next(at(1100)), 1100);
        assert_eq!(clock.next(at(1118)), 1120);
    }

    #[test]
    fn close_codes_1000_1001_and_none_are_normal() {
        let frame = |code: u16, reason: &'static str| CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static(reason),
        };
        assert_eq!(classify_close(None), BackendClose::Normal);
        assert_eq!(
            classify_close(Some(&frame(1000, "bye"))),
            BackendClose::Normal
        );
        assert_eq!(classify_close(Some(&frame(1001, ""))), BackendClose::Normal);
        assert_eq!(
            classify_close(Some(&frame(1011, "boom\n"))),
            BackendClose::Abnormal("the backend closed with code 1011 (boom)".into())
        );
        assert_eq!(
            classify_close(Some(&frame(4000, ""))),
            BackendClose::Abnormal("the backend closed with code 4000".into())
        );
    }

    #[test]
    fn transcripts_are_recognised_by_event_or_type() {
        assert!(transcript(r#"{"event":"transcript","text":"hi"}"#).is_some());
        assert!(transcript(r#"{"type":"transcript","role":"bot"}"#).is_some());
        assert!(transcript(r#"{"event":"say"}"#).is_none());
        assert!(transcript(r#"{"type":5}"#).is_none());
        assert!(transcript("[1]").is_none());
        assert!(transcript("nope").is_none());
    }
}
