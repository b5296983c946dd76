//! Asterisk's side of a synthetic call's AudioSocket: connects to the gateway, sends the
//! UUID, then a stamped 20 ms slin frame every 20 ms, and reads the gateway's frames.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use voiceai_gateway::audio::AudioFormat;
use voiceai_gateway::audiosocket::{CallUuid, Decoder, Encoder, Message};

use crate::stamp::{self, Received, Stamp, WINDOW};

/// One media channel to play.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MediaSpec {
    pub(crate) host: SocketAddr,
    pub(crate) uuid: CallUuid,
    pub(crate) stream: u32,
    pub(crate) format: AudioFormat,
}

/// What one media connection saw.
#[derive(Debug, Default)]
pub(crate) struct MediaReport {
    pub(crate) stream: u32,
    /// Asterisk → backend frames sent inside the window.
    pub(crate) sent_in_window: u64,
    /// Backend → Asterisk frames received.
    pub(crate) received: Received,
    pub(crate) unreadable: u64,
    pub(crate) ended_by: &'static str,
}

/// What every media connection shares.
#[derive(Debug, Default)]
pub(crate) struct MediaContext {
    pub(crate) connected: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) finish: CancellationToken,
    pub(crate) reports: Mutex<Vec<MediaReport>>,
}

/// A 20 ms slin frame of a 400 Hz tone (what follows the stamp).
fn tone_frame() -> Vec<u8> {
    let samples = AudioFormat::Slin.samples_per_frame() as usize;
    (0..samples)
        .flat_map(|i| {
            let phase = i as f64 * 400.0 / 8000.0 * std::f64::consts::TAU;
            ((phase.sin() * 8000.0) as i16).to_le_bytes()
        })
        .collect()
}

pub(crate) async fn run(spec: MediaSpec, context: std::sync::Arc<MediaContext>) {
    let mut report = MediaReport {
        stream: spec.stream,
        ..MediaReport::default()
    };
    report.ended_by = match stream(&spec, &context, &mut report).await {
        Ok(why) => why,
        Err(why) => {
            context.failed.fetch_add(1, Ordering::Relaxed);
            eprintln!("fake media {}: {why}", spec.stream);
            "error"
        }
    };
    if let Ok(mut reports) = context.reports.lock() {
        reports.push(report);
    }
}

async fn stream(
    spec: &MediaSpec,
    context: &MediaContext,
    report: &mut MediaReport,
) -> Result<&'static str, String> {
    let socket = TcpStream::connect(spec.host)
        .await
        .map_err(|e| format!("connect {}: {e}", spec.host))?;
    let _ = socket.set_nodelay(true);
    let (mut read, mut write) = socket.into_split();
    let mut out = BytesMut::with_capacity(512);
    Encoder::uuid(spec.uuid, &mut out);
    write
        .write_all(&out)
        .await
        .map_err(|e| format!("send the UUID: {e}"))?;
    context.connected.fetch_add(1, Ordering::Relaxed);
    let mut frame = tone_frame();
    let mut decoder = Decoder::new();
    let mut seq = 0u32;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            () = context.finish.cancelled() => return Ok("finished"),
            _ = ticker.tick() => {
                let now = stamp::now_us();
                Stamp { stream: spec.stream, seq, time_us: now, paced: false }.write_slin(&mut frame);
                out.clear();
                Encoder::audio(spec.format, &frame, &mut out).map_err(|e| e.to_string())?;
                if write.write_all(&out).await.is_err() {
                    return Ok("write failed (gateway closed)");
                }
                if WINDOW.contains(now) {
                    report.sent_in_window += 1;
                }
                seq = seq.wrapping_add(1);
            }
            got = {
                let buffer = decoder.buffer_mut();
                buffer.reserve(2048);
                read.read_buf(buffer)
            } => {
                match got {
                    Ok(0) | Err(_) => return Ok("gateway closed"),
                    Ok(_) => {}
                }
                let now = stamp::now_us();
                loop {
                    match decoder.next_message() {
                        Ok(Some(Message::Audio { payload, .. })) => match Stamp::read_slin(&payload) {
                            Some(stamp) if WINDOW.contains(stamp.time_us) => {
                                report.received.record(stamp.seq, now as i64 - stamp.time_us as i64, stamp.paced);
                            }
                            Some(_) => {}
                            None => report.unreadable += 1,
                        },
                        Ok(Some(Message::Hangup)) => return Ok("gateway hung up"),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(error) => return Err(format!("malformed AudioSocket from the gateway: {error}")),
                    }
                }
            }
        }
    }
}
