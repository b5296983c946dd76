//! chan_websocket media on the real lab: audio both ways, marks, status, flow control
//! when Asterisk's queue fills, and the refusal of an unknown connection id.

mod common;

use std::time::Duration;

use ari_client::media::{MediaCommand, MediaEvent, MediaFrame};
use ari_client::model::operations::bridges;
use common::{WAIT, app, local_call};

#[tokio::test]
async fn websocket_media_carries_audio_both_ways_and_honours_xoff() {
    let connection = app("media").await;
    let (mut media_channel, channel, socket) = connection.websocket_media("ulaw").await.unwrap();
    assert!(channel.name.starts_with("WebSocket/"), "{}", channel.name);
    let (mut sender, mut receiver) = socket.split();
    let start = tokio::time::timeout(WAIT, receiver.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match start {
        MediaFrame::Event(MediaEvent::Start(start)) => {
            assert_eq!(
                (start.format.as_str(), start.optimal_frame_size, start.ptime),
                ("ulaw", 160, 20)
            );
            assert_eq!(start.channel_id, media_channel.id().as_str());
        }
        other => panic!("expected MEDIA_START, got {other:?}"),
    }
    // The channel enters Stasis once the socket is connected.
    tokio::time::timeout(WAIT, media_channel.events.wait_for("StasisStart"))
        .await
        .unwrap()
        .unwrap();

    let tone = local_call(&connection, "tone").await;
    let bridge = connection
        .create_bridge(bridges::Create::new().r#type("mixing"))
        .await
        .unwrap();
    bridge
        .add_channels([media_channel.id().clone(), tone.id().clone()])
        .await
        .unwrap();

    // Read in a task of its own, as a real program does, so flow control can work.
    let reader = tokio::spawn(async move {
        let (mut audio_frames, mut distinct, mut events) =
            (0, std::collections::BTreeSet::new(), Vec::new());
        while let Ok(Some(frame)) =
            tokio::time::timeout(Duration::from_secs(15), receiver.next()).await
        {
            match frame.unwrap() {
                MediaFrame::Audio(audio) => {
                    assert_eq!(audio.len(), 160);
                    audio_frames += 1;
                    distinct.extend(audio.iter().copied());
                }
                MediaFrame::Event(event) => {
                    let done = matches!(&event, MediaEvent::MarkProcessed { correlation_id } if correlation_id == "end");
                    events.push(event);
                    if done {
                        break;
                    }
                }
            }
        }
        (audio_frames, distinct.len(), events)
    });

    sender.send_command(MediaCommand::GetStatus).await.unwrap();
    let silence = [0xFF_u8; 160];

    // Paced by the sender's own estimate: 300 frames under a 100-frame cap take at
    // least (300 - 100) x 20 ms.
    sender.set_max_queued_frames(Some(100));
    let started = std::time::Instant::now();
    sender.send_audio(&silence.repeat(300)).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(3500),
        "not paced: {:?}",
        started.elapsed()
    );
    sender.send_command(MediaCommand::FlushMedia).await.unwrap();

    // Without the cap, Asterisk's XOFF stops the sender (at 900 queued frames) until
    // XON (800): 1000 frames, sent a message at a time as a producer would.
    sender.set_max_queued_frames(None);
    let started = std::time::Instant::now();
    for _ in 0..50 {
        sender.send_audio(&silence.repeat(20)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // 50 x 5 ms of sending; the rest is the wait from XOFF (900 queued) to XON (800).
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "did not wait for XON: {:?}",
        started.elapsed()
    );
    sender.send_command(MediaCommand::FlushMedia).await.unwrap();
    sender
        .send_command(MediaCommand::MarkMedia {
            correlation_id: "end".into(),
        })
        .await
        .unwrap();

    let (audio_frames, distinct, events) = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .unwrap()
        .unwrap();
    assert!(
        audio_frames > 50,
        "{audio_frames} audio frames from Asterisk"
    );
    assert!(
        distinct > 10,
        "the tone is not silence: {distinct} distinct byte values"
    );
    assert!(
        events.iter().any(|e| matches!(e, MediaEvent::Status(_))),
        "{events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, MediaEvent::Xoff)),
        "no XOFF: {events:?}"
    );
    assert!(
        events.iter().any(|e| matches!(e, MediaEvent::Xon)),
        "no XON: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, MediaEvent::MarkProcessed { .. }))
    );

    tone.hangup().await.unwrap();
    media_channel.hangup().await.unwrap();
    bridge.destroy().await.unwrap();
}

#[tokio::test]
async fn an_unknown_connection_id_is_a_404_that_never_shows_the_id() {
    let connection = app("media-unknown").await;
    let id = format!("no-such-{}", ari_lab::unique_name("id"));
    let error = connection.connect_media(&id).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    let mut chain = error.to_string();
    let mut cause = std::error::Error::source(&error);
    while let Some(next) = cause {
        chain.push_str(&format!(": {next}"));
        cause = next.source();
    }
    assert!(
        chain.contains("no media channel has this connection id"),
        "{chain}"
    );
    assert!(chain.contains("WebSocket instance not found"), "{chain}");
    assert!(!chain.contains(&id), "{chain}");
    assert!(!format!("{error:?}").contains(&id), "{error:?}");
}
