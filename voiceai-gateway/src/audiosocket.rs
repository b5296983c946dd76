//! AudioSocket, Asterisk's TCP media protocol (externalMedia `encapsulation=audiosocket`,
//! or the `AudioSocket()` application).
//!
//! Each message is a 3-byte header, kind (1 byte) and payload length (2 bytes,
//! big-endian), then the payload:
//!
//! | kind | message | payload |
//! |---|---|---|
//! | `0x00` | hang-up | none |
//! | `0x01` | the call's UUID, Asterisk's first message | 16 bytes |
//! | `0x03` | a DTMF digit | 1 ASCII byte |
//! | `0x10` | audio, signed linear 8 kHz | 16-bit little-endian samples |
//! | `0x12` | audio, signed linear 16 kHz (where supported) | 16-bit little-endian samples |
//! | `0xFF` | an error | an application-defined code |
//!
//! Asterisk sends the UUID first, then audio (and DTMF); it accepts hang-up and audio from
//! the gateway, and hangs the call up on an empty audio payload, so the [`Encoder`] never
//! writes one. Audio is 20 ms per message (320 bytes at 8 kHz, 640 at 16 kHz).
//!
//! The [`Decoder`] takes bytes as they come off the socket, split anywhere, and hands out
//! whole messages without copying their payloads.

use std::fmt;
use std::str::FromStr;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

use crate::audio::AudioFormat;

/// Kind of a hang-up message.
pub const KIND_HANGUP: u8 = 0x00;
/// Kind of the UUID message.
pub const KIND_UUID: u8 = 0x01;
/// Kind of a DTMF message.
pub const KIND_DTMF: u8 = 0x03;
/// Kind of signed linear 8 kHz audio.
pub const KIND_SLIN: u8 = 0x10;
/// Kind of signed linear 16 kHz audio.
pub const KIND_SLIN16: u8 = 0x12;
/// Kind of an error message.
pub const KIND_ERROR: u8 = 0xFF;

/// The header's length.
pub const HEADER_LEN: usize = 3;

/// The longest audio payload accepted, in time: one second (16 000 bytes at 8 kHz, 32 000
/// at 16 kHz; Asterisk sends 20 ms).
pub const MAX_AUDIO_MS: usize = 1000;

/// The longest error payload accepted.
pub const MAX_ERROR_LEN: usize = 256;

/// The UUID that names the call on an AudioSocket, as Asterisk sends it first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallUuid(pub [u8; 16]);

impl fmt::Display for CallUuid {
    /// The usual hyphenated lower-case form, `8-4-4-4-12` hex digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A string that is not a UUID (32 hex digits, hyphens allowed anywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID: {0:?}")]
pub struct InvalidUuid(pub String);

impl FromStr for CallUuid {
    type Err = InvalidUuid;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidUuid(text.to_owned());
        let mut bytes = [0; 16];
        let mut digits = text.bytes().filter(|&b| b != b'-');
        for byte in &mut bytes {
            let mut value = 0;
            for _ in 0..2 {
                let digit = digits.next().ok_or_else(invalid)?;
                value = value << 4 | (char::from(digit).to_digit(16).ok_or_else(invalid)? as u8);
            }
            *byte = value;
        }
        if digits.next().is_some() {
            return Err(invalid());
        }
        Ok(Self(bytes))
    }
}

/// One AudioSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// The call is over (kind `0x00`).
    Hangup,
    /// The call's UUID (kind `0x01`).
    Uuid(CallUuid),
    /// A DTMF digit (kind `0x03`), as its ASCII character (`0`-`9`, `*`, `#`, `A`-`D`; a
    /// byte over 127 reads as the Latin-1 character).
    Dtmf(char),
    /// Audio (kinds `0x10`, `0x12`): 16-bit little-endian samples of `format`.
    Audio {
        /// [`AudioFormat::Slin`] or [`AudioFormat::Slin16`].
        format: AudioFormat,
        /// The samples.
        payload: Bytes,
    },
    /// An error (kind `0xFF`) with its application-defined payload.
    Error(Bytes),
    /// A kind the gateway does not use (other signed linear rates, later kinds), kept whole
    /// so the stream stays in step.
    Other {
        /// The kind byte.
        kind: u8,
        /// The payload.
        payload: Bytes,
    },
}

/// A message that cannot be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioSocketError {
    /// A payload length that the kind does not allow (a UUID that is not 16 bytes, a DTMF
    /// message that is not one byte, a hang-up with a payload, audio over a second).
    #[error(
        "AudioSocket message of kind {kind:#04x} with a {len}-byte payload (allowed: {min} to {max})"
    )]
    Length {
        /// The kind byte.
        kind: u8,
        /// The announced length.
        len: usize,
        /// The smallest length the kind allows.
        min: usize,
        /// The largest length the kind allows.
        max: usize,
    },
    /// Audio in a format AudioSocket does not carry (G.711).
    #[error("AudioSocket carries signed linear audio only, not {0}")]
    Format(AudioFormat),
}

/// The payload lengths a kind allows.
fn allowed_len(kind: u8) -> (usize, usize) {
    match kind {
        KIND_HANGUP => (0, 0),
        KIND_UUID => (16, 16),
        KIND_DTMF => (1, 1),
        KIND_SLIN => (1, audio_max(AudioFormat::Slin)),
        KIND_SLIN16 => (1, audio_max(AudioFormat::Slin16)),
        KIND_ERROR => (0, MAX_ERROR_LEN),
        _ => (0, usize::from(u16::MAX)),
    }
}

/// Whether `kind` allows a payload of `len` bytes.
fn check_len(kind: u8, len: usize) -> Result<(), AudioSocketError> {
    let (min, max) = allowed_len(kind);
    if (min..=max).contains(&len) {
        Ok(())
    } else {
        Err(AudioSocketError::Length {
            kind,
            len,
            min,
            max,
        })
    }
}

const fn audio_max(format: AudioFormat) -> usize {
    format.sample_rate() as usize * format.bytes_per_sample() * MAX_AUDIO_MS / 1000
}

/// Reads messages out of a byte stream split anywhere.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// A decoder with nothing buffered.
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(4096),
        }
    }

    /// Appends bytes read from the socket.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The buffer itself, to read the socket straight into (tokio's `read_buf`).
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// Bytes buffered that do not make a whole message yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next whole message, or `None` until more bytes arrive.
    ///
    /// # Errors
    /// [`AudioSocketError::Length`] when a header announces a length its kind does not
    /// allow. The stream cannot be resynchronised after that: the same error comes back
    /// on every call, and the connection should be closed.
    pub fn next_message(&mut self) -> Result<Option<Message>, AudioSocketError> {
        let Some(&[kind, high, low]) = self.buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = usize::from(u16::from_be_bytes([high, low]));
        check_len(kind, len)?;
        if self.buf.len() < HEADER_LEN + len {
            self.buf.reserve(HEADER_LEN + len - self.buf.len());
            return Ok(None);
        }
        self.buf.advance(HEADER_LEN);
        let payload = self.buf.split_to(len).freeze();
        Ok(Some(match kind {
            KIND_HANGUP => Message::Hangup,
            KIND_UUID => {
                let mut uuid = [0; 16];
                uuid.copy_from_slice(&payload);
                Message::Uuid(CallUuid(uuid))
            }
            KIND_DTMF => Message::Dtmf(char::from(payload[0])),
            KIND_SLIN => Message::Audio {
                format: AudioFormat::Slin,
                payload,
            },
            KIND_SLIN16 => Message::Audio {
                format: AudioFormat::Slin16,
                payload,
            },
            KIND_ERROR => Message::Error(payload),
            kind => Message::Other { kind, payload },
        }))
    }
}

/// Writes messages; each function appends one whole message to `out`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Encoder;

impl Encoder {
    fn header(kind: u8, len: usize, out: &mut BytesMut) {
        out.reserve(HEADER_LEN + len);
        out.put_u8(kind);
        out.put_u16(len as u16);
    }

    /// A message of `kind`, if its length is one the kind allows.
    fn checked(kind: u8, payload: &[u8], out: &mut BytesMut) -> Result<(), AudioSocketError> {
        check_len(kind, payload.len())?;
        Self::header(kind, payload.len(), out);
        out.put_slice(payload);
        Ok(())
    }

    /// A hang-up message.
    pub fn hangup(out: &mut BytesMut) {
        Self::header(KIND_HANGUP, 0, out);
    }

    /// The UUID message.
    pub fn uuid(uuid: CallUuid, out: &mut BytesMut) {
        Self::header(KIND_UUID, 16, out);
        out.put_slice(&uuid.0);
    }

    /// A DTMF message for an ASCII digit.
    pub fn dtmf(digit: u8, out: &mut BytesMut) {
        Self::header(KIND_DTMF, 1, out);
        out.put_u8(digit);
    }

    /// An audio message of signed linear `format` (16-bit little-endian samples).
    ///
    /// # Errors
    /// [`AudioSocketError::Format`] for G.711; [`AudioSocketError::Length`] for an empty
    /// payload (Asterisk would hang up) or one over a second. Nothing is written then.
    pub fn audio(
        format: AudioFormat,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), AudioSocketError> {
        let kind = match format {
            AudioFormat::Slin => KIND_SLIN,
            AudioFormat::Slin16 => KIND_SLIN16,
            AudioFormat::Ulaw | AudioFormat::Alaw => return Err(AudioSocketError::Format(format)),
        };
        Self::checked(kind, payload, out)
    }

    /// An error message with an application-defined code.
    pub fn error(code: u8, out: &mut BytesMut) {
        Self::header(KIND_ERROR, 1, out);
        out.put_u8(code);
    }
}

impl Message {
    /// Appends the message to `out`.
    ///
    /// # Errors
    /// As [`Encoder::audio`] for audio; [`AudioSocketError::Length`] for an error or other
    /// payload longer than its kind allows. Nothing is written then.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), AudioSocketError> {
        match self {
            Self::Hangup => Encoder::checked(KIND_HANGUP, &[], out),
            Self::Uuid(uuid) => Encoder::checked(KIND_UUID, &uuid.0, out),
            Self::Dtmf(digit) => {
                let mut text = [0; 4];
                Encoder::checked(KIND_DTMF, digit.encode_utf8(&mut text).as_bytes(), out)
            }
            Self::Audio { format, payload } => Encoder::audio(*format, payload, out),
            Self::Error(payload) => Encoder::checked(KIND_ERROR, payload, out),
            Self::Other { kind, payload } => Encoder::checked(*kind, payload, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    #[test]
    fn reads_what_asterisk_sends() {
        let mut stream = vec![KIND_UUID, 0, 16];
        stream.extend_from_slice(&UUID.parse::<CallUuid>().unwrap().0);
        stream.extend_from_slice(&[KIND_SLIN, 0x01, 0x40]);
        stream.extend_from_slice(&[0x11; 320]);
        stream.extend_from_slice(&[KIND_DTMF, 0, 1, b'#']);
        stream.extend_from_slice(&[KIND_SLIN16, 0x02, 0x80]);
        stream.extend_from_slice(&[0x22; 640]);
        stream.extend_from_slice(&[KIND_HANGUP, 0, 0]);
        let mut decoder = Decoder::new();
        decoder.push(&stream);
        let mut messages = Vec::new();
        while let Some(message) = decoder.next_message().unwrap() {
            messages.push(message);
        }
        assert_eq!(
            messages,
            [
                Message::Uuid(UUID.parse().unwrap()),
                Message::Audio {
                    format: AudioFormat::Slin,
                    payload: Bytes::from(vec![0x11; 320])
                },
                Message::Dtmf('#'),
                Message::Audio {
                    format: AudioFormat::Slin16,
                    payload: Bytes::from(vec![0x22; 640])
                },
                Message::Hangup,
            ]
        );
        assert_eq!(decoder.buffered(), 0);
    }

    #[test]
    fn uuids_print_and_parse() {
        let uuid: CallUuid = UUID.parse().unwrap();
        assert_eq!(uuid.to_string(), UUID);
        assert_eq!(uuid.0[0], 0x0f);
        assert_eq!(
            "0F8FAD5BD9CB469FA16570867728950E".parse::<CallUuid>(),
            Ok(uuid)
        );
        for bad in [
            "",
            "0f8fad5b",
            "0f8fad5b-d9cb-469f-a165-70867728950e0",
            "zz8fad5b-d9cb-469f-a165-70867728950e",
        ] {
            assert!(bad.parse::<CallUuid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_the_kind_does_not_allow_are_errors() {
        for (header, kind, len) in [
            ([KIND_HANGUP, 0, 1], KIND_HANGUP, 1),
            ([KIND_UUID, 0, 15], KIND_UUID, 15),
            ([KIND_UUID, 0, 17], KIND_UUID, 17),
            ([KIND_DTMF, 0, 0], KIND_DTMF, 0),
            ([KIND_DTMF, 0, 2], KIND_DTMF, 2),
            ([KIND_SLIN, 0, 0], KIND_SLIN, 0),
            ([KIND_SLIN, 0x3E, 0x81], KIND_SLIN, 16001),
            ([KIND_SLIN16, 0xFF, 0xFF], KIND_SLIN16, 65535),
            ([KIND_ERROR, 0x01, 0x01], KIND_ERROR, 257),
        ] {
            let mut decoder = Decoder::new();
            decoder.push(&header);
            let error = decoder.next_message().unwrap_err();
            assert!(
                matches!(error, AudioSocketError::Length { kind: k, len: l, .. } if k == kind && l == len),
                "{error}"
            );
            // It stays an error: the stream cannot be resynchronised.
            assert_eq!(decoder.next_message(), Err(error));
        }
        // The longest audio allowed, and other kinds of any length, are fine.
        let mut decoder = Decoder::new();
        decoder.push(&[KIND_SLIN16, 0x7D, 0x00]);
        decoder.push(&[0; 32000]);
        decoder.push(&[0x16, 0xFF, 0xFF]);
        decoder.push(&vec![1; 65535]);
        assert!(matches!(
            decoder.next_message(),
            Ok(Some(Message::Audio { .. }))
        ));
        assert!(matches!(
            decoder.next_message(),
            Ok(Some(Message::Other { kind: 0x16, ref payload })) if payload.len() == 65535
        ));
    }

    #[test]
    fn encoder_writes_what_asterisk_reads_and_refuses_what_it_would_hang_up_on() {
        let mut out = BytesMut::new();
        Encoder::audio(AudioFormat::Slin, &[1, 2, 3, 4], &mut out).unwrap();
        Encoder::hangup(&mut out);
        assert_eq!(&out[..], &[0x10, 0, 4, 1, 2, 3, 4, 0x00, 0, 0]);
        out.clear();
        assert_eq!(
            Encoder::audio(AudioFormat::Ulaw, &[1], &mut out),
            Err(AudioSocketError::Format(AudioFormat::Ulaw))
        );
        assert!(matches!(
            Encoder::audio(AudioFormat::Slin16, &[], &mut out),
            Err(AudioSocketError::Length { len: 0, .. })
        ));
        assert!(matches!(
            Encoder::audio(AudioFormat::Slin16, &[0; 32001], &mut out),
            Err(AudioSocketError::Length { len: 32001, .. })
        ));
        assert!(out.is_empty());
        assert!(Message::Dtmf('é').encode(&mut out).is_err());
        assert!(out.is_empty());
    }

    fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Bytes {
        (0..len).map(|_| rng.u8(..)).collect::<Vec<_>>().into()
    }

    fn random_message(rng: &mut fastrand::Rng) -> Message {
        match rng.u8(..7) {
            0 => Message::Hangup,
            1 => {
                let mut uuid = [0; 16];
                rng.fill(&mut uuid);
                Message::Uuid(CallUuid(uuid))
            }
            2 => Message::Dtmf(char::from(b"0123456789*#ABCD"[rng.usize(..16)])),
            3 => {
                let len = rng.usize(1..700);
                Message::Audio {
                    format: AudioFormat::Slin,
                    payload: random_bytes(rng, len),
                }
            }
            4 => {
                let len = rng.usize(1..1400);
                Message::Audio {
                    format: AudioFormat::Slin16,
                    payload: random_bytes(rng, len),
                }
            }
            5 => {
                let len = rng.usize(..4);
                Message::Error(random_bytes(rng, len))
            }
            _ => {
                let kind = [0x11, 0x13, 0x16, 0x42][rng.usize(..4)];
                let len = rng.usize(..300);
                Message::Other {
                    kind,
                    payload: random_bytes(rng, len),
                }
            }
        }
    }

    /// Random message sequences, encoded and fed to the decoder in random splits, come back
    /// the same; random bytes never panic the decoder.
    #[test]
    fn random_streams_round_trip_in_any_split_and_garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0xA0D1_050C);
        for _ in 0..300 {
            let messages: Vec<Message> = (0..rng.usize(..30))
                .map(|_| random_message(&mut rng))
                .collect();
            let mut stream = BytesMut::new();
            for message in &messages {
                message.encode(&mut stream).unwrap();
            }
            let mut decoder = Decoder::new();
            let mut decoded = Vec::new();
            let mut rest = &stream[..];
            while !rest.is_empty() {
                let cut = rng.usize(..=rest.len().min(500));
                decoder.push(&rest[..cut]);
                rest = &rest[cut..];
                while let Some(message) = decoder.next_message().unwrap() {
                    decoded.push(message);
                }
            }
            assert_eq!(decoded, messages);
            assert_eq!(decoder.buffered(), 0);
        }
        for _ in 0..3000 {
            let mut decoder = Decoder::new();
            let noise: Vec<u8> = (0..rng.usize(..200)).map(|_| rng.u8(..)).collect();
            decoder.push(&noise);
            for _ in 0..100 {
                match decoder.next_message() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
}
