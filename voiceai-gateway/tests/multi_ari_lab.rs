//! One gateway, several Asterisk servers, on the lab. The lab runs one Asterisk, so it is
//! registered twice under different names (`a=` and `b=`), each with its own Stasis app
//! (`?app=`): Asterisk keeps one events socket per app, so the same app twice would
//! leave the first registration deaf. Calls are keyed by server and channel; the API
//! shows which server a call is on.
//!
//! - a SIPp call to each registration's app: each call runs on its own server (the
//!   `server` field of `/api/calls/active` and of `/ws/monitor`'s `call_started` and
//!   `call_ended`), both reach the bot;
//! - per-server credentials: with the shared password wrong, the registration carrying
//!   its own (`http://USER:PASSWORD@...`) connects and takes calls while the other keeps
//!   retrying; the password is never printed.

mod common;

use std::time::Duration;

use ari_lab::Lab;
use ari_lab::sipp::{Sipp, UacCall};
use common::WAIT;
use common::bot::{Behaviour, Bot};
use common::gateway::Gateway;
use common::http::{Http, WsClient};
use serde_json::Value;
use voiceai_gateway::protocol::ProtocolKind;

const READY: Duration = Duration::from_secs(30);

fn call_to(app: &str, caller: &str) -> Sipp {
    Sipp::call(&UacCall {
        dialled: "8000".into(),
        caller: caller.into(),
        app: app.into(),
    })
    .expect("sipp caller")
}

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

/// Waits until the gateway holds a call from each of `callers`; returns them in order.
async fn wait_calls(http: &Http, callers: &[&str], within: Duration) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let calls = active(http).await;
        let found: Vec<Value> = callers
            .iter()
            .filter_map(|caller| calls.iter().find(|c| c["callerNumber"] == *caller).cloned())
            .collect();
        if found.len() == callers.len() {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {within:?} the gateway holds {calls:?}, not calls from {callers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn host_of(lab: &Lab) -> String {
    lab.ari_url
        .split_once("://")
        .map_or(lab.ari_url.as_str(), |(_, rest)| rest)
        .to_owned()
}

#[tokio::test]
async fn each_registration_takes_its_own_calls_and_the_api_shows_the_server() {
    let lab = Lab::get().await;
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    let app = ari_lab::unique_name("gw-multi");
    let (app_a, app_b) = (format!("{app}-a"), format!("{app}-b"));
    let url_a = format!("a={}?app={app_a}", lab.ari_url);
    let url_b = format!("b={}?app={app_b}", lab.ari_url);
    let backend = bot.url("/bot");
    let gateway = Gateway::start(
        lab,
        &[
            "--app",
            app.as_str(),
            "--ari-url",
            url_a.as_str(),
            "--ari-url",
            url_b.as_str(),
            "--backend-url",
            backend.as_str(),
            "--hold-music",
            "none",
            "--audiosocket-listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    gateway.wait_ready(READY).await.expect("ready");
    for server in ["server=a", "server=b"] {
        gateway
            .wait_for_line(&format!("ARI connected {server}"), WAIT)
            .await
            .expect("both servers connected");
    }
    let http = Http::new(&gateway.base_url());
    let mut monitor = WsClient::connect(&gateway.ws_url("/ws/monitor"), None)
        .await
        .expect("/ws/monitor");

    let _on_a = call_to(&app_a, "820100");
    let _on_b = call_to(&app_b, "820101");
    let calls = wait_calls(&http, &["820100", "820101"], Duration::from_secs(15)).await;
    assert_eq!(calls[0]["server"], "a", "{}", calls[0]);
    assert_eq!(calls[1]["server"], "b", "{}", calls[1]);
    for call in &calls {
        let id = call["callId"].as_str().unwrap_or_default();
        let one = http
            .get(&format!("/api/calls/{id}"))
            .await
            .expect("GET call")
            .json();
        assert_eq!(one["call"]["server"], call["server"], "{one}");
    }
    // Keyed by server: the same registry holds both, each channel once.
    let channels: std::collections::BTreeSet<&str> = calls
        .iter()
        .filter_map(|c| c["channelId"].as_str())
        .collect();
    assert_eq!(channels.len(), 2);

    let mut started = Vec::new();
    while started.len() < 2 {
        let mut seen = monitor
            .wait_for(WAIT, |m| m["type"] == "call_started")
            .await
            .expect("call_started on /ws/monitor");
        started.extend(seen.pop());
    }
    let servers: std::collections::BTreeSet<String> = started
        .iter()
        .map(|m| m["server"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        servers,
        ["a", "b"].iter().map(|s| (*s).to_owned()).collect(),
        "{started:?}"
    );
    bot.wait_connection(1, WAIT)
        .await
        .expect("both calls at the bot");

    for call in &calls {
        let id = call["callId"].as_str().unwrap_or_default();
        let _ = http
            .post_json(&format!("/api/calls/{id}/disconnect"), &Value::Null)
            .await;
        let mut seen = monitor
            .wait_for(WAIT, |m| m["type"] == "call_ended" && m["callId"] == id)
            .await
            .expect("call_ended on /ws/monitor");
        let ended = seen.pop().unwrap_or_default();
        assert_eq!(ended["server"], call["server"], "{ended}");
    }
}

#[tokio::test]
async fn a_registration_with_its_own_credentials_works_while_the_other_is_refused() {
    let lab = Lab::get().await;
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    let app = ari_lab::unique_name("gw-creds");
    let (app_a, app_b) = (format!("{app}-a"), format!("{app}-b"));
    let host = host_of(lab);
    let scheme = lab.ari_url.split("://").next().unwrap_or("http");
    // a: the shared (wrong) password; b: the lab's user and password in its URL.
    let urls = format!(
        "a={}?app={app_a},b={scheme}://{}:{}@{host}?app={app_b}",
        lab.ari_url, lab.username, lab.password
    );
    let backend = bot.url("/bot");
    let gateway = Gateway::start(
        lab,
        &[
            "--app",
            app.as_str(),
            "--backend-url",
            backend.as_str(),
            "--hold-music",
            "none",
            "--audiosocket-listen",
            "127.0.0.1:0",
        ],
        &[
            ("ARI_URL", urls.as_str()),
            ("ARI_PASSWORD", "not-the-password"),
        ],
    );
    gateway.wait_ready(READY).await.expect("ready through b");
    gateway
        .wait_for_line("ARI connected server=b", WAIT)
        .await
        .expect("b connected");
    let http = Http::new(&gateway.base_url());
    let _call = call_to(&app_b, "820200");
    let calls = wait_calls(&http, &["820200"], Duration::from_secs(15)).await;
    assert_eq!(calls[0]["server"], "b");
    bot.wait_connection(0, WAIT)
        .await
        .expect("the call at the bot");
    assert!(
        !gateway
            .lines()
            .iter()
            .any(|l| l.contains("ARI connected server=a")),
        "a connected with a wrong password:\n{}",
        gateway.output()
    );
    let secret = format!(":{}@", lab.password);
    assert!(
        !gateway.output().contains(&secret),
        "a password was printed:\n{}",
        gateway.output()
    );
    let id = calls[0]["callId"].as_str().unwrap_or_default();
    let _ = http
        .post_json(&format!("/api/calls/{id}/disconnect"), &Value::Null)
        .await;
}
