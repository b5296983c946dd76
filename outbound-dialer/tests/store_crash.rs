//! Crash safety: a child process (this very test, run again with the store's path in the
//! environment) imports a list
//! and works through it like the dialer does, printing each write as it returns; the
//! parent kills it with SIGKILL at varied moments (mid-import, mid-call) and checks after
//! each kill that the store is consistent, that every write the child saw return is on
//! disk, and that the next run reconciles instead of redialling.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use outbound_dialer::numbers::NumberEntry;
use outbound_dialer::outcome::Outcome;
use outbound_dialer::store::{Ending, IMPORT_BATCH, Store, unix_millis_now};
use sqlx::Row as _;

const CHILD_DB: &str = "STORE_CRASH_CHILD_DB";
/// Distinct numbers: two full import batches and a partial one.
const DISTINCT: u64 = 25_000;
/// Numbers the child dials in all its runs together.
const DIAL: u64 = 400;
const ROUND_DEADLINE: Duration = Duration::from_secs(60);

/// The child: resumes like the dialer, printing `begun`/`finished` after each write returns.
async fn child(db: &Path) {
    let store = Store::open(db, "crash").await.unwrap();
    println!("@open");
    for attempt in store.unfinished().await.unwrap() {
        let ending = Ending {
            outcome: Outcome::Interrupted,
            cause: None,
            cause_text: None,
            message: Some("the dialer stopped during the call".into()),
            ended_at: unix_millis_now(),
        };
        if store.finish(attempt.id, &ending).await.unwrap() {
            println!("@finished {} interrupted", attempt.id);
        }
    }
    if store.input_fingerprint().await.unwrap().is_none() {
        println!("@importing");
        // The last 1 000 lines repeat earlier numbers.
        let lines = (0..DISTINCT + 1_000).map(|i| {
            Ok::<_, Infallible>(NumberEntry {
                line: i + 1,
                number: format!("555{:07}", i % DISTINCT),
                data: BTreeMap::from([("row".to_owned(), i.to_string())]),
            })
        });
        store.import(lines).await.unwrap();
        store.set_input_fingerprint("crash-v1").await.unwrap();
        println!("@imported");
    }
    let counts = store.counts().await.unwrap();
    let mut dialled = counts.total - counts.pending;
    'dial: loop {
        let batch = store.next_pending(4).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for number in batch {
            if dialled >= DIAL {
                break 'dial;
            }
            let attempt = store
                .begin_attempt(number.id, |n| format!("crash-{}-{n}", number.id))
                .await
                .unwrap();
            dialled += 1;
            println!("@begun {} {}", attempt.id, number.id);
            let outcome = [
                Outcome::Answered,
                Outcome::Busy,
                Outcome::NoAnswer,
                Outcome::Congestion,
            ][(number.id.0 % 4) as usize];
            if outcome == Outcome::Answered {
                let now = unix_millis_now();
                store.answered(attempt.id, now).await.unwrap();
                let id = &attempt.record.channel_id;
                let (target, bridge) = (format!("{id}-target"), format!("{id}-bridge"));
                store
                    .connected(attempt.id, now, &target, &bridge, Some(id))
                    .await
                    .unwrap();
            }
            let ending = Ending {
                outcome,
                cause: Some(16),
                cause_text: None,
                message: None,
                ended_at: unix_millis_now(),
            };
            store.finish(attempt.id, &ending).await.unwrap();
            println!("@finished {} {}", attempt.id, outcome);
        }
    }
    store.close().await;
    println!("@done");
}

/// The child's stdout lines, read on a thread so that every wait can have a deadline.
struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn spawn(db: &Path) -> Running {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "kill_9_at_any_moment_leaves_a_consistent_store",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DB, db)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The harness prints `test <name> ... ` before the first line.
                let Some(at) = line.find('@') else { continue };
                if send.send(line[at + 1..].to_owned()).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the `count`-th line starting with `prefix`; false if the child ended first.
    fn wait_for(&mut self, prefix: &str, count: usize, deadline: Instant) -> bool {
        let mut found = self.seen.iter().filter(|l| l.starts_with(prefix)).count();
        while found < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    found += usize::from(line.starts_with(prefix));
                    self.seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "no {prefix:?} line from the child within the deadline: {:?}",
                        self.seen
                    );
                }
            }
        }
        true
    }

    /// SIGKILL, then every line the child printed before it died.
    fn kill(mut self, deadline: Instant) -> Vec<String> {
        self.child.kill().unwrap();
        self.finish(deadline)
    }

    fn finish(mut self, deadline: Instant) -> Vec<String> {
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "the child did not end in time");
            std::thread::sleep(Duration::from_millis(5));
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("the child's output did not end"),
            }
        }
        self.seen
    }
}

/// The last lines of the child's output, for failure messages.
fn tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(10)..].join(" | ")
}

/// What the store holds after a run, checked against what the child saw returned.
struct Checked {
    numbers: u64,
    unfinished: Vec<i64>,
    attempts: u64,
}

async fn check(db: &Path, lines: &[String]) -> Checked {
    // Reopening is part of the test: the next run starts exactly like this.
    let store = Store::open(db, "crash").await.unwrap();
    let counts = store.counts().await.unwrap();
    let unfinished = store.unfinished().await.unwrap();
    store.close().await;

    let pool =
        sqlx::SqlitePool::connect_with(sqlx::sqlite::SqliteConnectOptions::new().filename(db))
            .await
            .unwrap();
    let scalar = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
                .try_get::<i64, _>(0)
                .unwrap()
        }
    };
    let integrity: String = sqlx::query("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .unwrap()
        .get(0);
    assert_eq!(integrity, "ok");
    assert!(
        sqlx::query("PRAGMA foreign_key_check")
            .fetch_all(&pool)
            .await
            .unwrap()
            .is_empty()
    );
    let numbers = scalar("SELECT COUNT(*) FROM numbers").await as u64;
    // Each import batch is one transaction: all of it or none.
    let batch = IMPORT_BATCH as u64;
    assert!(
        [0, batch, 2 * batch, DISTINCT].contains(&numbers),
        "{numbers} numbers"
    );
    assert_eq!(
        scalar("SELECT COUNT(*) FROM attempts a JOIN numbers n ON n.id = a.number_id WHERE n.state = 'pending'").await,
        0,
        "an attempt's number is pending"
    );
    assert_eq!(
        scalar("SELECT COUNT(*) FROM numbers n WHERE n.state = 'dialing' AND 1 <> (SELECT COUNT(*) FROM attempts a WHERE a.number_id = n.id AND a.state <> 'ended')").await,
        0,
        "a dialing number without exactly one unfinished attempt"
    );
    assert_eq!(
        scalar("SELECT COUNT(*) FROM numbers n WHERE n.state = 'done' AND (EXISTS (SELECT 1 FROM attempts a WHERE a.number_id = n.id AND a.state <> 'ended') OR NOT EXISTS (SELECT 1 FROM attempts a WHERE a.number_id = n.id))").await,
        0,
        "a done number with an unfinished attempt or none"
    );
    assert_eq!(
        scalar("SELECT COUNT(*) FROM attempts WHERE attempt <> 1").await,
        0,
        "a number was dialled twice"
    );
    let attempts = scalar("SELECT COUNT(*) FROM attempts").await as u64;

    // Every write the child saw return is there.
    let rows: HashMap<i64, (i64, String, Option<String>)> =
        sqlx::query("SELECT id, number_id, state, outcome FROM attempts")
            .fetch_all(&pool)
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2), row.get(3))))
            .collect();
    pool.close().await;
    for line in lines {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["begun", id, number_id] => {
                let row = &rows[&id.parse::<i64>().unwrap()];
                assert_eq!(row.0.to_string(), number_id, "{line}");
            }
            ["finished", id, outcome] => {
                let row = &rows[&id.parse::<i64>().unwrap()];
                assert_eq!(
                    (row.1.as_str(), row.2.as_deref()),
                    ("ended", Some(outcome)),
                    "{line}"
                );
            }
            _ => {}
        }
    }
    assert_eq!(counts.total, numbers);
    assert_eq!(counts.in_progress, unfinished.len() as u64);
    Checked {
        numbers,
        unfinished: unfinished.iter().map(|attempt| attempt.id.0).collect(),
        attempts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_moment_leaves_a_consistent_store() {
    // Run again by itself as the child (this test binary, this test, with the store's
    // path in the environment): then it is the process that gets killed.
    if let Some(db) = std::env::var_os(CHILD_DB) {
        child(Path::new(&db)).await;
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.sqlite");
    // Attempts found unfinished after a kill: the next runs finish each as interrupted.
    let mut interrupted = BTreeSet::new();
    // (line to wait for, how many of them, delay before the kill): the first three land
    // in the import or just after it, the others during calls.
    let kills: [(&str, usize, u64); 8] = [
        ("open", 1, 5),
        ("open", 1, 60),
        ("open", 1, 120),
        ("begun", 1, 0),
        ("begun", 9, 0),
        ("finished", 40, 0),
        ("begun", 90, 0),
        ("begun", 30, 1),
    ];
    for (prefix, count, delay) in kills {
        let deadline = Instant::now() + ROUND_DEADLINE;
        let mut running = Running::spawn(&db);
        let reached = running.wait_for(prefix, count, deadline);
        std::thread::sleep(Duration::from_millis(delay));
        let lines = running.kill(deadline);
        assert!(
            reached,
            "the child ended before {count} {prefix:?} lines: {lines:?}"
        );
        let checked = check(&db, &lines).await;
        eprintln!(
            "killed after {count} {prefix:?} (+{delay} ms): {} numbers, {} attempts, unfinished {:?}",
            checked.numbers, checked.attempts, checked.unfinished
        );
        interrupted.extend(checked.unfinished);
    }

    // The last run resumes to the end: reconciles, imports nothing twice, dials the rest.
    let deadline = Instant::now() + ROUND_DEADLINE;
    let running = Running::spawn(&db);
    let lines = running.finish(deadline);
    assert!(lines.iter().any(|l| l == "done"), "{}", tail(&lines));
    let checked = check(&db, &lines).await;
    assert_eq!(checked.numbers, DISTINCT);
    assert!(checked.unfinished.is_empty());
    assert_eq!(checked.attempts, DIAL);

    let store = Store::open(&db, "crash").await.unwrap();
    let counts = store.counts().await.unwrap();
    assert_eq!((counts.done, counts.in_progress), (DIAL, 0));
    assert_eq!(counts.pending, DISTINCT - DIAL);
    assert_eq!(
        counts.by_outcome[&Outcome::Interrupted],
        interrupted.len() as u64
    );
    assert_eq!(counts.by_outcome.values().sum::<u64>(), DIAL);
    store.close().await;
}
