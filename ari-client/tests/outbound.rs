//! Outbound WebSocket mode (Asterisk 22.5+) on the lab: Asterisk dials the program at
//! 127.0.0.1:8766 (asterisk_conf/websocket_client.conf [ari-outbound-lab], ari.conf
//! [outbound-lab]) and the program gets the same updates and operations as with
//! /ari/events. The address is fixed by the lab's configuration, so one test owns it.

mod common;

use std::time::Duration;

use ari_client::model::Event;
use ari_client::model::models::HangupReason;
use ari_client::model::operations::{asterisk, channels};
use ari_client::{Client, Credentials, Update};
use common::{WAIT, next_matching};

#[tokio::test]
async fn asterisk_dials_the_program_and_operations_flow_back_on_the_socket() {
    let lab = ari_lab::Lab::get().await;
    let http = Client::builder(&lab.ari_url)
        .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
        .build()
        .unwrap();
    let (connection, mut updates, address) = http
        .outbound_server(["outbound-lab"], "127.0.0.1:8766".parse().unwrap())
        .expect_credentials(Credentials::new("asterisk-outbound", "outbound-secret"))
        .rest_over_websocket(true)
        .bind()
        .await
        .unwrap();
    assert_eq!(address.port(), 8766);
    let over_socket = connection.rest_client();
    assert!(over_socket.is_rest_over_websocket() && connection.client().is_rest_over_websocket());
    // Asterisk retries every 500 ms.
    tokio::time::timeout(
        Duration::from_secs(15),
        next_matching(&mut updates, |u| {
            matches!(u, Update::Connected).then_some(())
        }),
    )
    .await
    .expect("Asterisk connected to the outbound server");

    // Requests travel on Asterisk's own socket, right after it connected.
    let info = over_socket
        .asterisk()
        .get_info(asterisk::GetInfo::new())
        .await
        .unwrap();
    assert!(info.system.unwrap().version.starts_with("22."));

    // The answer came as a RESTResponse event on the outbound socket, not over HTTP.
    next_matching(&mut updates, |u| match u {
        Update::Event(e) => {
            matches!(e.as_ref(), Event::RESTResponse(r) if r.uri.starts_with("asterisk/info"))
                .then_some(())
        }
        _ => None,
    })
    .await;

    // A call into the app is announced on the outbound socket.
    let id = ari_client::new_id("outbound");
    http.channels()
        .originate(
            channels::Originate::new("Local/answer@lab")
                .app("outbound-lab")
                .channel_id(id.as_str())
                .formats("ulaw"),
        )
        .await
        .unwrap();
    next_matching(&mut updates, |u| match u {
        Update::Event(e) => {
            (e.kind() == "StasisStart" && e.channel_ids().contains(&id.as_str())).then_some(())
        }
        _ => None,
    })
    .await;
    let channel = connection.channel(id.as_str());
    channel.hangup(HangupReason::Normal).await.unwrap();
    tokio::time::timeout(
        WAIT,
        next_matching(&mut updates, |u| match u {
            Update::Event(e) => (e.kind() == "StasisEnd").then_some(()),
            _ => None,
        }),
    )
    .await
    .unwrap();
    connection.close();
}
