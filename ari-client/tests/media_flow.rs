//! Media flow control against a simulated chan_websocket peer on 127.0.0.1:0: Asterisk's
//! queue (1000 frames, MEDIA_XOFF at 900, MEDIA_XON below 800, one frame played per
//! 20 ms) with a program that never reads, or drops, its receiver; a socket that closes
//! while the sender waits for MEDIA_XON; what an unread receiver is told it missed.
//!
//! The queue tests run on tokio's paused clock, both ends in this one current-thread
//! runtime: a minute of audio takes seconds. The socket is connected before the clock is
//! paused, so the handshake never races an auto-advanced time-out.

use std::time::Duration;

use ari_client::media::{
    MediaCommand, MediaEvent, MediaFrame, MediaReceiver, MediaSender, QUEUE_MAX_FRAMES,
    QUEUE_XOFF_FRAMES, QUEUE_XON_FRAMES, RECEIVER_QUEUE_FRAMES,
};
use ari_client::{Client, Credentials, Delivery, Error};
use futures::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// µ-law: 160 bytes per 20 ms.
const FRAME: usize = 160;
const PTIME: Duration = Duration::from_millis(20);
/// A minute of audio.
const MINUTE_FRAMES: usize = 3000;
/// Deadline of a wait that involves no playout (real or virtual time).
const WAIT: Duration = Duration::from_secs(10);

const START: &str = r#"{"event":"MEDIA_START","connection_id":"c-1","channel":"WebSocket/INCOMING/0x1","channel_id":"media-1","format":"ulaw","optimal_frame_size":160,"ptime":20,"channel_variables":{}}"#;
const XOFF: &str = r#"{"event":"MEDIA_XOFF","channel_id":"media-1"}"#;
const XON: &str = r#"{"event":"MEDIA_XON","channel_id":"media-1"}"#;

type Peer = WebSocketStream<TcpStream>;

// tungstenite's handshake callback returns its (large) ErrorResponse by value.
#[allow(clippy::result_large_err)]
fn agree_on_media(_: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
    response
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("media"));
    Ok(response)
}

/// Connects a media socket to a peer that answers as Asterisk does (subprotocol
/// `media`, then MEDIA_START), and splits it.
async fn connect() -> (MediaSender, MediaReceiver, Peer) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // /media/<id> asks for no login, but a client always has credentials.
    let client = Client::builder(&format!("http://{}", listener.local_addr().unwrap()))
        .credentials(Credentials::new("unused", "unused"))
        .build()
        .unwrap();
    let accept = async {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = tokio_tungstenite::accept_hdr_async(stream, agree_on_media)
            .await
            .unwrap();
        peer.send(Message::text(START)).await.unwrap();
        peer
    };
    let (socket, peer) = timeout(WAIT, async {
        tokio::join!(client.connect_media("c-1"), accept)
    })
    .await
    .expect("media socket connected within 10 s");
    let (sender, receiver) = socket.expect("media socket").split();
    (sender, receiver, peer)
}

/// Frame `n` of a numbered stream: its number in the first four bytes.
fn numbered(n: u32) -> Message {
    let mut frame = vec![0_u8; FRAME];
    frame[..4].copy_from_slice(&n.to_be_bytes());
    Message::binary(frame)
}

fn number_of(frame: &MediaFrame) -> Option<u32> {
    match frame {
        MediaFrame::Audio(audio) => Some(u32::from_be_bytes(audio.get(..4)?.try_into().ok()?)),
        _ => None,
    }
}

/// What the simulated queue saw.
#[derive(Debug, Default)]
struct QueueStats {
    /// Frames that arrived.
    frames: usize,
    /// Frames that arrived on a full queue (chan_websocket drops them).
    overflow: usize,
    xoffs: usize,
    xons: usize,
    /// Longest the queue was.
    longest: usize,
    /// Messages sent to the client, MEDIA_START included.
    sent: u64,
}

/// Plays chan_websocket's part until the client closes: queues what arrives (at most
/// 1000 frames, counting the rest as overflow), says MEDIA_XOFF when the queue reaches 900
/// and MEDIA_XON once it is below 800, plays one frame every 20 ms and, like a caller,
/// sends the client a frame every 20 ms.
async fn asterisk_queue(mut peer: Peer) -> QueueStats {
    let mut stats = QueueStats {
        sent: 1,
        ..QueueStats::default()
    };
    let (mut queued, mut full) = (0_usize, false);
    let mut clock = tokio::time::interval(PTIME);
    loop {
        tokio::select! {
            _ = clock.tick() => {
                // As chan_websocket's dequeue_frame: XON first, then a frame plays.
                if full && queued < QUEUE_XON_FRAMES {
                    full = false;
                    stats.xons += 1;
                    stats.sent += 1;
                    if peer.send(Message::text(XON)).await.is_err() {
                        break;
                    }
                }
                queued = queued.saturating_sub(1);
                stats.sent += 1;
                if peer.send(Message::binary(vec![0x7F_u8; FRAME])).await.is_err() {
                    break;
                }
            }
            message = peer.next() => match message {
                Some(Ok(Message::Binary(audio))) => {
                    for _ in 0..audio.len().div_ceil(FRAME) {
                        stats.frames += 1;
                        if queued >= QUEUE_MAX_FRAMES {
                            stats.overflow += 1;
                            continue;
                        }
                        queued += 1;
                        stats.longest = stats.longest.max(queued);
                        if !full && queued >= QUEUE_XOFF_FRAMES {
                            full = true;
                            stats.xoffs += 1;
                            stats.sent += 1;
                            if peer.send(Message::text(XOFF)).await.is_err() {
                                return stats;
                            }
                        }
                    }
                }
                Some(Ok(Message::Close(_))) => {
                    // Reading on sends tungstenite's answer to the close, as Asterisk does.
                    while let Some(Ok(_)) = peer.next().await {}
                    break;
                }
                Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            }
        }
    }
    stats
}

/// Sends a minute of µ-law silence on the paused clock against [`asterisk_queue`];
/// returns the virtual time it took and what the queue saw.
async fn send_a_minute(sender: &mut MediaSender, peer: Peer) -> (Duration, QueueStats) {
    tokio::time::pause();
    let asterisk = tokio::spawn(asterisk_queue(peer));
    let (started, real) = (Instant::now(), std::time::Instant::now());
    timeout(
        Duration::from_secs(120),
        sender.send_audio(&[0xFF_u8; FRAME * MINUTE_FRAMES]),
    )
    .await
    .expect("a minute of audio sent within 120 s of virtual time")
    .expect("send_audio");
    let took = started.elapsed();
    sender.close().await.unwrap();
    let stats = timeout(WAIT, asterisk)
        .await
        .expect("the peer saw the close within 10 s")
        .unwrap();
    println!(
        "a minute of audio: {took:?} of virtual time, {:?} of real time; {stats:?}",
        real.elapsed()
    );
    (took, stats)
}

/// A minute through a 1000-frame queue that plays 50 frames a second cannot take less
/// than the 2000 frames beyond the queue take to play, nor much more than a minute.
fn assert_sent_through_xoff_and_xon(took: Duration, stats: &QueueStats) {
    assert_eq!(
        stats.frames, MINUTE_FRAMES,
        "every frame arrived: {stats:?}"
    );
    assert_eq!(stats.overflow, 0, "nothing overflowed: {stats:?}");
    assert!(
        stats.xoffs >= 1 && stats.xons >= 1,
        "XOFF and XON happened: {stats:?}"
    );
    let least = PTIME * (MINUTE_FRAMES - QUEUE_MAX_FRAMES) as u32;
    assert!(
        took >= least - PTIME && took <= Duration::from_secs(60),
        "took {took:?} (at least {least:?})"
    );
}

#[tokio::test]
async fn a_program_that_never_reads_sends_a_minute_through_xoff_and_xon() {
    let (mut sender, mut receiver, peer) = connect().await;
    sender.set_max_queued_frames(None);
    let (took, stats) = send_a_minute(&mut sender, peer).await;
    assert_sent_through_xoff_and_xon(took, &stats);

    // The unread receiver kept MEDIA_START and the first frames, and counted the rest.
    let frames: Vec<_> = timeout(WAIT, receiver.by_ref().collect())
        .await
        .expect("the receiver ended within 10 s of the close");
    assert_eq!(
        frames.len(),
        RECEIVER_QUEUE_FRAMES + 1,
        "{:?}",
        frames.last()
    );
    assert!(matches!(
        frames[0],
        Ok(MediaFrame::Event(MediaEvent::Start(_)))
    ));
    assert!(frames[1..RECEIVER_QUEUE_FRAMES].iter().all(|f| matches!(
        f,
        Ok(MediaFrame::Audio(_) | MediaFrame::Event(MediaEvent::Xoff | MediaEvent::Xon))
    )));
    match &frames[RECEIVER_QUEUE_FRAMES] {
        Ok(MediaFrame::Lagged { missed }) => assert_eq!(
            *missed,
            stats.sent - RECEIVER_QUEUE_FRAMES as u64,
            "every message the peer sent is queued or counted"
        ),
        other => panic!("expected the lag marker last, got {other:?}"),
    }
}

#[tokio::test]
async fn a_program_that_dropped_its_receiver_sends_a_minute_through_xoff_and_xon() {
    let (mut sender, receiver, peer) = connect().await;
    drop(receiver);
    sender.set_max_queued_frames(None);
    let (took, stats) = send_a_minute(&mut sender, peer).await;
    assert_sent_through_xoff_and_xon(took, &stats);
}

#[tokio::test]
async fn the_default_cap_keeps_asterisks_queue_at_500_frames_without_xoff() {
    let (mut sender, _receiver, peer) = connect().await;
    let (took, stats) = send_a_minute(&mut sender, peer).await;
    assert_eq!(
        (stats.frames, stats.overflow, stats.xoffs),
        (MINUTE_FRAMES, 0, 0),
        "{stats:?}"
    );
    // One frame of slack: the peer's playout clock ticks in its own phase.
    assert!(stats.longest <= 501, "{stats:?}");
    let expected = PTIME * (MINUTE_FRAMES - 500) as u32;
    assert!(
        took >= expected - PTIME && took <= expected + PTIME * 5,
        "took {took:?}, expected {expected:?}"
    );
}

/// The peer says MEDIA_XOFF on the first audio, waits a second, then ends the socket:
/// with a close handshake, or by dropping the connection.
async fn xoff_then_end(mut peer: Peer, abrupt: bool) -> usize {
    let mut messages = 0;
    while let Some(Ok(message)) = peer.next().await {
        if message.is_binary() {
            messages += 1;
            if messages == 1 {
                peer.send(Message::text(XOFF)).await.unwrap();
                break;
            }
        }
    }
    // Time moves only once the sender waits: it is paused, and nothing else is due.
    tokio::time::sleep(Duration::from_secs(1)).await;
    if abrupt {
        drop(peer);
    } else {
        peer.close(None).await.unwrap();
        while let Some(Ok(message)) = peer.next().await {
            messages += usize::from(message.is_binary());
        }
    }
    messages
}

async fn a_sender_waiting_for_xon_wakes_when_the_socket_ends(abrupt: bool) {
    let (mut sender, mut receiver, peer) = connect().await;
    sender.set_max_queued_frames(None);
    tokio::time::pause();
    let asterisk = tokio::spawn(xoff_then_end(peer, abrupt));
    let started = Instant::now();
    let error = timeout(
        Duration::from_secs(30),
        sender.send_audio(&[0xFF_u8; FRAME * MINUTE_FRAMES]),
    )
    .await
    .expect("send_audio returned within 30 s of virtual time")
    .expect_err("the socket closed under the sender");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "the sender waited for XON until the socket ended: {:?}",
        started.elapsed()
    );
    match &error {
        Error::Transport {
            message,
            delivery: Delivery::NotSent,
            source,
            ..
        } => {
            assert_eq!(message, "media WebSocket: closed");
            assert_eq!(source.is_some(), abrupt, "{error:?}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    // The message says what was done; the cause is in the source only.
    assert_eq!(error.to_string(), "media: media WebSocket: closed");
    assert!(!sender.is_paused());
    let messages = timeout(WAIT, asterisk).await.unwrap().unwrap();
    assert!(
        messages < MINUTE_FRAMES / 20,
        "the sender stopped at XOFF: {messages} messages"
    );

    let frames: Vec<_> = timeout(WAIT, receiver.by_ref().collect())
        .await
        .expect("the receiver ended within 10 s");
    assert!(matches!(
        frames.first(),
        Some(Ok(MediaFrame::Event(MediaEvent::Start(_))))
    ));
    assert!(matches!(
        frames.get(1),
        Some(Ok(MediaFrame::Event(MediaEvent::Xoff)))
    ));
    match (abrupt, frames.get(2)) {
        (false, None) => {}
        (true, Some(Err(Error::Transport { message, .. }))) => {
            assert_eq!(message, "media WebSocket: read failed");
        }
        (_, other) => panic!("unexpected end of the receiver: {other:?}"),
    }
    assert!(frames.len() <= 3, "{frames:?}");
}

#[tokio::test]
async fn a_sender_waiting_for_xon_gets_an_error_when_asterisk_closes() {
    a_sender_waiting_for_xon_wakes_when_the_socket_ends(false).await;
}

#[tokio::test]
async fn a_sender_waiting_for_xon_gets_an_error_when_the_connection_drops() {
    a_sender_waiting_for_xon_wakes_when_the_socket_ends(true).await;
}

/// Sends 600 numbered frames then MEDIA_XOFF, so the reader has applied everything once
/// the sender is paused; then answers `MARK_MEDIA` with `MEDIA_MARK_PROCESSED`, and
/// `GET_STATUS` by closing.
async fn flood_then_serve(mut peer: Peer) {
    for n in 0..600 {
        peer.send(numbered(n)).await.unwrap();
    }
    peer.send(Message::text(XOFF)).await.unwrap();
    while let Some(Ok(message)) = peer.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        if text.contains("MARK_MEDIA") {
            let mark = r#"{"event":"MEDIA_MARK_PROCESSED","channel_id":"media-1","correlation_id":"after"}"#;
            peer.send(Message::text(mark)).await.unwrap();
        } else if text.contains("GET_STATUS") {
            let _ = peer.close(None).await;
        }
    }
}

/// The next message of `receiver`, within [`WAIT`].
async fn next(receiver: &mut MediaReceiver) -> MediaFrame {
    timeout(WAIT, receiver.recv())
        .await
        .expect("a frame within 10 s")
        .expect("the receiver is open")
        .expect("no error")
}

/// Waits until the reader task has applied the peer's MEDIA_XOFF.
async fn until_paused(sender: &MediaSender) {
    timeout(WAIT, async {
        while !sender.is_paused() {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("MEDIA_XOFF applied within 10 s, receiver unread");
}

// What was queued before the receiver filled: MEDIA_START and frames 0..=498; what was
// not: frames 499..=599 and MEDIA_XOFF.
const MISSED: u64 = 600 + 2 - RECEIVER_QUEUE_FRAMES as u64;

#[tokio::test]
async fn an_unread_receiver_gets_a_lag_marker_before_its_next_frame() {
    let (mut sender, mut receiver, peer) = connect().await;
    let peer = tokio::spawn(flood_then_serve(peer));
    until_paused(&sender).await;
    assert!(matches!(
        next(&mut receiver).await,
        MediaFrame::Event(MediaEvent::Start(_))
    ));
    assert_eq!(number_of(&next(&mut receiver).await), Some(0));
    // Room for the marker and the next message now.
    sender
        .send_command(MediaCommand::MarkMedia {
            correlation_id: "after".into(),
        })
        .await
        .unwrap();
    for n in 1..RECEIVER_QUEUE_FRAMES as u32 - 1 {
        assert_eq!(number_of(&next(&mut receiver).await), Some(n));
    }
    assert_eq!(
        next(&mut receiver).await,
        MediaFrame::Lagged { missed: MISSED }
    );
    assert_eq!(
        next(&mut receiver).await,
        MediaFrame::Event(MediaEvent::MarkProcessed {
            correlation_id: "after".into()
        })
    );
    sender.close().await.unwrap();
    assert!(
        timeout(WAIT, receiver.recv())
            .await
            .expect("the receiver ended within 10 s")
            .is_none()
    );
    timeout(WAIT, peer).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_lag_at_the_end_is_reported_before_the_receiver_ends() {
    let (mut sender, mut receiver, peer) = connect().await;
    let peer = tokio::spawn(flood_then_serve(peer));
    until_paused(&sender).await;
    sender.send_command(MediaCommand::GetStatus).await.unwrap();
    let error = timeout(WAIT, sender.send_audio(&[0xFF_u8; FRAME]))
        .await
        .expect("send_audio returned within 10 s")
        .expect_err("closed while waiting for XON");
    assert_eq!(error.delivery(), Delivery::NotSent);
    let frames: Vec<_> = timeout(WAIT, receiver.by_ref().collect())
        .await
        .expect("the receiver ended within 10 s");
    assert_eq!(frames.len(), RECEIVER_QUEUE_FRAMES + 1);
    let numbers: Vec<_> = frames[1..RECEIVER_QUEUE_FRAMES]
        .iter()
        .map(|f| f.as_ref().ok().and_then(number_of))
        .collect();
    assert_eq!(
        numbers,
        (0..RECEIVER_QUEUE_FRAMES as u32 - 1)
            .map(Some)
            .collect::<Vec<_>>()
    );
    assert!(
        matches!(
            frames[RECEIVER_QUEUE_FRAMES],
            Ok(MediaFrame::Lagged { missed: MISSED })
        ),
        "{:?}",
        frames[RECEIVER_QUEUE_FRAMES]
    );
    timeout(WAIT, peer).await.unwrap().unwrap();
}

#[tokio::test]
async fn dropping_both_halves_closes_the_socket() {
    let (mut sender, receiver, mut peer) = connect().await;
    drop(receiver);
    // The receiver alone going away leaves the socket open for the sender.
    peer.send(numbered(0)).await.unwrap();
    sender.send_audio(&[0xFF_u8; FRAME]).await.unwrap();
    let audio = timeout(WAIT, peer.next())
        .await
        .expect("the sender's audio within 10 s");
    assert!(matches!(audio, Some(Ok(Message::Binary(_)))), "{audio:?}");
    drop(sender);
    let first = timeout(WAIT, peer.next())
        .await
        .expect("a close frame within 10 s");
    assert!(
        matches!(first, Some(Ok(Message::Close(_)))),
        "expected a close frame, got {first:?}"
    );
    let after = timeout(WAIT, peer.next())
        .await
        .expect("the end of the socket within 10 s");
    assert!(after.is_none(), "{after:?}");
}
