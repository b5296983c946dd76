//! Proves the lab: a real Asterisk 22 whose ARI, events, dialplan, trunk carrier and
//! inbound SIP path work. Plain hyper and tokio-tungstenite, no ari-client.

use std::time::Duration;

use ari_lab::events::Events;
use ari_lab::rest::Rest;
use ari_lab::sipp::{Sipp, UacCall};
use ari_lab::{Lab, unique_name};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn is_channel(id: &str) -> impl Fn(&Value) -> bool + '_ {
    move |event| event["channel"]["id"] == id
}

/// Originates `endpoint` into `app`, expects it answered (StasisStart in state Up), hangs
/// it up and returns its ChannelDestroyed.
async fn answered_then_hung_up(
    rest: &Rest,
    events: &mut Events,
    endpoint: &str,
    app: &str,
    channel: &str,
) -> Value {
    let response = rest
        .post(&format!(
            "/channels?endpoint={endpoint}&app={app}&channelId={channel}"
        ))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text);
    let start = events
        .wait_for("StasisStart", WAIT, is_channel(channel))
        .await
        .unwrap();
    assert_eq!(start["channel"]["state"], "Up");
    let hangup = rest.delete(&format!("/channels/{channel}")).await.unwrap();
    assert_eq!(hangup.status, 204, "{}", hangup.text);
    events
        .wait_for("ChannelDestroyed", WAIT, is_channel(channel))
        .await
        .unwrap()
}

#[tokio::test]
async fn asterisk_info_reports_asterisk_22() {
    let lab = Lab::get().await;
    let response = Rest::new(lab).get("/asterisk/info").await.unwrap();
    assert_eq!(response.status, 200, "{}", response.text);
    let info = response.json().unwrap();
    let version = info["system"]["version"].as_str().unwrap();
    assert!(
        version.starts_with("22."),
        "lab runs Asterisk {version}, expected 22.x"
    );
}

#[tokio::test]
async fn wrong_password_is_refused() {
    let lab = Lab::get().await;
    let wrong = Lab {
        password: "not-the-password".into(),
        ..lab.clone()
    };
    let response = Rest::new(&wrong).get("/asterisk/info").await.unwrap();
    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn events_websocket_registers_the_app() {
    let lab = Lab::get().await;
    let app = unique_name("lab-ws");
    let _events = Events::connect(lab, &app).await.unwrap();
    let response = Rest::new(lab)
        .get(&format!("/applications/{app}"))
        .await
        .unwrap();
    assert_eq!(
        response.status, 200,
        "app {app} not registered: {}",
        response.text
    );
    assert_eq!(response.json().unwrap()["name"], app.as_str());
}

#[tokio::test]
async fn local_originate_enters_stasis() {
    let lab = Lab::get().await;
    let rest = Rest::new(lab);
    let app = unique_name("lab-local");
    let channel = unique_name("chan");
    let mut events = Events::connect(lab, &app).await.unwrap();

    let response = rest
        .post(&format!(
            "/channels?endpoint=Local/answer@lab&app={app}&channelId={channel}&formats=ulaw"
        ))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text);

    let start = events
        .wait_for("StasisStart", WAIT, is_channel(&channel))
        .await
        .unwrap();
    assert_eq!(start["application"], app.as_str());

    assert_eq!(
        rest.delete(&format!("/channels/{channel}"))
            .await
            .unwrap()
            .status,
        204
    );
    events
        .wait_for("StasisEnd", WAIT, is_channel(&channel))
        .await
        .unwrap();
}

#[tokio::test]
async fn local_busy_reports_busy_dial_status() {
    let lab = Lab::get().await;
    let app = unique_name("lab-busy");
    let channel = unique_name("chan");
    let mut events = Events::connect(lab, &app).await.unwrap();
    let response = Rest::new(lab)
        .post(&format!(
            "/channels?endpoint=Local/busy@lab&app={app}&channelId={channel}&formats=ulaw"
        ))
        .await
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text);
    let dial = events
        .wait_for("Dial", WAIT, |e| {
            e["peer"]["id"] == channel.as_str() && e["dialstatus"] != ""
        })
        .await
        .unwrap();
    assert_eq!(dial["dialstatus"], "BUSY");
}

#[tokio::test]
async fn trunk_call_is_answered_by_the_carrier() {
    let lab = Lab::get().await;
    let rest = Rest::new(lab);
    let app = unique_name("lab-trunk");
    let channel = unique_name("chan");
    let mut events = Events::connect(lab, &app).await.unwrap();

    let destroyed =
        answered_then_hung_up(&rest, &mut events, "PJSIP/1000@trunk", &app, &channel).await;
    assert_eq!(
        destroyed["cause"], 16,
        "normal clearing after our hangup: {destroyed}"
    );
}

/// The carrier's numbering plan gives the Q.850 causes the dialer maps to outcomes.
#[tokio::test]
async fn trunk_failures_carry_q850_causes() {
    let lab = Lab::get().await;
    let rest = Rest::new(lab);
    let app = unique_name("lab-causes");
    let mut events = Events::connect(lab, &app).await.unwrap();
    // (number, timeout seconds, expected cause)
    let cases = [
        ("2000", 30, 17),
        ("5000", 30, 21),
        ("6000", 30, 34),
        ("9000", 30, 1),
        ("3000", 2, 19),
    ];
    let mut channels = Vec::new();
    for (number, timeout, cause) in cases {
        let channel = unique_name(&format!("chan-{number}"));
        let response = rest
            .post(&format!("/channels?endpoint=PJSIP/{number}@trunk&app={app}&channelId={channel}&timeout={timeout}"))
            .await
            .unwrap();
        assert_eq!(response.status, 200, "{number}: {}", response.text);
        channels.push((number, channel, cause));
    }
    // The originated channels are subscribed to the app, so their ends reach us.
    let mut pending = channels.clone();
    while !pending.is_empty() {
        let event = events
            .wait_for("ChannelDestroyed", WAIT, |_| true)
            .await
            .unwrap();
        if let Some(at) = pending
            .iter()
            .position(|(_, id, _)| event["channel"]["id"] == id.as_str())
        {
            let (number, _, cause) = pending.remove(at);
            assert_eq!(event["cause"], cause, "number {number}: {event}");
        }
    }
}

#[tokio::test]
async fn sipp_call_reaches_stasis_with_numbers_as_args() {
    let lab = Lab::get().await;
    let app = unique_name("lab-uac");
    let mut events = Events::connect(lab, &app).await.unwrap();
    let call = UacCall {
        dialled: "15550001".into(),
        caller: "4925551234".into(),
        app: app.clone(),
    };
    let sipp = Sipp::call(&call).unwrap();

    let start = events
        .wait_for("StasisStart", WAIT, |_| true)
        .await
        .unwrap();
    assert_eq!(
        start["args"],
        serde_json::json!(["15550001", "4925551234"]),
        "{start}"
    );
    assert_eq!(start["channel"]["caller"]["number"], "4925551234");
    let channel = start["channel"]["id"].as_str().unwrap().to_owned();
    assert!(
        start["channel"]["name"]
            .as_str()
            .unwrap()
            .starts_with("PJSIP/inbound-"),
        "{start}"
    );

    // Real audio flows: Asterisk sees RTP from the pcap.
    let rest = Rest::new(lab);
    assert_eq!(
        rest.post(&format!("/channels/{channel}/answer"))
            .await
            .unwrap()
            .status,
        204
    );
    // Asterisk counts the packets as they come: ask until it has seen a few.
    let received = tokio::time::timeout(WAIT, async {
        loop {
            let rtp = rest
                .get(&format!("/channels/{channel}/rtp_statistics"))
                .await
                .unwrap();
            assert_eq!(rtp.status, 200, "{}", rtp.text);
            let count = rtp.json().unwrap()["rxcount"].as_u64().unwrap();
            if count > 10 {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("Asterisk received RTP from SIPp's pcap");
    assert!(received > 10);

    assert_eq!(
        rest.delete(&format!("/channels/{channel}"))
            .await
            .unwrap()
            .status,
        204
    );
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(status.success(), "sipp ended with {status}");
}

/// A test can run a callee of its own (here the carrier's scenario on a free port) and
/// dial it through the trunk endpoint with an explicit URI.
#[tokio::test]
async fn a_tests_own_sipp_uas_answers_through_the_trunk() {
    let lab = Lab::get().await;
    let rest = Rest::new(lab);
    let app = unique_name("lab-own-uas");
    let channel = unique_name("chan");
    let mut events = Events::connect(lab, &app).await.unwrap();
    let uas = Sipp::uas(&ari_lab::sipp::scenario("trunk-uas.xml")).unwrap();
    let endpoint = uas.dial_string("1000");
    assert!(
        endpoint.starts_with("PJSIP/trunk/sip:1000@127.0.0.1:"),
        "{endpoint}"
    );
    answered_then_hung_up(&rest, &mut events, &endpoint, &app, &channel).await;
    drop(uas);
}
