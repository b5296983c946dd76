//! Call audio over chan_websocket (Asterisk 22.6+): an `externalMedia` channel with
//! `transport=websocket`, whose audio the program exchanges on `/media/<connection id>`.
//!
//! Binary messages carry raw audio in the channel's format (µ-law: 160 bytes per 20 ms);
//! text messages carry JSON control events from Asterisk ([`MediaEvent`]) and commands to
//! it ([`MediaCommand`]). Those wire types live in [`ari_model::media`], with the limits
//! Asterisk enforces; they are re-exported here.
//!
//! [`MediaSocket::split`] gives a [`MediaSender`] and a [`MediaReceiver`] and starts a
//! reader task that owns the reading half. The task reads every message as it arrives,
//! whatever the application does, and applies the control events the sender depends on:
//! `MEDIA_XOFF`/`MEDIA_XON`, the frame size and ptime of `MEDIA_START`, and the end of
//! the socket. It then queues the message for the receiver, at most
//! [`RECEIVER_QUEUE_FRAMES`]; when the application does not read, what does not fit is
//! counted and the receiver gets [`MediaFrame::Lagged`] with the count before its next
//! frame; when the receiver is dropped, messages are discarded. The reader never waits on
//! the application, so a program that only sends (or only receives) cannot stall the
//! other direction. The receiver is a [`futures::Stream`] of
//! `Result<MediaFrame, Error>`; [`MediaReceiver::recv`] is the same without the trait.
//!
//! [`MediaSender::send_audio`] sends whole frames, at most [`MAX_FRAMES_PER_MESSAGE`] a
//! message (messages over ~65 500 bytes hang the call up). It keeps its own estimate of
//! what Asterisk has queued (frames sent minus frames played at one per ptime, on tokio's
//! clock) under a cap, [`DEFAULT_MAX_QUEUED_FRAMES`] unless
//! [`MediaSender::set_max_queued_frames`] says otherwise, and waits while Asterisk has
//! said `MEDIA_XOFF` (with the default cap a minute of audio goes out in about 50 s and
//! Asterisk never says it). When the socket closes or fails, a sender waiting for
//! `MEDIA_XON` wakes and gets an error. The task ends with the socket; when both halves
//! are dropped it closes the socket.
//!
//! [`AppConnection::websocket_media`] creates the channel and connects its socket;
//! [`Client::connect_media`] connects to a connection id obtained otherwise.
//!
//! The connection id is the only credential of `/media/<id>` (Asterisk asks for no ARI
//! login there): it never appears in an error and is logged at debug level only.
//!
//! ```no_run
//! use ari_client::media::{MediaEvent, MediaFrame};
//! use futures::StreamExt as _;
//!
//! # async fn run(app: ari_client::AppConnection) -> Result<(), ari_client::Error> {
//! let (channel, _, socket) = app.websocket_media("ulaw").await?;
//! let (mut sender, mut receiver) = socket.split();
//! tokio::spawn(async move {
//!     while let Some(frame) = receiver.next().await {
//!         match frame {
//!             Ok(MediaFrame::Audio(_caller)) => { /* 160 bytes every 20 ms */ }
//!             Ok(MediaFrame::Event(MediaEvent::DtmfEnd { digit })) => println!("DTMF {digit}"),
//!             Ok(other) => println!("{other:?}"),
//!             Err(error) => eprintln!("{error}"),
//!         }
//!     }
//! });
//! let greeting = vec![0xFF_u8; 160 * 50 * 60]; // a minute of µ-law silence
//! sender.send_audio(&greeting).await?; // paced; honours MEDIA_XOFF
//! channel.hangup(ari_client::model::models::HangupReason::Normal).await?;
//! # Ok(())
//! # }
//! ```

mod reader;
mod sender;

use ari_model::models::{
    Channel, HangupReason, MediaConnectionType, MediaEncapsulation, MediaTransport,
};
use ari_model::operations::channels::ExternalMedia;
use bytes::Bytes;
use futures::StreamExt as _;

pub use ari_model::media::{
    MAX_COMMAND_BYTES, MAX_MESSAGE_BYTES, MediaCommand, MediaDirection, MediaEvent, MediaStart,
    MediaStatus, QUEUE_MAX_FRAMES, QUEUE_XOFF_FRAMES, QUEUE_XON_FRAMES,
};
pub use reader::MediaReceiver;
pub use sender::MediaSender;

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

/// Messages the reader task holds for a [`MediaReceiver`] that is not read: 500 (10 s of
/// audio at 20 ms); beyond, they are counted and reported as [`MediaFrame::Lagged`].
pub const RECEIVER_QUEUE_FRAMES: usize = 500;

/// What arrives on the media socket.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaFrame {
    /// Raw audio in the session's format.
    Audio(Bytes),
    /// A control event (already applied to the sender's flow control).
    Event(MediaEvent),
    /// The receiver was not read fast enough: this many messages (audio or events)
    /// before the next one were dropped.
    Lagged {
        /// How many.
        missed: u64,
    },
}

/// A connected media socket; [`MediaSocket::split`] it to use it.
pub struct MediaSocket {
    socket: Socket,
    runtime: tokio::runtime::Handle,
}

impl std::fmt::Debug for MediaSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSocket").finish_non_exhaustive()
    }
}

impl MediaSocket {
    /// Splits into the writing and reading halves, and starts the reader task (on the
    /// runtime the socket was connected on) that reads every message as it arrives.
    pub fn split(self) -> (MediaSender, MediaReceiver) {
        let (sink, stream) = self.socket.split();
        let (flow, frames, sink_back) = reader::spawn(&self.runtime, stream);
        let receiver = MediaReceiver::new(frames, flow.clone());
        (MediaSender::new(sink, sink_back, flow), receiver)
    }
}

/// A media socket error; `message` says what was being done, `source` why it failed.
fn media_error(
    message: &str,
    delivery: Delivery,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
) -> Error {
    Error::Transport {
        operation: "media".to_owned(),
        message: message.to_owned(),
        delivery,
        source,
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
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("media sockets need a tokio runtime".to_owned()))?;
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
        Ok(MediaSocket { socket, runtime })
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
    /// `slin16`) with a new id, and connects its media socket
    /// ([`AppConnection::websocket_media_with`]).
    ///
    /// # Errors
    /// As [`AppConnection::websocket_media_with`].
    pub async fn websocket_media(
        &self,
        format: &str,
    ) -> Result<(ChannelHandle, Channel, MediaSocket), Error> {
        self.websocket_media_with(ExternalMedia::new(self.app(), format))
            .await
    }

    /// Creates a chan_websocket channel in server mode from `params` (its `channel_id`,
    /// when given, is the channel's id: keep such ids prefix-free; `app`, `format`,
    /// `variables`, `direction`, `data`, `transport_data` as given) and connects its
    /// media socket. `transport`, `encapsulation`, `connection_type` and `external_host`
    /// are set to server mode (`websocket`, `none`, `server`, `INCOMING`). The channel
    /// enters Stasis only once the socket is connected; its handle was subscribed before
    /// it was created. When the socket cannot be connected, the channel is hung up
    /// (best effort) before the error is returned.
    ///
    /// # Errors
    /// As [`crate::resources::Channels::external_media`] and [`AppConnection::connect_media`];
    /// [`Error::Decode`] when the channel has no `MEDIA_WEBSOCKET_CONNECTION_ID` (an
    /// Asterisk before 22.6).
    pub async fn websocket_media_with(
        &self,
        params: ExternalMedia,
    ) -> Result<(ChannelHandle, Channel, MediaSocket), Error> {
        let params = params
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
            .map(str::to_owned);
        let socket = match connection_id {
            Some(connection_id) => self.connect_media(&connection_id).await,
            None => Err(Error::Decode {
                operation: "channels.externalMedia".to_owned(),
                message: "no MEDIA_WEBSOCKET_CONNECTION_ID in the channel's variables (Asterisk 22.6+ needed)".to_owned(),
                body: String::new(),
            }),
        };
        match socket {
            Ok(socket) => Ok((handle, channel, socket)),
            Err(error) => {
                if let Err(hangup) = handle.hangup(HangupReason::Normal).await {
                    tracing::debug!(channel_id = %handle.id(), error = %hangup, "hanging up a media channel whose socket failed");
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shareable<T: Send + Sync + 'static>() {}

    fn sendable<T: Send>(_: &T) {}

    #[test]
    fn halves_and_their_futures_can_cross_tasks() {
        shareable::<MediaSocket>();
        shareable::<MediaSender>();
        shareable::<MediaReceiver>();
        shareable::<MediaFrame>();
        #[allow(dead_code)]
        async fn futures(sender: &mut MediaSender, receiver: &mut MediaReceiver) {
            sendable(&sender.send_audio(&[]));
            sendable(&sender.send_command(MediaCommand::GetStatus));
            sendable(&sender.close());
            sendable(&receiver.recv());
        }
    }
}
