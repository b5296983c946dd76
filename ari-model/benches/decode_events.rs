//! Decodes the event stream captured from the lab (`tests/fixtures/events.jsonl`, a mix of
//! call, bridge, playback, recording and DTMF events as Asterisk sent them) on one core and
//! prints events per second. Target: at least 300 000 events/s.
//!
//! `cargo bench -p ari-model --bench decode_events`

use std::hint::black_box;
use std::time::{Duration, Instant};

use ari_model::Event;

const TARGET_PER_SECOND: f64 = 300_000.0;

fn measure(lines: &[String], minimum: Duration, decode: impl Fn(&str) -> Event) -> (f64, f64) {
    let bytes: usize = lines.iter().map(String::len).sum();
    // Warm up caches and the allocator.
    for line in lines {
        black_box(decode(line));
    }
    let start = Instant::now();
    let mut rounds = 0_u64;
    while start.elapsed() < minimum {
        for line in lines {
            black_box(decode(black_box(line)));
        }
        rounds += 1;
    }
    let seconds = start.elapsed().as_secs_f64();
    let events = rounds as f64 * lines.len() as f64;
    (
        events / seconds,
        rounds as f64 * bytes as f64 / seconds / 1e6,
    )
}

fn main() {
    // Cargo sets the variable when it runs the bench; read it then, not at build time,
    // so a target directory shared between clones never points at another clone.
    let path = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/fixtures/events.jsonl");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let bytes: usize = lines.iter().map(String::len).sum();
    let quick = std::env::args().any(|a| a == "--test");
    let minimum = if quick {
        Duration::from_millis(50)
    } else {
        Duration::from_secs(3)
    };
    println!(
        "stream: {} captured events, {} bytes (mean {} bytes/event)",
        lines.len(),
        bytes,
        bytes / lines.len()
    );

    let (fast, fast_mb) = measure(&lines, minimum, |line| {
        Event::from_json_str(line).expect("fixture decodes")
    });
    println!("Event::from_json_str       {fast:>12.0} events/s  {fast_mb:>7.1} MB/s  (one core)");
    let (serde, serde_mb) = measure(&lines, minimum, |line| {
        serde_json::from_str::<Event>(line).expect("fixture decodes")
    });
    println!(
        "serde_json::from_str<Event> {serde:>11.0} events/s  {serde_mb:>7.1} MB/s  (one core)"
    );
    let verdict = if fast >= TARGET_PER_SECOND {
        "meets"
    } else {
        "MISSES"
    };
    println!(
        "target {TARGET_PER_SECOND:.0} events/s: {verdict} ({:.1}x)",
        fast / TARGET_PER_SECOND
    );
}
