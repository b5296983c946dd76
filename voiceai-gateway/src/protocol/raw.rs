//! The raw protocol: the call's audio as binary WebSocket frames, its control as JSON text
//! frames, for backends that want signed linear audio without base64.
//!
//! # Specification (version 1)
//!
//! The gateway opens a WebSocket to the backend's URL when a call arrives and closes it
//! when the call is over (after `stop`). The backend may close it to end its part; the
//! gateway then keeps or ends the call as configured.
//!
//! ## Binary frames: audio
//! Audio is mono, in the format that `start` announces: `slin16` (16-bit signed
//! little-endian samples at 16 kHz, 640 bytes per 20 ms), `slin` (the same at 8 kHz, 320
//! bytes), `ulaw` or `alaw` (G.711 at 8 kHz, 160 bytes).
//!
//! - Gateway → backend: the caller's audio, one 20 ms frame per message, in real time.
//! - Backend → gateway: audio to play to the caller, in the same format, of any length:
//!   the gateway cuts it into 20 ms frames (a partial frame, even half a sample, waits for
//!   the next message), queues it and plays it at real time. Sending faster than real time
//!   (a whole sentence at once) is fine; the queue holds 60 s.
//!
//! ## Text frames: control
//! Each text frame is one JSON object with a string `event`. Both sides ignore events they
//! do not know and fields they do not know, so later versions can add either; a known
//! event with a missing required field or a field of the wrong type is an error (the
//! gateway logs it and goes on). Optional fields may be absent or `null`.
//!
//! Gateway → backend:
//!
//! | `event` | fields | meaning |
//! |---|---|---|
//! | `start` | `protocol`: `"raw"`; `version`: `1`; `channel_id`; `from_number` (caller); `to_number` (dialled); `caller_name`; `variables`: object of string values (the configured channel variables); `format`: {`encoding`: `"slin16"`/`"slin"`/`"ulaw"`/`"alaw"`, `sample_rate`, `channels`: `1`, `frame_ms`: `20`, `frame_bytes`} | the first message, before any audio |
//! | `dtmf` | `digit`: one character, `0`-`9`, `*`, `#`, `A`-`D` | the caller pressed a key |
//! | `mark` | `name`; `played`: `true` when the audio before the mark has been played, `false` when a `clear` dropped it | answer to the backend's `mark` |
//! | `stop` | `reason`: `"hangup"` (the caller hung up), `"backend_hangup"` (after the backend's `hangup`), `"transfer"` (after a `transfer`), `"shutdown"` (the gateway is stopping) | the last message; the gateway closes the socket after it |
//!
//! Backend → gateway:
//!
//! | `event` | fields | meaning |
//! |---|---|---|
//! | `mark` | `name` | answer with a `mark` of this name once the audio sent before it has been played |
//! | `clear` | | barge-in: drop all audio not played yet at once; every pending mark is answered (`played: false`) |
//! | `hangup` | `reason` (optional): an ARI hang-up reason (`normal`, `busy`, `congestion`, `no_answer`, `rejected`, ...) | hang the call up |
//! | `transfer` | `extension`; `context` (optional, the gateway's configured context when absent) | send the caller to this dialplan extension |
//!
//! Example of a call:
//!
//! ```text
//! G→B text   {"event":"start","protocol":"raw","version":1,"channel_id":"1700000000.42",
//!             "from_number":"+15551230000","to_number":"8000","caller_name":"Ada",
//!             "variables":{"CUSTOMER":"42"},"format":{"encoding":"slin16",
//!             "sample_rate":16000,"channels":1,"frame_ms":20,"frame_bytes":640}}
//! G→B binary 640 bytes, every 20 ms
//! B→G binary 64 000 bytes (2 s of speech)
//! B→G text   {"event":"mark","name":"greeting"}
//! G→B text   {"event":"dtmf","digit":"1"}
//! G→B text   {"event":"mark","name":"greeting","played":true}
//! B→G text   {"event":"transfer","extension":"100"}
//! G→B text   {"event":"stop","reason":"transfer"}
//! ```

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{BackendMessage, CallInfo, ProtocolError, event_of};
use crate::audio::{AudioFormat, FRAME_MS};

/// The protocol version this module speaks, sent in `start`.
pub const VERSION: u32 = 1;

/// Why the gateway ends the stream, sent in `stop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopReason {
    /// The caller hung up.
    Hangup,
    /// The backend asked to hang up.
    BackendHangup,
    /// The backend asked for a transfer, which has been made.
    Transfer,
    /// The gateway is shutting down.
    Shutdown,
}

impl StopReason {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hangup => "hangup",
            Self::BackendHangup => "backend_hangup",
            Self::Transfer => "transfer",
            Self::Shutdown => "shutdown",
        }
    }
}

#[derive(Serialize)]
struct Start<'a> {
    event: &'static str,
    protocol: &'static str,
    version: u32,
    channel_id: &'a str,
    from_number: &'a str,
    to_number: &'a str,
    caller_name: &'a str,
    variables: &'a std::collections::BTreeMap<String, String>,
    format: Format,
}

#[derive(Serialize)]
struct Format {
    encoding: &'static str,
    sample_rate: u32,
    channels: u32,
    frame_ms: u32,
    frame_bytes: usize,
}

#[derive(Serialize)]
struct Dtmf<'a> {
    event: &'static str,
    digit: &'a str,
}

#[derive(Serialize)]
struct Mark<'a> {
    event: &'static str,
    name: &'a str,
    played: bool,
}

#[derive(Serialize)]
struct Stop {
    event: &'static str,
    reason: &'static str,
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Our own structs (string keys, no floats) always serialise.
    serde_json::to_string(value).unwrap_or_default()
}

/// The `start` message: the call, and the audio `format` both sides use.
pub fn start(call: &CallInfo, format: AudioFormat) -> String {
    to_json(&Start {
        event: "start",
        protocol: "raw",
        version: VERSION,
        channel_id: &call.channel_id,
        from_number: &call.caller_number,
        to_number: &call.dialed_number,
        caller_name: &call.caller_name,
        variables: &call.variables,
        format: Format {
            encoding: format.as_str(),
            sample_rate: format.sample_rate(),
            channels: 1,
            frame_ms: FRAME_MS,
            frame_bytes: format.frame_bytes(),
        },
    })
}

/// A `dtmf` message for a key the caller pressed.
pub fn dtmf(digit: char) -> String {
    let mut text = [0; 4];
    to_json(&Dtmf {
        event: "dtmf",
        digit: digit.encode_utf8(&mut text),
    })
}

/// A `mark` message answering the backend's mark `name`: `played` when its audio has
/// been played, not when a `clear` dropped it.
pub fn mark(name: &str, played: bool) -> String {
    to_json(&Mark {
        event: "mark",
        name,
        played,
    })
}

/// The `stop` message, the last one.
pub fn stop(reason: StopReason) -> String {
    to_json(&Stop {
        event: "stop",
        reason: reason.as_str(),
    })
}

/// A binary frame from the backend: audio to play.
pub fn decode_binary(data: Bytes) -> BackendMessage {
    BackendMessage::Audio(data)
}

#[derive(Deserialize)]
struct MarkIn {
    name: String,
}

#[derive(Deserialize)]
struct HangupIn {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
struct TransferIn {
    extension: String,
    #[serde(default)]
    context: Option<String>,
}

/// A text frame from the backend.
///
/// # Errors
/// [`ProtocolError::Json`] when the frame is not a JSON object with a string `event`, or a
/// known event lacks a required field or has one of the wrong type. Unknown events (and
/// the gateway's own, such as `start`) are `Ok(Ignored)`.
pub fn decode_text(text: &str) -> Result<BackendMessage, ProtocolError> {
    let event = event_of(text)?;
    Ok(match &*event {
        "mark" => {
            let MarkIn { name } = serde_json::from_str(text)?;
            BackendMessage::Mark(name)
        }
        "clear" => BackendMessage::Clear,
        "hangup" => {
            let HangupIn { reason } = serde_json::from_str(text)?;
            BackendMessage::Hangup { reason }
        }
        "transfer" => {
            let TransferIn { extension, context } = serde_json::from_str(text)?;
            BackendMessage::Transfer { extension, context }
        }
        _ => BackendMessage::Ignored {
            event: event.into_owned(),
        },
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::{Value, json};

    use super::*;

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn start_announces_the_call_and_the_format() {
        let call = CallInfo {
            channel_id: "1700000000.42".into(),
            caller_number: "+15551230000".into(),
            caller_name: "Ada".into(),
            dialed_number: "8000".into(),
            variables: BTreeMap::from([("CUSTOMER".to_owned(), "42".to_owned())]),
        };
        assert_eq!(
            parse(&start(&call, AudioFormat::Slin16)),
            json!({
                "event": "start",
                "protocol": "raw",
                "version": 1,
                "channel_id": "1700000000.42",
                "from_number": "+15551230000",
                "to_number": "8000",
                "caller_name": "Ada",
                "variables": {"CUSTOMER": "42"},
                "format": {
                    "encoding": "slin16",
                    "sample_rate": 16000,
                    "channels": 1,
                    "frame_ms": 20,
                    "frame_bytes": 640,
                },
            })
        );
        let ulaw = parse(&start(&CallInfo::default(), AudioFormat::Ulaw));
        assert_eq!(
            ulaw["format"],
            json!({"encoding": "ulaw", "sample_rate": 8000, "channels": 1, "frame_ms": 20, "frame_bytes": 160})
        );
    }

    #[test]
    fn control_messages_to_the_backend() {
        assert_eq!(parse(&dtmf('7')), json!({"event": "dtmf", "digit": "7"}));
        assert_eq!(
            parse(&mark("a \"b\"", true)),
            json!({"event": "mark", "name": "a \"b\"", "played": true})
        );
        assert_eq!(
            parse(&mark("x", false)),
            json!({"event": "mark", "name": "x", "played": false})
        );
        for (reason, name) in [
            (StopReason::Hangup, "hangup"),
            (StopReason::BackendHangup, "backend_hangup"),
            (StopReason::Transfer, "transfer"),
            (StopReason::Shutdown, "shutdown"),
        ] {
            assert_eq!(
                parse(&stop(reason)),
                json!({"event": "stop", "reason": name})
            );
        }
    }

    #[test]
    fn reads_the_backends_messages() {
        let cases = [
            (
                r#"{"event":"mark","name":"m"}"#,
                BackendMessage::Mark("m".into()),
            ),
            (r#"{"event":"clear"}"#, BackendMessage::Clear),
            (
                r#"{"event":"hangup"}"#,
                BackendMessage::Hangup { reason: None },
            ),
            (
                r#"{"event":"hangup","reason":null}"#,
                BackendMessage::Hangup { reason: None },
            ),
            (
                r#"{"event":"hangup","reason":"busy","extra":1}"#,
                BackendMessage::Hangup {
                    reason: Some("busy".into()),
                },
            ),
            (
                r#"{"event":"transfer","extension":"100"}"#,
                BackendMessage::Transfer {
                    extension: "100".into(),
                    context: None,
                },
            ),
            (
                r#"{"event":"transfer","extension":"100","context":"agents"}"#,
                BackendMessage::Transfer {
                    extension: "100".into(),
                    context: Some("agents".into()),
                },
            ),
            (
                r#"{"event":"say","text":"hello","name":5}"#,
                BackendMessage::Ignored {
                    event: "say".into(),
                },
            ),
            (
                r#"{"event":"start","format":"nonsense"}"#,
                BackendMessage::Ignored {
                    event: "start".into(),
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(decode_text(text).unwrap(), expected, "{text}");
        }
        assert_eq!(
            decode_binary(Bytes::from_static(&[1, 2, 3])),
            BackendMessage::Audio(Bytes::from_static(&[1, 2, 3]))
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        for text in [
            "",
            "{",
            "null",
            r#"{"name":"m"}"#,
            r#"{"event":null}"#,
            r#"{"event":"mark"}"#,
            r#"{"event":"mark","name":1}"#,
            r#"{"event":"hangup","reason":3}"#,
            r#"{"event":"transfer"}"#,
            r#"{"event":"transfer","extension":"1","context":[]}"#,
        ] {
            assert!(
                matches!(decode_text(text), Err(ProtocolError::Json { .. })),
                "{text:?}"
            );
        }
    }

    /// Every message the gateway writes is ignored by the decoder (they are the other
    /// direction's), random mutations of messages never panic it.
    #[test]
    fn random_mutations_never_panic() {
        let mut rng = fastrand::Rng::with_seed(0x4a_57);
        let samples = [
            start(&CallInfo::default(), AudioFormat::Slin16),
            dtmf('5'),
            stop(StopReason::Hangup),
            r#"{"event":"transfer","extension":"100","context":"agents"}"#.to_owned(),
            r#"{"event":"hangup","reason":"normal"}"#.to_owned(),
        ];
        for text in &samples[..3] {
            assert!(matches!(
                decode_text(text),
                Ok(BackendMessage::Ignored { .. })
            ));
        }
        for _ in 0..2000 {
            let mut bytes = samples[rng.usize(..samples.len())].clone().into_bytes();
            for _ in 0..rng.usize(1..6) {
                let at = rng.usize(..bytes.len());
                match rng.u8(..3) {
                    0 => bytes[at] = rng.u8(..),
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.truncate(at),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let _ = decode_text(&String::from_utf8_lossy(&bytes));
        }
    }
}
