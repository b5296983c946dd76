//! The RTP leg (any Asterisk since 16.6): one UDP socket per call, from the factory's
//! port pool.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use ari_client::ChannelHandle;
use ari_client::model::EventType as _;
use ari_client::model::events::{ChannelDestroyed, StasisEnd};
use ari_client::model::models::{Channel, MediaEncapsulation, MediaTransport};
use ari_client::model::operations::channels::ExternalMedia;
use ari_client::{ObjectEvents, StreamEnd};
use bytes::BytesMut;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::ports::{PortLease, PortPool};
use super::{MediaError, MediaInput, Opening, RxInner, TxInner};
use crate::audio::frames::Reframer;
use crate::audio::{AudioFormat, FRAME_DURATION};
use crate::rtp::{self as wire, RtpSender};

/// The channel variables that say where Asterisk's RTP comes from and goes to.
const ADDRESS_VAR: &str = "UNICASTRTP_LOCAL_ADDRESS";
const PORT_VAR: &str = "UNICASTRTP_LOCAL_PORT";

/// Binds a socket on a pool port, creates the channel to send to it, waits for
/// StasisStart.
pub(super) async fn open(
    opening: &Opening<'_>,
    address: IpAddr,
    pool: &Arc<PortPool>,
) -> Result<(ChannelHandle, TxInner, RxInner), MediaError> {
    let shared = Arc::new(bind(address, pool).await?);
    let local = SocketAddr::new(address, shared.lease.port());
    let params = ExternalMedia::new(opening.app.app(), opening.format.as_str())
        .channel_id(opening.channel_id)
        .encapsulation(MediaEncapsulation::Rtp)
        .transport(MediaTransport::Udp)
        .external_host(local.to_string());
    let app = opening.app.clone();
    let (mut channel, created) = opening
        .create(async move { app.external_media(params).await })
        .await?;
    let peer = match asterisk_address(&created) {
        Some(peer) => peer,
        None => {
            // Not in the answer (an older Asterisk?): ask for the variables.
            let address = channel.variable(ADDRESS_VAR).await?;
            let port = channel.variable(PORT_VAR).await?;
            parse_address(&address, &port).ok_or(MediaError::MissingVariable(ADDRESS_VAR))?
        }
    };
    opening.in_stasis(&mut channel).await?;
    // Asterisk's address is known unless it said "unspecified": then the first RTP
    // datagram names it.
    let known = (!peer.ip().is_unspecified()).then_some(peer);
    *shared.peer.lock().unwrap_or_else(PoisonError::into_inner) = known;
    tracing::debug!(%local, %peer, "RTP leg: Asterisk's side");
    let watch = opening.app.channel(opening.channel_id).events;
    let format = opening.format;
    Ok((
        channel,
        TxInner::Rtp(Tx {
            shared: Arc::clone(&shared),
            sender: RtpSender::new(format),
            packet: BytesMut::with_capacity(wire::HEADER_LEN + format.frame_bytes()),
            last_sent: None,
        }),
        RxInner::Rtp(Rx {
            shared,
            format,
            payload_type: wire::payload_type(format),
            datagram: vec![0; wire::MAX_PACKET],
            native: BytesMut::new(),
            reframer: Reframer::new(format),
            watch: Some(watch),
            dropped: 0,
        }),
    ))
}

/// Binds `address` at a free pool port; a port some other program holds is skipped
/// (and stays in the pool).
async fn bind(address: IpAddr, pool: &Arc<PortPool>) -> Result<Shared, MediaError> {
    let (first, last) = pool.bounds();
    let mut last_error = None;
    for _ in 0..pool.free().max(1) {
        let Some(lease) = pool.take() else {
            break;
        };
        let local = SocketAddr::new(address, lease.port());
        match UdpSocket::bind(local).await {
            Ok(socket) => {
                return Ok(Shared {
                    socket,
                    peer: Mutex::new(None),
                    lease,
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                tracing::debug!(%local, "RTP port in use by another program: skipped");
                last_error = Some((local, error));
            }
            Err(source) => {
                return Err(MediaError::Bind {
                    address: local,
                    source,
                });
            }
        }
    }
    Err(match last_error {
        Some((address, source)) => MediaError::Bind { address, source },
        None => MediaError::PortsExhausted { first, last },
    })
}

/// Asterisk's RTP address from the variables of the channel as created.
fn asterisk_address(channel: &Channel) -> Option<SocketAddr> {
    let vars = channel.channelvars.as_ref()?;
    let address = vars.get(ADDRESS_VAR)?.as_str()?;
    let port = vars.get(PORT_VAR)?.as_str()?;
    parse_address(address, port)
}

fn parse_address(address: &str, port: &str) -> Option<SocketAddr> {
    let ip = address
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .ok()?;
    let port = port.trim().parse::<u16>().ok().filter(|port| *port != 0)?;
    Some(SocketAddr::new(ip, port))
}

/// What both halves share: the socket (and its pool port, given back after the socket
/// is closed: fields drop in order) and Asterisk's address.
#[derive(Debug)]
struct Shared {
    socket: UdpSocket,
    peer: Mutex<Option<SocketAddr>>,
    lease: PortLease,
}

impl Shared {
    fn peer(&self) -> Option<SocketAddr> {
        *self.peer.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Audio toward Asterisk.
#[derive(Debug)]
pub(super) struct Tx {
    shared: Arc<Shared>,
    sender: RtpSender,
    packet: BytesMut,
    last_sent: Option<Instant>,
}

impl Tx {
    pub(super) async fn send_frame(
        &mut self,
        frame: &[u8],
        spurt_start: bool,
    ) -> Result<(), MediaError> {
        let Some(peer) = self.shared.peer() else {
            // Asterisk's address is not known yet (it said "unspecified" and has not
            // sent anything): nowhere to send to.
            return Ok(());
        };
        let now = Instant::now();
        if spurt_start {
            // The timestamp moves on by the pause: the frames not sent since the last.
            let skipped = self.last_sent.map_or(0, |last| {
                let frames = (now - last).as_micros() + FRAME_DURATION.as_micros() / 2;
                let frames = frames / FRAME_DURATION.as_micros();
                u32::try_from(frames.saturating_sub(1)).unwrap_or(u32::MAX)
            });
            self.sender
                .skip(skipped.saturating_mul(self.sender.format().samples_per_frame()));
        }
        self.packet.clear();
        self.sender.write(frame, &mut self.packet);
        self.last_sent = Some(now);
        match self.shared.socket.send_to(&self.packet, peer).await {
            Ok(_) => Ok(()),
            Err(source) => Err(MediaError::Io {
                operation: "sending RTP",
                source,
            }),
        }
    }
}

/// Audio from Asterisk.
#[derive(Debug)]
pub(super) struct Rx {
    shared: Arc<Shared>,
    format: AudioFormat,
    payload_type: u8,
    datagram: Vec<u8>,
    native: BytesMut,
    reframer: Reframer,
    /// The channel's events, to end when it hangs up (`None` once they cannot say).
    watch: Option<ObjectEvents>,
    /// Datagrams dropped: another source, another payload type, not RTP.
    dropped: u64,
}

impl Rx {
    pub(super) async fn recv(&mut self) -> MediaInput {
        loop {
            if let Some(frame) = self.reframer.next_frame() {
                return MediaInput::Audio(frame);
            }
            let event = async {
                match &mut self.watch {
                    Some(watch) => watch.next_event().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                received = self.shared.socket.recv_from(&mut self.datagram) => match received {
                    Ok((len, from)) => self.take(len, from),
                    Err(error) => {
                        // ICMP errors and the like: RTP goes on.
                        tracing::debug!(%error, "reading RTP");
                    }
                },
                event = event => match event {
                    Some(event) => {
                        if StasisEnd::from_event(&event).is_some()
                            || ChannelDestroyed::from_event(&event).is_some()
                        {
                            return MediaInput::Ended {
                                reason: "the RTP media channel hung up".to_owned(),
                            };
                        }
                    }
                    None => {
                        let end = self.watch.as_ref().and_then(ObjectEvents::ended);
                        self.watch = None;
                        match end {
                            Some(StreamEnd::Closed) | None => {
                                // The ARI connection was closed: media goes on.
                                tracing::debug!("RTP leg: channel events ended with the connection");
                            }
                            Some(end) => {
                                return MediaInput::Ended {
                                    reason: format!("the RTP media channel ended ({end})"),
                                };
                            }
                        }
                    }
                },
            }
        }
    }

    /// Takes one datagram: RTP of the leg's payload type from Asterisk's address.
    fn take(&mut self, len: usize, from: SocketAddr) {
        let datagram = &self.datagram[..len];
        let expected = self.shared.peer();
        if expected.is_some_and(|peer| peer != from) {
            self.drop_one("from another address");
            return;
        }
        let packet = match wire::parse(datagram) {
            Ok(packet) => packet,
            Err(_) => {
                self.drop_one("not RTP");
                return;
            }
        };
        if packet.payload_type != self.payload_type {
            self.drop_one("of another payload type");
            return;
        }
        if expected.is_none() {
            tracing::debug!(%from, "RTP leg: Asterisk's address learnt from its first packet");
            *self
                .shared
                .peer
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(from);
        }
        if self.format.is_g711() {
            self.reframer.push(packet.payload);
        } else {
            self.native.clear();
            wire::payload_to_native(self.format, packet.payload, &mut self.native);
            self.reframer.push(&self.native);
        }
    }

    fn drop_one(&mut self, why: &'static str) {
        self.dropped += 1;
        if self.dropped.is_power_of_two() {
            tracing::debug!(dropped = self.dropped, why, "RTP datagram dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asterisk_addresses_parse() {
        assert_eq!(
            parse_address("127.0.0.1", "17340"),
            Some("127.0.0.1:17340".parse().unwrap())
        );
        assert_eq!(
            parse_address("[::1]", "4000"),
            Some("[::1]:4000".parse().unwrap())
        );
        assert_eq!(parse_address("", "4000"), None);
        assert_eq!(parse_address("127.0.0.1", "0"), None);
        assert_eq!(parse_address("127.0.0.1", "x"), None);
        assert_eq!(parse_address("host", "4000"), None);
    }

    #[tokio::test]
    async fn a_port_held_by_another_program_stays_in_the_pool_and_an_empty_pool_is_an_error() {
        // An even port some other socket holds.
        let held = loop {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            if socket.local_addr().unwrap().port() % 2 == 0 {
                break socket;
            }
        };
        let port = held.local_addr().unwrap().port();
        let pool = Arc::new(PortPool::new(&(port..=port)));
        let address: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(matches!(
            bind(address, &pool).await,
            Err(MediaError::Bind { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse
        ));
        assert_eq!(pool.free(), 1);
        drop(held);
        let shared = bind(address, &pool).await.unwrap();
        assert_eq!(shared.lease.port(), port);
        assert!(matches!(
            bind(address, &pool).await,
            Err(MediaError::PortsExhausted { first, last }) if (first, last) == (port, port)
        ));
        drop(shared);
        assert_eq!(pool.free(), 1);
    }
}
