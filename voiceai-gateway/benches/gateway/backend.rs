//! The AI backend's side: a WebSocket server on 127.0.0.1 speaking Twilio Media Streams
//! that echoes every `media` frame at once, re-stamped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use voiceai_gateway::audio::jitter::DEFAULT_MAX_BURST;

use crate::stamp::{self, Received, Stamp, WINDOW};

/// A frame, in microseconds.
pub(crate) const FRAME_US: u64 = 20_000;

/// When each backend frame is due at the caller, modelled as the gateway's pacing
/// promises it with zero transport delay (see the bench's doc comment): the first frame
/// of a talk spurt at once, each later one 20 ms after the one before, one that comes
/// late (within the catch-up window) at once without moving the grid; nothing for longer
/// than the window ends the spurt.
#[derive(Debug, Default)]
pub(crate) struct DueModel {
    next_due: Option<u64>,
}

impl DueModel {
    const CATCH_UP_US: u64 = FRAME_US * (DEFAULT_MAX_BURST as u64 - 1);

    /// The due time of a frame handed over at `sent_us`.
    pub(crate) fn due(&mut self, sent_us: u64) -> u64 {
        match self.next_due {
            Some(next) if sent_us < next + Self::CATCH_UP_US => {
                self.next_due = Some(next + FRAME_US);
                sent_us.max(next)
            }
            _ => {
                self.next_due = Some(sent_us + FRAME_US);
                sent_us
            }
        }
    }
}

/// The value of the string field `"name":"..."` in a JSON text, without a full parse
/// (the gateway writes these fields without escapes).
pub(crate) fn field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = text.find(&key)? + key.len();
    let end = text[start..].find('"')? + start;
    Some(&text[start..end])
}

/// Decodes a `media` payload into `out`.
pub(crate) fn decode_payload(text: &str, out: &mut Vec<u8>) -> bool {
    out.clear();
    match field(text, "payload") {
        Some(payload) => BASE64.decode_vec(payload, out).is_ok(),
        None => false,
    }
}

/// A `media` message toward the gateway.
pub(crate) fn media_message(stream_sid: &str, ulaw: &[u8], b64: &mut String) -> Message {
    b64.clear();
    BASE64.encode_string(ulaw, b64);
    Message::text(format!(
        r#"{{"event":"media","streamSid":"{stream_sid}","media":{{"payload":"{b64}"}}}}"#
    ))
}

/// Accepts backend connections on a free port of 127.0.0.1, running `session` for each.
pub(crate) async fn serve<F, Fut>(session: F) -> std::io::Result<SocketAddr>
where
    F: Fn(WebSocketStream<TcpStream>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let session = Arc::new(session);
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let session = session.clone();
            tokio::spawn(async move {
                // tungstenite zero-fills its whole read buffer on every read: keep it small.
                let config = WebSocketConfig::default().read_buffer_size(4096);
                match tokio_tungstenite::accept_async_with_config(socket, Some(config)).await {
                    Ok(ws) => session(ws).await,
                    Err(error) => eprintln!("fake backend: handshake failed: {error}"),
                }
            });
        }
    });
    Ok(address)
}

/// What one synthetic backend session saw.
#[derive(Debug, Default)]
pub(crate) struct BackendReport {
    /// The stream id read from the stamps (`None`: no stamped frame came).
    pub(crate) stream: Option<u32>,
    /// Asterisk → backend frames received.
    pub(crate) received: Received,
    /// Backend → Asterisk frames sent whose due time is inside the window.
    pub(crate) sent_in_window: u64,
    pub(crate) unreadable: u64,
    pub(crate) saw_start: bool,
    pub(crate) saw_stop: bool,
}

/// What every synthetic backend session shares.
#[derive(Debug, Default)]
pub(crate) struct BackendContext {
    /// Sessions that got their first stamped frame.
    pub(crate) streaming: AtomicU64,
    pub(crate) finish: CancellationToken,
    pub(crate) reports: Mutex<Vec<BackendReport>>,
}

/// One synthetic session: echo each frame at once with a backend stamp whose time is the
/// frame's due time at the caller.
pub(crate) async fn synthetic_session(
    ws: WebSocketStream<TcpStream>,
    context: Arc<BackendContext>,
) {
    let (mut sink, mut stream) = ws.split();
    let mut report = BackendReport::default();
    let mut stream_sid = String::new();
    let mut due = DueModel::default();
    let mut seq = 0u32;
    let mut audio = Vec::with_capacity(256);
    let mut b64 = String::with_capacity(256);
    loop {
        let message = tokio::select! {
            () = context.finish.cancelled() => break,
            message = stream.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        let now = stamp::now_us();
        match field(&text, "event") {
            Some("media") => {
                if !decode_payload(&text, &mut audio) {
                    report.unreadable += 1;
                    continue;
                }
                let Some(got) = Stamp::read_ulaw(&audio) else {
                    report.unreadable += 1;
                    continue;
                };
                if report.stream.is_none() {
                    report.stream = Some(got.stream);
                    context.streaming.fetch_add(1, Ordering::Relaxed);
                }
                if WINDOW.contains(got.time_us) {
                    report
                        .received
                        .record(got.seq, now as i64 - got.time_us as i64, false);
                }
                let sent = stamp::now_us();
                let due_us = due.due(sent);
                Stamp {
                    stream: got.stream,
                    seq,
                    time_us: due_us,
                    paced: due_us > sent,
                }
                .write_ulaw(&mut audio);
                seq = seq.wrapping_add(1);
                if WINDOW.contains(due_us) {
                    report.sent_in_window += 1;
                }
                if sink
                    .send(media_message(&stream_sid, &audio, &mut b64))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            Some("start") => {
                report.saw_start = true;
                stream_sid = field(&text, "streamSid").unwrap_or("").to_owned();
            }
            Some("stop") => report.saw_stop = true,
            _ => {}
        }
    }
    if let Ok(mut reports) = context.reports.lock() {
        reports.push(report);
    }
}
