//! The wire types of chan_websocket media (Asterisk 22.6+; JSON control since 22.8):
//! what travels on `/media/<connection id>` besides the audio itself. Pure data, no I/O.
//!
//! A media WebSocket carries binary messages of raw audio in the channel's format
//! (µ-law: 160 bytes per 20 ms) and text messages of JSON: events from Asterisk
//! ([`MediaEvent`], `{"event":"MEDIA_START",...}`) and commands to it ([`MediaCommand`],
//! `{"command":"FLUSH_MEDIA"}`). chan_websocket must run with
//! `control_message_format = json` (chan_websocket.conf); the legacy plain-text lines
//! are not decoded here.
//!
//! Limits Asterisk enforces (chan_websocket.c, 22.10):
//! - a text message over [`MAX_COMMAND_BYTES`] is ignored without a word;
//! - a message over [`MAX_MESSAGE_BYTES`] closes the socket and hangs the call up;
//! - the queue of audio waiting to play holds about [`QUEUE_MAX_FRAMES`] frames: Asterisk
//!   says `MEDIA_XOFF` when it reaches [`QUEUE_XOFF_FRAMES`] and `MEDIA_XON` once it is
//!   below [`QUEUE_XON_FRAMES`]; a binary message arriving on a full queue is dropped.
//!
//! Decoding is tolerant: an event this version does not know, or a known one whose
//! fields do not decode, is kept whole as [`MediaEvent::Unknown`]; nothing here panics on
//! what arrives from the network.
//!
//! ```
//! use ari_model::media::{MediaCommand, MediaEvent};
//!
//! assert_eq!(MediaEvent::from_text(r#"{"event":"MEDIA_XOFF","channel_id":"c1"}"#), MediaEvent::Xoff);
//! assert!(matches!(MediaEvent::from_text(r#"{"event":"SOMETHING_NEW"}"#), MediaEvent::Unknown { .. }));
//! assert_eq!(MediaCommand::FlushMedia.to_json(), r#"{"command":"FLUSH_MEDIA"}"#);
//! ```

use serde::Deserialize;

/// Longest text message (command) Asterisk reads, in bytes; longer ones are ignored.
pub const MAX_COMMAND_BYTES: usize = 128;

/// Longest message Asterisk's WebSocket code takes, in bytes; a longer one closes the
/// socket and hangs the call up.
pub const MAX_MESSAGE_BYTES: usize = 65_500;

/// Frames Asterisk queues for playout at most (20 s at 20 ms a frame).
pub const QUEUE_MAX_FRAMES: usize = 1000;

/// Queue length at which Asterisk says `MEDIA_XOFF`.
pub const QUEUE_XOFF_FRAMES: usize = 900;

/// Asterisk says `MEDIA_XON` once its queue is shorter than this, after a `MEDIA_XOFF`.
pub const QUEUE_XON_FRAMES: usize = 800;

/// `MEDIA_START`: the media session's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MediaStart {
    /// The media connection id (the secret of `/media/<id>`: do not log it).
    pub connection_id: String,
    /// Channel name (`WebSocket/...`).
    pub channel: String,
    /// Channel id.
    pub channel_id: String,
    /// Audio format, e.g. `ulaw`, `slin16`.
    pub format: String,
    /// Bytes per frame (160 for µ-law at 20 ms).
    pub optimal_frame_size: usize,
    /// Milliseconds per frame.
    pub ptime: u32,
    /// Channel variables Asterisk passes along.
    #[serde(default)]
    pub channel_variables: serde_json::Map<String, serde_json::Value>,
}

/// `STATUS`: Asterisk's outbound audio queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MediaStatus {
    /// Frames queued.
    pub queue_length: u64,
    /// Queue length below which Asterisk says `MEDIA_XON`.
    pub xon_level: u64,
    /// Queue length at which Asterisk says `MEDIA_XOFF`.
    pub xoff_level: u64,
    /// Whether the queue is full (`MEDIA_XOFF` said, `MEDIA_XON` not yet).
    pub queue_full: bool,
    /// Whether media buffering is on.
    pub bulk_media: bool,
    /// Whether media is paused.
    pub media_paused: bool,
}

/// A control event from Asterisk.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// The session started.
    Start(MediaStart),
    /// A DTMF digit ended.
    DtmfEnd {
        /// The digit.
        digit: String,
    },
    /// Asterisk's queue is nearly full: stop sending audio.
    Xoff,
    /// Asterisk's queue has room again.
    Xon,
    /// Answer to `GET_STATUS`.
    Status(MediaStatus),
    /// Buffered media has all been queued.
    BufferingCompleted,
    /// Playback reached a mark set with `MARK_MEDIA`.
    MarkProcessed {
        /// The mark's correlation id.
        correlation_id: String,
    },
    /// The queue drained (after `REPORT_QUEUE_DRAINED`).
    QueueDrained,
    /// Asterisk reported an error (its text is in `error_text`).
    Error {
        /// The whole event.
        raw: serde_json::Value,
    },
    /// An event this version does not know, or a text message that is not an event,
    /// kept whole.
    Unknown {
        /// Its `event` name (empty when the message is not a JSON object with one).
        event: String,
        /// The whole event (the text as a JSON string when it is not JSON).
        raw: serde_json::Value,
    },
}

impl MediaEvent {
    /// Decodes a text message; `None` when it is not a JSON object with an `event`.
    pub fn parse(text: &str) -> Option<MediaEvent> {
        let raw: serde_json::Value = serde_json::from_str(text).ok()?;
        let event = raw.get("event")?.as_str()?.to_owned();
        let text_field = |name: &str| {
            raw.get(name)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Some(match event.as_str() {
            "MEDIA_START" => match MediaStart::deserialize(&raw) {
                Ok(start) => MediaEvent::Start(start),
                Err(_) => MediaEvent::Unknown { event, raw },
            },
            "DTMF_END" => MediaEvent::DtmfEnd {
                digit: text_field("digit"),
            },
            "MEDIA_XOFF" => MediaEvent::Xoff,
            "MEDIA_XON" => MediaEvent::Xon,
            "STATUS" => match MediaStatus::deserialize(&raw) {
                Ok(status) => MediaEvent::Status(status),
                Err(_) => MediaEvent::Unknown { event, raw },
            },
            "MEDIA_BUFFERING_COMPLETED" => MediaEvent::BufferingCompleted,
            "MEDIA_MARK_PROCESSED" => MediaEvent::MarkProcessed {
                correlation_id: text_field("correlation_id"),
            },
            "QUEUE_DRAINED" => MediaEvent::QueueDrained,
            "ERROR" => MediaEvent::Error { raw },
            _ => MediaEvent::Unknown { event, raw },
        })
    }

    /// Decodes any text message: what [`MediaEvent::parse`] cannot read becomes
    /// [`MediaEvent::Unknown`] with an empty `event` and the text as `raw`.
    pub fn from_text(text: &str) -> MediaEvent {
        MediaEvent::parse(text).unwrap_or_else(|| MediaEvent::Unknown {
            event: String::new(),
            raw: serde_json::Value::String(text.to_owned()),
        })
    }
}

crate::string_enum::string_enum! {
    /// Which way audio flows between Asterisk and the application
    /// ([`MediaCommand::SetMediaDirection`]).
    MediaDirection {
        /// Asterisk sends the caller's audio to the application only; audio the
        /// application sends is dropped.
        In = "in",
        /// The application's audio plays to the caller; Asterisk sends none back.
        Out = "out",
        /// Both ways (the default).
        Both = "both",
    }
}

/// A command to Asterisk.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaCommand {
    /// Answer the channel.
    Answer,
    /// Hang the channel up.
    Hangup,
    /// Queue audio faster than real time until `StopMediaBuffering`.
    StartMediaBuffering,
    /// End bulk buffering.
    StopMediaBuffering,
    /// Report [`MediaEvent::MarkProcessed`] when playback reaches this point.
    MarkMedia {
        /// Returned in the event (keep it short: the whole command must fit in
        /// [`MAX_COMMAND_BYTES`]).
        correlation_id: String,
    },
    /// Drop all queued audio (barge-in).
    FlushMedia,
    /// Pause playback of queued audio.
    PauseMedia,
    /// Resume playback.
    ContinueMedia,
    /// Ask for a [`MediaEvent::Status`].
    GetStatus,
    /// Report [`MediaEvent::QueueDrained`] when the queue empties.
    ReportQueueDrained,
    /// Let audio flow one way only, or both ways again.
    SetMediaDirection {
        /// The direction.
        direction: MediaDirection,
    },
}

impl MediaCommand {
    /// The command as Asterisk reads it (a text message; over [`MAX_COMMAND_BYTES`]
    /// Asterisk ignores it).
    pub fn to_json(&self) -> String {
        let name = match self {
            MediaCommand::Answer => "ANSWER",
            MediaCommand::Hangup => "HANGUP",
            MediaCommand::StartMediaBuffering => "START_MEDIA_BUFFERING",
            MediaCommand::StopMediaBuffering => "STOP_MEDIA_BUFFERING",
            MediaCommand::MarkMedia { correlation_id } => {
                return serde_json::json!({"command": "MARK_MEDIA", "correlation_id": correlation_id}).to_string();
            }
            MediaCommand::FlushMedia => "FLUSH_MEDIA",
            MediaCommand::PauseMedia => "PAUSE_MEDIA",
            MediaCommand::ContinueMedia => "CONTINUE_MEDIA",
            MediaCommand::GetStatus => "GET_STATUS",
            MediaCommand::ReportQueueDrained => "REPORT_QUEUE_DRAINED",
            MediaCommand::SetMediaDirection { direction } => {
                return serde_json::json!({"command": "SET_MEDIA_DIRECTION", "direction": direction.as_str()}).to_string();
            }
        };
        serde_json::json!({ "command": name }).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from the lab (Asterisk 22.10.1, control_message_format = json).
    const START: &str = r#"{"event":"MEDIA_START","connection_id":"afcbd2c3-a930-476d-848e-46b8066f3ad5","channel":"WebSocket/INCOMING/0x7fc97c013f20","channel_id":"media-290cc55663ed8a3bf180e5170d7a439a","format":"ulaw","optimal_frame_size":160,"ptime":20,"channel_variables":{"MEDIA_WEBSOCKET_CONNECTION_ID":"afcbd2c3-a930-476d-848e-46b8066f3ad5","MEDIA_WEBSOCKET_OPTIMAL_FRAME_SIZE":"160"}}"#;
    const STATUS: &str = r#"{"event":"STATUS","channel_id":"media-290cc55663ed8a3bf180e5170d7a439a","queue_length":0,"xon_level":800,"xoff_level":900,"queue_full":false,"bulk_media":false,"media_paused":false}"#;
    const MARK: &str = r#"{"event":"MEDIA_MARK_PROCESSED","channel_id":"media-290cc55663ed8a3bf180e5170d7a439a","correlation_id":"m1"}"#;

    #[test]
    fn parses_what_asterisk_sends() {
        match MediaEvent::parse(START) {
            Some(MediaEvent::Start(start)) => {
                assert_eq!(
                    (start.format.as_str(), start.optimal_frame_size, start.ptime),
                    ("ulaw", 160, 20)
                );
            }
            other => panic!("{other:?}"),
        }
        match MediaEvent::parse(STATUS) {
            Some(MediaEvent::Status(status)) => {
                assert_eq!((status.xon_level, status.xoff_level), (800, 900))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            MediaEvent::parse(MARK),
            Some(MediaEvent::MarkProcessed {
                correlation_id: "m1".into()
            })
        );
        assert_eq!(
            MediaEvent::parse(r#"{"event":"MEDIA_XOFF"}"#),
            Some(MediaEvent::Xoff)
        );
        assert!(matches!(
            MediaEvent::parse(r#"{"event":"SOMETHING_NEW","x":1}"#),
            Some(MediaEvent::Unknown { .. })
        ));
        assert!(matches!(
            MediaEvent::parse(r#"{"event":"MEDIA_START","format":1}"#),
            Some(MediaEvent::Unknown { .. })
        ));
        assert_eq!(MediaEvent::parse("not json"), None);
        assert_eq!(MediaEvent::parse("[1,2]"), None);
    }

    #[test]
    fn unknown_events_and_stray_text_are_kept_whole() {
        let text = r#"{"event":"SOMETHING_NEW","x":1}"#;
        assert_eq!(
            MediaEvent::from_text(text),
            MediaEvent::Unknown {
                event: "SOMETHING_NEW".into(),
                raw: serde_json::json!({"event": "SOMETHING_NEW", "x": 1}),
            }
        );
        assert_eq!(
            MediaEvent::from_text("MEDIA_XOFF"),
            MediaEvent::Unknown {
                event: String::new(),
                raw: serde_json::Value::String("MEDIA_XOFF".into()),
            }
        );
        // Wrong types and absurd numbers are kept, never a panic.
        for text in [
            r#"{"event":"STATUS","queue_length":-1}"#,
            r#"{"event":"MEDIA_START","optimal_frame_size":1e400,"ptime":"20"}"#,
            r#"{"event":7}"#,
            r#"{"event":"DTMF_END","digit":5}"#,
            "",
            "\u{0}",
        ] {
            let _ = MediaEvent::from_text(text);
        }
        assert_eq!(
            MediaEvent::from_text(r#"{"event":"DTMF_END","digit":5}"#),
            MediaEvent::DtmfEnd {
                digit: String::new()
            }
        );
    }

    #[test]
    fn commands_are_short_json() {
        assert_eq!(
            MediaCommand::FlushMedia.to_json(),
            r#"{"command":"FLUSH_MEDIA"}"#
        );
        let mark = MediaCommand::MarkMedia {
            correlation_id: "turn-17".into(),
        }
        .to_json();
        assert_eq!(
            mark,
            r#"{"command":"MARK_MEDIA","correlation_id":"turn-17"}"#
        );
        assert_eq!(
            MediaCommand::SetMediaDirection {
                direction: MediaDirection::In
            }
            .to_json(),
            r#"{"command":"SET_MEDIA_DIRECTION","direction":"in"}"#
        );
        for command in [
            MediaCommand::Answer,
            MediaCommand::Hangup,
            MediaCommand::StartMediaBuffering,
            MediaCommand::StopMediaBuffering,
            MediaCommand::FlushMedia,
            MediaCommand::PauseMedia,
            MediaCommand::ContinueMedia,
            MediaCommand::GetStatus,
            MediaCommand::ReportQueueDrained,
            MediaCommand::SetMediaDirection {
                direction: MediaDirection::Both,
            },
        ] {
            assert!(command.to_json().len() <= MAX_COMMAND_BYTES, "{command:?}");
        }
    }
}
