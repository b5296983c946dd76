//! The voice AI gateway end to end on the lab: starts the demo bot and the gateway, places
//! one call through SIPp (a 1 kHz tone, then the keys 1, 2 and #), and prints what
//! happened, from the gateway's live events (`/ws/monitor`) and the bot's report.
//!
//! `./demo.sh` builds and runs it (as root: SIPp sends the caller's audio from a raw
//! socket). Exits 0 when the call went through: started, audio both ways, the DTMF
//! reached the bot, and the call ended when `#` made the bot end the conversation.

use std::path::PathBuf;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use ari_lab::pcap::CallerAudio;
use ari_lab::sipp::{Sipp, UacCall};
use clap::Parser;
use futures::StreamExt as _;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    /// The gateway binary.
    #[arg(long, default_value = "target/release/voiceai-gateway")]
    gateway: PathBuf,
    /// The demo bot binary.
    #[arg(long, default_value = "target/release/demo_bot")]
    bot: PathBuf,
    /// Port of the gateway's API.
    #[arg(long, default_value_t = 18090)]
    api_port: u16,
    /// Port of the demo bot.
    #[arg(long, default_value_t = 18765)]
    bot_port: u16,
    /// Stasis app of the demo (the SIPp call asks the lab's dialplan for it).
    #[arg(long, default_value = "voiceai-demo")]
    app: String,
}

/// Lines a child prints, tagged with who printed them.
fn forward(
    child: &mut Child,
    who: &'static str,
    lines: mpsc::UnboundedSender<(&'static str, String)>,
) {
    if let Some(out) = child.stdout.take() {
        let lines = lines.clone();
        tokio::spawn(async move {
            let mut out = BufReader::new(out).lines();
            while let Ok(Some(line)) = out.next_line().await {
                let _ = lines.send((who, line));
            }
        });
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(async move {
            let mut err = BufReader::new(err).lines();
            while let Ok(Some(line)) = err.next_line().await {
                let _ = lines.send((who, line));
            }
        });
    }
}

fn spawn(program: &PathBuf, args: &[&str], envs: &[(&str, &str)]) -> Result<Child, String> {
    Command::new(program)
        .args(args)
        .envs(envs.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", program.display()))
}

async fn stop(mut child: Child, name: &str) {
    if let Some(pid) = child.id() {
        // SIGTERM our own child, by its pid: the gateway drains and exits 0.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .await;
    }
    match tokio::time::timeout(Duration::from_secs(10), child.wait()).await {
        Ok(Ok(status)) => println!("demo: {name} exited ({status})"),
        _ => {
            let _ = child.kill().await;
            println!("demo: {name} did not exit in 10 s: killed");
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => {
            println!("demo: OK — the call went through the gateway and back");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("demo: FAILED: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: &Args) -> Result<(), String> {
    let lab = ari_lab::Lab::from_env();
    let (lines_tx, mut lines) = mpsc::unbounded_channel();
    let bot_listen = format!("127.0.0.1:{}", args.bot_port);
    let api_listen = format!("127.0.0.1:{}", args.api_port);
    let mut bot = spawn(&args.bot, &["--listen", &bot_listen, "--calls", "1"], &[])?;
    forward(&mut bot, "bot", lines_tx.clone());
    let backend_url = format!("ws://{bot_listen}/bot");
    let mut gateway = spawn(
        &args.gateway,
        &[
            "--listen",
            &api_listen,
            "--app",
            &args.app,
            "--backend-url",
            &backend_url,
        ],
        &[
            ("ARI_URL", lab.ari_url.as_str()),
            ("ARI_USERNAME", lab.username.as_str()),
            ("ARI_PASSWORD", lab.password.as_str()),
        ],
    )?;
    forward(&mut gateway, "gateway", lines_tx);

    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some((who, line)) = lines.recv().await {
            println!("[{who}] {line}");
            if who == "gateway" && line.contains("ready") {
                return true;
            }
        }
        false
    })
    .await;
    if ready != Ok(true) {
        return Err("the gateway did not log `ready` within 30 s".to_owned());
    }

    let monitor_url = format!("ws://{api_listen}/ws/monitor");
    let (mut monitor, _) = tokio_tungstenite::connect_async(monitor_url.as_str())
        .await
        .map_err(|error| format!("cannot open {monitor_url}: {error}"))?;

    let caller = CallerAudio::tone(1000.0, Duration::from_secs(4)).dtmf_digits(
        Duration::from_millis(2000),
        Duration::from_millis(400),
        "12#",
    );
    let call = UacCall {
        dialled: "8000".to_owned(),
        caller: "15550100".to_owned(),
        app: args.app.clone(),
    };
    println!("demo: calling 8000 from 15550100 through SIPp (tone, then keys 1 2 #)");
    let sipp = Sipp::call_with_audio(&call, &caller).map_err(|error| error.to_string())?;

    let mut ended = None;
    let mut frames = (0, 0);
    let mut digits = String::new();
    let deadline = tokio::time::sleep(Duration::from_secs(40));
    tokio::pin!(deadline);
    while ended.is_none() {
        tokio::select! {
            () = &mut deadline => break,
            line = lines.recv() => if let Some((who, line)) = line {
                println!("[{who}] {line}");
            },
            message = monitor.next() => {
                let Some(Ok(Message::Text(text))) = message else { continue };
                let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else { continue };
                let kind = event["type"].as_str().unwrap_or_default();
                match kind {
                    "call_started" | "call_answered" | "backend_state" => println!("event: {kind} {event}"),
                    "dtmf" => {
                        digits.push_str(event["digit"].as_str().unwrap_or_default());
                        println!("event: dtmf {}", event["digit"]);
                    }
                    "media_stats" => {
                        frames = (event["framesIn"].as_u64().unwrap_or(0), event["framesOut"].as_u64().unwrap_or(0));
                        println!("event: audio frames from the caller {} / to the caller {}", frames.0, frames.1);
                    }
                    "call_ended" => {
                        println!("event: call_ended reason={} duration={}s", event["reason"], event["duration"]);
                        ended = event["reason"].as_str().map(str::to_owned);
                    }
                    _ => {}
                }
            }
        }
    }
    let status = sipp
        .wait(Duration::from_secs(15))
        .await
        .map_err(|e| e.to_string())?;
    println!("demo: SIPp caller exited ({status})");
    // Let the bot print its per-call summary before it is stopped.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some((who, line)) = lines.recv().await {
            println!("[{who}] {line}");
            if line.contains("ended after") {
                break;
            }
        }
    })
    .await;
    stop(gateway, "gateway").await;
    stop(bot, "demo bot").await;

    let ended = ended.ok_or("the call did not end within 40 s")?;
    if frames.0 == 0 || frames.1 == 0 {
        return Err(format!(
            "no audio both ways (frames from/to the caller: {frames:?})"
        ));
    }
    if !digits.contains('#') {
        return Err(format!("the DTMF did not arrive (got {digits:?})"));
    }
    if ended != "backend_closed" {
        return Err(format!(
            "the call ended as {ended:?}, expected backend_closed (the bot ends it on #)"
        ));
    }
    Ok(())
}
