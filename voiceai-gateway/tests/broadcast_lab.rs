//! Active-active gateways on one Asterisk, on the lab: real SIPp calls with
//! `X-Lab-Broadcast: 1` go to `StasisBroadcast` (asterisk_conf/extensions.conf), which
//! offers each to the gateways whose app matches the filter; every gateway runs with
//! `--claim-broadcasts` and its own app `voiceai-<unique>-a` / `-b`.
//!
//! Each test narrows the broadcast to its own two apps with `X-Lab-Broadcast-Filter:
//! ^voiceai-<unique>-` (the lab hook): a broadcast reaches every connected app that
//! matches, so tests running at once would otherwise claim each other's calls.
//!
//! - 20 calls spread over two gateways: each is answered by exactly one, every one
//!   reaches the bot with audio, none lost (none in the fallback);
//! - a full gateway does not claim (the other takes every call), and when both are full
//!   nobody claims: the dialplan's fallback (777@default, STASISSTATUS=TIMEOUT) runs;
//! - kill -9 of a gateway: its established calls end (Asterisk hangs them up when their
//!   `--call-lease` runs out), and every new call is taken by the survivor;
//! - a draining gateway (SIGTERM) claims nothing but keeps its calls to their end.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use ari_lab::Lab;
use ari_lab::rest::Rest;
use ari_lab::sipp::{Sipp, UacCall};
use common::WAIT;
use common::bot::{Behaviour, Bot};
use common::gateway::Gateway;
use common::http::Http;
use serde_json::Value;
use voiceai_gateway::protocol::ProtocolKind;

/// How long the debug gateway may take to say `ready`.
const READY: Duration = Duration::from_secs(30);
/// The calls' lease: a dead gateway's calls end this long after its last renewal.
const LEASE: &str = "3s";
/// How long a dead gateway's calls may take to end (the lease, plus slack for a loaded
/// machine).
const LEASE_ENDS: Duration = Duration::from_secs(12);

/// Two apps of one test, and the filter that offers broadcasts to them alone.
struct Names {
    prefix: String,
}

impl Names {
    fn new() -> Names {
        Names {
            prefix: ari_lab::unique_name("voiceai-bc"),
        }
    }

    fn app(&self, which: &str) -> String {
        format!("{}-{which}", self.prefix)
    }

    fn filter(&self) -> String {
        format!("^{}-", self.prefix)
    }
}

/// A gateway claiming broadcasts for `app`, with at most `max_calls` calls.
async fn gateway(lab: &Lab, app: &str, bot: &Bot, max_calls: usize) -> (Gateway, Http) {
    let url = bot.url("/bot");
    let max = max_calls.to_string();
    let gateway = Gateway::start(
        lab,
        &[
            "--app",
            app,
            "--backend-url",
            url.as_str(),
            "--claim-broadcasts",
            "--max-calls",
            max.as_str(),
            "--call-lease",
            LEASE,
            "--hold-music",
            "none",
            "--audiosocket-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    gateway.wait_ready(READY).await.expect("gateway ready");
    let http = Http::new(&gateway.base_url());
    (gateway, http)
}

/// A SIPp call from `caller` that the lab broadcasts to the apps of `names`.
fn broadcast_call(names: &Names, caller: &str) -> Sipp {
    let call = UacCall {
        dialled: "8000".into(),
        caller: caller.into(),
        // Not used: X-Lab-Broadcast sends the call to StasisBroadcast instead.
        app: "unused".into(),
    };
    let filter = names.filter();
    Sipp::call_with_headers(
        &call,
        &[
            ("X-Lab-Broadcast", "1"),
            ("X-Lab-Broadcast-Filter", filter.as_str()),
        ],
    )
    .expect("sipp caller")
}

/// The active calls of a gateway: caller's number → the call's JSON.
async fn active(http: &Http) -> Vec<Value> {
    let reply = http
        .get("/api/calls/active")
        .await
        .expect("GET /api/calls/active");
    reply.json()["calls"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn callers(calls: &[Value]) -> BTreeSet<String> {
    calls
        .iter()
        .filter_map(|call| call["callerNumber"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until the gateways' active calls, together, are `expected` (by caller number);
/// returns each gateway's callers.
async fn wait_held(
    gateways: &[&Http],
    expected: &BTreeSet<String>,
    within: Duration,
) -> Vec<BTreeSet<String>> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let mut each = Vec::new();
        let mut all = Vec::new();
        for http in gateways {
            let calls = active(http).await;
            all.extend(
                calls
                    .iter()
                    .filter_map(|c| c["callerNumber"].as_str().map(str::to_owned)),
            );
            each.push(callers(&calls));
        }
        let held: BTreeSet<String> = all.iter().cloned().collect();
        if &held == expected {
            assert_eq!(all.len(), held.len(), "a call is held twice: {each:?}");
            return each;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {within:?} the gateways hold {each:?}, not {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Hangs up every active call of `http` through its API.
async fn disconnect_all(http: &Http) {
    for call in active(http).await {
        let id = call["callId"].as_str().unwrap_or_default();
        let _ = http
            .post_json(&format!("/api/calls/{id}/disconnect"), &Value::Null)
            .await;
    }
}

async fn ended_by_asterisk(sipp: Sipp, within: Duration, what: &str) {
    match sipp.wait(within).await {
        Ok(status) => assert!(status.success(), "{what}: sipp exited with {status}"),
        Err(error) => panic!("{what}: {error}"),
    }
}

#[tokio::test]
async fn twenty_broadcast_calls_spread_over_two_gateways_each_taken_once() {
    let lab = Lab::get().await;
    let names = Names::new();
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    // Twelve each: neither can take all 20, so both must claim.
    let (a_gateway, a) = gateway(lab, &names.app("a"), &bot, 12).await;
    let (b_gateway, b) = gateway(lab, &names.app("b"), &bot, 12).await;

    let numbers: Vec<String> = (0..20).map(|i| format!("8101{i:02}")).collect();
    let placed = std::time::Instant::now();
    let mut callers_sipp = Vec::new();
    for number in &numbers {
        callers_sipp.push(broadcast_call(&names, number));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let expected: BTreeSet<String> = numbers.iter().cloned().collect();
    let each = wait_held(&[&a, &b], &expected, Duration::from_secs(25)).await;
    assert!(
        each.iter().all(|held| held.len() >= 8),
        "20 calls over two gateways of 12 each: {each:?}"
    );
    eprintln!(
        "broadcast: 20 calls held {:?} after the first was placed: A {}, B {}",
        placed.elapsed(),
        each[0].len(),
        each[1].len()
    );

    // Every call reached the bot, with the caller's audio.
    for index in 0..20 {
        let conn = bot.wait_connection(index, WAIT).await.unwrap_or_else(|e| {
            panic!(
                "{e}\nA:\n{}\nB:\n{}",
                a_gateway.output(),
                b_gateway.output()
            )
        });
        let start = conn.wait_start(WAIT).await.expect("start");
        let from = start["start"]["customParameters"]["from_number"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(expected.contains(&from), "bot start from {from:?}: {start}");
        conn.wait_frames(10, WAIT)
            .await
            .expect("the caller's audio");
    }
    assert_eq!(
        bot.connections().len(),
        20,
        "one backend connection per call"
    );
    let claimed_a = a_gateway
        .lines()
        .iter()
        .filter(|l| l.contains("broadcast call claimed server="))
        .count();
    let claimed_b = b_gateway
        .lines()
        .iter()
        .filter(|l| l.contains("broadcast call claimed server="))
        .count();
    assert_eq!(
        claimed_a + claimed_b,
        20,
        "claims won: A {claimed_a}, B {claimed_b}"
    );

    disconnect_all(&a).await;
    disconnect_all(&b).await;
    for (number, sipp) in numbers.iter().zip(callers_sipp) {
        ended_by_asterisk(sipp, WAIT, &format!("call from {number}")).await;
    }
}

#[tokio::test]
async fn a_full_gateway_does_not_claim_and_with_both_full_the_fallback_runs() {
    let lab = Lab::get().await;
    let names = Names::new();
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    let (a_gateway, a) = gateway(lab, &names.app("a"), &bot, 1).await;
    // A alone: it takes the first call and is full.
    let first = broadcast_call(&names, "810200");
    let set = |numbers: &[&str]| {
        numbers
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    wait_held(&[&a], &set(&["810200"]), WAIT).await;

    let (b_gateway, b) = gateway(lab, &names.app("b"), &bot, 3).await;
    let mut more = Vec::new();
    for number in ["810201", "810202", "810203"] {
        more.push(broadcast_call(&names, number));
    }
    let each = wait_held(
        &[&a, &b],
        &set(&["810200", "810201", "810202", "810203"]),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(
        each[0],
        set(&["810200"]),
        "the full gateway A claimed: {each:?}"
    );
    assert!(
        a_gateway
            .lines()
            .iter()
            .any(|l| l.contains("not claimed: full")),
        "A never said it was full:\n{}",
        a_gateway.output()
    );

    // Both full: nobody claims, the dialplan's fallback answers (777@default echoes).
    let fallback = broadcast_call(&names, "810204");
    let rest = Rest::new(lab);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let channel_id = loop {
        let channels = rest
            .get("/channels")
            .await
            .expect("GET /channels")
            .json()
            .expect("JSON");
        let found = channels.as_array().and_then(|list| {
            list.iter().find(|c| {
                c["caller"]["number"] == "810204"
                    && c["dialplan"]["context"] == "default"
                    && c["dialplan"]["exten"] == "777"
            })
        });
        if let Some(channel) = found {
            break channel["id"].as_str().unwrap_or_default().to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unclaimed call never reached 777@default: {channels}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let status = rest
        .get(&format!(
            "/channels/{channel_id}/variable?variable=STASISSTATUS"
        ))
        .await
        .expect("STASISSTATUS")
        .json()
        .expect("JSON");
    assert_eq!(status["value"], "TIMEOUT", "{status}");
    for http in [&a, &b] {
        assert!(!callers(&active(http).await).contains("810204"));
    }
    assert!(
        b_gateway
            .lines()
            .iter()
            .any(|l| l.contains("not claimed: full")),
        "B never said it was full:\n{}",
        b_gateway.output()
    );

    let _ = rest.delete(&format!("/channels/{channel_id}")).await;
    ended_by_asterisk(fallback, WAIT, "the fallback call").await;
    disconnect_all(&a).await;
    disconnect_all(&b).await;
    ended_by_asterisk(first, WAIT, "the first call").await;
    for sipp in more {
        ended_by_asterisk(sipp, WAIT, "B's calls").await;
    }
}

#[tokio::test]
async fn a_killed_gateway_s_calls_end_and_the_survivor_takes_every_new_call() {
    let lab = Lab::get().await;
    let names = Names::new();
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    let (mut a_gateway, a) = gateway(lab, &names.app("a"), &bot, 5).await;
    // A alone takes the first two calls.
    let doomed: Vec<Sipp> = ["810300", "810301"]
        .iter()
        .map(|n| broadcast_call(&names, n))
        .collect();
    let set = |numbers: &[&str]| {
        numbers
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    wait_held(&[&a], &set(&["810300", "810301"]), WAIT).await;
    bot.wait_connection(1, WAIT)
        .await
        .expect("both calls at the bot");

    let (b_gateway, b) = gateway(lab, &names.app("b"), &bot, 5).await;
    a_gateway.kill().expect("kill -9 the gateway A");
    let killed = std::time::Instant::now();
    // Nobody renews their lease any more: Asterisk hangs the callers up (SIPp gets BYE).
    for (i, sipp) in doomed.into_iter().enumerate() {
        ended_by_asterisk(sipp, LEASE_ENDS, &format!("A's call #{i} after kill -9")).await;
    }
    eprintln!(
        "broadcast: the killed gateway's calls ended {:?} after kill -9 (lease {LEASE})",
        killed.elapsed()
    );

    // Every new call goes to the survivor.
    let mut survivors = Vec::new();
    for number in ["810302", "810303", "810304"] {
        survivors.push(broadcast_call(&names, number));
    }
    let each = wait_held(
        &[&b],
        &set(&["810302", "810303", "810304"]),
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(each[0].len(), 3);
    for index in 2..5 {
        bot.wait_connection(index, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{e}\nB:\n{}", b_gateway.output()));
    }
    disconnect_all(&b).await;
    for sipp in survivors {
        ended_by_asterisk(sipp, WAIT, "B's calls").await;
    }
}

#[tokio::test]
async fn a_draining_gateway_does_not_claim_but_keeps_its_calls() {
    let lab = Lab::get().await;
    let names = Names::new();
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    let (mut a_gateway, a) = gateway(lab, &names.app("a"), &bot, 5).await;
    let held = broadcast_call(&names, "810400");
    let set = |numbers: &[&str]| {
        numbers
            .iter()
            .map(|n| (*n).to_owned())
            .collect::<BTreeSet<_>>()
    };
    wait_held(&[&a], &set(&["810400"]), WAIT).await;

    let (_b_gateway, b) = gateway(lab, &names.app("b"), &bot, 5).await;
    a_gateway.sigterm().expect("SIGTERM to A");
    a_gateway
        .wait_for_line("draining", WAIT)
        .await
        .expect("A drains");
    let mut new_calls = Vec::new();
    for number in ["810401", "810402"] {
        new_calls.push(broadcast_call(&names, number));
    }
    wait_held(&[&b], &set(&["810401", "810402"]), Duration::from_secs(15)).await;
    assert_eq!(
        callers(&active(&a).await),
        set(&["810400"]),
        "A keeps its call"
    );
    assert!(
        a_gateway
            .lines()
            .iter()
            .any(|l| l.contains("not claimed: draining")),
        "A never said it was draining:\n{}",
        a_gateway.output()
    );

    // A's last call ends: A exits, its caller hung up cleanly.
    disconnect_all(&a).await;
    ended_by_asterisk(held, WAIT, "A's call").await;
    let status = a_gateway.wait_exit(WAIT).await.expect("A exits");
    assert!(status.success(), "A exited with {status}");
    disconnect_all(&b).await;
    for sipp in new_calls {
        ended_by_asterisk(sipp, WAIT, "B's calls").await;
    }
}
