//! The wire protocols spoken to the AI voice backend over its WebSocket.
//!
//! - [`twilio`] (the default): Twilio Media Streams, so bots written for Twilio (Pipecat's
//!   `TwilioFrameSerializer`, Vocode, Twilio's samples) work unchanged.
//! - [`raw`]: the same call life cycle with binary audio frames and JSON control messages,
//!   for backends that want slin16 without base64.
//!
//! Both build the gateway's messages from the same [`CallInfo`] and turn what the backend
//! sends into the same [`BackendMessage`]s, so the call path handles either protocol the
//! same way. Parsing is tolerant: unknown events and extra fields are ignored; a malformed
//! message is a [`ProtocolError`], never a panic.

pub mod raw;
pub mod twilio;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::Deserialize;

/// The call as the backend is told about it at the start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallInfo {
    /// The Asterisk channel id of the caller's channel.
    pub channel_id: String,
    /// The caller's number (caller id), empty when unknown.
    pub caller_number: String,
    /// The caller's name (caller id name), empty when unknown.
    pub caller_name: String,
    /// The number the caller dialled (the dialplan extension).
    pub dialed_number: String,
    /// Channel variables configured to be passed to the backend, by name.
    pub variables: BTreeMap<String, String>,
}

/// What the backend asks of the gateway, from either protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendMessage {
    /// Audio to play to the caller, of any length, in the protocol's format (μ-law 8 kHz
    /// for [`twilio`], the configured format for [`raw`]); re-frame it before playing.
    Audio(Bytes),
    /// Answer with this mark once the audio sent before it has been played.
    Mark(String),
    /// Barge-in: drop the audio not played yet, and answer every pending mark.
    Clear,
    /// Hang the call up ([`raw`] only).
    Hangup {
        /// An ARI hang-up reason (`normal`, `busy`, ...), when given.
        reason: Option<String>,
    },
    /// Send the caller to a dialplan extension ([`raw`] only).
    Transfer {
        /// The extension.
        extension: String,
        /// The dialplan context; the gateway's configured one when `None`.
        context: Option<String>,
    },
    /// A well-formed message the gateway has no use for (an unknown event, or one the
    /// protocol defines only the other way); skip it.
    Ignored {
        /// Its event name.
        event: String,
    },
}

/// A backend message that cannot be understood.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Not JSON, not an object with a string `event`, or a known event whose fields are
    /// missing or of the wrong type.
    #[error("malformed backend message: {source}")]
    Json {
        /// What serde_json found.
        #[source]
        source: serde_json::Error,
    },
    /// A `media` payload that is not base64.
    #[error("media payload is not valid base64: {source}")]
    Base64 {
        /// What the decoder found.
        #[source]
        source: base64::DecodeSliceError,
    },
}

impl From<serde_json::Error> for ProtocolError {
    fn from(source: serde_json::Error) -> Self {
        Self::Json { source }
    }
}

/// The `event` of a JSON text message, read without looking at (or failing on) any other
/// field, so that an unknown event is never an error.
pub(crate) fn event_of(text: &str) -> Result<Cow<'_, str>, ProtocolError> {
    #[derive(Deserialize)]
    struct Event<'a> {
        #[serde(borrow)]
        event: Cow<'a, str>,
    }
    let Event { event } = serde_json::from_str(text)?;
    Ok(event)
}

/// Which protocol the backend speaks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum ProtocolKind {
    /// Twilio Media Streams ([`twilio`]).
    #[default]
    Twilio,
    /// Binary audio and JSON control ([`raw`]).
    Raw,
}

impl ProtocolKind {
    /// The name used in configuration: `twilio` or `raw`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Twilio => "twilio",
            Self::Raw => "raw",
        }
    }
}

impl fmt::Display for ProtocolKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A protocol name other than `twilio` and `raw`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown backend protocol {0:?} (expected twilio or raw)")]
pub struct UnknownProtocol(pub String);

impl FromStr for ProtocolKind {
    type Err = UnknownProtocol;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Twilio, Self::Raw]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownProtocol(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names_round_trip() {
        for kind in [ProtocolKind::Twilio, ProtocolKind::Raw] {
            assert_eq!(kind.to_string().parse::<ProtocolKind>(), Ok(kind));
        }
        assert_eq!(ProtocolKind::default(), ProtocolKind::Twilio);
        assert!("vonage".parse::<ProtocolKind>().is_err());
    }
}
