//! In-process API server for the `api_*` tests: the real router and registry on
//! 127.0.0.1:0, a fake gateway, and a small hyper client. Every wait has a deadline.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::{HeaderMap, Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use voiceai_gateway::api::{
    self, ApiConfig, AriStatus, ControlError, GatewayControl, OriginateRequest, Originated,
};
use voiceai_gateway::calls::{CallCommand, CallEntry, CallStatus, Calls, Direction, NewCall};
use voiceai_gateway::events::EventBus;

/// How long any one step of a test may take.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The token the tests configure.
pub const TOKEN: &str = "s3cret-token";
/// The Twilio account SID the tests configure.
pub const ACCOUNT_SID: &str = "ACtest0123456789";
/// The Twilio auth token the tests configure.
pub const TWILIO_TOKEN: &str = "twilio-auth-token";

/// Runs `future` or fails the test after [`DEADLINE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(DEADLINE, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what}: no result within {DEADLINE:?}"),
    }
}

/// A gateway that records what it is asked.
pub struct FakeGateway {
    pub connected: AtomicBool,
    pub accepting: AtomicBool,
    pub originated: Mutex<Vec<OriginateRequest>>,
    pub refuse_with: Mutex<Option<ControlError>>,
}

impl FakeGateway {
    /// Connected, taking calls, originating everything.
    pub fn new() -> Self {
        Self {
            connected: AtomicBool::new(true),
            accepting: AtomicBool::new(true),
            originated: Mutex::new(Vec::new()),
            refuse_with: Mutex::new(None),
        }
    }

    /// What originate was asked so far.
    pub fn originated(&self) -> Vec<OriginateRequest> {
        self.originated.lock().unwrap().clone()
    }
}

impl GatewayControl for FakeGateway {
    fn ari(&self) -> AriStatus {
        AriStatus {
            connected: self.connected.load(Ordering::SeqCst),
            host: "127.0.0.1".to_owned(),
            ari_port: 8088,
            app_name: "voiceai-test".to_owned(),
            asterisk_version: Some("22.6.0".to_owned()),
        }
    }

    fn accepting_calls(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }

    fn originate(
        &self,
        request: OriginateRequest,
    ) -> BoxFuture<'_, Result<Originated, ControlError>> {
        Box::pin(async move {
            if let Some(error) = self.refuse_with.lock().unwrap().clone() {
                return Err(error);
            }
            let mut originated = self.originated.lock().unwrap();
            originated.push(request);
            let n = originated.len();
            Ok(Originated {
                call_id: format!("CAout{n}"),
                channel_id: format!("out-chan-{n}"),
            })
        })
    }
}

/// The configuration the tests use: a bearer token, Twilio credentials, one CORS origin.
pub fn config() -> ApiConfig {
    ApiConfig {
        auth_token: Some(TOKEN.to_owned()),
        twilio_account_sid: ACCOUNT_SID.to_owned(),
        twilio_auth_token: Some(TWILIO_TOKEN.to_owned()),
        cors_origins: vec!["http://monitor.example".to_owned()],
        ..ApiConfig::default()
    }
}

/// A running API.
pub struct Server {
    pub address: SocketAddr,
    pub calls: Calls,
    pub gateway: Arc<FakeGateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl Server {
    /// Starts the API with `config` over a registry whose bus keeps `bus_capacity` events.
    pub async fn start_with(config: ApiConfig, bus_capacity: usize) -> Self {
        let calls = Calls::new(EventBus::new(bus_capacity), 16);
        let gateway = Arc::new(FakeGateway::new());
        let router = api::router(calls.clone(), gateway.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, stop) = oneshot::channel::<()>();
        let task = tokio::spawn(api::serve(listener, router, async move {
            let _ = stop.await;
        }));
        Self {
            address,
            calls,
            gateway,
            shutdown: Some(shutdown),
            task: Some(task),
        }
    }

    /// Starts the API with [`config`].
    pub async fn start() -> Self {
        Self::start_with(config(), voiceai_gateway::events::BUS_CAPACITY).await
    }

    /// Registers an active inbound call `call_id`.
    pub fn call(&self, call_id: &str) -> (CallEntry, mpsc::Receiver<CallCommand>) {
        let (entry, commands) = self.calls.register(NewCall {
            call_id: call_id.to_owned(),
            channel_id: format!("chan-{call_id}"),
            server: "lab".to_owned(),
            caller_number: "+815012345678".to_owned(),
            called_number: "0312345678".to_owned(),
            direction: Direction::Inbound,
            media: "websocket",
            status: CallStatus::Answered,
        });
        entry.set_status(CallStatus::Active);
        (entry, commands)
    }

    /// Asks the server to stop and waits for `serve` to return.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            within("serve returns after shutdown", task)
                .await
                .unwrap()
                .unwrap();
        }
    }

    /// `http://address` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `ws://address` + `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.address)
    }

    /// Sends one request; `headers` are added as given.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = Request::builder().method(method).uri(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let response = within(path, client.request(request)).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = within(path, response.into_body().collect())
            .await
            .unwrap()
            .to_bytes();
        let text = String::from_utf8_lossy(&body).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Reply {
            status,
            headers,
            text,
            json,
        }
    }

    /// GET with the bearer token.
    pub async fn get(&self, path: &str) -> Reply {
        let bearer = format!("Bearer {TOKEN}");
        self.send(
            Method::GET,
            path,
            &[("authorization", &bearer)],
            Bytes::new(),
        )
        .await
    }

    /// POST of a JSON body with the bearer token.
    pub async fn post_json(&self, path: &str, body: &str) -> Reply {
        let bearer = format!("Bearer {TOKEN}");
        self.send(
            Method::POST,
            path,
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body.to_owned(),
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: serde_json::Value,
}

impl Reply {
    /// Asserts an error answer `{"status":"error","message":...}` with `status` whose
    /// message contains `needle`.
    #[track_caller]
    pub fn assert_error(&self, status: u16, needle: &str) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(self.json["status"], "error", "{}", self.text);
        let message = self.json["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(needle),
            "message {message:?} lacks {needle:?}"
        );
    }
}

/// Asserts no command reached the call task.
#[track_caller]
pub fn assert_no_command(commands: &mut mpsc::Receiver<CallCommand>) {
    assert_eq!(
        commands.try_recv(),
        Err(mpsc::error::TryRecvError::Empty),
        "a command reached the call"
    );
}
