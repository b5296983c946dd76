//! `GET /metrics` of the gateway binary on a real SIPp call through the lab: the counters
//! move as the call lives and ends (started, answered, active 1 then 0, ended by reason,
//! a duration sample, frames and added latency both ways, ARI connected, a monitor
//! client counted while connected), and the Grafana dashboard's names are all in this
//! real output. A backend lost mid-call, refused, then back counts one loss, its refused
//! attempts and one reconnect; a backend that never answers counts its attempts and one
//! failover to the fallback endpoint.

mod common;
mod metrics_support;

use std::time::Duration;

use ari_lab::Lab;
use ari_lab::pcap::CallerAudio;
use ari_lab::sipp::{Sipp, UacCall};
use common::WAIT;
use common::bot::{Action, Behaviour, Bot};
use common::call::{LabCall, Setup};
use common::gateway::Gateway;
use common::http::{Http, WsClient};
use metrics_support::{check_dashboard, sample};
use tokio::time::Instant;
use voiceai_gateway::audio::AudioFormat;
use voiceai_gateway::media::MediaKind;
use voiceai_gateway::protocol::ProtocolKind;

/// `/metrics`' text, checked to be a 200 answer.
async fn scrape(http: &Http) -> Result<String, String> {
    let reply = http.get("/metrics").await?;
    if reply.status != 200 {
        return Err(format!("GET /metrics: {} {}", reply.status, reply.text));
    }
    Ok(reply.text)
}

/// Scrapes until `ready` holds on the text (or `within` is over); returns the text.
async fn scrape_until(
    http: &Http,
    what: &str,
    within: Duration,
    ready: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let deadline = Instant::now() + within;
    loop {
        let text = scrape(http).await?;
        if ready(&text) {
            return Ok(text);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {within:?}:\n{text}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The value of `name{labels}`, 0 when the sample is missing.
fn value(text: &str, name: &str, labels: &str) -> f64 {
    sample(text, name, labels).unwrap_or(0.0)
}

/// The values of every series of the family sample `name` (any labels).
fn series<'t>(text: &'t str, name: &str) -> Vec<(&'t str, f64)> {
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, number) = rest.rsplit_once(' ')?;
            (labels.is_empty() || labels.starts_with('{'))
                .then(|| Some((labels, number.parse().ok()?)))?
        })
        .collect()
}

fn mean(text: &str, histogram: &str, labels: &str) -> f64 {
    let count = value(text, &format!("{histogram}_count"), labels);
    let sum = value(text, &format!("{histogram}_sum"), labels);
    if count > 0.0 { sum / count } else { f64::NAN }
}

#[tokio::test]
async fn a_real_call_moves_the_counters() {
    let lab = Lab::get().await;
    let setup = Setup::new(
        MediaKind::Websocket,
        AudioFormat::Ulaw,
        ProtocolKind::Twilio,
    );
    let audio = CallerAudio::tone(1000.0, Duration::from_secs(3));
    let mut call = LabCall::start(lab, &setup, Behaviour::echo(), &audio)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let http = call.http.clone();

    let mut monitor = WsClient::connect(&call.gateway.ws_url("/ws/monitor"), None)
        .await
        .unwrap();
    monitor
        .wait_for(WAIT, |m| m["type"] == "connected")
        .await
        .unwrap();

    // During the call: half a second of audio both ways (the bot echoes), counted with
    // its latency.
    let during = scrape_until(&http, "frames both ways", WAIT, |text| {
        value(
            text,
            "voiceai_media_added_latency_seconds_count",
            "direction=\"in\"",
        ) >= 25.0
            && value(
                text,
                "voiceai_media_added_latency_seconds_count",
                "direction=\"out\"",
            ) >= 25.0
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ngateway:\n{}", call.gateway.output()));
    let frames_in = value(&during, "voiceai_media_frames_total", "direction=\"in\"");
    let frames_out = value(&during, "voiceai_media_frames_total", "direction=\"out\"");
    assert!(frames_in > 0.0 && frames_out > 0.0, "{during}");
    assert_eq!(value(&during, "voiceai_active_calls", ""), 1.0, "{during}");
    assert_eq!(
        value(
            &during,
            "voiceai_calls_started_total",
            "direction=\"inbound\""
        ),
        1.0,
        "{during}"
    );
    assert_eq!(
        value(&during, "voiceai_calls_answered_total", ""),
        1.0,
        "{during}"
    );
    let ended: f64 = series(&during, "voiceai_calls_ended_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(ended, 0.0, "{during}");
    let ari = series(&during, "voiceai_ari_connected");
    assert!(
        !ari.is_empty() && ari.iter().all(|(_, up)| *up == 1.0),
        "ARI connected: {ari:?}"
    );
    assert_eq!(
        value(&during, "voiceai_ws_clients", "endpoint=\"monitor\""),
        1.0,
        "{during}"
    );
    assert_eq!(
        value(&during, "voiceai_backend_connect_failures_total", ""),
        0.0
    );
    let families = check_dashboard(&during).unwrap_or_else(|e| panic!("{e}\n{during}"));
    let latency_in = mean(
        &during,
        "voiceai_media_added_latency_seconds",
        "direction=\"in\"",
    );
    let latency_out = mean(
        &during,
        "voiceai_media_added_latency_seconds",
        "direction=\"out\"",
    );
    // Loopback, one call: anything near a frame time would be a measuring bug.
    assert!(latency_in < 0.02 && latency_out < 0.02, "{during}");

    // The bot ends it: the call is over, counted once under its reason, with a duration.
    call.conn.send(Action::Close(1000)).unwrap();
    if let Some(sipp) = call.sipp.take() {
        let status = sipp.wait(WAIT).await.unwrap();
        assert!(status.success(), "sipp exited {status}");
    }
    drop(monitor);
    let after = scrape_until(&http, "the call's end", WAIT, |text| {
        value(text, "voiceai_active_calls", "") == 0.0
            && value(text, "voiceai_ws_clients", "endpoint=\"monitor\"") == 0.0
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ngateway:\n{}", call.gateway.output()));
    assert_eq!(
        value(
            &after,
            "voiceai_calls_ended_total",
            "reason=\"backend_closed\""
        ),
        1.0,
        "{after}"
    );
    let ended: f64 = series(&after, "voiceai_calls_ended_total")
        .iter()
        .map(|(_, v)| v)
        .sum();
    assert_eq!(ended, 1.0, "{after}");
    assert_eq!(
        value(&after, "voiceai_call_duration_seconds_count", ""),
        1.0,
        "{after}"
    );
    let duration = value(&after, "voiceai_call_duration_seconds_sum", "");
    // At least the half second of audio, at most the test's waits.
    assert!(duration > 0.4 && duration < 30.0, "{after}");
    assert!(value(&after, "voiceai_media_frames_total", "direction=\"in\"") >= frames_in);

    eprintln!(
        "metrics: {families} families; frames in {frames_in} out {frames_out} while the call was up; \
         mean added latency in {:.3} ms, out {:.3} ms; call {duration:.2} s",
        latency_in * 1000.0,
        latency_out * 1000.0
    );
    call.gateway.sigterm().unwrap();
    let status = call.gateway.wait_exit(WAIT).await.unwrap();
    assert!(status.success(), "the gateway exited {status}");
}

#[tokio::test]
async fn a_lost_and_refused_backend_counts_its_failures_and_the_reconnect() {
    let lab = Lab::get().await;
    let setup = Setup::new(
        MediaKind::Websocket,
        AudioFormat::Ulaw,
        ProtocolKind::Twilio,
    );
    let audio = CallerAudio::tone(1000.0, Duration::from_secs(4));
    let mut call = LabCall::start(lab, &setup, Behaviour::echo(), &audio)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let http = call.http.clone();
    let before = scrape(&http).await.unwrap();
    assert_eq!(value(&before, "voiceai_backend_disconnects_total", ""), 0.0);

    // The bot crashes and refuses the gateway's next attempts.
    call.bot.refuse_with(Some(503));
    call.conn.send(Action::Abort).unwrap();
    let refused = scrape_until(
        &http,
        "a lost backend and a refused attempt",
        WAIT,
        |text| {
            value(text, "voiceai_backend_disconnects_total", "") == 1.0
                && value(text, "voiceai_backend_connect_failures_total", "") >= 1.0
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\ngateway:\n{}", call.gateway.output()));
    assert_eq!(value(&refused, "voiceai_backend_reconnects_total", ""), 0.0);
    // While the backend is away the caller's audio goes nowhere: counted as dropped.
    let dropped = scrape_until(&http, "caller audio dropped", WAIT, |text| {
        value(
            text,
            "voiceai_media_frames_dropped_total",
            "direction=\"in\"",
        ) > 0.0
    })
    .await
    .unwrap();

    // Back: the call reconnects (once) and the call goes on.
    call.bot.refuse_with(None);
    let conn = call.bot.wait_connection(1, WAIT).await.unwrap();
    conn.wait_start(WAIT).await.unwrap();
    let back = scrape_until(&http, "the reconnect", WAIT, |text| {
        value(text, "voiceai_backend_reconnects_total", "") == 1.0
    })
    .await
    .unwrap();
    assert_eq!(value(&back, "voiceai_active_calls", ""), 1.0, "{back}");
    assert_eq!(
        value(&back, "voiceai_backend_failovers_total", ""),
        0.0,
        "{back}"
    );
    let failures = value(&back, "voiceai_backend_connect_failures_total", "");

    conn.send(Action::Close(1000)).unwrap();
    if let Some(sipp) = call.sipp.take() {
        let status = sipp.wait(WAIT).await.unwrap();
        assert!(status.success(), "sipp exited {status}");
    }
    let after = scrape_until(&http, "the call's end", WAIT, |text| {
        value(text, "voiceai_active_calls", "") == 0.0
    })
    .await
    .unwrap();
    assert_eq!(
        value(
            &after,
            "voiceai_calls_ended_total",
            "reason=\"backend_closed\""
        ),
        1.0,
        "{after}"
    );
    eprintln!(
        "backend: 1 lost, {failures} refused attempts, 1 reconnect; {} caller frames dropped meanwhile",
        value(
            &dropped,
            "voiceai_media_frames_dropped_total",
            "direction=\"in\""
        )
    );
    call.gateway.sigterm().unwrap();
    let status = call.gateway.wait_exit(WAIT).await.unwrap();
    assert!(status.success(), "the gateway exited {status}");
}

#[tokio::test]
async fn a_backend_that_never_answers_counts_failures_and_one_failover() {
    let lab = Lab::get().await;
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    bot.refuse_with(Some(503));
    let app = ari_lab::unique_name("gw-metrics-fo");
    let url = bot.url("/bot");
    let args = [
        "--app",
        app.as_str(),
        "--backend-url",
        url.as_str(),
        "--backend-failover-after",
        "1s",
        "--fallback-endpoint",
        "Local/777@default",
        "--hold-music",
        "none",
    ];
    let mut gateway = Gateway::start(lab, &args, &[]);
    gateway.wait_ready(WAIT).await.unwrap();
    let http = Http::new(&gateway.base_url());
    let sipp = Sipp::call_with_audio(
        &UacCall {
            dialled: "8000".into(),
            caller: "815550107".into(),
            app,
        },
        &CallerAudio::tone(1000.0, Duration::from_secs(3)),
    )
    .unwrap();

    // Refused from the start: failed attempts, then the fallback after 1 s.
    let failed_over = scrape_until(&http, "the failover", WAIT, |text| {
        value(text, "voiceai_backend_failovers_total", "") == 1.0
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\ngateway:\n{}", gateway.output()));
    let failures = value(&failed_over, "voiceai_backend_connect_failures_total", "");
    assert!(
        failures >= 2.0,
        "retried with backoff for 1 s: {failed_over}"
    );
    assert_eq!(
        value(&failed_over, "voiceai_backend_reconnects_total", ""),
        0.0
    );
    assert_eq!(value(&failed_over, "voiceai_calls_answered_total", ""), 1.0);
    assert!(bot.connections().is_empty(), "the bot took no connection");

    // The caller talks to the fallback (an echo) until the API hangs the call up.
    let active = http.get("/api/calls/active").await.unwrap().json();
    let call_id = active["calls"][0]["callId"].as_str().unwrap().to_owned();
    let reply = http
        .post_json(
            &format!("/api/calls/{call_id}/disconnect"),
            &serde_json::json!({}),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(status.success(), "sipp exited {status}");
    let after = scrape_until(&http, "the call's end", WAIT, |text| {
        value(text, "voiceai_active_calls", "") == 0.0
    })
    .await
    .unwrap();
    assert_eq!(
        value(
            &after,
            "voiceai_calls_ended_total",
            "reason=\"hangup_requested\""
        ),
        1.0,
        "{after}"
    );
    assert_eq!(value(&after, "voiceai_backend_failovers_total", ""), 1.0);
    eprintln!("failover: {failures} refused attempts before the fallback took the call");
    gateway.sigterm().unwrap();
    let status = gateway.wait_exit(WAIT).await.unwrap();
    assert!(status.success(), "the gateway exited {status}");
}
