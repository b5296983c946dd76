//! `outbound-dialer serve` on the lab: the seed's controller (`GET /start`, `/status`,
//! `POST /pause`, `/resume`, `/stop`) drives a real campaign, and a watcher of
//! Asterisk's own events checks what the dialer did. Carrier class 7: the callee answers
//! and hangs up after 3 s.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use common::http::{self, Answer, HTTP_DEADLINE, free_port, status_until};
use common::{Campaign, WatchState, Watcher};
use serde_json::{Value, json};

/// How long a call may take to be created, or to end (3 s of talk and teardown).
const CALL_DEADLINE: Duration = Duration::from_secs(20);
/// A class-7 call: answered, then hung up by the carrier 3 s later.
const CALL_LENGTH: Duration = Duration::from_secs(3);

/// An exchange that must succeed (no body).
async fn call(address: SocketAddr, method: &str, path: &str) -> Answer {
    http::call(address, method, path, "").await
}

/// Checks for `within` that `holds` stays true (an absence has no event to wait for).
async fn stays(
    watcher: &Watcher,
    within: Duration,
    what: &str,
    holds: impl Fn(&WatchState) -> bool,
) {
    let started = Instant::now();
    while started.elapsed() < within {
        assert!(holds(&watcher.state()), "{what}: {:?}", watcher.state());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn log_tail(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn is_error_reply(body: &Value) -> bool {
    body["status"] == "error"
        && body["message"].as_str().is_some_and(|m| !m.is_empty())
        && body.as_object().is_some_and(|o| o.len() == 2)
}

/// The ids of the callees created so far, in creation order (ids grow with the list).
fn created_ids(state: &WatchState) -> Vec<String> {
    let mut ids: Vec<String> = state.created.keys().cloned().collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn serve_starts_pauses_resumes_stops_and_rereads_dotenv() {
    ari_lab::Lab::get().await;
    let numbers = ["7601", "7602", "7603", "7604", "7605"];
    let mut campaign = Campaign::new("dl-serve", &numbers);
    let port = free_port();
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    // MAX_CC comes from .env alone: the real environment would win over it.
    campaign.env.retain(|(key, _)| key != "MAX_CC");
    campaign
        .set("DIALER_LISTEN", &address.to_string())
        .set("TARGET_ENDPOINT", "Local/answer@lab");
    std::fs::write(campaign.dir.join(".env"), "MAX_CC=1\n").unwrap();
    let watcher = Watcher::start(campaign.callee_prefix()).await;
    let log = std::fs::File::create(campaign.dir.join("serve.log")).unwrap();
    let mut child = campaign
        .command(&["serve"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the dialer starts");

    // Ready when it answers.
    let started = Instant::now();
    let idle = loop {
        match tokio::time::timeout(HTTP_DEADLINE, http::exchange(address, "GET", "/status", ""))
            .await
        {
            Ok(Ok(answer)) => break answer,
            _ => {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "serve did not answer on {address}: {}",
                    log_tail(&campaign.dir)
                );
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "serve exited: {}",
                    log_tail(&campaign.dir)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(idle.status, 200, "{idle:?}");
    assert_eq!(idle.body["status"], "success", "{idle:?}");
    assert_eq!(idle.body["state"], "idle", "{idle:?}");
    assert_eq!(idle.body["campaign"], campaign.name.as_str(), "{idle:?}");

    // Nothing to pause, resume or stop while idle.
    for action in ["/pause", "/resume", "/stop"] {
        let answer = call(address, "POST", action).await;
        assert_eq!(answer.status, 409, "{action} when idle: {answer:?}");
        assert!(is_error_reply(&answer.body), "{action}: {answer:?}");
    }
    let answer = call(address, "POST", "/pause").await;
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains("pause") && message.contains("idle"),
        "{message}"
    );

    // Start, and start again while running.
    let answer = call(address, "GET", "/start").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.body,
        json!({"status": "success", "message": "Campaign started"})
    );
    let answer = call(address, "GET", "/start").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "success", "{answer:?}");
    assert!(
        answer.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("already running")),
        "{answer:?}"
    );

    // The first call is up: /status counts it.
    watcher
        .until(CALL_DEADLINE, "the first call", |s| s.created.len() == 1)
        .await;
    // Published every 500 ms: a status may predate the attempt's row.
    let status = status_until(address, CALL_DEADLINE, "one active call", |s| {
        s["active_calls"] == 1 && s["pending"] == numbers.len() - 1
    })
    .await;
    assert_eq!(status["state"], "running", "{status}");
    assert_eq!(status["total"], numbers.len(), "{status}");
    assert!(status["outcomes"]["answered"].is_u64(), "{status}");

    // Paused during the first call: it finishes, and no call follows it.
    let answer = call(address, "POST", "/pause").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "success", "{answer:?}");
    let first = created_ids(&watcher.state())[0].clone();
    watcher
        .until(CALL_DEADLINE, "the first call's end", |s| {
            s.destroyed.contains_key(&first)
        })
        .await;
    stays(
        &watcher,
        CALL_LENGTH + Duration::from_secs(2),
        "a call was created while paused",
        |s| s.created.len() == 1,
    )
    .await;
    let status = status_until(address, CALL_DEADLINE, "paused with no call", |s| {
        s["state"] == "paused" && s["active_calls"] == 0
    })
    .await;
    assert_eq!(status["outcomes"]["answered"], 1, "{status}");
    assert_eq!(status["pending"], numbers.len() - 1, "{status}");
    let answer = call(address, "POST", "/pause").await;
    assert_eq!(answer.status, 409, "pause when paused: {answer:?}");
    assert!(is_error_reply(&answer.body), "{answer:?}");

    // Resumed: the next call comes.
    let answer = call(address, "POST", "/resume").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    watcher
        .until(CALL_DEADLINE, "a call after the resume", |s| {
            s.created.len() == 2
        })
        .await;

    // Stopped during the second call: it finishes as answered, nothing follows.
    let answer = call(address, "POST", "/stop").await;
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(answer.body["status"], "success", "{answer:?}");
    let status = status_until(address, CALL_DEADLINE + CALL_LENGTH, "the run's end", |s| {
        s["state"] == "finished"
    })
    .await;
    {
        let seen = watcher.state();
        assert_eq!(
            seen.created.len(),
            2,
            "a call was created after /stop: {seen:?}"
        );
        assert_eq!(seen.live, 0, "{seen:?}");
        assert!(seen.created.values().all(|n| *n == 1), "{seen:?}");
    }
    assert_eq!(
        status["outcomes"]["answered"], 2,
        "the active call finished: {status}"
    );
    assert_eq!(status["pending"], numbers.len() - 2, "{status}");
    assert_eq!(status["active_calls"], 0, "{status}");
    let answer = call(address, "POST", "/pause").await;
    assert_eq!(answer.status, 409, "pause when finished: {answer:?}");
    assert!(is_error_reply(&answer.body), "{answer:?}");

    // A later /start re-reads .env: two calls at once now.
    std::fs::write(campaign.dir.join(".env"), "MAX_CC=2\n").unwrap();
    let answer = call(address, "GET", "/start").await;
    assert_eq!(
        answer.body,
        json!({"status": "success", "message": "Campaign started"}),
        "{}",
        log_tail(&campaign.dir)
    );
    watcher
        .until(CALL_DEADLINE, "two calls at once", |s| s.live == 2)
        .await;
    let status = status_until(
        address,
        CALL_DEADLINE + 2 * CALL_LENGTH,
        "the second run's end",
        |s| s["state"] == "finished",
    )
    .await;
    assert_eq!(status["total"], numbers.len(), "{status}");
    assert_eq!(status["pending"], 0, "{status}");
    assert_eq!(status["outcomes"]["answered"], numbers.len(), "{status}");
    {
        let seen = watcher.state();
        assert_eq!(seen.created.len(), numbers.len(), "{seen:?}");
        assert!(
            seen.created.values().all(|n| *n == 1),
            "dialled twice: {seen:?}"
        );
        assert_eq!(seen.max_live, 2, "MAX_CC=2 from .env: {seen:?}");
    }

    child.kill().await.unwrap();
}
