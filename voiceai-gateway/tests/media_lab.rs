//! The media legs on the real lab (Asterisk 22): for each transport and each format it
//! carries, a leg bridged with `Local/tone@lab` (440 Hz) receives 50 whole frames a
//! second whose dominant frequency is 440 Hz; bridged with `Local/echo@lab`, a 1000 Hz
//! tone sent at real time comes back at 1000 Hz; after `close` the receiving half ends.
//! Also: `flush` on websocket drops what Asterisk still queued; `open` that cannot finish
//! in time fails with a time-out and leaves no channel; an RTP leg ignores datagrams from
//! other sources and garbage, and a full RTP port pool is an error, not a panic.

use std::time::Duration;

use ari_client::model::events::StasisStart;
use ari_client::model::models::HangupReason;
use ari_client::model::operations::{bridges, channels};
use ari_client::{AppConnection, BridgeHandle, ChannelHandle, Client, Credentials};
use ari_lab::Lab;
use bytes::Bytes;
use tokio::time::Instant;
use voiceai_gateway::audio::{AudioFormat, codec};
use voiceai_gateway::media::{
    MediaError, MediaFactory, MediaInput, MediaKind, MediaLeg, MediaRx, MediaSettings, MediaTx,
};

/// Deadline of every wait that does not measure audio.
const WAIT: Duration = Duration::from_secs(10);
/// How long the frame rate is measured.
const MEASURE: Duration = Duration::from_secs(2);

/// A connected app of its own for this test.
async fn app(prefix: &str) -> AppConnection {
    let lab = Lab::get().await;
    let client = Client::builder(&lab.ari_url)
        .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
        .build()
        .expect("client for the lab");
    client
        .app_connection([ari_lab::unique_name(prefix)])
        .connect()
        .await
        .expect("events connection")
}

/// `Local/<exten>@lab` (μ-law) originated into the app, once in Stasis.
async fn local_call(connection: &AppConnection, exten: &str) -> ChannelHandle {
    local_call_in(connection, exten, "ulaw").await
}

/// `Local/<exten>@lab` in `format`, originated into the app, once in Stasis.
async fn local_call_in(connection: &AppConnection, exten: &str, format: &str) -> ChannelHandle {
    let params = channels::Originate::new(format!("Local/{exten}@lab")).formats(format);
    let mut channel = connection.originate(params).await.expect("originate");
    channel
        .events
        .within(WAIT)
        .wait_for::<StasisStart>()
        .await
        .expect("StasisStart of the Local channel");
    channel
}

fn settings(kind: MediaKind, format: AudioFormat) -> MediaSettings {
    MediaSettings {
        kind,
        format,
        rtp_address: "127.0.0.1".parse().unwrap(),
        rtp_ports: 31000..=31999,
        audiosocket_listen: "127.0.0.1:0".parse().unwrap(),
        connect_timeout: Duration::from_secs(5),
    }
}

/// A fresh channel id for this test.
fn channel_id(prefix: &str) -> String {
    ari_lab::unique_name(&format!("{prefix}-leg"))
}

/// The samples of a frame.
fn decode(format: AudioFormat, frame: &[u8]) -> Vec<f64> {
    match format {
        AudioFormat::Ulaw => frame
            .iter()
            .map(|&b| f64::from(codec::ulaw_to_linear(b)))
            .collect(),
        AudioFormat::Alaw => frame
            .iter()
            .map(|&b| f64::from(codec::alaw_to_linear(b)))
            .collect(),
        AudioFormat::Slin | AudioFormat::Slin16 => frame
            .chunks_exact(2)
            .map(|pair| f64::from(i16::from_le_bytes([pair[0], pair[1]])))
            .collect(),
    }
}

/// Frame `index` of a sine of `hz` at about a quarter of full scale.
fn tone_frame(format: AudioFormat, hz: f64, index: usize) -> Vec<u8> {
    let samples = format.samples_per_frame() as usize;
    let rate = f64::from(format.sample_rate());
    let mut out = Vec::with_capacity(format.frame_bytes());
    for n in 0..samples {
        let t = (index * samples + n) as f64 / rate;
        let sample = (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
        match format {
            AudioFormat::Ulaw => out.push(codec::linear_to_ulaw(sample)),
            AudioFormat::Alaw => out.push(codec::linear_to_alaw(sample)),
            AudioFormat::Slin | AudioFormat::Slin16 => out.extend_from_slice(&sample.to_le_bytes()),
        }
    }
    out
}

/// Goertzel power of `hz` in `samples`.
fn power(samples: &[f64], rate: f64, hz: f64) -> f64 {
    let coefficient = 2.0 * (2.0 * std::f64::consts::PI * hz / rate).cos();
    let (mut s1, mut s2) = (0.0, 0.0);
    for &x in samples {
        let s0 = x + coefficient * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coefficient * s1 * s2
}

/// The strongest frequency of `frames`, scanned from 100 Hz to 3900 Hz in 5 Hz steps.
fn dominant_frequency(format: AudioFormat, frames: &[Bytes]) -> f64 {
    let samples: Vec<f64> = frames.iter().flat_map(|f| decode(format, f)).collect();
    let rate = f64::from(format.sample_rate());
    (20..=780)
        .map(|step| f64::from(step) * 5.0)
        .map(|hz| (hz, power(&samples, rate, hz)))
        .fold(
            (0.0, f64::MIN),
            |best, next| if next.1 > best.1 { next } else { best },
        )
        .0
}

/// Root mean square of a frame's samples.
fn rms(format: AudioFormat, frame: &[u8]) -> f64 {
    let samples = decode(format, frame);
    (samples.iter().map(|s| s * s).sum::<f64>() / samples.len() as f64).sqrt()
}

/// The next audio frame, within `WAIT`; panics when the leg ends first.
async fn next_audio(rx: &mut MediaRx) -> Bytes {
    match tokio::time::timeout(WAIT, rx.recv()).await {
        Ok(Some(MediaInput::Audio(frame))) => frame,
        other => panic!("expected audio within {WAIT:?}, got {other:?}"),
    }
}

/// Frames arriving during `MEASURE` from the first one on, each checked to be one
/// whole frame of `format`.
async fn frames_for_a_while(rx: &mut MediaRx, format: AudioFormat) -> Vec<Bytes> {
    let first = next_audio(rx).await;
    let until = Instant::now() + MEASURE;
    let mut frames = vec![first];
    while let Ok(input) = tokio::time::timeout_at(until, rx.recv()).await {
        match input {
            Some(MediaInput::Audio(frame)) => frames.push(frame),
            other => panic!("the leg ended while measuring: {other:?}"),
        }
    }
    for frame in &frames {
        assert_eq!(
            frame.len(),
            format.frame_bytes(),
            "not one 20 ms frame of {format}"
        );
    }
    frames
}

/// A mixing bridge holding `channels`.
async fn bridge(connection: &AppConnection, channels: [&ChannelHandle; 2]) -> BridgeHandle {
    let bridge = connection
        .create_bridge(bridges::Create::new().r#type("mixing"))
        .await
        .expect("bridge");
    bridge
        .add_channels(channels.map(|channel| channel.id().clone()))
        .await
        .expect("channels added to the bridge");
    bridge
}

/// Receives the 440 Hz tone on `leg` at 50 frames a second; the tone channel is gone
/// afterwards, the bridge (with the leg) stays.
async fn receives_the_tone(
    connection: &AppConnection,
    leg: &mut MediaLeg,
) -> (BridgeHandle, Vec<Bytes>) {
    let tone = local_call(connection, "tone").await;
    let bridge = bridge(connection, [&leg.channel, &tone]).await;
    let frames = frames_for_a_while(&mut leg.rx, leg.format).await;
    let expected = (MEASURE.as_millis() / 20) as usize;
    assert!(
        (expected - 5..=expected + 5).contains(&frames.len()),
        "{} frames in {MEASURE:?}, expected about {expected}",
        frames.len()
    );
    let tail = &frames[frames.len() - 25..];
    let hz = dominant_frequency(leg.format, tail);
    assert!(
        (hz - 440.0).abs() <= 10.0,
        "dominant frequency {hz} Hz, expected 440 Hz"
    );
    println!(
        "{}: {} frames in {MEASURE:?}, dominant {hz} Hz",
        leg.format,
        frames.len()
    );
    bridge.remove_channels([tone.id().clone()]).await.unwrap();
    tone.hangup(HangupReason::Normal).await.unwrap();
    (bridge, frames)
}

/// Sends 1000 Hz at real time for 3 s toward `Local/echo@lab` and hears it come back
/// (`expect_echo`), or checks that it does not (RTP slin16: Asterisk 22.10 drops it).
async fn hears_its_own_tone_echoed(
    connection: &AppConnection,
    leg: MediaLeg,
    bridge: &BridgeHandle,
    expect_echo: bool,
) -> (MediaTx, MediaRx) {
    // The echo speaks the leg's G.711 law: Asterisk 22.10 sometimes stops sending RTP
    // alaw to the leg when the two-party bridge has to translate alaw to a μ-law echo.
    let law = if leg.format == AudioFormat::Alaw {
        "alaw"
    } else {
        "ulaw"
    };
    let echo = local_call_in(connection, "echo", law).await;
    bridge.add_channels([echo.id().clone()]).await.unwrap();
    let format = leg.format;
    let (mut tx, mut rx) = (leg.tx, leg.rx);
    let sending = tokio::spawn(async move {
        let mut clock = tokio::time::interval(Duration::from_millis(20));
        for index in 0..150 {
            clock.tick().await;
            tx.send_frame(&tone_frame(format, 1000.0, index), index == 0)
                .await
                .expect("frame sent");
        }
        tx
    });
    let mut heard = Vec::new();
    let until = Instant::now() + Duration::from_secs(3);
    while let Ok(input) = tokio::time::timeout_at(until, rx.recv()).await {
        match input {
            Some(MediaInput::Audio(frame)) => heard.push(frame),
            other => panic!("the leg ended while echoing: {other:?}"),
        }
    }
    let tx = tokio::time::timeout(WAIT, sending).await.unwrap().unwrap();
    if expect_echo {
        // The echo comes back once it went through Asterisk: check the last 1.5 s.
        assert!(heard.len() > 100, "{} frames heard in 3 s", heard.len());
        let tail = &heard[heard.len() - 75..];
        let loud = tail
            .iter()
            .filter(|frame| rms(format, frame) > 1000.0)
            .count();
        assert!(
            loud >= 60,
            "only {loud} of the last 75 frames carry the echo"
        );
        let hz = dominant_frequency(format, tail);
        assert!(
            (hz - 1000.0).abs() <= 10.0,
            "echo's dominant frequency {hz} Hz, expected 1000 Hz"
        );
        println!("{format}: echo heard at {hz} Hz ({loud}/75 loud frames)");
    } else {
        // What the bridge still had of the 440 Hz tone may arrive first: count the
        // frames that carry 1000 Hz.
        let echoed = heard
            .iter()
            .filter(|frame| rms(format, frame) > 1000.0)
            .filter(|frame| {
                (dominant_frequency(format, std::slice::from_ref(frame)) - 1000.0).abs() < 60.0
            })
            .count();
        assert_eq!(
            echoed, 0,
            "{echoed} frames of 1000 Hz came back: Asterisk now takes {format} over RTP, make the test expect the echo"
        );
        println!("{format}: nothing came back ({} frames heard)", heard.len());
    }
    echo.hangup(HangupReason::Normal).await.unwrap();
    (tx, rx)
}

/// After `close`, the receiving half says Ended once, then nothing.
async fn ends_after_close(tx: MediaTx, mut rx: MediaRx) {
    tokio::time::timeout(WAIT, tx.close())
        .await
        .expect("closed within 10 s");
    let reason = tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(MediaInput::Audio(_)) => {}
                Some(MediaInput::Ended { reason }) => return reason,
                None => panic!("None before Ended"),
            }
        }
    })
    .await
    .expect("Ended within 10 s of close");
    println!("ended: {reason}");
    assert_eq!(rx.recv().await, None);
}

/// The whole check for one transport and format.
async fn tone_echo_and_end(kind: MediaKind, format: AudioFormat) {
    tone_maybe_echo_and_end(kind, format, true).await;
}

async fn tone_maybe_echo_and_end(kind: MediaKind, format: AudioFormat, expect_echo: bool) {
    let prefix = format!("media-{kind}-{format}");
    let connection = app(&prefix).await;
    let factory = MediaFactory::new(settings(kind, format)).await.unwrap();
    let id = channel_id(&prefix);
    let mut leg = tokio::time::timeout(WAIT, factory.open(&connection, &id))
        .await
        .expect("open within 10 s")
        .expect("media leg");
    assert_eq!(leg.channel.id().as_str(), id);
    assert_eq!(leg.format, format);
    let created = leg.channel.get().await.unwrap();
    println!("{kind}/{format}: channel {}", created.name);
    let (bridge, _) = receives_the_tone(&connection, &mut leg).await;
    let (tx, rx) = hears_its_own_tone_echoed(&connection, leg, &bridge, expect_echo).await;
    ends_after_close(tx, rx).await;
    bridge.destroy().await.unwrap();
    let gone = connection.channel(id.as_str()).get().await;
    assert!(
        gone.as_ref().is_err_and(|error| error.is_not_found()),
        "the media channel is still up after close: {gone:?}"
    );
}

#[tokio::test]
async fn websocket_ulaw_carries_the_tone_and_the_echo() {
    tone_echo_and_end(MediaKind::Websocket, AudioFormat::Ulaw).await;
}

#[tokio::test]
async fn websocket_alaw_carries_the_tone_and_the_echo() {
    tone_echo_and_end(MediaKind::Websocket, AudioFormat::Alaw).await;
}

#[tokio::test]
async fn websocket_slin16_carries_the_tone_and_the_echo() {
    tone_echo_and_end(MediaKind::Websocket, AudioFormat::Slin16).await;
}

#[tokio::test]
async fn rtp_ulaw_carries_the_tone_and_the_echo() {
    tone_echo_and_end(MediaKind::Rtp, AudioFormat::Ulaw).await;
}

#[tokio::test]
async fn rtp_alaw_carries_the_tone_and_the_echo() {
    tone_echo_and_end(MediaKind::Rtp, AudioFormat::Alaw).await;
}

#[tokio::test]
async fn audiosocket_slin_carries_the_tone_and_the_echo() {
    tone_echo_and_end(MediaKind::Audiosocket, AudioFormat::Slin).await;
}

#[tokio::test]
async fn audiosocket_slin16_carries_the_tone_and_the_echo() {
    tone_echo_and_end(MediaKind::Audiosocket, AudioFormat::Slin16).await;
}

/// Sends 4 s of 1000 Hz in one burst toward `Local/echo@lab`, waits for the echo, then
/// flushes: from 300 ms after the flush on nothing loud comes back, where without the
/// flush the tone would go on for seconds; the leg still works afterwards.
#[tokio::test]
async fn websocket_flush_drops_what_asterisk_still_queues() {
    let format = AudioFormat::Ulaw;
    let connection = app("media-flush").await;
    let factory = MediaFactory::new(settings(MediaKind::Websocket, format))
        .await
        .unwrap();
    let id = channel_id("media-flush");
    let mut leg = factory.open(&connection, &id).await.expect("media leg");
    let echo = local_call(&connection, "echo").await;
    let bridge = bridge(&connection, [&leg.channel, &echo]).await;
    for index in 0..200 {
        leg.tx
            .send_frame(&tone_frame(format, 1000.0, index), index == 0)
            .await
            .unwrap();
    }
    // The echo starts.
    tokio::time::timeout(WAIT, async {
        while rms(format, &next_audio(&mut leg.rx).await) < 1000.0 {}
    })
    .await
    .expect("the echo within 10 s");
    leg.tx.flush().await.unwrap();
    let flushed = Instant::now();
    let (mut loud_soon, mut loud_later) = (0, 0);
    let until = flushed + Duration::from_millis(1500);
    while let Ok(Some(input)) = tokio::time::timeout_at(until, leg.rx.recv()).await {
        let MediaInput::Audio(frame) = input else {
            panic!("the leg ended: {input:?}");
        };
        if rms(format, &frame) > 1000.0 {
            if flushed.elapsed() < Duration::from_millis(300) {
                loud_soon += 1;
            } else {
                loud_later += 1;
            }
        }
    }
    println!("after FLUSH_MEDIA: {loud_soon} loud frames within 300 ms, {loud_later} later");
    assert_eq!(loud_later, 0, "the tone still came back after FLUSH_MEDIA");
    // The leg still carries audio: 20 more frames come back.
    for index in 0..20 {
        leg.tx
            .send_frame(&tone_frame(format, 1000.0, index), index == 0)
            .await
            .unwrap();
    }
    tokio::time::timeout(WAIT, async {
        while rms(format, &next_audio(&mut leg.rx).await) < 1000.0 {}
    })
    .await
    .expect("the echo of audio sent after the flush within 10 s");
    echo.hangup(HangupReason::Normal).await.unwrap();
    leg.tx.close().await;
    bridge.destroy().await.unwrap();
}

/// With no time at all to connect, `open` fails with a time-out for every transport and
/// leaves no channel behind (the request that was under way is waited for and its channel
/// hung up).
#[tokio::test]
async fn open_that_cannot_finish_in_time_times_out_and_leaves_no_channel() {
    let connection = app("media-timeout").await;
    for kind in MediaKind::ALL {
        let factory = MediaFactory::new(MediaSettings {
            connect_timeout: Duration::ZERO,
            ..settings(kind, kind.default_format())
        })
        .await
        .unwrap();
        let id = channel_id(&format!("media-timeout-{kind}"));
        let error = tokio::time::timeout(WAIT, factory.open(&connection, &id))
            .await
            .expect("open gave up within 10 s")
            .expect_err("open with no time succeeded");
        assert!(
            matches!(error, MediaError::Timeout { .. }),
            "{kind}: {error}"
        );
        println!("{kind}: {error}");
        // The hang-up was asked for; the channel goes within moments.
        let channel = connection.channel(id.as_str());
        tokio::time::timeout(WAIT, async {
            loop {
                match channel.get().await {
                    Err(error) if error.is_not_found() => break,
                    Err(error) => panic!("{error}"),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        })
        .await
        .unwrap_or_else(|_| {
            panic!("{kind}: the channel of a timed-out open is still up after 10 s")
        });
    }
}

/// An even UDP port free right now.
fn free_even_port() -> u16 {
    loop {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = socket.local_addr().unwrap().port();
        if port % 2 == 0 {
            return port;
        }
    }
}

/// A pool of one port: the leg on it ignores datagrams from other sources and garbage
/// (the tone still comes through, nothing injected does); a second open is
/// `PortsExhausted`; once the first leg is closed and dropped the port serves again.
#[tokio::test]
async fn rtp_ignores_foreign_datagrams_and_a_full_port_pool_is_an_error() {
    let format = AudioFormat::Ulaw;
    let connection = app("media-rtp-pool").await;
    let port = free_even_port();
    let factory = MediaFactory::new(MediaSettings {
        rtp_ports: port..=port + 1,
        ..settings(MediaKind::Rtp, format)
    })
    .await
    .unwrap();
    let mut leg = factory
        .open(&connection, &channel_id("media-rtp-pool-a"))
        .await
        .expect("first leg");

    let second = factory
        .open(&connection, &channel_id("media-rtp-pool-b"))
        .await
        .expect_err("a second leg on a one-port pool");
    assert!(
        matches!(second, MediaError::PortsExhausted { first, last } if (first, last) == (port, port + 1)),
        "{second}"
    );

    // Another source sends well-formed PCMU and garbage to the leg's port meanwhile.
    let intruder = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let target = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let injecting = tokio::spawn(async move {
        let mut sender = voiceai_gateway::rtp::RtpSender::new(AudioFormat::Ulaw);
        let mut clock = tokio::time::interval(Duration::from_millis(10));
        for index in 0..300_u32 {
            clock.tick().await;
            let mut packet = bytes::BytesMut::new();
            sender.write(&[0x55; 160], &mut packet);
            intruder.send_to(&packet, target).await.unwrap();
            let garbage: Vec<u8> = (0..index % 40).map(|i| (i * 37 + index) as u8).collect();
            intruder.send_to(&garbage, target).await.unwrap();
        }
    });
    let (bridge, frames) = receives_the_tone(&connection, &mut leg).await;
    injecting.abort();
    assert!(
        frames.iter().all(|frame| frame.iter().any(|&b| b != 0x55)),
        "an injected frame got through"
    );

    leg.tx.close().await;
    drop(leg.rx);
    let mut again = factory
        .open(&connection, &channel_id("media-rtp-pool-c"))
        .await
        .expect("the port serves again once the first leg is gone");
    let tone = local_call(&connection, "tone").await;
    bridge
        .add_channels([again.channel.id().clone(), tone.id().clone()])
        .await
        .unwrap();
    let frames = frames_for_a_while(&mut again.rx, format).await;
    let hz = dominant_frequency(format, &frames[frames.len() - 25..]);
    assert!((hz - 440.0).abs() <= 10.0, "dominant frequency {hz} Hz");
    tone.hangup(HangupReason::Normal).await.unwrap();
    again.tx.close().await;
    bridge.destroy().await.unwrap();
}
