//! Audio on the call path: formats, re-framing into whole 20 ms frames, the paced playout
//! queue towards Asterisk, and G.711 / signed-linear conversion.
//!
//! Every path moves audio in 20 ms frames ([`FRAME_DURATION`]). Signed linear audio
//! ([`AudioFormat::Slin`], [`AudioFormat::Slin16`]) is 16-bit little-endian here, as
//! Asterisk exchanges it over chan_websocket and AudioSocket; [`crate::rtp`] converts it to
//! and from network byte order.

pub mod codec;
pub mod frames;
pub mod jitter;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Length of one frame, in milliseconds.
pub const FRAME_MS: u32 = 20;

/// Length of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(FRAME_MS as u64);

/// An audio format the gateway exchanges with Asterisk or a backend, named as Asterisk
/// names it (`ulaw`, `alaw`, `slin`, `slin16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioFormat {
    /// G.711 μ-law, 8 kHz, one byte a sample.
    Ulaw,
    /// G.711 A-law, 8 kHz, one byte a sample.
    Alaw,
    /// Signed linear 16-bit little-endian, 8 kHz.
    Slin,
    /// Signed linear 16-bit little-endian, 16 kHz.
    Slin16,
}

impl AudioFormat {
    /// Every format, for tests and option lists.
    pub const ALL: [AudioFormat; 4] = [Self::Ulaw, Self::Alaw, Self::Slin, Self::Slin16];

    /// Asterisk's name of the format.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Ulaw => "ulaw",
            Self::Alaw => "alaw",
            Self::Slin => "slin",
            Self::Slin16 => "slin16",
        }
    }

    /// Samples a second.
    pub const fn sample_rate(self) -> u32 {
        match self {
            Self::Ulaw | Self::Alaw | Self::Slin => 8000,
            Self::Slin16 => 16000,
        }
    }

    /// Bytes a sample: 1 for G.711, 2 for signed linear.
    pub const fn bytes_per_sample(self) -> usize {
        match self {
            Self::Ulaw | Self::Alaw => 1,
            Self::Slin | Self::Slin16 => 2,
        }
    }

    /// Samples in one 20 ms frame (160 at 8 kHz, 320 at 16 kHz).
    pub const fn samples_per_frame(self) -> u32 {
        self.sample_rate() / 1000 * FRAME_MS
    }

    /// Bytes in one 20 ms frame: 160 for ulaw and alaw, 320 for slin, 640 for slin16.
    pub const fn frame_bytes(self) -> usize {
        self.samples_per_frame() as usize * self.bytes_per_sample()
    }

    /// The byte that encodes silence; a frame of silence is this byte repeated (signed
    /// linear silence is all zero bytes).
    pub const fn silence_byte(self) -> u8 {
        match self {
            Self::Ulaw => 0xFF,
            Self::Alaw => 0xD5,
            Self::Slin | Self::Slin16 => 0x00,
        }
    }

    /// Whether samples are G.711 bytes (as opposed to 16-bit signed linear).
    pub const fn is_g711(self) -> bool {
        matches!(self, Self::Ulaw | Self::Alaw)
    }

    /// How long `bytes` bytes of this format play (whole samples only).
    pub fn duration_of(self, bytes: usize) -> Duration {
        let samples = (bytes / self.bytes_per_sample()) as u64;
        Duration::from_micros(samples * 1_000_000 / u64::from(self.sample_rate()))
    }
}

impl fmt::Display for AudioFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name that is not one of `ulaw`, `alaw`, `slin`, `slin16`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported audio format {0:?} (expected ulaw, alaw, slin or slin16)")]
pub struct UnknownFormat(pub String);

impl FromStr for AudioFormat {
    type Err = UnknownFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|format| format.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownFormat(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_match_asterisk() {
        assert_eq!(AudioFormat::Ulaw.frame_bytes(), 160);
        assert_eq!(AudioFormat::Alaw.frame_bytes(), 160);
        assert_eq!(AudioFormat::Slin.frame_bytes(), 320);
        assert_eq!(AudioFormat::Slin16.frame_bytes(), 640);
        assert_eq!(AudioFormat::Ulaw.samples_per_frame(), 160);
        assert_eq!(AudioFormat::Slin16.samples_per_frame(), 320);
        for format in AudioFormat::ALL {
            assert_eq!(format.duration_of(format.frame_bytes()), FRAME_DURATION);
        }
    }

    #[test]
    fn names_round_trip() {
        for format in AudioFormat::ALL {
            assert_eq!(format.as_str().parse::<AudioFormat>(), Ok(format));
            assert_eq!(format.to_string(), format.as_str());
        }
        assert_eq!("SLIN16".parse::<AudioFormat>(), Ok(AudioFormat::Slin16));
        assert!("opus".parse::<AudioFormat>().is_err());
    }
}
