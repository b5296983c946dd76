//! Backend sessions against a real local WebSocket server (tokio-tungstenite on
//! 127.0.0.1:0): the Twilio and raw openings, audio transcoded both ways, the bearer
//! header, transcripts, malformed messages, close classification, time-outs and a backend
//! that stops reading. Every wait has a deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use voiceai_gateway::audio::AudioFormat;
use voiceai_gateway::audio::codec::{
    alaw_to_linear, linear_to_alaw, linear_to_ulaw, ulaw_to_linear,
};
use voiceai_gateway::backend::{
    BackendClose, BackendError, BackendEvent, BackendRx, BackendSettings, BackendTx, connect,
};
use voiceai_gateway::protocol::twilio::StreamIds;
use voiceai_gateway::protocol::{CallInfo, ProtocolKind, raw::StopReason};

const DEADLINE: Duration = Duration::from_secs(5);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: no result within {DEADLINE:?}"))
}

/// The bot's side of one accepted socket, and what its handshake carried.
struct Bot {
    ws: WebSocketStream<TcpStream>,
    authorization: Option<String>,
    path: String,
}

impl Bot {
    /// The next text message as JSON (skipping nothing: a binary frame fails the test).
    async fn json(&mut self) -> Value {
        match self.message().await {
            Message::Text(text) => serde_json::from_str(&text).unwrap(),
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    async fn binary(&mut self) -> Vec<u8> {
        match self.message().await {
            Message::Binary(data) => data.to_vec(),
            other => panic!("expected a binary message, got {other:?}"),
        }
    }

    async fn message(&mut self) -> Message {
        within("bot reading", self.ws.next())
            .await
            .expect("the gateway closed the socket")
            .expect("the socket failed")
    }

    async fn send_json(&mut self, value: Value) {
        self.send(Message::text(value.to_string())).await;
    }

    async fn send(&mut self, message: Message) {
        within("bot sending", self.ws.send(message)).await.unwrap();
    }
}

/// A listener that accepts one WebSocket; `refuse` answers the handshake with that status.
/// The task ends with an error (not a panic) when the handshake fails, as a refused one does.
// The handshake callback's error type is tungstenite's.
#[allow(clippy::result_large_err)]
async fn bot_server(refuse: Option<u16>) -> (String, JoinHandle<Result<Bot, String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/bot/stream", listener.local_addr().unwrap());
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let seen = Arc::new(Mutex::new((None, String::new())));
        let record = seen.clone();
        let callback = move |request: &Request, response: Response| {
            let authorization = request
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            *record.lock().unwrap() = (authorization, request.uri().to_string());
            match refuse {
                None => Ok(response),
                Some(status) => {
                    let mut refusal = ErrorResponse::new(Some("no".into()));
                    *refusal.status_mut() = status.try_into().unwrap();
                    Err(refusal)
                }
            }
        };
        let ws = tokio_tungstenite::accept_hdr_async(tcp, callback)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let (authorization, path) = seen.lock().unwrap().clone();
        Ok(Bot {
            ws,
            authorization,
            path,
        })
    });
    (url, accept)
}

fn call() -> CallInfo {
    CallInfo {
        channel_id: "1700000000.7".into(),
        caller_number: "+81312345678".into(),
        caller_name: "Hanako".into(),
        dialed_number: "8000".into(),
        variables: BTreeMap::from([("CUSTOMER".to_owned(), "42".to_owned())]),
    }
}

fn ids() -> StreamIds {
    StreamIds {
        account_sid: "AC00000000000000000000000000000000".into(),
        call_sid: "CA11111111111111111111111111111111".into(),
        stream_sid: "MZ22222222222222222222222222222222".into(),
    }
}

fn settings(url: &str, protocol: ProtocolKind) -> BackendSettings {
    let mut settings = BackendSettings::new(url);
    settings.protocol = protocol;
    settings
}

/// Opens a session to a fresh bot server.
async fn session(mut settings: BackendSettings, leg: AudioFormat) -> (BackendTx, BackendRx, Bot) {
    let (url, bot) = bot_server(None).await;
    settings.default_url = url.clone();
    let (tx, rx) = within("connect", connect(&settings, &url, &call(), &ids(), leg))
        .await
        .unwrap();
    let bot = within("accept", bot).await.unwrap().unwrap();
    (tx, rx, bot)
}

/// A 1 kHz tone, `samples` long, at `rate`.
fn tone(samples: usize, rate: f64) -> Vec<i16> {
    (0..samples)
        .map(|n| (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * n as f64 / rate).sin()) as i16)
        .collect()
}

fn decode_payload(media: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(media["media"]["payload"].as_str().unwrap())
        .unwrap()
}

/// Every sample within G.711's quantisation of the other (a few % of the magnitude).
fn assert_close(a: &[i16], b: &[i16]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        let diff = (i32::from(*x) - i32::from(*y)).abs();
        assert!(
            diff <= 16 + i32::from(*x).abs() / 16,
            "{x} vs {y} (diff {diff})"
        );
    }
}

#[tokio::test]
async fn twilio_opens_with_connected_then_start_and_numbers_media() {
    let mut settings = settings("", ProtocolKind::Twilio);
    settings.auth_token = Some("s3cret-token".into());
    let (mut tx, _rx, mut bot) = session(settings, AudioFormat::Ulaw).await;
    assert_eq!(bot.authorization.as_deref(), Some("Bearer s3cret-token"));
    assert_eq!(bot.path, "/bot/stream");
    assert_eq!(
        bot.json().await,
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    );
    let start = bot.json().await;
    assert_eq!(start["event"], "start");
    assert_eq!(start["sequenceNumber"], "1");
    assert_eq!(start["streamSid"], "MZ22222222222222222222222222222222");
    assert_eq!(
        start["start"]["callSid"],
        "CA11111111111111111111111111111111"
    );
    assert_eq!(start["start"]["tracks"], json!(["inbound"]));
    let parameters = &start["start"]["customParameters"];
    assert_eq!(parameters["from_number"], "+81312345678");
    assert_eq!(parameters["to_number"], "8000");
    assert_eq!(parameters["channel_id"], "1700000000.7");
    assert_eq!(parameters["CUSTOMER"], "42");
    assert_eq!(
        start["start"]["mediaFormat"],
        json!({"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1})
    );

    let frames: Vec<Vec<u8>> = (0..3_u8).map(|i| vec![i; 160]).collect();
    for frame in &frames {
        tx.send_audio(frame).await.unwrap();
    }
    let mut last_timestamp = None;
    for (i, frame) in frames.iter().enumerate() {
        let media = bot.json().await;
        assert_eq!(media["event"], "media");
        assert_eq!(media["sequenceNumber"], (i + 2).to_string());
        assert_eq!(media["media"]["track"], "inbound");
        assert_eq!(media["media"]["chunk"], (i + 1).to_string());
        let timestamp: u64 = media["media"]["timestamp"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        match last_timestamp {
            None => assert!(timestamp < 1000, "first timestamp {timestamp}"),
            Some(last) => assert_eq!(timestamp, last + 20),
        }
        last_timestamp = Some(timestamp);
        assert_eq!(&decode_payload(&media), frame);
    }
    tx.send_dtmf('5').await.unwrap();
    let dtmf = bot.json().await;
    assert_eq!(dtmf["event"], "dtmf");
    assert_eq!(dtmf["sequenceNumber"], "5");
    assert_eq!(
        dtmf["dtmf"],
        json!({"track": "inbound_track", "digit": "5"})
    );
    // Twilio has no A-D: not sent; not a digit at all: refused.
    tx.send_dtmf('A').await.unwrap();
    assert!(matches!(
        tx.send_dtmf('x').await,
        Err(BackendError::InvalidDigit { digit: 'X' })
    ));
    tx.send_mark("greeting", true).await.unwrap();
    let mark = bot.json().await;
    assert_eq!(mark["event"], "mark");
    assert_eq!(mark["sequenceNumber"], "6");
    assert_eq!(mark["mark"]["name"], "greeting");
    assert_eq!(tx.frames_sent(), 3);
}

#[tokio::test]
async fn alaw_leg_and_mulaw_bot_are_transcoded_both_ways() {
    let (mut tx, mut rx, mut bot) =
        session(settings("", ProtocolKind::Twilio), AudioFormat::Alaw).await;
    bot.json().await;
    bot.json().await;
    let linear = tone(160, 8000.0);
    let alaw: Vec<u8> = linear.iter().map(|&s| linear_to_alaw(s)).collect();
    tx.send_audio(&alaw).await.unwrap();
    let ulaw = decode_payload(&bot.json().await);
    assert_eq!(ulaw.len(), 160);
    let heard: Vec<i16> = ulaw.iter().map(|&b| ulaw_to_linear(b)).collect();
    let sent: Vec<i16> = alaw.iter().map(|&b| alaw_to_linear(b)).collect();
    assert_close(&sent, &heard);

    // The bot sends 25 ms of μ-law (any length is fine).
    let reply: Vec<u8> = tone(200, 8000.0)
        .iter()
        .map(|&s| linear_to_ulaw(s))
        .collect();
    let payload = base64::engine::general_purpose::STANDARD.encode(&reply);
    bot.send_json(json!({"event": "media", "streamSid": "MZ2", "media": {"payload": payload}}))
        .await;
    let BackendEvent::Audio(audio) = within("audio", rx.recv()).await else {
        panic!("expected audio");
    };
    assert_eq!(audio.len(), 200);
    let played: Vec<i16> = audio.iter().map(|&b| alaw_to_linear(b)).collect();
    let bot_sent: Vec<i16> = reply.iter().map(|&b| ulaw_to_linear(b)).collect();
    assert_close(&bot_sent, &played);

    bot.send_json(json!({"event": "mark", "mark": {"name": "m1"}}))
        .await;
    bot.send_json(json!({"event": "clear", "streamSid": "MZ2"}))
        .await;
    assert_eq!(
        within("mark", rx.recv()).await,
        BackendEvent::Mark("m1".into())
    );
    assert_eq!(within("clear", rx.recv()).await, BackendEvent::Clear);
}

#[tokio::test]
async fn raw_slin16_passes_through_and_a_ulaw_leg_is_resampled() {
    // Same format: bytes unchanged both ways; no token, no Authorization header.
    let (mut tx, mut rx, mut bot) =
        session(settings("", ProtocolKind::Raw), AudioFormat::Slin16).await;
    assert_eq!(bot.authorization, None);
    let start = bot.json().await;
    assert_eq!(start["event"], "start");
    assert_eq!(start["protocol"], "raw");
    assert_eq!(start["from_number"], "+81312345678");
    assert_eq!(start["to_number"], "8000");
    assert_eq!(start["format"]["encoding"], "slin16");
    assert_eq!(start["format"]["frame_bytes"], 640);
    let frame: Vec<u8> = (0..640).map(|i| (i % 251) as u8).collect();
    tx.send_audio(&frame).await.unwrap();
    assert_eq!(bot.binary().await, frame);
    bot.send(Message::binary(frame[..100].to_vec())).await;
    assert_eq!(
        within("audio", rx.recv()).await,
        BackendEvent::Audio(frame[..100].to_vec().into())
    );
    tx.send_dtmf('b').await.unwrap();
    assert_eq!(bot.json().await, json!({"event": "dtmf", "digit": "B"}));
    tx.send_mark("m", false).await.unwrap();
    assert_eq!(
        bot.json().await,
        json!({"event": "mark", "name": "m", "played": false})
    );
    bot.send_json(json!({"event": "hangup", "reason": "normal"}))
        .await;
    bot.send_json(json!({"event": "transfer", "extension": "100"}))
        .await;
    assert_eq!(
        within("hangup", rx.recv()).await,
        BackendEvent::Hangup {
            reason: Some("normal".into())
        }
    );
    assert_eq!(
        within("transfer", rx.recv()).await,
        BackendEvent::Transfer {
            extension: "100".into(),
            context: None
        }
    );

    // A μ-law leg with a slin16 backend: 160 bytes out become 640, and back.
    let (mut tx, mut rx, mut bot) =
        session(settings("", ProtocolKind::Raw), AudioFormat::Ulaw).await;
    bot.json().await;
    let linear = tone(160, 8000.0);
    let ulaw: Vec<u8> = linear.iter().map(|&s| linear_to_ulaw(s)).collect();
    tx.send_audio(&ulaw).await.unwrap();
    let slin16 = bot.binary().await;
    assert_eq!(slin16.len(), 640);
    let wide: Vec<i16> = slin16
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    // Every other sample of the 16 kHz stream is the 8 kHz sample itself.
    let odd: Vec<i16> = wide.iter().skip(1).step_by(2).copied().collect();
    let sent: Vec<i16> = ulaw.iter().map(|&b| ulaw_to_linear(b)).collect();
    assert_eq!(odd, sent);
    let reply: Vec<u8> = tone(320, 16000.0)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect();
    bot.send(Message::binary(reply)).await;
    let BackendEvent::Audio(audio) = within("audio", rx.recv()).await else {
        panic!("expected audio");
    };
    assert_eq!(audio.len(), 160);
}

#[tokio::test]
async fn transcripts_are_forwarded_and_malformed_messages_skipped() {
    for protocol in [ProtocolKind::Twilio, ProtocolKind::Raw] {
        let (_tx, mut rx, mut bot) = session(settings("", protocol), AudioFormat::Ulaw).await;
        let by_event = json!({"event": "transcript", "role": "user", "text": "もしもし"});
        let by_type = json!({"type": "transcript", "role": "bot", "text": "hello", "final": true});
        bot.send(Message::text("not json")).await;
        bot.send(Message::Ping(vec![1, 2].into())).await;
        bot.send_json(json!({"event": "media"})).await;
        bot.send_json(json!({"event": "mark", "mark": 7, "name": 7}))
            .await;
        bot.send_json(json!({"event": "no-such-event"})).await;
        bot.send_json(by_event.clone()).await;
        bot.send_json(by_type.clone()).await;
        if protocol == ProtocolKind::Twilio {
            bot.send(Message::binary(vec![1, 2, 3])).await;
            bot.send_json(json!({"event": "mark", "mark": {"name": "after"}}))
                .await;
        } else {
            bot.send_json(json!({"event": "mark", "name": "after"}))
                .await;
        }
        assert_eq!(
            within("transcript", rx.recv()).await,
            BackendEvent::Transcript(by_event)
        );
        assert_eq!(
            within("transcript", rx.recv()).await,
            BackendEvent::Transcript(by_type)
        );
        assert_eq!(
            within("mark", rx.recv()).await,
            BackendEvent::Mark("after".into())
        );
        // Twilio: bad JSON, media without a payload, a bad mark, a binary frame. Raw has
        // no `media` event (ignored, not malformed).
        let expected = if protocol == ProtocolKind::Twilio {
            4
        } else {
            2
        };
        assert_eq!(rx.malformed_messages(), expected, "{protocol}");
    }
}

async fn closed(rx: &mut BackendRx) -> BackendClose {
    loop {
        if let BackendEvent::Closed(close) = within("close", rx.recv()).await {
            return close;
        }
    }
}

#[tokio::test]
async fn close_1000_is_normal_other_codes_and_drops_are_abnormal() {
    for (code, expected_normal) in [(1000, true), (1001, true), (1011, false), (4000, false)] {
        let (mut tx, mut rx, mut bot) =
            session(settings("", ProtocolKind::Twilio), AudioFormat::Ulaw).await;
        bot.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: Utf8Bytes::from_static("done"),
        })))
        .await;
        // The bot reads on (past the opening) until the gateway's answer to its close
        // frame, then drops the connection, as a WebSocket server does.
        let answer = tokio::spawn(async move {
            loop {
                match bot.ws.next().await {
                    Some(Ok(Message::Text(_))) => continue,
                    other => break other,
                }
            }
        });
        let close = closed(&mut rx).await;
        if expected_normal {
            assert_eq!(close, BackendClose::Normal, "{code}");
        } else {
            let BackendClose::Abnormal(reason) = close else {
                panic!("{code} is not normal");
            };
            assert!(reason.contains(&code.to_string()), "{reason}");
        }
        // Closed stays the last event; sends fail at once.
        assert!(matches!(
            within("again", rx.recv()).await,
            BackendEvent::Closed(_)
        ));
        match tx.send_audio(&[0xFF; 160]).await {
            Err(BackendError::Closed { reason, .. }) => {
                assert_eq!(reason == "closed normally", expected_normal, "{reason}");
            }
            other => panic!("send after close: {other:?}"),
        }
        let answer = within("answer", answer).await.unwrap();
        assert!(
            matches!(answer, Some(Ok(Message::Close(_))) | None),
            "{answer:?}"
        );
    }

    // The bot's TCP connection goes away without a close frame.
    let (_tx, mut rx, bot) = session(settings("", ProtocolKind::Raw), AudioFormat::Ulaw).await;
    drop(bot);
    let BackendClose::Abnormal(reason) = closed(&mut rx).await else {
        panic!("a dropped connection is not normal");
    };
    assert!(reason.contains("without a close frame"), "{reason}");
}

#[tokio::test]
async fn a_message_over_1_mib_ends_the_session_abnormally() {
    let (_tx, mut rx, mut bot) =
        session(settings("", ProtocolKind::Raw), AudioFormat::Slin16).await;
    bot.send(Message::binary(vec![0_u8; 64_000])).await;
    assert!(matches!(
        within("audio", rx.recv()).await,
        BackendEvent::Audio(audio) if audio.len() == 64_000
    ));
    bot.send(Message::binary(vec![0_u8; (1 << 20) + 1])).await;
    let BackendClose::Abnormal(reason) = closed(&mut rx).await else {
        panic!("an oversized message is not a normal close");
    };
    assert!(reason.contains("refused"), "{reason}");
}

#[tokio::test]
async fn stop_sends_stop_then_close_1000() {
    for protocol in [ProtocolKind::Twilio, ProtocolKind::Raw] {
        let (tx, mut rx, mut bot) = session(settings("", protocol), AudioFormat::Ulaw).await;
        let opening = if protocol == ProtocolKind::Twilio {
            2
        } else {
            1
        };
        for _ in 0..opening {
            bot.json().await;
        }
        within("stop", tx.stop(StopReason::Hangup)).await;
        let stop = bot.json().await;
        assert_eq!(stop["event"], "stop");
        if protocol == ProtocolKind::Raw {
            assert_eq!(stop, json!({"event": "stop", "reason": "hangup"}));
        } else {
            assert_eq!(
                stop["stop"]["callSid"],
                "CA11111111111111111111111111111111"
            );
        }
        let Message::Close(Some(frame)) = bot.message().await else {
            panic!("expected a close frame");
        };
        assert_eq!(frame.code, CloseCode::Normal);
        assert_eq!(closed(&mut rx).await, BackendClose::Normal);
    }
}

#[tokio::test]
async fn connection_failures_are_typed_and_name_the_url_without_secrets() {
    // Accepts TCP, never answers the handshake.
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "ws://user:pw@{}/bot?token=hidden",
        silent.local_addr().unwrap()
    );
    let mut settings = settings(&url, ProtocolKind::Twilio);
    settings.connect_timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let error = within(
        "timeout",
        connect(&settings, &url, &call(), &ids(), AudioFormat::Ulaw),
    )
    .await
    .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(matches!(error, BackendError::Timeout { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.contains(&format!("{}/bot", silent.local_addr().unwrap())),
        "{message}"
    );
    assert!(
        !message.contains("hidden") && !message.contains("pw"),
        "{message}"
    );

    // Nothing listening.
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("ws://127.0.0.1:{port}/");
    let error = within(
        "refused",
        connect(&settings, &url, &call(), &ids(), AudioFormat::Ulaw),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, BackendError::Connect { .. }), "{error:?}");

    // An HTTP refusal (a wrong token).
    let (url, _bot) = bot_server(Some(401)).await;
    settings.auth_token = Some("wrong".into());
    let error = within(
        "401",
        connect(&settings, &url, &call(), &ids(), AudioFormat::Ulaw),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, BackendError::Refused { status: 401, .. }),
        "{error:?}"
    );
    assert!(!error.to_string().contains("wrong"));

    // Not a WebSocket URL.
    let error = connect(&settings, "http://h/", &call(), &ids(), AudioFormat::Ulaw)
        .await
        .unwrap_err();
    assert!(
        matches!(error, BackendError::InvalidUrl { .. }),
        "{error:?}"
    );

    // wss:// goes through TLS: a plain listener fails the TLS handshake.
    let (url, _bot) = bot_server(None).await;
    let url = url.replace("ws://", "wss://");
    let error = within(
        "tls",
        connect(&settings, &url, &call(), &ids(), AudioFormat::Ulaw),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            BackendError::Connect { .. } | BackendError::Tls { .. } | BackendError::Timeout { .. }
        ),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_paced_like_the_relay_all_arrive_one_message_each() {
    let (mut tx, _rx, mut bot) =
        session(settings("", ProtocolKind::Raw), AudioFormat::Slin16).await;
    bot.json().await;
    let reader = tokio::spawn(async move {
        let mut frames = 0;
        while frames < 500 {
            let data = bot.binary().await;
            assert_eq!(data.len(), 640);
            assert_eq!(data[0], (frames % 256) as u8);
            frames += 1;
        }
        frames
    });
    for i in 0..500_u32 {
        tx.send_audio(&[(i % 256) as u8; 640]).await.unwrap();
        // Bursts of 10 frames, 1 ms apart: 50 times real time.
        if i % 10 == 9 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    assert_eq!(within("reader", reader).await.unwrap(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stops_reading_fails_the_session_instead_of_blocking() {
    let (mut tx, mut rx, mut bot) =
        session(settings("", ProtocolKind::Raw), AudioFormat::Slin16).await;
    bot.json().await;
    tx.set_write_stall_limit(Duration::from_millis(200));
    // The bot keeps its socket open and never reads again. The gateway sends in bursts
    // the writer keeps up with, until the kernel's buffers are full.
    let failed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut sent = 0_u64;
        loop {
            let started = std::time::Instant::now();
            let result = tx.send_audio(&[0x11; 640]).await;
            // A send never blocks on the network.
            assert!(started.elapsed() < Duration::from_millis(100));
            match result {
                Ok(()) => sent += 1,
                Err(error) => return (sent, error),
            }
            if sent % 32 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    })
    .await;
    let (sent, error) = failed.expect("sending to a stalled backend never failed");
    eprintln!("failed after {sent} frames: {error}");
    assert!(sent > 0);
    assert!(
        matches!(
            error,
            BackendError::Stalled { .. } | BackendError::Closed { .. }
        ),
        "{error:?}"
    );
    let BackendClose::Abnormal(reason) = closed(&mut rx).await else {
        panic!("a stalled backend is not a normal close");
    };
    assert!(reason.contains("stopped reading"), "{reason}");
    drop(bot);
}

/// The writer's own bound: sends slow enough never to fill the queue, so the write that
/// the backend does not take within the stall limit is what ends the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_backend_does_not_take_in_time_ends_the_session() {
    let (mut tx, mut rx, mut bot) =
        session(settings("", ProtocolKind::Raw), AudioFormat::Slin16).await;
    bot.json().await;
    tx.set_write_stall_limit(Duration::from_millis(30));
    // 60 kB messages, at most one a millisecond: the kernel's buffers fill in a few ms,
    // the queue (128 messages) would take over 128 ms.
    let chunk = vec![0x22_u8; 60_000];
    let error = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Err(error) = tx.send_audio(&chunk).await {
                return error;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .expect("sending to a stalled backend never failed");
    assert!(matches!(error, BackendError::Closed { .. }), "{error:?}");
    let BackendClose::Abnormal(reason) = closed(&mut rx).await else {
        panic!("a stalled backend is not a normal close");
    };
    assert!(reason.contains("a write waited"), "{reason}");
    drop(bot);
}
