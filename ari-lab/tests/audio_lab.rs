//! Proves the audio test kit on the lab: a SIPp caller sends the tone and DTMF digits of a
//! pcap written by `ari_lab::pcap`, and a tap (`ari_lab::tap`) hears the right frequency
//! on either side of a real SIP call.

use std::time::Duration;

use ari_lab::audio::{detect_tone, rms};
use ari_lab::events::Events;
use ari_lab::pcap::CallerAudio;
use ari_lab::rest::Rest;
use ari_lab::sipp::{Sipp, UacCall};
use ari_lab::tap::{Spy, Tap};
use ari_lab::{Lab, unique_name};

const WAIT: Duration = Duration::from_secs(10);

async fn answer(rest: &Rest, channel: &str) {
    let answered = rest
        .post(&format!("/channels/{channel}/answer"))
        .await
        .unwrap();
    assert_eq!(answered.status, 204, "{}", answered.text);
}

/// Hangs the channel up and expects SIPp to end cleanly (it answers Asterisk's BYE).
async fn hang_up(rest: &Rest, channel: &str, sipp: Sipp) {
    let _ = rest.delete(&format!("/channels/{channel}")).await.unwrap();
    let errors = sipp.errors();
    let status = sipp.wait(WAIT).await.unwrap();
    assert!(status.success(), "sipp: {status}; {errors}");
}

#[tokio::test]
async fn caller_pcap_tone_and_dtmf_reach_asterisk() {
    let lab = Lab::get().await;
    let rest = Rest::new(lab);
    let app = unique_name("lab-pcap");
    let mut events = Events::connect(lab, &app).await.unwrap();
    let audio = CallerAudio::tone(1000.0, Duration::from_secs(8)).dtmf_digits(
        Duration::from_millis(1500),
        Duration::from_millis(400),
        "1#5",
    );
    let call = UacCall {
        dialled: "15550002".into(),
        caller: "4925550002".into(),
        app: app.clone(),
    };
    let sipp = Sipp::call_with_audio(&call, &audio).unwrap();
    let start = events
        .wait_for("StasisStart", WAIT, |_| true)
        .await
        .unwrap_or_else(|e| panic!("{e}; sipp: {}", sipp.stderr()));
    let channel = start["channel"]["id"].as_str().unwrap().to_owned();

    let tap = Tap::start(lab, &channel, Spy::In).await.unwrap();
    answer(&rest, &channel).await;

    let mut digits = String::new();
    while digits.len() < 3 {
        let dtmf = events
            .wait_for("ChannelDtmfReceived", WAIT, |e| {
                e["channel"]["id"] == channel.as_str()
            })
            .await
            .unwrap_or_else(|e| panic!("digits so far {digits:?}: {e}"));
        digits.push_str(dtmf["digit"].as_str().unwrap());
    }
    assert_eq!(digits, "1#5");

    let heard = tap.stop().await.unwrap();
    assert_eq!(heard.sample_rate, 8000);
    assert!(
        heard.duration() > Duration::from_secs(2),
        "recorded {:?}",
        heard.duration()
    );
    let tone = detect_tone(&heard.samples, heard.sample_rate);
    assert!(
        tone.is_some_and(|f| (f - 1000.0).abs() < 5.0),
        "the caller's tone: {tone:?} (rms {})",
        rms(&heard.samples)
    );
    hang_up(&rest, &channel, sipp).await;
}

#[tokio::test]
async fn tap_out_hears_what_the_caller_hears() {
    let lab = Lab::get().await;
    let rest = Rest::new(lab);
    let app = unique_name("lab-tap");
    let mut events = Events::connect(lab, &app).await.unwrap();
    // The caller says 1000 Hz; what it hears must be the other side's 440 Hz.
    let call = UacCall {
        dialled: "15550003".into(),
        caller: "4925550003".into(),
        app: app.clone(),
    };
    let sipp =
        Sipp::call_with_audio(&call, &CallerAudio::tone(1000.0, Duration::from_secs(10))).unwrap();
    let start = events
        .wait_for("StasisStart", WAIT, |_| true)
        .await
        .unwrap();
    let caller = start["channel"]["id"].as_str().unwrap().to_owned();
    answer(&rest, &caller).await;

    let tone_channel = unique_name("tone");
    let originated = rest
        .post(&format!(
            "/channels?endpoint=Local/tone@lab&app={app}&channelId={tone_channel}&formats=alaw"
        ))
        .await
        .unwrap();
    assert_eq!(originated.status, 200, "{}", originated.text);
    events
        .wait_for("StasisStart", WAIT, |e| {
            e["channel"]["id"] == tone_channel.as_str()
        })
        .await
        .unwrap();
    let bridge = unique_name("bridge");
    let created = rest
        .post(&format!("/bridges?type=mixing&bridgeId={bridge}"))
        .await
        .unwrap();
    assert_eq!(created.status, 200, "{}", created.text);
    let added = rest
        .post(&format!(
            "/bridges/{bridge}/addChannel?channel={caller},{tone_channel}"
        ))
        .await
        .unwrap();
    assert_eq!(added.status, 204, "{}", added.text);

    let hears = Tap::start_for(lab, &caller, Spy::Out, 2).await.unwrap();
    let says = Tap::start_for(lab, &caller, Spy::In, 2).await.unwrap();
    let heard = hears.finish(WAIT).await.unwrap();
    let said = says.finish(WAIT).await.unwrap();
    assert!(
        heard.duration() >= Duration::from_millis(1800),
        "{:?}",
        heard.duration()
    );
    let tone = detect_tone(&heard.samples, heard.sample_rate);
    assert!(
        tone.is_some_and(|f| (f - 440.0).abs() < 5.0),
        "what the caller hears: {tone:?} (rms {}, {:?})",
        rms(&heard.samples),
        heard.duration()
    );
    let tone = detect_tone(&said.samples, said.sample_rate);
    assert!(
        tone.is_some_and(|f| (f - 1000.0).abs() < 5.0),
        "what the caller says: {tone:?}"
    );

    let _ = rest.delete(&format!("/channels/{tone_channel}")).await;
    let _ = rest.delete(&format!("/bridges/{bridge}")).await;
    hang_up(&rest, &caller, sipp).await;
}
