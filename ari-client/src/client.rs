//! The client: sends typed operations to ARI over pooled keep-alive HTTP/1.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::connection::rest::RestRoute;
use ari_model::operation::encode_path_segment;
use ari_model::{Operation, ResponseKind};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncWrite, AsyncWriteExt as _};
use tracing::Instrument as _;

use crate::Credentials;
use crate::config::ClientBuilder;
use crate::error::{Delivery, Error};

/// Where ARI is: scheme, host and port, and any path prefix before `/ari`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoint {
    pub(crate) tls: bool,
    pub(crate) authority: String,
    pub(crate) prefix: String,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Endpoint, Error> {
        let bad = |why: &str| {
            Error::Config(format!(
                "ARI URL {url:?}: {why} (expected http(s)://host[:port][/prefix])"
            ))
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad("scheme must be http or https"));
        };
        let (authority, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
        if authority.is_empty() || authority.contains(['@', '?', '#', ' ']) {
            return Err(bad("no usable host"));
        }
        if path.contains(['?', '#']) {
            return Err(bad("no query or fragment allowed"));
        }
        // Accept a URL that already ends in /ari: it is a common way to write it.
        let path = path.trim_end_matches('/');
        let path = path
            .strip_suffix("ari")
            .map_or(path, |p| p.trim_end_matches('/'));
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("/{path}")
        };
        Ok(Endpoint {
            tls,
            authority: authority.to_owned(),
            prefix,
        })
    }

    /// `http(s)://authority/prefix/ari`
    pub(crate) fn ari_base(&self) -> String {
        format!(
            "{}://{}{}/ari",
            if self.tls { "https" } else { "http" },
            self.authority,
            self.prefix
        )
    }

    /// `ws(s)://authority/prefix`
    pub(crate) fn ws_base(&self) -> String {
        format!(
            "{}://{}{}",
            if self.tls { "wss" } else { "ws" },
            self.authority,
            self.prefix
        )
    }
}

pub(crate) struct Inner {
    pub(crate) endpoint: Endpoint,
    /// `endpoint.ari_base()`, made once: every request's URI starts with it.
    ari_base: String,
    pub(crate) credentials: Credentials,
    authorization: HeaderValue,
    user_agent: HeaderValue,
    pub(crate) request_timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
    http: HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A typed ARI client. Cheap to clone: clones share one connection pool.
///
/// ```no_run
/// use ari_client::{Client, Credentials};
/// use ari_client::model::operations::asterisk::GetInfo;
///
/// # async fn run() -> Result<(), ari_client::Error> {
/// let client = Client::builder("http://127.0.0.1:8088")
///     .credentials(Credentials::new("asterisk", "asterisk"))
///     .build()?;
/// let info = client.asterisk().get_info(GetInfo::new()).await?;
/// println!("Asterisk {}", info.system.map(|s| s.version).unwrap_or_default());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    /// Set on [`crate::AppConnection::rest_client`]: operations go over that socket.
    rest: Option<RestRoute>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.inner.endpoint.ari_base())
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

fn header(value: &str, what: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| {
        tracing::warn!("{what} has characters not allowed in an HTTP header; sending it empty");
        HeaderValue::from_static("")
    })
}

impl Client {
    /// Starts building a client for the ARI at `base_url` (e.g. `http://127.0.0.1:8088`;
    /// a trailing `/ari` is accepted).
    pub fn builder(base_url: &str) -> ClientBuilder {
        ClientBuilder::new(base_url)
    }

    pub(crate) fn from_parts(
        endpoint: Endpoint,
        credentials: Credentials,
        request_timeout: Duration,
        connect_timeout: Duration,
        user_agent: String,
        tls: Option<Arc<rustls::ClientConfig>>,
        connector_tls: rustls::ClientConfig,
    ) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(false);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(connector_tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        // Asterisk closes idle HTTP sessions after 30 s (http.conf session_inactivity);
        // dropping ours first avoids sending on a socket it is closing.
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(20))
            .build(https);
        let mut authorization = header(&credentials.basic_authorization(), "the ARI password");
        authorization.set_sensitive(true);
        Client {
            inner: Arc::new(Inner {
                ari_base: endpoint.ari_base(),
                endpoint,
                authorization,
                credentials,
                user_agent: header(&user_agent, "the user agent"),
                request_timeout,
                connect_timeout,
                tls,
                http,
            }),
            rest: None,
        }
    }

    /// This client with operations sent over an app connection's socket.
    pub(crate) fn with_rest_route(&self, route: RestRoute) -> Client {
        Client {
            inner: self.inner.clone(),
            rest: Some(route),
        }
    }

    /// Whether operations travel over an app connection's events socket.
    pub fn is_rest_over_websocket(&self) -> bool {
        self.rest.is_some()
    }

    /// The ARI base URL, e.g. `http://127.0.0.1:8088/ari`.
    pub fn url(&self) -> String {
        self.inner.ari_base.clone()
    }

    pub(crate) fn credentials(&self) -> &Credentials {
        &self.inner.credentials
    }

    fn uri<O: Operation>(&self, operation: &O, path: &str) -> String {
        let mut uri = String::with_capacity(self.inner.ari_base.len() + path.len() + 64);
        uri.push_str(&self.inner.ari_base);
        uri.push_str(path);
        let query = operation.query();
        for (i, (name, value)) in query.iter().enumerate() {
            uri.push(if i == 0 { '?' } else { '&' });
            uri.push_str(&encode_path_segment(name));
            uri.push('=');
            uri.push_str(&encode_path_segment(value));
        }
        uri
    }

    fn request<O: Operation>(
        &self,
        operation: &O,
        path: &str,
    ) -> Result<Request<Full<Bytes>>, Error> {
        let name = operation_name::<O>();
        let body = operation.body();
        let mut builder = Request::builder()
            .method(O::METHOD.as_str())
            .uri(self.uri(operation, path))
            .header(AUTHORIZATION, self.inner.authorization.clone())
            .header(USER_AGENT, self.inner.user_agent.clone());
        let bytes = match body {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(bytes))
            .map_err(|e| Error::Config(format!("{name}: cannot build the request: {e}")))
    }

    async fn send<O: Operation>(
        &self,
        operation: &O,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, Error> {
        let request = self.request(operation, path)?;
        self.inner.http.request(request).await.map_err(|error| {
            let delivery = if error.is_connect() {
                Delivery::NotSent
            } else {
                Delivery::Unknown
            };
            let message = if error.is_connect() {
                "cannot connect to Asterisk"
            } else {
                "the request failed"
            };
            Error::transport(operation_name::<O>(), message, delivery, error)
        })
    }

    /// Sends any operation and decodes its answer.
    ///
    /// The resource groups ([`Client::channels`], ...) call this; use it directly for
    /// an operation value built elsewhere.
    ///
    /// # Errors
    /// [`Error::Api`] when Asterisk answers with an error status, and transport,
    /// time-out and decode errors as their variants say.
    pub async fn execute<O>(&self, operation: &O) -> Result<O::Response, Error>
    where
        O: Operation,
        O::Response: DeserializeOwned,
    {
        if let Some(route) = &self.rest {
            if RestRoute::carries::<O>() {
                return route.execute(operation, self.inner.request_timeout).await;
            }
        }
        let path = operation.path();
        let span = tracing::debug_span!(
            "ari_request",
            method = O::METHOD.as_str(),
            path = %path,
            status = tracing::field::Empty,
            duration_ms = tracing::field::Empty
        );
        let started = Instant::now();
        let timeout = self.inner.request_timeout;
        let result = async {
            let exchange = async {
                let response = self.send(operation, &path).await?;
                let status = response.status();
                let body = response.into_body().collect().await.map_err(|error| {
                    Error::transport(
                        operation_name::<O>(),
                        "reading the answer failed",
                        Delivery::Received,
                        error,
                    )
                })?;
                Ok::<_, Error>((status, body.to_bytes()))
            };
            let (status, body) =
                tokio::time::timeout(timeout, exchange)
                    .await
                    .map_err(|_| Error::Timeout {
                        operation: operation_name::<O>(),
                        timeout,
                    })??;
            let span = tracing::Span::current();
            span.record("status", status.as_u16());
            span.record("duration_ms", started.elapsed().as_millis() as u64);
            decode_answer::<O>(status, &body)
        }
        .instrument(span)
        .await;
        match &result {
            Ok(_) => tracing::debug!(method = O::METHOD.as_str(), %path, "ARI request done"),
            Err(error) => {
                tracing::debug!(method = O::METHOD.as_str(), %path, %error, "ARI request failed")
            }
        }
        result
    }

    /// Sends an operation with a binary answer (a recording file) and streams the body
    /// into `writer` as it arrives, never holding the whole file. Returns the byte count.
    ///
    /// The request timeout applies until the answer starts; the download itself may take
    /// as long as it needs.
    ///
    /// # Errors
    /// As [`Client::execute`], plus [`Error::Write`] when `writer` fails.
    pub async fn execute_to_writer<O, W>(&self, operation: &O, writer: &mut W) -> Result<u64, Error>
    where
        O: Operation,
        W: AsyncWrite + Unpin + ?Sized,
    {
        let path = operation.path();
        let span = tracing::debug_span!("ari_download", method = O::METHOD.as_str(), path = %path, status = tracing::field::Empty);
        async {
            let timeout = self.inner.request_timeout;
            let response = tokio::time::timeout(timeout, self.send(operation, &path))
                .await
                .map_err(|_| Error::Timeout {
                    operation: operation_name::<O>(),
                    timeout,
                })??;
            let status = response.status();
            tracing::Span::current().record("status", status.as_u16());
            let mut body = response.into_body();
            if !status.is_success() {
                let bytes = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                return Err(api_error::<O>(status, &bytes));
            }
            let mut written = 0_u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|error| {
                    Error::transport(
                        operation_name::<O>(),
                        format!("the download broke after {written} bytes"),
                        Delivery::Received,
                        error,
                    )
                })?;
                if let Ok(data) = frame.into_data() {
                    writer
                        .write_all(&data)
                        .await
                        .map_err(|source| Error::Write {
                            operation: operation_name::<O>(),
                            source,
                        })?;
                    written += data.len() as u64;
                }
            }
            writer.flush().await.map_err(|source| Error::Write {
                operation: operation_name::<O>(),
                source,
            })?;
            Ok(written)
        }
        .instrument(span)
        .await
    }
}

/// `resource.nickname`, for errors and logs.
pub(crate) fn operation_name<O: Operation>() -> String {
    format!("{}.{}", O::RESOURCE, O::NICKNAME)
}

fn api_error<O: Operation>(status: StatusCode, body: &[u8]) -> Error {
    let text = String::from_utf8_lossy(body).into_owned();
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .or_else(|| (!text.trim().is_empty()).then(|| text.trim().chars().take(500).collect()));
    Error::Api {
        operation: operation_name::<O>(),
        status: status.as_u16(),
        reason: O::error_reason(status.as_u16()),
        message,
        body: text,
    }
}

pub(crate) fn decode_answer<O>(status: StatusCode, body: &[u8]) -> Result<O::Response, Error>
where
    O: Operation,
    O::Response: DeserializeOwned,
{
    if !status.is_success() {
        return Err(api_error::<O>(status, body));
    }
    let text: &[u8] = match O::RESPONSE_KIND {
        // `()` decodes from `null`; Asterisk sends no body (204).
        ResponseKind::Empty => b"null",
        _ => body,
    };
    // The plain decoder is the fast path; only a failure pays for a second pass that
    // names the offending field.
    if let Ok(answer) = serde_json::from_slice(text) {
        return Ok(answer);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(text);
    let error = match serde_path_to_error::deserialize::<_, O::Response>(&mut deserializer) {
        Ok(answer) => return Ok(answer),
        Err(error) => format!("field `{}`: {}", error.path(), error.inner()),
    };
    Err(Error::Decode {
        operation: operation_name::<O>(),
        message: error,
        body: String::from_utf8_lossy(body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let e = Endpoint::parse("http://127.0.0.1:8088").unwrap();
        assert_eq!(e.ari_base(), "http://127.0.0.1:8088/ari");
        assert_eq!(e.ws_base(), "ws://127.0.0.1:8088");
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:8088/ari/")
                .unwrap()
                .ari_base(),
            "http://127.0.0.1:8088/ari"
        );
        let proxied = Endpoint::parse("https://pbx.example:443/asterisk").unwrap();
        assert_eq!(proxied.ari_base(), "https://pbx.example:443/asterisk/ari");
        assert_eq!(proxied.ws_base(), "wss://pbx.example:443/asterisk");
        for bad in [
            "127.0.0.1:8088",
            "ftp://x",
            "http://",
            "http://user:pw@host",
            "http://h/p?q=1",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
