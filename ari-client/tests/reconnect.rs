//! Reconnect and resync against the real lab through a test-owned TCP proxy: cutting the
//! proxy is a network drop (Asterisk keeps the app's channels), freezing it is a
//! half-open socket that only pings reveal.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ari_client::{Backoff, Client, Credentials, Update};
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
    _accept: JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let frozen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (links_in, frozen_in) = (links.clone(), frozen.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
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

#[tokio::test]
async fn a_dropped_connection_reconnects_and_resyncs_the_apps_channels() {
    let lab = ari_lab::Lab::get().await;
    let proxy = Proxy::start(lab.authority().to_owned()).await;
    let client = client_through(&proxy).await;
    let connection = client
        .app_connection([ari_lab::unique_name("rc-drop")])
        .backoff(Backoff::new(
            Duration::from_millis(50),
            Duration::from_millis(500),
        ))
        .connect()
        .await
        .unwrap();
    let mut updates = connection.updates();
    let mut channel = local_call(&connection, "answer").await;

    proxy.cut();
    let reason = next_matching(&mut updates, |u| match u {
        Update::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(!reason.is_empty());
    next_matching(&mut updates, |u| {
        matches!(u, Update::Reconnected).then_some(())
    })
    .await;
    let snapshot = next_matching(&mut updates, |u| match u {
        Update::Resynced(snapshot) => Some(snapshot.clone()),
        Update::ResyncFailed { error } => panic!("resync failed: {error}"),
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
    channel.hangup().await.unwrap();
    tokio::time::timeout(WAIT, channel.events.wait_for("ChannelDestroyed"))
        .await
        .unwrap()
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
    let reason = next_matching(&mut updates, |u| match u {
        Update::Disconnected { reason } => Some(reason.clone()),
        _ => None,
    })
    .await;
    assert!(
        reason.contains("half-open") || reason.contains("write"),
        "{reason}"
    );
    proxy.freeze(false);
    proxy.cut();
    next_matching(&mut updates, |u| {
        matches!(u, Update::Reconnected).then_some(())
    })
    .await;
}
