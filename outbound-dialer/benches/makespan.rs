//! Makespan benchmark on the lab: a campaign of N numbers whose callees answer and hang up
//! after 3 s (carrier class `7`), at most MAX_CC calls at once, no CPS limit, run through
//! the real binary as a child process.
//!
//! `cargo bench -p outbound-dialer --bench makespan [-- --numbers N --max-cc M]`
//! (defaults 500 and 50; `--keep` keeps the campaign's directory and prints its path,
//! `--log-level L` sets the dialer's LOG_LEVEL, default `info`).
//! Prints
//!
//! ```text
//! dialer n=<N> max_cc=<M> makespan_s=<x> ideal_s=<y> ratio=<r> max_concurrent=<k>
//! dialer-resources cpu_s=<user+system> user_s=<u> system_s=<s> peak_rss_mib=<p>
//! dialer-profile ...   (where the time beyond the ideal went)
//! ```
//!
//! The dialer is `CARGO_BIN_EXE_outbound-dialer`: cargo builds it with the bench profile
//! (release, with debug info) into `target/release/outbound-dialer` before the bench runs.
//!
//! - makespan: from spawning the dialer to its exit (import, ARI connect, every call, the
//!   report): what an operator waits for. The ideal is ⌈N/MAX_CC⌉ × 3 s.
//! - max_concurrent: the most callee channels (`dc-<campaign key>-…`) up at once, counted
//!   from ChannelCreated/ChannelDestroyed by an ARI connection of this bench with
//!   `subscribeAll`, independent of the dialer.
//! - CPU: the dialer's user + system time, as the kernel adds a reaped child's times to its
//!   parent's `cutime`/`cstime` (`/proc/self/stat`, clock ticks of USER_HZ = 100): read
//!   before the spawn and after the child was waited for, the difference is exactly the
//!   child's (this bench has no other child). No `getrusage` (that needs unsafe or a
//!   crate feature the workspace does not enable).
//! - Peak RSS: the child's `VmHWM` (the kernel's high-water mark) from
//!   `/proc/<pid>/status`, sampled every 50 ms until it exits; the mark only grows, so at
//!   most the growth of the last 50 ms can be missed.
//!
//! - Profile, all on the watcher's clock: `startup_s` spawn → first callee created;
//!   `first_wave_spread_s` first → MAX_CC-th callee created; `call_s_*` a callee's life
//!   (created → destroyed, ring included); `ring_s_*` created → up; `refill_gap_s_*` the
//!   i-th callee end → the (MAX_CC+i)-th callee start, i.e. what a slot costs beyond its
//!   callee's life (teardown, recording download, store writes, next originate);
//!   `tail_s` last callee end → exit; `recording_end_after_callee_s_*` callee end →
//!   its recording's RecordingFinished (as `subscribeAll` sees it);
//!   `recording_saved_after_callee_s_*` callee end → the dialer's `recording saved` log
//!   line (its JSON log, LOG_FORMAT=json), after which the call's slot is freed;
//!   `saves_over_5s` how many calls held their slot more than 5 s past their callee.
//!
//! The run is bounded: the dialer is killed after max(120 s, 4 × ideal + 60 s) and the
//! bench fails. The lab's capacity (DESIGN.md: originate p99 2.9 ms at 50 calls) is well
//! above MAX_CC = 50.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ari_client::model::Event;
use ari_client::{Client, Credentials, Update};
use futures::StreamExt as _;

/// How long a class-7 callee talks before the carrier hangs up.
const CALL_SECONDS: f64 = 3.0;
/// USER_HZ: the unit of the times in `/proc/*/stat`.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;
/// How often the child's memory is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

type BenchError = Box<dyn std::error::Error>;

struct Options {
    numbers: usize,
    max_cc: usize,
    /// Keep the campaign directory (list, store, report, logs, recordings) for a look.
    keep: bool,
    /// The dialer's LOG_LEVEL (e.g. `ari_client=debug,info` to time every ARI request).
    log_level: String,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        numbers: 500,
        max_cc: 50,
        keep: false,
        log_level: "info".to_owned(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        if name == "--log-level" {
            options.log_level = inline
                .or_else(|| args.next())
                .ok_or("--log-level needs a value")?;
            continue;
        }
        let target = match name.as_str() {
            // cargo bench passes --bench to every bench binary.
            "--bench" => continue,
            "--keep" => {
                options.keep = true;
                continue;
            }
            "--numbers" => &mut options.numbers,
            "--max-cc" => &mut options.max_cc,
            _ => {
                return Err(format!(
                    "unknown argument {arg:?} (use --numbers N --max-cc M --keep --log-level L)"
                ));
            }
        };
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{name} needs a value"))?;
        *target = value
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name} must be a positive integer, got {value:?}"))?;
    }
    if options.numbers > 999_999 {
        return Err("--numbers must be at most 999999".to_owned());
    }
    Ok(options)
}

fn main() -> ExitCode {
    let options = match parse_args() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("makespan bench: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("makespan bench: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("makespan bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// What the watcher saw of one callee channel.
#[derive(Debug, Default, Clone, Copy)]
struct Life {
    created: Option<Instant>,
    up: Option<Instant>,
    destroyed: Option<Instant>,
}

#[derive(Debug, Default)]
struct Seen {
    live: usize,
    max_live: usize,
    /// Callee channel id → its life; a second ChannelCreated of an id counts in `recreated`.
    callees: HashMap<String, Life>,
    recreated: usize,
    /// Recordings (`dialer-<campaign key>-…`) seen to start, and to end (finished or failed).
    recordings_started: HashSet<String>,
    recordings_ended: HashMap<String, Instant>,
    /// Lagged or disconnected: the counts may be short.
    lost_updates: u64,
}

/// Watches the lab's channels whose id starts with `prefix`, independently of the dialer.
struct Watcher {
    seen: Arc<Mutex<Seen>>,
    connection: ari_client::AppConnection,
}

impl Watcher {
    /// Watches the callees `dc-<key>-…` and the recordings `dialer-<key>-…` of a campaign.
    async fn start(lab: &ari_lab::Lab, key: &str) -> Result<Watcher, BenchError> {
        let prefix = format!("dc-{key}-");
        let recordings = format!("dialer-{key}-");
        let client = Client::builder(&lab.ari_url)
            .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
            .build()?;
        let connection = client
            .app_connection([ari_lab::unique_name("makespan-watch")])
            .event_sources(["channel:", "bridge:"]) // not subscribeAll: asterisk/asterisk#2170
            .connect()
            .await?;
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let mut updates = connection.updates();
        let state = seen.clone();
        tokio::spawn(async move {
            while let Some(update) = updates.next().await {
                let event = match update {
                    Update::Event(event) => event,
                    Update::Lagged { missed } => {
                        state.lock().unwrap().lost_updates += missed;
                        continue;
                    }
                    Update::Disconnected { .. } => {
                        state.lock().unwrap().lost_updates += 1;
                        continue;
                    }
                    _ => continue,
                };
                let now = Instant::now();
                let mut s = state.lock().unwrap();
                match event.as_ref() {
                    Event::ChannelCreated(e) if e.channel.id.as_str().starts_with(&prefix) => {
                        s.live += 1;
                        s.max_live = s.max_live.max(s.live);
                        let life = s.callees.entry(e.channel.id.to_string()).or_default();
                        let again = life.created.is_some();
                        life.created = Some(now);
                        if again {
                            s.recreated += 1;
                        }
                    }
                    Event::ChannelStateChange(e)
                        if e.channel.id.as_str().starts_with(&prefix)
                            && e.channel.state == ari_client::model::models::ChannelState::Up =>
                    {
                        s.callees.entry(e.channel.id.to_string()).or_default().up = Some(now);
                    }
                    Event::ChannelDestroyed(e) if e.channel.id.as_str().starts_with(&prefix) => {
                        s.live = s.live.saturating_sub(1);
                        s.callees
                            .entry(e.channel.id.to_string())
                            .or_default()
                            .destroyed = Some(now);
                    }
                    Event::RecordingStarted(e)
                        if e.recording.name.as_str().starts_with(&recordings) =>
                    {
                        s.recordings_started.insert(e.recording.name.to_string());
                    }
                    Event::RecordingFinished(e)
                        if e.recording.name.as_str().starts_with(&recordings) =>
                    {
                        s.recordings_ended.insert(e.recording.name.to_string(), now);
                    }
                    Event::RecordingFailed(e)
                        if e.recording.name.as_str().starts_with(&recordings) =>
                    {
                        s.recordings_ended.insert(e.recording.name.to_string(), now);
                    }
                    _ => {}
                }
            }
        });
        Ok(Watcher { seen, connection })
    }
}

/// `cutime + cstime` and both, in seconds, of this process's waited-for children.
fn children_cpu() -> Result<(f64, f64), BenchError> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at field 3 (state).
    let after = stat
        .rfind(')')
        .map(|at| &stat[at + 1..])
        .ok_or("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |number: usize| -> Result<f64, BenchError> {
        let text = fields
            .get(number - 3)
            .ok_or("short /proc/self/stat")?
            .to_owned();
        Ok(text.parse::<f64>()? / CLOCK_TICKS_PER_SECOND)
    };
    Ok((field(16)?, field(17)?))
}

/// The peak resident set size of `pid` so far (`VmHWM`), in KiB, while it runs.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The `q`-quantile of sorted `values` (nearest rank).
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn since(a: Instant, b: Instant) -> f64 {
    b.saturating_duration_since(a).as_secs_f64()
}

/// Seconds since the Unix epoch of a UTC timestamp as the dialer's JSON log writes it
/// (`2026-12-01T07:44:05.246284Z`).
fn unix_seconds(timestamp: &str) -> Option<f64> {
    let (date, time) = timestamp.strip_suffix('Z')?.split_once('T')?;
    let mut date = date.split('-').map(str::parse::<i64>);
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.split(':').map(str::parse::<f64>);
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    // Days from the civil date (H. Hinnant's algorithm).
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days as f64 * 86_400.0 + hour * 3600.0 + minute * 60.0 + second)
}

/// When the dialer logged each call's recording as saved (its slot is freed right after),
/// by callee channel id, in Unix seconds.
fn recordings_saved(log: &Path) -> HashMap<String, f64> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["message"] == "recording saved")
        .filter_map(|event| {
            let at = unix_seconds(event["timestamp"].as_str()?)?;
            Some((event["span"]["channel_id"].as_str()?.to_owned(), at))
        })
        .collect()
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

async fn run(options: &Options) -> Result<(), BenchError> {
    let (n, max_cc) = (options.numbers, options.max_cc);
    let lab = ari_lab::Lab::get().await.clone();
    let binary = Path::new(env!("CARGO_BIN_EXE_outbound-dialer"));
    let dir = tempfile::Builder::new()
        .prefix("dialer-makespan-")
        .disable_cleanup(options.keep)
        .tempdir()?;
    if options.keep {
        eprintln!("makespan bench: keeping {}", dir.path().display());
    }
    let numbers: Vec<String> = (0..n).map(|i| format!("7{i:06}")).collect();
    std::fs::write(dir.path().join("numbers.txt"), numbers.join("\n") + "\n")?;
    let campaign = ari_lab::unique_name("makespan");
    let app = ari_lab::unique_name("makespan-app");
    let key = outbound_dialer::ids::campaign_key(&campaign);
    let watcher = Watcher::start(&lab, &key).await?;

    let ideal = (n.div_ceil(max_cc)) as f64 * CALL_SECONDS;
    let deadline = Duration::from_secs_f64((ideal * 4.0 + 60.0).max(120.0));
    let stdout = std::fs::File::create(dir.path().join("stdout.log"))?;
    let stderr = std::fs::File::create(dir.path().join("stderr.log"))?;
    let mut command = tokio::process::Command::new(binary);
    command
        .arg("run")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs([
            ("ARI_URL", lab.ari_url.as_str()),
            ("ARI_USERNAME", lab.username.as_str()),
            ("ARI_PASSWORD", lab.password.as_str()),
            ("ARI_TRUNK", "trunk"),
            ("OUTBOUND_NUMBER_FILE", "numbers.txt"),
            ("STASIS_APP", app.as_str()),
            ("CAMPAIGN", campaign.as_str()),
            ("MAX_CC", max_cc.to_string().as_str()),
            ("TARGET_ENDPOINT", "Local/777@default"),
            ("DIALER_REPORT", "report.csv"),
            // Any hour: the default calling window would hold a bench run at night.
            ("DIALER_CALLING_WINDOW", "00:00-24:00"),
            ("LOG_LEVEL", options.log_level.as_str()),
            // Parsed below for when each slot was freed.
            ("LOG_FORMAT", "json"),
        ])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);

    let (user_before, system_before) = children_cpu()?;
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let mut child = command.spawn()?;
    let pid = child.id().ok_or("the dialer exited at once")?;
    let mut peak_kib = 0_u64;
    let mut ticker = tokio::time::interval(SAMPLE_EVERY);
    let stop_at = tokio::time::Instant::now() + deadline;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status?,
            _ = ticker.tick() => {
                if let Some(kib) = peak_rss_kib(pid) {
                    peak_kib = peak_kib.max(kib);
                }
            }
            () = tokio::time::sleep_until(stop_at) => {
                let _ = child.kill().await;
                return Err(format!(
                    "the dialer did not finish within {deadline:?}; its log ends:\n{}",
                    tail(&dir.path().join("stderr.log"), 20)
                )
                .into());
            }
        }
    };
    let ended = Instant::now();
    let makespan = since(started, ended);
    let (user_after, system_after) = children_cpu()?;
    let (user, system) = (user_after - user_before, system_after - system_before);
    if !status.success() {
        return Err(format!(
            "the dialer failed ({status}); its log ends:\n{}",
            tail(&dir.path().join("stderr.log"), 20)
        )
        .into());
    }

    // The watcher may still be taking in the last ChannelDestroyed events.
    let settle = Instant::now() + Duration::from_secs(5);
    while watcher.seen.lock().unwrap().live > 0 && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.connection.close();

    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut reader = csv::Reader::from_path(dir.path().join("report.csv"))?;
    let outcome_column = reader
        .headers()?
        .iter()
        .position(|h| h == "outcome")
        .ok_or("the report has no outcome column")?;
    for record in reader.records() {
        let record = record?;
        *outcomes
            .entry(record.get(outcome_column).unwrap_or("").to_owned())
            .or_default() += 1;
    }

    let seen = watcher.seen.lock().unwrap();
    let ratio = makespan / ideal;
    println!(
        "dialer n={n} max_cc={max_cc} makespan_s={makespan:.2} ideal_s={ideal:.2} ratio={ratio:.3} max_concurrent={}",
        seen.max_live
    );
    println!(
        "dialer-resources cpu_s={:.2} user_s={user:.2} system_s={system:.2} peak_rss_mib={:.1}",
        user + system,
        peak_kib as f64 / 1024.0
    );

    // Where the time went, from the watcher's clock.
    let lives: Vec<Life> = seen.callees.values().copied().collect();
    let mut created: Vec<Instant> = lives.iter().filter_map(|l| l.created).collect();
    let mut destroyed: Vec<Instant> = lives.iter().filter_map(|l| l.destroyed).collect();
    created.sort();
    destroyed.sort();
    let mut call: Vec<f64> = lives
        .iter()
        .filter_map(|l| Some(since(l.created?, l.destroyed?)))
        .collect();
    let mut ring: Vec<f64> = lives
        .iter()
        .filter_map(|l| Some(since(l.created?, l.up?)))
        .collect();
    // The (M+i)-th callee needs a slot freed by one of the first i ends: the gap from the
    // i-th end to the (M+i)-th start is what a slot costs beyond its callee's life
    // (teardown, recording download, store writes) plus the refill (next number, originate).
    let mut gaps: Vec<f64> = destroyed
        .iter()
        .zip(created.iter().skip(max_cc))
        .map(|(d, c)| c.saturating_duration_since(*d).as_secs_f64())
        .collect();
    for values in [&mut call, &mut ring, &mut gaps] {
        values.sort_by(f64::total_cmp);
    }
    let startup = created.first().map_or(f64::NAN, |c| since(started, *c));
    let first_wave = created
        .get(max_cc.min(created.len()).saturating_sub(1))
        .zip(created.first())
        .map_or(f64::NAN, |(last, first)| since(*first, *last));
    let end_tail = destroyed.last().map_or(f64::NAN, |d| since(*d, ended));
    let gap_mean = if gaps.is_empty() {
        f64::NAN
    } else {
        gaps.iter().sum::<f64>() / gaps.len() as f64
    };
    // How long after its callee's end each recording ended (RecordingFinished).
    let mut recording_lag: Vec<f64> = seen
        .recordings_ended
        .iter()
        .filter_map(|(name, at)| {
            let callee = format!("dc-{}", name.strip_prefix("dialer-")?);
            Some(since(seen.callees.get(&callee)?.destroyed?, *at))
        })
        .collect();
    recording_lag.sort_by(f64::total_cmp);
    // How long after its callee's end each call's recording was saved: the dialer holds
    // the call's MAX_CC slot until then.
    let unix = |at: Instant| started_unix + since(started, at);
    let saved = recordings_saved(&dir.path().join("stderr.log"));
    let mut saved_lag: Vec<f64> = saved
        .iter()
        .filter_map(|(callee, at)| Some(at - unix(seen.callees.get(callee)?.destroyed?)))
        .collect();
    saved_lag.sort_by(f64::total_cmp);
    let slow_saves = saved_lag.iter().filter(|lag| **lag > 5.0).count();
    let outcomes_text: Vec<String> = outcomes.iter().map(|(o, c)| format!("{o}:{c}")).collect();
    println!(
        "dialer-profile startup_s={startup:.3} first_wave_spread_s={first_wave:.3} \
         call_s_p50={:.3} call_s_max={:.3} ring_s_p50={:.3} ring_s_max={:.3} \
         refill_gap_s_mean={gap_mean:.3} refill_gap_s_p50={:.3} refill_gap_s_p99={:.3} refill_gap_s_max={:.3} \
         tail_s={end_tail:.3} callees_seen={} recreated={} recordings_started_seen={} recordings_ended_seen={} \
         recording_end_after_callee_s_p50={:.3} recording_end_after_callee_s_max={:.3} \
         recording_saved_after_callee_s_p50={:.3} recording_saved_after_callee_s_p99={:.3} \
         recording_saved_after_callee_s_max={:.3} saves_logged={} saves_over_5s={slow_saves} \
         watcher_lost_updates={} outcomes={}",
        quantile(&call, 0.5),
        quantile(&call, 1.0),
        quantile(&ring, 0.5),
        quantile(&ring, 1.0),
        quantile(&gaps, 0.5),
        quantile(&gaps, 0.99),
        quantile(&gaps, 1.0),
        seen.callees.len(),
        seen.recreated,
        seen.recordings_started.len(),
        seen.recordings_ended.len(),
        quantile(&recording_lag, 0.5),
        quantile(&recording_lag, 1.0),
        quantile(&saved_lag, 0.5),
        quantile(&saved_lag, 0.99),
        quantile(&saved_lag, 1.0),
        saved_lag.len(),
        seen.lost_updates,
        outcomes_text.join(",")
    );
    let mut unended: Vec<&String> = seen
        .recordings_started
        .iter()
        .filter(|name| !seen.recordings_ended.contains_key(*name))
        .collect();
    unended.sort();
    if !unended.is_empty() {
        println!(
            "dialer-profile recordings_started_without_end_event={}",
            unended
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    let answered = outcomes.get("answered").copied().unwrap_or(0);
    if seen.max_live > max_cc {
        return Err(format!("{} callees at once with MAX_CC={max_cc}", seen.max_live).into());
    }
    if answered != n || seen.callees.len() != n || seen.recreated != 0 {
        return Err(format!(
            "expected {n} answered calls, each dialled once: report {outcomes:?}, watcher saw {} callees ({} twice)",
            seen.callees.len(),
            seen.recreated
        )
        .into());
    }
    if ratio > 1.05 {
        eprintln!("makespan bench: ratio {ratio:.3} misses the target 1.05");
    }
    Ok(())
}
