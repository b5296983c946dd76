//! Audio checks for tests: WAV files as Asterisk records them, tone detection, and the
//! G.711 codecs the lab's SIP callers speak.
//!
//! Asterisk's `wav` format is RIFF PCM, 16-bit little-endian, mono, 8 kHz; `wav16` is the
//! same at 16 kHz. [`parse_wav`] reads those (and any other PCM 16-bit WAV).
//!
//! Tone checks work on the samples: [`dominant_frequency`] finds the strongest frequency
//! (an averaged spectrum over the whole signal, so silence before or after a tone does
//! not hide it), [`tone_power`] / [`tone_fraction`] measure one frequency with the
//! Goertzel algorithm, and [`sine`] makes test signals.

use std::f64::consts::PI;

/// A WAV file's audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples per second (8000 for Asterisk's `wav`, 16000 for `wav16`).
    pub sample_rate: u32,
    /// Number of interleaved channels in the file.
    pub channels: u16,
    /// The first channel's samples.
    pub samples: Vec<i16>,
}

impl Wav {
    /// The length of the audio.
    pub fn duration(&self) -> std::time::Duration {
        if self.sample_rate == 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_secs_f64(self.samples.len() as f64 / f64::from(self.sample_rate))
    }
}

/// Why a WAV file cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavError(pub String);

impl std::fmt::Display for WavError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a PCM 16-bit WAV file: {}", self.0)
    }
}

impl std::error::Error for WavError {}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a RIFF/WAVE file of 16-bit PCM (format 1, or WAVE_FORMAT_EXTENSIBLE).
///
/// Tolerant of what a recorder that was cut short leaves: a `data` chunk whose declared
/// size runs past the end of the file is read up to the end. Of several channels, the
/// first is kept.
///
/// # Errors
/// When the bytes are not such a file.
pub fn parse_wav(bytes: &[u8]) -> Result<Wav, WavError> {
    let err = |what: &str| WavError(what.to_owned());
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(err("no RIFF/WAVE header"));
    }
    let mut at = 12;
    let mut format: Option<(u16, u16, u32, u16)> = None;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = le_u32(bytes, at + 4).ok_or_else(|| err("truncated chunk header"))? as usize;
        let body = at + 8;
        if id == b"fmt " {
            let tag = le_u16(bytes, body).ok_or_else(|| err("short fmt chunk"))?;
            let channels = le_u16(bytes, body + 2).ok_or_else(|| err("short fmt chunk"))?;
            let rate = le_u32(bytes, body + 4).ok_or_else(|| err("short fmt chunk"))?;
            let bits = le_u16(bytes, body + 14).ok_or_else(|| err("short fmt chunk"))?;
            format = Some((tag, channels, rate, bits));
        } else if id == b"data" {
            let (tag, channels, sample_rate, bits) =
                format.ok_or_else(|| err("data chunk before fmt chunk"))?;
            if tag != 1 && tag != 0xFFFE {
                return Err(WavError(format!("format tag {tag} is not PCM")));
            }
            if bits != 16 {
                return Err(WavError(format!("{bits} bits per sample, not 16")));
            }
            if channels == 0 {
                return Err(err("zero channels"));
            }
            let end = body.saturating_add(size).min(bytes.len());
            let stride = 2 * usize::from(channels);
            let samples = bytes[body..end]
                .chunks_exact(stride)
                .map(|frame| i16::from_le_bytes([frame[0], frame[1]]))
                .collect();
            return Ok(Wav {
                sample_rate,
                channels,
                samples,
            });
        }
        // Chunks are padded to an even size.
        at = body.saturating_add(size).saturating_add(size & 1);
    }
    Err(err("no data chunk"))
}

/// A RIFF/WAVE file of 16-bit PCM mono `samples` (for tests of [`parse_wav`] and for
/// files to play).
pub fn wav_bytes(samples: &[i16], sample_rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// `seconds` of a sine wave of `frequency` Hz and peak `amplitude`, at `sample_rate`.
pub fn sine(frequency: f64, sample_rate: u32, seconds: f64, amplitude: i16) -> Vec<i16> {
    let count = (seconds * f64::from(sample_rate)).round() as usize;
    (0..count)
        .map(|n| {
            let phase = 2.0 * PI * frequency * n as f64 / f64::from(sample_rate);
            (f64::from(amplitude) * phase.sin()).round() as i16
        })
        .collect()
}

/// The root mean square of the samples (0 for none).
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (energy / samples.len() as f64).sqrt()
}

/// The squared magnitude of the Goertzel filter at `frequency` over all samples.
fn goertzel(samples: &[i16], sample_rate: u32, frequency: f64) -> f64 {
    let omega = 2.0 * PI * frequency / f64::from(sample_rate);
    let coefficient = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &sample in samples {
        let s0 = f64::from(sample) + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    (s1 * s1 + s2 * s2 - coefficient * s1 * s2).max(0.0)
}

/// The mean power of the component at `frequency` Hz (Goertzel): about `A²/2` for a sine
/// of peak amplitude `A` at that frequency, near 0 when the frequency is absent.
pub fn tone_power(samples: &[i16], sample_rate: u32, frequency: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let n = samples.len() as f64;
    2.0 * goertzel(samples, sample_rate, frequency) / (n * n)
}

/// How much of the signal's power lies at `frequency` Hz: about 1 for a pure tone of that
/// frequency, near 0 when it is absent (0 for silence).
pub fn tone_fraction(samples: &[i16], sample_rate: u32, frequency: f64) -> f64 {
    let total = rms(samples);
    if total == 0.0 {
        return 0.0;
    }
    (tone_power(samples, sample_rate, frequency) / (total * total)).min(1.0)
}

/// Below this RMS (about -60 dBFS) a signal counts as silence.
pub const SILENCE_RMS: f64 = 32.0;

/// The strongest frequency in the samples, in Hz (0 for silence or no samples).
///
/// See [`detect_tone`] for the method; this one answers even for noise.
pub fn dominant_frequency(samples: &[i16], sample_rate: u32) -> f64 {
    spectrum_peak(samples, sample_rate).map_or(0.0, |(frequency, _)| frequency)
}

/// The frequency of the tone in the samples, or `None` when they are silent (RMS below
/// [`SILENCE_RMS`]) or no single frequency dominates (its peak holds less than a quarter
/// of the power: noise, speech, or several tones).
///
/// The spectrum is averaged over Hann-windowed blocks of the whole signal (about 4 Hz
/// resolution at 8 kHz), and the peak interpolated: accurate to about 1 Hz for a steady
/// tone. DC and the lowest 40 Hz are ignored.
pub fn detect_tone(samples: &[i16], sample_rate: u32) -> Option<f64> {
    if rms(samples) < SILENCE_RMS {
        return None;
    }
    let (frequency, share) = spectrum_peak(samples, sample_rate)?;
    (share >= 0.25).then_some(frequency)
}

/// The peak of the averaged power spectrum: its frequency and the share of the spectrum's
/// power within a few bins of it.
fn spectrum_peak(samples: &[i16], sample_rate: u32) -> Option<(f64, f64)> {
    if samples.is_empty() || sample_rate == 0 {
        return None;
    }
    // About 4 Hz bins at 8 kHz, 8 Hz at 16 kHz; shorter signals are zero-padded.
    let size = 2048usize;
    let hop = size / 2;
    let window: Vec<f64> = (0..size)
        .map(|n| 0.5 - 0.5 * (2.0 * PI * n as f64 / size as f64).cos())
        .collect();
    let mut power = vec![0.0f64; size / 2 + 1];
    let mut start = 0;
    loop {
        let mut re = vec![0.0f64; size];
        let mut im = vec![0.0f64; size];
        for (n, value) in re.iter_mut().enumerate() {
            if let Some(&sample) = samples.get(start + n) {
                *value = f64::from(sample) * window[n];
            }
        }
        fft(&mut re, &mut im);
        for (bin, p) in power.iter_mut().enumerate() {
            *p += re[bin] * re[bin] + im[bin] * im[bin];
        }
        if start + size >= samples.len() {
            break;
        }
        start += hop;
    }
    let bin_hz = f64::from(sample_rate) / size as f64;
    let lowest = (40.0 / bin_hz).ceil() as usize;
    let (peak, &peak_power) = power
        .iter()
        .enumerate()
        .skip(lowest.max(1))
        .take(size / 2 - lowest.max(1))
        .max_by(|a, b| a.1.total_cmp(b.1))?;
    if peak_power <= 0.0 {
        return None;
    }
    // Gaussian interpolation (parabola through the log powers) of the Hann main lobe.
    let offset = match (power.get(peak - 1), power.get(peak + 1)) {
        (Some(&left), Some(&right)) if left > 0.0 && right > 0.0 => {
            let (l, c, r) = (left.ln(), peak_power.ln(), right.ln());
            let denominator = l - 2.0 * c + r;
            if denominator.abs() > f64::EPSILON {
                (0.5 * (l - r) / denominator).clamp(-0.5, 0.5)
            } else {
                0.0
            }
        }
        _ => 0.0,
    };
    let total: f64 = power.iter().skip(1).sum();
    let near: f64 = power[peak.saturating_sub(3)..(peak + 4).min(power.len())]
        .iter()
        .sum();
    Some(((peak as f64 + offset) * bin_hz, near / total))
}

/// In-place radix-2 FFT; the length must be a power of two.
fn fft(re: &mut [f64], im: &mut [f64]) {
    let n = re.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            re.swap(i, j);
            im.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let angle = -2.0 * PI / len as f64;
        let (w_im, w_re) = angle.sin_cos();
        for chunk in (0..n).step_by(len) {
            let (mut u_re, mut u_im) = (1.0f64, 0.0f64);
            for k in 0..len / 2 {
                let a = chunk + k;
                let b = a + len / 2;
                let t_re = re[b] * u_re - im[b] * u_im;
                let t_im = re[b] * u_im + im[b] * u_re;
                re[b] = re[a] - t_re;
                im[b] = im[a] - t_im;
                re[a] += t_re;
                im[a] += t_im;
                let next = u_re * w_re - u_im * w_im;
                u_im = u_re * w_im + u_im * w_re;
                u_re = next;
            }
        }
        len <<= 1;
    }
}

/// The A-law byte (G.711) nearest a linear sample.
pub fn linear_to_alaw(sample: i16) -> u8 {
    let mut value = i32::from(sample) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    let segment = if value < 0x20 {
        0
    } else {
        (31 - (value as u32).leading_zeros()) as i32 - 4
    };
    let shift = if segment < 2 { 1 } else { segment };
    (((segment << 4) | ((value >> shift) & 0x0F)) ^ mask) as u8
}

/// The linear sample an A-law byte (G.711) stands for.
pub fn alaw_to_linear(code: u8) -> i16 {
    let code = code ^ 0x55;
    let segment = i32::from((code & 0x70) >> 4);
    let mut value = (i32::from(code & 0x0F) << 4) + 8;
    if segment >= 1 {
        value += 0x100;
    }
    if segment > 1 {
        value <<= segment - 1;
    }
    (if code & 0x80 != 0 { value } else { -value }) as i16
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32_635;

/// The μ-law byte (G.711) nearest a linear sample.
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let sample = i32::from(sample);
    let sign = if sample < 0 { 0x80 } else { 0 };
    let biased = sample.abs().min(ULAW_CLIP) + ULAW_BIAS;
    let exponent = 31 - ((biased >> 7) as u32).leading_zeros();
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as i32) << 4) | mantissa) as u8
}

/// The linear sample a μ-law byte (G.711) stands for.
pub fn ulaw_to_linear(code: u8) -> i16 {
    let code = !code;
    let exponent = i32::from((code >> 4) & 0x07);
    let magnitude = (((i32::from(code & 0x0F) << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    (if code & 0x80 != 0 {
        -magnitude
    } else {
        magnitude
    }) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wav_round_trips_and_reports_duration() {
        let tone = sine(440.0, 8000, 0.5, 8000);
        let wav = parse_wav(&wav_bytes(&tone, 8000)).unwrap();
        assert_eq!(wav.sample_rate, 8000);
        assert_eq!(wav.channels, 1);
        assert_eq!(wav.samples, tone);
        assert_eq!(wav.duration(), std::time::Duration::from_millis(500));
    }

    #[test]
    fn wav_with_extra_chunks_and_a_short_data_chunk_is_read() {
        let mut bytes = wav_bytes(&[1, 2, 3, 4], 16000);
        // A LIST chunk (odd size, padded) between fmt and data.
        let list = [b"LIST".as_slice(), &3u32.to_le_bytes(), b"abc\0"].concat();
        bytes.splice(36..36, list);
        // The data chunk claims more than there is.
        let data_size_at = bytes.len() - 8 - 4;
        bytes[data_size_at..data_size_at + 4].copy_from_slice(&1000u32.to_le_bytes());
        let wav = parse_wav(&bytes).unwrap();
        assert_eq!(wav.sample_rate, 16000);
        assert_eq!(wav.samples, vec![1, 2, 3, 4]);
    }

    #[test]
    fn not_wav_is_an_error_not_a_panic() {
        assert!(parse_wav(b"").is_err());
        assert!(parse_wav(b"RIFF\0\0\0\0WAVE").is_err());
        let mut eight_bit = wav_bytes(&[0; 4], 8000);
        eight_bit[34] = 8;
        assert!(parse_wav(&eight_bit).is_err());
        let mut truncated = wav_bytes(&[0; 4], 8000);
        truncated.truncate(30);
        assert!(parse_wav(&truncated).is_err());
    }

    #[test]
    fn dominant_frequency_finds_tones_at_both_rates() {
        for rate in [8000, 16000] {
            for frequency in [300.0, 440.0, 1000.0, 1234.5, 3400.0] {
                let tone = sine(frequency, rate, 1.0, 6000);
                let found = dominant_frequency(&tone, rate);
                assert!(
                    (found - frequency).abs() < 1.5,
                    "{frequency} Hz at {rate}: found {found}"
                );
                assert_eq!(
                    detect_tone(&tone, rate).map(|f| f.round()),
                    Some(found.round())
                );
            }
        }
    }

    #[test]
    fn a_tone_after_silence_and_in_a_short_signal_is_found() {
        let mut signal = vec![0i16; 16000];
        signal.extend(sine(440.0, 8000, 0.5, 3000));
        assert!((dominant_frequency(&signal, 8000) - 440.0).abs() < 1.5);
        let short = sine(1000.0, 8000, 0.02, 3000);
        assert!((dominant_frequency(&short, 8000) - 1000.0).abs() < 20.0);
    }

    #[test]
    fn silence_and_noise_have_no_tone() {
        assert_eq!(detect_tone(&[], 8000), None);
        assert_eq!(detect_tone(&[0; 8000], 8000), None);
        assert_eq!(dominant_frequency(&[0; 8000], 8000), 0.0);
        let noise: Vec<i16> = fastish_noise(8000).collect();
        assert!(rms(&noise) > 500.0);
        assert_eq!(detect_tone(&noise, 8000), None);
    }

    fn fastish_noise(count: usize) -> impl Iterator<Item = i16> {
        let mut state = 0x1234_5678u32;
        (0..count).map(move |_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 20) as i16 - 2048
        })
    }

    #[test]
    fn goertzel_measures_one_frequency() {
        let tone = sine(440.0, 8000, 1.0, 1000);
        let power = tone_power(&tone, 8000, 440.0);
        assert!((power - 500_000.0).abs() < 5_000.0, "{power}");
        assert!(tone_fraction(&tone, 8000, 440.0) > 0.98);
        assert!(tone_fraction(&tone, 8000, 1000.0) < 0.01);
        assert_eq!(tone_fraction(&[0; 100], 8000, 440.0), 0.0);
        assert_eq!(tone_power(&[], 8000, 440.0), 0.0);
    }

    #[test]
    fn g711_round_trips_within_its_quantisation() {
        for sample in (-32768i32..=32767).step_by(97) {
            let sample = sample as i16;
            for (encode, decode) in [
                (
                    linear_to_alaw as fn(i16) -> u8,
                    alaw_to_linear as fn(u8) -> i16,
                ),
                (linear_to_ulaw, ulaw_to_linear),
            ] {
                let back = i32::from(decode(encode(sample)));
                let error = (back - i32::from(sample)).abs();
                assert!(
                    error <= (i32::from(sample).abs() / 16).max(16) + 8,
                    "{sample} -> {back}"
                );
            }
        }
        // Every code decodes to a value that encodes back to it (silence codes aside).
        for code in 0..=255u8 {
            assert_eq!(linear_to_alaw(alaw_to_linear(code)), code);
            if code != 0x7F {
                assert_eq!(linear_to_ulaw(ulaw_to_linear(code)), code, "{code:#x}");
            }
        }
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_ulaw(0), 0xFF);
    }

    #[test]
    fn a_tone_survives_alaw() {
        let tone = sine(440.0, 8000, 1.0, 8000);
        let decoded: Vec<i16> = tone
            .iter()
            .map(|&s| alaw_to_linear(linear_to_alaw(s)))
            .collect();
        assert!((dominant_frequency(&decoded, 8000) - 440.0).abs() < 1.5);
    }
}
