//! Import benchmark: writes a list of numbers to a temporary file, imports it through
//! `numbers` and `store` into a fresh campaign file, and prints the time, the rate and the
//! process's peak resident memory.
//!
//! `cargo bench -p outbound-dialer --bench import`; `BENCH_IMPORT_N` sets the count
//! (default 1 000 000), `BENCH_IMPORT_CSV=1` writes a CSV list with a data column.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use outbound_dialer::numbers::Source;
use outbound_dialer::store::Store;

/// Peak resident set size so far, from the kernel (`VmHWM`), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| {
            value
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> ExitCode {
    let n: u64 = std::env::var("BENCH_IMPORT_N")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(1_000_000);
    let csv = std::env::var_os("BENCH_IMPORT_CSV").is_some();
    match run(n, csv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("import bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(n: u64, csv: bool) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let list = dir
        .path()
        .join(if csv { "numbers.csv" } else { "numbers.txt" });
    let mut out = BufWriter::new(File::create(&list)?);
    if csv {
        writeln!(out, "number,customer")?;
    }
    for i in 0..n {
        // Formatted as people write them, so normalisation does real work.
        let (a, b) = (i / 10_000, i % 10_000);
        if csv {
            writeln!(out, "+1 (555) {a:03}-{b:04},customer {i}")?;
        } else {
            writeln!(out, "+1 (555) {a:03}-{b:04}")?;
        }
    }
    out.into_inner()?.sync_all()?;
    let size = std::fs::metadata(&list)?.len();
    let rss_before = peak_rss_mib();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let source = Source::File(list.clone());
        let mut input = source.open()?;
        let store = Store::open(&dir.path().join("bench.sqlite"), "bench").await?;
        let mut invalid = 0u64;
        let summary = store.import(input.entries(|_| invalid += 1)).await?;
        input.finish()?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "import n={n} seconds={seconds:.2} peak_rss_mib={:.1} rate={:.0}/s inserted={} duplicates={} invalid={invalid} input_mib={:.1} format={} rss_before_import_mib={rss_before:.1}",
            peak_rss_mib(),
            n as f64 / seconds,
            summary.inserted,
            summary.duplicates,
            size as f64 / 1_048_576.0,
            if csv { "csv" } else { "plain" },
        );

        let started = Instant::now();
        let fingerprint = source.fingerprint()?;
        store.set_input_fingerprint(&fingerprint).await?;
        let fingerprint_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let counts = store.counts().await?;
        let counts_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let next = store.next_pending(100).await?;
        let next_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "resume fingerprint_ms={fingerprint_ms:.1} counts_ms={counts_ms:.1} (total={}) next_pending_100_ms={next_ms:.2} (got {})",
            counts.total,
            next.len()
        );
        store.close().await;
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    Ok(())
}
