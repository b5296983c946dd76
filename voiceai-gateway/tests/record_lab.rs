//! Recordings (`--record`, `--recordings-dir`) and the call log (`--call-log`) of the real
//! gateway binary, on real SIPp calls through the lab's Asterisk with an echo bot:
//!
//! - a call's bridge recording is downloaded into the recordings directory when the call
//!   ends: a whole WAV about as long as the call, carrying the caller's 1000 Hz tone (and
//!   its echo), named in `call_ended` and in `GET /api/calls/{id}`; the stored copy is gone
//!   from Asterisk;
//! - each ended call appends exactly one JSON line to the call log (ids, numbers, times,
//!   end reason, backend, frames, recording, the bot's transcript lines); a second call
//!   appends a second line;
//! - a download that fails (the directory vanished) loses nothing else: the call's record,
//!   its `call_ended` and its log line say why, and the recording stays on Asterisk;
//! - `/metrics` counts recordings saved and failed, and call log lines written;
//! - SIGHUP reopens the call log (logrotate's `postrotate`), and is ignored without one;
//! - at startup the gateway saves its own recordings left on Asterisk (by a gateway killed
//!   mid-call, or a failed download) and deletes them there; others' are left alone;
//! - a call the SIGTERM drain hangs up (`shutdown`) is saved and logged before the gateway
//!   exits;
//! - a recordings directory or call log that cannot be written stops the gateway at
//!   startup with an error naming the flag and its variable.
//!
//! One gateway takes the four calls in turn (the call log must be one file).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use ari_lab::Lab;
use ari_lab::pcap::CallerAudio;
use ari_lab::rest::Rest;
use ari_lab::sipp::{Sipp, UacCall};
use common::WAIT;
use common::bot::{Action, Behaviour, Bot};
use common::gateway::Gateway;
use common::http::{Http, WsClient};
use serde_json::Value;
use voiceai_gateway::protocol::ProtocolKind;

/// The caller's tone.
const TONE_HZ: f64 = 1000.0;

/// What one call through the rig left behind.
struct Ended {
    call_id: String,
    channel_id: String,
    /// The `call_ended` event.
    event: Value,
    /// `GET /api/calls/{id}`'s call.
    call: Value,
    /// From the bot's `start` to the end of the call, as the test saw it.
    length: Duration,
}

struct Rig {
    lab: &'static Lab,
    app: String,
    bot: Bot,
    gateway: Gateway,
    http: Http,
    monitor: WsClient,
}

impl Rig {
    async fn start(recordings: &Path, call_log: &Path) -> Rig {
        let lab = Lab::get().await;
        let app = ari_lab::unique_name("gw-record");
        let bot = Bot::start(
            ProtocolKind::Twilio,
            Behaviour::echo().on_start([
                Action::transcript("bot", "Hello, how can I help?"),
                Action::transcript("caller", "Just testing."),
            ]),
        )
        .await;
        let url = bot.url("/bot");
        let recordings = recordings.to_str().unwrap();
        let call_log = call_log.to_str().unwrap();
        let args = [
            "--app",
            app.as_str(),
            "--backend-url",
            url.as_str(),
            "--hold-music",
            "none",
            "--record",
            "--recordings-dir",
            recordings,
            "--call-log",
            call_log,
            // The last call is cut by the drain.
            "--drain-timeout",
            "1s",
        ];
        let gateway = Gateway::start(lab, &args, &[]);
        gateway
            .wait_ready(Duration::from_secs(30))
            .await
            .unwrap_or_else(|error| panic!("the gateway is not ready: {error}"));
        let http = Http::new(&gateway.base_url());
        let mut monitor = WsClient::connect(&gateway.ws_url("/ws/monitor"), None)
            .await
            .unwrap();
        let hello = monitor.next_json(WAIT).await.unwrap();
        assert_eq!(hello["type"], "connected", "{hello}");
        Rig {
            lab,
            app,
            bot,
            gateway,
            http,
            monitor,
        }
    }

    /// A SIPp call playing `tone` of the caller's tone, ended by the bot (close 1000) once
    /// the whole tone has reached it; returns once the call has ended.
    async fn call(&mut self, caller: &str, tone: Duration) -> Ended {
        let live = self.answer(caller, tone).await;
        live.conn.send(Action::Close(1000)).unwrap();
        let status = live.sipp.wait(WAIT).await.unwrap();
        assert!(status.success(), "SIPp exited {status}");
        let length = live.started.elapsed();
        self.ended(live.call_id, live.channel_id, length).await
    }

    /// A SIPp call playing `tone`, up until the whole tone has reached the bot.
    async fn answer(&self, caller: &str, tone: Duration) -> Live {
        let connections = self.bot.connections().len();
        let sipp = Sipp::call_with_audio(
            &UacCall {
                dialled: "8000".into(),
                caller: caller.into(),
                app: self.app.clone(),
            },
            &CallerAudio::tone(TONE_HZ, tone),
        )
        .unwrap_or_else(|error| panic!("cannot start SIPp: {error}"));
        let conn = self
            .bot
            .wait_connection(connections, WAIT)
            .await
            .unwrap_or_else(|error| {
                panic!(
                    "{error}; SIPp: {}; gateway:\n{}",
                    sipp.errors(),
                    self.gateway.output()
                )
            });
        let start = conn.wait_start(WAIT).await.unwrap();
        let started = Instant::now();
        let call_id = start["start"]["callSid"].as_str().unwrap().to_owned();
        let channel_id = start["start"]["customParameters"]["channel_id"]
            .as_str()
            .unwrap()
            .to_owned();
        // 20 ms frames: the whole tone has arrived (and been echoed).
        let frames = usize::try_from(tone.as_millis() / 20).unwrap();
        conn.wait_frames(frames, tone + WAIT).await.unwrap();
        Live {
            sipp,
            conn,
            call_id,
            channel_id,
            started,
        }
    }

    /// The `call_ended` of a call and its record in the API.
    async fn ended(&mut self, call_id: String, channel_id: String, length: Duration) -> Ended {
        let seen = self
            .monitor
            .wait_for(WAIT, |m| {
                m["type"] == "call_ended" && m["callId"] == call_id.as_str()
            })
            .await
            .unwrap_or_else(|error| panic!("{error}\ngateway:\n{}", self.gateway.output()));
        let event = seen.last().unwrap().clone();
        let reply = self
            .http
            .get(&format!("/api/calls/{call_id}"))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text);
        Ended {
            call_id,
            channel_id,
            event,
            call: reply.json()["call"].clone(),
            length,
        }
    }
}

/// A call up, the whole tone heard by the bot.
struct Live {
    sipp: Sipp,
    conn: common::bot::Conn,
    call_id: String,
    channel_id: String,
    /// When the bot had the call's `start`.
    started: Instant,
}

/// The call log's lines, each parsed.
fn log_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the last line is whole: {text:?}");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect()
}

/// Waits until the call log has `count` lines (the writer runs on its own thread).
async fn wait_log_lines(path: &Path, count: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let lines = log_lines(path);
        if lines.len() >= count || Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether Asterisk still stores the recording `name`.
async fn stored_on_asterisk(lab: &Lab, name: &str) -> bool {
    let reply = Rest::new(lab)
        .get(&format!("/recordings/stored/{name}"))
        .await
        .unwrap();
    match reply.status {
        200 => true,
        404 => false,
        other => panic!("GET /recordings/stored/{name}: {other} {}", reply.text),
    }
}

/// Checks one call's line in the call log against what the API said about the call.
fn check_log_line(line: &Value, ended: &Ended, caller: &str) {
    assert_eq!(line["callId"], ended.call_id.as_str(), "{line}");
    assert_eq!(line["channelId"], ended.channel_id.as_str(), "{line}");
    assert_eq!(line["server"], ended.call["server"], "{line}");
    assert!(
        line["server"].as_str().is_some_and(|s| !s.is_empty()),
        "{line}"
    );
    assert_eq!(line["callerNumber"], caller, "{line}");
    assert_eq!(line["calledNumber"], "8000", "{line}");
    assert_eq!(line["direction"], "inbound", "{line}");
    assert_eq!(line["status"], "ended", "{line}");
    assert_eq!(line["endReason"], "backend_closed", "{line}");
    assert_eq!(line["media"], "websocket", "{line}");
    for time in ["startTime", "answerTime", "endTime"] {
        assert!(
            line[time].as_str().is_some_and(|t| t.ends_with('Z')),
            "{time}: {line}"
        );
    }
    assert!(
        line["backendUrl"]
            .as_str()
            .is_some_and(|url| url.starts_with("ws://127.0.0.1:") && url.ends_with("/bot")),
        "{line}"
    );
    for frames in ["framesIn", "framesOut", "framesToBackend"] {
        assert!(
            line[frames].as_u64().is_some_and(|n| n >= 40),
            "{frames}: {line}"
        );
    }
    assert_eq!(line["framesIn"], ended.call["framesIn"], "{line}");
    assert_eq!(line["recording"], ended.call["recording"], "{line}");
    assert_eq!(
        line["recordingError"], ended.call["recordingError"],
        "{line}"
    );
    let texts: Vec<&str> = line["transcripts"]
        .as_array()
        .unwrap_or_else(|| panic!("no transcripts: {line}"))
        .iter()
        .map(|t| t["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(texts, ["Hello, how can I help?", "Just testing."], "{line}");
}

/// Leaves a finished recording named `name` stored on Asterisk (a silent bridge recorded
/// for a moment), as a gateway killed mid-call or a failed download does.
async fn plant_recording(lab: &Lab, name: &str) {
    let rest = Rest::new(lab);
    let bridge = ari_lab::unique_name("rec-plant");
    let ok = |reply: ari_lab::rest::Response, what: &str| {
        assert!(
            (200..300).contains(&reply.status),
            "{what}: {} {}",
            reply.status,
            reply.text
        );
    };
    ok(
        rest.post(&format!("/bridges?type=mixing&bridgeId={bridge}"))
            .await
            .unwrap(),
        "create the bridge",
    );
    ok(
        rest.post(&format!(
            "/bridges/{bridge}/record?name={name}&format=wav&ifExists=fail"
        ))
        .await
        .unwrap(),
        "record it",
    );
    ok(
        rest.post(&format!("/recordings/live/{name}/stop"))
            .await
            .unwrap(),
        "stop the recording",
    );
    ok(
        rest.delete(&format!("/bridges/{bridge}")).await.unwrap(),
        "destroy the bridge",
    );
}

#[tokio::test]
async fn calls_are_recorded_downloaded_and_logged_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    // Not there yet: the gateway creates it.
    let recordings = dir.path().join("recordings");
    let call_log = dir.path().join("calls.jsonl");
    // Left on Asterisk by an earlier run: one of the gateway's, and someone else's.
    let lab = Lab::get().await;
    let hex: String = ari_lab::unique_name("x")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .chars()
        .rev()
        .chain(std::iter::repeat('0'))
        .take(32)
        .collect();
    let left_over = format!("20261201-000000-CA{hex}");
    let someone_elses = ari_lab::unique_name("not-the-gateway-s");
    plant_recording(lab, &left_over).await;
    plant_recording(lab, &someone_elses).await;
    let mut rig = Rig::start(&recordings, &call_log).await;
    assert!(recordings.is_dir(), "the gateway created --recordings-dir");
    assert_eq!(
        std::fs::read(&call_log).unwrap(),
        b"",
        "opened at startup, empty"
    );
    // At startup the gateway saves its own left-over recording, and only that one.
    rig.gateway
        .wait_for_line("recording left on Asterisk saved", WAIT)
        .await
        .unwrap();
    let recovered = recordings.join(format!("{left_over}.wav"));
    ari_lab::audio::parse_wav(&std::fs::read(&recovered).unwrap()).unwrap();
    assert!(!stored_on_asterisk(rig.lab, &left_over).await);
    assert!(stored_on_asterisk(rig.lab, &someone_elses).await);
    let reply = Rest::new(rig.lab)
        .delete(&format!("/recordings/stored/{someone_elses}"))
        .await
        .unwrap();
    assert_eq!(reply.status, 204, "{}", reply.text);
    std::fs::remove_file(&recovered).unwrap();

    // First call: 2 s of tone.
    let first = rig.call("815550101", Duration::from_secs(2)).await;
    let file = first.event["recording"]
        .as_str()
        .unwrap_or_else(|| panic!("call_ended names no recording: {}", first.event))
        .to_owned();
    assert!(
        first.event.get("recordingError").is_none(),
        "{}",
        first.event
    );
    assert_eq!(first.call["recording"], file.as_str(), "{}", first.call);
    assert!(
        file.ends_with(&format!("-{}.wav", first.call_id)),
        "the file name carries the call id: {file}"
    );
    let bytes = std::fs::read(recordings.join(&file)).unwrap();
    let wav = ari_lab::audio::parse_wav(&bytes).unwrap();
    let recorded = wav.duration();
    // From the bridge's set-up to its end: the bot's start to the close, give or take
    // the set-up and teardown.
    assert!(
        recorded + Duration::from_millis(700) >= first.length
            && recorded <= first.length + Duration::from_millis(700),
        "recorded {recorded:?}, the call lasted {:?}",
        first.length
    );
    let tone = ari_lab::audio::detect_tone(&wav.samples, wav.sample_rate);
    eprintln!(
        "recording {file}: {recorded:?} at {} Hz, {} bytes; call {:?}; tone {tone:?}",
        wav.sample_rate,
        bytes.len(),
        first.length
    );
    assert!(
        tone.is_some_and(|hz| (hz - TONE_HZ).abs() < 10.0),
        "the recording carries the caller's {TONE_HZ} Hz tone, found {tone:?}"
    );
    let entries: Vec<_> = std::fs::read_dir(&recordings)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        entries,
        std::slice::from_ref(&file),
        "no temporary file left"
    );
    let name = file.trim_end_matches(".wav");
    assert!(
        !stored_on_asterisk(rig.lab, name).await,
        "the stored copy is deleted from Asterisk"
    );
    let lines = wait_log_lines(&call_log, 1).await;
    assert_eq!(lines.len(), 1, "one line per call: {lines:?}");
    check_log_line(&lines[0], &first, "815550101");

    // Second call: one more line, one more file.
    let second = rig.call("815550102", Duration::from_secs(1)).await;
    let second_file = second.event["recording"].as_str().unwrap().to_owned();
    assert_ne!(second_file, file);
    let wav =
        ari_lab::audio::parse_wav(&std::fs::read(recordings.join(&second_file)).unwrap()).unwrap();
    assert!(
        wav.duration() >= Duration::from_millis(800),
        "{:?}",
        wav.duration()
    );
    let lines = wait_log_lines(&call_log, 2).await;
    assert_eq!(lines.len(), 2, "a second line is appended: {lines:?}");
    check_log_line(&lines[0], &first, "815550101");
    check_log_line(&lines[1], &second, "815550102");

    // Third call with the directory gone: the download fails, nothing else is lost.
    std::fs::remove_dir_all(&recordings).unwrap();
    let third = rig.call("815550103", Duration::from_secs(1)).await;
    assert!(third.event.get("recording").is_none(), "{}", third.event);
    let why = third.event["recordingError"]
        .as_str()
        .unwrap_or_else(|| panic!("call_ended says why there is no file: {}", third.event))
        .to_owned();
    assert_eq!(third.call["recordingError"], why.as_str());
    assert!(why.contains("download failed"), "{why}");
    let kept = why
        .split("kept on Asterisk as ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the error names the stored recording: {why}"))
        .to_owned();
    assert!(kept.ends_with(&third.call_id), "{kept}");
    assert!(
        stored_on_asterisk(rig.lab, &kept).await,
        "a recording that was not downloaded stays on Asterisk"
    );
    let lines = wait_log_lines(&call_log, 3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    check_log_line(&lines[2], &third, "815550103");
    assert_eq!(third.call["endReason"], "backend_closed");

    // Clean up what the failed download left on Asterisk.
    let reply = Rest::new(rig.lab)
        .delete(&format!("/recordings/stored/{kept}"))
        .await
        .unwrap();
    assert_eq!(reply.status, 204, "{}", reply.text);
    // Operators see the same in /metrics.
    let metrics = rig.http.get("/metrics").await.unwrap().text;
    for (series, count) in [
        ("voiceai_recordings_total{result=\"saved\"}", 2),
        ("voiceai_recordings_total{result=\"failed\"}", 1),
        ("voiceai_call_log_lines_total{result=\"written\"}", 3),
        ("voiceai_call_log_lines_total{result=\"failed\"}", 0),
        ("voiceai_call_log_lines_total{result=\"dropped\"}", 0),
    ] {
        assert!(
            metrics
                .lines()
                .any(|line| line == format!("{series} {count}")),
            "{series} {count}: {metrics}"
        );
    }

    // logrotate moves the log away and sends SIGHUP: the next line starts a new file.
    let rotated = dir.path().join("calls.jsonl.1");
    std::fs::rename(&call_log, &rotated).unwrap();
    let from = rig.gateway.line_count();
    rig.gateway.sighup().unwrap();
    rig.gateway
        .wait_for_line_from(from, "call log reopened", WAIT)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&call_log).unwrap(), b"", "a new, empty file");

    // A call the shutdown hangs up is saved and logged before the gateway exits.
    std::fs::create_dir(&recordings).unwrap();
    let live = rig.answer("815550104", Duration::from_secs(1)).await;
    rig.gateway.sigterm().unwrap();
    let status = rig.gateway.wait_exit(WAIT + WAIT).await.unwrap();
    assert!(status.success(), "the gateway exited {status}");
    let sipp = live.sipp.wait(WAIT).await.unwrap();
    assert!(sipp.success(), "SIPp exited {sipp}");
    assert_eq!(
        log_lines(&rotated).len(),
        3,
        "the rotated file keeps its lines"
    );
    let lines = log_lines(&call_log);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let last = &lines[0];
    assert_eq!(last["callId"], live.call_id.as_str(), "{last}");
    assert_eq!(last["endReason"], "shutdown", "{last}");
    let file = last["recording"]
        .as_str()
        .unwrap_or_else(|| panic!("the drained call's recording: {last}"));
    let wav = ari_lab::audio::parse_wav(&std::fs::read(recordings.join(file)).unwrap()).unwrap();
    assert!(
        wav.duration() >= Duration::from_millis(800),
        "{:?}",
        wav.duration()
    );
    let ended = rig
        .monitor
        .wait_for(WAIT, |m| {
            m["type"] == "call_ended" && m["callId"] == live.call_id.as_str()
        })
        .await
        .unwrap();
    assert_eq!(ended.last().unwrap()["recording"], file);
    assert!(
        !stored_on_asterisk(rig.lab, file.trim_end_matches(".wav")).await,
        "deleted from Asterisk"
    );
}

/// Starts the gateway with `args` and returns what it printed when it exited (it must
/// exit, with a failure status, before ever being ready).
async fn refused_at_startup(args: &[&str]) -> String {
    let lab = Lab::get().await;
    let app = ari_lab::unique_name("gw-record-bad");
    let mut all = vec!["--app", app.as_str()];
    all.extend_from_slice(args);
    let mut gateway = Gateway::start(lab, &all, &[]);
    let status = gateway.wait_exit(WAIT).await.unwrap();
    assert!(!status.success(), "the gateway started with {args:?}");
    gateway.output()
}

#[tokio::test]
async fn an_unwritable_recordings_dir_or_call_log_stops_the_gateway_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let file = file.to_str().unwrap();

    let output = refused_at_startup(&["--record", "--recordings-dir", file]).await;
    assert!(
        output.contains("--recordings-dir (VOICEAI_RECORDINGS_DIR)") && output.contains(file),
        "{output}"
    );

    let missing = dir.path().join("no-such-dir").join("calls.jsonl");
    let missing = missing.to_str().unwrap();
    let output = refused_at_startup(&["--call-log", missing]).await;
    assert!(
        output.contains("--call-log (VOICEAI_CALL_LOG)") && output.contains(missing),
        "{output}"
    );

    // Without --record the directory is not touched.
    let lab = Lab::get().await;
    let app = ari_lab::unique_name("gw-record-off");
    let unused = dir.path().join("unused");
    let gateway = Gateway::start(
        lab,
        &[
            "--app",
            app.as_str(),
            "--recordings-dir",
            unused.to_str().unwrap(),
        ],
        &[],
    );
    gateway.wait_ready(Duration::from_secs(30)).await.unwrap();
    assert!(!unused.exists());
    // SIGHUP without a call log changes nothing (its default would kill the gateway).
    let from = gateway.line_count();
    gateway.sighup().unwrap();
    gateway
        .wait_for_line_from(from, "no call log to reopen", WAIT)
        .await
        .unwrap();
    let health = Http::new(&gateway.base_url()).get("/health").await.unwrap();
    assert_eq!(health.status, 200, "{}", health.text);
}
