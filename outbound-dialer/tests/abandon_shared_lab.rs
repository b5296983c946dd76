//! Two `outbound-dialer run` processes on one campaign in the lab's MariaDB share its
//! abandon rate: dialer A's target is too slow (every call A makes is abandoned at 2 s),
//! dialer B's answers at once (none of B's calls is abandoned); B still lowers its
//! concurrency, because the rate it throttles on is the campaign's, read from the store.
//! B runs as `outbound-dialer serve`: its `/status` shows the campaign's rate and why it
//! holds calls back.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Campaign, output_text};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

const NUMBERS: usize = 16;

/// One HTTP/1.1 exchange with the dialer over 127.0.0.1, within 10 s: status and JSON.
async fn try_get(address: SocketAddr, path: &str) -> std::io::Result<(u16, Value)> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&raw).into_owned())
    };
    let text = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| std::io::Error::other("no answer within 10 s"))??;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("not HTTP: {text}")))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, serde_json::from_str(body).unwrap_or(Value::Null)))
}

/// The same, which must succeed.
async fn get(address: SocketAddr, path: &str) -> (u16, Value) {
    try_get(address, path)
        .await
        .unwrap_or_else(|error| panic!("GET {path}: {error}"))
}

/// Polls `/status` (within `within`) until `ready` holds; returns that status.
async fn status_until(
    address: SocketAddr,
    within: Duration,
    what: &str,
    log: &Path,
    ready: impl Fn(&Value) -> bool,
) -> Value {
    let started = Instant::now();
    loop {
        let (code, status) = try_get(address, "/status")
            .await
            .unwrap_or((0, Value::Null));
        if code == 200 && ready(&status) {
            return status;
        }
        assert!(
            started.elapsed() < within,
            "{what} did not happen within {within:?}; last /status: {status}\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dialers_abandoned_calls_lower_the_others_concurrency() {
    ari_lab::Lab::get().await;
    let db = ari_lab::mariadb::MariaDb::get().database("abshared");
    // 7... answers and hangs up itself after 3 s.
    let numbers: Vec<String> = (0..NUMBERS)
        .map(|i| format!("7{:05}", 30_000 + i))
        .collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let mut campaign = Campaign::new("ab-shared", &refs);
    campaign
        .set("DIALER_DB", &db.url)
        .set("MAX_CC", "4")
        .set("DIALER_TARGET_TIMEOUT", "10")
        .set("DIALER_TARGET_FAILED_SOUND", "sound:beep");
    let apps = [
        ari_lab::unique_name("ab-shared-slow"),
        ari_lab::unique_name("ab-shared-fast"),
    ];
    // A dials with `run`; B serves and is started with /start.
    let log = campaign.dir.join("serve.log");
    let file = std::fs::File::create(&log).unwrap();
    let address: SocketAddr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut fast = campaign.command(&["serve"]);
    fast.env("STASIS_APP", &apps[1])
        .env("TARGET_ENDPOINT", "Local/answer@lab")
        .env("DIALER_REPORT", "report-1.csv")
        .env("DIALER_LISTEN", address.to_string())
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let mut fast = fast.spawn().expect("the serving dialer starts");
    status_until(
        address,
        Duration::from_secs(20),
        "serve answering",
        &log,
        |_| true,
    )
    .await;
    let mut slow = campaign.command(&["run"]);
    slow.env("STASIS_APP", &apps[0])
        .env("TARGET_ENDPOINT", "Local/delay-3@lab")
        .env("DIALER_REPORT", "report-0.csv")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let slow = slow.spawn().expect("the dialer starts");
    let (code, reply) = get(address, "/start").await;
    assert_eq!(code, 200, "{reply}");
    // While the campaign runs, B's /status: the campaign's rate (A's abandons) above the
    // limit, and B holding calls back for it, down to one at a time.
    let held = status_until(
        address,
        Duration::from_secs(60),
        "the serving dialer held back by the campaign's abandon rate",
        &log,
        |s| {
            s["abandon_rate_pct"].as_f64().is_some_and(|pct| pct > 3.0)
                && s["held_back"]
                    .as_str()
                    .is_some_and(|h| h.contains("above the limit: at most 1 calls at once"))
        },
    )
    .await;
    // Its /status rewrote the report mid-run, and the per-day abandon rates beside it.
    assert_ne!(held["state"], "finished", "{held}");
    let mid_run = std::fs::read_to_string(campaign.dir.join("report-1.abandon.csv"))
        .expect("serve's /status writes the per-day abandon report during the run");
    assert!(
        mid_run.starts_with("day,live_answered,abandoned,abandon_rate_pct\n")
            && mid_run.contains("\nlast_30_days,"),
        "{mid_run}"
    );
    let finished = status_until(
        address,
        Duration::from_secs(90),
        "the campaign's end",
        &log,
        |s| s["state"] == "finished",
    )
    .await;
    let slow = tokio::time::timeout(Duration::from_secs(90), slow.wait_with_output())
        .await
        .expect("the dialers finish the campaign in time")
        .unwrap();
    fast.kill().await.unwrap();
    let outputs = [slow];
    let mut texts: Vec<String> = outputs.iter().map(output_text).collect();
    texts.push(std::fs::read_to_string(&log).unwrap());
    for (output, text) in outputs.iter().zip(&texts) {
        assert!(output.status.success(), "{text}");
    }
    // The database: A's calls all abandoned, B's all connected, both dialled.
    let by_app = db
        .sql(
            "SELECT d.app, a.outcome, COUNT(*) FROM attempts a JOIN dialers d ON d.id = a.dialer \
             GROUP BY d.app, a.outcome ORDER BY d.app, a.outcome",
        )
        .unwrap();
    let rows: Vec<Vec<&str>> = by_app
        .lines()
        .map(|line| line.split('\t').collect())
        .collect();
    let count = |app: &str, outcome: &str| -> u64 {
        rows.iter()
            .find(|row| row[0] == app && row[1] == outcome)
            .map_or(0, |row| row[2].trim().parse().unwrap())
    };
    let (slow, fast) = (&apps[0], &apps[1]);
    let slow_abandoned = count(slow, "target_failed");
    let fast_answered = count(fast, "answered");
    assert!(slow_abandoned >= 1, "{by_app}");
    assert!(fast_answered >= 1, "{by_app}");
    assert_eq!(count(slow, "answered"), 0, "{by_app}");
    assert_eq!(count(fast, "target_failed"), 0, "{by_app}");
    assert_eq!(
        slow_abandoned + fast_answered,
        NUMBERS as u64,
        "every number once: {by_app}"
    );
    // B's last /status: the campaign's rate over both dialers' calls.
    let pct = slow_abandoned as f64 * 100.0 / NUMBERS as f64;
    assert!(
        finished["abandon_rate_pct"]
            .as_f64()
            .is_some_and(|p| (p - pct).abs() < 0.01),
        "{finished}\n{held}"
    );
    // B never abandoned a call, yet it throttled on the campaign's rate.
    let fast_text = &texts[1];
    assert!(
        fast_text.contains("abandon rate too high: concurrency lowered"),
        "the fast dialer lowered its concurrency on the campaign's rate\n{fast_text}"
    );
    assert!(fast_text.contains("concurrency=1"), "{fast_text}");
    assert!(!fast_text.contains("abandoned: no target"), "{fast_text}");
    // The last to finish reports the campaign's rate over every dialer's calls (the
    // first may end while the other's last calls are up).
    let total = format!("live_answered={NUMBERS} abandoned={slow_abandoned}");
    assert!(
        texts.iter().any(|t| t.contains(&total)),
        "{total}\n{texts:#?}"
    );
    let day_reports: Vec<String> = (0..2)
        .map(|i| {
            std::fs::read_to_string(campaign.dir.join(format!("report-{i}.abandon.csv")))
                .expect("the per-day abandon report")
        })
        .collect();
    let last = format!("last_30_days,{NUMBERS},{slow_abandoned},");
    assert!(
        day_reports.iter().any(|r| r.contains(&last)),
        "{last}\n{day_reports:#?}"
    );
    let day_report = day_reports.join("\n");
    eprintln!(
        "serving dialer held back: {} (campaign rate {} %); at the end {} %\nattempts by dialer and outcome:\n{by_app}\n{day_report}",
        held["held_back"], held["abandon_rate_pct"], finished["abandon_rate_pct"]
    );
}
