//! MySQL store benchmark on a MariaDB of its own (`ari_lab::mariadb`'s Debian mariadbd on
//! 127.0.0.1, started in a temporary directory and stopped at the end): imports a
//! generated list of numbers into a fresh database through `numbers` and `store`, then has
//! three dialers (three stores, as three processes would have) claim and start numbers of
//! that campaign at once, as fast as they can, and checks that no number was started twice
//! and that InnoDB waited for no row lock. The server is the bench's alone because
//! InnoDB's lock counters are server-wide: on the tests' shared server, other test
//! processes' waits would be counted too.
//!
//! `cargo bench -p outbound-dialer --bench store`. `BENCH_STORE_N` sets the list's size
//! (default 1 000 000), `BENCH_STORE_CLAIMS` the numbers the dialers claim and start
//! (default 30 000), `BENCH_STORE_BATCH` the numbers per claim (default 10, a dialer's
//! MAX_CC). Prints
//! `store import backend=mariadb n=.. seconds=.. rate=../s peak_rss_mib=..` and
//! `store claims dialers=3 batch=.. numbers=.. seconds=.. claims_per_s=.. claim_tx_per_s=..
//! duplicates=.. lock_waits=.. lock_wait_ms=.. deadlocks=.. renewals=..` (InnoDB's
//! server-wide counters over the claims, on a server nothing else uses; the dialers renew
//! their leases meanwhile, every 50 ms). It exits with an error when a number was started
//! twice or a row lock was waited for.

use std::collections::HashSet;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use outbound_dialer::numbers::Source;
use outbound_dialer::outcome::Outcome;
use outbound_dialer::store::{DialerInfo, Ending, MySqlTarget, Store};

const DIALERS: usize = 3;

mod support;

use support::{env_number, peak_rss_mib, write_number_list};

/// InnoDB's counters of row-lock waits, the milliseconds waited, and deadlocks,
/// server-wide.
fn lock_counters(server: &ari_lab::mariadb::MariaDb) -> Result<(u64, u64, u64), String> {
    let out = server
        .sql("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_waits', 'Innodb_row_lock_time', 'Innodb_deadlocks')")
        .map_err(|e| e.to_string())?;
    let mut waits = 0;
    let mut waited_ms = 0;
    let mut deadlocks = 0;
    for line in out.lines() {
        let mut fields = line.split('\t');
        let (Some(name), Some(value)) = (fields.next(), fields.next()) else {
            continue;
        };
        let value: u64 = value.trim().parse().unwrap_or(0);
        match name {
            "Innodb_row_lock_waits" => waits = value,
            "Innodb_row_lock_time" => waited_ms = value,
            "Innodb_deadlocks" => deadlocks = value,
            _ => {}
        }
    }
    Ok((waits, waited_ms, deadlocks))
}

/// Renews the dialer's lease every `every` until it fails (or the task is aborted).
async fn renew_every(
    store: Store,
    every: Duration,
    renewals: Arc<AtomicU64>,
) -> Result<(), outbound_dialer::store::StoreError> {
    let mut ticker = tokio::time::interval(every);
    loop {
        ticker.tick().await;
        store.renew().await?;
        renewals.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("store bench: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let server_dir = tempfile::Builder::new()
        .prefix("bench-store-mariadb-")
        .tempdir()?;
    let ran = run_on(server_dir.path());
    // Stopped by its pid whatever happened; the directory goes with `server_dir`.
    let stopped = ari_lab::mariadb::stop(Some(server_dir.path()));
    ran?;
    stopped?;
    Ok(())
}

fn run_on(server_dir: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let n = env_number("BENCH_STORE_N", 1_000_000);
    let claims = env_number("BENCH_STORE_CLAIMS", 30_000).min(n);
    let batch = u32::try_from(env_number("BENCH_STORE_BATCH", 10).clamp(1, 1000))?;
    let server: &'static ari_lab::mariadb::MariaDb = Box::leak(Box::new(
        ari_lab::mariadb::MariaDb::start_or_reuse(server_dir)?,
    ));
    let db = server.database("bench");
    let dir = tempfile::tempdir()?;
    let list = dir.path().join("numbers.txt");
    write_number_list(&list, n, false)?;
    let target = MySqlTarget::Url(db.url.clone());

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let started = Instant::now();
        let source = Source::File(list.clone());
        let mut input = source.open()?;
        let store = Store::open_mysql(&target, "bench").await?;
        let mut invalid = 0u64;
        let summary = store.import(input.entries(|_| invalid += 1)).await?;
        input.finish()?;
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "store import backend=mariadb n={n} seconds={seconds:.2} rate={:.0}/s peak_rss_mib={:.1} inserted={} duplicates={} invalid={invalid}",
            n as f64 / seconds,
            peak_rss_mib(),
            summary.inserted,
            summary.duplicates,
        );
        // What every dialer's status line costs on a campaign this size.
        let started = Instant::now();
        let counts = store.counts().await?;
        let counts_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let open = store.has_open_numbers().await?;
        let open_ms = started.elapsed().as_secs_f64() * 1000.0;
        let started = Instant::now();
        let orphans = store.orphaned().await?;
        let orphans_ms = started.elapsed().as_secs_f64() * 1000.0;
        println!(
            "store status n={} counts_ms={counts_ms:.1} open_numbers_ms={open_ms:.2} ({open}) orphans_ms={orphans_ms:.1} (orphans {})",
            counts.total,
            orphans.len()
        );
        store.close().await;

        // Three dialers claim and start numbers at once.
        let mut dialers = Vec::new();
        for i in 0..DIALERS {
            let store = Store::open_mysql(&target, "bench").await?;
            store
                .register_dialer(&DialerInfo {
                    app: format!("bench-{i}"),
                    asterisk: "http://127.0.0.1:8088".to_owned(),
                    max_cc: batch,
                    lease: Duration::from_secs(60),
                })
                .await?;
            dialers.push(store);
        }
        let (waits_before, waited_before, deadlocks_before) = lock_counters(server)?;
        let claimed = Arc::new(AtomicU64::new(0));
        let transactions = Arc::new(AtomicU64::new(0));
        let renewals = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        // Each dialer renews its lease meanwhile, as `run` does (every lease / 3 there;
        // every 50 ms here, so that renewals meet claims).
        let mut renewing = tokio::task::JoinSet::new();
        for store in &dialers {
            let (store, renewals) = (store.clone(), renewals.clone());
            renewing.spawn(renew_every(store, Duration::from_millis(50), renewals));
        }
        let mut tasks = tokio::task::JoinSet::new();
        for store in &dialers {
            let (store, claimed, transactions) =
                (store.clone(), claimed.clone(), transactions.clone());
            tasks.spawn(async move {
                let mut mine = Vec::new();
                while claimed.load(Ordering::Relaxed) < claims {
                    let numbers = store.claim(batch).await?;
                    transactions.fetch_add(1, Ordering::Relaxed);
                    if numbers.is_empty() {
                        break;
                    }
                    claimed.fetch_add(numbers.len() as u64, Ordering::Relaxed);
                    // Started as a dialer would (so they are not claimed again), and ended.
                    for number in numbers {
                        let attempt = store
                            .begin_attempt(number.id, |a| format!("bench-{}-{a}", number.id))
                            .await?;
                        store
                            .finish(
                                attempt.id,
                                &Ending {
                                    outcome: Outcome::Busy,
                                    cause: Some(17),
                                    cause_text: None,
                                    message: None,
                                    ended_at: 1,
                                },
                            )
                            .await?;
                        mine.push(number.id.0);
                    }
                }
                Ok::<_, outbound_dialer::store::StoreError>(mine)
            });
        }
        let mut all = Vec::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done??);
        }
        let seconds = started.elapsed().as_secs_f64();
        if let Some(failed) = renewing.try_join_next() {
            failed??;
        }
        renewing.shutdown().await;
        let (waits_after, waited_after, deadlocks_after) = lock_counters(server)?;
        let unique: HashSet<i64> = all.iter().copied().collect();
        let duplicates = all.len() - unique.len();
        let stored: u64 = db
            .sql("SELECT COUNT(*) - COUNT(DISTINCT number_id) FROM attempts")?
            .trim()
            .parse()?;
        println!(
            "store claims dialers={DIALERS} batch={batch} numbers={} seconds={seconds:.2} claims_per_s={:.0} claim_tx_per_s={:.0} duplicates={} lock_waits={} lock_wait_ms={} deadlocks={} renewals={}",
            all.len(),
            all.len() as f64 / seconds,
            transactions.load(Ordering::Relaxed) as f64 / seconds,
            duplicates as u64 + stored,
            waits_after - waits_before,
            waited_after - waited_before,
            deadlocks_after - deadlocks_before,
            renewals.load(Ordering::Relaxed),
        );
        for store in &dialers {
            store.close().await;
        }
        // What the claims promise: the bench fails when they break it.
        let (duplicates, waits) = (duplicates as u64 + stored, waits_after - waits_before);
        if duplicates > 0 || waits > 0 {
            return Err(format!(
                "claims: {duplicates} numbers started twice, {waits} row-lock waits (both must be 0)"
            )
            .into());
        }
        Ok::<_, Box<dyn std::error::Error>>(())
    })?;
    drop(db);
    Ok(())
}
