//! What every bench frame carries, and what the receivers count.
//!
//! A stamp is 17 bytes — a magic byte, the stream id (u32), the frame's sequence number
//! in its direction (u32) and a time in microseconds since [`epoch`] (u64) — written as
//! 34 μ-law bytes, one nibble each, at the start of a 20 ms frame. The μ-law codes used
//! (`0xC0 | nibble`) survive the gateway's slin ↔ μ-law conversions exactly (checked by
//! [`self_check`]), so a stamp read on the far side is the one written.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use voiceai_gateway::audio::codec::{linear_to_ulaw, ulaw_to_linear};

const MAGIC: u8 = 0xA5;
/// The magic of a backend frame due after it was sent (the gateway holds it).
const MAGIC_PACED: u8 = 0xA6;
/// Bytes of a stamp before it is spread into nibbles.
const RAW_LEN: usize = 17;
/// μ-law bytes a stamp takes at the start of a frame.
pub(crate) const ULAW_LEN: usize = RAW_LEN * 2;

/// The bench's clock: microseconds since the first call.
pub(crate) fn now_us() -> u64 {
    epoch().elapsed().as_micros() as u64
}

/// The instant `now_us` counts from.
pub(crate) fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// One frame's stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) stream: u32,
    pub(crate) seq: u32,
    /// Asterisk → backend: when the frame was written to the gateway. Backend →
    /// Asterisk: when it is due at the caller (see the bench's doc comment).
    pub(crate) time_us: u64,
    /// Backend → Asterisk: due later than sent, so the gateway paces it (holds it until
    /// its slot) rather than forwarding it at once.
    pub(crate) paced: bool,
}

fn code(nibble: u8) -> u8 {
    0xC0 | (nibble & 0x0F)
}

impl Stamp {
    /// Writes the stamp as μ-law into `out[..ULAW_LEN]`.
    pub(crate) fn write_ulaw(&self, out: &mut [u8]) {
        let mut raw = [0u8; RAW_LEN];
        raw[0] = if self.paced { MAGIC_PACED } else { MAGIC };
        raw[1..5].copy_from_slice(&self.stream.to_be_bytes());
        raw[5..9].copy_from_slice(&self.seq.to_be_bytes());
        raw[9..17].copy_from_slice(&self.time_us.to_be_bytes());
        for (i, byte) in raw.iter().enumerate() {
            out[2 * i] = code(byte >> 4);
            out[2 * i + 1] = code(byte & 0x0F);
        }
    }

    /// Writes the stamp as 16-bit little-endian slin into `out[..2 * ULAW_LEN]`.
    pub(crate) fn write_slin(&self, out: &mut [u8]) {
        let mut ulaw = [0u8; ULAW_LEN];
        self.write_ulaw(&mut ulaw);
        for (i, code) in ulaw.iter().enumerate() {
            out[2 * i..2 * i + 2].copy_from_slice(&ulaw_to_linear(*code).to_le_bytes());
        }
    }

    /// Reads a stamp from μ-law bytes.
    pub(crate) fn read_ulaw(bytes: &[u8]) -> Option<Stamp> {
        if bytes.len() < ULAW_LEN {
            return None;
        }
        let mut raw = [0u8; RAW_LEN];
        for (i, byte) in raw.iter_mut().enumerate() {
            let (high, low) = (bytes[2 * i], bytes[2 * i + 1]);
            if high & 0xF0 != 0xC0 || low & 0xF0 != 0xC0 {
                return None;
            }
            *byte = ((high & 0x0F) << 4) | (low & 0x0F);
        }
        if raw[0] != MAGIC && raw[0] != MAGIC_PACED {
            return None;
        }
        Some(Stamp {
            stream: u32::from_be_bytes(raw[1..5].try_into().ok()?),
            seq: u32::from_be_bytes(raw[5..9].try_into().ok()?),
            time_us: u64::from_be_bytes(raw[9..17].try_into().ok()?),
            paced: raw[0] == MAGIC_PACED,
        })
    }

    /// Reads a stamp from 16-bit little-endian slin.
    pub(crate) fn read_slin(bytes: &[u8]) -> Option<Stamp> {
        if bytes.len() < 2 * ULAW_LEN {
            return None;
        }
        let mut ulaw = [0u8; ULAW_LEN];
        for (i, code) in ulaw.iter_mut().enumerate() {
            *code = linear_to_ulaw(i16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]));
        }
        Self::read_ulaw(&ulaw)
    }
}

/// Checks that stamps survive slin → μ-law → slin as the gateway converts them.
pub(crate) fn self_check() -> Result<(), String> {
    for nibble in 0..16u8 {
        let c = code(nibble);
        if linear_to_ulaw(ulaw_to_linear(c)) != c {
            return Err(format!("μ-law code {c:#04x} does not round-trip"));
        }
    }
    let stamp = Stamp {
        stream: 0xDEAD_BEEF,
        seq: 123_456,
        time_us: 0x0123_4567_89AB_CDEF,
        paced: true,
    };
    let mut slin = [0u8; 2 * ULAW_LEN];
    stamp.write_slin(&mut slin);
    let ulaw: Vec<u8> = slin
        .chunks_exact(2)
        .map(|s| linear_to_ulaw(i16::from_le_bytes([s[0], s[1]])))
        .collect();
    if Stamp::read_ulaw(&ulaw) != Some(stamp) || Stamp::read_slin(&slin) != Some(stamp) {
        return Err("a stamp does not survive slin -> μ-law".to_owned());
    }
    Ok(())
}

/// The measurement window, in [`now_us`] time: frames whose stamp time falls in it count.
#[derive(Debug)]
pub(crate) struct Window {
    start: AtomicU64,
    end: AtomicU64,
}

impl Window {
    pub(crate) const fn new() -> Self {
        Self {
            start: AtomicU64::new(u64::MAX),
            end: AtomicU64::new(u64::MAX),
        }
    }

    pub(crate) fn set(&self, start_us: u64, end_us: u64) {
        self.end.store(end_us, Ordering::Relaxed);
        self.start.store(start_us, Ordering::Relaxed);
    }

    pub(crate) fn contains(&self, time_us: u64) -> bool {
        time_us >= self.start.load(Ordering::Relaxed) && time_us < self.end.load(Ordering::Relaxed)
    }
}

/// The window every task of the synthetic run reads.
pub(crate) static WINDOW: Window = Window::new();

/// What one receiver saw of one direction of one stream (inside the window).
#[derive(Debug, Default, Clone)]
pub(crate) struct Received {
    /// One bit per sequence number seen.
    seen: Vec<u64>,
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
    /// Added latency of each frame, in microseconds (negative: earlier than due).
    pub(crate) latencies_us: Vec<i64>,
    /// The same, of the frames the gateway paced (see [`Stamp::paced`]).
    pub(crate) paced_us: Vec<i64>,
}

impl Received {
    pub(crate) fn record(&mut self, seq: u32, latency_us: i64, paced: bool) {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.unique += 1;
        self.latencies_us.push(latency_us);
        if paced {
            self.paced_us.push(latency_us);
        }
    }
}

/// Percentiles of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Percentiles {
    pub(crate) count: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
}

pub(crate) fn percentiles(mut values_us: Vec<i64>) -> Percentiles {
    if values_us.is_empty() {
        return Percentiles::default();
    }
    values_us.sort_unstable();
    let at = |q: f64| {
        let index = ((values_us.len() as f64 * q).ceil() as usize).clamp(1, values_us.len()) - 1;
        values_us[index] as f64 / 1000.0
    };
    Percentiles {
        count: values_us.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        p999_ms: at(0.999),
        max_ms: *values_us.last().unwrap_or(&0) as f64 / 1000.0,
    }
}
