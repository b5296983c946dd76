//! chan_websocket media on the real lab: audio both ways, marks, status, flow control
//! when Asterisk's queue fills (also with a receiver never read, or dropped), and the
//! refusal of an unknown connection id.

mod common;

use ari_client::model::events::StasisStart;
use ari_client::model::models::HangupReason;
use std::time::Duration;

use ari_client::media::{
    MediaCommand, MediaDirection, MediaEvent, MediaFrame, MediaReceiver, MediaSender,
};
use ari_client::model::operations::bridges;
use common::{WAIT, app, local_call};

/// A Local channel playing a tone, in a mixing bridge with `media_channel`.
async fn bridged_with_a_tone(
    connection: &ari_client::AppConnection,
    media_channel: &ari_client::ChannelHandle,
) -> (ari_client::ChannelHandle, ari_client::BridgeHandle) {
    let tone = local_call(connection, "tone").await;
    let bridge = connection
        .create_bridge(bridges::Create::new().r#type("mixing"))
        .await
        .unwrap();
    bridge
        .add_channels([media_channel.id().clone(), tone.id().clone()])
        .await
        .unwrap();
    (tone, bridge)
}

#[tokio::test]
async fn websocket_media_carries_audio_both_ways_and_honours_xoff() {
    let connection = app("media").await;
    let (mut media_channel, channel, socket) = connection.websocket_media("ulaw").await.unwrap();
    assert!(channel.name.starts_with("WebSocket/"), "{}", channel.name);
    let (mut sender, mut receiver) = socket.split();
    let start = tokio::time::timeout(WAIT, receiver.recv())
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
    tokio::time::timeout(WAIT, media_channel.events.wait_for::<StasisStart>())
        .await
        .unwrap()
        .unwrap();

    let (tone, bridge) = bridged_with_a_tone(&connection, &media_channel).await;

    // Read in a task of its own, as a real program does.
    let reader = tokio::spawn(async move {
        let (mut audio_frames, mut distinct, mut events) =
            (0, std::collections::BTreeSet::new(), Vec::new());
        while let Ok(Some(frame)) =
            tokio::time::timeout(Duration::from_secs(15), receiver.recv()).await
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
                other => panic!("unexpected {other:?}"),
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

    tone.hangup(HangupReason::Normal).await.unwrap();
    media_channel.hangup(HangupReason::Normal).await.unwrap();
    bridge.destroy().await.unwrap();
}

/// A websocket media channel in Stasis (not bridged: Asterisk still plays out what it
/// queues, 50 frames a second), with its socket split.
async fn media_in_stasis(
    connection: &ari_client::AppConnection,
) -> (ari_client::ChannelHandle, MediaSender, MediaReceiver) {
    let (mut channel, _, socket) = connection.websocket_media("ulaw").await.unwrap();
    let (sender, receiver) = socket.split();
    tokio::time::timeout(WAIT, channel.events.wait_for::<StasisStart>())
        .await
        .expect("StasisStart within 10 s")
        .unwrap();
    (channel, sender, receiver)
}

/// `send_audio` of `frames` frames, within 20 s; how long it took.
async fn timed_send(sender: &mut MediaSender, frames: usize) -> Duration {
    let started = std::time::Instant::now();
    tokio::time::timeout(
        Duration::from_secs(20),
        sender.send_audio(&vec![0xFF_u8; 160 * frames]),
    )
    .await
    .unwrap_or_else(|_| panic!("{frames} frames sent within 20 s"))
    .unwrap();
    started.elapsed()
}

/// Sends 1000 frames in one burst without the cap: Asterisk says MEDIA_XOFF at 900
/// queued. When the XOFF came while the burst was going out, that send ended only after
/// MEDIA_XON (below 800: 100 frames to play, 2 s). When the burst was out first (Asterisk
/// reads it after us), the next send, made once the reader task has applied the XOFF,
/// waits for the XON (200 frames to play). Returns how long the send that waited took.
async fn send_through_xoff(sender: &mut MediaSender) -> Duration {
    sender.set_max_queued_frames(None);
    let burst = timed_send(sender, 1000).await;
    if burst >= Duration::from_secs(1) {
        println!("the burst itself waited for XON");
        return burst;
    }
    println!("the burst was out before XOFF; a second send waits for XON");
    tokio::time::timeout(WAIT, async {
        while !sender.is_paused() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await
    .expect("MEDIA_XOFF applied within 10 s of the burst, receiver unread");
    let after = timed_send(sender, 100).await;
    assert!(
        after >= Duration::from_secs(1),
        "did not wait for XON: {after:?}"
    );
    after
}

#[tokio::test]
async fn a_sender_whose_receiver_is_never_read_gets_through_xoff_and_xon() {
    let connection = app("media-unread").await;
    let (channel, mut sender, mut receiver) = media_in_stasis(&connection).await;
    let took = send_through_xoff(&mut sender).await;
    println!("through XOFF/XON in {took:?}, receiver unread");

    // Read only now: the reader task applied these events while nobody read.
    let mut events = Vec::new();
    while !events.contains(&MediaEvent::Xon) {
        match tokio::time::timeout(WAIT, receiver.recv()).await {
            Ok(Some(Ok(MediaFrame::Event(event)))) => events.push(event),
            Ok(Some(Ok(MediaFrame::Audio(_)))) => {}
            other => panic!("expected MEDIA_XON after {events:?}, got {other:?}"),
        }
    }
    let position = |wanted: &MediaEvent| events.iter().position(|e| e == wanted);
    assert!(
        matches!(events.first(), Some(MediaEvent::Start(_))),
        "{events:?}"
    );
    assert!(
        position(&MediaEvent::Xoff) < position(&MediaEvent::Xon),
        "{events:?}"
    );
    channel.hangup(HangupReason::Normal).await.unwrap();
}

#[tokio::test]
async fn a_sender_whose_receiver_was_dropped_gets_through_xoff_and_xon() {
    let connection = app("media-dropped").await;
    let (channel, mut sender, receiver) = media_in_stasis(&connection).await;
    drop(receiver);
    let took = send_through_xoff(&mut sender).await;
    println!("through XOFF/XON in {took:?}, receiver dropped");
    channel.hangup(HangupReason::Normal).await.unwrap();
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

/// How long [`with_direction`] listens for audio.
const LISTEN: Duration = Duration::from_millis(500);

/// Sets `direction`, sends 100 frames and GET_STATUS, reads until its answer (it comes
/// once the direction applies) and counts the audio that comes in during [`LISTEN`].
async fn with_direction(
    sender: &mut MediaSender,
    receiver: &mut MediaReceiver,
    direction: MediaDirection,
) -> (ari_client::media::MediaStatus, Vec<MediaEvent>, usize) {
    sender
        .send_command(MediaCommand::SetMediaDirection { direction })
        .await
        .unwrap();
    sender.send_audio(&[0xFF_u8; 160 * 100]).await.unwrap();
    sender.send_command(MediaCommand::GetStatus).await.unwrap();
    let mut events = Vec::new();
    let status = loop {
        match tokio::time::timeout(WAIT, receiver.recv()).await {
            Ok(Some(Ok(MediaFrame::Event(MediaEvent::Status(status))))) => break status,
            Ok(Some(Ok(MediaFrame::Event(event)))) => events.push(event),
            Ok(Some(Ok(MediaFrame::Audio(_)))) => {}
            other => panic!("expected STATUS, got {other:?}"),
        }
    };
    let mut audio = 0;
    let until = tokio::time::Instant::now() + LISTEN;
    while let Ok(Some(frame)) = tokio::time::timeout_at(until, receiver.recv()).await {
        audio += usize::from(matches!(frame.unwrap(), MediaFrame::Audio(_)));
    }
    sender.send_command(MediaCommand::FlushMedia).await.unwrap();
    (status, events, audio)
}

#[tokio::test]
async fn set_media_direction_turns_each_way_off_and_on() {
    let connection = app("media-direction").await;
    let (media_channel, mut sender, mut receiver) = media_in_stasis(&connection).await;
    let (tone, bridge) = bridged_with_a_tone(&connection, &media_channel).await;

    // `out`: our audio is queued, none comes back (one frame may be on its way).
    let (status, _, audio) = with_direction(&mut sender, &mut receiver, MediaDirection::Out).await;
    assert!(status.queue_length >= 50, "{status:?}");
    assert!(audio <= 1, "{audio} frames came in with direction out");

    // `in`: the caller's audio comes in (25 frames in 500 ms), ours is dropped.
    let (status, _, audio) = with_direction(&mut sender, &mut receiver, MediaDirection::In).await;
    assert_eq!(status.queue_length, 0, "{status:?}");
    assert!(
        audio >= 15,
        "{audio} frames in {LISTEN:?} with direction in"
    );

    // A direction Asterisk does not know is an ERROR event (and changes nothing).
    let sideways = MediaDirection::from("sideways");
    let (_, events, _) = with_direction(&mut sender, &mut receiver, sideways).await;
    let refused = |event: &MediaEvent| match event {
        MediaEvent::Error { raw } => raw["error_text"]
            .as_str()
            .is_some_and(|text| text.contains("'sideways' is not a valid direction")),
        _ => false,
    };
    assert!(events.iter().any(refused), "{events:?}");

    // `both` restores both ways.
    let (status, _, audio) = with_direction(&mut sender, &mut receiver, MediaDirection::Both).await;
    assert!(status.queue_length >= 50, "{status:?}");
    assert!(
        audio >= 15,
        "{audio} frames in {LISTEN:?} with direction both"
    );

    tone.hangup(HangupReason::Normal).await.unwrap();
    media_channel.hangup(HangupReason::Normal).await.unwrap();
    bridge.destroy().await.unwrap();
}

#[tokio::test]
async fn websocket_media_with_uses_the_channel_id_and_variables_given() {
    let connection = app("media-with").await;
    let id = ari_lab::unique_name("media-with-id");
    let params =
        ari_client::model::operations::channels::ExternalMedia::new(connection.app(), "slin16")
            .channel_id(id.as_str())
            .variables([("LAB_MARK", "given")]);
    let (mut channel, created, socket) = connection.websocket_media_with(params).await.unwrap();
    assert_eq!(channel.id().as_str(), id);
    assert_eq!(created.id.as_str(), id);
    assert!(created.name.starts_with("WebSocket/"), "{}", created.name);
    let (_sender, mut receiver) = socket.split();
    match tokio::time::timeout(WAIT, receiver.recv()).await {
        Ok(Some(Ok(MediaFrame::Event(MediaEvent::Start(start))))) => {
            assert_eq!(start.channel_id, id);
            assert_eq!(
                (start.format.as_str(), start.optimal_frame_size),
                ("slin16", 640)
            );
        }
        other => panic!("expected MEDIA_START, got {other:?}"),
    }
    tokio::time::timeout(WAIT, channel.events.wait_for::<StasisStart>())
        .await
        .expect("StasisStart within 10 s")
        .unwrap();
    assert_eq!(channel.variable("LAB_MARK").await.unwrap(), "given");
    channel.hangup(HangupReason::Normal).await.unwrap();
}
