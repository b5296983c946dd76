//! Twilio Media Streams, as a bot written for Twilio expects it.
//!
//! Every message is a JSON text frame with an `event`. Counters (`sequenceNumber`,
//! `chunk`, `timestamp`) are strings of decimal digits, as Twilio sends them.
//!
//! # Gateway → bot
//! [`Encoder::start`] returns the first two messages, `connected` then `start`; Pipecat's
//! runner reads exactly those two frames to detect Twilio. `sequenceNumber` is `"1"` on
//! `start` and rises by one with every later message.
//!
//! ```json
//! {"event":"connected","protocol":"Call","version":"1.0.0"}
//! {"event":"start","sequenceNumber":"1","start":{"accountSid":"AC…","streamSid":"MZ…",
//!   "callSid":"CA…","tracks":["inbound"],"customParameters":{"from_number":"…",…},
//!   "mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},
//!   "streamSid":"MZ…"}
//! {"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1",
//!   "timestamp":"0","payload":"<base64 μ-law, 20 ms>"},"streamSid":"MZ…"}
//! {"event":"dtmf","sequenceNumber":"3","dtmf":{"track":"inbound_track","digit":"5"},
//!   "streamSid":"MZ…"}
//! {"event":"mark","sequenceNumber":"4","mark":{"name":"…"},"streamSid":"MZ…"}
//! {"event":"stop","sequenceNumber":"5","stop":{"accountSid":"AC…","callSid":"CA…"},
//!   "streamSid":"MZ…"}
//! ```
//!
//! `chunk` counts media messages from `"1"`; `timestamp` is milliseconds since the stream
//! began. `customParameters` carries the call (see [`custom_parameters`]); Pipecat makes
//! them the call's body and promotes `from_number` / `to_number` to its from and to.
//!
//! # Bot → gateway
//! `media` (`media.payload`: base64 μ-law 8 kHz of any length), `mark` (`mark.name`:
//! answered with the same `mark` once the audio before it has played) and `clear`
//! (barge-in). [`Decoder::decode`] turns them into [`BackendMessage`]s; anything else is
//! [`BackendMessage::Ignored`], and extra fields (`streamSid`, ...) are ignored.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use bytes::{BufMut as _, Bytes, BytesMut};
use serde::{Deserialize, Serialize, Serializer};

use super::{BackendMessage, CallInfo, ProtocolError, event_of};
use crate::audio::AudioFormat;

/// The audio format of every Twilio media payload, both ways: μ-law, 8 kHz, mono.
pub const MEDIA_FORMAT: AudioFormat = AudioFormat::Ulaw;

/// The `track` of the caller's audio in `start.tracks` and `media.track`.
pub const INBOUND_TRACK: &str = "inbound";

/// The `track` of a `dtmf` message.
pub const DTMF_TRACK: &str = "inbound_track";

/// Standard base64 for payloads; decoding also accepts a missing padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Room reserved in the output buffer at a time, so that many messages share one
/// allocation (about ten 20 ms `media` messages; each session keeps one block).
const OUT_BLOCK: usize = 4 * 1024;

/// The Twilio identifiers of one stream, as the bot sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamIds {
    /// `AC…`: the account; Pipecat uses it (with its auth token) to hang up through the
    /// REST API.
    pub account_sid: String,
    /// `CA…`: the call.
    pub call_sid: String,
    /// `MZ…`: the stream.
    pub stream_sid: String,
}

impl StreamIds {
    /// New random call and stream SIDs under `account_sid`.
    pub fn random(account_sid: impl Into<String>) -> Self {
        Self {
            account_sid: account_sid.into(),
            call_sid: random_sid("CA"),
            stream_sid: random_sid("MZ"),
        }
    }
}

/// A random SID in Twilio's shape: `prefix` and 32 lower-case hex digits.
pub fn random_sid(prefix: &str) -> String {
    let mut sid = String::with_capacity(prefix.len() + 32);
    sid.push_str(prefix);
    let _ = write!(sid, "{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    sid
}

/// The `customParameters` of the `start` message: the configured channel variables under
/// their names, then (winning over a variable of the same name) `from_number` and
/// `caller_number` (the caller's number), `to_number` and `dialed_number` (the number
/// dialled), `caller_name` and `channel_id`.
pub fn custom_parameters(call: &CallInfo) -> BTreeMap<String, String> {
    let mut parameters = call.variables.clone();
    for (key, value) in [
        ("from_number", &call.caller_number),
        ("caller_number", &call.caller_number),
        ("to_number", &call.dialed_number),
        ("dialed_number", &call.dialed_number),
        ("caller_name", &call.caller_name),
        ("channel_id", &call.channel_id),
    ] {
        parameters.insert(key.to_owned(), value.clone());
    }
    parameters
}

/// A counter written as a JSON string, as Twilio writes them.
struct Counter(u64);

impl Serialize for Counter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

#[derive(Serialize)]
struct Connected {
    event: &'static str,
    protocol: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a, B> {
    event: &'static str,
    sequence_number: Counter,
    #[serde(flatten)]
    body: B,
    stream_sid: &'a str,
}

#[derive(Serialize)]
struct StartBody<'a> {
    start: StartFields<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartFields<'a> {
    account_sid: &'a str,
    stream_sid: &'a str,
    call_sid: &'a str,
    tracks: [&'static str; 1],
    custom_parameters: &'a BTreeMap<String, String>,
    media_format: MediaFormat,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    encoding: &'static str,
    sample_rate: u32,
    channels: u32,
}

#[derive(Serialize)]
struct DtmfBody<'a> {
    dtmf: DtmfFields<'a>,
}

#[derive(Serialize)]
struct DtmfFields<'a> {
    track: &'static str,
    digit: &'a str,
}

#[derive(Serialize)]
struct MarkBody<'a> {
    mark: MarkFields<'a>,
}

#[derive(Serialize)]
struct MarkFields<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct StopBody<'a> {
    stop: StopFields<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopFields<'a> {
    account_sid: &'a str,
    call_sid: &'a str,
}

/// Writes the gateway's messages of one stream, numbering them.
///
/// Each message is returned as [`Bytes`] holding UTF-8 JSON, to be sent as one text frame
/// (tungstenite's `Utf8Bytes::try_from(bytes)`). Messages are written into one reused
/// buffer, so a `media` message costs no allocation of its own.
#[derive(Debug)]
pub struct Encoder {
    ids: StreamIds,
    /// `streamSid` as a JSON string, quotes included.
    stream_sid_json: String,
    out: Writer,
}

/// The output buffer and the counters.
#[derive(Debug)]
struct Writer {
    buf: BytesMut,
    sequence: u64,
    chunk: u64,
}

impl Encoder {
    /// Starts a stream: returns the encoder and the first two messages, `connected` and
    /// `start` (`sequenceNumber` `"1"`), to send in that order before anything else.
    pub fn start(ids: StreamIds, call: &CallInfo) -> (Self, [Bytes; 2]) {
        let mut out = Writer {
            buf: BytesMut::with_capacity(OUT_BLOCK),
            sequence: 0,
            chunk: 0,
        };
        let connected = out.json(&Connected {
            event: "connected",
            protocol: "Call",
            version: "1.0.0",
        });
        let parameters = custom_parameters(call);
        let start = out.numbered(
            "start",
            &ids.stream_sid,
            StartBody {
                start: StartFields {
                    account_sid: &ids.account_sid,
                    stream_sid: &ids.stream_sid,
                    call_sid: &ids.call_sid,
                    tracks: [INBOUND_TRACK],
                    custom_parameters: &parameters,
                    media_format: MediaFormat {
                        encoding: "audio/x-mulaw",
                        sample_rate: MEDIA_FORMAT.sample_rate(),
                        channels: 1,
                    },
                },
            },
        );
        // A string always serialises; the fallback only keeps this free of panics.
        let stream_sid_json =
            serde_json::to_string(&ids.stream_sid).unwrap_or_else(|_| String::from("\"\""));
        let encoder = Self {
            ids,
            stream_sid_json,
            out,
        };
        (encoder, [connected, start])
    }

    /// The stream's identifiers.
    pub fn ids(&self) -> &StreamIds {
        &self.ids
    }

    /// The `sequenceNumber` of the last message written (`1` right after `start`).
    pub fn sequence_number(&self) -> u64 {
        self.out.sequence
    }

    /// How many `media` messages have been written.
    pub fn chunks(&self) -> u64 {
        self.out.chunk
    }

    /// A `media` message carrying the caller's μ-law audio (one 20 ms frame, 160 bytes, as
    /// Twilio sends), `timestamp_ms` after the stream began.
    pub fn media(&mut self, ulaw: &[u8], timestamp_ms: u64) -> Bytes {
        let out = &mut self.out;
        out.sequence += 1;
        out.chunk += 1;
        let payload_len = ulaw.len().div_ceil(3) * 4;
        out.reserve(160 + self.stream_sid_json.len() + payload_len);
        let _ = write!(
            out.buf,
            r#"{{"event":"media","sequenceNumber":"{}","media":{{"track":"{INBOUND_TRACK}","chunk":"{}","timestamp":"{timestamp_ms}","payload":""#,
            out.sequence, out.chunk,
        );
        let start = out.buf.len();
        out.buf.resize(start + payload_len, 0);
        // The slice is exactly the padded length, so encoding cannot run out of room.
        let written = BASE64
            .encode_slice(ulaw, &mut out.buf[start..])
            .unwrap_or(0);
        out.buf.truncate(start + written);
        out.buf.put_slice(br#""},"streamSid":"#);
        out.buf.put_slice(self.stream_sid_json.as_bytes());
        out.buf.put_u8(b'}');
        out.buf.split().freeze()
    }

    /// A `dtmf` message for a digit the caller pressed (Pipecat accepts `0`-`9`, `*`, `#`).
    pub fn dtmf(&mut self, digit: char) -> Bytes {
        let mut text = [0; 4];
        let digit: &str = digit.encode_utf8(&mut text);
        let dtmf = DtmfFields {
            track: DTMF_TRACK,
            digit,
        };
        self.out
            .numbered("dtmf", &self.ids.stream_sid, DtmfBody { dtmf })
    }

    /// A `mark` message: the audio the bot sent before its mark `name` has been played (or
    /// was cleared).
    pub fn mark(&mut self, name: &str) -> Bytes {
        let mark = MarkFields { name };
        self.out
            .numbered("mark", &self.ids.stream_sid, MarkBody { mark })
    }

    /// The `stop` message: the stream is over (the caller hung up, or the call moved on).
    pub fn stop(&mut self) -> Bytes {
        let stop = StopFields {
            account_sid: &self.ids.account_sid,
            call_sid: &self.ids.call_sid,
        };
        self.out
            .numbered("stop", &self.ids.stream_sid, StopBody { stop })
    }
}

impl Writer {
    fn numbered<B: Serialize>(&mut self, event: &'static str, stream_sid: &str, body: B) -> Bytes {
        self.sequence += 1;
        let envelope = Envelope {
            event,
            sequence_number: Counter(self.sequence),
            body,
            stream_sid,
        };
        self.json(&envelope)
    }

    fn json<T: Serialize>(&mut self, value: &T) -> Bytes {
        self.reserve(512);
        // Writing our own structs (string keys, no floats) to memory cannot fail.
        let written = serde_json::to_writer((&mut self.buf).writer(), value);
        debug_assert!(written.is_ok(), "{written:?}");
        self.buf.split().freeze()
    }

    fn reserve(&mut self, len: usize) {
        if self.buf.capacity() - self.buf.len() < len {
            self.buf.reserve(len.max(OUT_BLOCK));
        }
    }
}

#[derive(Deserialize)]
struct MediaIn<'a> {
    #[serde(borrow)]
    media: MediaInFields<'a>,
}

#[derive(Deserialize)]
struct MediaInFields<'a> {
    #[serde(borrow)]
    payload: Cow<'a, str>,
}

#[derive(Deserialize)]
struct MarkIn {
    mark: MarkInFields,
}

#[derive(Deserialize)]
struct MarkInFields {
    name: String,
}

/// Reads the bot's messages. Decoded audio is split off one reused buffer, so a `media`
/// message costs no allocation of its own once the audio before it has been dropped.
#[derive(Debug, Default)]
pub struct Decoder {
    scratch: BytesMut,
}

impl Decoder {
    /// A decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads one text frame from the bot.
    ///
    /// # Errors
    /// [`ProtocolError::Json`] when the frame is not a JSON object with a string `event`,
    /// or a `media` or `mark` lacks its payload or name; [`ProtocolError::Base64`] when a
    /// payload is not base64. Unknown events are `Ok(Ignored)`.
    pub fn decode(&mut self, text: &str) -> Result<BackendMessage, ProtocolError> {
        let event = event_of(text)?;
        match &*event {
            "media" => {
                let MediaIn { media } = serde_json::from_str(text)?;
                self.decode_payload(&media.payload)
                    .map(BackendMessage::Audio)
            }
            "mark" => {
                let MarkIn { mark } = serde_json::from_str(text)?;
                Ok(BackendMessage::Mark(mark.name))
            }
            "clear" => Ok(BackendMessage::Clear),
            _ => Ok(BackendMessage::Ignored {
                event: event.into_owned(),
            }),
        }
    }

    fn decode_payload(&mut self, payload: &str) -> Result<Bytes, ProtocolError> {
        let estimate = base64::decoded_len_estimate(payload.len());
        self.scratch.clear();
        self.scratch.resize(estimate, 0);
        match BASE64.decode_slice(payload, &mut self.scratch[..]) {
            Ok(len) => {
                self.scratch.truncate(len);
                Ok(self.scratch.split().freeze())
            }
            Err(source) => {
                self.scratch.clear();
                Err(ProtocolError::Base64 { source })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn ids() -> StreamIds {
        StreamIds {
            account_sid: "AC00000000000000000000000000000000".into(),
            call_sid: "CA11111111111111111111111111111111".into(),
            stream_sid: "MZ22222222222222222222222222222222".into(),
        }
    }

    fn call() -> CallInfo {
        CallInfo {
            channel_id: "1700000000.42".into(),
            caller_number: "+15551230000".into(),
            caller_name: "Ada \"the caller\"".into(),
            dialed_number: "8000".into(),
            variables: BTreeMap::from([
                ("CUSTOMER".to_owned(), "42".to_owned()),
                ("from_number".to_owned(), "spoofed".to_owned()),
            ]),
        }
    }

    fn parse(bytes: &Bytes) -> Value {
        serde_json::from_slice(bytes).unwrap()
    }

    #[test]
    fn connected_then_start_as_pipecat_detects_twilio() {
        let (encoder, [connected, start]) = Encoder::start(ids(), &call());
        assert_eq!(
            parse(&connected),
            json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        );
        assert_eq!(
            parse(&start),
            json!({
                "event": "start",
                "sequenceNumber": "1",
                "streamSid": "MZ22222222222222222222222222222222",
                "start": {
                    "accountSid": "AC00000000000000000000000000000000",
                    "streamSid": "MZ22222222222222222222222222222222",
                    "callSid": "CA11111111111111111111111111111111",
                    "tracks": ["inbound"],
                    "customParameters": {
                        "from_number": "+15551230000",
                        "caller_number": "+15551230000",
                        "to_number": "8000",
                        "dialed_number": "8000",
                        "caller_name": "Ada \"the caller\"",
                        "channel_id": "1700000000.42",
                        "CUSTOMER": "42",
                    },
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
            })
        );
        assert_eq!(encoder.sequence_number(), 1);
    }

    #[test]
    fn later_messages_are_numbered_from_two_with_string_counters() {
        let (mut encoder, _) = Encoder::start(ids(), &call());
        let frame = [0xFF_u8; 160];
        let media = parse(&encoder.media(&frame, 0));
        assert_eq!(
            media,
            json!({
                "event": "media",
                "sequenceNumber": "2",
                "streamSid": "MZ22222222222222222222222222222222",
                "media": {
                    "track": "inbound",
                    "chunk": "1",
                    "timestamp": "0",
                    "payload": base64::engine::general_purpose::STANDARD.encode(frame),
                },
            })
        );
        let media = parse(&encoder.media(&frame, 20));
        assert_eq!(media["sequenceNumber"], "3");
        assert_eq!(media["media"]["chunk"], "2");
        assert_eq!(media["media"]["timestamp"], "20");
        assert_eq!(
            parse(&encoder.dtmf('#')),
            json!({
                "event": "dtmf",
                "sequenceNumber": "4",
                "streamSid": "MZ22222222222222222222222222222222",
                "dtmf": {"track": "inbound_track", "digit": "#"},
            })
        );
        assert_eq!(
            parse(&encoder.mark("greeting \u{e9}")),
            json!({
                "event": "mark",
                "sequenceNumber": "5",
                "streamSid": "MZ22222222222222222222222222222222",
                "mark": {"name": "greeting \u{e9}"},
            })
        );
        assert_eq!(
            parse(&encoder.stop()),
            json!({
                "event": "stop",
                "sequenceNumber": "6",
                "streamSid": "MZ22222222222222222222222222222222",
                "stop": {
                    "accountSid": "AC00000000000000000000000000000000",
                    "callSid": "CA11111111111111111111111111111111",
                },
            })
        );
        assert_eq!(encoder.sequence_number(), 6);
        assert_eq!(encoder.chunks(), 2);
    }

    #[test]
    fn random_sids_have_twilios_shape() {
        let ids = StreamIds::random("AC0123");
        assert_eq!(ids.account_sid, "AC0123");
        for (sid, prefix) in [(&ids.call_sid, "CA"), (&ids.stream_sid, "MZ")] {
            assert_eq!(sid.len(), 34);
            assert!(sid.starts_with(prefix));
            assert!(sid[2..].bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(ids.call_sid, StreamIds::random("AC0123").call_sid);
    }

    #[test]
    fn reads_media_mark_and_clear_as_pipecat_and_vocode_send_them() {
        let mut decoder = Decoder::new();
        let audio = [1_u8, 2, 3, 250, 251];
        let payload = base64::engine::general_purpose::STANDARD.encode(audio);
        let text =
            format!(r#"{{"event":"media","streamSid":"MZ1","media":{{"payload":"{payload}"}}}}"#);
        assert_eq!(
            decoder.decode(&text).unwrap(),
            BackendMessage::Audio(Bytes::copy_from_slice(&audio))
        );
        assert_eq!(
            decoder
                .decode(r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}"#)
                .unwrap(),
            BackendMessage::Mark("m1".into())
        );
        assert_eq!(
            decoder
                .decode(r#"{"event":"clear","streamSid":"MZ1"}"#)
                .unwrap(),
            BackendMessage::Clear
        );
    }

    #[test]
    fn tolerates_unknown_events_extra_fields_escapes_and_missing_padding() {
        let mut decoder = Decoder::new();
        assert_eq!(
            decoder
                .decode(r#"{"event":"transcript","media":17,"x":[1,2]}"#)
                .unwrap(),
            BackendMessage::Ignored {
                event: "transcript".into()
            }
        );
        // An escaped slash in the payload, no padding, extra fields everywhere.
        let text = r#"{"extra":{"a":1},"event":"media","media":{"payload":"\/w","track":"outbound","chunk":"9"},"sequenceNumber":"4"}"#;
        assert_eq!(
            decoder.decode(text).unwrap(),
            BackendMessage::Audio(Bytes::from_static(&[0xFF]))
        );
        assert_eq!(
            decoder
                .decode(r#"{"event":"media","media":{"payload":""}}"#)
                .unwrap(),
            BackendMessage::Audio(Bytes::new())
        );
    }

    #[test]
    fn malformed_messages_are_errors() {
        let mut decoder = Decoder::new();
        for text in [
            "",
            "not json",
            "[]",
            "{}",
            r#"{"event":5}"#,
            r#"{"event":"media"}"#,
            r#"{"event":"media","media":{}}"#,
            r#"{"event":"media","media":{"payload":7}}"#,
            r#"{"event":"mark","mark":{}}"#,
            r#"{"event":"mark"}"#,
            r#"{"event":"media","media":{"payload":"AAAA"}"#,
        ] {
            assert!(
                matches!(decoder.decode(text), Err(ProtocolError::Json { .. })),
                "{text:?}"
            );
        }
        for payload in ["!!!!", "AAA=A", "A"] {
            let text = format!(r#"{{"event":"media","media":{{"payload":"{payload}"}}}}"#);
            assert!(
                matches!(decoder.decode(&text), Err(ProtocolError::Base64 { .. })),
                "{payload:?}"
            );
        }
    }

    /// Random audio through the encoder's `media` comes back through the decoder (the
    /// bot's `media` has the same `media.payload`); random bytes and mangled messages never
    /// panic the decoder.
    #[test]
    fn random_payloads_round_trip_and_garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0x7_1110);
        let (mut encoder, _) = Encoder::start(ids(), &call());
        let mut decoder = Decoder::new();
        for i in 0..500_u64 {
            let audio: Vec<u8> = (0..rng.usize(..400)).map(|_| rng.u8(..)).collect();
            let message = encoder.media(&audio, i * 20);
            let text = std::str::from_utf8(&message).unwrap();
            assert_eq!(
                decoder.decode(text).unwrap(),
                BackendMessage::Audio(Bytes::from(audio))
            );
            // Mangle it: cut it, flip bytes, insert noise.
            let mut mangled = message.to_vec();
            match rng.u8(..3) {
                0 => mangled.truncate(rng.usize(..mangled.len())),
                1 => {
                    for _ in 0..rng.usize(1..8) {
                        let at = rng.usize(..mangled.len());
                        mangled[at] = rng.u8(..);
                    }
                }
                _ => {
                    let at = rng.usize(..mangled.len());
                    mangled.insert(at, rng.u8(..));
                }
            }
            let _ = decoder.decode(&String::from_utf8_lossy(&mangled));
            let noise: Vec<u8> = (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
            let _ = decoder.decode(&String::from_utf8_lossy(&noise));
        }
    }
}
