//! https:// and wss:// against a local rustls server whose certificate comes from a
//! throwaway CA (made with the openssl command): trusted only when that CA is given.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use ari_client::model::operations::asterisk;
use ari_client::{Client, Credentials, Error, TlsRoots};
use futures::StreamExt as _;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl is needed for this test: {e}"));
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A CA, and a certificate for 127.0.0.1 signed by it.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=ari-client test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("san.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "1",
            "-extfile",
            "san.cnf",
        ],
    );
}

/// Serves TLS on 127.0.0.1:0: a canned ping answer for HTTP requests, and a WebSocket
/// for /ari/events.
async fn tls_server(dir: &Path) -> String {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(dir.join("server.pem"))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                // Read the request head to tell HTTP from a WebSocket upgrade.
                let mut head = Vec::new();
                let mut byte = [0_u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tls.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                if head.starts_with("GET /ari/events") {
                    let key = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("Sec-WebSocket-Key: ")
                                .or_else(|| l.strip_prefix("sec-websocket-key: "))
                        })
                        .unwrap_or("")
                        .trim()
                        .to_owned();
                    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(
                        key.as_bytes(),
                    );
                    let response = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                        tls,
                        tokio_tungstenite::tungstenite::protocol::Role::Server,
                        None,
                    )
                    .await;
                    let (_sink, mut stream) = ws.split();
                    while stream.next().await.is_some() {}
                } else {
                    let body = r#"{"asterisk_id":"tls","ping":"pong","timestamp":"2026-11-22T00:00:00.000+0000"}"#;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.flush().await;
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn https_and_wss_trust_the_given_ca_and_only_it() {
    let dir = std::env::temp_dir().join(ari_client::new_id("tls-test"));
    std::fs::create_dir_all(&dir).unwrap();
    make_certificates(&dir);
    let url = tls_server(&dir).await;
    let ca = std::fs::read_to_string(dir.join("ca.pem")).unwrap();

    let trusting = Client::builder(&url)
        .credentials(Credentials::new("u", "p"))
        .tls_roots(TlsRoots::Pem(ca))
        .build()
        .unwrap();
    let ping = trusting
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap();
    assert_eq!(ping.asterisk_id, "tls");
    let connection = trusting
        .app_connection(["tls-app"])
        .connect()
        .await
        .unwrap();
    let mut updates = connection.updates();
    drop(connection);
    assert!(
        tokio::time::timeout(Duration::from_secs(10), updates.next())
            .await
            .unwrap()
            .is_none()
    );

    // The platform's roots do not know this CA: refused, never silently trusted.
    let platform = Client::builder(&url)
        .credentials(Credentials::new("u", "p"))
        .request_timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let error = platform
        .asterisk()
        .ping(asterisk::Ping::new())
        .await
        .unwrap_err();
    // The cause is in the chain, not copied into the error's own text.
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    let chain = error.chain().to_string();
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");
    let refused = platform
        .app_connection(["tls-app"])
        .connect()
        .await
        .unwrap_err();
    let chain = refused.chain().to_string();
    assert!(chain.to_lowercase().contains("certificate"), "{chain}");

    // A PEM without a certificate is a configuration error, named as such.
    let bad = Client::builder(&url)
        .credentials(Credentials::new("u", "p"))
        .tls_roots(TlsRoots::Pem("not a pem".into()))
        .build();
    assert!(matches!(bad, Err(Error::Config(_))));
    let _ = std::fs::remove_dir_all(&dir);
}
