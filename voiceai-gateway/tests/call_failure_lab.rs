//! The gateway holds the call when things fail, on the lab: real SIPp calls (a 440 Hz tone
//! as the caller's RTP) through the gateway binary to the test bot.
//!
//! - the bot's socket reset mid-call: hold music, a fresh `start` on a new connection
//!   (same `callSid`, new `streamSid`), audio flows again, `backendConnects` 2;
//! - the bot never comes back: the call goes to `Local/777@default` (which echoes), or,
//!   with `--fallback-endpoint none`, is hung up cleanly;
//! - nothing listens at call start: the call is held until the bot listens;
//! - the bot closes normally: the caller is hung up;
//! - `--max-calls 1`: a second call goes back to the dialplan (`VOICEAI_REFUSED=max_calls`,
//!   the lab answers it busy) and the first is unaffected; calls arriving together never
//!   get past the maximum;
//! - SIGTERM with calls up: new calls are refused, the call is hung up after the drain
//!   time (or the gateway exits as soon as the last call ends), exit 0.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ari_lab::Lab;
use ari_lab::pcap::CallerAudio;
use ari_lab::rest::Rest;
use ari_lab::sipp::{Sipp, UacCall};
use ari_lab::tap::{Spy, Tap};
use common::WAIT;
use common::bot::{Action, Behaviour, Bot, Closed, Conn};
use common::gateway::Gateway;
use common::http::{Http, WsClient};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use voiceai_gateway::protocol::ProtocolKind;

/// How long the caller's tone lasts: longer than any call here (SIPp hangs up by itself
/// only after 60 s).
const CALLER_AUDIO: Duration = Duration::from_secs(40);
/// The caller's tone.
const CALLER_HZ: f64 = 440.0;
/// Frames that prove audio flows (half a second).
const SOME_FRAMES: usize = 25;

/// A gateway for one test, its API and a `/ws/monitor` client.
struct Run {
    lab: &'static Lab,
    app: String,
    gateway: Gateway,
    api: Http,
    monitor: Monitor,
}

async fn run_gateway(prefix: &str, backend_url: &str, extra: &[&str]) -> Run {
    let lab = Lab::get().await;
    let app = ari_lab::unique_name(prefix);
    let mut args = vec!["--app", app.as_str(), "--backend-url", backend_url];
    args.extend_from_slice(extra);
    let gateway = Gateway::start(lab, &args, &[]);
    gateway.wait_ready(WAIT).await.unwrap();
    let api = Http::new(&gateway.base_url());
    let monitor = Monitor::connect(&gateway).await;
    Run {
        lab,
        app,
        gateway,
        api,
        monitor,
    }
}

impl Run {
    /// A SIPp call from `caller` to 8000 into this gateway's app, playing the tone.
    fn call(&self, caller: &str) -> Sipp {
        Sipp::call_with_audio(
            &UacCall {
                dialled: "8000".into(),
                caller: caller.into(),
                app: self.app.clone(),
            },
            &CallerAudio::tone(CALLER_HZ, CALLER_AUDIO),
        )
        .expect("a SIPp caller")
    }

    /// The call from `caller` once the gateway has it: (call id, caller channel id).
    async fn call_started(&self, caller: &str) -> (String, String) {
        let started = self
            .monitor
            .wait("call_started", WAIT, |e| {
                e["type"] == "call_started" && e["callerNumber"] == caller
            })
            .await;
        (
            started["callId"].as_str().unwrap().to_owned(),
            started["channelId"].as_str().unwrap().to_owned(),
        )
    }

    /// `GET /api/calls/{id}`'s `call`.
    async fn call_info(&self, call_id: &str) -> Value {
        let reply = self
            .api
            .get(&format!("/api/calls/{call_id}"))
            .await
            .unwrap();
        assert_eq!(
            reply.status, 200,
            "GET /api/calls/{call_id}: {}",
            reply.text
        );
        reply.json()["call"].clone()
    }

    /// Polls `GET /api/calls/{id}` (every 50 ms, at most `within`) until `check` holds.
    async fn wait_call(
        &self,
        call_id: &str,
        what: &str,
        within: Duration,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let call = self.call_info(call_id).await;
            if check(&call) {
                return call;
            }
            assert!(
                Instant::now() < deadline,
                "call {call_id}: no {what} within {within:?}: {call}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `call_ended` event of `call_id`.
    async fn ended(&self, call_id: &str, within: Duration) -> Value {
        self.monitor
            .wait("call_ended", within, |e| {
                e["type"] == "call_ended" && e["callId"] == call_id
            })
            .await
    }

    /// Hangs the caller's channel up through ARI, as a caller hanging up does.
    async fn hang_up_caller(&self, channel_id: &str) {
        let reply = Rest::new(self.lab)
            .delete(&format!("/channels/{channel_id}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 204, "hanging up {channel_id}: {}", reply.text);
    }
}

/// Everything `/ws/monitor` sends, collected in the background.
struct Monitor {
    seen: Arc<Mutex<Vec<Value>>>,
    changed: watch::Receiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    async fn connect(gateway: &Gateway) -> Monitor {
        let mut client = WsClient::connect(&gateway.ws_url("/ws/monitor"), None)
            .await
            .unwrap();
        let hello = client.next_json(WAIT).await.unwrap();
        assert_eq!(hello["type"], "connected", "{hello}");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (changed_tx, changed) = watch::channel(0u64);
        let task = tokio::spawn({
            let seen = seen.clone();
            async move {
                // Reading also answers the server's pings.
                while let Ok(message) = client.next_json(Duration::from_secs(3600)).await {
                    seen.lock().unwrap().push(message);
                    changed_tx.send_modify(|n| *n += 1);
                }
            }
        });
        Monitor {
            seen,
            changed,
            task,
        }
    }

    /// The first message (so far or later) for which `check` holds.
    async fn wait(&self, what: &str, within: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        let mut changed = self.changed.clone();
        loop {
            if let Some(found) = self.seen.lock().unwrap().iter().find(|e| check(e)) {
                return found.clone();
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!("monitor: the socket ended without {what}: {:?}", self.log()),
                Err(_) => panic!("monitor: no {what} within {within:?}: {:?}", self.log()),
            }
        }
    }

    /// The `backend_state` states of `call_id`, in order.
    fn backend_states(&self, call_id: &str) -> Vec<String> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["type"] == "backend_state" && e["callId"] == call_id)
            .map(|e| e["state"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// Every message but the periodic ones, for failure messages.
    fn log(&self) -> Vec<Value> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["type"] != "stats" && e["type"] != "media_stats")
            .cloned()
            .collect()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits for the bot's next connection, its `start`, and some caller audio on it.
async fn connection_with_audio(bot: &Bot, within: Duration) -> (Conn, Value) {
    let conn = bot.wait_for_connection(within).await.unwrap();
    let start = conn.wait_start(WAIT).await.unwrap();
    conn.wait_frames(SOME_FRAMES, WAIT).await.unwrap();
    (conn, start)
}

/// The frequency share of the caller's own tone in `samples`.
fn caller_tone_share(samples: &[i16]) -> f64 {
    ari_lab::audio::tone_fraction(samples, 8000, CALLER_HZ)
}

/// What a caller heard, 200 ms at a time: each block's level, and the share of its power
/// at the caller's own tone (what the echoes send back). Block by block, because a whole
/// recording's single-frequency measure is phase-coherent: one frame lost or repeated
/// somewhere cancels it out.
struct Heard {
    /// (rms, tone share) of each whole block.
    blocks: Vec<(f64, f64)>,
}

/// The level (rms) above which a block's 440 Hz component is the caller's echoed tone:
/// the echo comes back at about 5700 (-15 dBFS); music on hold never has that much at
/// 440 Hz.
const ECHO_LEVEL: f64 = 2000.0;
/// The level above which what is not the echo is music, not codec noise (the echo alone
/// leaves about 60-140).
const MUSIC_LEVEL: f64 = 400.0;

impl Heard {
    fn of(wav: &ari_lab::audio::Wav) -> Heard {
        assert_eq!(wav.sample_rate, 8000);
        Heard {
            blocks: wav
                .samples
                .chunks_exact(1600)
                .map(|block| (ari_lab::audio::rms(block), caller_tone_share(block)))
                .collect(),
        }
    }

    /// The share of blocks that carry the caller's echoed tone.
    fn tone_blocks(&self) -> f64 {
        let toned = self
            .blocks
            .iter()
            .filter(|(rms, share)| rms * share.sqrt() > ECHO_LEVEL)
            .count();
        toned as f64 / self.blocks.len().max(1) as f64
    }

    /// The loudest block's level (music on hold fades in).
    fn peak(&self) -> f64 {
        self.blocks.iter().map(|(rms, _)| *rms).fold(0.0, f64::max)
    }

    /// The median level of everything but the caller's tone (music, noise).
    fn other(&self) -> f64 {
        let mut others: Vec<f64> = self
            .blocks
            .iter()
            .map(|(rms, share)| rms * (1.0 - share).max(0.0).sqrt())
            .collect();
        others.sort_by(f64::total_cmp);
        others.get(others.len() / 2).copied().unwrap_or(0.0)
    }
}

impl std::fmt::Display for Heard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "peak {:.0}, other {:.0}, tone in {:.0}% of blocks; blocks (rms/share):",
            self.peak(),
            self.other(),
            self.tone_blocks() * 100.0
        )?;
        for (rms, share) in &self.blocks {
            write!(f, " {rms:.0}/{share:.2}")?;
        }
        Ok(())
    }
}

#[tokio::test]
async fn a_backend_reset_mid_call_holds_the_caller_and_reconnects_with_a_fresh_start() {
    let mut bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let run = run_gateway(
        "fail-reset",
        &bot.url("/bot"),
        &["--backend-failover-after", "30s"],
    )
    .await;
    let sipp = run.call("+815011110001");
    let (call_id, channel_id) = run.call_started("+815011110001").await;
    let (first, first_start) = connection_with_audio(&bot, WAIT).await;
    assert_eq!(first_start["start"]["callSid"], call_id.as_str());

    // The bot crashes and stays away for a while: the caller hears hold music.
    bot.stop_listening().await;
    first.send(Action::Abort).unwrap();
    run.monitor
        .wait("backend_state reconnecting", WAIT, |e| {
            e["type"] == "backend_state" && e["callId"] == call_id && e["state"] == "reconnecting"
        })
        .await;
    let held = run
        .wait_call(&call_id, "on_hold", WAIT, |c| c["status"] == "on_hold")
        .await;
    assert_eq!(held["backendState"], "reconnecting", "{held}");
    let hold = Tap::start_for(run.lab, &channel_id, Spy::Out, 2)
        .await
        .unwrap()
        .finish(WAIT)
        .await
        .unwrap();
    let hold = Heard::of(&hold);
    eprintln!("on hold: {hold}");
    assert!(
        hold.peak() > 8.0 * ari_lab::audio::SILENCE_RMS,
        "the caller hears hold music, not silence: {hold}"
    );
    assert!(
        hold.tone_blocks() < 0.2,
        "on hold the caller no longer hears the bot's echo of its tone: {hold}"
    );
    assert_eq!(
        bot.connections().len(),
        1,
        "nothing could connect meanwhile"
    );

    // The bot is back: a new connection with a fresh opening, audio flows again.
    bot.listen_again().await;
    let (second, second_start) = connection_with_audio(&bot, WAIT).await;
    assert_eq!(
        &second.record().events()[..2],
        ["connected", "start"],
        "a fresh opening on the new socket"
    );
    assert_eq!(second_start["sequenceNumber"], "1");
    assert_eq!(second_start["start"]["callSid"], call_id.as_str());
    assert_ne!(
        second_start["start"]["streamSid"], first_start["start"]["streamSid"],
        "a new stream"
    );
    assert_eq!(
        second_start["streamSid"],
        second_start["start"]["streamSid"]
    );
    assert_eq!(first.record().closed, Some(Closed::ByBot));
    let call = run
        .wait_call(&call_id, "active again", WAIT, |c| c["status"] == "active")
        .await;
    assert_eq!(call["backendConnects"], 2, "{call}");
    assert_eq!(call["backendState"], "connected", "{call}");
    // The hold music stopped: the caller hears the echo of its own tone again.
    let back = Tap::start_for(run.lab, &channel_id, Spy::Out, 1)
        .await
        .unwrap()
        .finish(WAIT)
        .await
        .unwrap();
    let back = Heard::of(&back);
    eprintln!("after the reconnection: {back}");
    assert!(
        back.tone_blocks() > 0.7 && back.other() < MUSIC_LEVEL,
        "the caller hears the bot's echo again, and no music: {back}"
    );
    assert_eq!(
        run.monitor.backend_states(&call_id),
        ["connected", "reconnecting", "connected"]
    );

    run.hang_up_caller(&channel_id).await;
    assert!(sipp.wait(WAIT).await.unwrap().success());
    let ended = run.ended(&call_id, WAIT).await;
    assert_eq!(ended["reason"], "caller_hangup", "{ended}");
    let stop = second.wait_stop(WAIT).await.unwrap();
    assert_eq!(stop["streamSid"], second_start["start"]["streamSid"]);
    let call = run.call_info(&call_id).await;
    assert_eq!(call["endReason"], "caller_hangup", "{call}");
    assert_eq!(call["backendConnects"], 2, "{call}");
}

#[tokio::test]
async fn a_backend_that_never_returns_sends_the_call_to_the_fallback_which_answers() {
    let mut bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let run = run_gateway(
        "fail-over",
        &bot.url("/bot"),
        &[
            "--backend-failover-after",
            "2s",
            "--fallback-endpoint",
            "Local/777@default",
        ],
    )
    .await;
    let sipp = run.call("+815011110002");
    let (call_id, channel_id) = run.call_started("+815011110002").await;
    let (first, _) = connection_with_audio(&bot, WAIT).await;

    bot.stop_listening().await;
    let lost = Instant::now();
    first.send(Action::Abort).unwrap();
    run.gateway
        .wait_for_line("transfer answered", Duration::from_secs(15))
        .await
        .unwrap();
    let after = lost.elapsed();
    assert!(
        after >= Duration::from_millis(1900),
        "the failover waits --backend-failover-after (took {after:?})"
    );

    // The caller is bridged with the fallback's Local channel, not the media channel.
    let rest = Rest::new(run.lab);
    let bridge = rest
        .get(&format!("/bridges/vg-bridge-{call_id}"))
        .await
        .unwrap();
    assert_eq!(bridge.status, 200, "{}", bridge.text);
    let members: Vec<String> = bridge.json().unwrap()["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let target = format!("vg-xfer-{call_id}");
    assert_eq!(
        {
            let mut sorted = members.clone();
            sorted.sort();
            sorted
        },
        {
            let mut expected = vec![channel_id.clone(), target.clone()];
            expected.sort();
            expected
        },
        "the bridge holds the caller and the fallback"
    );
    let local = rest.get(&format!("/channels/{target}")).await.unwrap();
    assert_eq!(local.status, 200, "{}", local.text);
    let local = local.json().unwrap();
    assert!(
        local["name"]
            .as_str()
            .unwrap()
            .starts_with("Local/777@default"),
        "{local}"
    );
    assert_eq!(local["state"], "Up", "{local}");
    let call = run.call_info(&call_id).await;
    assert_eq!(call["status"], "transferring", "{call}");
    assert_eq!(call["backendState"], "failed_over", "{call}");
    // 777 echoes: the caller hears its own tone.
    let heard = Tap::start_for(run.lab, &channel_id, Spy::Out, 1)
        .await
        .unwrap()
        .finish(WAIT)
        .await
        .unwrap();
    let heard = Heard::of(&heard);
    eprintln!("bridged with 777: {heard}");
    assert!(
        heard.tone_blocks() > 0.7 && heard.other() < MUSIC_LEVEL,
        "777's echo reaches the caller, and no hold music: {heard}"
    );
    assert_eq!(bot.connections().len(), 1);

    run.hang_up_caller(&channel_id).await;
    assert!(sipp.wait(WAIT).await.unwrap().success());
    let ended = run.ended(&call_id, WAIT).await;
    assert_eq!(ended["reason"], "failed_over", "{ended}");
    let call = run.call_info(&call_id).await;
    assert_eq!(call["endReason"], "failed_over", "{call}");
    assert_eq!(call["backendState"], "failed_over", "{call}");
    assert_eq!(
        run.monitor.backend_states(&call_id),
        ["connected", "reconnecting", "failed_over"]
    );
    // The fallback's channel went with the caller.
    let gone = rest.get(&format!("/channels/{target}")).await.unwrap();
    assert_eq!(gone.status, 404, "the fallback is hung up: {}", gone.text);
}

#[tokio::test]
async fn without_a_fallback_a_backend_that_never_returns_hangs_the_call_up() {
    let mut bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let run = run_gateway(
        "fail-none",
        &bot.url("/bot"),
        &[
            "--backend-failover-after",
            "2s",
            "--fallback-endpoint",
            "none",
        ],
    )
    .await;
    let sipp = run.call("+815011110003");
    let (call_id, _) = run.call_started("+815011110003").await;
    let (first, _) = connection_with_audio(&bot, WAIT).await;

    bot.stop_listening().await;
    let lost = Instant::now();
    first.send(Action::Abort).unwrap();
    let status = sipp.wait(Duration::from_secs(15)).await.unwrap();
    let after = lost.elapsed();
    assert!(status.success(), "the caller got a BYE and answered it");
    assert!(
        after >= Duration::from_millis(1900),
        "held for --backend-failover-after first (hung up after {after:?})"
    );
    let ended = run.ended(&call_id, WAIT).await;
    assert_eq!(ended["reason"], "backend_unavailable", "{ended}");
    let call = run.call_info(&call_id).await;
    assert_eq!(call["endReason"], "backend_unavailable", "{call}");
    assert_eq!(call["backendConnects"], 1, "{call}");
    assert_eq!(
        run.monitor.backend_states(&call_id)[..2],
        ["connected", "reconnecting"]
    );
    assert_eq!(bot.connections().len(), 1);
}

#[tokio::test]
async fn a_backend_unreachable_at_call_start_holds_the_call_until_it_listens() {
    let mut bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    // Nothing listens on the bot's port when the call arrives.
    bot.stop_listening().await;
    let run = run_gateway(
        "fail-late",
        &bot.url("/late"),
        &["--backend-failover-after", "20s"],
    )
    .await;
    let sipp = run.call("+815011110004");
    let (call_id, channel_id) = run.call_started("+815011110004").await;
    run.monitor
        .wait("backend_state reconnecting", WAIT, |e| {
            e["type"] == "backend_state" && e["callId"] == call_id && e["state"] == "reconnecting"
        })
        .await;
    let held = run
        .wait_call(&call_id, "on_hold", WAIT, |c| c["status"] == "on_hold")
        .await;
    assert_eq!(held["backendConnects"], 0, "{held}");
    let music = Tap::start_for(run.lab, &channel_id, Spy::Out, 2)
        .await
        .unwrap()
        .finish(WAIT)
        .await
        .unwrap();
    let music = Heard::of(&music);
    eprintln!("waiting for the bot: {music}");
    assert!(
        music.peak() > 8.0 * ari_lab::audio::SILENCE_RMS && music.tone_blocks() < 0.2,
        "the waiting caller hears hold music: {music}"
    );

    bot.listen_again().await;
    let (conn, start) = connection_with_audio(&bot, WAIT).await;
    assert_eq!(start["start"]["callSid"], call_id.as_str());
    assert_eq!(conn.record().path, "/late");
    let call = run
        .wait_call(&call_id, "active", WAIT, |c| c["status"] == "active")
        .await;
    assert_eq!(call["backendConnects"], 1, "{call}");
    assert_eq!(call["backendState"], "connected", "{call}");
    assert_eq!(
        run.monitor.backend_states(&call_id),
        ["reconnecting", "connected"]
    );

    run.hang_up_caller(&channel_id).await;
    assert!(sipp.wait(WAIT).await.unwrap().success());
    assert_eq!(run.ended(&call_id, WAIT).await["reason"], "caller_hangup");
    conn.wait_stop(WAIT).await.unwrap();
}

/// What the gateway did after a bot closed the conversation itself.
struct CloseSeen {
    /// The `start` the bot got.
    start: Value,
    /// The `event`s of the text messages after the bot's close frame.
    after_close: Vec<String>,
    /// The gateway's answering close frame.
    reply: Option<(u16, String)>,
    /// How long after the bot's close frame the answer came.
    reply_after: Duration,
    /// How long after the bot's close frame the connection ended.
    ended_after: Duration,
}

/// A bot on `listener` that takes one connection, lets `frames` media messages arrive,
/// sends a close frame (1000), and records what comes after it.
async fn closing_bot(listener: TcpListener, frames: usize) -> CloseSeen {
    let (stream, _) = listener.accept().await.unwrap();
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let mut start = Value::Null;
    let mut media = 0;
    while media < frames {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("the gateway's messages")
            .expect("an open socket")
            .unwrap();
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(text.as_str()).unwrap();
            match value["event"].as_str() {
                Some("start") => start = value,
                Some("media") => media += 1,
                _ => {}
            }
        }
    }
    let closed = Instant::now();
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "goodbye".into(),
    })))
    .await
    .unwrap();
    let mut after_close = Vec::new();
    let mut reply = None;
    let mut reply_after = Duration::MAX;
    let read_all = async {
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    after_close.push(value["event"].as_str().unwrap_or("?").to_owned());
                }
                Message::Close(frame) => {
                    reply_after = closed.elapsed();
                    reply = Some(frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    }));
                }
                _ => {}
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read_all).await;
    CloseSeen {
        start,
        after_close,
        reply,
        reply_after,
        ended_after: closed.elapsed(),
    }
}

#[tokio::test]
async fn a_backend_that_closes_normally_ends_the_call() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let bot = tokio::spawn(closing_bot(listener, 50));
    let run = run_gateway("fail-close", &url, &[]).await;
    let sipp = run.call("+815011110005");
    let (call_id, _) = run.call_started("+815011110005").await;
    let seen = tokio::time::timeout(Duration::from_secs(20), bot)
        .await
        .expect("the bot's conversation ends")
        .unwrap();
    let hung_up = Instant::now();
    eprintln!(
        "after the bot's close: {:?}, reply {:?} after {:?}, ended after {:?}",
        seen.after_close, seen.reply, seen.reply_after, seen.ended_after
    );
    assert_eq!(seen.start["start"]["callSid"], call_id.as_str());
    // The gateway answers the close at once and sends nothing but audio in flight: no
    // `stop` (the socket is closing), nothing after its close frame.
    assert_eq!(
        seen.reply.as_ref().map(|r| r.0),
        Some(1000),
        "close answered with 1000"
    );
    assert!(
        seen.reply_after < Duration::from_secs(1),
        "the close answered within 1 s ({:?})",
        seen.reply_after
    );
    assert!(
        seen.ended_after < Duration::from_secs(3),
        "the connection ends after the close handshake ({:?})",
        seen.ended_after
    );
    assert!(
        seen.after_close.iter().all(|e| e == "media"),
        "only audio already in flight after the bot's close: {:?}",
        seen.after_close
    );
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(status.success(), "the caller got a BYE");
    assert!(
        hung_up.elapsed() < Duration::from_secs(3),
        "the caller is hung up right after the bot's close"
    );
    let ended = run.ended(&call_id, WAIT).await;
    assert_eq!(ended["reason"], "backend_closed", "{ended}");
    let call = run.call_info(&call_id).await;
    assert_eq!(call["endReason"], "backend_closed", "{call}");
    assert_eq!(
        call["backendConnects"], 1,
        "no reconnection after a normal close"
    );
    assert_eq!(
        run.monitor.backend_states(&call_id),
        ["connected", "closed"]
    );
}

/// Checks that the SIPp call `sipp` was refused: the gateway logged the refusal with
/// `reason` (what it sets in `VOICEAI_REFUSED`, looking at lines from `from` on), and the
/// caller got the lab dialplan's answer to a refused call, `Hangup(17)`: 486 Busy Here.
async fn refused(run: &Run, from: usize, sipp: Sipp, reason: &str) {
    let line = run
        .gateway
        .wait_for_line_from(from, "call refused", WAIT)
        .await
        .unwrap();
    assert!(line.contains(&format!("reason=\"{reason}\"")), "{line}");
    let deadline = Instant::now() + WAIT;
    // SIPp writes the unexpected answer to its error log as it comes.
    while !sipp.errors().contains("486 Busy Here") {
        assert!(
            Instant::now() < deadline,
            "the refused caller got no 486 within {WAIT:?}: {}",
            sipp.errors()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(
        !status.success(),
        "the refused call failed (486 instead of 200)"
    );
}

#[tokio::test]
async fn at_max_calls_a_second_call_goes_back_to_the_dialplan_and_the_first_is_unaffected() {
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let run = run_gateway("fail-max", &bot.url("/"), &["--max-calls", "1"]).await;
    let first_caller = "+815011110061".to_owned();
    let second_caller = "+815011110062".to_owned();
    let third_caller = "+815011110063".to_owned();
    let first = run.call(&first_caller);
    let (first_id, first_channel) = run.call_started(&first_caller).await;
    let (conn, _) = connection_with_audio(&bot, WAIT).await;

    let from = run.gateway.line_count();
    let second = run.call(&second_caller);
    refused(&run, from, second, "max_calls").await;

    // The first call goes on as before.
    let frames = conn.frames();
    conn.wait_frames(frames + SOME_FRAMES, WAIT).await.unwrap();
    assert!(conn.record().stop.is_none());
    assert!(conn.record().closed.is_none());
    assert_eq!(
        bot.connections().len(),
        1,
        "the refused call reached no bot"
    );
    let active = run.api.get("/api/calls/active").await.unwrap().json();
    assert_eq!(active["count"], 1, "{active}");
    assert_eq!(active["calls"][0]["callId"], first_id.as_str());
    assert_eq!(active["calls"][0]["status"], "active");
    assert!(
        run.monitor
            .log()
            .iter()
            .all(|e| e["callerNumber"] != second_caller.as_str()),
        "the refused call is not a call of the gateway"
    );

    // Once it is over, there is room again.
    run.hang_up_caller(&first_channel).await;
    assert!(first.wait(WAIT).await.unwrap().success());
    assert_eq!(run.ended(&first_id, WAIT).await["reason"], "caller_hangup");
    let third = run.call(&third_caller);
    let (third_id, third_channel) = run.call_started(&third_caller).await;
    let (conn, start) = connection_with_audio(&bot, WAIT).await;
    assert_eq!(start["start"]["callSid"], third_id.as_str());
    run.hang_up_caller(&third_channel).await;
    assert!(third.wait(WAIT).await.unwrap().success());
    conn.wait_stop(WAIT).await.unwrap();
    assert_eq!(run.ended(&third_id, WAIT).await["reason"], "caller_hangup");
}

#[tokio::test]
async fn sigterm_refuses_new_calls_and_hangs_up_the_rest_after_the_drain_timeout() {
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let drain = Duration::from_secs(3);
    let mut run = run_gateway("fail-drain", &bot.url("/"), &["--drain-timeout", "3s"]).await;
    let first_caller = "+815011110071".to_owned();
    let second_caller = "+815011110072".to_owned();
    let first = run.call(&first_caller);
    let (call_id, _) = run.call_started(&first_caller).await;
    let (conn, _) = connection_with_audio(&bot, WAIT).await;

    let signalled = Instant::now();
    run.gateway.sigterm().unwrap();
    run.gateway
        .wait_for_line("draining: no new calls", WAIT)
        .await
        .unwrap();
    let ready = run.api.get("/ready").await.unwrap();
    assert_eq!(
        ready.status, 503,
        "not ready while draining: {}",
        ready.text
    );
    assert_eq!(ready.json()["acceptingCalls"], false);
    let from = run.gateway.line_count();
    let second = run.call(&second_caller);
    refused(&run, from, second, "draining").await;
    assert!(
        signalled.elapsed() < drain,
        "the refusal came within the drain time; otherwise this test proves nothing"
    );
    // The call up is still going.
    let frames = conn.frames();
    conn.wait_frames(frames + 10, WAIT).await.unwrap();
    assert!(conn.record().stop.is_none());

    // After the drain time it is hung up, with a `stop` to the bot, and the process exits.
    let stop = conn.wait_stop(drain + WAIT).await.unwrap();
    let stopped_after = signalled.elapsed();
    assert!(
        stopped_after >= drain - Duration::from_millis(100),
        "the call was given the drain time ({stopped_after:?})"
    );
    assert_eq!(stop["event"], "stop");
    assert!(
        first.wait(WAIT).await.unwrap().success(),
        "the caller got a BYE"
    );
    let ended = run.ended(&call_id, WAIT).await;
    assert_eq!(ended["reason"], "shutdown", "{ended}");
    let status = run.gateway.wait_exit(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", run.gateway.output());
    assert!(
        signalled.elapsed() < drain + Duration::from_secs(8),
        "exit in bounded time ({:?})",
        signalled.elapsed()
    );
}

#[tokio::test]
async fn sigterm_exits_as_soon_as_the_last_call_ends_by_itself() {
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let mut run = run_gateway("fail-drain-end", &bot.url("/"), &["--drain-timeout", "30s"]).await;
    let sipp = run.call("+815011110008");
    let (call_id, _) = run.call_started("+815011110008").await;
    let (conn, _) = connection_with_audio(&bot, WAIT).await;

    let signalled = Instant::now();
    run.gateway.sigterm().unwrap();
    run.gateway
        .wait_for_line("draining: no new calls", WAIT)
        .await
        .unwrap();
    // The bot ends the conversation: the last call is over.
    conn.send(Action::Close(1000)).unwrap();
    assert!(sipp.wait(WAIT).await.unwrap().success());
    let call_over = Instant::now();
    assert_eq!(run.ended(&call_id, WAIT).await["reason"], "backend_closed");
    let status = run.gateway.wait_exit(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(0), "{}", run.gateway.output());
    let after = call_over.elapsed();
    assert!(
        after < Duration::from_secs(3),
        "the gateway exits right after the last call ended ({after:?} later)"
    );
    assert!(signalled.elapsed() < Duration::from_secs(15));
    assert!(
        run.gateway
            .lines()
            .iter()
            .all(|l| !l.contains("drain time over")),
        "the drain did not time out"
    );
}

#[tokio::test]
async fn calls_arriving_together_never_exceed_max_calls() {
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let run = run_gateway("fail-burst", &bot.url("/"), &["--max-calls", "1"]).await;
    // Calls straight into the gateway's app (ARI originate), all at once, so that their
    // StasisStarts reach the gateway together.
    let rest = Rest::new(run.lab);
    let count = 8;
    let ids: Vec<String> = (0..count)
        .map(|n| ari_lab::unique_name(&format!("fail-burst-{n}")))
        .collect();
    let originates = ids.iter().enumerate().map(|(n, id)| {
        let rest = rest.clone();
        let path = format!(
            "/channels?endpoint=Local/answer@lab&app={}&appArgs=8000,%2B81509999000{n}&channelId={id}",
            run.app
        );
        async move { rest.post(&path).await.unwrap() }
    });
    for reply in futures::future::join_all(originates).await {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    // Each call is either taken or refused.
    let deadline = Instant::now() + WAIT;
    let (taken, refused) = loop {
        let lines = run.gateway.lines();
        let taken = lines.iter().filter(|l| l.contains("call started")).count();
        let refused = lines.iter().filter(|l| l.contains("call refused")).count();
        if taken + refused >= count || Instant::now() > deadline {
            break (taken, refused);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for id in &ids {
        let _ = rest.delete(&format!("/channels/{id}")).await;
    }
    // The taken calls tear down before the gateway goes.
    for started in run
        .monitor
        .log()
        .iter()
        .filter(|e| e["type"] == "call_started")
    {
        run.ended(started["callId"].as_str().unwrap(), WAIT).await;
    }
    assert_eq!(
        (taken, refused),
        (1, count - 1),
        "--max-calls 1: one call taken, the others refused"
    );
}
