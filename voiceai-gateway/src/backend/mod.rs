//! AI backend sessions: one WebSocket to the voice bot per [`connect`], speaking
//! [`ProtocolKind::Twilio`] or [`ProtocolKind::Raw`] through [`crate::protocol`].
//!
//! [`connect`] opens the socket (within [`BackendSettings::connect_timeout`], with an
//! `Authorization: Bearer` header when a token is configured) and sends the protocol's
//! opening: `connected` then `start` for Twilio, `start` for raw. It returns the two halves
//! of the session:
//!
//! - [`BackendTx`] takes the caller's audio one 20 ms frame at a time in the *leg format*
//!   (the format of the media leg toward Asterisk), transcodes it to the protocol's format
//!   (μ-law 8 kHz for Twilio, [`BackendSettings::raw_format`] for raw) and sends each frame
//!   as its own message, flushed at once; plus DTMF, mark answers and the final `stop`.
//! - [`BackendRx`] yields [`BackendEvent`]s: audio already transcoded to the leg format (of
//!   any length; the relay re-frames it), marks, `clear`, call control, transcripts and,
//!   last, [`BackendEvent::Closed`] with how the socket ended.
//!
//! # Writes never hold up the call
//! The send methods never wait for the network: they queue the message for the session's
//! writer task, which sends each message on its own and flushes it at once (audio is never
//! batched). A backend that stops reading is found out two ways: a write that does not
//! complete within [`DEFAULT_WRITE_STALL_LIMIT`] (see [`BackendTx::set_write_stall_limit`]),
//! or 128 messages (about 2.5 s of audio) waiting for the writer. Either ends the session:
//! the send that finds the queue full returns [`BackendError::Stalled`], every later send
//! [`BackendError::Closed`], and [`BackendRx::recv`] returns `Closed(Abnormal(..))`, so the
//! relay can treat it like a dropped socket.
//!
//! # How a session ends
//! A close frame from the bot with code 1000 (normal) or 1001 (going away), or without a
//! code, is [`BackendClose::Normal`]: the bot ended the conversation. Anything else (a TCP
//! reset or end of stream without a close frame, a protocol error, a message over
//! [`MAX_MESSAGE_BYTES`], any other close code, a failed write) is
//! [`BackendClose::Abnormal`] with the reason.
//!
//! Malformed messages from the bot (bad JSON, a bad base64 payload, a known event missing
//! its fields, binary frames on Twilio) are skipped and counted; a warning is logged at
//! most every 10 s with the number skipped in between.
//!
//! # The URL map file (`--backend-map`)
//! A call's URL is the channel variable [`BackendSettings::url_variable`] when set (and a
//! valid `ws://` / `wss://` URL), else the map file's entry for the dialled number, else
//! [`BackendSettings::default_url`] ([`resolve_url`]).
//!
//! The map file is UTF-8 text, one entry a line: the dialled number, white space, the
//! backend's `ws://` or `wss://` URL. Blank lines and lines whose first non-blank character is `#` are ignored,
//! as is anything after a `#` that follows white space. A number is matched exactly
//! against the dialled number (the dialplan's `${EXTEN}`); it may appear only once.
//!
//! ```text
//! # dialled number   backend
//! 0312345678         wss://bots.example.com/sales
//! +81312345679       ws://127.0.0.1:8766/support   # the support bot
//! 8000               ws://127.0.0.1:8765/
//! ```
//!
//! # Logging
//! Nothing here logs the token, a URL's user info or its query (see [`redact_url`]);
//! lines are emitted inside the caller's span (the relay's, with the call and channel
//! ids).

mod session;
mod url;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_tungstenite::Connector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self};

pub use self::session::{BackendRx, BackendTx};
pub use self::url::{load_url_map, redact_url, resolve_url, validate_url};
use crate::audio::AudioFormat;
use crate::protocol::twilio::StreamIds;
use crate::protocol::{CallInfo, ProtocolKind};

/// The channel variable that, when set in the dialplan, overrides a call's backend URL.
pub const DEFAULT_URL_VARIABLE: &str = "VOICEAI_BACKEND_URL";

/// The default for [`BackendSettings::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The largest message (and frame) accepted from a backend: 1 MiB, about 32 s of slin16 or
/// 95 s of base64 μ-law. A larger one ends the session abnormally.
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// The most the socket buffers for writing: 1 MiB (a hard bound; the writer task flushes
/// every message, so this only matters for a backend that does not read).
pub const MAX_WRITE_BUFFER_BYTES: usize = 1 << 20;

/// How long one write may wait for a backend that does not read before the session fails.
pub const DEFAULT_WRITE_STALL_LIMIT: Duration = Duration::from_secs(2);

/// How a call reaches its backend. Its `Debug` shows no token and redacted URLs.
#[derive(Clone, PartialEq, Eq)]
pub struct BackendSettings {
    /// The protocol the backend speaks.
    pub protocol: ProtocolKind,
    /// The URL of calls with no more specific one: `ws://` or `wss://`.
    pub default_url: String,
    /// Dialled number → URL (from the `--backend-map` file, see [`load_url_map`]).
    pub url_by_number: BTreeMap<String, String>,
    /// The channel variable whose value, when set, is the call's URL.
    pub url_variable: String,
    /// Sent as `Authorization: Bearer <token>` (never logged).
    pub auth_token: Option<String>,
    /// The audio format of the raw protocol (Twilio is always μ-law 8 kHz).
    pub raw_format: AudioFormat,
    /// The Twilio `accountSid` announced in `start` (through [`Self::stream_ids`]).
    pub account_sid: String,
    /// How long [`connect`] may take, opening messages included.
    pub connect_timeout: Duration,
}

impl fmt::Debug for BackendSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let map: BTreeMap<&str, String> = self
            .url_by_number
            .iter()
            .map(|(number, url)| (number.as_str(), redact_url(url)))
            .collect();
        f.debug_struct("BackendSettings")
            .field("protocol", &self.protocol)
            .field("default_url", &redact_url(&self.default_url))
            .field("url_by_number", &map)
            .field("url_variable", &self.url_variable)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .field("raw_format", &self.raw_format)
            .field("account_sid", &self.account_sid)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl BackendSettings {
    /// Checks what [`connect`] would refuse for every call: the default URL, the map's
    /// URLs and the token (which must fit in an HTTP header).
    ///
    /// # Errors
    /// [`BackendError::InvalidUrl`] or [`BackendError::InvalidToken`].
    pub fn validate(&self) -> Result<(), BackendError> {
        validate_url(&self.default_url)?;
        for url in self.url_by_number.values() {
            validate_url(url)?;
        }
        if let Some(token) = &self.auth_token {
            bearer(token)?;
        }
        Ok(())
    }

    /// Settings for `default_url` with every other field at its default: Twilio, no map,
    /// [`DEFAULT_URL_VARIABLE`], no token, raw slin16, an all-zero account SID,
    /// [`DEFAULT_CONNECT_TIMEOUT`].
    pub fn new(default_url: impl Into<String>) -> Self {
        Self {
            protocol: ProtocolKind::Twilio,
            default_url: default_url.into(),
            url_by_number: BTreeMap::new(),
            url_variable: DEFAULT_URL_VARIABLE.to_owned(),
            auth_token: None,
            raw_format: AudioFormat::Slin16,
            account_sid: format!("AC{}", "0".repeat(32)),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Fresh Twilio SIDs for a new stream (a new call SID and stream SID under
    /// `account_sid`), to pass to [`connect`]. A reconnection of the same call keeps the
    /// call SID and takes a new stream SID.
    pub fn stream_ids(&self) -> StreamIds {
        StreamIds::random(self.account_sid.clone())
    }

    /// The audio format on the backend's wire: μ-law for Twilio, `raw_format` for raw.
    pub fn wire_format(&self) -> AudioFormat {
        match self.protocol {
            ProtocolKind::Twilio => crate::protocol::twilio::MEDIA_FORMAT,
            ProtocolKind::Raw => self.raw_format,
        }
    }
}

/// What the backend asks for, in the order it sent it.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendEvent {
    /// Audio to play, already transcoded to the leg format, of any length.
    Audio(bytes::Bytes),
    /// Answer with [`BackendTx::send_mark`] once the audio before it has been played.
    Mark(String),
    /// Barge-in: drop the queued audio and answer every pending mark.
    Clear,
    /// Hang the call up (raw protocol).
    Hangup {
        /// An ARI hang-up reason, when given.
        reason: Option<String>,
    },
    /// Send the caller to a dialplan extension (raw protocol).
    Transfer {
        /// The extension.
        extension: String,
        /// The context; the gateway's configured one when `None`.
        context: Option<String>,
    },
    /// A JSON text message whose `event` or `type` is `"transcript"`, as sent, for the
    /// monitors.
    Transcript(serde_json::Value),
    /// The session is over; always the last event (every later `recv` returns it again).
    Closed(BackendClose),
}

/// How a backend session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendClose {
    /// The bot closed with code 1000 or 1001 (or no code): it ended the conversation.
    Normal,
    /// Anything else: reset, end of stream without a close frame, protocol error, another
    /// close code, a failed or stalled write. The string says which.
    Abnormal(String),
}

/// What can go wrong with a backend. URLs in messages are redacted ([`redact_url`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// Not a usable `ws://` / `wss://` URL.
    #[error("backend URL {url}: {reason}")]
    InvalidUrl {
        /// The URL, redacted.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The map file cannot be read.
    #[error("backend map {}: {source}", path.display())]
    MapRead {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A bad line in the map file.
    #[error("backend map {}, line {line}: {message}", path.display())]
    MapLine {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The configured token is empty or cannot go in an HTTP header.
    #[error("the backend auth token is empty or holds characters an HTTP header cannot carry")]
    InvalidToken,
    /// No TLS configuration for a `wss://` URL (no usable platform roots).
    #[error("backend {url}: TLS: {reason}")]
    Tls {
        /// The URL, redacted.
        url: String,
        /// What is missing.
        reason: String,
    },
    /// The socket was not open (and the opening sent) within the connect timeout.
    #[error("backend {url}: not connected within {timeout:?}")]
    Timeout {
        /// The URL, redacted.
        url: String,
        /// The time allowed.
        timeout: Duration,
    },
    /// The backend answered the WebSocket handshake with an HTTP error status.
    #[error("backend {url} refused the WebSocket with HTTP {status}")]
    Refused {
        /// The URL, redacted.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// The connection or handshake failed.
    #[error("backend {url}: cannot connect: {reason}")]
    Connect {
        /// The URL, redacted.
        url: String,
        /// What failed.
        reason: String,
        /// The WebSocket library's error.
        #[source]
        source: Box<tungstenite::Error>,
    },
    /// The socket failed while sending.
    #[error("backend {url}: send failed: {reason}")]
    Send {
        /// The URL, redacted.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The backend does not take the gateway's messages: `queued` are waiting for it.
    #[error("backend {url} stopped reading: {queued} messages waiting")]
    Stalled {
        /// The URL, redacted.
        url: String,
        /// How many messages were waiting.
        queued: usize,
    },
    /// The session has already ended (closed, failed or stalled).
    #[error("backend {url}: the session is over ({reason})")]
    Closed {
        /// The URL, redacted.
        url: String,
        /// Why it ended.
        reason: String,
    },
    /// Not a DTMF digit (`0`-`9`, `*`, `#`, `A`-`D`).
    #[error("{digit:?} is not a DTMF digit")]
    InvalidDigit {
        /// The character.
        digit: char,
    },
}

/// The settings of every backend socket: messages and frames up to [`MAX_MESSAGE_BYTES`],
/// reads 4 KiB at a time, at most [`MAX_WRITE_BUFFER_BYTES`] buffered for writing (each
/// message is flushed as it is sent, so the write threshold only matters when the backend
/// does not read).
///
/// The read buffer is small on purpose: tungstenite zero-fills all of it before every
/// read call (at least one per message), and it stays allocated for the session; a 20 ms
/// `media` message is about 300 bytes, and larger ones are simply read in several steps.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
        .read_buffer_size(4 << 10)
        .write_buffer_size(MAX_WRITE_BUFFER_BYTES / 2)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
}

/// The rustls configuration of `wss://` backends: the platform's roots, loaded once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            for certificate in loaded.certs {
                let _ = roots.add(certificate);
            }
            if roots.is_empty() {
                return Err(format!(
                    "no usable certificates in the platform trust store ({} errors)",
                    loaded.errors.len()
                ));
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
}

/// Opens one backend socket and sends the protocol's opening (Twilio: `connected` then
/// `start`; raw: `start`), all within `settings.connect_timeout`.
///
/// `leg_format` is the format of the frames the relay passes to [`BackendTx::send_audio`]
/// and wants back in [`BackendEvent::Audio`]. `ids` are the Twilio SIDs of this stream (a
/// reconnection should use a fresh stream SID); raw ignores them.
///
/// # Errors
/// [`BackendError::InvalidUrl`], [`BackendError::InvalidToken`], [`BackendError::Tls`],
/// [`BackendError::Timeout`], [`BackendError::Refused`] (an HTTP status, e.g. 401 for a
/// wrong token) or [`BackendError::Connect`]; each names the URL, redacted.
pub async fn connect(
    settings: &BackendSettings,
    url: &str,
    call: &CallInfo,
    ids: &StreamIds,
    leg_format: AudioFormat,
) -> Result<(BackendTx, BackendRx), BackendError> {
    validate_url(url)?;
    let redacted: Arc<str> = redact_url(url).into();
    let mut request = url
        .into_client_request()
        .map_err(|e| BackendError::InvalidUrl {
            url: redacted.to_string(),
            reason: e.to_string(),
        })?;
    if let Some(token) = &settings.auth_token {
        request
            .headers_mut()
            .insert("Authorization", bearer(token)?);
    }
    let tls = url
        .get(..6)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("wss://"));
    let connector = if tls {
        Connector::Rustls(tls_config().map_err(|reason| BackendError::Tls {
            url: redacted.to_string(),
            reason,
        })?)
    } else {
        Connector::Plain
    };
    let timeout = settings.connect_timeout;
    let opening = async {
        let (socket, _response) = tokio_tungstenite::connect_async_tls_with_config(
            request,
            Some(socket_config()),
            true,
            Some(connector),
        )
        .await
        .map_err(|error| connect_error(&redacted, error))?;
        session::open(socket, settings, call, ids, leg_format, redacted.clone()).await
    };
    match tokio::time::timeout(timeout, opening).await {
        Ok(result) => result,
        Err(_) => Err(BackendError::Timeout {
            url: redacted.to_string(),
            timeout,
        }),
    }
}

/// The `Authorization` header of `token`, marked sensitive.
fn bearer(token: &str) -> Result<HeaderValue, BackendError> {
    if token.is_empty() {
        return Err(BackendError::InvalidToken);
    }
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| BackendError::InvalidToken)?;
    value.set_sensitive(true);
    Ok(value)
}

/// A connection failure as a [`BackendError`].
fn connect_error(url: &str, error: tungstenite::Error) -> BackendError {
    let reason = match &error {
        tungstenite::Error::Http(response) => {
            return BackendError::Refused {
                url: url.to_owned(),
                status: response.status().as_u16(),
            };
        }
        tungstenite::Error::Io(io) => format!("connection failed: {io}"),
        tungstenite::Error::Tls(tls) => format!("TLS failed: {tls}"),
        // Some URL errors quote the URL, which may hold a secret.
        tungstenite::Error::Url(_) => "unusable URL".to_owned(),
        other => format!("handshake failed: {other}"),
    };
    BackendError::Connect {
        url: url.to_owned(),
        reason,
        source: Box::new(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_no_token_and_redacted_urls() {
        let mut settings = BackendSettings::new("wss://u:pw@bot/x?key=k1");
        settings.auth_token = Some("tok3n".into());
        settings
            .url_by_number
            .insert("8000".into(), "ws://bot/y?key=k2".into());
        let debug = format!("{settings:?}");
        for secret in ["tok3n", "pw", "k1", "k2"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("wss://bot/x?…"), "{debug}");
    }

    #[test]
    fn validate_checks_urls_and_token() {
        let mut settings = BackendSettings::new("ws://bot/");
        assert!(settings.validate().is_ok());
        settings.auth_token = Some("bad\ntoken".into());
        assert!(matches!(
            settings.validate(),
            Err(BackendError::InvalidToken)
        ));
        settings.auth_token = Some(String::new());
        assert!(matches!(
            settings.validate(),
            Err(BackendError::InvalidToken)
        ));
        settings.auth_token = Some("good".into());
        settings
            .url_by_number
            .insert("1".into(), "http://x/".into());
        assert!(matches!(
            settings.validate(),
            Err(BackendError::InvalidUrl { .. })
        ));
        let ids = settings.stream_ids();
        assert!(ids.call_sid.starts_with("CA") && ids.stream_sid.starts_with("MZ"));
        assert_eq!(ids.account_sid, settings.account_sid);
    }
}
