//! The call log (`--call-log`): one JSON object a line for every ended call, appended to a
//! file, so operators keep a history of calls without a database.
//!
//! Calls hand their record to [`CallLog::log`], which never waits: the line goes through a
//! bounded queue to one writer thread, the only one that touches the file, so lines never
//! interleave. Each line goes to the kernel whole as soon as it is written: the file is
//! unbuffered and opened for appending, so nothing waits in a buffer when the process
//! dies, and logrotate's `copytruncate` works as well as a move and SIGHUP
//! ([`CallLog::reopen`]). A write that fails (a full disk, a file on a lost mount)
//! is logged and counted, never fatal: the gateway keeps taking calls, and the next line
//! starts on a line of its own even when the failed one was written in part.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::calls::CallSnapshot;
use crate::metrics::Metrics;

/// The flag that names the file.
pub const FLAG: &str = "--call-log";

/// Its variable.
pub const VARIABLE: &str = "VOICEAI_CALL_LOG";

/// Lines waiting for the writer at most; beyond, lines are dropped (and counted).
const QUEUE: usize = 4096;

/// Transcript lines kept per call for its log line at most (a chatty bot must not grow
/// one call's memory without bound).
pub const TRANSCRIPT_LINES_KEPT: usize = 1000;

/// One ended call, as its line in the call log: the call as the REST API shows it, and
/// what only the log keeps.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    /// Ids, numbers, times, end reason, frames, recording.
    #[serde(flatten)]
    pub call: CallSnapshot,
    /// The backend the call talked to (scheme, host, port and path only: user info and
    /// query, which may carry credentials, are left out).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend_url: Option<String>,
    /// Frames of the caller's audio forwarded to the backend.
    pub frames_to_backend: u64,
    /// Frames of backend audio dropped (queue full, or cleared by barge-in).
    pub frames_dropped: u64,
    /// The transcript messages the backend sent, as it sent them (at most
    /// [`TRANSCRIPT_LINES_KEPT`]).
    pub transcripts: Vec<serde_json::Value>,
}

/// The call log cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("{FLAG} ({VARIABLE}): cannot open {} for appending: {source}", path.display())]
pub struct CallLogError {
    /// The file.
    pub path: PathBuf,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// What the writer has done since the gateway started.
#[derive(Debug, Default)]
pub struct CallLogStats {
    written: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
}

impl CallLogStats {
    /// Lines written.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Lines whose write failed (disk full, I/O error).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Lines dropped because the writer was too far behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

enum Message {
    Call(Box<CallRecord>),
    Sync(oneshot::Sender<()>),
    Reopen,
}

/// The call log's sending side; cheap to clone.
#[derive(Debug, Clone)]
pub struct CallLog {
    sender: mpsc::Sender<Message>,
    stats: Arc<CallLogStats>,
    path: Arc<Path>,
    metrics: Option<Arc<Metrics>>,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Call(_) => "Call",
            Message::Sync(_) => "Sync",
            Message::Reopen => "Reopen",
        })
    }
}

impl CallLog {
    /// Opens `path` for appending (creating it) and starts the writer thread, which runs
    /// until every clone of the returned log is dropped.
    ///
    /// # Errors
    /// When the file cannot be opened for appending (the message names the flag and
    /// its variable), or the writer thread cannot start.
    pub fn open(path: &Path) -> Result<CallLog, CallLogError> {
        Self::open_counted(path, None)
    }

    /// As [`CallLog::open`], also counting each line's fate in `metrics`
    /// (`voiceai_call_log_lines_total`).
    ///
    /// # Errors
    /// As [`CallLog::open`].
    pub fn open_counted(
        path: &Path,
        metrics: Option<Arc<Metrics>>,
    ) -> Result<CallLog, CallLogError> {
        let error = |source| CallLogError {
            path: path.to_owned(),
            source,
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(error)?;
        let (sender, receiver) = mpsc::channel(QUEUE);
        let stats = Arc::new(CallLogStats::default());
        let path: Arc<Path> = Arc::from(path);
        let writer = Writer {
            file,
            path: path.clone(),
            stats: stats.clone(),
            metrics: metrics.clone(),
            failing: false,
            torn: false,
        };
        std::thread::Builder::new()
            .name("call-log".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(error)?;
        Ok(CallLog {
            sender,
            stats,
            path,
            metrics,
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the writer has done.
    pub fn stats(&self) -> &CallLogStats {
        &self.stats
    }

    /// Queues `record`'s line. Never waits: when the writer is too far behind, the line
    /// is dropped, counted and logged.
    pub fn log(&self, record: CallRecord) {
        let call_id = record.call.call_id.clone();
        if self
            .sender
            .try_send(Message::Call(Box::new(record)))
            .is_err()
        {
            let dropped = self.stats.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(metrics) = &self.metrics {
                metrics.call_log_line("dropped");
            }
            tracing::warn!(%call_id, dropped, file = %self.path.display(), "call log line dropped: the writer is behind or gone");
        }
    }

    /// Opens the file again by its path (after logrotate moved it away: the gateway does
    /// this on SIGHUP); lines queued before go to the old file. When it cannot be opened,
    /// the old file is kept (and a warning logged).
    pub async fn reopen(&self) {
        let _ = self.sender.send(Message::Reopen).await;
    }

    /// Waits until every line queued before this call has been written (or has failed).
    pub async fn sync(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Message::Sync(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// The writer thread's state: the only owner of the file.
struct Writer {
    file: File,
    path: Arc<Path>,
    stats: Arc<CallLogStats>,
    metrics: Option<Arc<Metrics>>,
    /// The last write failed (warn once per run of failures, not per line).
    failing: bool,
    /// A failed write may have left part of a line: start the next one on a new line.
    torn: bool,
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        while let Some(message) = receiver.blocking_recv() {
            match message {
                Message::Call(record) => self.write(&record),
                Message::Sync(done) => {
                    let _ = done.send(());
                }
                Message::Reopen => self.reopen(),
            }
        }
    }

    fn reopen(&mut self) {
        match OpenOptions::new()
            .append(true)
            .create(true)
            .open(&*self.path)
        {
            Ok(file) => {
                self.file = file;
                self.torn = false;
                tracing::info!(file = %self.path.display(), "call log reopened");
            }
            Err(error) => {
                tracing::warn!(%error, file = %self.path.display(), "cannot reopen the call log: still writing to the old file");
            }
        }
    }

    fn count(&self, result: &'static str) {
        if let Some(metrics) = &self.metrics {
            metrics.call_log_line(result);
        }
    }

    fn write(&mut self, record: &CallRecord) {
        let mut line = Vec::with_capacity(512);
        if self.torn {
            line.push(b'\n');
        }
        if let Err(error) = serde_json::to_writer(&mut line, record) {
            self.count("failed");
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%error, call_id = %record.call.call_id, "call log line not serialisable");
            return;
        }
        line.push(b'\n');
        // The whole line at once: the file is unbuffered and opened for appending.
        match self.file.write_all(&line) {
            Ok(()) => {
                self.torn = false;
                self.count("written");
                self.stats.written.fetch_add(1, Ordering::Relaxed);
                if std::mem::replace(&mut self.failing, false) {
                    tracing::info!(file = %self.path.display(), failed = self.stats.failed(), "call log writable again");
                }
            }
            Err(error) => {
                self.torn = true;
                self.count("failed");
                let failed = self.stats.failed.fetch_add(1, Ordering::Relaxed) + 1;
                if !std::mem::replace(&mut self.failing, true) {
                    tracing::warn!(%error, file = %self.path.display(), failed, call_id = %record.call.call_id, "cannot write the call log: lines are lost until it is writable again");
                }
            }
        }
    }
}

/// `url` without user info and query (they may carry credentials), for the call log.
pub fn url_for_log(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or_default();
    if scheme.is_empty() {
        format!("{host}{path}")
    } else {
        format!("{scheme}://{host}{path}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    use crate::calls::registry::tests::new_call;
    use crate::calls::{CallStats, Calls};
    use crate::events::EventBus;

    /// An ended call as the registry makes it (so fields added there appear here too).
    fn snapshot(id: &str) -> CallSnapshot {
        let calls = Calls::new(EventBus::new(1), 1);
        let (entry, _commands) = calls.register(new_call(id));
        for _ in 0..150 {
            CallStats::bump(&entry.stats().frames_in);
        }
        entry.set_recording(Ok(format!("{id}.wav")));
        entry.finish("caller_hangup");
        calls.get(id).unwrap()
    }

    fn record(id: &str) -> CallRecord {
        CallRecord {
            call: snapshot(id),
            backend_url: Some("ws://127.0.0.1:8765/bot".to_owned()),
            frames_to_backend: 150,
            frames_dropped: 0,
            transcripts: vec![serde_json::json!({"event": "transcript", "text": "hello"})],
        }
    }

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
            .collect()
    }

    #[tokio::test]
    async fn each_call_is_one_json_line_appended_and_a_reopened_log_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let log = CallLog::open(&path).unwrap();
        log.log(record("CA1"));
        log.sync().await;
        let first = lines(&path);
        assert_eq!(first.len(), 1);
        let line = &first[0];
        assert_eq!(line["callId"], "CA1");
        assert_eq!(line["channelId"], "chan-CA1");
        assert_eq!(line["status"], "ended");
        assert!(line["startTime"].is_string() && line["endTime"].is_string());
        assert_eq!(line["callerNumber"], "+15550001");
        assert_eq!(line["endReason"], "caller_hangup");
        assert_eq!(line["framesIn"], 150);
        assert_eq!(line["framesToBackend"], 150);
        assert_eq!(line["recording"], "CA1.wav");
        assert_eq!(line["backendUrl"], "ws://127.0.0.1:8765/bot");
        assert_eq!(line["transcripts"][0]["text"], "hello");
        assert!(line.get("recordingError").is_none());
        drop(log);

        let log = CallLog::open(&path).unwrap();
        log.log(record("CA2"));
        log.sync().await;
        let ids: Vec<_> = lines(&path).iter().map(|l| l["callId"].clone()).collect();
        assert_eq!(ids, ["CA1", "CA2"]);
        assert_eq!(log.stats().written(), 1);
    }

    #[tokio::test]
    async fn the_registry_logs_each_ended_call_with_its_backend_and_transcripts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let calls = Calls::new(EventBus::new(8), 8);
        let (quiet, _commands) = calls.register(new_call("CA0"));
        quiet.publish_transcript(&serde_json::json!({"text": "before the log"}));
        let log = CallLog::open(&path).unwrap();
        calls.set_call_log(log.clone());
        let (entry, _commands) = calls.register(new_call("CA1"));
        entry.set_backend_url("wss://bot:secret@127.0.0.1:8765/bot?token=x");
        entry.publish_transcript(&serde_json::json!({"event": "transcript", "text": "hi"}));
        entry.set_recording(Err("download failed".to_owned()));
        CallStats::bump(&entry.stats().frames_to_backend);
        entry.finish("backend_closed");
        drop(quiet);
        log.sync().await;
        let written = lines(&path);
        assert_eq!(written.len(), 2, "{written:?}");
        let line = &written[0];
        assert_eq!(line["callId"], "CA1");
        assert_eq!(line["endReason"], "backend_closed");
        assert_eq!(line["backendUrl"], "wss://127.0.0.1:8765/bot");
        assert_eq!(
            line["transcripts"],
            serde_json::json!([{"event": "transcript", "text": "hi"}])
        );
        assert_eq!(line["recordingError"], "download failed");
        assert_eq!(line["framesToBackend"], 1);
        assert!(line.get("recording").is_none());
        // A call that ended as a dropped entry is logged too.
        assert_eq!(written[1]["endReason"], "gateway_error");
    }

    #[tokio::test]
    async fn calls_ending_together_never_interleave() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let log = CallLog::open(&path).unwrap();
        let mut tasks = Vec::new();
        for task in 0..8 {
            let log = log.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0..50 {
                    let mut call = record(&format!("CA{task}-{n}"));
                    call.transcripts = vec![serde_json::json!({"text": "x".repeat(5000)}); 4];
                    log.log(call);
                    tokio::task::yield_now().await;
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        log.sync().await;
        let written = lines(&path);
        assert_eq!(written.len(), 400);
        assert_eq!(log.stats().written(), 400);
        assert_eq!(log.stats().dropped(), 0);
    }

    #[test]
    fn a_path_that_cannot_be_opened_names_the_flag_and_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("calls.jsonl");
        let error = CallLog::open(&path).unwrap_err().to_string();
        assert!(
            error.contains("--call-log")
                && error.contains("VOICEAI_CALL_LOG")
                && error.contains("no-such-dir"),
            "{error}"
        );
        let error = CallLog::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("--call-log (VOICEAI_CALL_LOG)"), "{error}");
    }

    #[tokio::test]
    async fn a_full_disk_is_counted_and_survived() {
        // Linux's /dev/full fails every write with ENOSPC, as a full disk does.
        let metrics = Arc::new(Metrics::new());
        let log = CallLog::open_counted(Path::new("/dev/full"), Some(metrics.clone())).unwrap();
        for n in 0..3 {
            log.log(record(&format!("CA{n}")));
        }
        log.sync().await;
        assert_eq!(log.stats().failed(), 3);
        assert_eq!(log.stats().written(), 0);
        // The writer is still there.
        log.log(record("CA9"));
        log.sync().await;
        assert_eq!(log.stats().failed(), 4);
        let text = metrics.render();
        assert!(
            text.contains("voiceai_call_log_lines_total{result=\"failed\"} 4"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn reopening_after_a_rotation_writes_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let rotated = dir.path().join("calls.jsonl.1");
        let log = CallLog::open(&path).unwrap();
        log.log(record("CA1"));
        log.sync().await;
        std::fs::rename(&path, &rotated).unwrap();
        log.log(record("CA2"));
        log.reopen().await;
        log.log(record("CA3"));
        log.sync().await;
        let ids = |path: &Path| -> Vec<Value> {
            lines(path).iter().map(|l| l["callId"].clone()).collect()
        };
        assert_eq!(ids(&rotated), ["CA1", "CA2"]);
        assert_eq!(ids(&path), ["CA3"]);
    }

    #[test]
    fn a_torn_line_does_not_spoil_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calls.jsonl");
        let mut writer = Writer {
            file: OpenOptions::new()
                .append(true)
                .create(true)
                .open(&path)
                .unwrap(),
            path: Arc::from(path.as_path()),
            stats: Arc::default(),
            metrics: None,
            failing: true,
            torn: true,
        };
        std::fs::write(&path, b"{\"callId\":\"CA0\",\"par").unwrap();
        writer.write(&record("CA1"));
        let text = std::fs::read_to_string(&path).unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["callId"], "CA1");
        assert!(!writer.failing && !writer.torn);
    }

    #[test]
    fn urls_lose_credentials_for_the_log() {
        assert_eq!(
            url_for_log("wss://user:secret@127.0.0.1:8765/bot?token=abc#x"),
            "wss://127.0.0.1:8765/bot"
        );
        assert_eq!(url_for_log("ws://127.0.0.1:8765"), "ws://127.0.0.1:8765");
        assert_eq!(url_for_log("ws://[::1]:9/a/b"), "ws://[::1]:9/a/b");
    }
}
