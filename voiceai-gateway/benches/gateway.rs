//! The gateway under N concurrent calls: CPU and memory per call, added latency per frame
//! in each direction, frames lost. The real binary runs as a child process, so its CPU
//! (`/proc/<pid>/stat` utime + stime, all threads) and RSS (`/proc/<pid>/status` VmRSS)
//! are its own.
//!
//! ```text
//! cargo bench -p voiceai-gateway --bench gateway                    # synthetic, 1000 calls
//! cargo bench -p voiceai-gateway --bench gateway -- --calls 500
//! cargo bench -p voiceai-gateway --bench gateway -- --lab 50        # the lab, N <= 300
//! cargo bench -p voiceai-gateway --bench gateway -- --lab 200 --gateways 2 --media rtp \
//!     --window 600                                                  # the soak
//! ```
//!
//! Options: `--calls N` (synthetic, default 1000, or `BENCH_GATEWAY_CALLS`), `--lab [N]`
//! (default 50), `--gateways G` (lab: G gateway processes share the calls, default 1),
//! `--window S` (seconds measured, default 10, at most 3600, or `BENCH_GATEWAY_WINDOW`),
//! `--rss-every S` (each gateway's RSS is printed every S seconds of the window, default 60),
//! `--rate R` (calls set up per second: default 200 synthetic, 10 lab — at 25 a second
//! the lab's Asterisk and SIPp, on a 2-core machine, left calls unanswered), `--media M`
//! (lab: audiosocket, websocket or rtp; default audiosocket), `--log-level L` (the
//! gateway's, default info). `BENCH_GATEWAY_LOG=<file>` keeps the gateway's whole output.
//!
//! # Synthetic (default)
//!
//! This process plays Asterisk and the AI backend on 127.0.0.1, so Asterisk's own limits
//! do not cap the figure:
//! - a fake ARI ([`fake_ari`]: HTTP and the events WebSocket) answers exactly the
//!   requests the gateway makes for a call, raises `StasisStart` for N caller channels
//!   (`--rate` a second), and on `externalMedia` (the gateway runs with `--media
//!   audiosocket`, slin 8 kHz) connects to the gateway's AudioSocket listener with the
//!   UUID from `data` and sends one 20 ms frame every 20 ms ([`fake_media`]);
//! - a fake backend ([`backend`]) speaks Twilio Media Streams and echoes every `media`
//!   frame the moment it arrives.
//!
//! Every frame carries a stamp ([`stamp`]: stream, sequence number, a time in µs on
//! this process's monotonic clock) in its first 34 samples, chosen to survive the
//! gateway's slin ⇄ μ-law conversion exactly.
//!
//! Once every call streams both ways, 2 s settle, then the window (`--window`) is
//! measured: CPU and RSS of the gateway, and every frame whose stamp time falls inside
//! the window. 1 s after the window the callers hang up (StasisEnd + ChannelDestroyed);
//! the run waits for every bridge to be destroyed, then kills the gateway by its pid.
//!
//! ## Definitions
//! - **CPU per call**: gateway utime + stime over the window ÷ window ÷ N, in % of one
//!   core (`cpu_per_call`). The target ≥ 400 calls per core is `cpu_per_call ≤ 0.25`.
//! - **RSS per call**: (VmRSS at the end of the window − VmRSS idle, read after `ready`
//!   and before the first call) ÷ N, in KiB.
//! - **Added latency, Asterisk → backend**: the time the fake backend has the frame
//!   (after reading and base64-decoding the `media` message) minus the time the fake
//!   Asterisk wrote it to the AudioSocket. This path is forwarded as it arrives, so all
//!   of it is added delay.
//! - **Added latency, backend → Asterisk**: this path is paced by the gateway's jitter
//!   buffer, so a frame's latency is counted from the time it is *due*, not from the
//!   time it was sent: the time the fake Asterisk reads the frame minus its due time.
//!   The due time is what the gateway's pacing promises with zero transport delay,
//!   computed by the backend at send time ([`backend::DueModel`]): the first frame of a
//!   talk spurt is due when sent; every later one 20 ms after the one before, or when
//!   sent if that is later (within the catch-up window of `max_burst − 1` frames; a
//!   longer silence starts a new spurt). Holding a frame until its slot is pacing, not
//!   added latency; releasing it late is. The frames due after they were sent (those the
//!   gateway holds) are also shown on their own ("held by the gateway until due"):
//!   their latency is the pacer's own error.
//! - Both include what the peers add: two loopback TCP hops, and this process's own
//!   scheduling (it shares the machine's cores with the gateway). They are upper bounds
//!   of what the gateway itself adds.
//! - **Machine**: the whole machine's busy cores over the window (`/proc/stat`), split
//!   into the gateway, this process and everything else. The peers cost about as much
//!   CPU as the gateway (they do the mirror image of its work), so a machine needs
//!   roughly twice the gateway's cores to run a size in real time; when it is saturated
//!   the run says so (`problem: the machine was saturated`), and its latency and loss
//!   show the machine's limit, not the gateway's.
//! - **Lost**: frames sent with a stamp time inside the window that never arrived (by the
//!   end of the run), summed over both directions (`lost`). `p99_added_ms` is the
//!   worse direction's p99.
//!
//! # Lab (`--lab N`)
//!
//! N real calls through the lab's Asterisk: one SIPp process (`-m N -r --rate -l N`) calls
//! into the `[inbound]` context with `X-Lab-Stasis-App` naming this run's app and plays a
//! 440 Hz tone; the gateway (`--media`, default audiosocket) relays each call to the same
//! echoing Twilio backend. The backend sees only the gateway's side, so:
//! - **Backend → Asterisk**: every 5th echoed frame is followed by a `mark`; the gateway
//!   answers a mark when the audio before it has been sent to Asterisk. Added latency =
//!   the mark's arrival at the backend − the frame's due time (as above). This is the
//!   gateway's own pacing error, plus one loopback hop back.
//! - **Asterisk → backend**: no stamp can ride through Asterisk, so what is printed is the
//!   arrival jitter at the backend (each frame's arrival − the earliest 20 ms grid its
//!   call's frames fit), which includes Asterisk's own timing; it is shown, not counted
//!   in `p99_added_ms`.
//! - **Lost**: backend → Asterisk: frames the backend sent − frames the gateway sent to
//!   Asterisk (`framesOut` of `GET /api/calls/{id}`, read after the last mark came
//!   back), over whole calls. Asterisk → backend: how much `framesIn − chunk` (frames
//!   the gateway got from Asterisk minus the Twilio `chunk` number, its count of frames
//!   forwarded) grew over the window, each read right after a frame arrived (when none
//!   is in flight), plus chunk numbers the backend never received.
//! - The window starts when every call streams, plus 2 s; the backend then closes each
//!   session normally, the gateway hangs the calls up, and SIPp ends.
//!
//! ## Soak (`--lab N --gateways 2 --window 600`)
//!
//! The same, with G gateway processes, each its own Stasis app, echo backend and SIPp
//! (N / G calls each, at `--rate` / G): CPU and RSS are summed over the gateways, each
//! gateway's RSS is printed every `--rss-every` seconds, and at the end its growth from
//! the first sample to the last (`rss trend`): flat after the first minute is the target.
//! Calls lost are the calls that did not stream or whose session did not end normally
//! (each a `problem`); frames lost as above.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

#[path = "gateway/backend.rs"]
mod backend;
#[path = "gateway/child.rs"]
mod child;
#[path = "gateway/fake_ari.rs"]
mod fake_ari;
#[path = "gateway/fake_media.rs"]
mod fake_media;
#[path = "gateway/lab.rs"]
mod lab;
#[path = "gateway/procfs.rs"]
mod procfs;
#[path = "gateway/report.rs"]
mod report;
#[path = "gateway/stamp.rs"]
mod stamp;

use backend::BackendContext;
use child::{Gateway, free_port};
use fake_ari::FakeAri;
use fake_media::MediaContext;
use report::{Direction, Figures};
use stamp::{Received, WINDOW};

/// How long every call has, after the last one was placed, to stream both ways.
const SETUP_GRACE: Duration = Duration::from_secs(30);
/// Between "every call streams" and the window.
const SETTLE: Duration = Duration::from_secs(2);
/// After the window, for frames in flight.
const AFTER_WINDOW: Duration = Duration::from_secs(1);

pub(crate) type BenchError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) calls: usize,
    pub(crate) lab: Option<usize>,
    pub(crate) window: Duration,
    pub(crate) rate: Option<f64>,
    pub(crate) media: String,
    pub(crate) log_level: String,
    /// Lab: gateway processes sharing the calls (each its own app, backend and SIPp).
    pub(crate) gateways: usize,
    /// How often each gateway's RSS is read and printed during the window.
    pub(crate) rss_every: Duration,
}

/// The longest window (a soak).
const MAX_WINDOW: Duration = Duration::from_secs(3600);
/// The most lab calls (the lab's Asterisk shares this machine's cores with everything).
const MAX_LAB_CALLS: usize = 300;

fn parse_args() -> Result<Options, String> {
    let env = |name: &str| std::env::var(name).ok();
    let mut options = Options {
        calls: env("BENCH_GATEWAY_CALLS")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000),
        lab: None,
        window: env("BENCH_GATEWAY_WINDOW")
            .and_then(|v| v.parse().ok())
            .and_then(|seconds: f64| Duration::try_from_secs_f64(seconds).ok())
            .filter(|w| !w.is_zero() && *w <= MAX_WINDOW)
            .unwrap_or(Duration::from_secs(10)),
        rate: None,
        media: "audiosocket".to_owned(),
        log_level: "info".to_owned(),
        gateways: 1,
        rss_every: Duration::from_secs(60),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = |i: usize| {
            args.get(i + 1)
                .cloned()
                .ok_or_else(|| format!("{} needs a value", args[i]))
        };
        match args[i].as_str() {
            "--calls" => {
                options.calls = value(i)?.parse().map_err(|e| format!("--calls: {e}"))?;
                i += 1;
            }
            "--lab" => {
                let n = args.get(i + 1).and_then(|v| v.parse::<usize>().ok());
                if n.is_some() {
                    i += 1;
                }
                options.lab = Some(n.unwrap_or(50));
            }
            "--window" => {
                let seconds: f64 = value(i)?.parse().map_err(|e| format!("--window: {e}"))?;
                options.window = Duration::try_from_secs_f64(seconds)
                    .ok()
                    .filter(|w| !w.is_zero() && *w <= MAX_WINDOW)
                    .ok_or(format!(
                        "--window {seconds}: more than 0, at most {} seconds",
                        MAX_WINDOW.as_secs()
                    ))?;
                i += 1;
            }
            "--gateways" => {
                options.gateways = value(i)?
                    .parse()
                    .ok()
                    .filter(|n| (1..=4).contains(n))
                    .ok_or("--gateways: 1 to 4")?;
                i += 1;
            }
            "--rss-every" => {
                let seconds: u64 = value(i)?.parse().map_err(|e| format!("--rss-every: {e}"))?;
                if seconds == 0 {
                    return Err("--rss-every 0: at least 1 second".to_owned());
                }
                options.rss_every = Duration::from_secs(seconds);
                i += 1;
            }
            "--rate" => {
                options.rate = Some(value(i)?.parse().map_err(|e| format!("--rate: {e}"))?);
                i += 1;
            }
            "--media" => {
                options.media = value(i)?;
                i += 1;
            }
            "--log-level" => {
                options.log_level = value(i)?;
                i += 1;
            }
            // cargo bench passes --bench; anything else is cargo's or libtest's.
            _ => {}
        }
        i += 1;
    }
    if let Some(n) = options.lab {
        if n == 0 || n > MAX_LAB_CALLS {
            return Err(format!("--lab {n}: 1 to {MAX_LAB_CALLS} calls"));
        }
        if n < options.gateways {
            return Err(format!(
                "--lab {n}: fewer calls than --gateways {}",
                options.gateways
            ));
        }
    } else if options.gateways > 1 {
        return Err("--gateways: only with --lab".to_owned());
    }
    if options.calls == 0 {
        return Err("--calls 0".to_owned());
    }
    Ok(options)
}

fn main() -> ExitCode {
    if std::env::args().any(|a| a == "--test") {
        // `cargo test --benches` only checks that the bench builds.
        return ExitCode::SUCCESS;
    }
    let options = match parse_args() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("gateway bench: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = stamp::self_check() {
        eprintln!("gateway bench: {error}");
        return ExitCode::FAILURE;
    }
    stamp::epoch();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("gateway bench: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match options.lab {
            Some(calls) => lab::run(&options, calls).await,
            None => synthetic(&options).await,
        }
    });
    // Peers still running end with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(figures) => {
            figures.print();
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("gateway bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Waits until `done()` or `within` passes; says whether it is done.
pub(crate) async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tick.tick().await;
    }
}

/// Cores of this machine.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The gateways' CPU with no call (summed), over a second after start-up settled.
pub(crate) async fn idle_cores(pids: &[u32]) -> Result<f64, BenchError> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = cpu_marks(pids)?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let end = cpu_marks(pids)?;
    Ok(start.iter().zip(&end).map(|(s, e)| s.cores_until(e)).sum())
}

fn cpu_marks(pids: &[u32]) -> Result<Vec<procfs::CpuMark>, BenchError> {
    pids.iter()
        .map(|&pid| {
            procfs::CpuMark::now(pid).ok_or_else(|| format!("gateway {pid} is gone").into())
        })
        .collect()
}

/// Gateway CPU, bench CPU and gateway memory over the measurement window.
pub(crate) struct Usage {
    /// All gateways together.
    pub(crate) gateway_cores: f64,
    pub(crate) peer_cores: f64,
    /// The whole machine, in cores busy.
    pub(crate) machine_cores: f64,
    /// Summed over the gateways at the end of the window.
    pub(crate) rss_kib: u64,
    pub(crate) hwm_kib: u64,
    pub(crate) threads: u64,
    /// Each gateway's RSS every `sample_every` into the window (KiB, in `pids` order).
    pub(crate) rss_samples: Vec<(Duration, Vec<u64>)>,
}

/// Measures the window (sleeping through it), reading and printing every gateway's RSS
/// each `sample_every` on the way.
pub(crate) async fn measure_window(
    pids: &[u32],
    window: Duration,
    sample_every: Duration,
) -> Result<Usage, BenchError> {
    let me = std::process::id();
    let gateway_start = cpu_marks(pids)?;
    let peer_start = procfs::CpuMark::now(me).ok_or("no /proc/self")?;
    let machine_start = procfs::MachineMark::now().ok_or("no /proc/stat")?;
    let started = Instant::now();
    let mut rss_samples = Vec::new();
    let mut next = sample_every;
    while next < window {
        tokio::time::sleep_until((started + next).into()).await;
        let rss: Vec<u64> = pids
            .iter()
            .map(|&pid| procfs::status_kib(pid, "VmRSS").unwrap_or(0))
            .collect();
        let shown: Vec<String> = rss.iter().map(|kib| format!("{kib} KiB")).collect();
        println!(
            "window {:>4} s: gateway rss {}",
            next.as_secs(),
            shown.join(", ")
        );
        rss_samples.push((next, rss));
        next += sample_every;
    }
    tokio::time::sleep_until((started + window).into()).await;
    let machine_end = procfs::MachineMark::now().ok_or("no /proc/stat")?;
    let gateway_end = cpu_marks(pids).map_err(|_| "a gateway died during the window")?;
    let peer_end = procfs::CpuMark::now(me).ok_or("no /proc/self")?;
    let sum = |field: &str| -> u64 {
        pids.iter()
            .map(|&pid| procfs::status_kib(pid, field).unwrap_or(0))
            .sum()
    };
    let rss_end: Vec<u64> = pids
        .iter()
        .map(|&pid| procfs::status_kib(pid, "VmRSS").unwrap_or(0))
        .collect();
    rss_samples.push((window, rss_end));
    Ok(Usage {
        gateway_cores: gateway_start
            .iter()
            .zip(&gateway_end)
            .map(|(s, e)| s.cores_until(e))
            .sum(),
        peer_cores: peer_start.cores_until(&peer_end),
        machine_cores: machine_start.cores_until(&machine_end, cores()),
        rss_kib: sum("VmRSS"),
        hwm_kib: sum("VmHWM"),
        threads: pids
            .iter()
            .map(|&pid| procfs::threads(pid).unwrap_or(0))
            .sum(),
        rss_samples,
    })
}

async fn synthetic(options: &Options) -> Result<Figures, BenchError> {
    let calls = options.calls;
    let rate = options.rate.unwrap_or(200.0).max(1.0);
    let app = format!("bench-gateway-{}", std::process::id());
    let media = Arc::new(MediaContext::default());
    let ari = FakeAri::new(&app, media.clone());
    ari.self_check()?;
    let ari_address = ari.serve().await?;
    let backend_context = Arc::new(BackendContext::default());
    let backend_address = {
        let context = backend_context.clone();
        backend::serve(move |ws| backend::synthetic_session(ws, context.clone())).await?
    };
    let listen = format!("127.0.0.1:{}", free_port()?);
    let audiosocket = format!("127.0.0.1:{}", free_port()?);
    let mut args = child::bench_args(&listen, &app, backend_address, calls, &options.log_level);
    args.extend(
        [
            "--media",
            "audiosocket",
            "--audiosocket-listen",
            &audiosocket,
        ]
        .map(String::from),
    );
    let env = [
        ("ARI_URL", format!("http://{ari_address}")),
        ("ARI_USERNAME", "bench".to_owned()),
        ("ARI_PASSWORD", "bench".to_owned()),
    ];
    println!(
        "gateway bench (synthetic): {calls} calls, AudioSocket slin 8 kHz <-> Twilio echo backend, {:.0} calls/s set-up, {:.1} s window",
        rate,
        options.window.as_secs_f64()
    );
    let mut gateway = Gateway::spawn(&args, &env)?;
    let pid = gateway.pid();
    println!("gateway pid {pid}");
    gateway.wait_ready(Duration::from_secs(20)).await?;
    let mut connected = ari.connected();
    tokio::time::timeout(Duration::from_secs(5), connected.wait_for(|c| *c))
        .await
        .map_err(|_| "the gateway did not open the events WebSocket")??;
    // Idle baseline: after start-up settles, before any call.
    let idle_cores = crate::idle_cores(&[pid]).await?;
    let rss_idle_kib = procfs::status_kib(pid, "VmRSS").ok_or("the gateway is gone")?;

    let ramp_started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    for index in 0..calls {
        tick.tick().await;
        ari.call_in(index, "100", "0312345678");
    }
    let placed = ramp_started.elapsed();
    let all_up = wait_until(SETUP_GRACE, || {
        let up = backend_context.streaming.load(Ordering::Relaxed);
        let failed = ari.counters.unexpected.load(Ordering::Relaxed) > 0 && up == 0;
        failed || (up >= calls as u64 && media.connected.load(Ordering::Relaxed) >= calls as u64)
    })
    .await;
    let streaming = backend_context.streaming.load(Ordering::Relaxed) as usize;
    println!(
        "set-up: {calls} calls placed in {:.1} s; {streaming} streaming both ways after {:.1} s; {} media connections",
        placed.as_secs_f64(),
        ramp_started.elapsed().as_secs_f64(),
        media.connected.load(Ordering::Relaxed),
    );
    let mut problems = Vec::new();
    if !all_up {
        problems.push(format!(
            "only {streaming} of {calls} calls streamed within {SETUP_GRACE:?} of the last StasisStart"
        ));
    }
    if streaming == 0 {
        return Err(format!(
            "no call streamed; unexpected ARI requests: {:?}; the gateway's last lines:\n{}",
            ari.unexpected(),
            gateway.tail()
        )
        .into());
    }
    tokio::time::sleep(SETTLE).await;

    let start_us = stamp::now_us();
    let window_us = options.window.as_micros() as u64;
    WINDOW.set(start_us, start_us + window_us);
    let usage = measure_window(&[pid], options.window, options.rss_every).await?;
    tokio::time::sleep(AFTER_WINDOW).await;

    let teardown_started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    for index in 0..calls {
        if index % 5 == 0 {
            tick.tick().await;
        }
        ari.hang_up(index);
    }
    let created = ari.counters.bridges_created.load(Ordering::Relaxed);
    let torn_down = wait_until(Duration::from_secs(30), || {
        ari.counters.bridges_destroyed.load(Ordering::Relaxed) >= created
    })
    .await;
    let destroyed = ari.counters.bridges_destroyed.load(Ordering::Relaxed);
    println!(
        "teardown: {destroyed} of {created} bridges destroyed {:.2} s after the hang-ups began",
        teardown_started.elapsed().as_secs_f64()
    );
    if !torn_down {
        problems.push(format!(
            "{} calls not torn down within 30 s",
            created - destroyed
        ));
    }
    let rss_after_kib = procfs::status_kib(pid, "VmRSS").unwrap_or(0);
    // Sessions the gateway ended have reported; the others report now.
    let _ = wait_until(Duration::from_secs(3), || {
        media.reports.lock().map_or(0, |r| r.len()) as u64
            >= media.connected.load(Ordering::Relaxed)
            && backend_context.reports.lock().map_or(0, |r| r.len()) >= streaming
    })
    .await;
    media.finish.cancel();
    backend_context.finish.cancel();
    let _ = wait_until(Duration::from_secs(2), || {
        media.reports.lock().map_or(0, |r| r.len()) as u64
            >= media.connected.load(Ordering::Relaxed)
    })
    .await;
    let alive = gateway.running();
    gateway.kill();
    if !alive {
        problems.push(format!(
            "the gateway exited by itself; its last lines:\n{}",
            gateway.tail()
        ));
    }
    println!(
        "gateway rss after teardown: {rss_after_kib} KiB ({:+} KiB from idle)",
        rss_after_kib as i64 - rss_idle_kib as i64
    );

    let unexpected = ari.counters.unexpected.load(Ordering::Relaxed);
    if unexpected > 0 {
        problems.push(format!(
            "{unexpected} ARI requests the fake does not answer, e.g. {:?}",
            ari.unexpected()
        ));
    }
    let continued = ari.counters.continued.load(Ordering::Relaxed);
    if continued > 0 {
        problems.push(format!(
            "{continued} calls refused (sent back to the dialplan)"
        ));
    }
    let (warnings, first) = gateway.warnings();
    if warnings > 0 {
        problems.push(format!(
            "the gateway logged {warnings} warnings/errors, e.g. {first:?}"
        ));
    }

    // Merge both sides of each stream.
    let media_reports = std::mem::take(&mut *media.reports.lock().map_err(|_| "poisoned")?);
    let backend_reports =
        std::mem::take(&mut *backend_context.reports.lock().map_err(|_| "poisoned")?);
    let mut to_backend = Direction {
        latency_note: "backend has it - fake Asterisk wrote it",
        counted: true,
        ..Direction::default()
    };
    let mut to_asterisk = Direction {
        latency_note: "fake Asterisk has it - its due time",
        counted: true,
        ..Direction::default()
    };
    let mut to_backend_latency = Vec::new();
    let mut to_asterisk_latency = Vec::new();
    let mut paced_latency = Vec::new();

    let mut received_by_backend: std::collections::HashMap<u32, Received> = Default::default();
    let mut sent_by_backend: std::collections::HashMap<u32, u64> = Default::default();
    let mut unreadable = 0;
    for report in backend_reports {
        unreadable += report.unreadable;
        if let Some(stream) = report.stream {
            sent_by_backend.insert(stream, report.sent_in_window);
            received_by_backend.insert(stream, report.received);
        }
    }
    let mut ended_by: std::collections::BTreeMap<&str, u64> = Default::default();
    for report in media_reports {
        unreadable += report.unreadable;
        *ended_by.entry(report.ended_by).or_default() += 1;
        to_backend.sent += report.sent_in_window;
        let got = received_by_backend
            .remove(&report.stream)
            .unwrap_or_default();
        to_backend.lost += report.sent_in_window.saturating_sub(got.unique);
        to_backend.duplicates += got.duplicates;
        to_backend_latency.extend(got.latencies_us);
        let sent = sent_by_backend.get(&report.stream).copied().unwrap_or(0);
        to_asterisk.sent += sent;
        to_asterisk.lost += sent.saturating_sub(report.received.unique);
        to_asterisk.duplicates += report.received.duplicates;
        to_asterisk_latency.extend(report.received.latencies_us);
        paced_latency.extend(report.received.paced_us);
    }
    println!("fake media connections ended: {ended_by:?}");
    if unreadable > 0 {
        problems.push(format!("{unreadable} frames without a readable stamp"));
    }
    to_backend.latency = Some(stamp::percentiles(to_backend_latency));
    to_asterisk.latency = Some(stamp::percentiles(to_asterisk_latency));
    to_asterisk.paced = Some(stamp::percentiles(paced_latency));

    Ok(Figures {
        mode: format!(
            "synthetic ({calls} calls placed, fake Asterisk + fake backend in the bench process)"
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
        rss_samples: usage.rss_samples,
        gateway_names: vec!["gateway".to_owned()],
        // Calls that did not come up are reported as problems.
        calls_lost: None,
        threads: usage.threads,
        to_backend,
        to_asterisk,
        problems,
    })
}
