//! Reconnect and resync against the real lab through a test-owned TCP proxy: cutting the
//! proxy is a network drop (Asterisk keeps the app's channels), freezing it is a
//! half-open socket that only pings reveal.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ari_client::model::events::ChannelDestroyed;
use ari_client::model::models::HangupReason;
use ari_client::{AppConnection, Backoff, Client, Credentials, Update};
use common::{WAIT, local_call, next_matching};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Forwards 127.0.0.1:<port> to the lab's ARI. `cut` closes every open connection;
/// `freeze` stops forwarding but keeps them open.
struct Proxy {
    address: SocketAddr,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
    frozen: Arc<std::sync::atomic::AtomicBool>,
    refusing: Arc<std::sync::atomic::AtomicBool>,
    _accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refusing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (links_in, frozen_in, refusing_in) = (links.clone(), frozen.clone(), refusing.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                // A refusing proxy is a network that is down: connections close at once.
                if refusing_in.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let frozen = frozen_in.clone();
                let link = tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut in_read, mut in_write) = inbound.into_split();
                    let (mut out_read, mut out_write) = outbound.into_split();
                    let up = pump(&mut in_read, &mut out_write, frozen.clone());
                    let down = pump(&mut out_read, &mut in_write, frozen);
                    let _ = tokio::join!(up, down);
                });
                links_in.lock().unwrap().push(link);
            }
        });
        Proxy {
            address,
            links,
            frozen,
            refusing,
            _accept: accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn cut(&self) {
        for link in self.links.lock().unwrap().drain(..) {
            link.abort();
        }
    }

    fn refuse(&self, refusing: bool) {
        self.refusing
            .store(refusing, std::sync::atomic::Ordering::SeqCst);
    }

    fn freeze(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<std::sync::atomic::AtomicBool>,
) {
    use tokio::io::AsyncReadExt as _;
    let mut buffer = vec![0_u8; 16 * 1024];
    loop {
        let Ok(n) = from.read(&mut buffer).await else {
            return;
        };
        if n == 0 {
            let _ = to.shutdown().await;
            return;
        }
        // A frozen link swallows traffic: the peer sees a silent, open socket.
        if frozen.load(std::sync::atomic::Ordering::SeqCst) {
            continue;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
}

async fn client_through(proxy: &Proxy) -> Client {
    let lab = ari_lab::Lab::get().await;
    Client::builder(&proxy.url())
        .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
        .request_timeout(Duration::from_secs(3))
        .build()
        .unwrap()
}

/// A proxy to the lab and a connection of a new app through it, retrying every 50 ms up
/// to `max_backoff`.
async fn connected_through_a_proxy(prefix: &str, max_backoff: Duration) -> (Proxy, AppConnection) {
    let lab = ari_lab::Lab::get().await;
    let proxy = Proxy::start(lab.authority().to_owned()).await;
    let connection = client_through(&proxy)
        .await
        .app_connection([ari_lab::unique_name(prefix)])
        .backoff(Backoff::new(Duration::from_millis(50), max_backoff))
        .connect()
        .await
        .unwrap();
    (proxy, connection)
}

#[tokio::test]
async fn a_dropped_connection_reconnects_and_resyncs_the_apps_channels() {
    let (proxy, connection) =
        connected_through_a_proxy("rc-drop", Duration::from_millis(500)).await;
    let mut updates = connection.updates();
    let mut channel = local_call(&connection, "answer").await;

    proxy.cut();
    let error = next_matching(&mut updates, |u| match u {
        Update::Disconnected { error } => Some(error.clone()),
        _ => None,
    })
    .await;
    assert!(error.is_transient(), "{error}");
    next_matching(&mut updates, |u| {
        matches!(u, Update::Reconnected).then_some(())
    })
    .await;
    let snapshot = next_matching(&mut updates, |u| match u {
        Update::Resynced(snapshot) => Some(snapshot.clone()),
        Update::ResyncFailed { error } => panic!("resync failed: {}", error.chain()),
        _ => None,
    })
    .await;
    assert_eq!(snapshot.applications.len(), 1);
    assert!(
        snapshot.applications[0].channel_ids.contains(channel.id()),
        "{snapshot:?}"
    );
    assert!(
        snapshot.channels.iter().any(|c| c.id == *channel.id()),
        "{snapshot:?}"
    );

    // The handle kept its subscription across the drop: the channel's end still arrives.
    assert_eq!(
        channel.events.ended(),
        None,
        "the live channel's handle survives"
    );
    channel.hangup(HangupReason::Normal).await.unwrap();
    channel
        .events
        .within(WAIT)
        .wait_for::<ChannelDestroyed>()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_half_open_socket_is_detected_by_pings() {
    let lab = ari_lab::Lab::get().await;
    let proxy = Proxy::start(lab.authority().to_owned()).await;
    let client = client_through(&proxy).await;
    let connection = client
        .app_connection([ari_lab::unique_name("rc-halfopen")])
        .keepalive(Duration::from_millis(200), Duration::from_millis(300))
        .backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(200),
        ))
        .connect()
        .await
        .unwrap();
    let mut updates = connection.updates();
    proxy.freeze(true);
    let error = next_matching(&mut updates, |u| match u {
        Update::Disconnected { error } => Some(error.clone()),
        _ => None,
    })
    .await;
    // The frozen proxy still reads what we write: only the missing pongs can tell.
    let reason = error.chain().to_string();
    assert!(reason.contains("half-open"), "{reason}");
    proxy.freeze(false);
    proxy.cut();
    next_matching(&mut updates, |u| {
        matches!(u, Update::Reconnected).then_some(())
    })
    .await;
}

#[tokio::test]
async fn each_failed_attempt_is_reported_and_a_channel_gone_meanwhile_ends_its_handle() {
    let (proxy, connection) =
        connected_through_a_proxy("rc-gone", Duration::from_millis(200)).await;
    let direct = common::client().await;
    let mut updates = connection.updates();
    let mut kept = local_call(&connection, "answer").await;
    let mut gone = local_call(&connection, "answer").await;

    proxy.refuse(true);
    proxy.cut();
    next_matching(&mut updates, |u| {
        matches!(u, Update::Disconnected { .. }).then_some(())
    })
    .await;
    // While the network is down every attempt is reported, with its error and delay.
    for _ in 0..3 {
        let (error, retry_in) = next_matching(&mut updates, |u| match u {
            Update::ReconnectFailed { error, retry_in } => Some((error.clone(), *retry_in)),
            _ => None,
        })
        .await;
        assert!(error.is_transient(), "{}", error.chain());
        assert!(retry_in <= Duration::from_millis(200), "{retry_in:?}");
    }
    // The channel ends while nobody hears it: its ChannelDestroyed is lost.
    direct
        .channels()
        .hangup(ari_client::model::operations::channels::Hangup::new(
            gone.id().clone(),
        ))
        .await
        .unwrap();
    proxy.refuse(false);
    next_matching(&mut updates, |u| match u {
        Update::Resynced(_) => Some(()),
        Update::ResyncFailed { error } => panic!("resync failed: {}", error.chain()),
        _ => None,
    })
    .await;
    let error = gone
        .events
        .within(WAIT)
        .wait_for::<ChannelDestroyed>()
        .await
        .unwrap_err();
    assert_eq!(
        error.wait_failure(),
        Some(ari_client::WaitFailure::Ended(
            ari_client::StreamEnd::Vanished
        )),
        "{error}"
    );
    assert_eq!(kept.events.ended(), None);
    kept.hangup(HangupReason::Normal).await.unwrap();
    kept.events
        .within(WAIT)
        .wait_for::<ChannelDestroyed>()
        .await
        .unwrap();
}
