//! Captures JSON from the real lab as test fixtures for `ari-model`:
//! `cargo run -p ari-lab --bin capture-fixtures -- ari-model/tests/fixtures`.
//!
//! Drives calls, bridges, playbacks, recordings, DTMF, snoops, dials, user events and
//! device states through a `subscribeAll` app, and writes:
//! - `events.jsonl`: every event seen, in order (the decode benchmark replays it);
//! - `rest/<name>.json`: REST responses (channel, bridge, playback, recordings, ...).
//!
//! Run it on an otherwise idle lab: `subscribeAll` sees every call.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use ari_lab::events::Events;
use ari_lab::rest::{Error, Rest};
use ari_lab::sipp::{Sipp, UacCall};
use ari_lab::{Lab, unique_name};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// Reads events, keeping every one (parsed, and as the text Asterisk sent).
struct Collector {
    events: Events,
    seen: Vec<Value>,
    raw: Vec<String>,
}

impl Collector {
    async fn wait(&mut self, kind: &str, matches: impl Fn(&Value) -> bool) -> Result<Value, Error> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (event, raw) = self
                .events
                .next_raw(left)
                .await
                .map_err(|e| format!("waiting for {kind}: {e}"))?;
            self.seen.push(event.clone());
            self.raw.push(raw);
            if event["type"] == kind && matches(&event) {
                return Ok(event);
            }
        }
    }

    /// Keeps reading for `period` (events that follow an action without a marker).
    async fn drain(&mut self, period: Duration) {
        while let Ok((event, raw)) = self.events.next_raw(period).await {
            self.seen.push(event);
            self.raw.push(raw);
        }
    }
}

fn channel_is(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["channel"]["id"] == id
}

struct Capture {
    rest: Rest,
    dir: PathBuf,
    saved: BTreeMap<String, usize>,
}

impl Capture {
    async fn call(&self, method: &str, path: &str, expect: u16) -> Result<Value, Error> {
        let response = match method {
            "GET" => self.rest.get(path).await?,
            "POST" => self.rest.post(path).await?,
            "DELETE" => self.rest.delete(path).await?,
            _ => return Err(format!("unsupported method {method}").into()),
        };
        if response.status != expect {
            return Err(format!("{method} {path}: {} {}", response.status, response.text).into());
        }
        Ok(if response.text.is_empty() {
            Value::Null
        } else {
            response.json()?
        })
    }

    async fn save(&mut self, name: &str, path: &str) -> Result<Value, Error> {
        let mut value = self.call("GET", path, 200).await?;
        // Long listings are cut to a few entries: the shape is what the fixtures test.
        if let Some(list) = value.as_array_mut() {
            list.truncate(5);
        }
        write_json(&self.dir.join("rest").join(format!("{name}.json")), &value)?;
        *self.saved.entry(name.to_owned()).or_default() += 1;
        Ok(value)
    }
}

fn write_json(path: &Path, value: &Value) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text)?;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "ari-model/tests/fixtures".to_owned()),
    );
    match capture(&dir).await {
        Ok(count) => {
            println!(
                "captured {count} events and REST responses into {}",
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("capture-fixtures: {error}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::too_many_lines)]
async fn capture(dir: &Path) -> Result<usize, Error> {
    let lab = Lab::get().await;
    let app = unique_name("fixtures");
    let mut c = Collector {
        events: Events::connect_all(lab, &app).await?,
        seen: Vec::new(),
        raw: Vec::new(),
    };
    let mut x = Capture {
        rest: Rest::new(lab),
        dir: dir.to_owned(),
        saved: BTreeMap::new(),
    };
    let id = |name: &str| format!("{app}-{name}");
    let (c1, c2, c3, c4, c5, s1, b1) = (
        id("c1"),
        id("c2"),
        id("c3"),
        id("c4"),
        id("c5"),
        id("s1"),
        id("b1"),
    );

    x.save("asterisk_info", "/asterisk/info").await?;
    x.save("asterisk_ping", "/asterisk/ping").await?;
    x.save("modules", "/asterisk/modules").await?;
    x.save("module", "/asterisk/modules/res_ari.so").await?;
    x.save("log_channels", "/asterisk/logging").await?;
    x.save("global_variable", "/asterisk/variable?variable=INBOUND_APP")
        .await?;
    x.save(
        "config_tuples",
        "/asterisk/config/dynamic/res_pjsip/endpoint/trunk",
    )
    .await?;
    x.save("endpoints", "/endpoints").await?;
    x.save("endpoint", "/endpoints/PJSIP/trunk").await?;
    x.save("sounds", "/sounds").await?;
    x.save("sound", "/sounds/hello-world").await?;
    x.save("application", &format!("/applications/{app}"))
        .await?;
    x.save("applications", "/applications").await?;

    // A call into the app, its variables, playbacks and a recording.
    x.call(
        "POST",
        &format!("/channels?endpoint=Local/answer@lab&app={app}&channelId={c1}&formats=ulaw"),
        200,
    )
    .await?;
    c.wait("StasisStart", channel_is(&c1)).await?;
    x.save("channel", &format!("/channels/{c1}")).await?;
    x.save("channels", "/channels").await?;
    x.call(
        "POST",
        &format!("/channels/{c1}/variable?variable=FIXTURE&value=yes"),
        204,
    )
    .await?;
    c.wait("ChannelVarset", |e| e["variable"] == "FIXTURE")
        .await?;
    x.save(
        "variable",
        &format!("/channels/{c1}/variable?variable=FIXTURE"),
    )
    .await?;
    x.call(
        "POST",
        &format!("/channels/{c1}/variable?variable=CALLERID(num)&value=4925551234"),
        204,
    )
    .await?;
    c.wait("ChannelCallerId", channel_is(&c1)).await?;
    x.call(
        "POST",
        &format!("/channels/{c1}/play/{app}-p1?media=sound:beep"),
        201,
    )
    .await?;
    c.wait("PlaybackStarted", |e| {
        e["playback"]["id"] == format!("{app}-p1").as_str()
    })
    .await?;
    x.save("playback", &format!("/playbacks/{app}-p1")).await?;
    c.wait("PlaybackFinished", |e| {
        e["playback"]["id"] == format!("{app}-p1").as_str()
    })
    .await?;
    x.call(
        "POST",
        &format!("/channels/{c1}/play/{app}-p2?media=sound:beep,sound:beep"),
        201,
    )
    .await?;
    c.wait("PlaybackContinuing", |_| true).await?;
    c.wait("PlaybackFinished", |e| {
        e["playback"]["id"] == format!("{app}-p2").as_str()
    })
    .await?;
    let r1 = id("r1");
    x.call(
        "POST",
        &format!(
            "/channels/{c1}/record?name={r1}&format=wav&maxDurationSeconds=1&ifExists=overwrite"
        ),
        201,
    )
    .await?;
    c.wait("RecordingStarted", |e| {
        e["recording"]["name"] == r1.as_str()
    })
    .await?;
    x.save("live_recording", &format!("/recordings/live/{r1}"))
        .await?;
    c.wait("RecordingFinished", |e| {
        e["recording"]["name"] == r1.as_str()
    })
    .await?;
    x.save("stored_recordings", "/recordings/stored").await?;
    x.save("stored_recording", &format!("/recordings/stored/{r1}"))
        .await?;
    x.call("DELETE", &format!("/recordings/stored/{r1}"), 204)
        .await?;
    x.call("POST", &format!("/channels/{c1}/hold"), 204).await?;
    x.call("DELETE", &format!("/channels/{c1}/hold"), 204)
        .await?;
    c.drain(Duration::from_millis(300)).await;

    // A bridge with a playback and a recording.
    x.call(
        "POST",
        &format!("/bridges/{b1}?type=mixing&name=fixture"),
        200,
    )
    .await?;
    x.call(
        "POST",
        &format!("/bridges/{b1}/addChannel?channel={c1}"),
        204,
    )
    .await?;
    c.wait("ChannelEnteredBridge", channel_is(&c1)).await?;
    x.save("bridge", &format!("/bridges/{b1}")).await?;
    x.save("bridges", "/bridges").await?;
    x.call(
        "POST",
        &format!("/bridges/{b1}/play/{app}-p3?media=sound:beep"),
        201,
    )
    .await?;
    c.wait("PlaybackFinished", |e| {
        e["playback"]["id"] == format!("{app}-p3").as_str()
    })
    .await?;
    let r2 = id("r2");
    x.call(
        "POST",
        &format!("/bridges/{b1}/record?name={r2}&format=wav&maxDurationSeconds=1"),
        201,
    )
    .await?;
    c.wait("RecordingFinished", |e| {
        e["recording"]["name"] == r2.as_str()
    })
    .await?;
    x.call("DELETE", &format!("/recordings/stored/{r2}"), 204)
        .await?;
    x.call(
        "POST",
        &format!("/bridges/{b1}/removeChannel?channel={c1}"),
        204,
    )
    .await?;
    c.wait("ChannelLeftBridge", channel_is(&c1)).await?;
    x.call("DELETE", &format!("/bridges/{b1}"), 204).await?;
    c.wait("BridgeDestroyed", |e| e["bridge"]["id"] == b1.as_str())
        .await?;

    // DTMF, a snoop, and a channel that continues in the dialplan.
    x.call(
        "POST",
        &format!("/channels?endpoint=Local/dtmf@lab&app={app}&channelId={c2}&formats=ulaw"),
        200,
    )
    .await?;
    c.wait("StasisStart", channel_is(&c2)).await?;
    x.call(
        "POST",
        &format!("/channels/{c2}/snoop/{s1}?spy=in&app={app}"),
        200,
    )
    .await?;
    c.wait("StasisStart", channel_is(&s1)).await?;
    c.wait("ChannelDtmfReceived", |e| {
        e["channel"]["id"] == c2.as_str() && e["digit"] == "#"
    })
    .await?;
    x.call("DELETE", &format!("/channels/{s1}"), 204).await?;
    x.call(
        "POST",
        &format!("/channels/{c2}/continue?context=lab&extension=answer&priority=1"),
        204,
    )
    .await?;
    c.wait("StasisEnd", channel_is(&c2)).await?;

    // Create then dial; a busy originate; a busy trunk call.
    x.call(
        "POST",
        &format!(
            "/channels/create?endpoint=Local/answer@lab&app={app}&channelId={c3}&formats=ulaw"
        ),
        200,
    )
    .await?;
    x.call("POST", &format!("/channels/{c3}/dial?timeout=10"), 204)
        .await?;
    c.wait("Dial", |e| {
        e["peer"]["id"] == c3.as_str() && e["dialstatus"] == "ANSWER"
    })
    .await?;
    x.call("DELETE", &format!("/channels/{c3}"), 204).await?;
    x.call(
        "POST",
        &format!("/channels?endpoint=Local/busy@lab&app={app}&channelId={c4}&formats=ulaw"),
        200,
    )
    .await?;
    c.wait("Dial", |e| {
        e["peer"]["id"] == c4.as_str() && e["dialstatus"] == "BUSY"
    })
    .await?;
    x.call(
        "POST",
        &format!("/channels?endpoint=PJSIP/2000@trunk&app={app}&channelId={c5}"),
        200,
    )
    .await?;
    c.wait("ChannelDestroyed", channel_is(&c5)).await?;

    // User events, device states, a failed move, REST over the WebSocket.
    x.call(
        "POST",
        &format!("/events/user/FixtureEvent?application={app}&source=channel:{c1}"),
        204,
    )
    .await?;
    c.wait("ChannelUserevent", |_| true).await?;
    let device = format!("Stasis:{app}");
    x.call(
        "POST",
        &format!("/applications/{app}/subscription?eventSource=deviceState:{device}"),
        200,
    )
    .await?;
    let put = x
        .rest
        .put(&format!("/deviceStates/{device}?deviceState=BUSY"))
        .await?;
    if put.status != 204 {
        return Err(format!("PUT deviceState: {} {}", put.status, put.text).into());
    }
    c.wait("DeviceStateChanged", |_| true).await?;
    x.save("device_states", "/deviceStates").await?;
    x.save("device_state", &format!("/deviceStates/{device}"))
        .await?;
    x.call("DELETE", &format!("/deviceStates/{device}"), 204)
        .await?;
    x.call(
        "POST",
        &format!("/channels/{c1}/move?app={app}-nobody-listens"),
        204,
    )
    .await?;
    c.wait("ApplicationMoveFailed", channel_is(&c1)).await?;
    c.events
        .send_text(r#"{"type":"RESTRequest","transaction_id":"t1","request_id":"r1","method":"GET","uri":"asterisk/ping"}"#)
        .await?;
    c.wait("RESTResponse", |_| true).await?;

    // An inbound SIP call with real audio, then hang everything up.
    let call = UacCall {
        dialled: "15550001".into(),
        caller: "4925551234".into(),
        app: app.clone(),
    };
    let sipp = Sipp::call(&call)?;
    let start = c
        .wait("StasisStart", |e| {
            e["channel"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("PJSIP/"))
        })
        .await?;
    let inbound = start["channel"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    x.call("POST", &format!("/channels/{inbound}/answer"), 204)
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    x.save(
        "rtp_statistics",
        &format!("/channels/{inbound}/rtp_statistics"),
    )
    .await?;
    x.call(
        "DELETE",
        &format!("/channels/{inbound}?reason_code=16"),
        204,
    )
    .await?;
    c.wait("ChannelDestroyed", channel_is(&inbound)).await?;
    let _ = sipp.wait(WAIT).await;
    x.call("DELETE", &format!("/channels/{c1}"), 204).await?;
    c.wait("ChannelDestroyed", channel_is(&c1)).await?;

    // A replaced application: the first connection hears ApplicationReplaced.
    let replaced_app = id("replaced");
    let mut first = Events::connect(lab, &replaced_app).await?;
    let _second = Events::connect(lab, &replaced_app).await?;
    let (replaced, raw) = first.next_raw(WAIT).await?;
    if replaced["type"] != "ApplicationReplaced" {
        return Err(format!("expected ApplicationReplaced, got {replaced}").into());
    }
    c.seen.push(replaced);
    c.raw.push(raw);
    c.drain(Duration::from_millis(500)).await;

    // Stored as Asterisk sent them: member order matters to the decoder's fast path.
    let mut lines = String::new();
    for raw in &c.raw {
        lines.push_str(raw);
        lines.push('\n');
    }
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("events.jsonl"), lines)?;
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for event in &c.seen {
        *kinds
            .entry(event["type"].as_str().unwrap_or("?"))
            .or_default() += 1;
    }
    println!("event types: {kinds:?}");
    println!("REST fixtures: {:?}", x.saved.keys().collect::<Vec<_>>());
    Ok(c.seen.len() + x.saved.len())
}
