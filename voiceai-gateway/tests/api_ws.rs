//! `/ws/frontend` and `/ws/monitor` in process: events in order, `join_call`, stats, auth,
//! slow clients dropped while publishing stays instant, shutdown.

mod api_support;

use std::time::{Duration, Instant};

use api_support::{DEADLINE, Server, TOKEN, within};
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use voiceai_gateway::api::ApiConfig;
use voiceai_gateway::calls::BackendState;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connects with the token in the `Authorization` header.
async fn connect(server: &Server, path: &str) -> Socket {
    let mut request = server.ws_url(path).into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    let (socket, response) = within(
        "WebSocket handshake",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// The next JSON text message (pings and pongs skipped).
async fn next_json(socket: &mut Socket) -> serde_json::Value {
    loop {
        let message = within("a WebSocket message", socket.next())
            .await
            .expect("the socket closed")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("unexpected message {other:?}"),
        }
    }
}

async fn send_json(socket: &mut Socket, value: serde_json::Value) {
    within(
        "sending",
        socket.send(Message::Text(value.to_string().into())),
    )
    .await
    .unwrap();
}

/// Reads until the close frame; its code and reason.
async fn close_frame(socket: &mut Socket) -> (u16, String) {
    let read = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(Some(frame))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Ok(Message::Close(None)) => return (1005, String::new()),
                Ok(_) => {}
                Err(error) => panic!("no close frame: {error}"),
            }
        }
        panic!("the socket ended without a close frame");
    };
    match tokio::time::timeout(DEADLINE * 3, read).await {
        Ok(frame) => frame,
        Err(_) => panic!("no close frame within {:?}", DEADLINE * 3),
    }
}

#[tokio::test]
async fn the_frontend_sees_call_events_in_order_and_join_call_brings_media_stats() {
    let server = Server::start().await;
    let mut socket = connect(&server, "/ws/frontend").await;
    let hello = next_json(&mut socket).await;
    assert_eq!(hello["type"], "connected");
    assert_eq!(hello["client"], "frontend");
    assert_eq!(hello["activeCalls"], serde_json::json!([]));

    let (entry, _commands) = server.call("CA1");
    entry.publish_dtmf('5');
    entry.publish_transcript(&serde_json::json!({"event":"transcript","text":"もしもし"}));
    entry.set_backend_state(BackendState::Connected);
    // Detail events and gateway stats are not for the frontend until it joins.
    server.calls.publish_stats();
    entry.publish_dtmf('#');

    let started = next_json(&mut socket).await;
    assert_eq!(started["type"], "call_started");
    assert_eq!(started["callId"], "CA1");
    assert_eq!(started["channelId"], "chan-CA1");
    assert_eq!(started["callerNumber"], "+815012345678");
    assert_eq!(started["calledNumber"], "0312345678");
    assert!(started["timestamp"].is_string());
    let dtmf = next_json(&mut socket).await;
    assert_eq!(
        (dtmf["type"].as_str(), dtmf["digit"].as_str()),
        (Some("dtmf"), Some("5"))
    );
    let transcript = next_json(&mut socket).await;
    assert_eq!(transcript["type"], "transcript");
    assert_eq!(transcript["data"]["text"], "もしもし");
    let backend = next_json(&mut socket).await;
    assert_eq!(backend["type"], "backend_state");
    assert_eq!(backend["state"], "connected");
    let dtmf = next_json(&mut socket).await;
    assert_eq!(
        dtmf["digit"], "#",
        "no media_stats or stats before join_call: {dtmf}"
    );

    send_json(
        &mut socket,
        serde_json::json!({"type":"join_call","callId":"CA1"}),
    )
    .await;
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(ack["action"], "join_call");
    assert_eq!(ack["callId"], "CA1");
    assert_eq!(ack["known"], true);
    server.calls.publish_stats();
    let stats = next_json(&mut socket).await;
    assert_eq!(stats["type"], "media_stats");
    assert_eq!(stats["callId"], "CA1");
    assert!(stats["framesIn"].is_u64());

    send_json(
        &mut socket,
        serde_json::json!({"type":"leave_call","callId":"CA1"}),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["action"], "leave_call");
    server.calls.publish_stats();
    entry.publish_dtmf('1');
    assert_eq!(next_json(&mut socket).await["type"], "dtmf");

    send_json(&mut socket, serde_json::json!({"type":"ping"})).await;
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    within("sending", socket.send(Message::Text("not json".into())))
        .await
        .unwrap();
    let error = next_json(&mut socket).await;
    assert_eq!(error["type"], "error");
    send_json(&mut socket, serde_json::json!({"type":"join_call"})).await;
    assert!(
        next_json(&mut socket).await["message"]
            .as_str()
            .unwrap()
            .contains("callId")
    );

    entry.publish_answered();
    entry.finish("caller_hangup");
    assert_eq!(next_json(&mut socket).await["type"], "call_answered");
    let ended = next_json(&mut socket).await;
    assert_eq!(ended["type"], "call_ended");
    assert_eq!(ended["reason"], "caller_hangup");
    assert!(ended["duration"].is_u64());

    // A second client sees the call that is up when it connects.
    let (_two, _c2) = server.call("CA2");
    let mut late = connect(&server, "/ws/frontend").await;
    let hello = next_json(&mut late).await;
    assert_eq!(hello["activeCalls"][0]["callId"], "CA2");
}

#[tokio::test]
async fn the_monitor_sees_every_event_and_the_stats_with_a_query_token() {
    let server = Server::start().await;
    let url = server.ws_url(&format!("/ws/monitor?token={TOKEN}"));
    let (mut socket, _) = within("handshake", tokio_tungstenite::connect_async(url))
        .await
        .unwrap();
    assert_eq!(next_json(&mut socket).await["client"], "monitor");

    let (entry, _commands) = server.call("CA1");
    server.calls.publish_stats();
    entry.finish("backend_hangup");

    assert_eq!(next_json(&mut socket).await["type"], "call_started");
    let media = next_json(&mut socket).await;
    assert_eq!(media["type"], "media_stats", "monitor needs no join_call");
    assert_eq!(media["callId"], "CA1");
    let stats = next_json(&mut socket).await;
    assert_eq!(stats["type"], "stats");
    assert_eq!(stats["activeCalls"], 1);
    assert_eq!(stats["callsPerMinute"], 1);
    assert!(stats["backendFailures"].is_u64());
    assert_eq!(next_json(&mut socket).await["type"], "call_ended");
}

#[tokio::test]
async fn websockets_refuse_a_missing_or_wrong_token() {
    let server = Server::start().await;
    for path in [
        "/ws/frontend".to_owned(),
        "/ws/monitor".to_owned(),
        format!("/ws/monitor?token={TOKEN}x"),
        "/ws/frontend?token=".to_owned(),
    ] {
        let result = within(
            "handshake",
            tokio_tungstenite::connect_async(server.ws_url(&path)),
        )
        .await;
        match result {
            Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401, "{path}"),
            Err(other) => panic!("{path}: {other}"),
            Ok(_) => panic!("{path}: connected without a valid token"),
        }
    }
    let mut request = server.ws_url("/ws/frontend").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer wrong".parse().unwrap());
    match within("handshake", tokio_tungstenite::connect_async(request)).await {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("a wrong header token was accepted: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_with_a_reason_while_publishing_stays_instant() {
    let server = Server::start_with(
        ApiConfig {
            ws_queue: 8,
            ..api_support::config()
        },
        1024,
    )
    .await;
    let mut slow = connect(&server, "/ws/monitor").await;
    let (entry, _commands) = server.call("CA1");

    // Big transcripts until the slow client's socket buffers and queue are full and it is
    // dropped (the bus forgets it at once).
    let text = "x".repeat(16 * 1024);
    let payload = serde_json::json!({"event":"transcript","text":text});
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    let mut published = 0u32;
    while server.calls.events().subscribers() > 0 {
        assert!(
            started.elapsed() < DEADLINE * 3,
            "the slow client was not dropped after {published} events"
        );
        let before = Instant::now();
        entry.publish_transcript(&payload);
        slowest = slowest.max(before.elapsed());
        published += 1;
        if published % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    assert!(
        slowest < Duration::from_millis(250),
        "one publish took {slowest:?}"
    );

    let (code, reason) = close_frame(&mut slow).await;
    assert_eq!(code, 1008);
    assert!(reason.contains("too slow"), "{reason}");

    // The server goes on serving clients that read.
    let mut fine = connect(&server, "/ws/frontend").await;
    assert_eq!(next_json(&mut fine).await["type"], "connected");
    entry.publish_dtmf('9');
    assert_eq!(next_json(&mut fine).await["digit"], "9");
}

#[tokio::test]
async fn shutdown_closes_websocket_clients_with_going_away() {
    let mut server = Server::start().await;
    let mut socket = connect(&server, "/ws/frontend").await;
    assert_eq!(next_json(&mut socket).await["type"], "connected");
    let closer = tokio::spawn(async move {
        let frame = close_frame(&mut socket).await;
        // Answer the close, as a browser does.
        let _ = socket.close(None).await;
        frame
    });
    server.stop().await;
    let (code, reason) = within("close frame", closer).await.unwrap();
    assert_eq!(code, 1001);
    assert_eq!(reason, "server shutting down");
}

#[tokio::test]
async fn a_client_that_answers_no_pings_is_closed_as_idle() {
    let server = Server::start_with(
        ApiConfig {
            ws_ping_interval: Duration::from_millis(50),
            ..api_support::config()
        },
        64,
    )
    .await;
    // Connected and never polled: the pings go unanswered.
    let mut silent = connect(&server, "/ws/monitor").await;
    let started = Instant::now();
    while server.calls.events().subscribers() > 0 {
        assert!(started.elapsed() < DEADLINE, "the idle client was kept");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (code, reason) = close_frame(&mut silent).await;
    assert_eq!(code, 1001);
    assert!(reason.contains("idle"), "{reason}");
}
