//! Campaign rules through `outbound-dialer serve`'s HTTP API on the lab, the real binary
//! against the lab's Asterisk (and MariaDB): numbers added to the do-not-call list with
//! `POST /dnc` while two dialers share a campaign are never dialled by either, and the
//! circuit breaker's pause shows in `/status` as state `paused` with its reason. What
//! Asterisk did is read from its own events (a watcher app subscribed to everything).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::http::{self, Answer, HTTP_DEADLINE, free_port, status_until};
use common::{Campaign, Watcher};
use futures::TryStreamExt as _;
use serde_json::Value;

/// A whole campaign of these tests.
const CAMPAIGN_DEADLINE: Duration = Duration::from_secs(60);

/// An exchange that must succeed: (status, body).
async fn call(address: SocketAddr, method: &str, path: &str, body: &str) -> (u16, Value) {
    let answer = http::call(address, method, path, body).await;
    (answer.status, answer.body)
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// `outbound-dialer serve` for `campaign` as Stasis app `app` on a port of its own,
/// logging to `log`; answers once `/status` does.
async fn serve(campaign: &Campaign, app: &str, log: &Path) -> (tokio::process::Child, SocketAddr) {
    let address: SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let file = std::fs::File::create(log).unwrap();
    let mut command = campaign.command(&["serve"]);
    command
        .env("DIALER_LISTEN", address.to_string())
        .env("STASIS_APP", app)
        .stdout(file.try_clone().unwrap())
        .stderr(file);
    let mut child = command.spawn().expect("the dialer starts");
    let started = Instant::now();
    loop {
        if let Ok(Ok(Answer { status: 200, .. })) =
            tokio::time::timeout(HTTP_DEADLINE, http::exchange(address, "GET", "/status", "")).await
        {
            return (child, address);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not answer on {address}: {}",
            log_tail(log)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "serve exited: {}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_added_through_the_api_mid_campaign_are_never_dialled_by_either_dialer() {
    ari_lab::Lab::get().await;
    let db = ari_lab::mariadb::MariaDb::get().database("dncapi");
    // Two dialers, one call at a time each: 4001 and 4002 ring 3 s before they answer, so
    // the numbers after them wait while the API adds 1004, 1006 and 1007; 1003, 1005
    // and 1008 show the campaign goes on around them.
    let numbers = [
        "4001", "4002", "1003", "1004", "1005", "1006", "1007", "1008",
    ];
    let dnc = ["1004", "1006", "1007"];
    let mut campaign = Campaign::new("dl-dncapi", &numbers);
    campaign.set("DIALER_DB", &db.url).set("MAX_CC", "1");
    let watcher = Watcher::start(campaign.callee_prefix()).await;
    let logs = [
        campaign.dir.join("serve-0.log"),
        campaign.dir.join("serve-1.log"),
    ];
    let apps = [
        ari_lab::unique_name("dl-dncapi-0"),
        ari_lab::unique_name("dl-dncapi-1"),
    ];
    let (mut first, a) = serve(&campaign, &apps[0], &logs[0]).await;
    let (mut second, b) = serve(&campaign, &apps[1], &logs[1]).await;
    let shown = || format!("{}\n---\n{}", log_tail(&logs[0]), log_tail(&logs[1]));
    for address in [a, b] {
        let (code, reply) = call(address, "GET", "/start", "").await;
        assert_eq!(code, 200, "{reply}\n{}", shown());
    }

    // Both dialers have their first call up: the numbers after them are not claimed yet.
    watcher
        .until(Duration::from_secs(20), "both first calls", |s| {
            s.created.len() == 2
        })
        .await;
    let (code, reply) = call(
        a,
        "POST",
        "/dnc",
        r#"{"numbers": ["+1004", "(100) 6"], "source": "complaint"}"#,
    )
    .await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["added"], 2, "{reply}");
    let (code, reply) = call(b, "POST", "/dnc", r#"{"number": "100-7"}"#).await;
    assert_eq!(code, 200, "{reply}");
    assert_eq!(reply["numbers"], serde_json::json!(["1007"]), "{reply}");
    assert_eq!(
        watcher.state().created.len(),
        2,
        "a call started before the numbers were added: the test proves nothing"
    );
    // One table for the campaign: each dialer sees what the other's API added.
    assert_eq!(call(a, "GET", "/dnc", "").await.1["count"], 3);
    let (_, entry) = call(a, "GET", "/dnc/1007", "").await;
    assert_eq!(
        (&entry["dnc"], &entry["source"]),
        (&Value::from(true), &Value::from("api"))
    );
    let (_, entry) = call(b, "GET", "/dnc/1006", "").await;
    assert_eq!(entry["source"], "complaint", "{entry}");

    // Both finish the campaign (a shared one ends when every number has its outcome).
    for address in [a, b] {
        let status = status_until(address, CAMPAIGN_DEADLINE, "the campaign's end", |s| {
            s["state"] == "finished"
        })
        .await;
        assert_eq!(status["outcomes"]["dnc"], 3, "{status}\n{}", shown());
        assert_eq!(status["outcomes"]["answered"], 5, "{status}\n{}", shown());
        assert_eq!(status["pending"], 0, "{status}");
    }
    watcher
        .until(Duration::from_secs(20), "every callee hung up", |s| {
            s.live == 0
        })
        .await;

    // The database: every number one attempt; the DNC ones never originated.
    let store = campaign.mysql_store(&db.url).await;
    let attempts: Vec<_> = store.attempts().try_collect().await.unwrap();
    store.close().await;
    assert_eq!(attempts.len(), numbers.len(), "{attempts:?}");
    for attempt in &attempts {
        let outcome = attempt.outcome.map(|o| o.as_str());
        if dnc.contains(&attempt.number.as_str()) {
            assert_eq!(outcome, Some("dnc"), "{attempt:?}");
            assert_eq!(attempt.originated_at, None, "{attempt:?}");
            assert!(
                attempt
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("do-not-call")),
                "{attempt:?}"
            );
        } else {
            assert_eq!(outcome, Some("answered"), "{attempt:?}\n{}", shown());
        }
    }
    // Asterisk: a channel for each number dialled, none for a DNC number.
    let ids = db.sql("SELECT number, id FROM numbers").unwrap();
    let prefix = campaign.callee_prefix();
    let created = watcher.state().created.clone();
    assert_eq!(created.len(), numbers.len() - dnc.len(), "{created:?}");
    assert!(created.values().all(|n| *n == 1), "{created:?}");
    for line in ids.lines() {
        let (number, id) = line.split_once('\t').unwrap();
        let channels = format!("{prefix}{:012}-", id.parse::<u64>().unwrap());
        let dialled = created.keys().any(|c| c.starts_with(&channels));
        assert_eq!(
            dialled,
            !dnc.contains(&number),
            "{number} (id {id}): {created:?}"
        );
    }
    // Both dialers dialled (their first calls were up at once, MAX_CC 1 each).
    let by_app = db
        .sql(
            "SELECT d.app FROM attempts a JOIN dialers d ON d.id = a.dialer \
             WHERE a.originated_at IS NOT NULL GROUP BY d.app",
        )
        .unwrap();
    for app in &apps {
        assert!(by_app.contains(app.as_str()), "{app}: {by_app}");
    }
    first.kill().await.unwrap();
    second.kill().await.unwrap();
}

#[tokio::test]
async fn the_breakers_pause_shows_in_status_with_its_reason() {
    ari_lab::Lab::get().await;
    // 6xxx: the carrier answers 503 (cause 34). Three in a row open the breaker for 3 s;
    // the probe (6004) fails again; the next probe (1005) gets through.
    let numbers = ["6001", "6002", "6003", "6004", "1005"];
    let mut campaign = Campaign::new("dl-brk", &numbers);
    campaign
        .set("DIALER_DB", "campaign.sqlite")
        .set("MAX_CC", "1")
        .set("DIALER_BREAKER_THRESHOLD", "3")
        .set("DIALER_BREAKER_COOLDOWN", "3s");
    let app = ari_lab::unique_name("dl-brk-app");
    let log = campaign.dir.join("serve.log");
    let (mut child, address) = serve(&campaign, &app, &log).await;
    let (code, reply) = call(address, "GET", "/start", "").await;
    assert_eq!(code, 200, "{reply}");

    let paused = status_until(
        address,
        Duration::from_secs(20),
        "the breaker's pause",
        |s| s["state"] == "paused" && s["paused_by"] == "breaker",
    )
    .await;
    let reason = paused["pause_reason"].as_str().unwrap_or_default();
    assert!(
        reason
            .contains("circuit breaker open: the last 3 calls failed at the trunk (last cause 34"),
        "{paused}"
    );
    // The probe's time is about the cool-down ahead (a status may be a moment old on a
    // loaded machine); the old field is kept.
    let until = chrono::DateTime::parse_from_rfc3339(paused["paused_until"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    let ahead = until - chrono::DateTime::<chrono::Utc>::from(std::time::SystemTime::now());
    assert!(
        ahead <= chrono::Duration::seconds(4) && ahead >= chrono::Duration::seconds(-3),
        "{paused}"
    );
    assert!(
        paused["held_back"]
            .as_str()
            .is_some_and(|h| h.contains("circuit breaker open")),
        "{paused}"
    );
    assert_eq!(paused["outcomes"]["congestion"], 3, "{paused}");
    assert_eq!(paused["breaker_pauses"][0]["reason"], reason, "{paused}");
    assert!(
        paused["breaker_pauses"][0].get("resumed_at").is_none(),
        "{paused}"
    );
    // Not the operator's pause: /resume does not override the breaker, and says why.
    let (code, reply) = call(address, "POST", "/resume", "").await;
    assert_eq!(code, 409, "{reply}");
    let message = reply["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "the circuit breaker paused the campaign, not /pause: circuit breaker open"
        ) && message.contains("resumes when one gets through the trunk"),
        "{reply}"
    );

    // It probes (and fails: paused again, the same pause), then resumes with 1005.
    let done = status_until(address, CAMPAIGN_DEADLINE, "the campaign's end", |s| {
        s["state"] == "finished"
    })
    .await;
    assert_eq!(
        done["outcomes"]["congestion"],
        4,
        "{done}\n{}",
        log_tail(&log)
    );
    assert_eq!(done["outcomes"]["answered"], 1, "{done}");
    assert!(done.get("paused_by").is_none(), "{done}");
    let pauses = done["breaker_pauses"].as_array().unwrap();
    assert_eq!(pauses.len(), 1, "{done}");
    assert_eq!(pauses[0]["probes"].as_array().unwrap().len(), 2, "{done}");
    assert_eq!(pauses[0]["probe_count"], 2, "{done}");
    let at = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    let (paused_at, probes, resumed) = (
        at(&pauses[0]["paused_at"]),
        [at(&pauses[0]["probes"][0]), at(&pauses[0]["probes"][1])],
        at(&pauses[0]["resumed_at"]),
    );
    assert!(
        probes[0] - paused_at >= chrono::Duration::seconds(2),
        "{done}"
    );
    assert!(
        probes[1] - probes[0] >= chrono::Duration::seconds(2),
        "{done}"
    );
    assert!(resumed >= probes[1], "{done}");
    // The summary at the end says it too.
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("paused by the circuit breaker at ") && text.contains("; resumed at "),
        "{}",
        log_tail(&log)
    );
    child.kill().await.unwrap();
}
