//! What Asterisk will not do on demand, from local servers on port 0: 5xx answers, slow
//! answers, malformed bodies, abrupt closes, garbage on the events socket.

use std::time::Duration;

use ari_client::model::operations::{asterisk, channels};
use ari_client::{Backoff, Client, Credentials, Delivery, Error, Update};
use futures::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Serves every connection with `respond(request_text) -> Option<raw response>`
/// (`None`: close without answering).
async fn http_server(
    respond: impl Fn(&str) -> Option<(Duration, String)> + Send + Sync + 'static,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let respond = std::sync::Arc::new(respond);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let respond = respond.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0_u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((delay, response)) = respond(&text) {
                    tokio::time::sleep(delay).await;
                    let _ = socket.write_all(response.as_bytes()).await;
                }
            });
        }
    });
    format!("http://{address}")
}

fn answer(status: &str, body: &str) -> Option<(Duration, String)> {
    Some((
        Duration::ZERO,
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    ))
}

fn client(url: &str) -> Client {
    Client::builder(url)
        .credentials(Credentials::new("user", "secret-password"))
        .request_timeout(Duration::from_millis(300))
        .connect_timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_5xx_answer_is_a_transient_api_error_with_asterisks_message() {
    let url =
        http_server(|_| answer("503 Service Unavailable", r#"{"message":"overloaded"}"#)).await;
    let error = client(&url)
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(503));
    assert!(error.is_transient());
    assert!(
        matches!(&error, Error::Api { message: Some(m), .. } if m == "overloaded"),
        "{error:?}"
    );
    assert_eq!(error.delivery(), Delivery::Received);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_may_have_been_delivered() {
    let url = http_server(|_| {
        Some((
            Duration::from_secs(3),
            "HTTP/1.1 204 No Content\r\n\r\n".to_owned(),
        ))
    })
    .await;
    let error = client(&url)
        .channels()
        .answer(channels::Answer::new("x"))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    assert_eq!(error.delivery(), Delivery::Unknown);
    assert!(error.is_transient());
}

#[tokio::test]
async fn malformed_bodies_are_decode_errors_that_keep_the_body() {
    let url = http_server(|request| {
        if request.starts_with("GET /ari/asterisk/ping") {
            answer("200 OK", "{not json")
        } else {
            answer("200 OK", r#"{"id":"1.1","name":"PJSIP/x","state":"Up"}"#)
        }
    })
    .await;
    let client = client(&url);
    match client
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap_err()
    {
        Error::Decode { body, .. } => assert_eq!(body, "{not json"),
        other => panic!("{other:?}"),
    }
    match client
        .channels()
        .get(channels::Get::new("1.1"))
        .await
        .unwrap_err()
    {
        Error::Decode { message, body, .. } => {
            assert!(
                message.contains("caller") || message.contains("missing field"),
                "{message}"
            );
            assert!(body.contains("PJSIP/x"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_abrupt_close_is_a_transport_error_and_a_refused_connection_was_not_sent() {
    let url = http_server(|_| None).await;
    let error = client(&url)
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert_eq!(error.delivery(), Delivery::Unknown);

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = client(&url)
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap_err();
    assert_eq!(error.delivery(), Delivery::NotSent, "{error:?}");
}

#[tokio::test]
async fn credentials_never_show_in_debug_output_or_errors() {
    let url = http_server(|_| {
        answer(
            "401 Unauthorized",
            r#"{"message":"Authentication required"}"#,
        )
    })
    .await;
    let client = client(&url);
    let shown = format!("{client:?}");
    assert!(!shown.contains("secret-password"), "{shown}");
    let error = client
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap_err();
    assert!(error.is_unauthorized());
    assert!(!format!("{error:?} {error}").contains("secret-password"));
}

/// A pseudo-random frame: bytes, broken JSON, JSON of the wrong shape, mutated events.
fn garbage(seed: u64, fixtures: &[&str]) -> Message {
    let mut rng = fastrand::Rng::with_seed(seed);
    match rng.u8(..6) {
        0 => Message::text(
            (0..rng.usize(0..200))
                .map(|_| rng.char(..))
                .collect::<String>(),
        ),
        1 => Message::binary(
            (0..rng.usize(0..200))
                .map(|_| rng.u8(..))
                .collect::<Vec<u8>>(),
        ),
        2 => {
            let mut text = fixtures[rng.usize(..fixtures.len())].as_bytes().to_vec();
            for _ in 0..rng.usize(1..8) {
                let at = rng.usize(..text.len());
                text[at] = rng.u8(32..127);
            }
            Message::text(String::from_utf8_lossy(&text).into_owned())
        }
        3 => {
            let value = match rng.u8(..5) {
                0 => serde_json::json!(null),
                1 => serde_json::json!([1, "two", {"type": 3}]),
                2 => serde_json::json!({"type": rng.u64(..)}),
                3 => serde_json::json!({"type": "StasisStart", "channel": rng.i64(..)}),
                _ => serde_json::json!({"type": "Dial", "peer": {"id": []}, "application": 1}),
            };
            Message::text(value.to_string())
        }
        4 => {
            let text = fixtures[rng.usize(..fixtures.len())];
            let cut = rng.usize(..text.len());
            Message::text(text.get(..cut).unwrap_or(text).to_owned())
        }
        _ => Message::text(format!(
            r#"{{"type":"BrandNewEvent{seed}","application":"a","timestamp":"x","channel":{{"id":"c{seed}","name":"n","state":"Up","caller":{{}}}}}}"#
        )),
    }
}

#[tokio::test]
async fn garbage_on_the_events_socket_never_breaks_the_connection() {
    let fixtures_text = std::fs::read_to_string(
        ari_lab::workspace_root().join("ari-model/tests/fixtures/events.jsonl"),
    )
    .unwrap();
    let fixtures: Vec<String> = fixtures_text.lines().map(str::to_owned).collect();
    let frames = 3000_u64;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let last = fixtures[0].clone();
    let server_fixtures = fixtures.clone();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(socket).await.unwrap();
        let refs: Vec<&str> = server_fixtures.iter().map(String::as_str).collect();
        for seed in 0..frames {
            ws.send(garbage(seed, &refs)).await.unwrap();
        }
        ws.send(Message::text(last)).await.unwrap();
        // Then drop the socket without a close frame.
    });
    let connection = client(&url)
        .app_connection(["fuzz"])
        .buffer(frames as usize * 2)
        .backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(100),
        ))
        .start();
    let (_connection, mut updates) = connection;
    let (mut undecodable, mut events, mut unknown) = (0, 0, 0);
    let mut final_update = None;
    let outcome = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(update) = updates.next().await {
            match &update {
                Update::Undecodable { .. } => undecodable += 1,
                Update::Event(event) if event.is_unknown() => unknown += 1,
                Update::Event(_) => events += 1,
                Update::Disconnected { error } => return error.clone(),
                Update::Lagged { missed } => panic!("lagged by {missed}"),
                _ => {}
            }
            final_update = Some(update);
        }
        panic!("stream ended")
    })
    .await
    .expect("the server's drop is reported");
    assert!(undecodable > 1000, "{undecodable} undecodable");
    assert!(unknown > 100, "{unknown} unknown");
    // The valid event sent after all the garbage is the last thing that arrived, intact.
    let expected = ari_client::model::Event::from_json_str(&fixtures[0]).unwrap();
    match final_update {
        Some(Update::Event(event)) => assert_eq!(*event, expected),
        other => panic!("the final valid event did not arrive last: {other:?}"),
    }
    assert!(outcome.is_transient(), "{}", outcome.chain());
    println!(
        "fuzz: {frames} frames: {undecodable} undecodable, {unknown} unknown events, {events} events; then: {outcome}"
    );
}

#[tokio::test]
async fn the_outbound_server_refuses_peers_without_the_expected_credentials() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let client = client("http://127.0.0.1:9");
    let (_connection, mut updates, address) = client
        .outbound_server(["mock-outbound"], "127.0.0.1:0".parse().unwrap())
        .expect_credentials(Credentials::new("asterisk-outbound", "right"))
        .bind()
        .await
        .unwrap();
    let wrong = Credentials::new("asterisk-outbound", "wrong").basic_authorization();
    let mut request = format!("ws://{address}/ari").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", wrong.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    let right = Credentials::new("asterisk-outbound", "right").basic_authorization();
    let mut request = format!("ws://{address}/ari").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Authorization", right.parse().unwrap());
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "ari".parse().unwrap());
    let (_socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol").unwrap(),
        "ari"
    );
    // The refused peer is reported (Asterisk retries on its own), then the right one
    // connects.
    let first = tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .unwrap();
    assert!(
        matches!(&first, Some(Update::ReconnectFailed { error, .. }) if error.delivery() == Delivery::NotSent),
        "{first:?}"
    );
    let second = tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .unwrap();
    assert!(matches!(second, Some(Update::Connected)), "{second:?}");
}

#[tokio::test]
async fn a_silent_peer_does_not_hold_up_the_outbound_server() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let client = client("http://127.0.0.1:9");
    let (_connection, mut updates, address) = client
        .outbound_server(["mock-silent"], "127.0.0.1:0".parse().unwrap())
        .bind()
        .await
        .unwrap();
    // Connects and says nothing, and stays connected.
    let _silent = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut request = format!("ws://{address}/ari").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", "ari".parse().unwrap());
    let (_socket, _) = tokio::time::timeout(
        Duration::from_secs(2),
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("the handshake is served while the silent peer waits")
    .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(2), updates.next())
        .await
        .unwrap();
    assert!(matches!(first, Some(Update::Connected)), "{first:?}");
}

#[tokio::test]
async fn a_rest_request_on_a_socket_that_drops_fails_at_once() {
    // The server accepts the events socket, reads the RESTRequest, and drops the socket.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                while let Some(Ok(frame)) = ws.next().await {
                    if frame.is_text() {
                        return;
                    }
                }
            });
        }
    });
    let client = Client::builder(&url)
        .credentials(Credentials::new("u", "p"))
        .request_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let connection = client.app_connection(["drop"]).connect().await.unwrap();
    let started = std::time::Instant::now();
    let error = connection
        .rest_client()
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert_eq!(error.delivery(), Delivery::Unknown);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "waited {:?} instead of failing",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_outbound_server_writes_nothing_until_asterisk_has_spoken() {
    // Asterisk's WebSocket client reads the 101 answer with a buffered reader and then
    // polls the socket: a frame riding along with the answer would go unseen. This peer
    // reads the answer, stays silent a while and checks that nothing arrived meanwhile,
    // though the program had a request waiting; then it speaks and gets the request.
    use tokio_tungstenite::tungstenite::protocol::Role;
    let client = Client::builder("http://127.0.0.1:9")
        .credentials(Credentials::new("u", "p"))
        .build()
        .unwrap();
    let (connection, mut updates, address) = client
        .outbound_server(["mock-quiet"], "127.0.0.1:0".parse().unwrap())
        .rest_over_websocket(true)
        .bind()
        .await
        .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(address).await.unwrap();
    tcp.write_all(
        format!(
            "GET /ari HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: ari\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let connected = tokio::time::timeout(Duration::from_secs(5), updates.next()).await;
    assert!(
        matches!(connected, Ok(Some(Update::Connected))),
        "{connected:?}"
    );

    let request = tokio::spawn({
        let client = connection.rest_client().clone();
        async move {
            client
                .channels()
                .hangup(channels::Hangup::new("quiet-1"))
                .await
        }
    });
    let mut early = [0u8; 64];
    match tokio::time::timeout(Duration::from_millis(500), tcp.read(&mut early)).await {
        Err(_elapsed) => {}
        Ok(read) => panic!("the program wrote before Asterisk spoke: {read:?}"),
    }

    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    ws.send(Message::text(
        r#"{"type":"ApplicationRegistered","application":"mock-quiet","timestamp":"2026-01-01T00:00:00.000+0000"}"#,
    ))
    .await
    .unwrap();
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the request follows once Asterisk has spoken")
        .unwrap()
        .unwrap();
    let sent: serde_json::Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(sent["type"], "RESTRequest");
    assert_eq!(sent["uri"], "channels/quiet-1");
    let answer = serde_json::json!({
        "type": "RESTResponse",
        "application": "mock-quiet",
        "timestamp": "2026-01-01T00:00:00.000+0000",
        "transaction_id": sent["transaction_id"],
        "request_id": sent["request_id"],
        "status_code": 204,
        "reason_phrase": "No Content",
        "uri": "channels/quiet-1",
    });
    ws.send(Message::text(answer.to_string())).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the request is answered")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_password_change_during_an_outage_is_reported_on_every_attempt() {
    // The first connection is accepted and dropped; from then on the server refuses the
    // credentials, as Asterisk does after ari.conf changed.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut socket, _)) = listener.accept().await {
            if std::mem::take(&mut first) {
                let Ok(ws) = tokio_tungstenite::accept_async(socket).await else {
                    return;
                };
                drop(ws);
                continue;
            }
            let mut buffer = [0_u8; 4096];
            let _ = socket.read(&mut buffer).await;
            let body = r#"{"message":"Authentication required"}"#;
            let _ = socket
                .write_all(
                    format!(
                        "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        }
    });
    let (_connection, mut updates) = client(&url)
        .app_connection(["outage"])
        .backoff(Backoff::new(
            Duration::from_millis(20),
            Duration::from_millis(50),
        ))
        .start();
    let attempts = tokio::time::timeout(Duration::from_secs(10), async {
        let mut refused = 0;
        while let Some(update) = updates.next().await {
            if let Update::ReconnectFailed { error, retry_in } = update {
                assert!(error.is_unauthorized(), "{}", error.chain());
                assert_eq!(error.message(), Some("Authentication required"));
                assert!(retry_in <= Duration::from_millis(50));
                refused += 1;
                if refused == 3 {
                    return refused;
                }
            }
        }
        panic!("the update stream ended")
    })
    .await
    .expect("three refused attempts reported");
    assert_eq!(attempts, 3);
}

#[tokio::test]
async fn a_listening_address_in_use_is_a_bind_error() {
    let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = taken.local_addr().unwrap();
    let error = client("http://127.0.0.1:9")
        .outbound_server(["in-use"], address)
        .bind()
        .await
        .unwrap_err();
    assert!(
        matches!(&error, Error::Bind { address: a, .. } if *a == address),
        "{error:?}"
    );
    assert!(
        error.chain().to_string().contains("in use"),
        "{}",
        error.chain()
    );
}

#[tokio::test]
async fn a_rest_request_that_timed_out_while_the_socket_was_down_is_never_sent() {
    // The first events socket is dropped at once; the second one records what it gets.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (frames_tx, mut frames) = tokio::sync::mpsc::unbounded_channel::<serde_json::Value>();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((socket, _)) = listener.accept().await {
            let Ok(mut ws) = tokio_tungstenite::accept_async(socket).await else {
                return;
            };
            if std::mem::take(&mut first) {
                drop(ws);
                continue;
            }
            let frames_tx = frames_tx.clone();
            tokio::spawn(async move {
                while let Some(Ok(frame)) = ws.next().await {
                    if let Ok(text) = frame.to_text() {
                        if let Ok(value) = serde_json::from_str(text) {
                            let _ = frames_tx.send(value);
                        }
                    }
                }
            });
        }
    });
    let client = Client::builder(&url)
        .credentials(Credentials::new("u", "p"))
        .request_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let (connection, mut updates) = client
        .app_connection(["stale"])
        .backoff(Backoff::new(
            Duration::from_millis(800),
            Duration::from_millis(800),
        ))
        .start();
    wait_for_update(&mut updates, |u| matches!(u, Update::Disconnected { .. })).await;
    // Sent while the socket is down: it times out in the queue.
    let stale = connection
        .rest_client()
        .channels()
        .hangup(channels::Hangup::new("stale-1"))
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::Timeout { .. }), "{stale:?}");
    wait_for_update(&mut updates, |u| matches!(u, Update::Reconnected)).await;
    let fresh = tokio::spawn({
        let client = connection.rest_client().clone();
        async move {
            client
                .channels()
                .hangup(channels::Hangup::new("fresh-1"))
                .await
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(5), frames.recv())
        .await
        .expect("a request reaches the server")
        .unwrap();
    assert_eq!(
        first["uri"], "channels/fresh-1",
        "the timed-out request was sent late: {first}"
    );
    fresh.abort();
}

/// Reads `updates` until one matches, within 5 s.
async fn wait_for_update(updates: &mut ari_client::Updates, want: fn(&Update) -> bool) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(update) = updates.next().await {
            if want(&update) {
                return;
            }
        }
        panic!("the update stream ended");
    })
    .await
    .expect("the update awaited did not come within 5 s");
}
