//! Every resource group of the client, exercised on the real lab.

mod common;

use ari_client::model::events::{
    ApplicationMoveFailed, BridgeDestroyed, ChannelDestroyed, ChannelLeftBridge, Dial,
    PlaybackStarted, RecordingStarted, StasisEnd, StasisStart,
};
use ari_client::model::models::HangupReason;
use ari_client::model::models::{ChannelState, PlaybackOperation};
use ari_client::model::operations::{
    applications, asterisk, bridges, channels, device_states, endpoints, events, mailboxes,
    playbacks, recordings, sounds,
};
use ari_client::model::{
    Event,
    models::{DeviceStateValue, IfExists, MuteDirection, SnoopDirection},
};
use ari_client::{DialOptions, DialplanTarget, RecordOptions, SnoopOptions, Update, new_id};
use common::{WAIT, app, client, local_call, next_matching};

#[tokio::test]
async fn asterisk_resource() {
    let client = client().await;
    let info = client
        .asterisk()
        .get_info(asterisk::GetInfo::new())
        .await
        .unwrap();
    assert!(info.system.unwrap().version.starts_with("22."));
    let only_build = client
        .asterisk()
        .get_info(asterisk::GetInfo::new().only([ari_client::model::models::InfoSection::Build]))
        .await
        .unwrap();
    assert!(only_build.build.is_some() && only_build.system.is_none());
    assert_eq!(
        client
            .asterisk()
            .ping(asterisk::Ping::new())
            .await
            .unwrap()
            .ping,
        "pong"
    );
    let modules = client
        .asterisk()
        .list_modules(asterisk::ListModules::new())
        .await
        .unwrap();
    assert!(modules.iter().any(|m| m.name == "res_ari.so"));
    let module = client
        .asterisk()
        .get_module(asterisk::GetModule::new("res_ari.so"))
        .await
        .unwrap();
    assert_eq!(module.status, "Running");
    assert!(
        !client
            .asterisk()
            .list_log_channels(asterisk::ListLogChannels::new())
            .await
            .unwrap()
            .is_empty()
    );
    let name = new_id("GLOBAL_TEST").replace('-', "_");
    client
        .asterisk()
        .set_global_var(asterisk::SetGlobalVar::new(name.as_str()).value("42"))
        .await
        .unwrap();
    assert_eq!(
        client
            .asterisk()
            .get_global_var(asterisk::GetGlobalVar::new(name.as_str()))
            .await
            .unwrap()
            .value,
        "42"
    );
    let trunk = client
        .asterisk()
        .get_object(asterisk::GetObject::new("res_pjsip", "endpoint", "trunk"))
        .await
        .unwrap();
    assert!(
        trunk
            .iter()
            .any(|t| t.attribute == "context" && t.value == "inbound"),
        "{trunk:?}"
    );
}

#[tokio::test]
async fn errors_carry_status_documented_reason_and_asterisks_message() {
    let client = client().await;
    let error = client
        .channels()
        .get(channels::Get::new("no-such-channel"))
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
    match &error {
        ari_client::Error::Api {
            operation,
            status,
            reason,
            message,
            ..
        } => {
            assert_eq!(operation, "channels.get");
            assert_eq!(*status, 404);
            assert_eq!(*reason, Some("Channel not found"));
            assert_eq!(message.as_deref(), Some("Channel not found"));
        }
        other => panic!("expected an API error, got {other:?}"),
    }
    assert_eq!(error.delivery(), ari_client::Delivery::Received);
    let text = error.to_string();
    assert!(
        text.contains("channels.get") && text.contains("404"),
        "{text}"
    );

    let bad = client
        .channels()
        .originate(channels::Originate::new("NoSuchTech/x").app("x"))
        .await
        .unwrap_err();
    assert!(bad.is_bad_request() || bad.status() == Some(500), "{bad}");
}

#[tokio::test]
async fn endpoints_sounds_device_states_and_mailboxes() {
    let client = client().await;
    let all = client
        .endpoints()
        .list(endpoints::List::new())
        .await
        .unwrap();
    assert!(all.iter().any(|e| e.resource == "trunk"));
    let pjsip = client
        .endpoints()
        .list_by_tech(endpoints::ListByTech::new("PJSIP"))
        .await
        .unwrap();
    assert!(pjsip.iter().all(|e| e.technology == "PJSIP"));
    let trunk = client
        .endpoints()
        .get(endpoints::Get::new("PJSIP", "trunk"))
        .await
        .unwrap();
    assert_eq!(trunk.resource, "trunk");

    let sounds = client
        .sounds()
        .list(sounds::List::new().lang("en"))
        .await
        .unwrap();
    assert!(sounds.iter().any(|s| s.id == "hello-world"));
    let hello = client
        .sounds()
        .get(sounds::Get::new("hello-world"))
        .await
        .unwrap();
    assert!(hello.formats.iter().any(|f| f.format == "gsm"));

    let device = format!("Stasis:{}", new_id("dev"));
    client
        .device_states()
        .update(device_states::Update::new(
            device.as_str(),
            DeviceStateValue::Busy,
        ))
        .await
        .unwrap();
    let state = client
        .device_states()
        .get(device_states::Get::new(device.as_str()))
        .await
        .unwrap();
    assert_eq!(state.state, DeviceStateValue::Busy);
    assert!(
        client
            .device_states()
            .list(device_states::List::new())
            .await
            .unwrap()
            .iter()
            .any(|d| d.name == device.as_str())
    );
    client
        .device_states()
        .delete(device_states::Delete::new(device.as_str()))
        .await
        .unwrap();

    // Debian's Asterisk ships no res_ari_mailboxes: the resource is absent, and the
    // client says so as a typed 404 rather than failing to decode.
    let missing = client
        .mailboxes()
        .list(mailboxes::List::new())
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
}

#[tokio::test]
async fn applications_subscribe_and_event_filter() {
    let connection = app("res-apps").await;
    let client = connection.client();
    let name = connection.app().to_owned();
    let listed = client
        .applications()
        .list(applications::List::new())
        .await
        .unwrap();
    assert!(listed.iter().any(|a| a.name == name.as_str()));
    let device = format!("Stasis:{}", new_id("dev"));
    let app = client
        .applications()
        .subscribe(applications::Subscribe::new(
            name.as_str(),
            [format!("deviceState:{device}")],
        ))
        .await
        .unwrap();
    assert!(app.device_names.iter().any(|d| d.as_str() == device));
    let app = client
        .applications()
        .unsubscribe(applications::Unsubscribe::new(
            name.as_str(),
            [format!("deviceState:{device}")],
        ))
        .await
        .unwrap();
    assert!(!app.device_names.iter().any(|d| d.as_str() == device));
    // The filter is the whole body: {"allowed": [...]}.
    let filter = serde_json::json!({"allowed": [{"type": "StasisStart"}, {"type": "StasisEnd"}]});
    let app = client
        .applications()
        .filter(applications::Filter::new(name.as_str()).filter(filter))
        .await
        .unwrap();
    assert_eq!(app.events_allowed.len(), 2, "{app:?}");
    let got = client
        .applications()
        .get(applications::Get::new(name.as_str()))
        .await
        .unwrap();
    assert_eq!(got.events_allowed.len(), 2);
}

#[tokio::test]
async fn channels_originate_answer_variables_dtmf_hold_moh_and_hangup() {
    let connection = app("res-chan").await;
    let client = connection.client();
    let mut channel = local_call(&connection, "answer").await;
    let id = channel.id().clone();
    assert_eq!(channel.get().await.unwrap().state, ChannelState::Up);
    assert!(
        client
            .channels()
            .list(channels::List::new())
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == id)
    );
    channel.answer().await.unwrap();
    client
        .channels()
        .ring(channels::Ring::new(id.clone()))
        .await
        .unwrap();
    client
        .channels()
        .ring_stop(channels::RingStop::new(id.clone()))
        .await
        .unwrap();
    channel.set_variable("TEST_VAR", "hello").await.unwrap();
    assert_eq!(channel.variable("TEST_VAR").await.unwrap(), "hello");
    client
        .channels()
        .set_channel_vars(channels::SetChannelVars::new(
            id.clone(),
            [("A", "1"), ("B", "2")],
        ))
        .await
        .unwrap();
    let vars = client
        .channels()
        .get_channel_vars(channels::GetChannelVars::new(id.clone(), ["A", "B"]))
        .await
        .unwrap();
    assert_eq!(vars.variables["A"], "1", "{vars:?}");
    client
        .channels()
        .mute(channels::Mute::new(id.clone(), MuteDirection::Both))
        .await
        .unwrap();
    client
        .channels()
        .unmute(channels::Unmute::new(id.clone(), MuteDirection::Both))
        .await
        .unwrap();
    client
        .channels()
        .hold(channels::Hold::new(id.clone()))
        .await
        .unwrap();
    client
        .channels()
        .unhold(channels::Unhold::new(id.clone()))
        .await
        .unwrap();
    client
        .channels()
        .start_moh(channels::StartMoh::new(id.clone()))
        .await
        .unwrap();
    client
        .channels()
        .stop_moh(channels::StopMoh::new(id.clone()))
        .await
        .unwrap();
    client
        .channels()
        .start_silence(channels::StartSilence::new(id.clone()))
        .await
        .unwrap();
    client
        .channels()
        .stop_silence(channels::StopSilence::new(id.clone()))
        .await
        .unwrap();
    client
        .channels()
        .send_dtmf(channels::SendDTMF::new(id.clone()).dtmf("1"))
        .await
        .unwrap();
    let rtp = client
        .channels()
        .rtpstatistics(channels::Rtpstatistics::new(id.clone()))
        .await;
    let rtp = rtp.unwrap_err();
    assert_eq!(rtp.status(), Some(403), "a Local channel has no RTP: {rtp}");
    channel.hangup(HangupReason::Normal).await.unwrap();
    let destroyed = channel
        .events
        .within(WAIT)
        .wait_for::<ChannelDestroyed>()
        .await
        .unwrap();
    assert_eq!(destroyed.cause, 16);
    // The handle's stream ends after the channel's last event.
    assert!(
        tokio::time::timeout(WAIT, channel.events.next_event())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn channels_play_record_snoop_move_continue_and_dial() {
    let connection = app("res-media").await;
    let client = connection.client();
    // The tone extension sends audio, so the recording has some.
    let mut channel = local_call(&connection, "tone").await;

    let mut playback = channel.play("sound:beep").await.unwrap();
    let finished = tokio::time::timeout(WAIT, playback.finished())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(finished.id, *playback.id());

    let name = new_id("rec");
    let mut recording = channel
        .record(
            name.as_str(),
            "wav",
            RecordOptions::default()
                .max_duration_seconds(1)
                .if_exists(IfExists::Overwrite),
        )
        .await
        .unwrap();
    let done = tokio::time::timeout(WAIT, recording.finished())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(done.name.as_str(), name);
    let mut file = Vec::new();
    let bytes = recording.download(&mut file).await.unwrap();
    assert!(
        bytes > 44 && &file[..4] == b"RIFF",
        "a wav file, got {bytes} bytes"
    );
    // The atomic download: the same bytes, under the final name only.
    let dir = std::env::temp_dir().join(new_id("ari-dl"));
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join(format!("{name}.wav"));
    assert_eq!(recording.download_to_file(&path).await.unwrap(), bytes);
    assert_eq!(std::fs::read(&path).unwrap(), file);
    recording.delete_stored().await.unwrap();
    // Gone from Asterisk: 404, and no file (not even a partial one) is left behind.
    let missing = dir.join("missing.wav");
    let error = recording.download_to_file(&missing).await.unwrap_err();
    assert!(error.is_not_found(), "{error}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert_eq!(left, [std::ffi::OsString::from(format!("{name}.wav"))]);
    std::fs::remove_dir_all(&dir).unwrap();

    let snoop_id = new_id("snoop");
    let mut snoop = channel
        .snoop(
            SnoopOptions::default()
                .spy(SnoopDirection::In)
                .snoop_id(snoop_id.as_str()),
        )
        .await
        .unwrap();
    assert_eq!(snoop.id().as_str(), snoop_id);
    snoop
        .events
        .within(WAIT)
        .wait_for::<StasisStart>()
        .await
        .unwrap();
    snoop.hangup(HangupReason::Normal).await.unwrap();

    // Move to another app (which nobody listens to) fails with ApplicationMoveFailed.
    client
        .channels()
        .move_to_app(channels::Move::new(
            channel.id().clone(),
            "res-nobody-listens",
        ))
        .await
        .unwrap();
    channel
        .events
        .within(WAIT)
        .wait_for::<ApplicationMoveFailed>()
        .await
        .unwrap();
    channel
        .continue_in_dialplan(DialplanTarget::default())
        .await
        .unwrap();
    channel
        .events
        .within(WAIT)
        .wait_for::<StasisEnd>()
        .await
        .unwrap();
    client
        .channels()
        .hangup(channels::Hangup::new(channel.id().clone()))
        .await
        .unwrap();

    // create + dial: Dial events reach the dialled channel's handle.
    let mut created = connection
        .create_channel(channels::Create::new("Local/answer@lab", connection.app()).formats("ulaw"))
        .await
        .unwrap();
    // channels/create answers before the channel is in the app; dial needs it there.
    created
        .events
        .within(WAIT)
        .wait_for::<StasisStart>()
        .await
        .unwrap();
    created
        .dial(DialOptions::default().timeout(10))
        .await
        .unwrap();
    let answered = created
        .events
        .within(WAIT)
        .wait_until(|e| matches!(e, Event::Dial(d) if d.dialstatus == "ANSWER"))
        .await
        .unwrap();
    let Some(dial) = answered.downcast::<Dial>() else {
        panic!("{answered:?}")
    };
    assert_eq!(dial.peer.id, *created.id());
    created.hangup(HangupReason::Normal).await.unwrap();
}

#[tokio::test]
async fn external_media_rtp_to_a_local_socket() {
    let connection = app("res-extmedia").await;
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let host = socket.local_addr().unwrap().to_string();
    let (mut media, channel) = connection
        .external_media(channels::ExternalMedia::new(connection.app(), "ulaw").external_host(host))
        .await
        .unwrap();
    assert!(channel.name.starts_with("UnicastRTP/"), "{}", channel.name);
    media
        .events
        .within(WAIT)
        .wait_for::<StasisStart>()
        .await
        .unwrap();
    let address = media.variable("UNICASTRTP_LOCAL_ADDRESS").await.unwrap();
    assert_eq!(address, "127.0.0.1");
    media.hangup(HangupReason::Normal).await.unwrap();
}

#[tokio::test]
async fn bridges_add_play_record_remove_destroy() {
    let connection = app("res-bridge").await;
    let client = connection.client();
    let a = local_call(&connection, "answer").await;
    let b = local_call(&connection, "echo").await;
    let mut bridge = connection
        .create_bridge(bridges::Create::new().r#type("mixing").name("test"))
        .await
        .unwrap();
    bridge
        .add_channels([a.id().clone(), b.id().clone()])
        .await
        .unwrap();
    let got = bridge.get().await.unwrap();
    assert_eq!(got.channels.len(), 2);
    assert!(
        client
            .bridges()
            .list(bridges::List::new())
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == *bridge.id())
    );
    client
        .bridges()
        .set_bridge_var(bridges::SetBridgeVar::new(bridge.id().clone(), "BV").value("1"))
        .await
        .unwrap();
    let mut playback = bridge.play("sound:beep").await.unwrap();
    tokio::time::timeout(WAIT, playback.finished())
        .await
        .unwrap()
        .unwrap();
    let name = new_id("bridge-rec");
    let mut recording = bridge
        .record(
            name.as_str(),
            "wav",
            RecordOptions::default().max_duration_seconds(1),
        )
        .await
        .unwrap();
    tokio::time::timeout(WAIT, recording.finished())
        .await
        .unwrap()
        .unwrap();
    let stored = client
        .recordings()
        .get_stored(recordings::GetStored::new(name.as_str()))
        .await
        .unwrap();
    assert_eq!(stored.format, "wav");
    let copy = format!("{name}-copy");
    client
        .recordings()
        .copy_stored(recordings::CopyStored::new(name.as_str(), copy.as_str()))
        .await
        .unwrap();
    assert!(
        client
            .recordings()
            .list_stored(recordings::ListStored::new())
            .await
            .unwrap()
            .iter()
            .any(|r| r.name.as_str() == copy)
    );
    client
        .recordings()
        .delete_stored(recordings::DeleteStored::new(copy.as_str()))
        .await
        .unwrap();
    recording.delete_stored().await.unwrap();
    bridge.remove_channels([a.id().clone()]).await.unwrap();
    bridge
        .events
        .within(WAIT)
        .wait_for::<ChannelLeftBridge>()
        .await
        .unwrap();
    bridge.destroy().await.unwrap();
    bridge
        .events
        .within(WAIT)
        .wait_for::<BridgeDestroyed>()
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(WAIT, bridge.events.next_event())
            .await
            .unwrap()
            .is_none()
    );
    a.hangup(HangupReason::Normal).await.unwrap();
    b.hangup(HangupReason::Normal).await.unwrap();
}

#[tokio::test]
async fn live_recordings_and_playbacks_are_controlled() {
    let connection = app("res-live").await;
    let client = connection.client();
    let channel = local_call(&connection, "answer").await;
    let bridge = connection
        .create_bridge(bridges::Create::new())
        .await
        .unwrap();
    bridge.add_channels([channel.id().clone()]).await.unwrap();

    let name = new_id("live");
    let mut recording = bridge
        .record(name.as_str(), "wav", RecordOptions::default())
        .await
        .unwrap();
    recording
        .events
        .within(WAIT)
        .wait_for::<RecordingStarted>()
        .await
        .unwrap();
    assert_eq!(recording.get().await.unwrap().name.as_str(), name);
    client
        .recordings()
        .pause(recordings::Pause::new(name.as_str()))
        .await
        .unwrap();
    client
        .recordings()
        .unpause(recordings::Unpause::new(name.as_str()))
        .await
        .unwrap();
    client
        .recordings()
        .mute(recordings::Mute::new(name.as_str()))
        .await
        .unwrap();
    client
        .recordings()
        .unmute(recordings::Unmute::new(name.as_str()))
        .await
        .unwrap();
    recording.stop().await.unwrap();
    tokio::time::timeout(WAIT, recording.finished())
        .await
        .unwrap()
        .unwrap();
    recording.delete_stored().await.unwrap();

    let playback = channel.play("sound:hello-world").await.unwrap();
    let mut playback = playback;
    playback
        .events
        .within(WAIT)
        .wait_for::<PlaybackStarted>()
        .await
        .unwrap();
    playback.control(PlaybackOperation::Pause).await.unwrap();
    playback.control(PlaybackOperation::Unpause).await.unwrap();
    assert_eq!(playback.get().await.unwrap().id, *playback.id());
    client
        .playbacks()
        .stop(playbacks::Stop::new(playback.id().clone()))
        .await
        .unwrap();
    tokio::time::timeout(WAIT, playback.finished())
        .await
        .unwrap()
        .unwrap();
    bridge.destroy().await.unwrap();
    channel.hangup(HangupReason::Normal).await.unwrap();
}

#[tokio::test]
async fn user_events_reach_the_app() {
    let connection = app("res-user").await;
    let mut updates = connection.updates();
    let params = events::UserEvent::new("TestEvent", connection.app()).variables([("K", "V")]);
    connection
        .client()
        .events()
        .user_event(params)
        .await
        .unwrap();
    let event = next_matching(&mut updates, |u| match u {
        Update::Event(e) if e.kind() == "ChannelUserevent" => Some(e.clone()),
        _ => None,
    })
    .await;
    match event.as_ref() {
        Event::ChannelUserevent(e) => {
            assert_eq!(e.eventname, "TestEvent");
            assert_eq!(e.userevent["K"], "V");
        }
        other => panic!("{other:?}"),
    }
}
