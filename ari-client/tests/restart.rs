//! Restarts the lab's Asterisk while a connection is held. It restarts the shared
//! Asterisk, so it is a test binary of its own: `cargo test` runs test binaries one at a
//! time, so no other test runs meanwhile. Needs root (the lab script does).

mod common;

use std::time::Duration;

use ari_client::{Backoff, Update};
use common::{client, local_call, next_matching};

#[tokio::test]
async fn asterisk_restart_yields_disconnected_reconnected_resynced() {
    let client = client().await;
    let connection = client
        .app_connection([ari_lab::unique_name("rc-restart")])
        .backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
        .connect()
        .await
        .unwrap();
    let mut updates = connection.updates();
    // A call that the restart will end.
    let _before = local_call(&connection, "answer").await;

    let lab_script = ari_lab::workspace_root().join("asterisk_conf/lab");
    let status = tokio::process::Command::new(&lab_script)
        .arg("restart")
        .status()
        .await
        .unwrap();
    assert!(status.success(), "{} restart failed", lab_script.display());

    next_matching(&mut updates, |u| {
        matches!(u, Update::Disconnected { .. }).then_some(())
    })
    .await;
    let reconnected = tokio::time::timeout(Duration::from_secs(30), async {
        next_matching(&mut updates, |u| {
            matches!(u, Update::Reconnected).then_some(())
        })
        .await;
    });
    reconnected.await.expect("reconnected after the restart");
    let snapshot = next_matching(&mut updates, |u| match u {
        Update::Resynced(snapshot) => Some(snapshot.clone()),
        Update::ResyncFailed { error } => panic!("resync failed: {error}"),
        _ => None,
    })
    .await;
    // The restart ended every call: the app owns nothing, and says so.
    assert_eq!(snapshot.applications.len(), 1);
    assert!(
        snapshot.applications[0].channel_ids.is_empty(),
        "{snapshot:?}"
    );
    assert!(snapshot.channels.is_empty());

    // The connection works as before.
    let after = local_call(&connection, "answer").await;
    after.hangup().await.unwrap();
}
