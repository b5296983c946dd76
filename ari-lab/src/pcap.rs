//! Caller audio for SIPp: pcap files that `play_pcap_audio` replays as the caller's RTP.
//!
//! What SIPp (3.6) accepts and does with a pcap:
//! - link type Ethernet (`DLT_EN10MB`) or Linux cooked (`DLT_LINUX_SLL`); IPv4 or IPv6, UDP
//!   only; packets must be whole (captured length = length);
//! - it sends each packet's UDP payload unchanged (RTP header included: payload type,
//!   sequence numbers, timestamps and SSRC are the file's), from a raw socket (root or
//!   `CAP_NET_RAW`), to the port the SDP answer names plus the packet's destination port
//!   minus the lowest destination port in the file (so one stream: one destination port);
//! - it paces packets by the file's timestamps.
//!
//! [`CallerAudio`] writes such a file: A-law RTP (payload type 8, what
//! `asterisk_conf/sipp/uac.xml` offers) of a tone or any samples, every 20 ms, optionally
//! with RFC 4733 telephone-events (payload type 101, as offered) for DTMF digits at given
//! times. During a digit the audio packets give way to event packets, as phones do.

use std::path::Path;
use std::time::Duration;

use crate::audio::{linear_to_alaw, sine};

/// RTP payload type of PCMA (A-law), the audio `uac.xml` offers.
pub const PCMA: u8 = 8;
/// RTP payload type of telephone-event in `uac.xml`'s offer.
pub const TELEPHONE_EVENT: u8 = 101;
/// Samples (and RTP timestamp units) per 20 ms packet at 8 kHz.
pub const SAMPLES_PER_PACKET: usize = 160;

const SSRC: u32 = 0x1ab5_0001;
const FIRST_SEQUENCE: u16 = 4000;
const PORT: u16 = 6000;
/// How loud telephone-events say they are (-dBm0).
const EVENT_VOLUME: u8 = 10;

/// The caller's audio for a SIPp call: 8 kHz samples and DTMF digits, written as a pcap by
/// [`CallerAudio::write`].
#[derive(Debug, Clone)]
pub struct CallerAudio {
    samples: Vec<i16>,
    digits: Vec<(Duration, char)>,
    digit_duration: Duration,
}

impl CallerAudio {
    /// `duration` of a sine tone of `frequency` Hz at a moderate level (-12 dBFS peak).
    pub fn tone(frequency: f64, duration: Duration) -> CallerAudio {
        CallerAudio::samples(sine(frequency, 8000, duration.as_secs_f64(), 8000))
    }

    /// `duration` of silence.
    pub fn silence(duration: Duration) -> CallerAudio {
        let count = (duration.as_secs_f64() * 8000.0).round() as usize;
        CallerAudio::samples(vec![0; count])
    }

    /// Any 8 kHz samples (cut to whole 20 ms packets).
    pub fn samples(samples: Vec<i16>) -> CallerAudio {
        CallerAudio {
            samples,
            digits: Vec::new(),
            digit_duration: Duration::from_millis(100),
        }
    }

    /// Adds DTMF `digit` (`0`-`9`, `*`, `#`, `A`-`D`) as telephone-events starting `at`
    /// after the audio starts. Digits must not overlap; one past the audio's end is
    /// dropped.
    pub fn dtmf(mut self, at: Duration, digit: char) -> CallerAudio {
        self.digits.push((at, digit));
        self.digits.sort_by_key(|(at, _)| *at);
        self
    }

    /// Each digit `at`, `at + gap`, ... (see [`CallerAudio::dtmf`]).
    pub fn dtmf_digits(mut self, at: Duration, gap: Duration, digits: &str) -> CallerAudio {
        for (n, digit) in digits.chars().enumerate() {
            self = self.dtmf(at + gap * n as u32, digit);
        }
        self
    }

    /// How long each digit lasts (default 100 ms; rounded to 20 ms packets).
    pub fn digit_duration(mut self, duration: Duration) -> CallerAudio {
        self.digit_duration = duration;
        self
    }

    /// The audio's length in whole packets.
    pub fn duration(&self) -> Duration {
        Duration::from_millis(20 * (self.samples.len() / SAMPLES_PER_PACKET) as u64)
    }

    /// The RTP packets (UDP payloads) with their send times from the start.
    pub fn rtp_packets(&self) -> Vec<(Duration, Vec<u8>)> {
        let packets = self.samples.len() / SAMPLES_PER_PACKET;
        let digit_packets = (self.digit_duration.as_millis() / 20).max(1) as usize;
        // The packet index each digit starts at.
        let mut digits: Vec<(usize, u8)> = self
            .digits
            .iter()
            .filter_map(|&(at, digit)| Some(((at.as_millis() / 20) as usize, event_code(digit)?)))
            .filter(|&(start, _)| start + digit_packets <= packets)
            .collect();
        digits.dedup_by_key(|(start, _)| *start);
        let mut out = Vec::new();
        let mut sequence = FIRST_SEQUENCE;
        let mut index = 0;
        let mut next_digit = digits.iter().peekable();
        while index < packets {
            let at = |index: usize| Duration::from_millis(20 * index as u64);
            if let Some(&&(start, code)) = next_digit.peek()
                && start == index
            {
                next_digit.next();
                let timestamp = (index * SAMPLES_PER_PACKET) as u32;
                for n in 0..digit_packets {
                    let end = n + 1 == digit_packets;
                    let duration = ((n + 1) * SAMPLES_PER_PACKET) as u16;
                    // The end packet goes three times (RFC 4733 2.5.1.4), same timestamp.
                    for _ in 0..if end { 3 } else { 1 } {
                        let payload = [
                            code,
                            if end { 0x80 } else { 0 } | EVENT_VOLUME,
                            (duration >> 8) as u8,
                            duration as u8,
                        ];
                        out.push((
                            at(index + n),
                            rtp(TELEPHONE_EVENT, n == 0, sequence, timestamp, &payload),
                        ));
                        sequence = sequence.wrapping_add(1);
                    }
                }
                index += digit_packets;
                continue;
            }
            let frame = &self.samples[index * SAMPLES_PER_PACKET..(index + 1) * SAMPLES_PER_PACKET];
            let payload: Vec<u8> = frame.iter().map(|&s| linear_to_alaw(s)).collect();
            let timestamp = (index * SAMPLES_PER_PACKET) as u32;
            out.push((
                at(index),
                rtp(PCMA, index == 0, sequence, timestamp, &payload),
            ));
            sequence = sequence.wrapping_add(1);
            index += 1;
        }
        out
    }

    /// The pcap file's bytes (Ethernet, IPv4 127.0.0.1 → 127.0.0.1, UDP 6000 → 6000).
    pub fn pcap_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Global header: magic, version 2.4, zone, sigfigs, snaplen, link type Ethernet.
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65_535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes());
        for (n, (at, payload)) in self.rtp_packets().into_iter().enumerate() {
            let frame = ethernet_ipv4_udp(&payload, n as u16);
            // Start at an arbitrary fixed epoch second; only differences matter.
            let seconds = 1_700_000_000 + at.as_secs() as u32;
            out.extend_from_slice(&seconds.to_le_bytes());
            out.extend_from_slice(&at.subsec_micros().to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
            out.extend_from_slice(&frame);
        }
        out
    }

    /// Writes the pcap file to `path`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.pcap_bytes())
    }
}

/// The RFC 4733 event code of a DTMF digit.
pub fn event_code(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(12 + (digit as u8 - b'A')),
        'a'..='d' => Some(12 + (digit as u8 - b'a')),
        _ => None,
    }
}

fn rtp(payload_type: u8, marker: bool, sequence: u16, timestamp: u32, payload: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(12 + payload.len());
    packet.push(0x80);
    packet.push(if marker { 0x80 } else { 0 } | payload_type);
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(&timestamp.to_be_bytes());
    packet.extend_from_slice(&SSRC.to_be_bytes());
    packet.extend_from_slice(payload);
    packet
}

fn ethernet_ipv4_udp(payload: &[u8], id: u16) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut frame = Vec::with_capacity(14 + ip_len);
    frame.extend_from_slice(&[0; 12]);
    frame.extend_from_slice(&0x0800u16.to_be_bytes());
    let ip_start = frame.len();
    frame.extend_from_slice(&[0x45, 0]);
    frame.extend_from_slice(&(ip_len as u16).to_be_bytes());
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
    frame.extend_from_slice(&[127, 0, 0, 1, 127, 0, 0, 1]);
    let checksum = ip_checksum(&frame[ip_start..]);
    frame[ip_start + 10..ip_start + 12].copy_from_slice(&checksum.to_be_bytes());
    frame.extend_from_slice(&PORT.to_be_bytes());
    frame.extend_from_slice(&PORT.to_be_bytes());
    frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
    // SIPp computes the UDP checksum itself when it sends.
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    frame
}

fn ip_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|pair| u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{alaw_to_linear, dominant_frequency};

    #[test]
    fn tone_packets_are_pcma_every_20_ms() {
        let audio = CallerAudio::tone(1000.0, Duration::from_secs(1));
        let packets = audio.rtp_packets();
        assert_eq!(packets.len(), 50);
        assert_eq!(audio.duration(), Duration::from_secs(1));
        let mut samples = Vec::new();
        for (n, (at, packet)) in packets.iter().enumerate() {
            assert_eq!(*at, Duration::from_millis(20 * n as u64));
            assert_eq!(packet.len(), 12 + 160);
            assert_eq!(packet[0], 0x80);
            assert_eq!(packet[1] & 0x7f, PCMA);
            assert_eq!(packet[1] & 0x80 != 0, n == 0, "marker on the first only");
            let sequence = u16::from_be_bytes([packet[2], packet[3]]);
            assert_eq!(sequence, FIRST_SEQUENCE + n as u16);
            let timestamp = u32::from_be_bytes(packet[4..8].try_into().unwrap());
            assert_eq!(timestamp, 160 * n as u32);
            samples.extend(packet[12..].iter().map(|&b| alaw_to_linear(b)));
        }
        assert!((dominant_frequency(&samples, 8000) - 1000.0).abs() < 1.5);
    }

    #[test]
    fn digits_replace_audio_with_telephone_events() {
        let audio = CallerAudio::tone(440.0, Duration::from_secs(2))
            .dtmf_digits(Duration::from_millis(500), Duration::from_millis(300), "1#")
            .digit_duration(Duration::from_millis(100));
        let packets = audio.rtp_packets();
        // 100 audio slots; 2 digits take 5 slots each, and 2 extra end packets each.
        assert_eq!(packets.len(), 100 + 4);
        let events: Vec<_> = packets
            .iter()
            .filter(|(_, p)| p[1] & 0x7f == TELEPHONE_EVENT)
            .collect();
        assert_eq!(events.len(), 2 * 7);
        let first = &events[0];
        assert_eq!(first.0, Duration::from_millis(500));
        assert_eq!(first.1[1] & 0x80, 0x80, "marker starts the event");
        assert_eq!(&first.1[12..], &[1, EVENT_VOLUME, 0, 160]);
        let last = &events[6];
        assert_eq!(
            &last.1[12..],
            &[
                1,
                0x80 | EVENT_VOLUME,
                800u16.to_be_bytes()[0],
                800u16.to_be_bytes()[1]
            ]
        );
        assert_eq!(last.0, Duration::from_millis(580));
        // Every packet of one event carries its start timestamp.
        for (_, packet) in &events[..7] {
            assert_eq!(
                u32::from_be_bytes(packet[4..8].try_into().unwrap()),
                500 * 8
            );
        }
        assert_eq!(events[7].1[12], 11, "# is event 11");
        assert_eq!(events[7].0, Duration::from_millis(800));
        // Sequence numbers rise by one through audio and events alike.
        for pair in packets.windows(2) {
            let a = u16::from_be_bytes([pair[0].1[2], pair[0].1[3]]);
            let b = u16::from_be_bytes([pair[1].1[2], pair[1].1[3]]);
            assert_eq!(b, a.wrapping_add(1));
        }
        // Audio resumes with the timestamp of its time.
        let after = packets
            .iter()
            .find(|(at, p)| *at == Duration::from_millis(600) && p[1] & 0x7f == PCMA)
            .unwrap();
        assert_eq!(
            u32::from_be_bytes(after.1[4..8].try_into().unwrap()),
            600 * 8
        );
    }

    #[test]
    fn pcap_has_ethernet_ipv4_udp_records() {
        let audio = CallerAudio::silence(Duration::from_millis(40));
        let bytes = audio.pcap_bytes();
        assert_eq!(&bytes[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(bytes[20..24].try_into().unwrap()), 1);
        let record = &bytes[24..];
        let length = u32::from_le_bytes(record[8..12].try_into().unwrap()) as usize;
        assert_eq!(length, 14 + 20 + 8 + 12 + 160);
        assert_eq!(record[12..16], record[8..12], "whole packets");
        let frame = &record[16..16 + length];
        assert_eq!(&frame[12..14], &[0x08, 0x00]);
        assert_eq!(frame[14], 0x45);
        assert_eq!(frame[23], 17, "UDP");
        assert_eq!(ip_checksum(&frame[14..34]), 0, "valid IP header checksum");
        assert_eq!(u16::from_be_bytes([frame[36], frame[37]]), PORT);
        assert_eq!(
            u16::from_be_bytes([frame[38], frame[39]]) as usize,
            8 + 12 + 160
        );
        let second = &record[16 + length..];
        assert_eq!(u32::from_le_bytes(second[4..8].try_into().unwrap()), 20_000);
        assert_eq!(bytes.len(), 24 + 2 * (16 + length));
    }

    #[test]
    fn bad_digits_and_digits_past_the_end_are_dropped() {
        let audio = CallerAudio::silence(Duration::from_millis(200))
            .dtmf(Duration::from_millis(20), 'x')
            .dtmf(Duration::from_millis(180), '5');
        assert!(audio.rtp_packets().iter().all(|(_, p)| p[1] & 0x7f == PCMA));
        assert_eq!(event_code('D'), Some(15));
        assert_eq!(event_code('*'), Some(10));
    }
}
