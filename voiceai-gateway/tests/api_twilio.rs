//! The Twilio-compatible call-control endpoint, as Pipecat and other Twilio bots use it.

mod api_support;

use api_support::{ACCOUNT_SID, Server, TWILIO_TOKEN, assert_no_command, within};
use base64::Engine as _;
use bytes::Bytes;
use hyper::{Method, StatusCode};
use voiceai_gateway::calls::CallCommand;

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

fn path(call_sid: &str) -> String {
    format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{call_sid}.json")
}

/// Percent-encodes a form value (enough for TwiML).
fn form_value(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn update(server: &Server, call_sid: &str, form: &str) -> api_support::Reply {
    let auth = basic(ACCOUNT_SID, TWILIO_TOKEN);
    server
        .send(
            Method::POST,
            &path(call_sid),
            &[
                ("authorization", &auth),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            form.to_owned(),
        )
        .await
}

#[tokio::test]
async fn status_completed_hangs_the_call_up_as_pipecat_asks() {
    let server = Server::start().await;
    let (_entry, mut commands) = server.call("CA1");

    let reply = update(&server, "CA1", "Status=completed").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        within("hangup", commands.recv()).await,
        Some(CallCommand::Hangup)
    );
    let call = &reply.json;
    assert_eq!(call["sid"], "CA1");
    assert_eq!(call["account_sid"], ACCOUNT_SID);
    assert_eq!(call["status"], "completed");
    assert_eq!(call["from"], "+815012345678");
    assert_eq!(call["to"], "0312345678");
    assert_eq!(call["direction"], "inbound");
    assert_eq!(call["api_version"], "2010-04-01");
    assert_eq!(
        call["uri"],
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA1.json")
    );
    assert!(call["start_time"].as_str().unwrap().ends_with("+0000"));
}

#[tokio::test]
async fn twiml_dial_transfers_and_twiml_hangup_hangs_up() {
    let server = Server::start().await;
    let (_entry, mut commands) = server.call("CA1");

    for (twiml, endpoint) in [
        ("<Response><Dial>100</Dial></Response>", "PJSIP/100@trunk"),
        (
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Say>Transferring</Say><Dial timeout=\"20\">Local/777@default</Dial></Response>",
            "Local/777@default",
        ),
        (
            "<Response><Dial><Number>+81312345678</Number></Dial></Response>",
            "PJSIP/+81312345678@trunk",
        ),
    ] {
        let reply = update(&server, "CA1", &format!("Twiml={}", form_value(twiml))).await;
        assert_eq!(reply.status, StatusCode::OK, "{twiml}: {}", reply.text);
        assert_eq!(reply.json["status"], "in-progress");
        assert_eq!(
            within("transfer", commands.recv()).await,
            Some(CallCommand::Transfer {
                endpoint: endpoint.to_owned()
            })
        );
    }

    let reply = update(
        &server,
        "CA1",
        &format!("Twiml={}", form_value("<Response><Hangup/></Response>")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(
        within("hangup", commands.recv()).await,
        Some(CallCommand::Hangup)
    );
}

#[tokio::test]
async fn bad_twiml_and_injected_dial_targets_are_refused_without_a_command() {
    let server = Server::start().await;
    let (_entry, mut commands) = server.call("CA1");
    for (form, needle) in [
        (
            format!(
                "Twiml={}",
                form_value("<Response><Dial>PJSIP/1&amp;PJSIP/2</Dial></Response>")
            ),
            "'&'",
        ),
        (
            format!(
                "Twiml={}",
                form_value("<Response><Dial>100,tT</Dial></Response>")
            ),
            "','",
        ),
        (
            format!(
                "Twiml={}",
                form_value("<Response><Dial><Sip>sip:a@b</Sip></Dial></Response>")
            ),
            "not supported",
        ),
        (
            format!("Twiml={}", form_value("<Response><Say>hi</Say></Response>")),
            "neither",
        ),
        (format!("Twiml={}", form_value("<<<garbage")), "neither"),
        ("Status=in-progress".to_owned(), "completed"),
        ("Url=http%3A%2F%2Fexample.com".to_owned(), "Url"),
        (String::new(), "nothing to do"),
    ] {
        let reply = update(&server, "CA1", &form).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{form}: {}",
            reply.text
        );
        assert_eq!(reply.json["status"], 400);
        let message = reply.json["message"].as_str().unwrap();
        assert!(message.contains(needle), "{form}: {message}");
        assert!(reply.json["code"].is_u64());
    }
    assert_no_command(&mut commands);
}

#[tokio::test]
async fn wrong_basic_auth_is_twilios_401() {
    let server = Server::start().await;
    let (_entry, mut commands) = server.call("CA1");
    let expected = serde_json::json!({
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    });
    let wrong_password = basic(ACCOUNT_SID, "nope");
    let wrong_user = basic("ACother", TWILIO_TOKEN);
    let bearer = format!("Bearer {TWILIO_TOKEN}");
    for headers in [
        vec![],
        vec![("authorization", wrong_password.as_str())],
        vec![("authorization", wrong_user.as_str())],
        vec![("authorization", bearer.as_str())],
        vec![("authorization", "Basic %%%")],
    ] {
        let mut headers = headers;
        headers.push(("content-type", "application/x-www-form-urlencoded"));
        let reply = server
            .send(Method::POST, &path("CA1"), &headers, "Status=completed")
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{}", reply.text);
        assert_eq!(reply.json, expected);
        assert!(
            reply.headers["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic")
        );
        // Auth comes first: even an unknown call is 401.
        let reply = server
            .send(Method::POST, &path("CA404"), &headers, "Status=completed")
            .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    assert_no_command(&mut commands);
}

#[tokio::test]
async fn unknown_sids_are_twilios_404_and_ended_calls_stay_ended() {
    let server = Server::start().await;
    let reply = update(&server, "CA404", "Status=completed").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{}", reply.text);
    assert_eq!(
        reply.json,
        serde_json::json!({
            "code": 20404,
            "message": format!("The requested resource /2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA404.json was not found"),
            "more_info": "https://www.twilio.com/docs/errors/20404",
            "status": 404,
        })
    );

    let (entry, _commands) = server.call("CA1");
    let auth = basic(ACCOUNT_SID, TWILIO_TOKEN);
    let reply = server
        .send(
            Method::POST,
            "/2010-04-01/Accounts/ACother/Calls/CA1.json",
            &[("authorization", &auth)],
            "Status=completed",
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.json["code"], 20404);
    // Without `.json` the path is not Twilio's.
    let reply = server
        .send(
            Method::POST,
            &format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA1"),
            &[("authorization", &auth)],
            "Status=completed",
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    // The bot hangs up a call the caller already left: done already.
    entry.finish("caller_hangup");
    let reply = update(&server, "CA1", "Status=completed").await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["status"], "completed");
    let reply = update(
        &server,
        "CA1",
        &format!(
            "Twiml={}",
            form_value("<Response><Dial>100</Dial></Response>")
        ),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text);
    assert_eq!(reply.json["code"], 21220);
}

#[tokio::test]
async fn get_returns_the_call_resource() {
    let server = Server::start().await;
    let (_entry, _commands) = server.call("CA1");
    let auth = basic(ACCOUNT_SID, TWILIO_TOKEN);
    let reply = server
        .send(
            Method::GET,
            &path("CA1"),
            &[("authorization", &auth)],
            Bytes::new(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert_eq!(reply.json["sid"], "CA1");
    assert_eq!(reply.json["status"], "in-progress");
    assert!(reply.json["end_time"].is_null());
    let reply = server
        .send(Method::GET, &path("CA1"), &[], Bytes::new())
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}
