//! G.711 (μ-law, A-law) and signed linear conversion, with 8 kHz ↔ 16 kHz resampling.
//!
//! Twilio bots speak μ-law at 8 kHz while a channel may run slin16; a [`Transcoder`]
//! converts a stream of chunks between any two [`AudioFormat`]s, keeping across chunks
//! what a conversion needs (half a sample, the resamplers' last samples), so that cutting a
//! stream into chunks anywhere gives the same output as converting it whole.
//!
//! Resampling is simple and cheap, with a little care for aliasing: up (8 → 16 kHz) inserts
//! the mean of neighbouring samples (linear interpolation); down (16 → 8 kHz) keeps every
//! other sample filtered by the 3-tap `[1 2 1] / 4` kernel, which has its zero at 8 kHz and
//! halves what would fold back at 4 kHz (better than a 2-tap mean at the same cost). Both
//! delay the signal by at most one input sample.

use bytes::BytesMut;

use super::AudioFormat;

/// μ-law's bias, added before the segment search.
const ULAW_BIAS: i32 = 0x84;
/// The largest magnitude μ-law encodes before clipping.
const ULAW_CLIP: i32 = 32635;

const fn ulaw_decode(code: u8) -> i16 {
    let u = !code;
    let exponent = (u >> 4) & 0x07;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

const fn alaw_decode(code: u8) -> i16 {
    let a = code ^ 0x55;
    let segment = (a & 0x70) >> 4;
    let mut magnitude = ((a & 0x0F) as i32) << 4;
    magnitude += match segment {
        0 => 8,
        _ => 0x108,
    };
    if segment > 1 {
        magnitude <<= segment - 1;
    }
    if a & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

/// The 256-entry decode table of one law, built at compile time.
macro_rules! table {
    ($decode:ident) => {{
        let mut table = [0; 256];
        let mut code = 0;
        while code < 256 {
            table[code] = $decode(code as u8);
            code += 1;
        }
        table
    }};
}

static ULAW_TO_LINEAR: [i16; 256] = table!(ulaw_decode);
static ALAW_TO_LINEAR: [i16; 256] = table!(alaw_decode);

/// The linear sample a μ-law byte stands for (G.711 table).
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TO_LINEAR[usize::from(code)]
}

/// The linear sample an A-law byte stands for (G.711 table).
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TO_LINEAR[usize::from(code)]
}

/// The μ-law byte nearest a linear sample (G.711; magnitudes over 32 635 clip).
#[inline]
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let sample = i32::from(sample);
    let sign = if sample < 0 { 0x80 } else { 0 };
    let biased = sample.abs().min(ULAW_CLIP) + ULAW_BIAS;
    // `biased >> 7` is 1..=255: the segment is the position of its highest bit.
    let exponent = 31 - ((biased >> 7) as u32).leading_zeros();
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as i32) << 4) | mantissa) as u8
}

/// The A-law byte nearest a linear sample (G.711, 13-bit magnitude).
#[inline]
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    // `value` is 0..=4095: segment 0 below 32, then one segment per further bit.
    let segment = if value < 0x20 {
        0
    } else {
        (31 - (value as u32).leading_zeros()) as i32 - 4
    };
    let shift = if segment < 2 { 1 } else { segment };
    (((segment << 4) | ((value >> shift) & 0x0F)) ^ mask) as u8
}

/// Converts a stream of audio chunks from one [`AudioFormat`] to another.
#[derive(Debug, Clone)]
pub struct Transcoder {
    from: AudioFormat,
    to: AudioFormat,
    /// The first byte of a signed linear sample whose second byte is in the next chunk.
    odd_byte: Option<u8>,
    /// Upsampler: the last input sample.
    up_last: i16,
    /// Downsampler: the last odd sample of the previous pair, and an even sample waiting
    /// for its odd neighbour.
    down_last: i16,
    down_pending: Option<i16>,
    samples: Vec<i16>,
    resampled: Vec<i16>,
}

impl Transcoder {
    /// A transcoder from `from` to `to` (the same format on both sides copies).
    pub fn new(from: AudioFormat, to: AudioFormat) -> Self {
        Self {
            from,
            to,
            odd_byte: None,
            up_last: 0,
            down_last: 0,
            down_pending: None,
            samples: Vec::with_capacity(640),
            resampled: Vec::with_capacity(640),
        }
    }

    /// The input format.
    pub fn from_format(&self) -> AudioFormat {
        self.from
    }

    /// The output format.
    pub fn to_format(&self) -> AudioFormat {
        self.to
    }

    /// Forgets the stream's state (after a `clear`, or between unrelated streams).
    pub fn reset(&mut self) {
        self.odd_byte = None;
        self.up_last = 0;
        self.down_last = 0;
        self.down_pending = None;
    }

    /// Converts a chunk and appends the result to `out`. A 20 ms frame in gives a 20 ms
    /// frame out (160 samples at 8 kHz, 320 at 16 kHz), apart from the downsampler holding
    /// an odd sample back until the next chunk.
    pub fn convert(&mut self, input: &[u8], out: &mut BytesMut) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        let mut samples = std::mem::take(&mut self.samples);
        samples.clear();
        self.decode(input, &mut samples);
        let mut resampled = std::mem::take(&mut self.resampled);
        resampled.clear();
        let output = match (self.from.sample_rate(), self.to.sample_rate()) {
            (8000, 16000) => {
                self.upsample(&samples, &mut resampled);
                &resampled
            }
            (16000, 8000) => {
                self.downsample(&samples, &mut resampled);
                &resampled
            }
            _ => &samples,
        };
        encode(self.to, output, out);
        self.samples = samples;
        self.resampled = resampled;
    }

    fn decode(&mut self, input: &[u8], samples: &mut Vec<i16>) {
        match self.from {
            AudioFormat::Ulaw => samples.extend(input.iter().map(|&b| ulaw_to_linear(b))),
            AudioFormat::Alaw => samples.extend(input.iter().map(|&b| alaw_to_linear(b))),
            AudioFormat::Slin | AudioFormat::Slin16 => {
                let mut rest = input;
                if let Some(low) = self.odd_byte.take() {
                    match rest.split_first() {
                        Some((&high, tail)) => {
                            samples.push(i16::from_le_bytes([low, high]));
                            rest = tail;
                        }
                        None => self.odd_byte = Some(low),
                    }
                }
                let pairs = rest.chunks_exact(2);
                if let [last] = pairs.remainder() {
                    self.odd_byte = Some(*last);
                }
                samples.extend(pairs.map(|pair| i16::from_le_bytes([pair[0], pair[1]])));
            }
        }
    }

    fn upsample(&mut self, input: &[i16], output: &mut Vec<i16>) {
        output.resize(input.len() * 2, 0);
        let mut last = self.up_last;
        for (pair, &sample) in output.chunks_exact_mut(2).zip(input) {
            pair[0] = ((i32::from(last) + i32::from(sample)) >> 1) as i16;
            pair[1] = sample;
            last = sample;
        }
        self.up_last = last;
    }

    fn downsample(&mut self, mut input: &[i16], output: &mut Vec<i16>) {
        let mut last = self.down_last;
        let mut filter = |even: i16, odd: i16| {
            let sum = i32::from(last) + 2 * i32::from(even) + i32::from(odd);
            last = odd;
            ((sum + 2) >> 2) as i16
        };
        if let Some(even) = self.down_pending.take() {
            match input.split_first() {
                Some((&odd, rest)) => {
                    output.push(filter(even, odd));
                    input = rest;
                }
                None => self.down_pending = Some(even),
            }
        }
        let pairs = input.chunks_exact(2);
        if let [even] = pairs.remainder() {
            self.down_pending = Some(*even);
        }
        output.extend(pairs.map(|pair| filter(pair[0], pair[1])));
        self.down_last = last;
    }
}

/// Appends linear samples to `out`, encoded in `format`.
fn encode(format: AudioFormat, samples: &[i16], out: &mut BytesMut) {
    // Grow once and write into the slice: per-sample `put_*` calls cost a capacity check
    // each and keep the loop from vectorising.
    let start = out.len();
    out.resize(start + samples.len() * format.bytes_per_sample(), 0);
    let dst = &mut out[start..];
    match format {
        AudioFormat::Ulaw => {
            for (byte, &sample) in dst.iter_mut().zip(samples) {
                *byte = linear_to_ulaw(sample);
            }
        }
        AudioFormat::Alaw => {
            for (byte, &sample) in dst.iter_mut().zip(samples) {
                *byte = linear_to_alaw(sample);
            }
        }
        AudioFormat::Slin | AudioFormat::Slin16 => {
            for (pair, &sample) in dst.chunks_exact_mut(2).zip(samples) {
                pair.copy_from_slice(&sample.to_le_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_g711_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(i16::MAX), 0xAA);
        assert_eq!(linear_to_alaw(i16::MIN), 0x2A);
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
    }

    #[test]
    fn every_g711_code_survives_decode_then_encode() {
        for code in 0..=255_u8 {
            let expected = if code == 0x7F { 0xFF } else { code }; // μ-law's -0 is +0
            assert_eq!(
                linear_to_ulaw(ulaw_to_linear(code)),
                expected,
                "ulaw {code:#x}"
            );
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code, "alaw {code:#x}");
        }
    }

    #[test]
    fn every_linear_sample_encodes_to_a_near_and_monotonic_code() {
        let (mut last_u, mut last_a) = (i16::MIN, i16::MIN);
        for sample in i16::MIN..=i16::MAX {
            let u = ulaw_to_linear(linear_to_ulaw(sample));
            let a = alaw_to_linear(linear_to_alaw(sample));
            assert!(u >= last_u && a >= last_a, "not monotonic at {sample}");
            (last_u, last_a) = (u, a);
            let magnitude = i32::from(sample).abs();
            // Half a quantisation step: 1/32 of the magnitude, plus the smallest step
            // (and μ-law's clip above 32 635).
            let bound = magnitude / 32 + 16 + (magnitude - ULAW_CLIP).max(0);
            assert!(
                (i32::from(u) - i32::from(sample)).abs() <= bound,
                "ulaw {sample}"
            );
            assert!(
                (i32::from(a) - i32::from(sample)).abs() <= bound,
                "alaw {sample}"
            );
        }
    }

    fn sine(rate: u32, hz: f64, amplitude: f64, samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|n| {
                let t = n as f64 / f64::from(rate);
                (amplitude * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16
            })
            .collect()
    }

    fn to_bytes(samples: &[i16]) -> Vec<u8> {
        samples.iter().flat_map(|s| s.to_le_bytes()).collect()
    }

    fn to_samples(bytes: &[u8]) -> Vec<i16> {
        bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
            .collect()
    }

    fn power(samples: &[i16]) -> f64 {
        samples.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / samples.len() as f64
    }

    #[test]
    fn g711_keeps_speech_band_audio_clean() {
        let tone = sine(8000, 440.0, 12000.0, 8000);
        for format in [AudioFormat::Ulaw, AudioFormat::Alaw] {
            let mut out = BytesMut::new();
            Transcoder::new(AudioFormat::Slin, format).convert(&to_bytes(&tone), &mut out);
            assert_eq!(out.len(), tone.len());
            let mut back = BytesMut::new();
            Transcoder::new(format, AudioFormat::Slin).convert(&out, &mut back);
            let back = to_samples(&back);
            let noise: Vec<i16> = tone.iter().zip(&back).map(|(a, b)| a - b).collect();
            let snr = 10.0 * (power(&tone) / power(&noise)).log10();
            assert!(snr > 30.0, "{format}: SNR {snr:.1} dB");
        }
    }

    #[test]
    fn resampling_keeps_a_voice_tone_and_the_frame_sizes() {
        let tone = sine(8000, 300.0, 10000.0, 1600);
        let mut up = BytesMut::new();
        Transcoder::new(AudioFormat::Slin, AudioFormat::Slin16).convert(&to_bytes(&tone), &mut up);
        assert_eq!(up.len(), 2 * 2 * tone.len());
        let mut down = BytesMut::new();
        Transcoder::new(AudioFormat::Slin16, AudioFormat::Slin).convert(&up, &mut down);
        let down = to_samples(&down);
        assert_eq!(down.len(), tone.len());
        // Up then down delays the signal by half an 8 kHz sample (62.5 µs): compare with
        // the tone sampled half a sample earlier.
        let delayed: Vec<i16> = (0..tone.len())
            .map(|n| {
                let t = (n as f64 - 0.5) / 8000.0;
                (10000.0 * (2.0 * std::f64::consts::PI * 300.0 * t).sin()) as i16
            })
            .collect();
        let noise: Vec<i16> = delayed[1..]
            .iter()
            .zip(&down[1..])
            .map(|(a, b)| a - b)
            .collect();
        let snr = 10.0 * (power(&tone) / power(&noise)).log10();
        assert!(snr > 30.0, "SNR {snr:.1} dB");
        // One 20 ms frame each way: 160 samples ↔ 320 samples.
        let mut t = Transcoder::new(AudioFormat::Ulaw, AudioFormat::Slin16);
        let mut out = BytesMut::new();
        t.convert(&[0xFF; 160], &mut out);
        assert_eq!(out.len(), 640);
        let mut t = Transcoder::new(AudioFormat::Slin16, AudioFormat::Ulaw);
        let mut out = BytesMut::new();
        t.convert(&[0; 640], &mut out);
        assert_eq!(out.len(), 160);
    }

    #[test]
    fn downsampling_attenuates_what_would_alias() {
        // 6 kHz at 16 kHz folds to 2 kHz at 8 kHz: it must come out much weaker.
        let tone = sine(16000, 6000.0, 10000.0, 3200);
        let mut down = BytesMut::new();
        Transcoder::new(AudioFormat::Slin16, AudioFormat::Slin)
            .convert(&to_bytes(&tone), &mut down);
        let attenuation = 10.0 * (power(&tone) / power(&to_samples(&down))).log10();
        assert!(attenuation > 15.0, "only {attenuation:.1} dB");
    }

    #[test]
    fn same_format_copies() {
        let mut t = Transcoder::new(AudioFormat::Alaw, AudioFormat::Alaw);
        let mut out = BytesMut::new();
        t.convert(&[1, 2, 3], &mut out);
        assert_eq!(&out[..], &[1, 2, 3]);
    }

    /// Every pair of formats, random audio cut at random places (odd lengths too): the
    /// output is what converting the whole stream at once gives, of the expected length.
    #[test]
    fn random_chunking_gives_the_same_output_as_one_chunk() {
        let mut rng = fastrand::Rng::with_seed(0xC0DE_C0DE);
        for _ in 0..400 {
            let from = AudioFormat::ALL[rng.usize(..4)];
            let to = AudioFormat::ALL[rng.usize(..4)];
            let len = rng.usize(..3000);
            let input: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            let mut whole = BytesMut::new();
            Transcoder::new(from, to).convert(&input, &mut whole);
            let mut chunked = BytesMut::new();
            let mut transcoder = Transcoder::new(from, to);
            let mut rest = &input[..];
            while !rest.is_empty() {
                let cut = rng.usize(..=rest.len().min(333));
                transcoder.convert(&rest[..cut], &mut chunked);
                rest = &rest[cut..];
            }
            assert_eq!(whole, chunked, "{from} -> {to}, {len} bytes");
            let samples_in = len / from.bytes_per_sample();
            let samples_out = match (from.sample_rate(), to.sample_rate()) {
                (8000, 16000) => samples_in * 2,
                (16000, 8000) => samples_in / 2,
                _ => samples_in,
            };
            let expected_len = if from == to {
                len
            } else {
                samples_out * to.bytes_per_sample()
            };
            assert_eq!(whole.len(), expected_len, "{from} -> {to}, {len} bytes");
        }
    }
}
