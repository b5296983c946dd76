//! RTP for the externalMedia fallback (any Asterisk since 16.6): Asterisk sends RTP over
//! UDP to the gateway, and the gateway answers to the address in the channel's
//! `UNICASTRTP_LOCAL_ADDRESS` / `UNICASTRTP_LOCAL_PORT` variables.
//!
//! [`parse`] reads a packet without copying (RFC 3550: version 2, CSRCs, a header
//! extension and padding are all skipped to reach the payload). [`RtpSender`] writes the
//! gateway's packets: one constant random SSRC, a random first sequence number and
//! timestamp, the sequence number +1 and the timestamp +samples per packet (+160 per 20 ms
//! at 8 kHz), and the marker bit on the first packet of each talk spurt.
//!
//! Payload types are Asterisk's: 0 PCMU ([`AudioFormat::Ulaw`]), 8 PCMA
//! ([`AudioFormat::Alaw`]), 11 L16 8 kHz ([`AudioFormat::Slin`]), 118 L16 16 kHz
//! ([`AudioFormat::Slin16`]). L16 is big-endian on the wire and little-endian everywhere
//! else in the gateway: the sender and [`payload_to_native`] convert.
//!
//! DTMF does not cross externalMedia RTP; the gateway takes it from ARI's
//! `ChannelDtmfReceived`.

use bytes::{BufMut as _, BytesMut};

use crate::audio::AudioFormat;

/// The fixed header's length.
pub const HEADER_LEN: usize = 12;

/// The largest packet the gateway expects (a UDP receive buffer of this size is enough).
pub const MAX_PACKET: usize = 1500;

/// Payload type of PCMU (μ-law).
pub const PT_PCMU: u8 = 0;
/// Payload type of PCMA (A-law).
pub const PT_PCMA: u8 = 8;
/// Asterisk's payload type of L16 mono at 8 kHz (`slin`).
pub const PT_SLIN: u8 = 11;
/// Asterisk's payload type of L16 mono at 16 kHz (`slin16`).
pub const PT_SLIN16: u8 = 118;

/// The payload type Asterisk uses for `format`.
pub const fn payload_type(format: AudioFormat) -> u8 {
    match format {
        AudioFormat::Ulaw => PT_PCMU,
        AudioFormat::Alaw => PT_PCMA,
        AudioFormat::Slin => PT_SLIN,
        AudioFormat::Slin16 => PT_SLIN16,
    }
}

/// The format a payload type stands for, among those the gateway handles.
pub const fn format_of(payload_type: u8) -> Option<AudioFormat> {
    match payload_type {
        PT_PCMU => Some(AudioFormat::Ulaw),
        PT_PCMA => Some(AudioFormat::Alaw),
        PT_SLIN => Some(AudioFormat::Slin),
        PT_SLIN16 => Some(AudioFormat::Slin16),
        _ => None,
    }
}

/// One RTP packet, borrowing its payload from the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The marker bit (the first packet of a talk spurt, for audio).
    pub marker: bool,
    /// The payload type (7 bits).
    pub payload_type: u8,
    /// The sequence number.
    pub sequence: u16,
    /// The media timestamp, in samples.
    pub timestamp: u32,
    /// The synchronisation source.
    pub ssrc: u32,
    /// How many contributing sources the header listed (skipped).
    pub csrc_count: u8,
    /// Whether the header carried an extension (skipped).
    pub extension: bool,
    /// The payload, without CSRCs, extension or padding.
    pub payload: &'a [u8],
}

/// A datagram that is not an RTP packet the gateway can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RtpError {
    /// Shorter than the fixed header.
    #[error("RTP packet of {len} bytes is shorter than the 12-byte header")]
    TooShort {
        /// The datagram's length.
        len: usize,
    },
    /// Not version 2.
    #[error("RTP version {version}, expected 2")]
    Version {
        /// The version bits.
        version: u8,
    },
    /// An RTCP packet (payload type 200-204 with the marker bit) on the RTP port.
    #[error("RTCP packet (type {packet_type}) where RTP was expected")]
    Rtcp {
        /// The RTCP packet type.
        packet_type: u8,
    },
    /// The CSRC list or the header extension runs past the end of the datagram.
    #[error("RTP header of {header} bytes is longer than the {len}-byte packet")]
    Truncated {
        /// The header's length as announced.
        header: usize,
        /// The datagram's length.
        len: usize,
    },
    /// The padding length is zero or longer than the payload.
    #[error("RTP padding of {padding} bytes does not fit a {payload}-byte payload")]
    Padding {
        /// The padding length announced by the last byte.
        padding: usize,
        /// The payload's length, padding included.
        payload: usize,
    },
}

/// Reads one RTP packet.
///
/// # Errors
/// [`RtpError`] for anything that is not a well-formed RTP version 2 packet; never panics.
pub fn parse(datagram: &[u8]) -> Result<Packet<'_>, RtpError> {
    let len = datagram.len();
    let Some(fixed) = datagram.first_chunk::<HEADER_LEN>() else {
        return Err(RtpError::TooShort { len });
    };
    let version = fixed[0] >> 6;
    if version != 2 {
        return Err(RtpError::Version { version });
    }
    if (200..=204).contains(&fixed[1]) {
        return Err(RtpError::Rtcp {
            packet_type: fixed[1],
        });
    }
    let padded = fixed[0] & 0x20 != 0;
    let extension = fixed[0] & 0x10 != 0;
    let csrc_count = fixed[0] & 0x0F;
    let mut header = HEADER_LEN + 4 * usize::from(csrc_count);
    if extension {
        // 16 bits profile, 16 bits length in 32-bit words, then the words.
        let Some(&[_, _, high, low]) = datagram
            .get(header..)
            .and_then(|rest| rest.first_chunk::<4>())
        else {
            return Err(RtpError::Truncated {
                header: header + 4,
                len,
            });
        };
        header += 4 + 4 * usize::from(u16::from_be_bytes([high, low]));
    }
    let Some(body) = datagram.get(header..) else {
        return Err(RtpError::Truncated { header, len });
    };
    let payload = if padded {
        let padding = usize::from(body.last().copied().unwrap_or(0));
        if padding == 0 || padding > body.len() {
            return Err(RtpError::Padding {
                padding,
                payload: body.len(),
            });
        }
        &body[..body.len() - padding]
    } else {
        body
    };
    Ok(Packet {
        marker: fixed[1] & 0x80 != 0,
        payload_type: fixed[1] & 0x7F,
        sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
        timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
        ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        csrc_count,
        extension,
        payload,
    })
}

/// Appends a payload received in `format` to `out` in the gateway's byte order: L16 is
/// swapped from big- to little-endian (an odd last byte, half a sample, is dropped);
/// G.711 is copied.
pub fn payload_to_native(format: AudioFormat, payload: &[u8], out: &mut BytesMut) {
    if format.is_g711() {
        out.extend_from_slice(payload);
    } else {
        swap_16(payload, out);
    }
}

/// Appends `input`'s 16-bit samples to `out` with their bytes swapped; an odd last byte is
/// dropped.
fn swap_16(input: &[u8], out: &mut BytesMut) {
    let start = out.len();
    out.resize(start + input.len() / 2 * 2, 0);
    for (dst, src) in out[start..].chunks_exact_mut(2).zip(input.chunks_exact(2)) {
        dst[0] = src[1];
        dst[1] = src[0];
    }
}

/// The state of the gateway's outgoing RTP stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    format: AudioFormat,
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    marker: bool,
}

impl RtpSender {
    /// A stream of `format` with a random SSRC, first sequence number and timestamp.
    pub fn new(format: AudioFormat) -> Self {
        Self::with_rng(format, &mut fastrand::Rng::new())
    }

    /// Like [`new`](Self::new), drawing from `rng` (for reproducible tests).
    pub fn with_rng(format: AudioFormat, rng: &mut fastrand::Rng) -> Self {
        Self::with_state(format, rng.u32(..), rng.u16(..), rng.u32(..))
    }

    /// A stream with the given SSRC, next sequence number and next timestamp.
    pub fn with_state(format: AudioFormat, ssrc: u32, sequence: u16, timestamp: u32) -> Self {
        Self {
            format,
            payload_type: payload_type(format),
            ssrc,
            sequence,
            timestamp,
            marker: true,
        }
    }

    /// The stream's format.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// The constant SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// The sequence number of the next packet.
    pub fn sequence(&self) -> u16 {
        self.sequence
    }

    /// The timestamp of the next packet.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    /// Starts a new talk spurt after `silent_samples` samples that were not sent: the
    /// timestamp moves on by them and the next packet carries the marker bit (`skip(0)`
    /// only sets the marker).
    pub fn skip(&mut self, silent_samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(silent_samples);
        self.marker = true;
    }

    /// Appends one packet carrying `payload` (in the gateway's byte order; L16 is swapped
    /// to network order) to `out`, and moves the sequence number on by one and the
    /// timestamp by the payload's samples.
    pub fn write(&mut self, payload: &[u8], out: &mut BytesMut) {
        out.reserve(HEADER_LEN + payload.len());
        out.put_u8(0x80);
        out.put_u8(if self.marker { 0x80 } else { 0 } | self.payload_type);
        out.put_u16(self.sequence);
        out.put_u32(self.timestamp);
        out.put_u32(self.ssrc);
        if self.format.is_g711() {
            out.put_slice(payload);
        } else {
            swap_16(payload, out);
        }
        let samples = payload.len() / self.format.bytes_per_sample();
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples as u32);
        self.marker = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_plain_pcmu_packet() {
        let mut datagram = vec![
            0x80, 0x80, 0x12, 0x34, 0, 0, 0x01, 0x00, 0xDE, 0xAD, 0xBE, 0xEF,
        ];
        datagram.extend_from_slice(&[0xFF; 160]);
        let packet = parse(&datagram).unwrap();
        assert_eq!(
            packet,
            Packet {
                marker: true,
                payload_type: PT_PCMU,
                sequence: 0x1234,
                timestamp: 256,
                ssrc: 0xDEAD_BEEF,
                csrc_count: 0,
                extension: false,
                payload: &[0xFF; 160],
            }
        );
        assert_eq!(format_of(packet.payload_type), Some(AudioFormat::Ulaw));
    }

    #[test]
    fn skips_csrcs_extension_and_padding() {
        // Version 2, padding, extension, 2 CSRCs; PT 118.
        let mut datagram = vec![0xB2, 118, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        datagram.extend_from_slice(&[0xAA; 8]); // two CSRCs
        datagram.extend_from_slice(&[0xBE, 0xDE, 0, 1]); // extension, one word
        datagram.extend_from_slice(&[0xCC; 4]);
        datagram.extend_from_slice(&[1, 2, 3, 4]); // payload
        datagram.extend_from_slice(&[0, 0, 3]); // padding of 3
        let packet = parse(&datagram).unwrap();
        assert_eq!(packet.payload, &[1, 2, 3, 4]);
        assert_eq!(packet.csrc_count, 2);
        assert!(packet.extension);
        assert!(!packet.marker);
        assert_eq!(packet.payload_type, PT_SLIN16);
        assert_eq!((packet.sequence, packet.timestamp, packet.ssrc), (1, 2, 3));
    }

    #[test]
    fn rejects_what_is_not_rtp() {
        assert_eq!(parse(&[]), Err(RtpError::TooShort { len: 0 }));
        assert_eq!(parse(&[0x80; 11]), Err(RtpError::TooShort { len: 11 }));
        assert_eq!(parse(&[0x40; 12]), Err(RtpError::Version { version: 1 }));
        assert_eq!(
            parse(&[0x81, 200, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RtpError::Rtcp { packet_type: 200 })
        );
        // Three CSRCs announced, none present.
        assert!(matches!(
            parse(&[0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
            Err(RtpError::Truncated { header: 24, .. })
        ));
        // An extension whose header is cut, then one announcing more words than there are.
        assert!(matches!(
            parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE]),
            Err(RtpError::Truncated { .. })
        ));
        assert!(matches!(
            parse(&[0x90, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0, 9]),
            Err(RtpError::Truncated { .. })
        ));
        // Padding of zero, and more padding than payload.
        let mut padded = vec![0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0];
        assert!(matches!(parse(&padded), Err(RtpError::Padding { .. })));
        padded.push(9);
        assert!(matches!(parse(&padded), Err(RtpError::Padding { .. })));
        // A header with no payload is a packet with an empty payload.
        assert_eq!(parse(&[0x80; 12]).unwrap().payload, &[] as &[u8]);
    }

    #[test]
    fn sender_numbers_marks_and_times_its_packets() {
        let mut sender =
            RtpSender::with_state(AudioFormat::Ulaw, 0x0102_0304, 65535, u32::MAX - 100);
        let mut out = BytesMut::new();
        sender.write(&[0xFF; 160], &mut out);
        let first = out.split();
        let packet = parse(&first).unwrap();
        assert!(packet.marker);
        assert_eq!(packet.payload_type, PT_PCMU);
        assert_eq!(packet.sequence, 65535);
        assert_eq!(packet.timestamp, u32::MAX - 100);
        assert_eq!(packet.ssrc, 0x0102_0304);
        assert_eq!(packet.payload, &[0xFF; 160]);
        sender.write(&[0xFF; 160], &mut out);
        let packet = parse(&out).unwrap();
        assert!(!packet.marker);
        assert_eq!(packet.sequence, 0);
        assert_eq!(packet.timestamp, 59); // wrapped: MAX - 100 + 160
        assert_eq!(packet.ssrc, 0x0102_0304);
        out.clear();
        // After 1 s of silence: timestamp moves on 8000 samples, marker set again.
        sender.skip(8000);
        sender.write(&[0xFF; 160], &mut out);
        let packet = parse(&out).unwrap();
        assert!(packet.marker);
        assert_eq!(packet.sequence, 1);
        assert_eq!(packet.timestamp, 59 + 160 + 8000);
    }

    #[test]
    fn slin16_goes_big_endian_on_the_wire_and_back() {
        let mut sender = RtpSender::with_state(AudioFormat::Slin16, 1, 0, 0);
        let samples: Vec<i16> = (0..320).map(|i| (i * 97 - 15000) as i16).collect();
        let native: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        let mut out = BytesMut::new();
        sender.write(&native, &mut out);
        let packet = parse(&out).unwrap();
        assert_eq!(packet.payload_type, PT_SLIN16);
        let wire: Vec<u8> = samples.iter().flat_map(|s| s.to_be_bytes()).collect();
        assert_eq!(packet.payload, &wire[..]);
        assert_eq!(sender.timestamp(), 320);
        let mut back = BytesMut::new();
        payload_to_native(AudioFormat::Slin16, packet.payload, &mut back);
        assert_eq!(&back[..], &native[..]);
    }

    #[test]
    fn random_senders_differ() {
        let a = RtpSender::new(AudioFormat::Ulaw);
        let b = RtpSender::new(AudioFormat::Ulaw);
        assert_ne!(
            (a.ssrc(), a.sequence(), a.timestamp()),
            (b.ssrc(), b.sequence(), b.timestamp())
        );
        for format in AudioFormat::ALL {
            assert_eq!(format_of(payload_type(format)), Some(format));
        }
        assert_eq!(format_of(101), None);
    }

    /// Random datagrams never panic the parser; random packets written by the sender parse
    /// back to what was sent.
    #[test]
    fn random_datagrams_and_round_trips() {
        let mut rng = fastrand::Rng::with_seed(0x0A7_0001);
        for _ in 0..20_000 {
            let len = rng.usize(..80);
            let mut datagram: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            if rng.bool() && !datagram.is_empty() {
                datagram[0] = 0x80 | (datagram[0] & 0x3F); // version 2, to go deeper
            }
            if let Ok(packet) = parse(&datagram) {
                assert!(packet.payload.len() + HEADER_LEN <= datagram.len());
            }
        }
        for _ in 0..500 {
            let format = AudioFormat::ALL[rng.usize(..4)];
            let mut sender = RtpSender::with_rng(format, &mut rng);
            let mut out = BytesMut::new();
            for _ in 0..5 {
                let (sequence, timestamp) = (sender.sequence(), sender.timestamp());
                let samples = rng.usize(..400);
                let payload: Vec<u8> = (0..samples * format.bytes_per_sample())
                    .map(|_| rng.u8(..))
                    .collect();
                out.clear();
                sender.write(&payload, &mut out);
                let packet = parse(&out).unwrap();
                assert_eq!(packet.sequence, sequence);
                assert_eq!(packet.timestamp, timestamp);
                assert_eq!(packet.ssrc, sender.ssrc());
                assert_eq!(packet.payload_type, payload_type(format));
                let mut back = BytesMut::new();
                payload_to_native(format, packet.payload, &mut back);
                assert_eq!(&back[..], &payload[..]);
                assert_eq!(sender.timestamp(), timestamp.wrapping_add(samples as u32));
            }
        }
    }
}
