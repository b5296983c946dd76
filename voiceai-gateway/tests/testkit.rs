//! Tests of the test kit itself (tests/common): the bot against a WebSocket client that
//! plays the gateway, the process helper against the real binary and a shell, and the
//! HTTP client against the lab's ARI.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use common::WAIT;
use common::bot::{Action, Behaviour, Bot, Closed, decode, encode};
use common::gateway::{Gateway, free_port};
use common::http::{Http, WsClient, basic_auth, form_encode};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voiceai_gateway::audio::AudioFormat;
use voiceai_gateway::protocol::twilio::{Encoder, StreamIds};
use voiceai_gateway::protocol::{CallInfo, ProtocolKind, raw};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn call() -> CallInfo {
    CallInfo {
        channel_id: "1700000000.1".into(),
        caller_number: "+15551230000".into(),
        caller_name: "Ada".into(),
        dialed_number: "8000".into(),
        variables: BTreeMap::new(),
    }
}

/// Connects to the bot as the gateway would, with a bearer token.
async fn connect(url: &str) -> Client {
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", HeaderValue::from_static("Bearer secret"));
    tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
        .await
        .unwrap()
        .unwrap()
        .0
}

async fn next(client: &mut Client) -> Message {
    tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a message from the bot")
        .expect("the bot's socket is open")
        .expect("a well-formed frame")
}

async fn next_json(client: &mut Client) -> Value {
    match next(client).await {
        Message::Text(text) => serde_json::from_str(text.as_str()).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

fn tone_frames(format: AudioFormat, frequency: f64, frames: usize) -> Vec<Vec<u8>> {
    let rate = format.sample_rate();
    let samples = ari_lab::audio::sine(frequency, rate, frames as f64 * 0.02, 8000);
    encode(format, &samples)
        .chunks(format.frame_bytes())
        .map(<[u8]>::to_vec)
        .collect()
}

fn twilio_payload(message: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(message["media"]["payload"].as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn twilio_bot_records_the_stream_and_echoes_it() {
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::echo()).await;
    let mut client = connect(&bot.url("/twilio?x=1")).await;
    let (mut encoder, opening) = Encoder::start(StreamIds::random("ACtest"), &call());
    for message in opening {
        let text = String::from_utf8(message.to_vec()).unwrap();
        client.send(Message::text(text)).await.unwrap();
    }
    for (n, frame) in tone_frames(AudioFormat::Ulaw, 440.0, 50)
        .into_iter()
        .enumerate()
    {
        let media = encoder.media(&frame, 20 * n as u64);
        client
            .send(Message::text(String::from_utf8(media.to_vec()).unwrap()))
            .await
            .unwrap();
    }
    for digit in ['5', '#'] {
        let dtmf = encoder.dtmf(digit);
        client
            .send(Message::text(String::from_utf8(dtmf.to_vec()).unwrap()))
            .await
            .unwrap();
    }

    let conn = bot.wait_for_connection(WAIT).await.unwrap();
    let start = conn.wait_start(WAIT).await.unwrap();
    assert_eq!(
        start["start"]["customParameters"]["from_number"],
        "+15551230000"
    );
    assert_eq!(conn.wait_frames(50, WAIT).await.unwrap(), 50);
    assert_eq!(conn.wait_dtmf(2, WAIT).await.unwrap(), "5#");
    let tone = conn.inbound_tone(Duration::from_secs(1)).unwrap();
    assert!((tone - 440.0).abs() < 5.0, "{tone}");

    // The echo: the same 50 frames back, as media messages with the stream's sid.
    let mut echoed = Vec::new();
    while echoed.len() < 50 * 160 {
        let message = next_json(&mut client).await;
        assert_eq!(message["event"], "media", "{message}");
        assert_eq!(message["streamSid"], encoder.ids().stream_sid.as_str());
        echoed.extend(twilio_payload(&message));
    }
    let samples = decode(AudioFormat::Ulaw, &echoed);
    let tone = ari_lab::audio::detect_tone(&samples, 8000).unwrap();
    assert!((tone - 440.0).abs() < 5.0, "{tone}");

    let mark = encoder.mark("played-1");
    client
        .send(Message::text(String::from_utf8(mark.to_vec()).unwrap()))
        .await
        .unwrap();
    let back = conn.wait_mark("played-1", WAIT).await.unwrap();
    assert_eq!(back.played, None);
    let stop = encoder.stop();
    client
        .send(Message::text(String::from_utf8(stop.to_vec()).unwrap()))
        .await
        .unwrap();
    conn.wait_stop(WAIT).await.unwrap();
    client.close(None).await.unwrap();
    assert!(matches!(
        conn.wait_closed(WAIT).await.unwrap(),
        Closed::ByPeer(1000, _) | Closed::ByPeer(1005, _)
    ));

    let record = conn.record();
    assert_eq!(record.path, "/twilio?x=1");
    assert_eq!(record.header("authorization"), Some("Bearer secret"));
    assert!(record.connected.is_some());
    assert!(record.frame_bytes.iter().all(|&n| n == 160));
    assert_eq!(record.frame_times.len(), 50);
    let events = record.events();
    assert_eq!(&events[..3], ["connected", "start", "media"]);
    assert_eq!(events.last().unwrap(), "stop");
    assert_eq!(record.after_stop, 0);
    assert_eq!(record.sent_audio_bytes, 50 * 160);
    assert!(record.malformed.is_empty(), "{:?}", record.malformed);
}

#[tokio::test]
async fn twilio_bot_bursts_marks_clears_sends_transcripts_and_closes_normally() {
    let behaviour = Behaviour::silent().on_start([
        Action::tone(1000.0, Duration::from_secs(2)),
        Action::Mark("greeting".into()),
    ]);
    let bot = Bot::start(ProtocolKind::Twilio, behaviour).await;
    let mut client = connect(&bot.url("/")).await;
    let (_encoder, opening) = Encoder::start(StreamIds::random("ACtest"), &call());
    for message in opening {
        let text = String::from_utf8(message.to_vec()).unwrap();
        client.send(Message::text(text)).await.unwrap();
    }
    // The burst: 100 frames of 20 ms at once, then the mark.
    let mut audio = Vec::new();
    let mut messages = 0;
    loop {
        let message = next_json(&mut client).await;
        match message["event"].as_str().unwrap() {
            "media" => {
                messages += 1;
                audio.extend(twilio_payload(&message));
            }
            "mark" => {
                assert_eq!(message["mark"]["name"], "greeting");
                break;
            }
            other => panic!("unexpected {other}: {message}"),
        }
    }
    assert_eq!(messages, 100);
    assert_eq!(audio.len(), 2 * 8000);
    let tone = ari_lab::audio::detect_tone(&decode(AudioFormat::Ulaw, &audio), 8000).unwrap();
    assert!((tone - 1000.0).abs() < 5.0, "{tone}");

    let conn = bot.wait_for_connection(WAIT).await.unwrap();
    conn.send(Action::Clear).unwrap();
    let clear = next_json(&mut client).await;
    assert_eq!(clear["event"], "clear");
    assert!(clear["streamSid"].as_str().unwrap().starts_with("MZ"));
    conn.send(Action::transcript("bot", "こんにちは")).unwrap();
    let transcript = next_json(&mut client).await;
    assert_eq!(
        transcript,
        json!({"event": "transcript", "speaker": "bot", "text": "こんにちは"})
    );
    conn.send(Action::Close(1000)).unwrap();
    match next(&mut client).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected a close frame, got {other:?}"),
    }
    assert_eq!(conn.wait_closed(WAIT).await.unwrap(), Closed::ByBot);
    assert!(conn.send(Action::Clear).is_err() || conn.record().closed.is_some());
}

#[tokio::test]
async fn raw_bot_speaks_slin16_and_control_messages() {
    let behaviour = Behaviour::echo().after_frames(10, [Action::Hangup(Some("normal".into()))]);
    let bot = Bot::start(ProtocolKind::Raw, behaviour).await;
    let mut client = connect(&bot.url("/raw")).await;
    client
        .send(Message::text(raw::start(&call(), AudioFormat::Slin16)))
        .await
        .unwrap();
    for frame in tone_frames(AudioFormat::Slin16, 700.0, 20) {
        assert_eq!(frame.len(), 640);
        client.send(Message::binary(frame)).await.unwrap();
    }
    client.send(Message::text(raw::dtmf('7'))).await.unwrap();

    let conn = bot.wait_for_connection(WAIT).await.unwrap();
    let start = conn.wait_start(WAIT).await.unwrap();
    assert_eq!(start["format"]["encoding"], "slin16");
    conn.wait_frames(20, WAIT).await.unwrap();
    assert_eq!(conn.wait_dtmf(1, WAIT).await.unwrap(), "7");
    assert_eq!(conn.samples().1, 16000);
    let tone = conn.inbound_tone(Duration::from_secs(1)).unwrap();
    assert!((tone - 700.0).abs() < 5.0, "{tone}");

    // 20 binary echoes, and the hangup after the 10th.
    let mut echoes = 0;
    let mut hangup_after = None;
    while echoes < 20 || hangup_after.is_none() {
        match next(&mut client).await {
            Message::Binary(data) => {
                assert_eq!(data.len(), 640);
                echoes += 1;
            }
            Message::Text(text) => {
                let value: Value = serde_json::from_str(text.as_str()).unwrap();
                assert_eq!(value, json!({"event": "hangup", "reason": "normal"}));
                hangup_after = Some(echoes);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(hangup_after, Some(10));

    conn.send(Action::Mark("m1".into())).unwrap();
    assert_eq!(
        next_json(&mut client).await,
        json!({"event": "mark", "name": "m1"})
    );
    client
        .send(Message::text(raw::mark("m1", false)))
        .await
        .unwrap();
    assert_eq!(
        conn.wait_mark("m1", WAIT).await.unwrap().played,
        Some(false)
    );
    conn.send(Action::Transfer {
        extension: "777".into(),
        context: Some("default".into()),
    })
    .unwrap();
    assert_eq!(
        next_json(&mut client).await,
        json!({"event": "transfer", "extension": "777", "context": "default"})
    );
    client
        .send(Message::text(raw::stop(raw::StopReason::Transfer)))
        .await
        .unwrap();
    assert_eq!(conn.wait_stop(WAIT).await.unwrap()["reason"], "transfer");
}

#[tokio::test]
async fn bot_abort_resets_without_a_close_frame() {
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    let mut client = connect(&bot.url("/")).await;
    let conn = bot.wait_for_connection(WAIT).await.unwrap();
    conn.send(Action::Abort).unwrap();
    let end = tokio::time::timeout(WAIT, client.next()).await.unwrap();
    match end {
        None | Some(Err(_)) => {}
        Some(Ok(message)) => panic!("expected a reset, got {message:?}"),
    }
    assert_eq!(conn.wait_closed(WAIT).await.unwrap(), Closed::ByBot);
}

#[tokio::test]
async fn bot_notices_a_gateway_that_vanishes() {
    let bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    let client = connect(&bot.url("/")).await;
    let conn = bot.wait_for_connection(WAIT).await.unwrap();
    drop(client);
    assert!(matches!(
        conn.wait_closed(WAIT).await.unwrap(),
        Closed::Abnormal(_)
    ));
    let waited = conn.wait_frames(1, Duration::from_millis(100)).await;
    assert!(waited.unwrap_err().contains("over"), "the wait says why");
}

#[tokio::test]
async fn bot_stops_listening_refuses_and_listens_again_on_the_same_port() {
    let mut bot = Bot::start(ProtocolKind::Twilio, Behaviour::silent()).await;
    let _first = connect(&bot.url("/")).await;
    bot.wait_for_connection(WAIT).await.unwrap();

    bot.stop_listening().await;
    let refused = TcpStream::connect(bot.addr()).await;
    assert!(refused.is_err(), "nothing listens");

    bot.listen_again().await;
    let _second = connect(&bot.url("/again")).await;
    let conn = bot.wait_for_connection(WAIT).await.unwrap();
    assert_eq!(conn.record().path, "/again");

    bot.refuse_with(Some(503));
    let error = tokio_tungstenite::connect_async(bot.url("/refused"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("503"), "{error}");
    bot.refuse_with(None);
    let _third = connect(&bot.url("/")).await;
    bot.wait_connection(2, WAIT).await.unwrap();
    assert_eq!(bot.connections().len(), 3);
    assert!(
        bot.wait_connection(3, Duration::from_millis(50))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn ws_client_talks_to_the_bot() {
    let bot = Bot::start(ProtocolKind::Raw, Behaviour::silent()).await;
    let mut client = WsClient::connect(&bot.url("/ws"), Some("tok"))
        .await
        .unwrap();
    client
        .send_json(&json!({"event": "start", "format": {"encoding": "ulaw"}}))
        .await
        .unwrap();
    let conn = bot.wait_for_connection(WAIT).await.unwrap();
    conn.wait_start(WAIT).await.unwrap();
    assert_eq!(conn.record().header("authorization"), Some("Bearer tok"));
    assert_eq!(conn.samples().1, 8000);
    conn.send(Action::transcript("caller", "hi")).unwrap();
    conn.send(Action::Text("{\"event\":\"other\"}".into()))
        .unwrap();
    let seen = client
        .wait_for(WAIT, |m| m["event"] == "other")
        .await
        .unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0]["text"], "hi");
    assert!(client.next_json(Duration::from_millis(50)).await.is_err());
}

#[tokio::test]
async fn gateway_helper_captures_output_and_exit_status() {
    let lab = ari_lab::Lab::from_env();
    let mut gateway = Gateway::start(&lab, &["--no-such-flag"], &[]);
    assert!(gateway.listen().starts_with("127.0.0.1:"));
    let line = gateway.wait_for_line("--no-such-flag", WAIT).await.unwrap();
    assert!(!line.is_empty());
    let status = gateway.wait_exit(WAIT).await.unwrap();
    assert_eq!(status.code(), Some(2), "{}", gateway.output());
    assert!(
        gateway
            .wait_for_line("never printed", Duration::from_millis(100))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn gateway_helper_sends_sigterm_to_its_own_child() {
    let script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done";
    let mut process = Gateway::spawn_program(Path::new("/bin/sh"), &["-c", script], &[]);
    process.wait_ready(WAIT).await.unwrap();
    process.sigterm().unwrap();
    process.wait_for_line("got-term", WAIT).await.unwrap();
    let status = process.wait_exit(WAIT).await.unwrap();
    assert!(status.success());
    assert_eq!(process.lines(), ["ready", "got-term"]);
}

#[tokio::test]
async fn gateway_helper_kills_a_child_that_does_not_exit() {
    let mut process = Gateway::spawn_program(
        Path::new("/bin/sh"),
        &[
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ],
        &[],
    );
    process.wait_ready(WAIT).await.unwrap();
    process.sigterm().unwrap();
    let error = process
        .wait_exit(Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(error.contains("killed"), "{error}");
}

#[test]
fn free_ports_and_form_encoding() {
    assert_ne!(free_port(), 0);
    assert_eq!(
        form_encode("Status=completed & <Hangup/>"),
        "Status%3Dcompleted+%26+%3CHangup%2F%3E"
    );
    assert_eq!(basic_auth("AC1", "tok"), "Basic QUMxOnRvaw==");
}

#[tokio::test]
async fn http_client_talks_to_the_labs_ari() {
    let lab = ari_lab::Lab::get().await;
    let ari = Http::new(&lab.ari_url);
    let refused = ari.get("/ari/asterisk/info").await.unwrap();
    assert_eq!(refused.status, 401);
    let info = ari
        .send(
            "GET",
            "/ari/asterisk/info",
            &[("authorization", &lab.basic_auth())],
            bytes::Bytes::new(),
        )
        .await
        .unwrap();
    assert_eq!(info.status, 200, "{}", info.text);
    assert!(info.json()["system"]["version"].is_string());
    assert!(info.header("content-type").unwrap().contains("json"));
    let bad = ari
        .post_json("/ari/channels", &json!({"endpoint": "x"}))
        .await
        .unwrap();
    assert_eq!(bad.status, 401);
}
