//! The AudioSocket leg (Asterisk 18+): Asterisk connects to the factory's listener and
//! sends the call's UUID first; the listener hands the connection to the `open` waiting
//! for that UUID. Connections with an unknown UUID, or that send none in time, are
//! closed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ari_client::ChannelHandle;
use ari_client::model::models::{MediaEncapsulation, MediaTransport};
use ari_client::model::operations::channels::ExternalMedia;
use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use super::{MediaError, MediaInput, Opening, RxInner, TxInner};
use crate::audio::AudioFormat;
use crate::audio::frames::Reframer;
use crate::audiosocket::{CallUuid, Decoder, Encoder, Message};

/// A connection from Asterisk whose UUID was read, and what was read after it.
#[derive(Debug)]
pub(super) struct Connection {
    stream: TcpStream,
    decoder: Decoder,
}

/// The calls waiting for their connection, by UUID.
#[derive(Debug, Default)]
struct Routes {
    waiting: Mutex<HashMap<CallUuid, oneshot::Sender<Connection>>>,
}

impl Routes {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CallUuid, oneshot::Sender<Connection>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The factory's listener, and the task accepting on it (ended when this is dropped).
#[derive(Debug)]
pub(super) struct Listener {
    routes: Arc<Routes>,
    local: SocketAddr,
    accepting: tokio::task::AbortHandle,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl Listener {
    /// Binds `address` and starts accepting; a connection has `uuid_timeout` to send
    /// its UUID.
    pub(super) async fn bind(
        address: SocketAddr,
        uuid_timeout: Duration,
    ) -> Result<Self, MediaError> {
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| MediaError::Bind { address, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| MediaError::Bind { address, source })?;
        let routes = Arc::new(Routes::default());
        let accepting = tokio::spawn(accept(listener, Arc::clone(&routes), uuid_timeout));
        tracing::debug!(%local, "AudioSocket listener bound");
        Ok(Self {
            routes,
            local,
            accepting: accepting.abort_handle(),
        })
    }

    /// The address bound.
    pub(super) fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Waits for the connection naming `uuid` from now on (until the guard is dropped).
    fn expect(&self, uuid: CallUuid) -> (Expected, oneshot::Receiver<Connection>) {
        let (sender, receiver) = oneshot::channel();
        self.routes.lock().insert(uuid, sender);
        (
            Expected {
                routes: Arc::clone(&self.routes),
                uuid,
            },
            receiver,
        )
    }
}

/// A registered UUID; removed when dropped.
struct Expected {
    routes: Arc<Routes>,
    uuid: CallUuid,
}

impl Drop for Expected {
    fn drop(&mut self) {
        self.routes.lock().remove(&self.uuid);
    }
}

async fn accept(listener: TcpListener, routes: Arc<Routes>, uuid_timeout: Duration) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                let routes = Arc::clone(&routes);
                tokio::spawn(async move {
                    match tokio::time::timeout(uuid_timeout, read_uuid(stream)).await {
                        Ok(Ok((uuid, connection))) => route(&routes, uuid, connection),
                        Ok(Err(why)) => {
                            tracing::debug!(%from, why, "AudioSocket connection closed")
                        }
                        Err(_) => {
                            tracing::debug!(%from, "AudioSocket connection sent no UUID in time: closed")
                        }
                    }
                });
            }
            Err(error) => {
                // Out of file descriptors and the like: try again a little later.
                tracing::warn!(%error, "accepting AudioSocket connections");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads up to the first message, which must be the UUID.
async fn read_uuid(mut stream: TcpStream) -> Result<(CallUuid, Connection), &'static str> {
    let _ = stream.set_nodelay(true);
    let mut decoder = Decoder::new();
    loop {
        match decoder.next_message() {
            Ok(Some(Message::Uuid(uuid))) => return Ok((uuid, Connection { stream, decoder })),
            Ok(Some(_)) => return Err("the first message is not the UUID"),
            Ok(None) => {}
            Err(_) => return Err("malformed first message"),
        }
        let buffer = decoder.buffer_mut();
        buffer.reserve(64);
        match stream.read_buf(buffer).await {
            Ok(0) => return Err("closed before sending its UUID"),
            Ok(_) => {}
            Err(_) => return Err("read failed before the UUID"),
        }
    }
}

fn route(routes: &Routes, uuid: CallUuid, connection: Connection) {
    let waiting = routes.lock().remove(&uuid);
    match waiting {
        // The UUID names the call: debug level only.
        Some(sender) => {
            if sender.send(connection).is_err() {
                tracing::debug!(%uuid, "AudioSocket connection for a call that gave up waiting: closed");
            }
        }
        None => tracing::debug!(%uuid, "AudioSocket connection with an unknown UUID: closed"),
    }
}

/// A new random (version 4) UUID.
fn new_uuid() -> CallUuid {
    let mut bytes = [0; 16];
    fastrand::fill(&mut bytes);
    bytes[6] = (bytes[6] & 0x0F) | 0x40;
    bytes[8] = (bytes[8] & 0x3F) | 0x80;
    CallUuid(bytes)
}

/// Registers a UUID, creates the channel (Asterisk connects while creating it), waits
/// for StasisStart and the connection.
pub(super) async fn open(
    opening: &Opening<'_>,
    listener: &Listener,
) -> Result<(ChannelHandle, TxInner, RxInner), MediaError> {
    let uuid = new_uuid();
    let (_expected, connected) = listener.expect(uuid);
    let params = ExternalMedia::new(opening.app.app(), opening.format.as_str())
        .channel_id(opening.channel_id)
        .encapsulation(MediaEncapsulation::Audiosocket)
        .transport(MediaTransport::Tcp)
        .external_host(listener.local_addr().to_string())
        .data(uuid.to_string());
    let app = opening.app.clone();
    let (mut channel, _) = opening
        .create(async move { app.external_media(params).await })
        .await?;
    opening.in_stasis(&mut channel).await?;
    let connection = match tokio::time::timeout_at(opening.deadline, connected).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(_)) => return Err(MediaError::Closed),
        Err(_) => return Err(opening.timed_out("waiting for Asterisk's AudioSocket connection")),
    };
    let (read, write) = connection.stream.into_split();
    Ok((
        channel,
        TxInner::Audiosocket(Tx {
            write,
            format: opening.format,
            out: BytesMut::with_capacity(3 + opening.format.frame_bytes()),
        }),
        RxInner::Audiosocket(Rx {
            read,
            decoder: connection.decoder,
            reframer: Reframer::new(opening.format),
            ended: false,
        }),
    ))
}

/// Audio toward Asterisk.
#[derive(Debug)]
pub(super) struct Tx {
    write: OwnedWriteHalf,
    format: AudioFormat,
    out: BytesMut,
}

impl Tx {
    pub(super) async fn send_frame(&mut self, frame: &[u8]) -> Result<(), MediaError> {
        self.out.clear();
        if let Err(error) = Encoder::audio(self.format, frame, &mut self.out) {
            return Err(MediaError::Io {
                operation: "encoding AudioSocket audio",
                source: std::io::Error::other(error),
            });
        }
        self.write
            .write_all(&self.out)
            .await
            .map_err(|source| MediaError::Io {
                operation: "sending AudioSocket audio",
                source,
            })
    }

    pub(super) async fn close(mut self) {
        self.out.clear();
        Encoder::hangup(&mut self.out);
        let bye = async {
            self.write.write_all(&self.out).await?;
            self.write.shutdown().await
        };
        if let Ok(Err(error)) = tokio::time::timeout(super::CLEANUP_GRACE, bye).await {
            tracing::debug!(%error, "closing the AudioSocket connection");
        }
    }
}

/// Audio from Asterisk.
#[derive(Debug)]
pub(super) struct Rx {
    read: OwnedReadHalf,
    decoder: Decoder,
    reframer: Reframer,
    ended: bool,
}

impl Rx {
    pub(super) async fn recv(&mut self) -> MediaInput {
        let format = self.reframer.format();
        loop {
            if let Some(frame) = self.reframer.next_frame() {
                return MediaInput::Audio(frame);
            }
            match self.decoder.next_message() {
                Ok(Some(Message::Audio {
                    format: got,
                    payload,
                })) => {
                    if got != format {
                        tracing::debug!(%got, %format, "AudioSocket audio in another format: dropped");
                    } else if payload.len() == format.frame_bytes()
                        && self.reframer.remainder() == 0
                    {
                        return MediaInput::Audio(payload);
                    } else {
                        self.reframer.push(&payload);
                    }
                    continue;
                }
                Ok(Some(Message::Hangup)) => {
                    return self.end("Asterisk sent the AudioSocket hang-up".to_owned());
                }
                Ok(Some(Message::Error(payload))) => {
                    return self.end(format!("Asterisk sent an AudioSocket error {payload:02x?}"));
                }
                // DTMF comes from ARI; a repeated UUID or other kinds mean nothing here.
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(error) => return self.end(format!("malformed AudioSocket stream: {error}")),
            }
            if self.ended {
                return self.end("the AudioSocket connection closed".to_owned());
            }
            let buffer = self.decoder.buffer_mut();
            buffer.reserve(1024);
            match self.read.read_buf(buffer).await {
                Ok(0) => return self.end("the AudioSocket connection closed".to_owned()),
                Ok(_) => {}
                Err(error) => {
                    return self.end(format!("reading the AudioSocket connection: {error}"));
                }
            }
        }
    }

    fn end(&mut self, reason: String) -> MediaInput {
        self.ended = true;
        MediaInput::Ended { reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn listener(uuid_timeout: Duration) -> Listener {
        Listener::bind("127.0.0.1:0".parse().unwrap(), uuid_timeout)
            .await
            .unwrap()
    }

    fn uuid_message(uuid: CallUuid) -> BytesMut {
        let mut out = BytesMut::new();
        Encoder::uuid(uuid, &mut out);
        out
    }

    /// Reads until the peer closes; what it sent meanwhile.
    async fn until_closed(stream: &mut TcpStream) -> usize {
        let mut buf = [0; 64];
        let mut total = 0;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return total,
                Ok(Ok(n)) => total += n,
                Err(_) => panic!("the listener did not close the connection within 10 s"),
            }
        }
    }

    #[tokio::test]
    async fn connections_reach_the_call_their_uuid_names() {
        let listener = listener(Duration::from_secs(5)).await;
        let (a, b) = (new_uuid(), new_uuid());
        let (_ga, ra) = listener.expect(a);
        let (_gb, rb) = listener.expect(b);
        // b connects first, and sends audio with its UUID in the same segment.
        let mut to_b = TcpStream::connect(listener.local_addr()).await.unwrap();
        let mut first = uuid_message(b);
        Encoder::audio(AudioFormat::Slin, &[7; 320], &mut first).unwrap();
        to_b.write_all(&first).await.unwrap();
        let mut to_a = TcpStream::connect(listener.local_addr()).await.unwrap();
        // a's UUID split over two writes.
        let message = uuid_message(a);
        to_a.write_all(&message[..5]).await.unwrap();
        to_a.write_all(&message[5..]).await.unwrap();
        let connection_b = tokio::time::timeout(Duration::from_secs(10), rb)
            .await
            .unwrap()
            .unwrap();
        let connection_a = tokio::time::timeout(Duration::from_secs(10), ra)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(connection_a.decoder.buffered(), 0);
        // What came after the UUID is kept for the leg.
        let (read, _write) = connection_b.stream.into_split();
        let mut rx = Rx {
            read,
            decoder: connection_b.decoder,
            reframer: Reframer::new(AudioFormat::Slin),
            ended: false,
        };
        assert_eq!(rx.recv().await, MediaInput::Audio(vec![7; 320].into()));
        // Half a frame, then the peer hangs up: the half frame is not handed out.
        let mut more = BytesMut::new();
        Encoder::audio(AudioFormat::Slin, &[1; 100], &mut more).unwrap();
        Encoder::hangup(&mut more);
        to_b.write_all(&more).await.unwrap();
        assert!(
            matches!(rx.recv().await, MediaInput::Ended { reason } if reason.contains("hang-up"))
        );
        assert!(listener.routes.lock().is_empty());
    }

    #[tokio::test]
    async fn unknown_uuids_silent_connections_and_garbage_are_closed() {
        let listener = listener(Duration::from_millis(300)).await;
        let waited = new_uuid();
        let (_guard, mut waiting) = listener.expect(waited);
        // An unknown UUID.
        let mut unknown = TcpStream::connect(listener.local_addr()).await.unwrap();
        unknown.write_all(&uuid_message(new_uuid())).await.unwrap();
        assert_eq!(until_closed(&mut unknown).await, 0);
        // Audio before any UUID; a length the kind does not allow.
        for garbage in [&[0x10, 0, 2, 1, 2][..], &[0x01, 0, 3, 1, 2, 3][..]] {
            let mut stream = TcpStream::connect(listener.local_addr()).await.unwrap();
            stream.write_all(garbage).await.unwrap();
            assert_eq!(until_closed(&mut stream).await, 0);
        }
        // Nothing at all: closed after the UUID time-out.
        let started = std::time::Instant::now();
        let mut silent = TcpStream::connect(listener.local_addr()).await.unwrap();
        assert_eq!(until_closed(&mut silent).await, 0);
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
        // None of them reached the waiting call.
        assert!(waiting.try_recv().is_err());
        assert!(listener.routes.lock().contains_key(&waited));
    }

    #[tokio::test]
    async fn a_call_that_gave_up_is_forgotten_and_its_connection_closed() {
        let listener = listener(Duration::from_secs(5)).await;
        let uuid = new_uuid();
        let (guard, receiver) = listener.expect(uuid);
        drop((guard, receiver));
        assert!(listener.routes.lock().is_empty());
        let mut late = TcpStream::connect(listener.local_addr()).await.unwrap();
        late.write_all(&uuid_message(uuid)).await.unwrap();
        assert_eq!(until_closed(&mut late).await, 0);
    }

    #[test]
    fn new_uuids_are_version_4() {
        let uuid = new_uuid().to_string();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!("89ab".contains(&uuid[19..20]), "{uuid}");
    }
}
