//! The controller's routes and errors, over a real TCP listener on 127.0.0.1, with a fake
//! campaign behind them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use outbound_dialer::report::{ReportFormat, ReportSummary};
use outbound_dialer::serve::{self, Control, ControlError, Started};
use outbound_dialer::status::{CampaignStatus, RunState};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Every wait in these tests ends by then.
const DEADLINE: Duration = Duration::from_secs(10);

/// What the fake's `write_report` does.
enum Report {
    None,
    Written,
    Fails,
}

/// A campaign that follows the state machine the runner promises, in memory.
struct Fake {
    state: Mutex<RunState>,
    cannot_run: Option<String>,
    broken: bool,
    report: Report,
    /// When set, `status` says it has begun, then waits to be released.
    gate: Mutex<Option<(oneshot::Sender<()>, oneshot::Receiver<()>)>>,
}

impl Fake {
    fn new() -> Self {
        Fake {
            state: Mutex::new(RunState::Idle),
            cannot_run: None,
            broken: false,
            report: Report::None,
            gate: Mutex::new(None),
        }
    }

    fn change(
        &self,
        action: &'static str,
        from: &[RunState],
        to: RunState,
    ) -> Result<(), ControlError> {
        let mut state = self.state.lock().unwrap();
        if !from.contains(&state) {
            return Err(ControlError::WrongState {
                action,
                state: *state,
            });
        }
        *state = to;
        Ok(())
    }
}

impl Control for Fake {
    fn start(&self) -> BoxFuture<'_, Result<Started, ControlError>> {
        Box::pin(async move {
            if self.broken {
                return Err(ControlError::internal(
                    "reading .env",
                    std::io::Error::other("permission denied"),
                ));
            }
            let mut state = self.state.lock().unwrap();
            match *state {
                RunState::Idle | RunState::Finished => {
                    if let Some(reason) = &self.cannot_run {
                        return Err(ControlError::CannotRun(reason.clone()));
                    }
                    *state = RunState::Running;
                    Ok(Started::Now)
                }
                other => Ok(Started::AlreadyRunning(other)),
            }
        })
    }

    fn status(&self) -> BoxFuture<'_, CampaignStatus> {
        Box::pin(async move {
            let gate = self.gate.lock().unwrap().take();
            if let Some((entered, release)) = gate {
                let _ = entered.send(());
                let _ = release.await;
            }
            let mut status = CampaignStatus::empty("spring", *self.state.lock().unwrap());
            status.total = 10;
            status.pending = 6;
            status.active_calls = 2;
            status.outcomes.insert("answered", 1);
            status.outcomes.insert("no_answer", 1);
            status.calls_per_minute = 4.0;
            status.eta_seconds = Some(120.0);
            status
        })
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move { self.change("pause", &[RunState::Running], RunState::Paused) })
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move { self.change("resume", &[RunState::Paused], RunState::Running) })
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), ControlError>> {
        Box::pin(async move {
            self.change(
                "stop",
                &[RunState::Running, RunState::Paused],
                RunState::Stopping,
            )
        })
    }

    fn write_report(&self) -> BoxFuture<'_, Result<Option<ReportSummary>, ControlError>> {
        Box::pin(async move {
            match self.report {
                Report::None => Ok(None),
                Report::Written => Ok(Some(ReportSummary {
                    path: PathBuf::from("report.csv"),
                    format: ReportFormat::Csv,
                    rows: 2,
                })),
                Report::Fails => Err(ControlError::internal(
                    "writing --report report.csv",
                    std::io::Error::other("disk full"),
                )),
            }
        })
    }
}

/// A running server and the means to stop it.
struct Server {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start(control: Fake) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(serve::serve(listener, Arc::new(control), async move {
            let _ = signal.await;
        }));
        Server {
            address,
            shutdown: Some(shutdown),
            task,
        }
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        tokio::time::timeout(DEADLINE, &mut self.task)
            .await
            .expect("the server stops")
            .unwrap()
            .unwrap();
    }
}

/// An answer as read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        let length = self.header("content-length").expect("a length");
        assert_eq!(length.parse::<usize>().unwrap(), self.body.len());
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Sends `raw` bytes and reads the answer until the server closes the connection.
async fn exchange(address: SocketAddr, raw: &[u8]) -> Answer {
    let read = async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(raw).await.unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await.unwrap();
        bytes
    };
    let bytes = tokio::time::timeout(DEADLINE, read)
        .await
        .expect("the server answers and closes");
    parse(&bytes)
}

fn parse(bytes: &[u8]) -> Answer {
    let end = bytes
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(bytes)));
    let head = std::str::from_utf8(&bytes[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.trim().to_owned(), value.trim().to_owned())
        })
        .collect();
    let body = bytes[end + 4..].to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

async fn call(address: SocketAddr, method: &str, path: &str) -> Answer {
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    exchange(address, request.as_bytes()).await
}

/// The answer's status and JSON body.
async fn json(address: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let answer = call(address, method, path).await;
    (answer.status, answer.json())
}

fn success(message: &str) -> Value {
    serde_json::json!({ "status": "success", "message": message })
}

fn error(message: &str) -> Value {
    serde_json::json!({ "status": "error", "message": message })
}

#[tokio::test]
async fn start_twice_then_status() {
    let server = Server::start(Fake::new()).await;
    let address = server.address;

    assert_eq!(
        json(address, "GET", "/start").await,
        (200, success("Campaign started"))
    );
    assert_eq!(
        json(address, "GET", "/start").await,
        (
            200,
            serde_json::json!({
                "status": "success",
                "message": "Campaign is already running",
                "state": "running",
            })
        )
    );

    let (status, body) = json(address, "GET", "/status").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "success");
    assert_eq!(body["campaign"], "spring");
    assert_eq!(body["state"], "running");
    assert_eq!(body["total"], 10);
    assert_eq!(body["active_calls"], 2);
    assert_eq!(body["calls_per_minute"], 4.0);
    assert_eq!(body["eta_seconds"], 120.0);
    assert_eq!(body["outcomes"]["answered"], 1);
    assert_eq!(body["outcomes"]["busy"], 0);
    assert_eq!(
        body["outcomes"].as_object().unwrap().len(),
        outbound_dialer::outcome::Outcome::ALL.len()
    );
    assert!(body.get("report").is_none(), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn pause_resume_and_stop_follow_the_state() {
    let server = Server::start(Fake::new()).await;
    let address = server.address;

    assert_eq!(
        json(address, "POST", "/pause").await,
        (409, error("cannot pause the campaign while it is idle"))
    );
    assert_eq!(json(address, "POST", "/resume").await.0, 409);
    assert_eq!(json(address, "POST", "/stop").await.0, 409);

    assert_eq!(json(address, "GET", "/start").await.0, 200);
    assert_eq!(
        json(address, "POST", "/pause").await,
        (200, success("Campaign paused"))
    );
    assert_eq!(
        json(address, "POST", "/pause").await,
        (409, error("cannot pause the campaign while it is paused"))
    );
    let (status, body) = json(address, "GET", "/start").await;
    assert_eq!((status, &body["state"]), (200, &Value::from("paused")));
    assert_eq!(
        json(address, "POST", "/resume").await,
        (200, success("Campaign resumed"))
    );
    let (status, body) = json(address, "POST", "/stop").await;
    assert_eq!((status, &body["status"]), (200, &Value::from("success")));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("Campaign stopping"),
        "{body}"
    );
    assert_eq!(
        json(address, "POST", "/resume").await,
        (
            409,
            error("cannot resume the campaign while it is stopping")
        )
    );
    assert_eq!(json(address, "GET", "/status").await.1["state"], "stopping");
    server.stop().await;
}

#[tokio::test]
async fn a_campaign_that_cannot_run_is_503() {
    let mut fake = Fake::new();
    fake.cannot_run = Some("trunk \"carrier\" is not a PJSIP endpoint".to_owned());
    let server = Server::start(fake).await;
    assert_eq!(
        json(server.address, "GET", "/start").await,
        (503, error("trunk \"carrier\" is not a PJSIP endpoint"))
    );
    assert_eq!(
        json(server.address, "GET", "/status").await.1["state"],
        "idle"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_internal_failure_is_500_with_its_cause() {
    let mut fake = Fake::new();
    fake.broken = true;
    let server = Server::start(fake).await;
    assert_eq!(
        json(server.address, "GET", "/start").await,
        (500, error("reading .env: permission denied"))
    );
    server.stop().await;
}

#[tokio::test]
async fn status_says_which_report_it_wrote_or_why_not() {
    let mut fake = Fake::new();
    fake.report = Report::Written;
    let server = Server::start(fake).await;
    let (status, body) = json(server.address, "GET", "/status").await;
    assert_eq!(status, 200);
    assert_eq!(
        body["report"],
        serde_json::json!({ "path": "report.csv", "format": "csv", "rows": 2 })
    );
    server.stop().await;

    let mut fake = Fake::new();
    fake.report = Report::Fails;
    let server = Server::start(fake).await;
    let (status, body) = json(server.address, "GET", "/status").await;
    assert_eq!((status, &body["status"]), (200, &Value::from("success")));
    assert_eq!(
        body["report_error"],
        "writing --report report.csv: disk full"
    );
    assert_eq!(body["total"], 10);
    server.stop().await;
}

#[tokio::test]
async fn unknown_routes_are_json_404s() {
    let server = Server::start(Fake::new()).await;
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/campaigns"),
        ("POST", "/start/now"),
        ("GET", "/status/"),
        ("DELETE", "/nothing"),
    ] {
        assert_eq!(
            json(server.address, method, path).await,
            (404, error(&format!("no route {method} {path}"))),
            "{method} {path}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn wrong_methods_are_json_405s_with_allow() {
    let server = Server::start(Fake::new()).await;
    for (method, path, allow) in [
        ("POST", "/start", "GET,HEAD"),
        ("DELETE", "/status", "GET,HEAD"),
        ("GET", "/pause", "POST"),
        ("PUT", "/resume", "POST"),
        ("GET", "/stop", "POST"),
    ] {
        let answer = call(server.address, method, path).await;
        assert_eq!(answer.status, 405, "{method} {path}");
        assert_eq!(answer.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(
            answer.json(),
            error(&format!("method {method} is not allowed on {path}"))
        );
    }
    // A wrong method changed nothing.
    assert_eq!(
        json(server.address, "GET", "/status").await.1["state"],
        "idle"
    );
    server.stop().await;
}

#[tokio::test]
async fn malformed_requests_are_400_and_the_server_goes_on() {
    let server = Server::start(Fake::new()).await;
    for raw in [
        &b"this is not http\r\n\r\n"[..],
        b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: many\r\n\r\n",
        b"GET /status HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n",
    ] {
        let answer = exchange(server.address, raw).await;
        assert_eq!(answer.status, 400, "{:?}", String::from_utf8_lossy(raw));
    }
    // A body where none is expected is read and ignored.
    let request = b"POST /pause HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nConnection: close\r\n\r\n{\"a\":1}";
    let answer = exchange(server.address, request).await;
    assert_eq!(answer.status, 409);
    assert_eq!(answer.json()["status"], "error");
    assert_eq!(json(server.address, "GET", "/status").await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn head_status_has_no_body() {
    let server = Server::start(Fake::new()).await;
    let answer = call(server.address, "HEAD", "/status").await;
    assert_eq!(answer.status, 200);
    assert!(answer.body.is_empty());
    // The length is the one a GET would have.
    assert_ne!(answer.header("content-length"), Some("0"));
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_progress_finish() {
    let fake = Fake::new();
    let (entered, entered_signal) = oneshot::channel();
    let (release, release_signal) = oneshot::channel();
    *fake.gate.lock().unwrap() = Some((entered, release_signal));
    let mut server = Server::start(fake).await;
    let address = server.address;

    let in_progress = tokio::spawn(call(address, "GET", "/status"));
    tokio::time::timeout(DEADLINE, entered_signal)
        .await
        .expect("the request reaches the campaign")
        .unwrap();
    let _ = server.shutdown.take().unwrap().send(());
    // The server waits for the request instead of ending.
    tokio::task::yield_now().await;
    assert!(!server.task.is_finished());
    release.send(()).unwrap();

    let answer = tokio::time::timeout(DEADLINE, in_progress)
        .await
        .expect("the request finishes")
        .unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "success");
    server.stop().await;
    assert!(
        TcpStream::connect(address).await.is_err(),
        "the listener is closed"
    );
}
