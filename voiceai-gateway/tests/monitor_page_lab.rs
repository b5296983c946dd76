//! The live monitor page (`GET /`) in a real headless Chromium (Debian's `chromium`,
//! driven through `chromium-driver` over WebDriver), against the real gateway binary with
//! `--auth-token` and real SIPp calls through the lab's Asterisk:
//!
//! - the page and its files are served without the token, with a strict CSP; the API and
//!   the monitor socket still refuse a request without it;
//! - the page asks for the token, refuses a wrong one, and with the right one shows the
//!   ARI connection as up;
//! - a call shows in the active list within 1 s of the gateway's `call_started` (the
//!   gateway publishes it as it takes the StasisStart), with caller, dialled number,
//!   media transport, backend state and frames/s both ways; selecting it shows its DTMF
//!   and the bot's transcript (`join_call`); it leaves the active list within 1 s of its
//!   `call_ended` and shows in the ended list with its reason;
//! - the page's hang-up button ends a second call: the channel is gone from Asterisk and
//!   the ended list says `hangup_requested`; its transfer form hands a third call to
//!   `Local/777@default` (the bot's leg stops, the call shows as transferring);
//! - the page says when the gateway goes away;
//! - a gateway without a token: the page asks for none and connects at once.
//!
//! A screenshot of the page with the first call up is saved as
//! `<target dir>/monitor-page.png`.

mod common;

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ari_lab::Lab;
use ari_lab::pcap::CallerAudio;
use ari_lab::rest::Rest;
use ari_lab::sipp::{Sipp, UacCall};
use common::WAIT;
use common::bot::{Action, Behaviour, Bot};
use common::gateway::{Gateway, free_port};
use common::http::{Http, WsClient};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::time::Instant;
use voiceai_gateway::protocol::ProtocolKind;

/// The API's bearer token in this test.
const TOKEN: &str = "monitor-page-token-8c41";
/// Debian's `chromium` package.
const CHROMIUM: &str = "/usr/bin/chromium";
/// Debian's `chromium-driver` package.
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page may take to show a call after `call_started`, or to drop it after
/// `call_ended`.
const PAGE_LAG: Duration = Duration::from_secs(1);
/// How often the page is looked at while waiting for something on it.
const POLL: Duration = Duration::from_millis(50);

/// Records, in the page, when rows of the active list come and go (the page's own clock,
/// `Date.now()`, which is the gateway's: same machine). Installed by the test, not part of
/// the page.
const OBSERVER: &str = r#"
window.__rows = [];
const body = document.querySelector('#active-calls tbody');
const note = (node, what) => {
  if (node.dataset && node.dataset.callId) {
    window.__rows.push({ id: node.dataset.callId, what, at: Date.now() });
  }
};
new MutationObserver((changes) => changes.forEach((change) => {
  change.addedNodes.forEach((node) => note(node, 'added'));
  change.removedNodes.forEach((node) => note(node, 'removed'));
})).observe(body, { childList: true });
return true;
"#;

/// chromedriver on a port of its own on 127.0.0.1, in its own process group (Chromium
/// runs in it too), killed with that group when dropped.
struct Chromedriver {
    child: std::process::Child,
    port: u16,
    profile: PathBuf,
    log: PathBuf,
}

impl Chromedriver {
    /// Starts chromedriver; fails (not skips) when Chromium or chromedriver is missing.
    fn start() -> Chromedriver {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install Debian's `{package}` package \
                 (apt-get install chromium chromium-driver, or asterisk_conf/lab install)"
            );
        }
        let dir = std::env::temp_dir().join(ari_lab::unique_name("monitor-page"));
        let profile = dir.join("profile");
        std::fs::create_dir_all(&profile).expect("a Chromium profile directory");
        let log = dir.join("chromedriver.log");
        let port = free_port();
        let child = std::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}"));
        Chromedriver {
            child,
            port,
            profile,
            log,
        }
    }

    /// A WebDriver session of a fresh headless Chromium (the flags it needs as root).
    async fn session(&self) -> Client {
        let address = format!("127.0.0.1:{}", self.port);
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(&address).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver does not listen on {address} after {WAIT:?}: {}",
                self.log()
            );
            tokio::time::sleep(POLL).await;
        }
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--disable-crash-reporter",
            "--disable-breakpad",
            "--window-size=1280,900",
            &format!("--user-data-dir={}", self.profile.display()),
        ];
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let mut builder = ClientBuilder::new(connector);
        builder.capabilities(capabilities);
        let webdriver = format!("http://{address}");
        match tokio::time::timeout(WAIT * 3, builder.connect(&webdriver)).await {
            Ok(Ok(client)) => client,
            Ok(Err(error)) => panic!("no Chromium session: {error}\n{}", self.log()),
            Err(_) => panic!("no Chromium session within {:?}\n{}", WAIT * 3, self.log()),
        }
    }

    /// chromedriver's errors and the end of its log, for failure messages.
    fn log(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let errors: Vec<&str> = lines
            .iter()
            .copied()
            .filter(|line| line.contains("[SEVERE]") || line.contains("[WARNING]"))
            .take(20)
            .collect();
        let tail = &lines[lines.len().saturating_sub(15)..];
        format!(
            "chromedriver's errors:\n{}\nthe end of its log:\n{}",
            errors.join("\n"),
            tail.join("\n")
        )
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // chromedriver and the Chromium it started: our own process group, by its id.
        if let Some(group) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.wait();
        if let Some(dir) = self.profile.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Where cargo puts build output: `CARGO_TARGET_DIR`, or the directory above this test
/// binary's `<profile>/deps/`.
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .expect("the test binary lives in <target>/<profile>/deps")
}

/// Milliseconds since the epoch of an event's RFC 3339 `timestamp`.
fn event_ms(event: &Value) -> i64 {
    let stamp = event["timestamp"].as_str().unwrap_or_default();
    let at = humantime::parse_rfc3339(stamp)
        .unwrap_or_else(|e| panic!("timestamp {stamp:?} of {event}: {e}"));
    i64::try_from(at.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Milliseconds since the epoch of an ARI time (`2026-12-01T11:32:57.008+0000`).
fn ari_ms(stamp: &str) -> i64 {
    let parsed = (|| {
        let (local, offset) = stamp.split_at(stamp.len().checked_sub(5)?);
        let at = humantime::parse_rfc3339(&format!("{local}Z")).ok()?;
        let sign: i64 = match offset.get(..1)? {
            "+" => 1,
            "-" => -1,
            _ => return None,
        };
        let hours: i64 = offset.get(1..3)?.parse().ok()?;
        let minutes: i64 = offset.get(3..)?.parse().ok()?;
        let utc = i64::try_from(at.duration_since(UNIX_EPOCH).ok()?.as_millis()).ok()?;
        Some(utc - sign * (hours * 60 + minutes) * 60_000)
    })();
    parsed.unwrap_or_else(|| panic!("not an ARI time: {stamp:?}"))
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The page in the browser.
struct Page {
    client: Client,
}

impl Page {
    /// Runs `script` (a function body) in the page.
    async fn run(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until it returns something truthy (not null, false, "" or 0);
    /// returns that.
    async fn until(&self, what: &str, script: &str, args: Vec<Value>) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.run(script, args.clone()).await;
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(flag) => *flag,
                Value::String(text) => !text.is_empty(),
                Value::Number(number) => number.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if Instant::now() >= deadline {
                let body = self.run("return document.body.innerText;", vec![]).await;
                panic!("the page does not show {what} within {WAIT:?}; it shows:\n{body}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The text of the element `selector` (empty when there is none).
    async fn text(&self, selector: &str) -> String {
        let value = self
            .run(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : '';",
                vec![json!(selector)],
            )
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// Clicks the element `selector` (a real click, through WebDriver).
    async fn click(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap_or_else(|e| panic!("no {selector} on the page: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("cannot click {selector}: {e}"));
    }

    /// Waits until `call_id`'s row shows its backend connected and frames both ways
    /// (the bot echoes the caller's tone).
    async fn flowing(&self, call_id: &str) {
        self.until(
            "frames/s both ways and the backend connected",
            "const row = [...document.querySelectorAll('#active-calls tbody tr')]
               .find((r) => r.dataset.callId === arguments[0]);
             return row && Number(row.cells[6].textContent) > 20
               && Number(row.cells[7].textContent) > 20 && row.cells[4].textContent === 'connected';",
            vec![json!(call_id)],
        )
        .await;
    }

    /// Selects `call_id` (a click on its row) and waits for its DTMF and transcript lines.
    async fn select(&self, call_id: &str) {
        self.click(&format!(
            "#active-calls tr[data-call-id='{call_id}'] td.caller"
        ))
        .await;
        self.until(
            "the call's DTMF and transcript",
            "const text = document.getElementById('detail-lines').textContent;
             return text.includes('DTMF 4') && text.includes('DTMF 2')
               && text.includes('agent: Hello, how can I help?')
               && text.includes('agent: You pressed a key.');",
            vec![],
        )
        .await;
    }

    /// When (page clock, ms) the row of `call_id` was `what` ("added", "removed").
    async fn row_event(&self, call_id: &str, what: &str) -> i64 {
        let at = self
            .until(
                &format!("the row of {call_id} {what}"),
                "const r = (window.__rows || []).find((r) => r.id === arguments[0] && r.what === arguments[1]);
                 return r ? r.at : null;",
                vec![json!(call_id), json!(what)],
            )
            .await;
        at.as_i64().expect("a time in ms")
    }

    /// The cells of `call_id`'s row in the table `table` (`active-calls`, `ended-calls`).
    async fn row(&self, table: &str, call_id: &str) -> Vec<String> {
        let cells = self
            .run(
                "const row = [...document.querySelectorAll('#' + arguments[0] + ' tbody tr')]
                   .find((r) => r.dataset.callId === arguments[1]);
                 return row ? [...row.cells].map((c) => c.textContent) : [];",
                vec![json!(table), json!(call_id)],
            )
            .await;
        serde_json::from_value(cells).unwrap_or_default()
    }
}

/// Waits on the test's own `/ws/monitor` for a `kind` event of `call_id` (or of any call
/// when `None`).
async fn event(monitor: &mut WsClient, kind: &str, call_id: Option<&str>) -> Value {
    let seen = monitor
        .wait_for(WAIT, |event| {
            event["type"] == kind && call_id.is_none_or(|id| event["callId"] == id)
        })
        .await
        .unwrap_or_else(|e| panic!("no {kind} on /ws/monitor: {e}"));
    seen.last().cloned().unwrap()
}

/// A SIPp call from `caller` to `dialled` into `app`, playing `audio`.
fn call(app: &str, caller: &str, dialled: &str, audio: &CallerAudio) -> Sipp {
    let call = UacCall {
        dialled: dialled.to_owned(),
        caller: caller.to_owned(),
        app: app.to_owned(),
    };
    Sipp::call_with_audio(&call, audio).unwrap_or_else(|e| panic!("cannot start SIPp: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_monitor_page_follows_real_calls_and_hangs_one_up() {
    let lab = Lab::get().await;
    let app = ari_lab::unique_name("gw-monitor");
    let bot = Bot::start(
        ProtocolKind::Twilio,
        Behaviour::echo()
            .on_start([Action::transcript("agent", "Hello, how can I help?")])
            .on_dtmf([Action::transcript("agent", "You pressed a key.")]),
    )
    .await;
    let url = bot.url("/bot");
    let gateway = Gateway::start(
        lab,
        &[
            "--app",
            app.as_str(),
            "--backend-url",
            url.as_str(),
            "--auth-token",
            TOKEN,
        ],
        &[],
    );
    gateway
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("the gateway is not ready: {e}"));
    let anonymous = Http::new(&gateway.base_url());
    let ari = Rest::new(lab);

    // The page and its files need no token; the data does.
    for (path, kind) in [
        ("/", "text/html"),
        ("/monitor.js", "text/javascript"),
        ("/monitor.css", "text/css"),
    ] {
        let reply = anonymous.get(path).await.unwrap();
        assert_eq!(reply.status, 200, "GET {path}: {}", reply.text);
        let content_type = reply.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with(kind), "GET {path}: {content_type}");
        let csp = reply.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "GET {path}: CSP {csp:?}"
        );
    }
    let refused = anonymous.get("/api/calls/active").await.unwrap();
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert!(
        WsClient::connect(&gateway.ws_url("/ws/monitor"), None)
            .await
            .is_err(),
        "/ws/monitor without the token is refused"
    );
    let mut monitor = WsClient::connect(&gateway.ws_url("/ws/monitor"), Some(TOKEN))
        .await
        .unwrap();
    let hello = monitor.next_json(WAIT).await.unwrap();
    assert_eq!(hello["type"], "connected", "{hello}");
    assert_eq!(hello["asterisk"]["connected"], true, "{hello}");
    assert_eq!(hello["asterisk"]["appName"], app.as_str(), "{hello}");
    assert!(hello["endedCalls"].is_array(), "{hello}");
    assert_eq!(
        hello["asterisk"]["servers"][0]["connected"], true,
        "{hello}"
    );
    let server = hello["asterisk"]["servers"][0]["name"].clone();
    let stats = event(&mut monitor, "stats", None).await;
    assert_eq!(stats["asterisk"]["connected"], true, "{stats}");
    assert!(stats["activeCalls"].is_u64(), "{stats}");

    let driver = Chromedriver::start();
    let page = Page {
        client: driver.session().await,
    };
    page.client.goto(&gateway.base_url()).await.unwrap();

    // The token, asked for because the gateway has one; a wrong one is refused.
    let input = page
        .client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("#token-input"))
        .await
        .unwrap();
    page.until(
        "the token form",
        "return !document.getElementById('login').hidden && document.getElementById('monitor').hidden;",
        vec![],
    )
    .await;
    input.send_keys("not-the-token").await.unwrap();
    page.client
        .find(Locator::Css("#token-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.until(
        "that the token was refused",
        "return document.getElementById('login-error').textContent.includes('refused');",
        vec![],
    )
    .await;
    input.send_keys(TOKEN).await.unwrap();
    page.client
        .find(Locator::Css("#token-form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    page.until(
        "the monitor connected and Asterisk up",
        "return document.getElementById('ws-state').dataset.state === 'up'
             && document.getElementById('ari-state').dataset.state === 'up';",
        vec![],
    )
    .await;
    let ari_state = page.text("#ari-state").await;
    assert!(ari_state.contains(&app), "{ari_state}");
    assert_eq!(page.run(OBSERVER, vec![]).await, json!(true));

    // A call: on the page within 1 s of call_started, with what the operator needs.
    let caller = format!("8155{:06}", fastrand::u32(..1_000_000));
    let audio = CallerAudio::tone(1000.0, Duration::from_secs(20)).dtmf_digits(
        Duration::from_millis(1500),
        Duration::from_millis(400),
        "42",
    );
    let mut sipp = call(&app, &caller, "8000", &audio);
    let started = event(&mut monitor, "call_started", None).await;
    let call_id = started["callId"].as_str().unwrap().to_owned();
    let channel_id = started["channelId"].as_str().unwrap().to_owned();
    assert_eq!(started["callerNumber"], caller.as_str(), "{started}");
    assert!(started["media"].is_string(), "{started}");
    assert_eq!(started["server"], server, "{started}");
    let shown = page.row_event(&call_id, "added").await;
    let shown_after = shown - event_ms(&started);
    // The channel was created in Asterisk before its StasisStart: a bound from further up.
    let channel = ari.get(&format!("/channels/{channel_id}")).await.unwrap();
    assert_eq!(channel.status, 200, "{}", channel.text);
    let created = channel.json().unwrap()["creationtime"]
        .as_str()
        .map(ari_ms)
        .expect("the channel's creationtime");
    let since_created = shown - created;
    println!(
        "monitor page: call shown {shown_after} ms after call_started, \
         {since_created} ms after Asterisk created the channel"
    );
    assert!(
        shown_after < i64::try_from(PAGE_LAG.as_millis()).unwrap(),
        "the page showed the call {shown_after} ms after call_started"
    );
    assert!(
        since_created < i64::try_from(PAGE_LAG.as_millis()).unwrap(),
        "the page showed the call {since_created} ms after Asterisk created the channel"
    );
    let row = page.row("active-calls", &call_id).await;
    assert_eq!(row[0], caller, "{row:?}");
    assert_eq!(row[1], "8000", "{row:?}");
    assert_eq!(row[5], started["media"].as_str().unwrap(), "{row:?}");
    assert_eq!(row[8], server.as_str().unwrap(), "{row:?}");

    // Audio flows both ways (the bot echoes): frames/s on the page, backend connected;
    // selected, its DTMF and the bot's transcript.
    page.flowing(&call_id).await;
    let duration_before = page.row("active-calls", &call_id).await[2].clone();
    page.select(&call_id).await;
    page.until(
        "the duration ticking",
        "const row = [...document.querySelectorAll('#active-calls tbody tr')]
           .find((r) => r.dataset.callId === arguments[0]);
         return row && row.cells[2].textContent !== arguments[1];",
        vec![json!(call_id), json!(duration_before)],
    )
    .await;
    let backends = page.text("#backend-state").await;
    assert!(backends.contains("1 connected"), "{backends}");

    // The bot ends the call: off the active list within 1 s of call_ended, in the ended list.
    bot.connections()[0].send(Action::Close(1000)).unwrap();
    let ended = event(&mut monitor, "call_ended", Some(&call_id)).await;
    assert_eq!(ended["reason"], "backend_closed", "{ended}");
    let removed = page.row_event(&call_id, "removed").await;
    let removed_after = removed - event_ms(&ended);
    println!("monitor page: call removed {removed_after} ms after call_ended");
    assert!(
        removed_after < i64::try_from(PAGE_LAG.as_millis()).unwrap(),
        "the page removed the call {removed_after} ms after call_ended"
    );
    let row = page.row("ended-calls", &call_id).await;
    assert_eq!(row.first(), Some(&caller), "{row:?}");
    assert_eq!(row.last().map(String::as_str), Some("backend_closed"));
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(status.success(), "SIPp exited {status}");

    // A second call, hung up with the page's button (the screenshot is taken before: an
    // active call, selected, and an ended one).
    let caller = format!("8156{:06}", fastrand::u32(..1_000_000));
    sipp = call(&app, &caller, "8001", &audio);
    let started = event(&mut monitor, "call_started", None).await;
    let call_id = started["callId"].as_str().unwrap().to_owned();
    let second_channel = started["channelId"].as_str().unwrap().to_owned();
    assert_ne!(second_channel, channel_id);
    page.row_event(&call_id, "added").await;
    page.flowing(&call_id).await;
    page.select(&call_id).await;
    let png = page.client.screenshot().await.unwrap();
    let artifact = target_dir().join("monitor-page.png");
    std::fs::write(&artifact, &png)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", artifact.display()));
    println!("monitor page: screenshot in {}", artifact.display());
    page.click(&format!(
        "#active-calls tr[data-call-id='{call_id}'] button.disconnect"
    ))
    .await;
    // The page asks before it hangs up.
    let deadline = Instant::now() + WAIT;
    while page.client.accept_alert().await.is_err() {
        assert!(Instant::now() < deadline, "no confirmation asked");
        tokio::time::sleep(POLL).await;
    }
    let clicked = now_ms();
    let ended = event(&mut monitor, "call_ended", Some(&call_id)).await;
    assert_eq!(ended["reason"], "hangup_requested", "{ended}");
    println!(
        "monitor page: hang-up button to call_ended {} ms",
        event_ms(&ended) - clicked
    );
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(status.success(), "SIPp exited {status}");
    channel_gone(&ari, &second_channel).await;
    page.row_event(&call_id, "removed").await;
    page.until(
        "the hung-up call in the ended list with its reason",
        "const row = [...document.querySelectorAll('#ended-calls tbody tr')]
           .find((r) => r.dataset.callId === arguments[0]);
         return row && row.querySelector('.reason').textContent === 'hangup_requested';",
        vec![json!(call_id)],
    )
    .await;
    let notice = page.text("#notice").await;
    assert!(notice.contains("disconnect requested"), "{notice}");

    // A third call, transferred with the page's form to the lab's echo: the bot's leg is
    // removed, the call shows as transferring; then hung up with the button.
    let caller = format!("8157{:06}", fastrand::u32(..1_000_000));
    sipp = call(&app, &caller, "8002", &audio);
    let started = event(&mut monitor, "call_started", None).await;
    let call_id = started["callId"].as_str().unwrap().to_owned();
    let third_channel = started["channelId"].as_str().unwrap().to_owned();
    page.row_event(&call_id, "added").await;
    page.flowing(&call_id).await;
    page.click(&format!(
        "#active-calls tr[data-call-id='{call_id}'] button.transfer"
    ))
    .await;
    let endpoint = page
        .client
        .find(Locator::Css("#transfer-endpoint"))
        .await
        .unwrap();
    endpoint.send_keys("Local/777@default").await.unwrap();
    page.click("#transfer-form button[type=submit]").await;
    page.until(
        "the transfer accepted",
        "return document.getElementById('notice').textContent.includes('transfer requested');",
        vec![],
    )
    .await;
    let bot_leg = bot.connections().last().cloned().unwrap();
    bot_leg
        .wait_stop(WAIT)
        .await
        .unwrap_or_else(|e| panic!("the bot's leg is not stopped by the transfer: {e}"));
    page.until(
        "the call transferring",
        "const row = [...document.querySelectorAll('#active-calls tbody tr')]
           .find((r) => r.dataset.callId === arguments[0]);
         return row && row.cells[3].textContent === 'transferring';",
        vec![json!(call_id)],
    )
    .await;
    page.click(&format!(
        "#active-calls tr[data-call-id='{call_id}'] button.disconnect"
    ))
    .await;
    let deadline = Instant::now() + WAIT;
    while page.client.accept_alert().await.is_err() {
        assert!(Instant::now() < deadline, "no confirmation asked");
        tokio::time::sleep(POLL).await;
    }
    let ended = event(&mut monitor, "call_ended", Some(&call_id)).await;
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(status.success(), "SIPp exited {status}");
    channel_gone(&ari, &third_channel).await;
    page.row_event(&call_id, "removed").await;
    let row = page.row("ended-calls", &call_id).await;
    assert_eq!(
        row.last().map(String::as_str),
        ended["reason"].as_str(),
        "{row:?}"
    );

    // The gateway goes away: the page says so (and keeps retrying).
    gateway.sigterm().unwrap();
    page.until(
        "the monitor connection down",
        "return document.getElementById('ws-state').dataset.state === 'down';",
        vec![],
    )
    .await;
    page.client.close().await.unwrap();
    drop(driver);
}

/// Waits until Asterisk no longer has `channel_id`.
async fn channel_gone(ari: &Rest, channel_id: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = ari.get(&format!("/channels/{channel_id}")).await.unwrap();
        if reply.status == 404 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the channel is still in Asterisk: {}",
            reply.text
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_configured_token_the_page_asks_for_none() {
    let lab = Lab::get().await;
    let app = ari_lab::unique_name("gw-monitor-open");
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let url = bot.url("/bot");
    let gateway = Gateway::start(
        lab,
        &["--app", app.as_str(), "--backend-url", url.as_str()],
        &[],
    );
    gateway
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("the gateway is not ready: {e}"));
    let driver = Chromedriver::start();
    let page = Page {
        client: driver.session().await,
    };
    page.client.goto(&gateway.base_url()).await.unwrap();
    page.until(
        "the monitor connected, with no token asked",
        "return document.getElementById('ws-state').dataset.state === 'up'
             && document.getElementById('ari-state').dataset.state === 'up'
             && document.getElementById('login').hidden
             && !document.getElementById('monitor').hidden
             && document.getElementById('sign-out').hidden;",
        vec![],
    )
    .await;
    let empty = page.text("#no-calls").await;
    assert_eq!(empty, "No active call.");
    page.client.close().await.unwrap();
    drop(driver);
    gateway.sigterm().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_asterisk_servers_the_page_shows_each_and_the_calls_server() {
    // The lab registered twice, under two names, with an app for each (Asterisk keeps one
    // events socket per app).
    let lab = Lab::get().await;
    let east_app = ari_lab::unique_name("gw-monitor-east");
    let west_app = ari_lab::unique_name("gw-monitor-west");
    let east = format!("east={}?app={east_app}", lab.ari_url);
    let west = format!("west={}?app={west_app}", lab.ari_url);
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let url = bot.url("/bot");
    let gateway = Gateway::start(
        lab,
        &[
            "--ari-url",
            east.as_str(),
            "--ari-url",
            west.as_str(),
            "--backend-url",
            url.as_str(),
        ],
        &[],
    );
    gateway
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("the gateway is not ready: {e}"));
    let driver = Chromedriver::start();
    let page = Page {
        client: driver.session().await,
    };
    page.client.goto(&gateway.base_url()).await.unwrap();
    page.until(
        "both servers connected",
        "return document.getElementById('ws-state').dataset.state === 'up'
             && document.getElementById('ari-state').dataset.state === 'up';",
        vec![],
    )
    .await;
    let ari_state = page.text("#ari-state").await;
    assert_eq!(
        ari_state, "Asterisk: 2/2 connected (east up, west up)",
        "{ari_state}"
    );
    assert_eq!(page.run(OBSERVER, vec![]).await, json!(true));

    let audio = CallerAudio::tone(1000.0, Duration::from_secs(10));
    let sipp = call(&west_app, "815550199", "8000", &audio);
    let call_id = page
        .until(
            "a call",
            "const row = document.querySelector('#active-calls tbody tr');
             return row ? row.dataset.callId : null;",
            vec![],
        )
        .await;
    let call_id = call_id.as_str().unwrap().to_owned();
    page.flowing(&call_id).await;
    let row = page.row("active-calls", &call_id).await;
    assert_eq!(row[8], "west", "{row:?}");
    bot.connections()[0].send(Action::Close(1000)).unwrap();
    page.row_event(&call_id, "removed").await;
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(status.success(), "SIPp exited {status}");
    page.client.close().await.unwrap();
    drop(driver);
    gateway.sigterm().unwrap();
}
