//! JSON captured from the real lab (`cargo run -p ari-lab --bin capture-fixtures`) decodes
//! into the generated types: every event to its own variant (never `Unknown`), every REST
//! response to the response type of the operation that produced it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ari_model::models::{BridgeType, ChannelState, PlaybackState, RecordingState};
use ari_model::operations::{
    applications, asterisk, bridges, channels, device_states, endpoints, playbacks, recordings,
    sounds,
};
use ari_model::{Event, EventIds, Operation, Timestamp};
use serde::de::DeserializeOwned;

fn fixtures() -> PathBuf {
    // Read at run time (cargo sets it) so a shared target directory never points at
    // another clone's files.
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("tests/fixtures")
}

fn events() -> Vec<(String, Event)> {
    let text = std::fs::read_to_string(fixtures().join("events.jsonl")).unwrap();
    text.lines()
        .map(|line| {
            let event = Event::from_json_str(line).unwrap_or_else(|e| panic!("{e}\n{line}"));
            (line.to_owned(), event)
        })
        .collect()
}

#[test]
fn every_captured_event_decodes_to_its_own_variant() {
    let events = events();
    assert!(events.len() > 100, "only {} events captured", events.len());
    for (line, event) in &events {
        assert!(!event.is_unknown(), "decoded as Unknown: {line}");
        let raw: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(event.kind(), raw["type"], "{line}");
        // The serde path decodes the same, and serialising gives back an equal event.
        let via_serde: Event = serde_json::from_str(line).unwrap();
        assert_eq!(&via_serde, event);
        let again = Event::from_json_str(&serde_json::to_string(event).unwrap()).unwrap();
        assert_eq!(&again, event);
        let timestamp = Timestamp::from(event.timestamp().unwrap());
        assert!(
            timestamp.unix_millis().is_some(),
            "unparsed timestamp in {line}"
        );
        assert!(
            event
                .application()
                .is_some_and(|a| a.starts_with("fixtures-")),
            "{line}"
        );
    }
}

#[test]
fn the_lab_produces_the_events_calls_need() {
    let kinds: BTreeSet<String> = events().iter().map(|(_, e)| e.kind().to_owned()).collect();
    for needed in [
        "StasisStart",
        "StasisEnd",
        "ChannelCreated",
        "ChannelStateChange",
        "ChannelDtmfReceived",
        "Dial",
        "ChannelVarset",
        "ChannelCallerId",
        "ChannelDialplan",
        "ChannelHangupRequest",
        "ChannelDestroyed",
        "BridgeCreated",
        "BridgeDestroyed",
        "ChannelEnteredBridge",
        "ChannelLeftBridge",
        "PlaybackStarted",
        "PlaybackContinuing",
        "PlaybackFinished",
        "RecordingStarted",
        "RecordingFinished",
        "ChannelUserevent",
        "DeviceStateChanged",
        "ApplicationMoveFailed",
        "ApplicationReplaced",
        "RESTResponse",
    ] {
        assert!(
            kinds.contains(needed),
            "no {needed} among the fixtures: {kinds:?}"
        );
    }
}

#[test]
fn events_name_the_objects_they_concern() {
    for (line, event) in events() {
        match &event {
            Event::Dial(dial) => {
                assert!(
                    event.channel_ids().contains(&dial.peer.id.as_str()),
                    "{line}"
                );
                if let Some(caller) = &dial.caller {
                    assert!(event.channel_ids().contains(&caller.id.as_str()));
                }
            }
            Event::ChannelEnteredBridge(entered) => {
                assert_eq!(
                    event.channel_ids(),
                    [entered.channel.as_ref().unwrap().id.as_str()]
                );
                assert_eq!(event.bridge_ids(), [entered.bridge.id.as_str()]);
                assert_eq!(entered.bridge.bridge_type, BridgeType::Mixing);
            }
            Event::PlaybackStarted(started) => {
                assert_eq!(event.playback_ids(), [started.playback.id.as_str()]);
                assert!(event.channel_ids().is_empty());
            }
            Event::RecordingFinished(finished) => {
                assert_eq!(event.recording_names(), [finished.recording.name.as_str()]);
                assert_eq!(finished.recording.state, RecordingState::Done);
            }
            Event::ChannelDestroyed(destroyed) => {
                assert_eq!(event.channel_ids(), [destroyed.channel.id.as_str()]);
                assert!(!destroyed.channel.state.is_unknown(), "{line}");
            }
            Event::StasisStart(start) => assert!(!start.channel.state.is_unknown()),
            Event::PlaybackFinished(finished) => {
                assert_eq!(finished.playback.state, PlaybackState::Done)
            }
            _ => {}
        }
    }
}

#[test]
fn ids_of_known_events_need_no_allocation() {
    let mut with_ids = 0;
    for (line, event) in events() {
        let lists = [
            event.channel_ids(),
            event.bridge_ids(),
            event.playback_ids(),
            event.recording_names(),
        ];
        assert!(lists.iter().all(EventIds::is_inline), "{line}");
        with_ids += usize::from(lists.iter().any(|ids| !ids.is_empty()));
    }
    // Not a vacuous check: most captured events name some object.
    assert!(with_ids > 100, "only {with_ids} events with ids");
}

#[test]
fn ids_of_an_unknown_event_come_from_its_objects_in_order_past_the_inline_space() {
    let event = events()
        .into_iter()
        .find_map(|(_, e)| match e {
            Event::ChannelDestroyed(d) => Some(d),
            _ => None,
        })
        .expect("a ChannelDestroyed");
    let count = EventIds::INLINE_CAPACITY + 2;
    let mut raw = serde_json::json!({"type": "ChannelsMerged", "application": "demo"});
    let mut expected = Vec::new();
    for n in 0..count {
        let mut channel = serde_json::to_value(&event.channel).unwrap();
        let id = format!("1700000000.{n:02}");
        channel["id"] = serde_json::json!(id);
        // Keys that sort as they count, whatever order the map keeps.
        raw[format!("channel_{n:02}")] = channel;
        expected.push(id);
    }
    raw["bridge"] = serde_json::json!({"id": "b-1", "bridge_type": "mixing", "channels": []});
    let event = Event::from_json_str(&raw.to_string()).unwrap();
    assert!(event.is_unknown());
    let ids = event.channel_ids();
    assert!(!ids.is_inline());
    assert_eq!(ids, expected.iter().map(String::as_str).collect::<Vec<_>>());
    let bridges = event.bridge_ids();
    assert!(bridges.is_inline());
    assert_eq!(bridges, ["b-1"]);
    assert!(event.playback_ids().is_empty());
}

#[test]
fn a_busy_trunk_call_carries_q850_cause_17() {
    let busy = events().into_iter().find_map(|(_, e)| match e {
        Event::ChannelDestroyed(d) if d.channel.name.starts_with("PJSIP/trunk-") => Some(d),
        _ => None,
    });
    let destroyed = busy.expect("a ChannelDestroyed of the busy trunk call");
    assert_eq!(destroyed.cause, 17);
}

fn decode<O: Operation>(name: &str) -> O::Response
where
    O::Response: DeserializeOwned,
{
    let path = fixtures().join("rest").join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut deserializer)
        .unwrap_or_else(|e| panic!("{name}.json as {}.{}: {e}", O::RESOURCE, O::NICKNAME))
}

#[test]
fn rest_responses_decode_as_their_operations_response() {
    let info = decode::<asterisk::GetInfo>("asterisk_info");
    assert!(info.system.unwrap().version.starts_with("22."));
    decode::<asterisk::Ping>("asterisk_ping");
    assert!(!decode::<asterisk::ListModules>("modules").is_empty());
    decode::<asterisk::GetModule>("module");
    decode::<asterisk::ListLogChannels>("log_channels");
    assert_eq!(
        decode::<asterisk::GetGlobalVar>("global_variable").value,
        "voiceai"
    );
    assert!(!decode::<asterisk::GetObject>("config_tuples").is_empty());
    decode::<endpoints::List>("endpoints");
    decode::<endpoints::Get>("endpoint");
    decode::<sounds::List>("sounds");
    decode::<sounds::Get>("sound");
    decode::<applications::Get>("application");
    decode::<applications::List>("applications");
    let channel = decode::<channels::Get>("channel");
    assert_eq!(channel.state, ChannelState::Up);
    decode::<channels::List>("channels");
    assert_eq!(decode::<channels::GetChannelVar>("variable").value, "yes");
    decode::<channels::Rtpstatistics>("rtp_statistics");
    decode::<playbacks::Get>("playback");
    decode::<recordings::GetLive>("live_recording");
    decode::<recordings::ListStored>("stored_recordings");
    decode::<recordings::GetStored>("stored_recording");
    let bridge = decode::<bridges::Get>("bridge");
    assert_eq!(bridge.bridge_type, BridgeType::Mixing);
    decode::<bridges::List>("bridges");
    decode::<device_states::List>("device_states");
    decode::<device_states::Get>("device_state");
}
