//! The media leg toward Asterisk: an `externalMedia` channel and the audio path to it,
//! over one of three transports behind one interface.
//!
//! - [`MediaKind::Websocket`] (Asterisk 22.6+): chan_websocket in server mode, through
//!   `ari-client`'s media helper; the gateway connects to `/media/<connection id>`.
//!   Formats ulaw, alaw, slin16. [`MediaTx::flush`] sends `FLUSH_MEDIA`.
//! - [`MediaKind::Rtp`] (any Asterisk since 16.6): one UDP socket per call, bound on
//!   [`MediaSettings::rtp_address`] at an even port of [`MediaSettings::rtp_ports`]
//!   (given back when the leg's halves are dropped); Asterisk sends to it, the gateway
//!   answers to `UNICASTRTP_LOCAL_ADDRESS`/`UNICASTRTP_LOCAL_PORT`. Formats ulaw and
//!   alaw. Datagrams from any other address,
//!   of another payload type, or that are not RTP, are dropped. Asterisk 22.10 sends
//!   slin16 but drops the slin16 RTP it receives (chan_rtp maps no dynamic payload type
//!   for reception; verified on the lab), so slin16 over RTP is refused.
//! - [`MediaKind::Audiosocket`] (Asterisk 18+): one TCP listener per factory on
//!   [`MediaSettings::audiosocket_listen`]; Asterisk connects and names the call by the
//!   UUID given in `data`; the factory routes the connection to the waiting
//!   [`MediaFactory::open`]. Formats slin (8 kHz) and slin16.
//!
//! [`MediaFactory::open`] creates the channel with the caller's id (its handle subscribed
//! before creation) and returns once the channel is in Stasis and its media path is
//! connected, within [`MediaSettings::connect_timeout`]; on any failure it hangs up the
//! channel it created. [`MediaRx::recv`] yields exactly one 20 ms frame per
//! [`MediaInput::Audio`], as it arrives, then [`MediaInput::Ended`] once when the media
//! path ends. DTMF is not carried here: the call relay takes it from ARI's
//! `ChannelDtmfReceived`.
//!
//! Network input never panics the gateway; the media connection id of chan_websocket and
//! the AudioSocket UUID are logged at debug level only.

mod audiosocket;
mod ports;
mod rtp;
mod websocket;

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ari_client::model::events::StasisStart;
use ari_client::model::models::HangupReason;
use ari_client::{AppConnection, ChannelHandle};
use bytes::Bytes;
use tokio::time::Instant;
use tracing::Instrument as _;

use crate::audio::AudioFormat;

/// How long a failed or timed-out [`MediaFactory::open`] waits for the request that
/// creates the channel to finish, and then for the hang-up, before it gives up on them.
pub const CLEANUP_GRACE: Duration = Duration::from_secs(5);

/// The transport of the media leg toward Asterisk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// chan_websocket (Asterisk 22.6+), the default.
    Websocket,
    /// RTP over UDP (any Asterisk since 16.6).
    Rtp,
    /// AudioSocket over TCP (Asterisk 18+).
    Audiosocket,
}

impl MediaKind {
    /// Every kind.
    pub const ALL: [MediaKind; 3] = [Self::Websocket, Self::Rtp, Self::Audiosocket];

    /// The kind's name: `websocket`, `rtp` or `audiosocket`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Websocket => "websocket",
            Self::Rtp => "rtp",
            Self::Audiosocket => "audiosocket",
        }
    }

    /// The formats the transport carries.
    pub const fn formats(self) -> &'static [AudioFormat] {
        match self {
            Self::Websocket => &[AudioFormat::Ulaw, AudioFormat::Alaw, AudioFormat::Slin16],
            // Asterisk 22.10 sends slin16 over RTP but drops the slin16 it receives.
            Self::Rtp => &[AudioFormat::Ulaw, AudioFormat::Alaw],
            Self::Audiosocket => &[AudioFormat::Slin, AudioFormat::Slin16],
        }
    }

    /// The format a leg uses unless told otherwise: ulaw, or slin for AudioSocket.
    pub const fn default_format(self) -> AudioFormat {
        match self {
            Self::Websocket | Self::Rtp => AudioFormat::Ulaw,
            Self::Audiosocket => AudioFormat::Slin,
        }
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A media kind that is not `websocket`, `rtp` or `audiosocket`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown media transport {0:?} (expected websocket, rtp or audiosocket)")]
pub struct UnknownMediaKind(pub String);

impl FromStr for MediaKind {
    type Err = UnknownMediaKind;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownMediaKind(name.to_owned()))
    }
}

/// How the media legs are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaSettings {
    /// The transport.
    pub kind: MediaKind,
    /// The legs' audio format (websocket: ulaw, alaw, slin16; rtp: ulaw, alaw; audiosocket: slin,
    /// slin16).
    pub format: AudioFormat,
    /// Local address of the RTP sockets, also sent to Asterisk as `external_host`: one
    /// Asterisk can reach (not unspecified).
    pub rtp_address: IpAddr,
    /// UDP ports of the RTP sockets; the even ones are used, one per call.
    pub rtp_ports: RangeInclusive<u16>,
    /// The TCP listener Asterisk connects AudioSocket calls to, also sent as
    /// `external_host` (not unspecified; port 0 picks a free port, which
    /// [`MediaFactory::settings`] then shows).
    pub audiosocket_listen: SocketAddr,
    /// How long [`MediaFactory::open`] waits for the channel and its media path.
    pub connect_timeout: Duration,
}

impl Default for MediaSettings {
    /// websocket, ulaw, RTP on 127.0.0.1 ports 20000-29999, AudioSocket on
    /// 127.0.0.1:9092, 5 s to connect.
    fn default() -> Self {
        Self {
            kind: MediaKind::Websocket,
            format: AudioFormat::Ulaw,
            rtp_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            rtp_ports: 20000..=29999,
            audiosocket_listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9092),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

impl MediaSettings {
    /// Refuses settings no leg could be made with.
    fn check(&self) -> Result<(), MediaError> {
        if !self.kind.formats().contains(&self.format) {
            return Err(MediaError::Settings(format!(
                "{} media does not carry {} (it carries {})",
                self.kind,
                self.format,
                self.kind
                    .formats()
                    .iter()
                    .map(|format| format.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        match self.kind {
            MediaKind::Rtp => {
                if self.rtp_address.is_unspecified() {
                    return Err(MediaError::Settings(format!(
                        "the RTP address {} is unspecified: Asterisk needs one it can send to",
                        self.rtp_address
                    )));
                }
                if ports::even_ports(&self.rtp_ports).next().is_none() {
                    return Err(MediaError::Settings(format!(
                        "the RTP port range {}-{} has no even port",
                        self.rtp_ports.start(),
                        self.rtp_ports.end()
                    )));
                }
            }
            MediaKind::Audiosocket => {
                if self.audiosocket_listen.ip().is_unspecified() {
                    return Err(MediaError::Settings(format!(
                        "the AudioSocket address {} is unspecified: Asterisk needs one it can connect to",
                        self.audiosocket_listen
                    )));
                }
            }
            MediaKind::Websocket => {}
        }
        Ok(())
    }
}

/// What went wrong with a media leg.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Settings no leg can be made with.
    #[error("media settings: {0}")]
    Settings(String),
    /// An ARI request or wait failed (the channel could not be created, ended before
    /// entering Stasis, ...).
    #[error("ARI: {0}")]
    Ari(#[from] ari_client::Error),
    /// A step of [`MediaFactory::open`] did not finish within the connect time-out.
    #[error("timed out after {timeout:?} {stage}")]
    Timeout {
        /// What was being waited for.
        stage: &'static str,
        /// The connect time-out.
        timeout: Duration,
    },
    /// Every RTP port of the range is taken by another call.
    #[error("no free RTP port in {first}-{last}: every one is in use")]
    PortsExhausted {
        /// The range's first port.
        first: u16,
        /// The range's last port.
        last: u16,
    },
    /// A socket could not be bound.
    #[error("cannot bind {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Reading or writing a media socket failed.
    #[error("{operation}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// Asterisk did not say where its RTP goes (`UNICASTRTP_LOCAL_ADDRESS`/`PORT`).
    #[error("Asterisk gave no usable {0}")]
    MissingVariable(&'static str),
    /// A frame that is not exactly 20 ms of the leg's format.
    #[error("a frame of {got} bytes where 20 ms of {format} is {expected}")]
    FrameLength {
        /// The leg's format.
        format: AudioFormat,
        /// Bytes in a 20 ms frame.
        expected: usize,
        /// Bytes given.
        got: usize,
    },
    /// The media path has ended (the channel hung up, the socket closed).
    #[error("the media path has ended")]
    Closed,
}

/// What comes from Asterisk on a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaInput {
    /// Exactly one 20 ms frame in the leg's format.
    Audio(Bytes),
    /// The media path ended (once; [`MediaRx::recv`] gives `None` afterwards).
    Ended {
        /// Why, for logs and the call's record.
        reason: String,
    },
}

/// A media leg: the externalMedia channel and its audio path, both ways.
#[derive(Debug)]
pub struct MediaLeg {
    /// The externalMedia channel (in Stasis; its StasisStart already taken from
    /// `channel.events`).
    pub channel: ChannelHandle,
    /// The audio format of both directions.
    pub format: AudioFormat,
    /// Audio toward Asterisk.
    pub tx: MediaTx,
    /// Audio from Asterisk.
    pub rx: MediaRx,
}

/// The sending half of a leg.
#[derive(Debug)]
pub struct MediaTx {
    inner: TxInner,
    format: AudioFormat,
    /// To hang the channel up on [`MediaTx::close`].
    app: AppConnection,
    channel_id: String,
}

#[derive(Debug)]
enum TxInner {
    Websocket(websocket::Tx),
    Rtp(rtp::Tx),
    Audiosocket(audiosocket::Tx),
}

impl MediaTx {
    /// The leg's format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// One whole frame, called by the relay at real time (it paces with audio::Playout).
    /// `spurt_start`: the first frame after a pause (RTP sets the marker bit and moves
    /// the timestamp on by the pause).
    ///
    /// # Errors
    /// [`MediaError::FrameLength`] for anything but exactly 20 ms of the leg's format
    /// (nothing is sent); [`MediaError::Closed`] or an I/O / ARI error once the media
    /// path has ended.
    pub async fn send_frame(&mut self, frame: &[u8], spurt_start: bool) -> Result<(), MediaError> {
        let expected = self.format.frame_bytes();
        if frame.len() != expected {
            return Err(MediaError::FrameLength {
                format: self.format,
                expected,
                got: frame.len(),
            });
        }
        match &mut self.inner {
            TxInner::Websocket(tx) => tx.send_frame(frame).await,
            TxInner::Rtp(tx) => tx.send_frame(frame, spurt_start).await,
            TxInner::Audiosocket(tx) => tx.send_frame(frame).await,
        }
    }

    /// Barge-in: drop what Asterisk still queues (websocket FLUSH_MEDIA; no-op otherwise).
    ///
    /// # Errors
    /// When the websocket is closed or the command cannot be sent.
    pub async fn flush(&mut self) -> Result<(), MediaError> {
        match &mut self.inner {
            TxInner::Websocket(tx) => tx.flush().await,
            TxInner::Rtp(_) | TxInner::Audiosocket(_) => Ok(()),
        }
    }

    /// Ends the media path (closes the socket: chan_websocket and AudioSocket hang up
    /// themselves) and hangs the channel up over ARI (a channel already gone is fine),
    /// within [`CLEANUP_GRACE`]. The RTP port goes back to the pool once the
    /// [`MediaRx`] is dropped too.
    pub async fn close(self) {
        match self.inner {
            TxInner::Websocket(tx) => tx.close().await,
            TxInner::Rtp(tx) => drop(tx),
            TxInner::Audiosocket(tx) => tx.close().await,
        }
        hang_up(&self.app, &self.channel_id).await;
    }
}

/// The receiving half of a leg.
#[derive(Debug)]
pub struct MediaRx {
    inner: RxInner,
    ended: bool,
}

#[derive(Debug)]
enum RxInner {
    Websocket(websocket::Rx),
    Rtp(rtp::Rx),
    Audiosocket(audiosocket::Rx),
}

impl MediaRx {
    /// The next 20 ms frame from Asterisk as it arrives, or [`MediaInput::Ended`] once
    /// the media path ended; `None` after that. Cancel-safe.
    pub async fn recv(&mut self) -> Option<MediaInput> {
        if self.ended {
            return None;
        }
        let input = match &mut self.inner {
            RxInner::Websocket(rx) => rx.recv().await,
            RxInner::Rtp(rx) => rx.recv().await,
            RxInner::Audiosocket(rx) => rx.recv().await,
        };
        if let MediaInput::Ended { reason } = &input {
            tracing::debug!(%reason, "media path ended");
            self.ended = true;
        }
        Some(input)
    }
}

/// Makes the media legs of every call: holds the RTP port pool or the AudioSocket
/// listener and its routing of connections to calls. Cheap to clone (shared inside).
#[derive(Debug, Clone)]
pub struct MediaFactory {
    inner: Arc<FactoryInner>,
}

#[derive(Debug)]
struct FactoryInner {
    settings: MediaSettings,
    transport: Transport,
}

#[derive(Debug)]
enum Transport {
    Websocket,
    Rtp(Arc<ports::PortPool>),
    Audiosocket(audiosocket::Listener),
}

impl MediaFactory {
    /// Checks `settings` and sets up what the transport shares between calls (the RTP
    /// port pool; the AudioSocket listener, bound now).
    ///
    /// # Errors
    /// [`MediaError::Settings`] for settings no leg can be made with (a format the
    /// transport does not carry, an unspecified address, no even RTP port);
    /// [`MediaError::Bind`] when the AudioSocket listener cannot be bound.
    pub async fn new(settings: MediaSettings) -> Result<MediaFactory, MediaError> {
        settings.check()?;
        let mut settings = settings;
        let transport = match settings.kind {
            MediaKind::Websocket => Transport::Websocket,
            MediaKind::Rtp => Transport::Rtp(Arc::new(ports::PortPool::new(&settings.rtp_ports))),
            MediaKind::Audiosocket => {
                let listener = audiosocket::Listener::bind(
                    settings.audiosocket_listen,
                    settings.connect_timeout,
                )
                .await?;
                settings.audiosocket_listen = listener.local_addr();
                Transport::Audiosocket(listener)
            }
        };
        Ok(MediaFactory {
            inner: Arc::new(FactoryInner {
                settings,
                transport,
            }),
        })
    }

    /// The settings (with the AudioSocket port actually bound).
    pub fn settings(&self) -> &MediaSettings {
        &self.inner.settings
    }

    /// Creates the externalMedia channel with id `channel_id` (subscribed before creation),
    /// and returns once it is in Stasis and its media path is connected.
    ///
    /// Bounded by [`MediaSettings::connect_timeout`] (plus at most [`CLEANUP_GRACE`]
    /// when it fails: it then waits for the creating request to finish and hangs the
    /// channel up, so no channel it made outlives a failed open).
    ///
    /// # Errors
    /// [`MediaError::Timeout`] when a step does not finish in time;
    /// [`MediaError::PortsExhausted`] when no RTP port is free; [`MediaError::Ari`]
    /// when Asterisk refuses the channel or it ends before entering Stasis; others as
    /// the transport says.
    pub async fn open(
        &self,
        app: &AppConnection,
        channel_id: &str,
    ) -> Result<MediaLeg, MediaError> {
        let settings = &self.inner.settings;
        let deadline = Instant::now() + settings.connect_timeout;
        let opening = Opening {
            app,
            channel_id,
            format: settings.format,
            deadline,
            timeout: settings.connect_timeout,
        };
        let result = match &self.inner.transport {
            Transport::Websocket => websocket::open(&opening).await,
            Transport::Rtp(pool) => rtp::open(&opening, settings.rtp_address, pool).await,
            Transport::Audiosocket(listener) => audiosocket::open(&opening, listener).await,
        };
        // A step that finished after the deadline (a timer and an answer ready together)
        // is a time-out too: `open` takes at most `connect_timeout`, whatever won the race.
        let result = match result {
            Ok(_) if Instant::now() > deadline => Err(opening.timed_out("connecting")),
            other => other,
        };
        match result {
            Ok((channel, tx, rx)) => {
                tracing::debug!(channel_id, kind = %settings.kind, format = %settings.format, "media leg open");
                Ok(MediaLeg {
                    channel,
                    format: settings.format,
                    tx: MediaTx {
                        inner: tx,
                        format: settings.format,
                        app: app.clone(),
                        channel_id: channel_id.to_owned(),
                    },
                    rx: MediaRx {
                        inner: rx,
                        ended: false,
                    },
                })
            }
            Err(error) => {
                tracing::debug!(channel_id, %error, "media leg failed to open; hanging its channel up");
                hang_up(app, channel_id).await;
                Err(error)
            }
        }
    }
}

/// What every transport's `open` needs.
struct Opening<'a> {
    app: &'a AppConnection,
    channel_id: &'a str,
    format: AudioFormat,
    deadline: Instant,
    timeout: Duration,
}

impl Opening<'_> {
    /// Runs the request that creates the channel in a task of its own, so that the
    /// deadline does not cut it short half-way: on time-out it waits (at most
    /// [`CLEANUP_GRACE`]) for the request to finish, so that the caller's hang-up comes
    /// after the channel exists.
    async fn create<T: Send + 'static>(
        &self,
        request: impl Future<Output = Result<T, ari_client::Error>> + Send + 'static,
    ) -> Result<T, MediaError> {
        let mut task = tokio::spawn(request.in_current_span());
        match tokio::time::timeout_at(self.deadline, &mut task).await {
            Ok(Ok(result)) => result.map_err(MediaError::Ari),
            Ok(Err(join)) => Err(MediaError::Io {
                operation: "creating the media channel",
                source: io::Error::other(join.to_string()),
            }),
            Err(_) => {
                if tokio::time::timeout(CLEANUP_GRACE, task).await.is_err() {
                    tracing::warn!(
                        channel_id = self.channel_id,
                        "the request creating a media channel did not finish within {CLEANUP_GRACE:?} of the time-out"
                    );
                }
                Err(self.timed_out("creating the channel"))
            }
        }
    }

    /// Waits (until the deadline) for the channel's StasisStart.
    async fn in_stasis(&self, channel: &mut ChannelHandle) -> Result<(), MediaError> {
        match tokio::time::timeout_at(self.deadline, channel.events.wait_for::<StasisStart>()).await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(MediaError::Ari(error)),
            Err(_) => Err(self.timed_out("waiting for the channel's StasisStart")),
        }
    }

    fn timed_out(&self, stage: &'static str) -> MediaError {
        MediaError::Timeout {
            stage,
            timeout: self.timeout,
        }
    }
}

/// Hangs `channel_id` up (best effort, within [`CLEANUP_GRACE`]; a channel already gone
/// is fine).
async fn hang_up(app: &AppConnection, channel_id: &str) {
    let handle = app.channel(channel_id);
    match tokio::time::timeout(CLEANUP_GRACE, handle.hangup(HangupReason::Normal)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) if error.is_not_found() => {}
        Ok(Err(error)) => tracing::debug!(channel_id, %error, "hanging up the media channel"),
        Err(_) => tracing::debug!(channel_id, "hanging up the media channel timed out"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_print_and_parse() {
        for kind in MediaKind::ALL {
            assert_eq!(kind.to_string().parse::<MediaKind>(), Ok(kind));
            assert!(kind.formats().contains(&kind.default_format()));
        }
        assert_eq!("RTP".parse::<MediaKind>(), Ok(MediaKind::Rtp));
        assert!("sip".parse::<MediaKind>().is_err());
    }

    #[test]
    fn settings_no_leg_can_be_made_with_are_refused() {
        let ok = MediaSettings::default();
        assert!(ok.check().is_ok());
        let refused = [
            MediaSettings {
                format: AudioFormat::Slin,
                ..ok.clone()
            },
            MediaSettings {
                kind: MediaKind::Audiosocket,
                format: AudioFormat::Ulaw,
                ..ok.clone()
            },
            MediaSettings {
                kind: MediaKind::Rtp,
                rtp_address: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                ..ok.clone()
            },
            MediaSettings {
                kind: MediaKind::Rtp,
                rtp_ports: 10001..=10001,
                ..ok.clone()
            },
            MediaSettings {
                kind: MediaKind::Audiosocket,
                format: AudioFormat::Slin,
                audiosocket_listen: "0.0.0.0:9092".parse().unwrap(),
                ..ok.clone()
            },
        ];
        for settings in refused {
            assert!(
                matches!(settings.check(), Err(MediaError::Settings(_))),
                "{settings:?}"
            );
        }
    }

    #[tokio::test]
    async fn audiosocket_port_zero_shows_the_port_bound() {
        let factory = MediaFactory::new(MediaSettings {
            kind: MediaKind::Audiosocket,
            format: AudioFormat::Slin,
            audiosocket_listen: "127.0.0.1:0".parse().unwrap(),
            ..MediaSettings::default()
        })
        .await
        .unwrap();
        assert_ne!(factory.settings().audiosocket_listen.port(), 0);
    }
}
