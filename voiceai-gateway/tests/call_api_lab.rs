//! The REST API, the Twilio-compatible call-control endpoint and the event WebSockets of
//! the real gateway binary (with `--auth-token`), on real SIPp calls through the lab's
//! Asterisk, with the test bot as the AI backend:
//!
//! - a call shows in `GET /api/calls/active` and `GET /api/calls/{id}` with the seed's
//!   fields as SIPp sent them plus media, backend state and frames; `/health`, `/ready` and
//!   `GET /api/asterisk/status` tell the real connection;
//! - `disconnect` hangs the real call up (SIPp gets its BYE);
//! - `transfer` to `Local/777@default` removes the AI leg (the bot gets `stop`, the media
//!   channel leaves Asterisk) and bridges the caller with the target (the caller hears its
//!   own tone echoed); the API ends the transferred call;
//! - `originate` through the lab's trunk runs the AI flow outbound; a busy number ends
//!   `not_answered`;
//! - the Twilio endpoint ends (`Status=completed`) and transfers (`<Dial>`) real calls
//!   with the bot's own account SID and the auth token;
//! - without or with a wrong token: 401; bad bodies and injection attempts: 4xx with a
//!   clear message, and no call placed, no channel created;
//! - `/ws/frontend` and `/ws/monitor` see a real call's events in order, `join_call`
//!   brings `media_stats`, the monitor's `stats` come every second, the bot's transcript
//!   is forwarded.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use ari_lab::Lab;
use ari_lab::pcap::CallerAudio;
use ari_lab::rest::Rest;
use ari_lab::sipp::{Sipp, UacCall};
use ari_lab::tap::{Spy, Tap};
use bytes::Bytes;
use common::WAIT;
use common::bot::{Action, Behaviour, Bot, Conn};
use common::gateway::Gateway;
use common::http::{Http, Reply, WsClient, basic_auth};
use serde_json::{Value, json};
use tokio::time::Instant;
use voiceai_gateway::protocol::ProtocolKind;

/// The API's bearer token in these tests.
const TOKEN: &str = "lab-api-token-5f2c9d";
/// How often a REST state is polled while waiting for it.
const POLL: Duration = Duration::from_millis(100);
/// The gateway's default Twilio account SID (what the bot's `start` carries).
const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

/// One gateway with its own Stasis app and bot, and clients of its API and of ARI.
struct Rig {
    lab: &'static Lab,
    app: String,
    bot: Bot,
    gateway: Gateway,
    /// The API with the token.
    api: Http,
    /// The API without a token.
    anonymous: Http,
    ari: Rest,
}

impl Rig {
    /// Starts the bot (Twilio protocol, `behaviour`) and the gateway (`--auth-token`,
    /// `extra` arguments), and waits until the gateway is ready.
    async fn start(prefix: &str, behaviour: Behaviour, extra: &[&str]) -> Rig {
        let lab = Lab::get().await;
        let app = ari_lab::unique_name(prefix);
        let bot = Bot::start(ProtocolKind::Twilio, behaviour).await;
        let url = bot.url("/bot");
        let mut args = vec![
            "--app",
            app.as_str(),
            "--backend-url",
            url.as_str(),
            "--auth-token",
            TOKEN,
        ];
        args.extend_from_slice(extra);
        let gateway = Gateway::start(lab, &args, &[]);
        gateway
            .wait_ready(Duration::from_secs(30))
            .await
            .unwrap_or_else(|error| panic!("the gateway is not ready: {error}"));
        let anonymous = Http::new(&gateway.base_url());
        Rig {
            lab,
            app,
            bot,
            api: anonymous.with_token(TOKEN),
            anonymous,
            gateway,
            ari: Rest::new(lab),
        }
    }

    /// A SIPp call into this gateway's app from `caller` to `dialled`, playing `audio`
    /// (SIPp's own speech sample when `None`).
    fn call(&self, caller: &str, dialled: &str, audio: Option<&CallerAudio>) -> Sipp {
        let call = UacCall {
            dialled: dialled.to_owned(),
            caller: caller.to_owned(),
            app: self.app.clone(),
        };
        match audio {
            Some(audio) => Sipp::call_with_audio(&call, audio),
            None => Sipp::call(&call),
        }
        .unwrap_or_else(|error| panic!("cannot start SIPp: {error}"))
    }

    /// Places a call and waits until the bot has its `start` and `frames` inbound frames,
    /// and the API lists it as active with its backend connected. Returns the SIPp
    /// process, the bot's connection, the `start` message and the call as listed.
    async fn answered_call(
        &self,
        caller: &str,
        dialled: &str,
        audio: Option<&CallerAudio>,
        frames: usize,
    ) -> (Sipp, Conn, Value, Value) {
        let sipp = self.call(caller, dialled, audio);
        let conn = self
            .bot
            .wait_for_connection(WAIT)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "{error}; SIPp: {}; gateway:\n{}",
                    sipp.errors(),
                    self.gateway.output()
                )
            });
        let start = conn.wait_start(WAIT).await.unwrap();
        conn.wait_frames(frames, WAIT).await.unwrap();
        let call_id = start["start"]["callSid"].as_str().unwrap().to_owned();
        let call = call_until(&self.api, &call_id, "active, backend connected", |call| {
            call["status"] == "active" && call["backendState"] == "connected"
        })
        .await;
        (sipp, conn, start, call)
    }

    /// The ids of the channels the gateway's app is subscribed to (ARI
    /// `GET /applications/{app}`).
    async fn app_channels(&self) -> BTreeSet<String> {
        let reply = self
            .ari
            .get(&format!("/applications/{}", self.app))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
        strings(&reply.json().unwrap()["channel_ids"])
    }
}

/// A number no other call of this run uses: `prefix` and 8 digits.
fn number(prefix: &str) -> String {
    format!("{prefix}{:08}", fastrand::u32(..100_000_000))
}

fn strings(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// `GET path` with a JSON answer; panics unless it is `status`.
async fn get_json(api: &Http, path: &str, status: u16) -> Value {
    let reply = api.get(path).await.unwrap();
    assert_eq!(reply.status, status, "GET {path}: {}", reply.text);
    assert_json(&reply);
    reply.json()
}

/// `POST path` with a JSON body; panics unless it is `status`.
async fn post_json(api: &Http, path: &str, body: &Value, status: u16) -> Value {
    let reply = api.post_json(path, body).await.unwrap();
    assert_eq!(reply.status, status, "POST {path} {body}: {}", reply.text);
    assert_json(&reply);
    reply.json()
}

fn assert_json(reply: &Reply) {
    let content_type = reply.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("application/json"),
        "content-type {content_type:?}: {}",
        reply.text
    );
    assert!(!reply.json().is_null(), "not JSON: {}", reply.text);
}

/// Polls `GET /api/calls/{id}` until `check` holds for the call; returns it.
async fn call_until(
    api: &Http,
    call_id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = api.get(&format!("/api/calls/{call_id}")).await.unwrap();
        let call = reply.json()["call"].clone();
        if reply.status == 200 && check(&call) {
            return call;
        }
        assert!(
            Instant::now() < deadline,
            "call {call_id} not {what} within {WAIT:?}: {} {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The ids of every channel Asterisk has (ARI `GET /channels`).
async fn channel_ids(ari: &Rest) -> BTreeSet<String> {
    let reply = ari.get("/channels").await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
        .json()
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|channel| channel["id"].as_str().map(str::to_owned))
        .collect()
}

/// Polls ARI `GET /channels` until none of `ids` is there.
/// Waits (within `WAIT`) until Asterisk lists the channel `id`.
async fn until_channel_present(ari: &Rest, id: &str) {
    let deadline = Instant::now() + WAIT;
    while !channel_ids(ari).await.contains(id) {
        assert!(
            Instant::now() < deadline,
            "channel {id} not in Asterisk after {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn until_channels_gone(ari: &Rest, ids: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let present = channel_ids(ari).await;
        let left: Vec<&&str> = ids.iter().filter(|id| present.contains(**id)).collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "channels {left:?} still in Asterisk after {WAIT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// Polls ARI `GET /bridges/{id}` until its channels are exactly `expected`.
async fn until_bridge_holds(ari: &Rest, bridge: &str, expected: &[&str]) {
    let expected: BTreeSet<String> = expected.iter().map(|id| (*id).to_owned()).collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = ari.get(&format!("/bridges/{bridge}")).await.unwrap();
        let channels = reply
            .json()
            .map(|b| strings(&b["channels"]))
            .unwrap_or_default();
        if reply.status == 200 && channels == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "bridge {bridge} does not hold {expected:?} within {WAIT:?}: {} {}",
            reply.status,
            reply.text
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The SIPp caller got a BYE and ended: without one it waits 60 s for it.
async fn sipp_got_bye(sipp: Sipp) {
    let status = sipp
        .wait(WAIT)
        .await
        .unwrap_or_else(|error| panic!("SIPp got no BYE: {error}"));
    assert!(status.success(), "SIPp ended with {status}");
}

fn seconds_of(stamp: &Value) -> SystemTime {
    humantime::parse_rfc3339(stamp.as_str().unwrap_or(""))
        .unwrap_or_else(|error| panic!("not an RFC 3339 time: {stamp}: {error}"))
}

/// The index of the first message of `type` (and matching `check`) in `seen`.
fn index_of(seen: &[Value], kind: &str, check: impl Fn(&Value) -> bool) -> usize {
    seen.iter()
        .position(|m| m["type"] == kind && check(m))
        .unwrap_or_else(|| panic!("no {kind} among {seen:#?}"))
}

#[tokio::test]
async fn a_real_call_shows_in_the_rest_api_and_disconnect_hangs_it_up() {
    let rig = Rig::start("gw-rest", Behaviour::echo(), &[]).await;

    // The real connection, before any call.
    let health = get_json(&rig.anonymous, "/health", 200).await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["asterisk"]["connected"], true, "{health}");
    assert_eq!(health["activeCalls"], 0, "{health}");
    seconds_of(&health["timestamp"]);
    let ready = get_json(&rig.anonymous, "/ready", 200).await;
    assert_eq!(ready["acceptingCalls"], true, "{ready}");
    let status = get_json(&rig.api, "/api/asterisk/status", 200).await;
    assert_eq!(status["status"], "success", "{status}");
    assert_eq!(status["connected"], true, "{status}");
    let (host, port) = rig.lab.authority().rsplit_once(':').unwrap();
    assert_eq!(status["host"], host, "{status}");
    assert_eq!(status["ariPort"], port.parse::<u16>().unwrap(), "{status}");
    assert_eq!(status["appName"], rig.app.as_str(), "{status}");
    let version = status["asteriskVersion"].as_str().unwrap_or("");
    assert!(version.starts_with("22"), "asteriskVersion {version:?}");
    let empty = get_json(&rig.api, "/api/calls/active", 200).await;
    assert_eq!(empty, json!({"status": "success", "calls": [], "count": 0}));

    let caller = number("+8190");
    let dialled = number("03");
    let (sipp, conn, start, _) = rig.answered_call(&caller, &dialled, None, 50).await;
    let call_id = start["start"]["callSid"].as_str().unwrap().to_owned();
    assert!(
        call_id.starts_with("CA") && call_id.len() == 34,
        "{call_id}"
    );

    // Frames both ways: SIPp's speech in, the bot's echo out.
    let deadline = Instant::now() + WAIT;
    let listed = loop {
        let active = get_json(&rig.api, "/api/calls/active", 200).await;
        let call = active["calls"][0].clone();
        if call["framesIn"].as_u64() >= Some(50) && call["framesOut"].as_u64() >= Some(25) {
            assert_eq!(active["status"], "success");
            assert_eq!(active["count"], 1, "{active}");
            assert_eq!(active["calls"].as_array().unwrap().len(), 1, "{active}");
            break call;
        }
        assert!(Instant::now() < deadline, "frames do not flow: {active}");
        tokio::time::sleep(POLL).await;
    };
    assert_eq!(listed["callId"], call_id.as_str(), "{listed}");
    assert_eq!(listed["callerNumber"], caller.as_str(), "{listed}");
    assert_eq!(listed["calledNumber"], dialled.as_str(), "{listed}");
    assert_eq!(listed["status"], "active", "{listed}");
    assert_eq!(listed["direction"], "inbound", "{listed}");
    assert_eq!(listed["media"], "websocket", "{listed}");
    assert_eq!(listed["backendState"], "connected", "{listed}");
    assert_eq!(listed["backendConnects"], 1, "{listed}");
    assert!(listed["duration"].is_u64(), "{listed}");
    let started = seconds_of(&listed["startTime"]);
    let age = SystemTime::now()
        .duration_since(started)
        .unwrap_or_default();
    assert!(age < Duration::from_secs(30), "startTime {started:?}");
    assert!(listed.get("endReason").is_none(), "{listed}");
    let channel_id = listed["channelId"].as_str().unwrap().to_owned();
    assert_eq!(
        start["start"]["customParameters"]["channel_id"],
        channel_id.as_str()
    );

    // The caller's channel is the real one: a PJSIP channel from SIPp's number.
    let channel = rig
        .ari
        .get(&format!("/channels/{channel_id}"))
        .await
        .unwrap();
    assert_eq!(channel.status, 200, "{}", channel.text);
    let channel = channel.json().unwrap();
    assert!(
        channel["name"].as_str().unwrap().starts_with("PJSIP/"),
        "{channel}"
    );
    assert_eq!(channel["caller"]["number"], caller.as_str(), "{channel}");
    let media = format!("vg-media-{call_id}");
    assert!(channel_ids(&rig.ari).await.contains(&media));

    let one = get_json(&rig.api, &format!("/api/calls/{call_id}"), 200).await;
    assert_eq!(one["status"], "success");
    assert_eq!(one["call"]["callId"], call_id.as_str());
    assert_eq!(one["call"]["channelId"], channel_id.as_str());
    assert!(one["call"]["framesIn"].as_u64() >= listed["framesIn"].as_u64());
    let health = get_json(&rig.anonymous, "/health", 200).await;
    assert_eq!(health["activeCalls"], 1, "{health}");
    let unknown = get_json(
        &rig.api,
        "/api/calls/CA0123456789abcdef0123456789abcdef",
        404,
    )
    .await;
    assert_eq!(unknown["status"], "error");
    assert!(unknown["message"].as_str().unwrap().contains("no call"));

    // Disconnect: SIPp gets its BYE, the bot its stop, the call ends with the reason.
    let path = format!("/api/calls/{call_id}/disconnect");
    let reply = post_json(&rig.api, &path, &json!({}), 200).await;
    assert_eq!(reply["status"], "success", "{reply}");
    assert_eq!(reply["callId"], call_id.as_str(), "{reply}");
    sipp_got_bye(sipp).await;
    conn.wait_stop(WAIT).await.unwrap();
    let ended = call_until(&rig.api, &call_id, "ended", |c| c["status"] == "ended").await;
    assert_eq!(ended["endReason"], "hangup_requested", "{ended}");
    assert_eq!(ended["backendState"], "closed", "{ended}");
    assert!(seconds_of(&ended["endTime"]) >= started, "{ended}");
    assert!(ended["duration"].as_u64() >= Some(1), "{ended}");
    until_channels_gone(&rig.ari, &[&channel_id, &media]).await;
    let active = get_json(&rig.api, "/api/calls/active", 200).await;
    assert_eq!(active["count"], 0, "{active}");
    let again = post_json(&rig.api, &path, &json!({}), 409).await;
    assert_eq!(again["status"], "error");
    assert!(
        again["message"].as_str().unwrap().contains("ended"),
        "{again}"
    );
    assert_eq!(rig.bot.connections().len(), 1);
}

#[tokio::test]
async fn transfer_moves_the_real_caller_to_local_777_and_the_api_ends_it() {
    // A silent bot: whatever the caller hears back after the transfer is the target's.
    let rig = Rig::start("gw-xfer", Behaviour::silent(), &[]).await;
    let tone = CallerAudio::tone(1000.0, Duration::from_secs(30));
    let (sipp, conn, start, call) = rig
        .answered_call(&number("+8180"), &number("050"), Some(&tone), 25)
        .await;
    let call_id = start["start"]["callSid"].as_str().unwrap().to_owned();
    let channel_id = call["channelId"].as_str().unwrap().to_owned();
    let media = format!("vg-media-{call_id}");
    let target = format!("vg-xfer-{call_id}");
    let bridge = format!("vg-bridge-{call_id}");
    until_bridge_holds(&rig.ari, &bridge, &[&channel_id, &media]).await;

    let reply = post_json(
        &rig.api,
        &format!("/api/calls/{call_id}/transfer"),
        &json!({"endpoint": "Local/777@default"}),
        200,
    )
    .await;
    assert_eq!(reply["status"], "success", "{reply}");
    assert_eq!(reply["endpoint"], "Local/777@default", "{reply}");

    // The AI leg is removed: the bot gets stop, the media channel leaves Asterisk, and
    // the caller is bridged with the target.
    conn.wait_stop(WAIT).await.unwrap();
    assert!(conn.wait_closed(WAIT).await.is_ok());
    until_channels_gone(&rig.ari, &[&media]).await;
    until_bridge_holds(&rig.ari, &bridge, &[&channel_id, &target]).await;
    let transferred = call_until(&rig.api, &call_id, "transferring", |c| {
        c["status"] == "transferring"
    })
    .await;
    assert_eq!(transferred["backendState"], "closed", "{transferred}");
    let again = post_json(
        &rig.api,
        &format!("/api/calls/{call_id}/transfer"),
        &json!({"endpoint": "Local/777@default"}),
        409,
    )
    .await;
    assert!(
        again["message"].as_str().unwrap().contains("transferred"),
        "{again}"
    );

    // 777 answers with Echo(): the caller hears its own 1000 Hz tone.
    let tap = Tap::start_for(rig.lab, &channel_id, Spy::Out, 2)
        .await
        .unwrap();
    let heard = tap.finish(WAIT).await.unwrap();
    let hz = ari_lab::audio::detect_tone(&heard.samples, heard.sample_rate);
    assert!(
        hz.is_some_and(|hz| (hz - 1000.0).abs() < 10.0),
        "the caller hears {hz:?} Hz ({:?} of audio), expected its own 1000 Hz back",
        heard.duration()
    );

    // The API ends the transferred call: both legs go.
    let reply = post_json(
        &rig.api,
        &format!("/api/calls/{call_id}/disconnect"),
        &json!({}),
        200,
    )
    .await;
    assert_eq!(reply["status"], "success", "{reply}");
    sipp_got_bye(sipp).await;
    let ended = call_until(&rig.api, &call_id, "ended", |c| c["status"] == "ended").await;
    assert_eq!(ended["endReason"], "hangup_requested", "{ended}");
    until_channels_gone(&rig.ari, &[&channel_id, &target]).await;
    assert_eq!(
        rig.bot.connections().len(),
        1,
        "no second backend connection"
    );
}

#[tokio::test]
async fn originate_through_the_trunk_runs_the_ai_flow_and_a_busy_number_is_not_answered() {
    // The bot speaks first; the lab's carrier echoes it back.
    let behaviour = Behaviour::silent().on_start([Action::tone(700.0, Duration::from_secs(4))]);
    let rig = Rig::start("gw-orig", behaviour, &[]).await;
    let to = number("1");
    let from = number("03");
    let placed = post_json(
        &rig.api,
        "/api/calls/originate",
        &json!({"phoneNumber": to, "callerId": from}),
        200,
    )
    .await;
    assert_eq!(placed["status"], "success", "{placed}");
    assert_eq!(placed["message"], "Call originated", "{placed}");
    assert_eq!(placed["phoneNumber"], to.as_str(), "{placed}");
    let call_id = placed["callId"].as_str().unwrap().to_owned();
    let channel_id = placed["channelId"].as_str().unwrap().to_owned();

    // Answered by the carrier, then the AI flow: the bot's start names the number.
    let conn = rig.bot.wait_for_connection(WAIT).await.unwrap();
    let start = conn.wait_start(WAIT).await.unwrap();
    assert_eq!(start["start"]["callSid"], call_id.as_str(), "{start}");
    let parameters = &start["start"]["customParameters"];
    assert_eq!(parameters["to_number"], to.as_str(), "{start}");
    assert_eq!(parameters["from_number"], from.as_str(), "{start}");
    let call = call_until(&rig.api, &call_id, "active", |c| {
        c["status"] == "active" && c["backendState"] == "connected"
    })
    .await;
    assert_eq!(call["direction"], "outbound", "{call}");
    assert_eq!(call["calledNumber"], to.as_str(), "{call}");
    assert_eq!(call["callerNumber"], from.as_str(), "{call}");
    assert_eq!(call["channelId"], channel_id.as_str(), "{call}");
    assert!(call["answerTime"].is_string(), "{call}");
    let active = get_json(&rig.api, "/api/calls/active", 200).await;
    assert_eq!(active["calls"][0]["direction"], "outbound", "{active}");
    let channel = rig
        .ari
        .get(&format!("/channels/{channel_id}"))
        .await
        .unwrap();
    assert_eq!(channel.status, 200, "{}", channel.text);
    let name = channel.json().unwrap()["name"].as_str().unwrap().to_owned();
    assert!(name.starts_with("PJSIP/trunk-"), "{name}");

    // Two-way audio: the bot hears its own tone back from the far end.
    conn.wait_frames(100, WAIT).await.unwrap();
    let hz = conn.inbound_tone(Duration::from_secs(1));
    assert!(
        hz.is_some_and(|hz| (hz - 700.0).abs() < 10.0),
        "the bot hears {hz:?} Hz, expected its 700 Hz echoed"
    );

    post_json(
        &rig.api,
        &format!("/api/calls/{call_id}/disconnect"),
        &json!({}),
        200,
    )
    .await;
    conn.wait_stop(WAIT).await.unwrap();
    let ended = call_until(&rig.api, &call_id, "ended", |c| c["status"] == "ended").await;
    assert_eq!(ended["endReason"], "hangup_requested", "{ended}");
    until_channels_gone(&rig.ari, &[&channel_id, &format!("vg-media-{call_id}")]).await;

    // A busy number (486): placed, never answered, no backend connection.
    let busy = number("2");
    let placed = post_json(
        &rig.api,
        "/api/calls/originate",
        &json!({"phoneNumber": busy}),
        200,
    )
    .await;
    let busy_id = placed["callId"].as_str().unwrap().to_owned();
    let busy_channel = placed["channelId"].as_str().unwrap().to_owned();
    let ended = call_until(&rig.api, &busy_id, "ended", |c| c["status"] == "ended").await;
    let reason = ended["endReason"].as_str().unwrap_or("");
    assert!(reason.starts_with("not_answered"), "{ended}");
    assert_eq!(ended["direction"], "outbound", "{ended}");
    assert_eq!(ended["calledNumber"], busy.as_str(), "{ended}");
    assert!(ended.get("answerTime").is_none(), "{ended}");
    until_channels_gone(&rig.ari, &[&busy_channel]).await;
    assert_eq!(
        rig.bot.connections().len(),
        1,
        "the busy call reached the bot"
    );

    // A number that rings forever: listed as ringing, not transferable yet, and the API
    // cancels it.
    let ringing = number("3");
    let placed = post_json(
        &rig.api,
        "/api/calls/originate",
        &json!({"phoneNumber": ringing}),
        200,
    )
    .await;
    let ringing_id = placed["callId"].as_str().unwrap().to_owned();
    let ringing_channel = placed["channelId"].as_str().unwrap().to_owned();
    let call = call_until(&rig.api, &ringing_id, "ringing", |c| {
        c["status"] == "ringing"
    })
    .await;
    assert!(call.get("answerTime").is_none(), "{call}");
    let early = post_json(
        &rig.api,
        &format!("/api/calls/{ringing_id}/transfer"),
        &json!({"endpoint": "Local/777@default"}),
        409,
    )
    .await;
    assert!(
        early["message"].as_str().unwrap().contains("not answered"),
        "{early}"
    );
    let still = get_json(&rig.api, &format!("/api/calls/{ringing_id}"), 200).await;
    assert_eq!(still["call"]["status"], "ringing", "{still}");
    assert!(channel_ids(&rig.ari).await.contains(&ringing_channel));
    post_json(
        &rig.api,
        &format!("/api/calls/{ringing_id}/disconnect"),
        &json!({}),
        200,
    )
    .await;
    let ended = call_until(&rig.api, &ringing_id, "ended", |c| c["status"] == "ended").await;
    assert_eq!(ended["endReason"], "cancelled", "{ended}");
    until_channels_gone(&rig.ari, &[&ringing_channel]).await;
    assert_eq!(
        rig.bot.connections().len(),
        1,
        "the cancelled call reached the bot"
    );
    let active = get_json(&rig.api, "/api/calls/active", 200).await;
    assert_eq!(active["count"], 0, "{active}");
}

#[tokio::test]
async fn the_twilio_endpoint_ends_and_transfers_real_calls_as_pipecat_does() {
    let rig = Rig::start("gw-twilio", Behaviour::echo(), &[]).await;
    let (sipp, conn, start, call) = rig
        .answered_call(&number("+8170"), &number("06"), None, 25)
        .await;
    // What Pipecat takes from the start message.
    let account_sid = start["start"]["accountSid"].as_str().unwrap().to_owned();
    let call_sid = start["start"]["callSid"].as_str().unwrap().to_owned();
    assert_eq!(account_sid, ACCOUNT_SID);
    let path = format!("/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json");
    let auth = basic_auth(&account_sid, TOKEN);
    let completed = [("Status", "completed")];

    // Refused without auth, with a wrong password, a wrong account or an unknown call.
    let reply = rig
        .anonymous
        .post_form(&path, &completed, &[])
        .await
        .unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text);
    assert_eq!(reply.json()["code"], 20003, "{}", reply.text);
    let wrong = basic_auth(&account_sid, "not-the-token");
    let reply = rig
        .anonymous
        .post_form(&path, &completed, &[("authorization", &wrong)])
        .await
        .unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text);
    let other_account = format!(
        "/2010-04-01/Accounts/AC{}/Calls/{call_sid}.json",
        "1".repeat(32)
    );
    let reply = rig
        .anonymous
        .post_form(&other_account, &completed, &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.json()["code"], 20404, "{}", reply.text);
    let unknown = format!(
        "/2010-04-01/Accounts/{account_sid}/Calls/CA{}.json",
        "0".repeat(32)
    );
    let reply = rig
        .anonymous
        .post_form(&unknown, &completed, &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.json()["code"], 20404, "{}", reply.text);
    let still = get_json(&rig.api, &format!("/api/calls/{call_sid}"), 200).await;
    assert_eq!(
        still["call"]["status"], "active",
        "refused requests changed the call"
    );

    // Status=completed with the bot's account SID and the auth token: hung up.
    let reply = rig
        .anonymous
        .post_form(&path, &completed, &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    let resource = reply.json();
    assert_eq!(resource["sid"], call_sid.as_str(), "{resource}");
    assert_eq!(resource["account_sid"], account_sid.as_str(), "{resource}");
    assert_eq!(resource["status"], "completed", "{resource}");
    sipp_got_bye(sipp).await;
    conn.wait_stop(WAIT).await.unwrap();
    let ended = call_until(&rig.api, &call_sid, "ended", |c| c["status"] == "ended").await;
    assert_eq!(ended["endReason"], "hangup_requested", "{ended}");
    until_channels_gone(&rig.ari, &[call["channelId"].as_str().unwrap()]).await;

    // Again, on the ended call: Twilio's "already completed" answer.
    let reply = rig
        .anonymous
        .post_form(&path, &completed, &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["status"], "completed", "{}", reply.text);
    let reply = rig
        .anonymous
        .send("GET", &path, &[("authorization", &auth)], Bytes::new())
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["status"], "completed", "{}", reply.text);

    // A second call, transferred by TwiML <Dial>.
    let (sipp, conn, start, call) = rig
        .answered_call(&number("+8170"), &number("06"), None, 25)
        .await;
    let call_sid = start["start"]["callSid"].as_str().unwrap().to_owned();
    let channel_id = call["channelId"].as_str().unwrap().to_owned();
    let path = format!("/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json");
    let twiml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                 <Response><Dial>Local/777@default</Dial></Response>";
    let reply = rig
        .anonymous
        .post_form(&path, &[("Twiml", twiml)], &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.json()["status"], "in-progress", "{}", reply.text);
    conn.wait_stop(WAIT).await.unwrap();
    let media = format!("vg-media-{call_sid}");
    let target = format!("vg-xfer-{call_sid}");
    until_channels_gone(&rig.ari, &[&media]).await;
    until_bridge_holds(
        &rig.ari,
        &format!("vg-bridge-{call_sid}"),
        &[&channel_id, &target],
    )
    .await;
    call_until(&rig.api, &call_sid, "transferring", |c| {
        c["status"] == "transferring"
    })
    .await;
    let reply = rig
        .anonymous
        .post_form(&path, &[("Twiml", twiml)], &[("authorization", &auth)])
        .await
        .unwrap();
    assert_eq!(reply.status, 400, "redirected twice: {}", reply.text);
    assert_eq!(reply.json()["code"], 21220, "{}", reply.text);

    // The caller's side hangs up: the target goes too, the call ends transferred.
    let hangup = rig
        .ari
        .delete(&format!("/channels/{channel_id}"))
        .await
        .unwrap();
    assert_eq!(hangup.status, 204, "{}", hangup.text);
    sipp_got_bye(sipp).await;
    let ended = call_until(&rig.api, &call_sid, "ended", |c| c["status"] == "ended").await;
    assert_eq!(ended["endReason"], "transferred", "{ended}");
    until_channels_gone(&rig.ari, &[&channel_id, &target]).await;
    assert_eq!(rig.bot.connections().len(), 2);
}

#[tokio::test]
async fn the_twilio_auth_token_replaces_the_api_token_for_basic_auth() {
    let rig = Rig::start(
        "gw-twtok",
        Behaviour::silent(),
        &["--twilio-auth-token", "twilio-only-7d1e"],
    )
    .await;
    let path = format!(
        "/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA{}.json",
        "0".repeat(32)
    );
    let with = |password: &str| basic_auth(ACCOUNT_SID, password);
    let reply = rig
        .anonymous
        .post_form(
            &path,
            &[("Status", "completed")],
            &[("authorization", &with(TOKEN))],
        )
        .await
        .unwrap();
    assert_eq!(
        reply.status, 401,
        "the API token still opens the Twilio endpoint: {}",
        reply.text
    );
    let reply = rig
        .anonymous
        .post_form(
            &path,
            &[("Status", "completed")],
            &[("authorization", &with("twilio-only-7d1e"))],
        )
        .await
        .unwrap();
    // Past auth: the call is unknown.
    assert_eq!(reply.status, 404, "{}", reply.text);
    assert_eq!(reply.json()["code"], 20404, "{}", reply.text);
    // And the Twilio password is not a bearer token of the API.
    let reply = rig
        .anonymous
        .with_token("twilio-only-7d1e")
        .get("/api/calls/active")
        .await
        .unwrap();
    assert_eq!(reply.status, 401, "{}", reply.text);
}

#[tokio::test]
async fn auth_and_bad_input_are_refused_on_the_real_gateway_and_place_nothing() {
    let rig = Rig::start("gw-auth", Behaviour::silent(), &[]).await;

    // No token, a wrong token: 401 JSON; /health and /ready need none.
    let wrong = rig.anonymous.with_token("wrong-token");
    for api in [&rig.anonymous, &wrong] {
        for path in ["/api/calls/active", "/api/asterisk/status"] {
            let reply = get_json(api, path, 401).await;
            assert_eq!(reply["status"], "error", "{reply}");
            assert!(
                reply["message"].as_str().unwrap().contains("token"),
                "{reply}"
            );
        }
        let reply = post_json(
            api,
            "/api/calls/originate",
            &json!({"phoneNumber": number("1")}),
            401,
        )
        .await;
        assert_eq!(reply["status"], "error", "{reply}");
    }
    assert_eq!(
        rig.anonymous
            .get("/api/calls/active")
            .await
            .unwrap()
            .header("www-authenticate"),
        Some("Bearer")
    );
    get_json(&rig.anonymous, "/health", 200).await;
    get_json(&rig.anonymous, "/ready", 200).await;
    for url in [
        rig.gateway.ws_url("/ws/frontend"),
        rig.gateway.ws_url("/ws/monitor?token=wrong-token"),
    ] {
        let refused = WsClient::connect(&url, None).await;
        let error = refused.err().unwrap_or_else(|| panic!("{url} accepted"));
        assert!(error.contains("401"), "{url}: {error}");
    }

    // A real call up, to try bad transfers on.
    let (sipp, conn, start, call) = rig
        .answered_call(&number("+8160"), &number("045"), None, 10)
        .await;
    let call_id = start["start"]["callSid"].as_str().unwrap().to_owned();
    let channel_id = call["channelId"].as_str().unwrap().to_owned();
    let app_channels = rig.app_channels().await;
    assert_eq!(
        app_channels,
        BTreeSet::from([channel_id.clone(), format!("vg-media-{call_id}")]),
    );

    // Originate: each attempt carries a caller id no real call has, so a channel placed
    // by mistake would show it.
    let marker = number("99");
    let long = "1".repeat(100);
    let bodies = [
        (
            json!({"phoneNumber": "1&PJSIP/evil", "callerId": marker}),
            "phoneNumber",
        ),
        (
            json!({"phoneNumber": "1,t", "callerId": marker}),
            "phoneNumber",
        ),
        (
            json!({"phoneNumber": "PJSIP/evil@trunk", "callerId": marker}),
            "phoneNumber",
        ),
        (
            json!({"phoneNumber": "1555\r\nX-Evil: 1", "callerId": marker}),
            "phoneNumber",
        ),
        (
            json!({"phoneNumber": "15550100\u{0}", "callerId": marker}),
            "phoneNumber",
        ),
        (
            json!({"phoneNumber": long, "callerId": marker}),
            "phoneNumber",
        ),
        (
            json!({"phoneNumber": "", "callerId": marker}),
            "phoneNumber",
        ),
        (
            json!({"phoneNumber": "15550100", "callerId": format!("{marker}\u{7}")}),
            "callerId",
        ),
        (
            json!({"phoneNumber": "15550100", "callerId": marker, "variables": {"A": "x\u{0}"}}),
            "variables",
        ),
        (
            json!({"phoneNumber": "15550100", "callerId": marker, "variables": {"A)(B": "x"}}),
            "variables",
        ),
        (
            json!({"phone": "15550100", "callerId": marker}),
            "phoneNumber",
        ),
        (
            json!({"phoneNumber": 15550100, "callerId": marker}),
            "invalid",
        ),
    ];
    for (body, names) in &bodies {
        let reply = post_json(&rig.api, "/api/calls/originate", body, 400).await;
        assert_eq!(reply["status"], "error", "{body}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(
            message.contains(names),
            "{body}: {message:?} does not name {names}"
        );
    }
    let raw = |body: &str, content_type: &str| {
        let api = rig.api.clone();
        let body = Bytes::from(body.to_owned());
        let content_type = content_type.to_owned();
        async move {
            api.send(
                "POST",
                "/api/calls/originate",
                &[("content-type", &content_type)],
                body,
            )
            .await
            .unwrap()
        }
    };
    let reply = raw("{\"phoneNumber\": \"1555", "application/json").await;
    assert_eq!(reply.status, 400, "{}", reply.text);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("malformed JSON"),
        "{}",
        reply.text
    );
    let reply = raw(
        &json!({"phoneNumber": "15550100"}).to_string(),
        "text/plain",
    )
    .await;
    assert_eq!(reply.status, 415, "{}", reply.text);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("application/json"),
        "{}",
        reply.text
    );
    let padding = "1".repeat(70 * 1024);
    let oversized = json!({"phoneNumber": "15550100", "callerId": marker, "pad": padding});
    let reply = raw(&oversized.to_string(), "application/json").await;
    assert_eq!(reply.status, 413, "{}", reply.text);
    assert!(
        reply.json()["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{}",
        reply.text
    );

    // Transfer: injections into the endpoint of the real call.
    let transfer = format!("/api/calls/{call_id}/transfer");
    for endpoint in [
        "Local/777@default,t",
        "Local/777@default&PJSIP/evil",
        "Local/777@default\n",
        "Local/777@default\u{0}",
        "Local/777@default/n",
        "Local/777@@default",
        "Evil/777",
        "Local/777 @default",
        "",
    ] {
        let reply = post_json(&rig.api, &transfer, &json!({"endpoint": endpoint}), 400).await;
        assert_eq!(reply["status"], "error", "{endpoint:?}: {reply}");
        let message = reply["message"].as_str().unwrap();
        assert!(message.contains("endpoint"), "{endpoint:?}: {message:?}");
    }
    let reply = post_json(
        &wrong,
        &transfer,
        &json!({"endpoint": "Local/777@default"}),
        401,
    )
    .await;
    assert_eq!(reply["status"], "error");
    let reply = post_json(
        &rig.api,
        "/api/calls/CA0123456789abcdef0123456789abcdef/transfer",
        &json!({"endpoint": "Local/777@default"}),
        404,
    )
    .await;
    assert_eq!(reply["status"], "error");

    // Nothing changed: the one call, still talking to the bot, the same channels, and no
    // channel anywhere with the marker or for a transfer of this call.
    let active = get_json(&rig.api, "/api/calls/active", 200).await;
    assert_eq!(active["count"], 1, "{active}");
    assert_eq!(active["calls"][0]["callId"], call_id.as_str());
    assert_eq!(active["calls"][0]["status"], "active", "{active}");
    assert_eq!(rig.app_channels().await, app_channels);
    let channels = rig.ari.get("/channels").await.unwrap().json().unwrap();
    for channel in channels.as_array().unwrap() {
        assert_ne!(
            channel["caller"]["number"],
            marker.as_str(),
            "placed: {channel}"
        );
        assert_ne!(
            channel["id"],
            format!("vg-xfer-{call_id}").as_str(),
            "{channel}"
        );
    }
    assert!(conn.record().stop.is_none(), "the bot was stopped");
    assert_eq!(rig.bot.connections().len(), 1);

    // A valid transfer to a target that rings and never answers, hung up by the API while
    // it rings: the caller and the ringing target both go.
    let target = format!("vg-xfer-{call_id}");
    post_json(
        &rig.api,
        &transfer,
        &json!({"endpoint": "Local/noanswer@lab"}),
        200,
    )
    .await;
    conn.wait_stop(WAIT).await.unwrap();
    call_until(&rig.api, &call_id, "transferring", |c| {
        c["status"] == "transferring"
    })
    .await;
    // The status turns transferring as the target's originate is sent.
    until_channel_present(&rig.ari, &target).await;
    post_json(
        &rig.api,
        &format!("/api/calls/{call_id}/disconnect"),
        &json!({}),
        200,
    )
    .await;
    sipp_got_bye(sipp).await;
    let ended = call_until(&rig.api, &call_id, "ended", |c| c["status"] == "ended").await;
    assert_eq!(ended["endReason"], "hangup_requested", "{ended}");
    until_channels_gone(&rig.ari, &[&channel_id, &target]).await;
}

#[tokio::test]
async fn the_event_sockets_see_a_real_call_in_order() {
    let behaviour = Behaviour::echo().on_dtmf([Action::transcript("bot", "ご用件をどうぞ")]);
    let rig = Rig::start("gw-ws", behaviour, &[]).await;
    let url = |path: &str| rig.gateway.ws_url(&format!("{path}?token={TOKEN}"));
    let mut frontend = WsClient::connect(&url("/ws/frontend"), None).await.unwrap();
    let mut monitor = WsClient::connect(&url("/ws/monitor"), None).await.unwrap();
    for (socket, client) in [(&mut frontend, "frontend"), (&mut monitor, "monitor")] {
        let hello = socket.next_json(WAIT).await.unwrap();
        assert_eq!(hello["type"], "connected", "{hello}");
        assert_eq!(hello["client"], client, "{hello}");
        assert_eq!(hello["activeCalls"], json!([]), "{hello}");
    }

    let caller = number("+8140");
    let dialled = number("011");
    let audio = CallerAudio::tone(440.0, Duration::from_secs(20)).dtmf(Duration::from_secs(2), '7');
    let (sipp, conn, start, _) = rig.answered_call(&caller, &dialled, Some(&audio), 10).await;
    let call_id = start["start"]["callSid"].as_str().unwrap().to_owned();
    let ours = |m: &Value| m["callId"] == call_id.as_str();

    // Up to the transcript the bot sends after the digit.
    let mut seen = frontend
        .wait_for(WAIT, |m| m["type"] == "transcript")
        .await
        .unwrap();
    assert_eq!(conn.wait_dtmf(1, WAIT).await.unwrap(), "7");
    frontend
        .send_json(&json!({"type": "join_call", "callId": call_id}))
        .await
        .unwrap();
    let joined = seen.len();
    seen.extend(
        frontend
            .wait_for(WAIT, |m| m["type"] == "ack")
            .await
            .unwrap(),
    );
    let ack = seen.last().unwrap().clone();
    assert_eq!(ack["action"], "join_call", "{ack}");
    assert_eq!(ack["callId"], call_id.as_str(), "{ack}");
    assert_eq!(ack["known"], true, "{ack}");
    // Two media_stats a second apart, frames in rising.
    let mut stats = Vec::new();
    while stats.len() < 2 {
        let more = frontend
            .wait_for(WAIT, |m| m["type"] == "media_stats")
            .await
            .unwrap();
        stats.push(more.last().unwrap().clone());
        seen.extend(more);
    }
    for media in &stats {
        assert!(ours(media), "{media}");
        assert_eq!(media["backendState"], "connected", "{media}");
    }
    let (first, second) = (stats[0]["framesIn"].as_u64(), stats[1]["framesIn"].as_u64());
    assert!(
        first >= Some(1) && second > first,
        "framesIn {first:?} then {second:?}"
    );

    post_json(
        &rig.api,
        &format!("/api/calls/{call_id}/disconnect"),
        &json!({}),
        200,
    )
    .await;
    seen.extend(
        frontend
            .wait_for(WAIT, |m| m["type"] == "call_ended")
            .await
            .unwrap(),
    );
    sipp_got_bye(sipp).await;

    // The frontend: the call's events in order; no detail before join_call, no stats.
    let started = index_of(&seen, "call_started", ours);
    let answered = index_of(&seen, "call_answered", ours);
    let connected = index_of(&seen, "backend_state", |m| {
        ours(m) && m["state"] == "connected"
    });
    let dtmf = index_of(&seen, "dtmf", |m| ours(m) && m["digit"] == "7");
    let transcript = index_of(&seen, "transcript", ours);
    let ended = index_of(&seen, "call_ended", ours);
    assert!(
        started < answered && answered < connected && answered < dtmf,
        "out of order: {seen:#?}"
    );
    assert!(
        dtmf < transcript && transcript < ended && connected < ended,
        "{seen:#?}"
    );
    let call_started = &seen[started];
    assert_eq!(
        call_started["channelId"],
        start["start"]["customParameters"]["channel_id"]
    );
    assert_eq!(
        call_started["callerNumber"],
        caller.as_str(),
        "{call_started}"
    );
    assert_eq!(
        call_started["calledNumber"],
        dialled.as_str(),
        "{call_started}"
    );
    seconds_of(&call_started["timestamp"]);
    assert_eq!(
        seen[transcript]["data"],
        json!({"event": "transcript", "speaker": "bot", "text": "ご用件をどうぞ"})
    );
    assert_eq!(seen[ended]["reason"], "hangup_requested", "{}", seen[ended]);
    assert!(
        seen[ended]["duration"].as_u64() >= Some(1),
        "{}",
        seen[ended]
    );
    assert!(
        !seen[..joined].iter().any(|m| m["type"] == "media_stats"),
        "media_stats before join_call: {seen:#?}"
    );
    assert!(
        !seen.iter().any(|m| m["type"] == "stats"),
        "stats on the frontend"
    );

    // The monitor: the same events in the same order, media stats without joining, and
    // the gateway's stats every second, counting the call while it is up.
    let mut watched = monitor
        .wait_for(WAIT, |m| m["type"] == "call_ended" && ours(m))
        .await
        .unwrap();
    watched.extend(
        monitor
            .wait_for(WAIT, |m| m["type"] == "stats" && m["activeCalls"] == 0)
            .await
            .unwrap(),
    );
    let order: Vec<usize> = [
        index_of(&watched, "call_started", ours),
        index_of(&watched, "call_answered", ours),
        index_of(&watched, "backend_state", |m| {
            ours(m) && m["state"] == "connected"
        }),
        index_of(&watched, "call_ended", ours),
    ]
    .into();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "{order:?}: {watched:#?}"
    );
    index_of(&watched, "dtmf", |m| ours(m) && m["digit"] == "7");
    index_of(&watched, "transcript", ours);
    index_of(&watched, "media_stats", ours);
    let during: Vec<&Value> = watched[order[1]..order[3]]
        .iter()
        .filter(|m| m["type"] == "stats")
        .collect();
    assert!(during.len() >= 2, "stats while the call was up: {during:?}");
    for stats in &during {
        assert_eq!(stats["activeCalls"], 1, "{stats}");
        assert!(stats["callsPerMinute"].as_u64() >= Some(1), "{stats}");
    }
    for pair in during.windows(2) {
        let gap = seconds_of(&pair[1]["timestamp"])
            .duration_since(seconds_of(&pair[0]["timestamp"]))
            .unwrap_or_default();
        assert!(
            gap >= Duration::from_millis(700) && gap <= Duration::from_millis(2000),
            "stats {gap:?} apart"
        );
    }
}
