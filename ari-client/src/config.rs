//! Building a [`Client`]: where ARI is, who we are, timeouts and TLS.

use std::sync::Arc;
use std::time::Duration;

use crate::Credentials;
use crate::client::{Client, Endpoint};
use crate::error::Error;

/// Which certificates an `https://`/`wss://` connection trusts. There is no trust-all
/// mode: an unverified ARI connection hands call control to whoever is in the middle.
#[derive(Debug, Clone, Default)]
pub enum TlsRoots {
    /// The operating system's trust store.
    #[default]
    Platform,
    /// Only the CA certificates in this PEM text (e.g. a private CA for Asterisk).
    Pem(String),
}

/// Builder of a [`Client`]; see [`Client::builder`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    base_url: String,
    credentials: Option<Credentials>,
    request_timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    tls_roots: TlsRoots,
}

impl ClientBuilder {
    pub(crate) fn new(base_url: &str) -> Self {
        ClientBuilder {
            base_url: base_url.to_owned(),
            credentials: None,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            user_agent: format!("ari-client-rs/{}", env!("CARGO_PKG_VERSION")),
            tls_roots: TlsRoots::Platform,
        }
    }

    /// The ARI user (ari.conf `type=user`).
    #[must_use]
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// How long a request may take, from sending to the last byte of the answer
    /// (default 10 s). Downloads of recordings are not limited by it.
    #[must_use]
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long establishing a connection may take (default 3 s).
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The `User-Agent` header (default `ari-client-rs/<version>`).
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = user_agent.into();
        self
    }

    /// Certificates trusted for `https://` (default: the platform's).
    #[must_use]
    pub fn tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls_roots = roots;
        self
    }

    /// Builds the client. It connects lazily: the first request opens the connection.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that is not `http(s)://host[:port][/prefix]`, missing
    /// credentials, or unusable TLS roots.
    pub fn build(self) -> Result<Client, Error> {
        let endpoint = Endpoint::parse(&self.base_url)?;
        let credentials = self.credentials.ok_or_else(|| {
            Error::Config(
                "no credentials: call .credentials(Credentials::new(user, password))".into(),
            )
        })?;
        let tls = if endpoint.tls {
            Some(Arc::new(tls_config(&self.tls_roots)?))
        } else {
            None
        };
        // Plain http never uses the connector's TLS side, but its type needs a config.
        let connector_tls = match &tls {
            Some(config) => (**config).clone(),
            None => client_config(rustls::RootCertStore::empty())?,
        };
        Ok(Client::from_parts(
            endpoint,
            credentials,
            self.request_timeout,
            self.connect_timeout,
            self.user_agent,
            tls,
            connector_tls,
        ))
    }
}

fn tls_config(roots: &TlsRoots) -> Result<rustls::ClientConfig, Error> {
    let mut store = rustls::RootCertStore::empty();
    match roots {
        TlsRoots::Platform => {
            let loaded = rustls_native_certs::load_native_certs();
            for certificate in loaded.certs {
                let _ = store.add(certificate);
            }
            if store.is_empty() {
                return Err(Error::Config(format!(
                    "no usable certificates in the platform trust store ({:?})",
                    loaded.errors
                )));
            }
        }
        TlsRoots::Pem(pem) => {
            use rustls_pki_types::pem::PemObject as _;
            for certificate in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()) {
                let certificate = certificate.map_err(|e| Error::Config(format!("CA PEM: {e}")))?;
                store
                    .add(certificate)
                    .map_err(|e| Error::Config(format!("CA certificate: {e}")))?;
            }
            if store.is_empty() {
                return Err(Error::Config("the CA PEM holds no certificate".into()));
            }
        }
    }
    client_config(store)
}

fn client_config(roots: rustls::RootCertStore) -> Result<rustls::ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
