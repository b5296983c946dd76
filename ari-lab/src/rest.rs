//! A minimal ARI REST caller on plain hyper, for tests that prove the lab itself.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::client::legacy::{Client, connect::HttpConnector};
use hyper_util::rt::TokioExecutor;

use crate::Lab;

/// What ARI answered.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body as text.
    pub text: String,
}

impl Response {
    /// The body as JSON.
    ///
    /// # Errors
    /// When the body is not JSON.
    pub fn json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::from_str(&self.text)
    }
}

/// Error of a lab REST call.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Sends ARI requests with the lab's credentials.
#[derive(Clone)]
pub struct Rest {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    auth: String,
}

impl Rest {
    /// A caller for `lab`.
    pub fn new(lab: &Lab) -> Rest {
        Rest {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("{}/ari", lab.ari_url),
            auth: lab.basic_auth(),
        }
    }

    /// `GET /ari<path>`.
    ///
    /// # Errors
    /// When the request cannot be sent or the answer not read.
    pub async fn get(&self, path: &str) -> Result<Response, Error> {
        self.send("GET", path).await
    }

    /// `POST /ari<path>` (parameters in the query string).
    ///
    /// # Errors
    /// When the request cannot be sent or the answer not read.
    pub async fn post(&self, path: &str) -> Result<Response, Error> {
        self.send("POST", path).await
    }

    /// `PUT /ari<path>`.
    ///
    /// # Errors
    /// When the request cannot be sent or the answer not read.
    pub async fn put(&self, path: &str) -> Result<Response, Error> {
        self.send("PUT", path).await
    }

    /// `DELETE /ari<path>`.
    ///
    /// # Errors
    /// When the request cannot be sent or the answer not read.
    pub async fn delete(&self, path: &str) -> Result<Response, Error> {
        self.send("DELETE", path).await
    }

    /// `GET /ari<path>`, the body as bytes (e.g. `/recordings/stored/{name}/file`).
    ///
    /// # Errors
    /// When the request cannot be sent or the answer not read.
    pub async fn get_bytes(&self, path: &str) -> Result<(u16, Bytes), Error> {
        self.send_raw("GET", path).await
    }

    async fn send(&self, method: &str, path: &str) -> Result<Response, Error> {
        let (status, body) = self.send_raw(method, path).await?;
        Ok(Response {
            status,
            text: String::from_utf8_lossy(&body).into_owned(),
        })
    }

    async fn send_raw(&self, method: &str, path: &str) -> Result<(u16, Bytes), Error> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(hyper::header::AUTHORIZATION, &self.auth)
            .body(Full::new(Bytes::new()))?;
        let response = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            self.client.request(request),
        )
        .await
        .map_err(|_| format!("no answer to {method} {path} within 10 s"))??;
        let status = response.status().as_u16();
        let body = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            response.into_body().collect(),
        )
        .await
        .map_err(|_| format!("the body of {method} {path} not read within 30 s"))??
        .to_bytes();
        Ok((status, body))
    }
}
