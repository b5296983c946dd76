//! A demo AI voice backend speaking Twilio Media Streams, for trying voiceai-gateway
//! without a real bot: it greets each caller with a short tone, then echoes the caller's
//! audio back, and prints what happened on each call.
//!
//! `cargo run -p ari-examples --bin demo_bot` listens on `ws://127.0.0.1:8765`; run the
//! gateway with `--backend-url ws://127.0.0.1:8765/bot`. Pressing `#` on the phone ends
//! the conversation: the bot closes its socket normally and the gateway hangs up.
//!
//! What it prints per call (stdout):
//! ```text
//! demo_bot: listening on ws://127.0.0.1:8765
//! call 1: connected (path /bot)
//! call 1: start from=+4925551234 to=15550001 streamSid=MZ… callSid=CA…
//! call 1: greeting sent (25 frames of 440 Hz), then echoing
//! call 1: dtmf 5
//! call 1: mark greeting played
//! call 1: stop
//! call 1: ended after 3.1 s: frames in=150 out=175, dtmf "5", marks 1
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use base64::Engine as _;
use clap::Parser;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[derive(Parser)]
struct Args {
    /// Address to listen on (loopback by default).
    #[arg(long, env = "DEMO_BOT_LISTEN", default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// Frequency of the greeting tone, in Hz.
    #[arg(long, default_value_t = 440.0)]
    greeting_hz: f64,
    /// Length of the greeting tone in milliseconds (0: no greeting).
    #[arg(long, default_value_t = 500)]
    greeting_ms: u32,
    /// Exit after this many calls have ended (default: run until stopped).
    #[arg(long)]
    calls: Option<usize>,
}

/// The μ-law byte (G.711) for a linear sample.
fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32_635;
    let sample = i32::from(sample);
    let sign = if sample < 0 { 0x80 } else { 0 };
    let biased = sample.abs().min(CLIP) + BIAS;
    let exponent = 31 - ((biased >> 7) as u32).leading_zeros();
    let mantissa = (biased >> (exponent + 3)) & 0x0F;
    !(sign | ((exponent as i32) << 4) | mantissa) as u8
}

/// The greeting: `ms` of a tone at -12 dBFS as 20 ms μ-law frames of 160 bytes.
fn greeting(hz: f64, ms: u32) -> Vec<Vec<u8>> {
    let samples = (ms as usize / 20) * 160;
    let audio: Vec<u8> = (0..samples)
        .map(|n| {
            let phase = 2.0 * std::f64::consts::PI * hz * n as f64 / 8000.0;
            linear_to_ulaw((8000.0 * phase.sin()) as i16)
        })
        .collect();
    audio.chunks(160).map(<[u8]>::to_vec).collect()
}

/// What one call did, for its last line.
#[derive(Default)]
struct Tally {
    frames_in: usize,
    frames_out: usize,
    dtmf: String,
    marks: usize,
}

async fn serve(
    id: usize,
    stream: TcpStream,
    args: Arc<Args>,
    ended: mpsc::UnboundedSender<()>,
) -> Result<(), String> {
    let mut path = String::new();
    // The signature is tungstenite's handshake `Callback`.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        path = request.uri().to_string();
        Ok(response)
    };
    let mut ws = tokio_tungstenite::accept_hdr_async(stream, callback)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    println!("call {id}: connected (path {path})");
    let began = Instant::now();
    let mut tally = Tally::default();
    let mut stream_sid = String::new();
    let result = loop {
        let message = match ws.next().await {
            Some(Ok(message)) => message,
            Some(Err(error)) => break Err(format!("the socket failed: {error}")),
            None => break Err("the socket ended without a close frame".to_owned()),
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => break Ok(()),
            _ => continue,
        };
        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
            println!("call {id}: ignored a message that is not JSON");
            continue;
        };
        match value["event"].as_str().unwrap_or("") {
            "connected" => {}
            "start" => {
                let start = &value["start"];
                let parameters = &start["customParameters"];
                stream_sid = value["streamSid"]
                    .as_str()
                    .or(start["streamSid"].as_str())
                    .unwrap_or("")
                    .to_owned();
                println!(
                    "call {id}: start from={} to={} streamSid={stream_sid} callSid={}",
                    parameters["from_number"].as_str().unwrap_or("?"),
                    parameters["to_number"].as_str().unwrap_or("?"),
                    start["callSid"].as_str().unwrap_or("?"),
                );
                match send_greeting(&mut ws, &stream_sid, &args).await {
                    Ok(0) => {}
                    Ok(frames) => {
                        tally.frames_out += frames;
                        println!(
                            "call {id}: greeting sent ({frames} frames of {} Hz), then echoing",
                            args.greeting_hz
                        );
                    }
                    Err(error) => break Err(error),
                }
            }
            "media" => {
                tally.frames_in += 1;
                let payload = value["media"]["payload"].as_str().unwrap_or("");
                match base64::engine::general_purpose::STANDARD.decode(payload) {
                    Ok(audio) => {
                        if let Err(error) = send_media(&mut ws, &stream_sid, &audio).await {
                            break Err(error);
                        }
                        tally.frames_out += 1;
                    }
                    Err(_) => println!("call {id}: media payload is not base64"),
                }
            }
            "dtmf" => {
                let digit = value["dtmf"]["digit"].as_str().unwrap_or("?");
                println!("call {id}: dtmf {digit}");
                tally.dtmf.push_str(digit);
                if digit == "#" {
                    println!("call {id}: # pressed: ending the conversation");
                    let frame = CloseFrame {
                        code: CloseCode::Normal,
                        reason: "the caller pressed #".into(),
                    };
                    let _ = ws.close(Some(frame)).await;
                    // Let the gateway answer the close, for a moment at most.
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
                        while let Some(Ok(_)) = ws.next().await {}
                    })
                    .await;
                    break Ok(());
                }
            }
            "mark" => {
                tally.marks += 1;
                println!(
                    "call {id}: mark {} played",
                    value["mark"]["name"].as_str().unwrap_or("?")
                );
            }
            "stop" => println!("call {id}: stop"),
            other => println!("call {id}: ignored event {other:?}"),
        }
    };
    println!(
        "call {id}: ended after {:.1} s: frames in={} out={}, dtmf {:?}, marks {}{}",
        began.elapsed().as_secs_f64(),
        tally.frames_in,
        tally.frames_out,
        tally.dtmf,
        tally.marks,
        match &result {
            Ok(()) => String::new(),
            Err(error) => format!(" ({error})"),
        }
    );
    let _ = ended.send(());
    result
}

/// Sends the greeting tone and a `greeting` mark after it; returns how many frames.
async fn send_greeting(
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    stream_sid: &str,
    args: &Args,
) -> Result<usize, String> {
    let frames = greeting(args.greeting_hz, args.greeting_ms);
    if frames.is_empty() {
        return Ok(0);
    }
    for frame in &frames {
        send_media(ws, stream_sid, frame).await?;
    }
    let mark = json!({"event": "mark", "streamSid": stream_sid, "mark": {"name": "greeting"}});
    ws.send(Message::text(mark.to_string()))
        .await
        .map_err(|e| format!("sending the mark: {e}"))?;
    Ok(frames.len())
}

async fn send_media(
    ws: &mut tokio_tungstenite::WebSocketStream<TcpStream>,
    stream_sid: &str,
    audio: &[u8],
) -> Result<(), String> {
    let payload = base64::engine::general_purpose::STANDARD.encode(audio);
    let media = json!({"event": "media", "streamSid": stream_sid, "media": {"payload": payload}});
    ws.send(Message::text(media.to_string()))
        .await
        .map_err(|e| format!("sending audio: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Arc::new(Args::parse());
    let listener = match TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("demo_bot: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    println!("demo_bot: listening on ws://{}", args.listen);
    let calls = AtomicUsize::new(0);
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let mut ended = 0;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let id = calls.fetch_add(1, Ordering::Relaxed) + 1;
                let (args, ended_tx) = (args.clone(), ended_tx.clone());
                tokio::spawn(async move {
                    if let Err(error) = serve(id, stream, args, ended_tx).await {
                        eprintln!("demo_bot: call {id}: {error}");
                    }
                });
            }
            Some(()) = ended_rx.recv() => {
                ended += 1;
                if args.calls.is_some_and(|calls| ended >= calls) {
                    println!("demo_bot: {ended} call(s) done");
                    return ExitCode::SUCCESS;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                println!("demo_bot: stopped");
                return ExitCode::SUCCESS;
            }
        }
    }
}
