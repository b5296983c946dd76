//! Outbound WebSocket mode (Asterisk 22.5+) on the lab: Asterisk dials the program at
//! 127.0.0.1:8766 (asterisk_conf/websocket_client.conf [ari-outbound-lab], ari.conf
//! [outbound-lab]) and the program gets the same updates and operations as with
//! /ari/events. The address is fixed by the lab's configuration, so one test owns it.

mod common;

use std::time::Duration;

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
    let over_socket = Client::builder(&lab.ari_url)
        .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
        .rest_over_websocket(true)
        .build()
        .unwrap();
    let (connection, address) = over_socket
        .outbound_server(["outbound-lab"], "127.0.0.1:8766".parse().unwrap())
        .expect_credentials(Credentials::new("asterisk-outbound", "outbound-secret"))
        .bind()
        .await
        .unwrap();
    assert_eq!(address.port(), 8766);
    let mut updates = connection.updates();
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
    channel.hangup().await.unwrap();
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
