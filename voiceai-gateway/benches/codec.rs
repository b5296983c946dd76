//! Per-frame cost of the media hot paths: transcoding, Twilio `media` encode and decode,
//! re-framing and pacing, RTP and AudioSocket. Prints nanoseconds per 20 ms frame; at 1000
//! calls each path runs 50 000 times a second each way.
//!
//! `cargo bench -p voiceai-gateway --bench codec`; `BENCH_CODEC_FRAMES` sets how many frames
//! each case runs (default 200 000).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use voiceai_gateway::audio::codec::Transcoder;
use voiceai_gateway::audio::frames::Reframer;
use voiceai_gateway::audio::jitter::{Output, Playout};
use voiceai_gateway::audio::{AudioFormat, FRAME_DURATION};
use voiceai_gateway::audiosocket;
use voiceai_gateway::protocol::twilio::{Decoder, Encoder, StreamIds};
use voiceai_gateway::protocol::{BackendMessage, CallInfo};
use voiceai_gateway::rtp::{self, RtpSender};

fn case(name: &str, frames: u64, mut body: impl FnMut(u64)) {
    // Warm up, then measure.
    for i in 0..frames / 20 {
        body(i);
    }
    let started = Instant::now();
    for i in 0..frames {
        body(i);
    }
    let per_frame = started.elapsed().as_nanos() as f64 / frames as f64;
    println!("{name:<46} {per_frame:>8.1} ns/frame");
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}

fn main() {
    let frames: u64 = std::env::var("BENCH_CODEC_FRAMES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(200_000);
    let ulaw = noise(160, 1);
    let slin16 = noise(640, 2);
    let mut out = BytesMut::with_capacity(64 * 1024);

    for (from, to, input) in [
        (AudioFormat::Ulaw, AudioFormat::Slin16, &ulaw),
        (AudioFormat::Slin16, AudioFormat::Ulaw, &slin16),
        (AudioFormat::Ulaw, AudioFormat::Alaw, &ulaw),
    ] {
        let mut transcoder = Transcoder::new(from, to);
        case(&format!("transcode {from} -> {to}"), frames, |_| {
            out.clear();
            transcoder.convert(black_box(input), &mut out);
            black_box(&out);
        });
    }

    let (mut encoder, _) = Encoder::start(StreamIds::random("AC0"), &CallInfo::default());
    case("twilio media encode (160 B ulaw)", frames, |i| {
        black_box(encoder.media(black_box(&ulaw), i * 20));
    });
    let message = encoder.media(&[ulaw.clone(), ulaw.clone()].concat(), 0);
    let text = std::str::from_utf8(&message)
        .expect("JSON is UTF-8")
        .to_owned();
    let mut decoder = Decoder::new();
    case(
        "twilio media decode (40 ms, as Pipecat sends)",
        frames / 2,
        |_| match decoder.decode(black_box(&text)) {
            Ok(BackendMessage::Audio(audio)) => {
                black_box(audio);
            }
            other => panic!("{other:?}"),
        },
    );

    let chunk = noise(333, 3);
    let mut reframer = Reframer::new(AudioFormat::Ulaw);
    let mut pushed = 0_u64;
    let mut taken = 0_u64;
    case(
        "reframe 333-byte chunks into 160-byte frames",
        frames,
        |_| {
            while pushed < (taken + 1) * 160 {
                reframer.push(black_box(&chunk));
                pushed += chunk.len() as u64;
            }
            if let Some(frame) = reframer.next_frame() {
                taken += 1;
                black_box(frame);
            }
        },
    );

    let mut playout = Playout::<u64>::new(AudioFormat::Slin16);
    let t0 = tokio::time::Instant::now();
    case("playout push + paced release (slin16)", frames, |i| {
        playout.push_audio(black_box(&slin16));
        let now = t0 + FRAME_DURATION * (i as u32) + Duration::from_micros(1);
        while let Some(output) = playout.poll(now) {
            if let Output::Frame { audio, .. } = output {
                black_box(audio);
            }
        }
    });

    let mut sender = RtpSender::new(AudioFormat::Ulaw);
    case("rtp write (PCMU)", frames, |_| {
        out.clear();
        sender.write(black_box(&ulaw), &mut out);
        black_box(&out);
    });
    let mut sender = RtpSender::new(AudioFormat::Slin16);
    case("rtp write (slin16, byte swap)", frames, |_| {
        out.clear();
        sender.write(black_box(&slin16), &mut out);
        black_box(&out);
    });
    let mut packet = BytesMut::new();
    RtpSender::new(AudioFormat::Slin16).write(&slin16, &mut packet);
    case("rtp parse + payload to native (slin16)", frames, |_| {
        let parsed = rtp::parse(black_box(&packet)).expect("valid packet");
        out.clear();
        rtp::payload_to_native(AudioFormat::Slin16, parsed.payload, &mut out);
        black_box(&out);
    });

    let mut stream = BytesMut::new();
    audiosocket::Encoder::audio(AudioFormat::Slin, &slin16[..320], &mut stream)
        .expect("valid audio");
    let mut audio_decoder = audiosocket::Decoder::new();
    case("audiosocket decode (320 B slin)", frames, |_| {
        audio_decoder.push(black_box(&stream));
        match audio_decoder.next_message() {
            Ok(Some(message)) => {
                black_box(message);
            }
            other => panic!("{other:?}"),
        }
    });
}
