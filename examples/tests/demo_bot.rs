//! The demo bot of the README's first command, run as a user would and driven by a
//! WebSocket client that plays the gateway (Twilio Media Streams).

use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

const WAIT: Duration = Duration::from_secs(10);

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

struct DemoBot {
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
    url: String,
}

impl DemoBot {
    async fn start(extra: &[&str]) -> DemoBot {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_demo_bot"))
            .args(["--listen", &listen])
            .args(extra)
            .env_remove("DEMO_BOT_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                eprintln!("[demo_bot] {line}");
                let _ = tx.send(line);
            }
        });
        let mut bot = DemoBot {
            child,
            lines,
            seen: Vec::new(),
            url: format!("ws://{listen}/bot"),
        };
        bot.line("listening on").await;
        bot
    }

    /// The next line containing `needle` (earlier ones are kept in `seen`).
    async fn line(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no line with {needle:?}; seen {:?}", self.seen))
                .unwrap_or_else(|| panic!("output ended before {needle:?}; seen {:?}", self.seen));
            self.seen.push(line.clone());
            if line.contains(needle) {
                return line;
            }
        }
    }
}

async fn send(client: &mut Client, value: Value) {
    client.send(Message::text(value.to_string())).await.unwrap();
}

async fn next(client: &mut Client) -> Message {
    tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a message from the demo bot")
        .expect("the socket is open")
        .expect("a good frame")
}

/// Opens a stream as the gateway does: `connected`, then `start`.
async fn open(url: &str) -> Client {
    let (mut client, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .unwrap()
        .unwrap();
    send(
        &mut client,
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
    )
    .await;
    send(
        &mut client,
        json!({"event": "start", "sequenceNumber": "1", "streamSid": "MZ1", "start": {
            "accountSid": "AC1", "streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"],
            "customParameters": {"from_number": "+4925551234", "to_number": "15550001"},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}}}),
    )
    .await;
    client
}

fn media(n: usize) -> Value {
    // A recognisable frame: its number in every byte.
    let payload = base64::engine::general_purpose::STANDARD.encode([n as u8; 160]);
    json!({"event": "media", "sequenceNumber": (n + 2).to_string(), "streamSid": "MZ1",
        "media": {"track": "inbound", "chunk": (n + 1).to_string(), "timestamp": (n * 20).to_string(), "payload": payload}})
}

fn payload(message: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(message["media"]["payload"].as_str().unwrap())
        .unwrap()
}

#[tokio::test]
async fn demo_bot_greets_echoes_and_reports_the_call() {
    let mut bot = DemoBot::start(&["--calls", "1", "--greeting-ms", "200"]).await;
    let mut client = open(&bot.url).await;
    let start = bot.line("start").await;
    assert!(start.contains("from=+4925551234 to=15550001"), "{start}");
    assert!(start.contains("callSid=CA1"), "{start}");

    // The greeting: 10 frames of tone, then the mark.
    let mut greeting = Vec::new();
    loop {
        let Message::Text(text) = next(&mut client).await else {
            panic!("text frames only");
        };
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(message["streamSid"], "MZ1");
        if message["event"] == "mark" {
            assert_eq!(message["mark"]["name"], "greeting");
            break;
        }
        assert_eq!(message["event"], "media");
        let frame = payload(&message);
        assert_eq!(frame.len(), 160);
        greeting.push(frame);
    }
    assert_eq!(greeting.len(), 10);
    assert!(
        greeting[0].iter().any(|&b| b != greeting[0][0]),
        "a tone, not silence"
    );

    for n in 0..25 {
        send(&mut client, media(n)).await;
    }
    for n in 0..25 {
        let Message::Text(text) = next(&mut client).await else {
            panic!("text frames only");
        };
        let message: Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(payload(&message), [n as u8; 160], "echo of frame {n}");
    }
    send(
        &mut client,
        json!({"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": "5"}}),
    )
    .await;
    send(
        &mut client,
        json!({"event": "mark", "streamSid": "MZ1", "mark": {"name": "greeting"}}),
    )
    .await;
    send(
        &mut client,
        json!({"event": "stop", "streamSid": "MZ1", "stop": {"accountSid": "AC1", "callSid": "CA1"}}),
    )
    .await;
    client.close(None).await.unwrap();

    assert_eq!(bot.line("dtmf").await, "call 1: dtmf 5");
    bot.line("mark greeting played").await;
    bot.line("stop").await;
    let ended = bot.line("ended after").await;
    assert!(
        ended.contains("frames in=25 out=35, dtmf \"5\", marks 1"),
        "{ended}"
    );
    bot.line("1 call(s) done").await;
    let status = tokio::time::timeout(WAIT, bot.child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn demo_bot_ends_the_conversation_on_hash() {
    let mut bot = DemoBot::start(&["--greeting-ms", "0"]).await;
    let mut client = open(&bot.url).await;
    bot.line("start").await;
    send(
        &mut client,
        json!({"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": "#"}}),
    )
    .await;
    match next(&mut client).await {
        Message::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1000),
        other => panic!("expected a normal close, got {other:?}"),
    }
    // Reading on sends our answer to the close; then the stream ends.
    let end = tokio::time::timeout(WAIT, client.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
    let ended = bot.line("ended after").await;
    assert!(ended.contains("frames in=0 out=0"), "{ended}");
    // It keeps serving further calls.
    let _again = open(&bot.url).await;
    bot.line("call 2: start").await;
}
