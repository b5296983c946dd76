//! Call audio over chan_websocket (Asterisk 22.6+): an `externalMedia` channel with
//! `transport=websocket`, whose audio the program exchanges on `/media/<connection id>`.
//!
//! Binary frames carry raw audio in the channel's format (µ-law: 160 bytes per 20 ms);
//! text frames carry JSON control events from Asterisk ([`MediaEvent`]) and commands to
//! it ([`MediaCommand`]), wire types of [`ari_model::media`] re-exported here. Asterisk
//! queues about a thousand frames and says `MEDIA_XOFF` when its queue is nearly full:
//! [`MediaSender::send_audio`] waits for `MEDIA_XON` then. Messages over ~65 500 bytes hang the call up, so audio goes out in whole frames,
//! at most [`MAX_FRAMES_PER_MESSAGE`] per message.
//!
//! The connection id is the only credential of `/media/<id>` (Asterisk asks for no ARI
//! login there): it never appears in an error and is logged at debug level only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ari_model::models::{Channel, MediaConnectionType, MediaEncapsulation, MediaTransport};
use ari_model::operations::channels::ExternalMedia;
use bytes::Bytes;
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::{self, Message};

pub use ari_model::media::{
    MAX_COMMAND_BYTES, MAX_MESSAGE_BYTES, MediaCommand, MediaDirection, MediaEvent, MediaStart,
    MediaStatus, QUEUE_MAX_FRAMES, QUEUE_XOFF_FRAMES, QUEUE_XON_FRAMES,
};

use crate::client::Client;
use crate::connection::AppConnection;
use crate::error::{Delivery, Error};
use crate::handles::ChannelHandle;
use crate::websocket::{self, OpenRequest, Socket};

/// Most audio frames sent in one WebSocket message (20 × 160 B = 400 ms of µ-law).
pub const MAX_FRAMES_PER_MESSAGE: usize = 20;

/// Default cap on the audio a sender lets Asterisk queue: 500 frames (10 s at 20 ms),
/// well under its XOFF level (900), so a producer faster than real time never fills it.
pub const DEFAULT_MAX_QUEUED_FRAMES: usize = 500;

/// What arrives on the media socket.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaFrame {
    /// Raw audio in the session's format.
    Audio(Bytes),
    /// A control event.
    Event(MediaEvent),
}

/// Flow control state shared by the two halves.
#[derive(Default)]
struct Flow {
    paused: AtomicBool,
    frame_size: AtomicUsize,
    ptime_ms: AtomicUsize,
    resumed: Notify,
}

/// Reading half of a media socket.
pub struct MediaReceiver {
    stream: SplitStream<Socket>,
    flow: Arc<Flow>,
}

/// Writing half of a media socket.
pub struct MediaSender {
    sink: SplitSink<Socket, Message>,
    flow: Arc<Flow>,
    max_queued_frames: Option<usize>,
    /// When the current run of queued audio started playing, and frames sent since.
    playout: Option<(std::time::Instant, usize)>,
}

fn media_error(message: String, source: Option<tungstenite::Error>) -> Error {
    Error::Transport {
        operation: "media".to_owned(),
        message,
        delivery: Delivery::Unknown,
        source: source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
    }
}

impl MediaReceiver {
    /// The next audio frame or control event; `None` when the socket closed. Tracks
    /// `MEDIA_XOFF`/`MEDIA_XON` and the frame size for the sender.
    ///
    /// # Errors
    /// When the socket fails.
    pub async fn next(&mut self) -> Option<Result<MediaFrame, Error>> {
        loop {
            let message = match self.stream.next().await? {
                Ok(message) => message,
                Err(error) => {
                    return Some(Err(media_error(
                        format!("media socket read failed: {error}"),
                        Some(error),
                    )));
                }
            };
            match message {
                Message::Binary(audio) => return Some(Ok(MediaFrame::Audio(audio))),
                Message::Text(text) => {
                    let event = MediaEvent::from_text(text.as_str());
                    match &event {
                        MediaEvent::Xoff => self.flow.paused.store(true, Ordering::SeqCst),
                        MediaEvent::Xon => {
                            self.flow.paused.store(false, Ordering::SeqCst);
                            self.flow.resumed.notify_waiters();
                        }
                        MediaEvent::Start(start) => {
                            self.flow
                                .frame_size
                                .store(start.optimal_frame_size, Ordering::SeqCst);
                            self.flow
                                .ptime_ms
                                .store(start.ptime as usize, Ordering::SeqCst);
                        }
                        _ => {}
                    }
                    return Some(Ok(MediaFrame::Event(event)));
                }
                Message::Close(_) => {
                    // A closed socket cannot pause us any more.
                    self.flow.paused.store(false, Ordering::SeqCst);
                    self.flow.resumed.notify_waiters();
                    return None;
                }
                _ => {}
            }
        }
    }
}

impl MediaSender {
    /// Caps the audio this sender lets Asterisk queue, estimated from the frames sent
    /// and the time played (`None`: no cap, only `MEDIA_XOFF` stops it). Default
    /// [`DEFAULT_MAX_QUEUED_FRAMES`].
    pub fn set_max_queued_frames(&mut self, frames: Option<usize>) {
        self.max_queued_frames = frames;
    }

    /// Waits until `frames` more fit under the cap, by Asterisk's playout clock.
    async fn pace(&mut self, frames: usize) {
        let Some(max) = self.max_queued_frames else {
            return;
        };
        let ptime = std::time::Duration::from_millis(
            self.flow.ptime_ms.load(Ordering::SeqCst).max(1) as u64,
        );
        let now = std::time::Instant::now();
        let (started, sent) = *self.playout.get_or_insert((now, 0));
        let played = (now.duration_since(started).as_nanos() / ptime.as_nanos()) as usize;
        if played >= sent {
            // The queue ran dry: a new run starts playing now.
            self.playout = Some((now, frames));
            return;
        }
        let queued = sent - played;
        if queued + frames > max {
            let excess = (queued + frames - max) as u32;
            tokio::time::sleep(ptime * excess).await;
        }
        self.playout = Some((started, sent + frames));
    }

    /// Sends audio in whole frames, at most [`MAX_FRAMES_PER_MESSAGE`] per message,
    /// keeping Asterisk's queue under the cap ([`MediaSender::set_max_queued_frames`])
    /// and waiting while Asterisk has said `MEDIA_XOFF`. A trailing partial frame is sent
    /// as is.
    ///
    /// # Errors
    /// When the socket fails.
    pub async fn send_audio(&mut self, audio: &[u8]) -> Result<(), Error> {
        let frame = self.flow.frame_size.load(Ordering::SeqCst).max(1);
        let chunk = frame * MAX_FRAMES_PER_MESSAGE;
        for piece in audio.chunks(chunk) {
            self.pace(piece.len().div_ceil(frame)).await;
            while self.flow.paused.load(Ordering::SeqCst) {
                let resumed = self.flow.resumed.notified();
                if !self.flow.paused.load(Ordering::SeqCst) {
                    break;
                }
                resumed.await;
            }
            self.sink
                .send(Message::binary(Bytes::copy_from_slice(piece)))
                .await
                .map_err(|e| media_error(format!("media socket write failed: {e}"), Some(e)))?;
        }
        Ok(())
    }

    /// Sends a control command.
    ///
    /// # Errors
    /// When the socket fails.
    pub async fn send_command(&mut self, command: MediaCommand) -> Result<(), Error> {
        if command == MediaCommand::FlushMedia {
            // Asterisk drops its queue: nothing of ours is waiting to play.
            self.playout = None;
        }
        self.sink
            .send(Message::text(command.to_json()))
            .await
            .map_err(|e| media_error(format!("media socket write failed: {e}"), Some(e)))
    }

    /// Whether Asterisk asked us to stop sending (`MEDIA_XOFF` without `MEDIA_XON` yet).
    pub fn is_paused(&self) -> bool {
        self.flow.paused.load(Ordering::SeqCst)
    }

    /// Closes the socket (Asterisk hangs the channel up).
    ///
    /// # Errors
    /// When the close frame cannot be sent.
    pub async fn close(&mut self) -> Result<(), Error> {
        self.sink
            .close()
            .await
            .map_err(|e| media_error(format!("media socket close failed: {e}"), Some(e)))
    }
}

/// A connected media socket; [`MediaSocket::split`] it into reader and writer so the
/// reader never waits on the writer.
pub struct MediaSocket {
    socket: Socket,
}

impl std::fmt::Debug for MediaSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSocket").finish_non_exhaustive()
    }
}

impl MediaSocket {
    /// Splits into the reading and writing halves.
    pub fn split(self) -> (MediaSender, MediaReceiver) {
        let flow = Arc::new(Flow {
            frame_size: AtomicUsize::new(160),
            ptime_ms: AtomicUsize::new(20),
            ..Flow::default()
        });
        let (sink, stream) = self.socket.split();
        let sender = MediaSender {
            sink,
            flow: flow.clone(),
            max_queued_frames: Some(DEFAULT_MAX_QUEUED_FRAMES),
            playout: None,
        };
        (sender, MediaReceiver { stream, flow })
    }
}

/// What a refusal of `/media/<id>` means (Asterisk 22.10 answers 404, with an HTML page
/// saying "WebSocket instance not found", to an id it does not know).
fn media_refusal_reason(status: u16) -> Option<&'static str> {
    (status == 404).then_some("no media channel has this connection id (hung up, or never created)")
}

impl Client {
    /// Connects to `/media/<connection_id>` of this client's Asterisk (no ARI login: the
    /// id is the credential, and is logged at debug level only).
    ///
    /// # Errors
    /// When the WebSocket cannot be opened: an unknown id is a 404 [`Error::Api`].
    pub async fn connect_media(&self, connection_id: &str) -> Result<MediaSocket, Error> {
        tracing::debug!(%connection_id, "connecting media WebSocket");
        let request = OpenRequest {
            operation: "media",
            path_and_query: format!(
                "/media/{}",
                ari_model::operation::encode_path_segment(connection_id)
            ),
            describe: "media WebSocket".to_owned(),
            subprotocol: Some("media"),
            authorize: false,
            refusal_reason: media_refusal_reason,
        };
        let socket = websocket::open(self, request).await?;
        Ok(MediaSocket { socket })
    }
}

impl AppConnection {
    /// Connects to `/media/<connection_id>` of this connection's Asterisk
    /// ([`Client::connect_media`]).
    ///
    /// # Errors
    /// When the WebSocket cannot be opened (unknown id: 404).
    pub async fn connect_media(&self, connection_id: &str) -> Result<MediaSocket, Error> {
        self.client().connect_media(connection_id).await
    }

    /// Creates a chan_websocket channel in server mode (`transport=websocket`,
    /// `connection_type=server`, `encapsulation=none`) in `format` (e.g. `ulaw`,
    /// `slin16`) and connects its media socket. The channel enters Stasis only once the
    /// socket is connected; its handle was subscribed before it was created.
    ///
    /// # Errors
    /// As [`crate::Channels::external_media`] and [`AppConnection::connect_media`].
    pub async fn websocket_media(
        &self,
        format: &str,
    ) -> Result<(ChannelHandle, Channel, MediaSocket), Error> {
        let params = ExternalMedia::new(self.app(), format)
            .transport(MediaTransport::Websocket)
            .encapsulation(MediaEncapsulation::None)
            .connection_type(MediaConnectionType::Server)
            .external_host("INCOMING");
        let (handle, channel) = self.external_media(params).await?;
        let connection_id = channel
            .channelvars
            .as_ref()
            .and_then(|vars| vars.get("MEDIA_WEBSOCKET_CONNECTION_ID"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Error::Decode {
                operation: "channels.externalMedia".to_owned(),
                message: "no MEDIA_WEBSOCKET_CONNECTION_ID in the channel's variables (Asterisk 22.6+ needed)".to_owned(),
                body: String::new(),
            })?;
        let socket = self.connect_media(&connection_id).await?;
        Ok((handle, channel, socket))
    }
}
