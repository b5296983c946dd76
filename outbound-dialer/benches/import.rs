//! Import benchmark: writes a list of numbers to a temporary file, imports it through
//! `numbers` and `store` into a fresh campaign file, and prints the time, the rate and the
//! process's peak resident memory.
//!
//! `cargo bench -p outbound-dialer --bench import`; `BENCH_IMPORT_N` sets the count
//! (default 1 000 000), `BENCH_IMPORT_CSV=1` writes a CSV list with a data column.

use std::process::ExitCode;
use std::time::Instant;

use outbound_dialer::numbers::Source;
use outbound_dialer::store::Store;

mod support;

use support::{env_number, peak_rss_mib, write_number_list};

fn main() -> ExitCode {
    let n = env_number("BENCH_IMPORT_N", 1_000_000);
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
    write_number_list(&list, n, csv)?;
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
