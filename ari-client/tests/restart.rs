//! Kills the lab's Asterisk (SIGKILL: a crash, so no channel ends cleanly and no end
//! event is sent) while a connection holds calls, then starts it again. It needs the
//! shared Asterisk alone: `ari_lab::Lab::alone` keeps every other test process out
//! while it runs, under any test runner. Needs root (the lab script does).

mod common;

use std::time::{Duration, Instant};

use ari_client::model::events::{
    BridgeDestroyed, ChannelDestroyed, PlaybackFinished, RecordingFinished,
};
use ari_client::model::models::HangupReason;
use ari_client::model::operations::bridges;
use ari_client::{RecordOptions, StreamEnd, Update, WaitFailure};
use common::{WAIT, local_call, next_matching};

fn vanished(error: ari_client::Error) {
    assert_eq!(
        error.wait_failure(),
        Some(WaitFailure::Ended(StreamEnd::Vanished)),
        "{error}"
    );
}

#[tokio::test]
async fn after_asterisk_crashes_handles_end_and_the_connection_is_back_within_5_s() {
    ari_lab::Lab::alone().await;
    let client = common::client().await;
    // The default backoff: what a program gets without tuning.
    let connection = client
        .app_connection([ari_lab::unique_name("rc-crash")])
        .connect()
        .await
        .unwrap();
    let mut updates = connection.updates();
    let mut channel = local_call(&connection, "answer").await;
    let mut bridge = connection
        .create_bridge(bridges::Create::new().r#type("mixing"))
        .await
        .unwrap();
    bridge.add_channels([channel.id().clone()]).await.unwrap();
    let mut playback = bridge.play("tone:ring").await.unwrap();
    let mut recording = bridge
        .record(
            &ari_client::new_id("crash"),
            "wav",
            RecordOptions::default(),
        )
        .await
        .unwrap();

    let lab_script = ari_lab::workspace_root().join("asterisk_conf/lab");
    let status = tokio::process::Command::new(&lab_script)
        .args(["stop", "--kill"])
        .status()
        .await
        .unwrap();
    assert!(
        status.success(),
        "{} stop --kill failed",
        lab_script.display()
    );
    next_matching(&mut updates, |u| {
        matches!(u, Update::Disconnected { .. }).then_some(())
    })
    .await;
    let status = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&lab_script)
            .arg("start")
            .status(),
    )
    .await
    .expect("the lab starts within 60 s")
    .unwrap();
    assert!(status.success(), "{} start failed", lab_script.display());
    // `lab start` returns once ARI answers: from then on the default backoff (at most 4 s
    // between attempts) brings the connection back within 5 s.
    let back = Instant::now();
    next_matching(&mut updates, |u| {
        matches!(u, Update::Reconnected).then_some(())
    })
    .await;
    let took = back.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "reconnected {took:?} after Asterisk was back"
    );
    let snapshot = next_matching(&mut updates, |u| match u {
        Update::Resynced(snapshot) => Some(snapshot.clone()),
        Update::ResyncFailed { error } => panic!("resync failed: {}", error.chain()),
        _ => None,
    })
    .await;
    // Nothing survived the crash, and the snapshot says so.
    assert_eq!(snapshot.applications.len(), 1);
    assert!(
        snapshot.channels.is_empty() && snapshot.bridges.is_empty(),
        "{snapshot:?}"
    );
    assert!(
        snapshot.playbacks.is_empty() && snapshot.recordings.is_empty(),
        "{snapshot:?}"
    );

    // Every handle's wait returns at once, saying its object vanished.
    vanished(
        channel
            .events
            .within(WAIT)
            .wait_for::<ChannelDestroyed>()
            .await
            .unwrap_err(),
    );
    vanished(
        bridge
            .events
            .within(WAIT)
            .wait_for::<BridgeDestroyed>()
            .await
            .unwrap_err(),
    );
    vanished(
        playback
            .events
            .within(WAIT)
            .wait_for::<PlaybackFinished>()
            .await
            .unwrap_err(),
    );
    vanished(
        recording
            .events
            .within(WAIT)
            .wait_for::<RecordingFinished>()
            .await
            .unwrap_err(),
    );
    vanished(
        tokio::time::timeout(WAIT, playback.finished())
            .await
            .unwrap()
            .unwrap_err(),
    );
    assert_eq!(connection.object_subscriptions(), 0);

    // The connection works as before.
    let after = local_call(&connection, "answer").await;
    after.hangup(HangupReason::Normal).await.unwrap();
}
