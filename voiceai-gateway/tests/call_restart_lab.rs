//! Asterisk killed (SIGKILL, as a crash: no channel ends cleanly) in the middle of a call
//! through the gateway binary, then started again: the call ends with a recorded reason,
//! `/health` says `degraded` (503) while ARI is down, and once Asterisk is back the next
//! call works without restarting the gateway. It needs the shared Asterisk alone
//! (`ari_lab::Lab::alone`) and root (the lab script does).

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ari_lab::Lab;
use ari_lab::pcap::CallerAudio;
use ari_lab::rest::Rest;
use ari_lab::sipp::{Sipp, UacCall};
use common::WAIT;
use common::bot::{Behaviour, Bot, Conn};
use common::gateway::Gateway;
use common::http::{Http, Reply};
use serde_json::Value;
use voiceai_gateway::protocol::ProtocolKind;

/// How long `lab start` may take.
const LAB_START: Duration = Duration::from_secs(60);
/// How long the gateway may take to notice ARI's return (its reconnect backoff).
const ARI_BACK: Duration = Duration::from_secs(30);

fn lab_script() -> PathBuf {
    ari_lab::workspace_root().join("asterisk_conf/lab")
}

/// Starts the lab again if the test ends (e.g. fails) while Asterisk is down, so that the
/// tests after this one find it running.
struct Revive {
    needed: bool,
}

impl Drop for Revive {
    fn drop(&mut self) {
        if self.needed {
            let _ = std::process::Command::new(lab_script())
                .arg("start")
                .status();
        }
    }
}

fn call(app: &str, caller: &str) -> Sipp {
    Sipp::call_with_audio(
        &UacCall {
            dialled: "8000".into(),
            caller: caller.into(),
            app: app.into(),
        },
        &CallerAudio::tone(440.0, Duration::from_secs(40)),
    )
    .expect("a SIPp caller")
}

async fn connection_with_audio(bot: &Bot) -> (Conn, Value) {
    let conn = bot.wait_for_connection(WAIT).await.unwrap();
    let start = conn.wait_start(WAIT).await.unwrap();
    conn.wait_frames(25, WAIT).await.unwrap();
    (conn, start)
}

/// Polls `GET path` (every 100 ms, at most `within`) until `check` holds.
async fn poll(api: &Http, path: &str, within: Duration, check: impl Fn(&Reply) -> bool) -> Reply {
    let deadline = Instant::now() + within;
    loop {
        let reply = api.get(path).await.unwrap();
        if check(&reply) {
            return reply;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path}: not as expected within {within:?}: {} {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A gateway with its own bot and a call up through it.
struct Side {
    app: String,
    bot: Bot,
    gateway: Gateway,
    api: Http,
    caller: Option<Sipp>,
    conn: Conn,
    call_path: String,
}

impl Side {
    async fn with_a_call(lab: &Lab, media: &str, caller: &str) -> Side {
        let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
        let app = ari_lab::unique_name(&format!("restart-{media}"));
        let backend = bot.url("/");
        let gateway = Gateway::start(
            lab,
            &["--app", &app, "--backend-url", &backend, "--media", media],
            &[],
        );
        gateway.wait_ready(WAIT).await.unwrap();
        let api = Http::new(&gateway.base_url());
        let health = api.get("/health").await.unwrap();
        assert_eq!(health.status, 200, "{}", health.text);
        let sipp = call(&app, caller);
        let (conn, start) = connection_with_audio(&bot).await;
        let call_path = format!("/api/calls/{}", start["start"]["callSid"].as_str().unwrap());
        let up = api.get(&call_path).await.unwrap().json();
        assert_eq!(up["call"]["status"], "active", "{up}");
        Side {
            app,
            bot,
            gateway,
            api,
            caller: Some(sipp),
            conn,
            call_path,
        }
    }

    /// The call's end reason, once it has ended (within `within`).
    async fn end_reason(&self, within: Duration) -> String {
        let ended = poll(&self.api, &self.call_path, within, |r| {
            r.json()["call"]["status"] == "ended"
        })
        .await;
        ended.json()["call"]["endReason"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// A new call through the same gateway process works end to end.
    async fn next_call_works(&mut self, lab: &Lab, caller: &str) {
        poll(&self.api, "/ready", WAIT, |r| r.status == 200).await;
        let sipp = call(&self.app, caller);
        let (conn, start) = connection_with_audio(&self.bot).await;
        let path = format!("/api/calls/{}", start["start"]["callSid"].as_str().unwrap());
        assert_ne!(path, self.call_path);
        let up = self.api.get(&path).await.unwrap().json();
        assert_eq!(up["call"]["status"], "active", "{up}");
        let channel = up["call"]["channelId"].as_str().unwrap().to_owned();
        let hangup = Rest::new(lab)
            .delete(&format!("/channels/{channel}"))
            .await
            .unwrap();
        assert_eq!(hangup.status, 204, "{}", hangup.text);
        assert!(sipp.wait(WAIT).await.unwrap().success());
        conn.wait_stop(WAIT).await.unwrap();
        let ended = poll(&self.api, &path, WAIT, |r| {
            r.json()["call"]["status"] == "ended"
        })
        .await;
        assert_eq!(ended.json()["call"]["endReason"], "caller_hangup");
    }
}

/// What a call may end with when Asterisk vanishes under it.
const RESTART_REASONS: [&str; 3] = ["media_ended", "channel_gone", "caller_hangup"];

#[tokio::test]
async fn asterisk_restarted_mid_call_ends_the_calls_with_a_reason_and_the_next_call_works() {
    let lab: &Lab = Lab::alone().await;
    // chan_websocket's TCP connection dies with Asterisk; RTP (UDP) does not notice, so
    // that call can only end through ARI's resync once Asterisk is back.
    let mut websocket = Side::with_a_call(lab, "websocket", "+815022220001").await;
    let mut rtp = Side::with_a_call(lab, "rtp", "+815022220002").await;

    let mut revive = Revive { needed: true };
    let killed = tokio::process::Command::new(lab_script())
        .args(["stop", "--kill"])
        .status()
        .await
        .unwrap();
    assert!(killed.success(), "lab stop --kill");

    for side in [&websocket, &rtp] {
        // ARI is gone: /health and /ready say so.
        let degraded = poll(&side.api, "/health", WAIT, |r| r.status == 503).await;
        let body = degraded.json();
        assert_eq!(body["status"], "degraded", "{body}");
        assert_eq!(body["asterisk"]["connected"], false, "{body}");
        let ready = side.api.get("/ready").await.unwrap();
        assert_eq!(ready.status, 503, "{}", ready.text);
    }
    // The websocket call is over at once, with a reason, and its bot was told.
    let reason = websocket.end_reason(WAIT).await;
    assert!(
        RESTART_REASONS.contains(&reason.as_str()),
        "the websocket call ends with the reason of what happened, got {reason:?}"
    );
    websocket.conn.wait_stop(WAIT).await.unwrap();
    let active = websocket.api.get("/api/calls/active").await.unwrap().json();
    assert_eq!(active["count"], 0, "{active}");

    let started = tokio::time::timeout(
        LAB_START,
        tokio::process::Command::new(lab_script())
            .arg("start")
            .status(),
    )
    .await
    .expect("the lab starts within 60 s")
    .unwrap();
    assert!(started.success(), "lab start");
    revive.needed = false;

    for side in [&websocket, &rtp] {
        // The same gateway process is connected again.
        let healthy = poll(&side.api, "/health", ARI_BACK, |r| r.status == 200).await;
        assert_eq!(healthy.json()["status"], "ok");
        side.gateway
            .wait_for_line("ARI is back", WAIT)
            .await
            .unwrap();
    }
    // The RTP call's channels are gone from the new Asterisk: the resync ends it.
    let reason = rtp.end_reason(WAIT).await;
    assert!(
        RESTART_REASONS.contains(&reason.as_str()),
        "the RTP call ends with the reason of what happened, got {reason:?}"
    );
    rtp.conn.wait_stop(WAIT).await.unwrap();
    // Asterisk never hangs these callers up now; their SIPp processes are killed.
    websocket.caller.take();
    rtp.caller.take();

    websocket.next_call_works(lab, "+815022220003").await;
    rtp.next_call_works(lab, "+815022220004").await;
}
