//! The lab mode: N real SIPp calls through the lab's Asterisk to the gateway, which relays
//! them to the echoing Twilio backend of this process (see the bench's doc comment for
//! what is measured and how).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_util::sync::CancellationToken;

use crate::backend::{self, DueModel, FRAME_US, decode_payload, field, media_message};
use crate::child::{Gateway, free_port};
use crate::report::{Direction, Figures};
use crate::stamp::{self, WINDOW};
use crate::{AFTER_WINDOW, BenchError, Options, SETTLE, measure_window, procfs, wait_until};

/// A mark follows every this many echoed frames.
const MARK_EVERY: u64 = 5;
/// How long the lab may be held by a test that needs it alone.
const LAB_WAIT: Duration = Duration::from_secs(120);
/// How many times the gateway's counters are read at each end of the window (on
/// successive frames; the least difference counts).
const COUNTER_READS: u32 = 3;
/// The mark that follows the last echoed frame.
const LAST_MARK: &str = "last";

/// What one lab backend session saw.
#[derive(Debug, Default)]
struct LabReport {
    /// Asterisk → backend arrival jitter inside the window, µs.
    jitter_us: Vec<i64>,
    /// Backend → Asterisk: mark arrival − the due time of the frame before it, µs.
    mark_latency_us: Vec<i64>,
    /// The same, of frames the gateway held until due.
    held_latency_us: Vec<i64>,
    /// Frames received (whole session) and the gateway's count of frames it forwarded.
    received: u64,
    last_chunk: u64,
    /// Frames the gateway got from Asterisk during the window but did not forward.
    lost_to_backend: Option<u64>,
    /// Frames in the window (by the gateway's count).
    to_backend_in_window: u64,
    /// Frames echoed (whole session), and how many of them never reached Asterisk.
    sent: u64,
    lost_to_asterisk: Option<u64>,
    /// The session ran to its end (drained, counted, closed by the backend).
    completed: bool,
    /// The call it belongs to (a call has several sessions when its backend reconnects).
    call_sid: String,
    error: Option<String>,
}

#[derive(Debug)]
struct LabContext {
    api: SocketAddr,
    streaming: AtomicU64,
    done: AtomicU64,
    finish: CancellationToken,
    reports: Mutex<Vec<LabReport>>,
}

/// `framesIn` and `framesOut` of a call, from the gateway's REST API.
async fn call_counters(api: SocketAddr, call_sid: &str) -> Result<(u64, u64), String> {
    let mut stream = TcpStream::connect(api)
        .await
        .map_err(|e| format!("API connect: {e}"))?;
    let request =
        format!("GET /api/calls/{call_sid} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("API write: {e}"))?;
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .map_err(|e| format!("API read: {e}"))?;
    let text = String::from_utf8_lossy(&response);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, body)| body)
        .ok_or("API: no body")?;
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("API: {e}: {body}"))?;
    let count = |name: &str| {
        value["call"][name]
            .as_u64()
            .ok_or_else(|| format!("API: no call.{name} in {body}"))
    };
    Ok((count("framesIn")?, count("framesOut")?))
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Before,
    Window,
    /// The last frame and its mark are sent; waiting for the mark.
    Draining,
    /// The mark is back: the counters are read after the next frame.
    Counting,
    Done,
}

async fn lab_session(ws: WebSocketStream<TcpStream>, context: Arc<LabContext>) {
    let (mut sink, mut stream) = ws.split();
    let mut report = LabReport::default();
    let mut phase = Phase::Before;
    let (mut call_sid, mut stream_sid) = (String::new(), String::new());
    let mut due = DueModel::default();
    let mut audio = Vec::with_capacity(256);
    let mut b64 = String::with_capacity(256);
    // The earliest 20 ms grid the frames fit: min(arrival - 20 ms * index).
    let mut grid: Option<i64> = None;
    let mut window_chunks: Option<u64> = None;
    let mut not_forwarded_at_start = u64::MAX;
    let mut not_forwarded_at_end = u64::MAX;
    let (mut start_reads, mut end_reads) = (0, 0);
    loop {
        let message = tokio::select! {
            () = context.finish.cancelled() => break,
            message = stream.next() => message,
        };
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        let now = stamp::now_us();
        match field(&text, "event") {
            Some("start") => {
                call_sid = field(&text, "callSid").unwrap_or("").to_owned();
                stream_sid = field(&text, "streamSid").unwrap_or("").to_owned();
            }
            Some("media") => {
                let chunk: u64 = field(&text, "chunk")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(0);
                if report.received == 0 {
                    context.streaming.fetch_add(1, Ordering::Relaxed);
                }
                report.received += 1;
                report.last_chunk = chunk;
                let index = chunk.saturating_sub(1) as i64;
                let fit = now as i64 - index * FRAME_US as i64;
                let grid = match grid {
                    Some(earliest) if earliest <= fit => earliest,
                    _ => {
                        grid = Some(fit);
                        fit
                    }
                };
                if WINDOW.contains(now) {
                    report
                        .jitter_us
                        .push(now as i64 - (grid + index * FRAME_US as i64));
                }
                match phase {
                    Phase::Before if WINDOW.contains(now) => {
                        // A frame counted by the gateway but still on its way here makes
                        // `framesIn - chunk` one too big: the least of a few reads is right.
                        match call_counters(context.api, &call_sid).await {
                            Ok((frames_in, _)) => {
                                let not_forwarded = frames_in.saturating_sub(chunk);
                                not_forwarded_at_start = not_forwarded_at_start.min(not_forwarded);
                                window_chunks.get_or_insert(chunk);
                            }
                            Err(error) => report.error = Some(error),
                        }
                        start_reads += 1;
                        if start_reads == COUNTER_READS {
                            phase = Phase::Window;
                        }
                    }
                    Phase::Window if !WINDOW.contains(now) => {
                        let mark = format!(
                            r#"{{"event":"mark","streamSid":"{stream_sid}","mark":{{"name":"{LAST_MARK}"}}}}"#
                        );
                        if sink.send(Message::text(mark)).await.is_err() {
                            break;
                        }
                        phase = Phase::Draining;
                        continue;
                    }
                    Phase::Counting => {
                        match call_counters(context.api, &call_sid).await {
                            Ok((frames_in, frames_out)) => {
                                not_forwarded_at_end =
                                    not_forwarded_at_end.min(frames_in.saturating_sub(chunk));
                                report.lost_to_asterisk =
                                    Some(report.sent.saturating_sub(frames_out));
                                if let Some(start_chunk) = window_chunks {
                                    report.to_backend_in_window = chunk - start_chunk;
                                }
                            }
                            Err(error) => report.error = Some(error),
                        }
                        end_reads += 1;
                        if end_reads < COUNTER_READS {
                            continue;
                        }
                        if window_chunks.is_some() && not_forwarded_at_end != u64::MAX {
                            report.lost_to_backend =
                                Some(not_forwarded_at_end.saturating_sub(not_forwarded_at_start));
                        }
                        phase = Phase::Done;
                        // The bot ends the conversation: the gateway hangs the call up.
                        let close = Message::Close(Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "bench done".into(),
                        }));
                        let _ = sink.send(close).await;
                        continue;
                    }
                    _ => {}
                }
                if !matches!(phase, Phase::Before | Phase::Window) {
                    continue;
                }
                if !decode_payload(&text, &mut audio) {
                    continue;
                }
                let sent_us = stamp::now_us();
                let due_us = due.due(sent_us);
                let held = if due_us > sent_us { 'h' } else { 'n' };
                if sink
                    .send(media_message(&stream_sid, &audio, &mut b64))
                    .await
                    .is_err()
                {
                    break;
                }
                report.sent += 1;
                if report.sent % MARK_EVERY == 0 {
                    let mark = format!(
                        r#"{{"event":"mark","streamSid":"{stream_sid}","mark":{{"name":"d{due_us}{held}"}}}}"#
                    );
                    if sink.send(Message::text(mark)).await.is_err() {
                        break;
                    }
                }
            }
            Some("mark") => match field(&text, "name") {
                Some(LAST_MARK) if phase == Phase::Draining => phase = Phase::Counting,
                Some(name) => {
                    let parsed = name.strip_prefix('d').and_then(|d| {
                        let (due, held) = d.split_at(d.len().checked_sub(1)?);
                        Some((due.parse::<u64>().ok()?, held == "h"))
                    });
                    if let Some((due_us, held)) = parsed {
                        if WINDOW.contains(due_us) {
                            let latency = now as i64 - due_us as i64;
                            report.mark_latency_us.push(latency);
                            if held {
                                report.held_latency_us.push(latency);
                            }
                        }
                    }
                }
                None => {}
            },
            _ => {}
        }
    }
    report.completed = phase == Phase::Done;
    report.call_sid = call_sid;
    if phase != Phase::Done && report.error.is_none() {
        report.error = Some(format!("session ended in phase {phase:?}"));
    }
    context.done.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut reports) = context.reports.lock() {
        reports.push(report);
    }
}

/// Hangs up every channel still in Stasis app `app` (calls the killed gateway left
/// behind: they would otherwise stay up until the dialplan's absolute time-out). Returns
/// how many there were.
async fn hang_up_leftovers(lab: &ari_lab::Lab, app: &str) -> Result<usize, String> {
    let rest = ari_lab::rest::Rest::new(lab);
    let listed = rest.get("/channels").await.map_err(|e| e.to_string())?;
    let channels = listed.json().map_err(|e| e.to_string())?;
    let prefix = format!("{app},");
    let mine: Vec<String> = channels
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["dialplan"]["app_name"] == "Stasis"
                && c["dialplan"]["app_data"]
                    .as_str()
                    .is_some_and(|data| data == app || data.starts_with(&prefix))
        })
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect();
    for id in &mine {
        let _ = rest.delete(&format!("/channels/{id}")).await;
    }
    Ok(mine.len())
}

/// A free UDP port on 127.0.0.1 whose next three are free too (SIPp's RTP, RTCP, video).
fn free_udp_block() -> Result<u16, String> {
    for _ in 0..50 {
        let first = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = first.local_addr().map_err(|e| e.to_string())?.port();
        if port % 2 == 1 || port > 65_000 {
            continue;
        }
        if (1..4).all(|i| std::net::UdpSocket::bind(("127.0.0.1", port + i)).is_ok()) {
            return Ok(port);
        }
    }
    Err("no free block of UDP ports".to_owned())
}

/// SIPp placing `calls` calls at `rate` a second, each playing `pcap` until Asterisk
/// hangs up.
struct Sipp {
    child: tokio::process::Child,
    dir: PathBuf,
}

impl Sipp {
    fn start(calls: usize, rate: f64, app: &str, audio: Duration) -> Result<Sipp, BenchError> {
        let dir = std::env::temp_dir().join(ari_lab::unique_name("gateway-bench-sipp"));
        std::fs::create_dir_all(&dir)?;
        let pcap = dir.join("caller.pcap");
        ari_lab::pcap::CallerAudio::tone(440.0, audio).write(&pcap)?;
        let template = std::fs::read_to_string(ari_lab::sipp::scenario("uac.xml"))?;
        let quoted = format!("\"{}\"", ari_lab::sipp::DEFAULT_PCAP);
        if !template.contains(&quoted) {
            return Err("uac.xml no longer plays the default pcap".into());
        }
        // The scenario hangs up when no BYE came within a minute; a soak's calls last longer.
        let bye_wait = r#"<recv request="BYE" timeout="60000""#;
        if !template.contains(bye_wait) {
            return Err("uac.xml no longer waits 60 s for the BYE".into());
        }
        let longer = format!(
            r#"<recv request="BYE" timeout="{}""#,
            (audio + Duration::from_secs(60)).as_millis()
        );
        let scenario = dir.join("uac.xml");
        std::fs::write(
            &scenario,
            template
                .replace(&quoted, &format!("\"{}\"", pcap.display()))
                .replace(bye_wait, &longer),
        )?;
        let sip_port = std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let media_port = free_udp_block()?;
        let child = tokio::process::Command::new("sipp")
            .arg("127.0.0.1:5060")
            .arg("-sf")
            .arg(&scenario)
            .args([
                "-s",
                "100",
                "-set",
                "caller",
                "0311112222",
                "-set",
                "app",
                app,
            ])
            .args(["-i", "127.0.0.1", "-p", &sip_port.to_string()])
            .args(["-mp", &media_port.to_string()])
            .args(["-m", &calls.to_string(), "-l", &calls.to_string()])
            .args(["-r", &format!("{}", rate.round().max(1.0) as u64)])
            .args(["-ci", "127.0.0.1", "-nostdin", "-trace_err", "-error_file"])
            .arg(dir.join("errors.log"))
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log"))?)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run sipp (the sip-tester package): {e}"))?;
        Ok(Sipp { child, dir })
    }

    /// The last lines of SIPp's error log (its standard error when the log is empty).
    fn errors(&self) -> String {
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let mut text = read("errors.log");
        if text.trim().is_empty() {
            text = read("stderr.log");
        }
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join("\n")
    }

    /// Waits for SIPp to end by itself within `within`; kills it (by its pid) otherwise.
    async fn finish(&mut self, within: Duration) -> Result<(), String> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(format!("sipp ended with {status}: {}", self.errors())),
            Ok(Err(error)) => Err(format!("sipp: {error}")),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(format!("sipp still running after {within:?}: killed"))
            }
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The gateway's media flags; `index` and `of` place its RTP port range away from the
/// other gateways of the run (and from other runs' defaults).
fn media_args(
    media: &str,
    index: usize,
    of: usize,
    args: &mut Vec<String>,
) -> Result<(), BenchError> {
    match media {
        "audiosocket" => {
            args.push("--audiosocket-listen".into());
            args.push(format!("127.0.0.1:{}", free_port()?));
        }
        "rtp" => {
            let slots = (40 / of) as u32;
            let slot = (std::process::id() % slots) as usize * of + index;
            let base = 50_000 + slot as u16 * 300;
            args.push("--rtp-ports".into());
            args.push(format!("{base}-{}", base + 299));
        }
        "websocket" => {}
        other => return Err(format!("--media {other}: audiosocket, websocket or rtp").into()),
    }
    args.push("--media".into());
    args.push(media.to_owned());
    Ok(())
}

/// One gateway of a run: its own Stasis app, echo backend, SIPp and counters.
struct Instance {
    name: String,
    app: String,
    calls: usize,
    context: Arc<LabContext>,
    gateway: Gateway,
    sipp: Option<Sipp>,
}

impl Instance {
    async fn start(
        options: &Options,
        lab: &ari_lab::Lab,
        index: usize,
        calls: usize,
    ) -> Result<Instance, BenchError> {
        let name = if options.gateways == 1 {
            "gateway".to_owned()
        } else {
            format!("gateway-{}", (b'a' + index as u8) as char)
        };
        let app = ari_lab::unique_name(&format!("bench-{name}"));
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let context = Arc::new(LabContext {
            api: listen,
            streaming: AtomicU64::new(0),
            done: AtomicU64::new(0),
            finish: CancellationToken::new(),
            reports: Mutex::new(Vec::new()),
        });
        let backend_address = {
            let context = context.clone();
            backend::serve(move |ws| lab_session(ws, context.clone())).await?
        };
        let mut args = crate::child::bench_args(
            &listen.to_string(),
            &app,
            backend_address,
            calls,
            &options.log_level,
        );
        media_args(&options.media, index, options.gateways, &mut args)?;
        let env = [
            ("ARI_URL", lab.ari_url.clone()),
            ("ARI_USERNAME", lab.username.clone()),
            ("ARI_PASSWORD", lab.password.clone()),
        ];
        let mut gateway = Gateway::spawn(&args, &env)?;
        println!("{name} pid {} app {app}", gateway.pid());
        gateway.wait_ready(Duration::from_secs(20)).await?;
        Ok(Instance {
            name,
            app,
            calls,
            context,
            gateway,
            sipp: None,
        })
    }

    fn streaming(&self) -> u64 {
        self.context.streaming.load(Ordering::Relaxed)
    }

    /// Ends SIPp and the gateway (by their pids) and hangs up what the app left behind.
    async fn stop(&mut self, lab: &ari_lab::Lab, problems: &mut Vec<String>) {
        self.context.finish.cancel();
        let alive = self.gateway.running();
        self.gateway.kill();
        self.sipp = None;
        let name = &self.name;
        match hang_up_leftovers(lab, &self.app).await {
            Ok(0) => {}
            Ok(left) => problems.push(format!(
                "{name}: {left} channels were left in the app: hung up"
            )),
            Err(error) => problems.push(format!(
                "{name}: cannot list the channels left behind: {error}"
            )),
        }
        if !alive {
            problems.push(format!(
                "{name} exited by itself; its last lines:\n{}",
                self.gateway.tail()
            ));
        }
    }
}

pub(crate) async fn run(options: &Options, calls: usize) -> Result<Figures, BenchError> {
    // The lab's shared gate blocks while a test has Asterisk alone (restarting it).
    println!("waiting for the lab (its gate is held while a test restarts Asterisk)");
    let lab = tokio::time::timeout(LAB_WAIT, tokio::spawn(ari_lab::Lab::get()))
        .await
        .map_err(|_| format!("the lab was not free within {LAB_WAIT:?}"))??;
    let rate = options.rate.unwrap_or(10.0).max(1.0);
    let count = options.gateways;
    println!(
        "gateway bench (lab): {calls} SIPp calls through Asterisk at {}, {count} gateway(s), {} media, Twilio echo backend, {rate:.0} calls/s, {:.1} s window",
        lab.ari_url,
        options.media,
        options.window.as_secs_f64()
    );
    let mut instances = Vec::with_capacity(count);
    for index in 0..count {
        // The calls split evenly; the first gateways take the remainder.
        let share = calls / count + usize::from(index < calls % count);
        match Instance::start(options, lab, index, share).await {
            Ok(instance) => instances.push(instance),
            Err(error) => {
                let mut ignored = Vec::new();
                for instance in &mut instances {
                    instance.stop(lab, &mut ignored).await;
                }
                return Err(error);
            }
        }
    }
    let pids: Vec<u32> = instances.iter().map(|i| i.gateway.pid()).collect();
    let idle_cores = crate::idle_cores(&pids).await?;
    let rss_idle_kib = pids
        .iter()
        .map(|&pid| procfs::status_kib(pid, "VmRSS").ok_or("a gateway is gone"))
        .sum::<Result<u64, _>>()?;

    let ramp = Duration::from_secs_f64(calls as f64 / rate);
    // Long enough for the ramp, the settling, the window and the wind-down.
    let audio = ramp + SETTLE + options.window + Duration::from_secs(20);
    let started = Instant::now();
    for instance in &mut instances {
        let share_rate = rate * instance.calls as f64 / calls as f64;
        instance.sipp = Some(Sipp::start(
            instance.calls,
            share_rate,
            &instance.app,
            audio,
        )?);
    }
    let all_up = wait_until(ramp + Duration::from_secs(20), || {
        instances.iter().map(Instance::streaming).sum::<u64>() >= calls as u64
    })
    .await;
    let streaming = instances.iter().map(Instance::streaming).sum::<u64>() as usize;
    println!(
        "set-up: {streaming} of {calls} calls streaming after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut problems = Vec::new();
    if !all_up {
        for instance in &instances {
            let errors = instance.sipp.as_ref().map(Sipp::errors).unwrap_or_default();
            problems.push(format!(
                "{}: only {} of {} calls streamed; sipp: {errors}",
                instance.name,
                instance.streaming(),
                instance.calls
            ));
        }
    }
    if streaming == 0 {
        let tails: Vec<String> = instances.iter().map(|i| i.gateway.tail()).collect();
        let mut ignored = Vec::new();
        for instance in &mut instances {
            instance.stop(lab, &mut ignored).await;
        }
        return Err(format!(
            "no call streamed; the gateways' last lines:\n{}",
            tails.join("\n")
        )
        .into());
    }
    tokio::time::sleep(SETTLE).await;
    let start_us = stamp::now_us();
    WINDOW.set(start_us, start_us + options.window.as_micros() as u64);
    let usage = match measure_window(&pids, options.window, options.rss_every).await {
        Ok(usage) => usage,
        Err(error) => {
            let mut ignored = Vec::new();
            for instance in &mut instances {
                instance.stop(lab, &mut ignored).await;
            }
            return Err(error);
        }
    };
    tokio::time::sleep(AFTER_WINDOW).await;
    // Each session drains, reads the counters and closes; the gateway hangs up.
    let drained = wait_until(Duration::from_secs(15), || {
        instances
            .iter()
            .all(|i| i.context.done.load(Ordering::Relaxed) >= i.streaming())
    })
    .await;
    if !drained {
        let left: u64 = instances
            .iter()
            .map(|i| {
                i.streaming()
                    .saturating_sub(i.context.done.load(Ordering::Relaxed))
            })
            .sum();
        problems.push(format!("{left} sessions did not finish within 15 s"));
    }
    for instance in &mut instances {
        if let Some(sipp) = instance.sipp.as_mut() {
            if let Err(error) = sipp.finish(Duration::from_secs(20)).await {
                problems.push(format!("{}: {error}", instance.name));
            }
        }
    }
    for instance in &mut instances {
        instance.stop(lab, &mut problems).await;
        let (warnings, first) = instance.gateway.warnings();
        if warnings > 0 {
            problems.push(format!(
                "{} logged {warnings} warnings/errors, e.g. {first:?}",
                instance.name
            ));
        }
    }

    let mut reports = Vec::new();
    for instance in &instances {
        reports.append(&mut *instance.context.reports.lock().map_err(|_| "poisoned")?);
    }
    let mut to_backend = Direction {
        latency_note: "arrival jitter at the backend against the call's 20 ms grid, Asterisk's timing included: shown, not counted",
        counted: false,
        ..Direction::default()
    };
    let mut to_asterisk = Direction {
        latency_note: "the gateway's mark answer at the backend - the frame's due time",
        counted: true,
        ..Direction::default()
    };
    // A call lost: it never streamed, or none of its sessions ran to the run's end.
    let completed: std::collections::HashSet<&str> = reports
        .iter()
        .filter(|r| r.completed)
        .map(|r| r.call_sid.as_str())
        .collect();
    let calls_lost = calls.saturating_sub(completed.len());
    let (mut jitter, mut marks, mut held) = (Vec::new(), Vec::new(), Vec::new());
    for report in reports {
        if let Some(error) = &report.error {
            problems.push(format!("a session: {error}"));
        }
        jitter.extend(report.jitter_us);
        marks.extend(report.mark_latency_us);
        held.extend(report.held_latency_us);
        to_backend.sent += report.to_backend_in_window;
        to_backend.lost += report.lost_to_backend.unwrap_or(0);
        // Frames the gateway numbered but the backend never got.
        to_backend.lost += report.last_chunk.saturating_sub(report.received);
        to_asterisk.sent += report.sent;
        to_asterisk.lost += report.lost_to_asterisk.unwrap_or(0);
    }
    to_backend.latency = Some(stamp::percentiles(jitter));
    to_asterisk.latency = Some(stamp::percentiles(marks));
    to_asterisk.paced = Some(stamp::percentiles(held));
    to_asterisk.sent_note = "whole calls";
    Ok(Figures {
        mode: format!(
            "lab ({calls} SIPp calls, {count} gateway(s), {} media, real Asterisk)",
            options.media
        ),
        calls: streaming,
        window_s: options.window.as_secs_f64(),
        gateway_cores: usage.gateway_cores,
        peer_cores: usage.peer_cores,
        machine_cores: usage.machine_cores,
        rss_idle_kib,
        idle_cores,
        rss_calls_kib: usage.rss_kib,
        hwm_kib: usage.hwm_kib,
        threads: usage.threads,
        rss_samples: usage.rss_samples,
        gateway_names: instances.iter().map(|i| i.name.clone()).collect(),
        calls_lost: Some(calls_lost),
        to_backend,
        to_asterisk,
        problems,
    })
}
