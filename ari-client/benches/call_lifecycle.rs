//! 1000 call lifecycles on the lab, 50 at a time: originate a Local channel into the app,
//! wait for StasisStart, hang up, wait for StasisEnd. Once with ari-client, once with
//! node-ari-client (npm `ari-client`, installed into a temporary directory), each in a
//! process of its own that reports its CPU time and peak RSS when done.
//!
//! `cargo bench -p ari-client --bench call_lifecycle` against the lab on 127.0.0.1:8088;
//! the last line is `ratio cpu=<ours/node> rss=<ours/node>`.
//! Options: `--calls N`, `--concurrency N` (defaults 1000 and 50).

use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ari_client::model::events::{StasisEnd, StasisStart};
use ari_client::model::models::HangupReason;
use ari_client::model::operations::channels::Originate;
use ari_client::{Client, Credentials};

/// How long one step of a lifecycle may take before the call counts as failed.
const WAIT: Duration = Duration::from_secs(30);
use tokio::sync::Semaphore;

const NODE_CLIENT: &str = "ari-client@2.2.0";

const NODE_DRIVER: &str = r#"
const ari = require('ari-client');
const [url, user, password, app, calls, concurrency] = process.argv.slice(2);
const total = Number(calls), parallel = Number(concurrency);
ari.connect(url, user, password).then((client) => {
  let started = 0, done = 0, failed = 0;
  const begin = Date.now();
  const finish = () => {
    const usage = process.resourceUsage();
    const cpu = process.cpuUsage();
    console.log(`RESULT cpu_us=${cpu.user + cpu.system} rss_kb=${usage.maxRSS} wall_ms=${Date.now() - begin} failed=${failed}`);
    process.exit(failed === 0 ? 0 : 1);
  };
  const one = () => {
    if (started >= total) return;
    started += 1;
    const channel = client.Channel();
    channel.once('StasisStart', () => { channel.hangup().catch(() => {}); });
    channel.once('StasisEnd', () => { done += 1; if (done === total) finish(); else one(); });
    channel.originate({ endpoint: 'Local/answer@lab', app, formats: 'ulaw' }).catch(() => { failed += 1; done += 1; if (done === total) finish(); else one(); });
  };
  client.start(app).then(() => { for (let i = 0; i < parallel; i += 1) one(); });
}).catch((err) => { console.error('node driver: ' + err); process.exit(1); });
"#;

#[derive(Debug, Clone, Copy)]
struct Usage {
    cpu: Duration,
    rss_kb: u64,
    wall: Duration,
    /// CPU of the lifecycles alone (reported by the Rust driver only).
    lifecycles_cpu: Option<Duration>,
}

fn ari() -> (String, String, String) {
    let var =
        |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
    (
        var("ARI_URL", "http://127.0.0.1:8088"),
        var("ARI_USERNAME", "asterisk"),
        var("ARI_PASSWORD", "asterisk"),
    )
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This process's CPU time and peak RSS, from /proc (Linux).
fn own_usage() -> (Duration, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command: utime is the 12th, stime the 13th.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    let hz: u64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100);
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (Duration::from_millis(ticks * 1000 / hz), rss)
}

/// The ari-client driver, run in a child process.
fn rust_driver(calls: usize, concurrency: usize) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("rust driver: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let (url, user, password) = ari();
        let client = Client::builder(&url)
            .credentials(Credentials::new(user, password))
            .build()?;
        let app = format!("bench-rust-{}", std::process::id());
        let connection = client.app_connection([app]).connect().await?;
        let limit = Arc::new(Semaphore::new(concurrency));
        let begin = Instant::now();
        let (cpu_before, _) = own_usage();
        // Finished calls are reaped as they end, as a long-running program would.
        let mut tasks = tokio::task::JoinSet::new();
        let mut failed = 0;
        for _ in 0..calls {
            let permit = limit
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| ari_client::Error::Closed)?;
            while let Some(done) = tasks.try_join_next() {
                failed += usize::from(!matches!(done, Ok(Ok(()))));
            }
            let connection = connection.clone();
            tasks.spawn(async move {
                let _permit = permit;
                let mut channel = connection
                    .originate(Originate::new("Local/answer@lab").formats("ulaw"))
                    .await?;
                channel
                    .events
                    .within(WAIT)
                    .wait_for::<StasisStart>()
                    .await?;
                channel.hangup(HangupReason::Normal).await?;
                channel.events.within(WAIT).wait_for::<StasisEnd>().await?;
                Ok::<_, ari_client::Error>(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            failed += usize::from(!matches!(done, Ok(Ok(()))));
        }
        let (cpu_after, _) = own_usage();
        Ok::<_, ari_client::Error>((
            begin.elapsed(),
            cpu_after.saturating_sub(cpu_before),
            failed,
        ))
    });
    match outcome {
        Ok((wall, lifecycles_cpu, failed)) => {
            let (cpu, rss) = own_usage();
            println!(
                "RESULT cpu_us={} rss_kb={rss} wall_ms={} failed={failed} lifecycles_cpu_us={}",
                cpu.as_micros(),
                wall.as_millis(),
                lifecycles_cpu.as_micros()
            );
            if failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("rust driver: {error}");
            ExitCode::FAILURE
        }
    }
}

fn parse_result(label: &str, output: &std::process::Output) -> Result<Usage, String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| {
            format!(
                "{label} driver printed no result (exit {}): {}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            )
        })?;
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    if field("failed=") != 0 || !output.status.success() {
        return Err(format!("{label} driver: {} calls failed", field("failed=")));
    }
    Ok(Usage {
        cpu: Duration::from_micros(field("cpu_us=")),
        rss_kb: field("rss_kb="),
        wall: Duration::from_millis(field("wall_ms=")),
        lifecycles_cpu: line
            .contains("lifecycles_cpu_us=")
            .then(|| Duration::from_micros(field("lifecycles_cpu_us="))),
    })
}

fn install_node_client() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("ari-bench-node-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let status = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .arg(NODE_CLIENT)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run npm (install nodejs and npm): {e}"))?;
    if !status.success() {
        return Err(format!("npm install {NODE_CLIENT} failed ({status})"));
    }
    std::fs::write(dir.join("driver.js"), NODE_DRIVER).map_err(|e| e.to_string())?;
    Ok(dir)
}

fn main() -> ExitCode {
    let calls = arg("--calls", 1000);
    let concurrency = arg("--concurrency", 50);
    if std::env::args().any(|a| a == "--driver-rust") {
        return rust_driver(calls, concurrency);
    }
    if std::env::args().any(|a| a == "--test") {
        // `cargo test --benches` only checks that the bench builds.
        return ExitCode::SUCCESS;
    }
    println!(
        "call lifecycles: {calls} calls, {concurrency} at a time, Local/answer@lab on the lab"
    );
    let me = match std::env::current_exe() {
        Ok(me) => me,
        Err(error) => {
            eprintln!("call_lifecycle: {error}");
            return ExitCode::FAILURE;
        }
    };
    let ours = Command::new(me)
        .args([
            "--driver-rust",
            "--calls",
            &calls.to_string(),
            "--concurrency",
            &concurrency.to_string(),
        ])
        .output()
        .map_err(|e| e.to_string())
        .and_then(|o| parse_result("ari-client (Rust)", &o));
    let node = install_node_client().and_then(|dir| {
        let (url, user, password) = ari();
        let app = format!("bench-node-{}", std::process::id());
        let output = Command::new("node")
            .current_dir(&dir)
            .arg("driver.js")
            .args([
                url,
                user,
                password,
                app,
                calls.to_string(),
                concurrency.to_string(),
            ])
            .output()
            .map_err(|e| format!("cannot run node: {e}"));
        let _ = std::fs::remove_dir_all(&dir);
        parse_result("node-ari-client", &output?)
    });
    let (ours, node) = match (ours, node) {
        (Ok(ours), Ok(node)) => (ours, node),
        (ours, node) => {
            for error in [ours.err(), node.err()].into_iter().flatten() {
                eprintln!("call_lifecycle: {error}");
            }
            return ExitCode::FAILURE;
        }
    };
    for (name, usage) in [("ari-client (Rust)", ours), (NODE_CLIENT, node)] {
        println!(
            "{name:<22} cpu {:>7.3} s   peak rss {:>7.1} MiB   wall {:>6.2} s   ({:.0} calls/s)",
            usage.cpu.as_secs_f64(),
            usage.rss_kb as f64 / 1024.0,
            usage.wall.as_secs_f64(),
            calls as f64 / usage.wall.as_secs_f64()
        );
    }
    // The client's own work per call, start-up excluded: ours is measured from the first
    // originate to the last StasisEnd.
    if let Some(lifecycles) = ours.lifecycles_cpu {
        println!(
            "per lifecycle: {:.0} us cpu",
            lifecycles.as_secs_f64() * 1e6 / calls as f64
        );
        println!("target: per lifecycle <= 100 us cpu");
    }
    let cpu_ratio = ours.cpu.as_secs_f64() / node.cpu.as_secs_f64().max(1e-9);
    let rss_ratio = ours.rss_kb as f64 / (node.rss_kb as f64).max(1.0);
    println!(
        "targets: cpu <= 0.2 ({}), rss <= 0.1 ({})",
        if cpu_ratio <= 0.2 { "met" } else { "MISSED" },
        if rss_ratio <= 0.1 { "met" } else { "MISSED" }
    );
    println!("ratio cpu={cpu_ratio:.3} rss={rss_ratio:.3}");
    ExitCode::SUCCESS
}
