//! The REST API in process: every route, auth, bad input and CORS.

mod api_support;

use std::sync::atomic::Ordering;

use api_support::{Server, TOKEN, assert_no_command, within};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use voiceai_gateway::api::{ApiConfig, ControlError, OriginateRequest};
use voiceai_gateway::calls::CallCommand;

#[tokio::test]
async fn health_and_ready_follow_ari_and_draining_without_a_token() {
    let server = Server::start().await;
    let (_entry, _commands) = server.call("CA1");

    let health = server.send(Method::GET, "/health", &[], Bytes::new()).await;
    assert_eq!(health.status, StatusCode::OK, "{}", health.text);
    assert_eq!(health.json["status"], "ok");
    assert_eq!(health.json["asterisk"]["connected"], true);
    assert_eq!(health.json["activeCalls"], 1);
    assert!(health.json["timestamp"].as_str().unwrap().ends_with('Z'));
    let ready = server.send(Method::GET, "/ready", &[], Bytes::new()).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.json["status"], "ready");

    server.gateway.accepting.store(false, Ordering::SeqCst);
    let ready = server.send(Method::GET, "/ready", &[], Bytes::new()).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json["acceptingCalls"], false);
    let health = server.send(Method::GET, "/health", &[], Bytes::new()).await;
    assert_eq!(health.status, StatusCode::OK, "draining is still healthy");

    server.gateway.accepting.store(true, Ordering::SeqCst);
    server.gateway.connected.store(false, Ordering::SeqCst);
    let health = server.send(Method::GET, "/health", &[], Bytes::new()).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json["status"], "degraded");
    assert_eq!(health.json["asterisk"]["connected"], false);
    let ready = server.send(Method::GET, "/ready", &[], Bytes::new()).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn calls_are_listed_and_fetched_in_the_seed_shape() {
    let server = Server::start().await;
    let (_one, _c1) = server.call("CA1");
    let (two, _c2) = server.call("CA2");

    let active = server.get("/api/calls/active").await;
    assert_eq!(active.status, StatusCode::OK, "{}", active.text);
    assert_eq!(active.json["status"], "success");
    assert_eq!(active.json["count"], 2);
    let first = &active.json["calls"][0];
    assert_eq!(first["callId"], "CA1");
    assert_eq!(first["channelId"], "chan-CA1");
    assert_eq!(first["callerNumber"], "+815012345678");
    assert_eq!(first["calledNumber"], "0312345678");
    assert_eq!(first["status"], "active");
    assert!(first["startTime"].is_string());
    assert!(first["duration"].is_u64());
    assert_eq!(first["backendState"], "connecting");
    assert_eq!(first["media"], "websocket");
    assert_eq!(first["framesIn"], 0);
    assert_eq!(first["framesOut"], 0);

    let one = server.get("/api/calls/CA2").await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.text);
    assert_eq!(one.json["status"], "success");
    assert_eq!(one.json["call"]["callId"], "CA2");

    two.finish("caller_hangup");
    let ended = server.get("/api/calls/CA2").await;
    assert_eq!(ended.json["call"]["status"], "ended");
    assert_eq!(ended.json["call"]["endReason"], "caller_hangup");
    assert_eq!(server.get("/api/calls/active").await.json["count"], 1);

    server
        .get("/api/calls/CA404")
        .await
        .assert_error(404, "CA404");
}

#[tokio::test]
async fn originate_places_a_validated_call_and_maps_gateway_refusals() {
    let server = Server::start().await;
    let reply = server
        .post_json(
            "/api/calls/originate",
            r#"{"phoneNumber":"03-1234-5678","callerId":"\"Sales\" <0501234>","variables":{"CUSTOMER":"42","PRIORITY":7,"VIP":true}}"#,
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json,
        serde_json::json!({
            "status": "success",
            "message": "Call originated",
            "channelId": "out-chan-1",
            "phoneNumber": "0312345678",
            "callId": "CAout1",
        })
    );
    let asked: Vec<OriginateRequest> = server.gateway.originated();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].phone_number, "0312345678");
    assert_eq!(asked[0].endpoint, "PJSIP/0312345678@trunk");
    assert_eq!(asked[0].caller_id.as_deref(), Some("\"Sales\" <0501234>"));
    assert_eq!(asked[0].variables["PRIORITY"], "7");
    assert_eq!(asked[0].variables["VIP"], "true");

    // Only the number is required.
    let reply = server
        .post_json("/api/calls/originate", r#"{"phoneNumber":"+81312345678"}"#)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);

    for (error, status) in [
        (ControlError::NotConnected, 503),
        (ControlError::Refused("the gateway is draining".into()), 409),
        (ControlError::Asterisk("Allocation failed".into()), 502),
        (ControlError::BadRequest("no trunk".into()), 400),
    ] {
        let message = error.to_string();
        *server.gateway.refuse_with.lock().unwrap() = Some(error);
        server
            .post_json("/api/calls/originate", r#"{"phoneNumber":"100"}"#)
            .await
            .assert_error(status, &message);
    }
}

#[tokio::test]
async fn disconnect_and_transfer_reach_the_call_task() {
    let server = Server::start().await;
    let (entry, mut commands) = server.call("CA1");

    let reply = server
        .send(
            Method::POST,
            "/api/calls/CA1/disconnect",
            &[("authorization", &format!("Bearer {TOKEN}"))],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["status"], "success");
    assert_eq!(reply.json["callId"], "CA1");
    assert_eq!(
        within("hangup", commands.recv()).await,
        Some(CallCommand::Hangup)
    );

    for (given, endpoint) in [
        ("PJSIP/100", "PJSIP/100"),
        ("Local/777@default", "Local/777@default"),
        ("100", "PJSIP/100@trunk"),
    ] {
        let reply = server
            .post_json(
                "/api/calls/CA1/transfer",
                &serde_json::json!({ "endpoint": given }).to_string(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
        assert_eq!(reply.json["endpoint"], endpoint);
        assert_eq!(
            within("transfer", commands.recv()).await,
            Some(CallCommand::Transfer {
                endpoint: endpoint.to_owned()
            })
        );
    }

    server
        .post_json("/api/calls/CA9/disconnect", "")
        .await
        .assert_error(404, "CA9");
    server
        .post_json("/api/calls/CA9/transfer", r#"{"endpoint":"PJSIP/100"}"#)
        .await
        .assert_error(404, "CA9");

    // A call whose task does not keep up: its queue fills, then 409.
    let mut busy = None;
    for _ in 0..64 {
        let reply = server.post_json("/api/calls/CA1/disconnect", "").await;
        if reply.status != StatusCode::OK {
            busy = Some(reply);
            break;
        }
    }
    busy.expect("the command queue is bounded")
        .assert_error(409, "busy");

    entry.finish("caller_hangup");
    server
        .post_json("/api/calls/CA1/disconnect", "")
        .await
        .assert_error(409, "ended");
}

#[tokio::test]
async fn asterisk_status_shows_the_connection() {
    let server = Server::start().await;
    let reply = server.get("/api/asterisk/status").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        reply.json,
        serde_json::json!({
            "status": "success",
            "connected": true,
            "host": "127.0.0.1",
            "ariPort": 8088,
            "appName": "voiceai-test",
            "asteriskVersion": "22.6.0",
        })
    );
}

#[tokio::test]
async fn the_token_is_required_everywhere_but_health_and_ready() {
    let server = Server::start().await;
    let (_entry, mut commands) = server.call("CA1");
    let routes = [
        (Method::GET, "/api/calls/active"),
        (Method::GET, "/api/calls/CA1"),
        (Method::POST, "/api/calls/originate"),
        (Method::POST, "/api/calls/CA1/disconnect"),
        (Method::POST, "/api/calls/CA1/transfer"),
        (Method::GET, "/api/asterisk/status"),
        (Method::GET, "/ws/frontend"),
        (Method::GET, "/ws/monitor"),
    ];
    let wrong = format!("Bearer {TOKEN}x");
    let short = "Bearer s3cret".to_owned();
    let basic = "Basic czNjcmV0LXRva2Vu".to_owned();
    for (method, path) in &routes {
        for headers in [
            vec![],
            vec![("authorization", wrong.as_str())],
            vec![("authorization", short.as_str())],
            vec![("authorization", basic.as_str())],
        ] {
            let reply = server
                .send(method.clone(), path, &headers, r#"{"phoneNumber":"100"}"#)
                .await;
            reply.assert_error(401, "token");
            assert_eq!(reply.headers["www-authenticate"], "Bearer");
        }
    }
    // The query parameter is for WebSockets only.
    server
        .send(
            Method::POST,
            &format!("/api/calls/CA1/disconnect?token={TOKEN}"),
            &[],
            Bytes::new(),
        )
        .await
        .assert_error(401, "token");
    assert_no_command(&mut commands);
    assert!(server.gateway.originated().is_empty());

    // No token configured: no auth (the configuration allows that on loopback only).
    let open = Server::start_with(
        ApiConfig {
            auth_token: None,
            ..api_support::config()
        },
        64,
    )
    .await;
    let reply = open
        .send(Method::GET, "/api/calls/active", &[], Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
}

#[tokio::test]
async fn bad_bodies_and_injection_attempts_are_refused_and_change_nothing() {
    let server = Server::start_with(
        ApiConfig {
            max_body_bytes: 1024,
            ..api_support::config()
        },
        64,
    )
    .await;
    let (_entry, mut commands) = server.call("CA1");
    let bearer = format!("Bearer {TOKEN}");

    server
        .post_json("/api/calls/originate", r#"{"phoneNumber":"100""#)
        .await
        .assert_error(400, "malformed JSON");
    server
        .post_json("/api/calls/originate", "")
        .await
        .assert_error(400, "malformed JSON");
    server
        .post_json("/api/calls/originate", r#"{"callerId":"1"}"#)
        .await
        .assert_error(400, "missing field `phoneNumber`");
    server
        .post_json("/api/calls/originate", r#"{"phoneNumber":100}"#)
        .await
        .assert_error(400, "invalid type");
    server
        .post_json("/api/calls/CA1/transfer", r#"{"to":"PJSIP/100"}"#)
        .await
        .assert_error(400, "missing field `endpoint`");
    server
        .send(
            Method::POST,
            "/api/calls/originate",
            &[("authorization", &bearer), ("content-type", "text/plain")],
            r#"{"phoneNumber":"100"}"#,
        )
        .await
        .assert_error(415, "Content-Type: application/json");
    let big = format!(
        r#"{{"phoneNumber":"100","variables":{{"X":"{}"}}}}"#,
        "a".repeat(4096)
    );
    server
        .post_json("/api/calls/originate", &big)
        .await
        .assert_error(413, "larger than 1024 bytes");
    server
        .post_json(
            "/api/calls/CA1/transfer",
            &format!(r#"{{"endpoint":"{}"}}"#, "1".repeat(2000)),
        )
        .await
        .assert_error(413, "larger than 1024 bytes");

    let originate_attacks = [
        (r#"{"phoneNumber":"100&PJSIP/200"}"#, "phoneNumber"),
        (r#"{"phoneNumber":"100,tT"}"#, "phoneNumber"),
        (r#"{"phoneNumber":"100@evil"}"#, "phoneNumber"),
        (r#"{"phoneNumber":"100/200"}"#, "phoneNumber"),
        (r#"{"phoneNumber":"100\r\nAction: Command"}"#, "phoneNumber"),
        (r#"{"phoneNumber":""}"#, "phoneNumber"),
        (
            r#"{"phoneNumber":"123456789012345678901234567890123"}"#,
            "phoneNumber",
        ),
        (r#"{"phoneNumber":"100","callerId":"a\nb"}"#, "callerId"),
        (
            r#"{"phoneNumber":"100","variables":{"A B":"1"}}"#,
            "variables",
        ),
        (
            r#"{"phoneNumber":"100","variables":{"X":"a\u0000b"}}"#,
            "variables.X",
        ),
        (
            r#"{"phoneNumber":"100","variables":{"X":{"nested":1}}}"#,
            "variables.X",
        ),
    ];
    for (body, field) in originate_attacks {
        server
            .post_json("/api/calls/originate", body)
            .await
            .assert_error(400, field);
    }
    let transfer_attacks = [
        ("PJSIP/100&PJSIP/200", "'&'"),
        ("PJSIP/100,30,tT", "','"),
        ("Local/777@default/n", "'/'"),
        ("PJSIP/100\nX", "control character"),
        ("PJSIP/ 100", "whitespace"),
        ("Console/dsp", "technology"),
        ("100&200", "'&'"),
        ("alice", "endpoint"),
        ("", "endpoint"),
    ];
    for (endpoint, needle) in transfer_attacks {
        let reply = server
            .post_json(
                "/api/calls/CA1/transfer",
                &serde_json::json!({ "endpoint": endpoint }).to_string(),
            )
            .await;
        reply.assert_error(400, "endpoint");
        reply.assert_error(400, needle);
    }
    assert_no_command(&mut commands);
    assert!(server.gateway.originated().is_empty());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let server = Server::start().await;
    server
        .get("/nope")
        .await
        .assert_error(404, "no route GET /nope");
    server
        .send(Method::GET, "/api/calls", &[], Bytes::new())
        .await
        .assert_error(404, "no route");
    server
        .get("/api/calls/originate/x")
        .await
        .assert_error(404, "no route");
    server
        .send(Method::DELETE, "/health", &[], Bytes::new())
        .await
        .assert_error(405, "DELETE");
}

#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let server = Server::start().await;
    let preflight = |origin: &'static str| {
        let server = &server;
        async move {
            server
                .send(
                    Method::OPTIONS,
                    "/api/calls/active",
                    &[
                        ("origin", origin),
                        ("access-control-request-method", "GET"),
                        ("access-control-request-headers", "authorization"),
                    ],
                    Bytes::new(),
                )
                .await
        }
    };
    let allowed = preflight("http://monitor.example").await;
    assert!(allowed.status.is_success(), "{:?}", allowed.status);
    assert_eq!(
        allowed.headers["access-control-allow-origin"],
        "http://monitor.example"
    );
    let other = preflight("http://evil.example").await;
    assert!(other.headers.get("access-control-allow-origin").is_none());

    let reply = server
        .send(
            Method::GET,
            "/health",
            &[("origin", "http://monitor.example")],
            Bytes::new(),
        )
        .await;
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "http://monitor.example"
    );

    let any = Server::start_with(
        ApiConfig {
            cors_origins: vec!["*".to_owned()],
            ..api_support::config()
        },
        64,
    )
    .await;
    let reply = any
        .send(
            Method::GET,
            "/health",
            &[("origin", "http://anything.example")],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.headers["access-control-allow-origin"], "*");

    let none = Server::start_with(
        ApiConfig {
            cors_origins: Vec::new(),
            ..api_support::config()
        },
        64,
    )
    .await;
    let reply = none
        .send(
            Method::GET,
            "/health",
            &[("origin", "http://monitor.example")],
            Bytes::new(),
        )
        .await;
    assert!(reply.headers.get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn serve_returns_after_shutdown() {
    let mut server = Server::start().await;
    assert_eq!(
        server
            .send(Method::GET, "/health", &[], Bytes::new())
            .await
            .status,
        StatusCode::OK
    );
    server.stop().await;
}
