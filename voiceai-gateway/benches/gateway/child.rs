//! The gateway binary as a child process: its output watched line by line (for `ready`
//! and for warnings), killed by its pid at the end (and on drop).

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

/// The binary cargo built for this bench (with the bench profile: release + debug info).
pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_voiceai-gateway");

#[derive(Debug, Default)]
struct Output {
    /// Every line goes here too, when set (`BENCH_GATEWAY_LOG`).
    file: Option<std::fs::File>,
    tail: Vec<String>,
    warnings: Vec<String>,
    warning_count: u64,
}

/// A running gateway.
pub(crate) struct Gateway {
    child: std::process::Child,
    pid: u32,
    output: Arc<Mutex<Output>>,
    ready: watch::Receiver<bool>,
    dir: PathBuf,
}

/// The flags every bench gateway runs with: its API, app and echo backend, room for
/// `calls`, no hold music or fallback (a bench call that loses its backend is lost).
pub(crate) fn bench_args(
    listen: &str,
    app: &str,
    backend: std::net::SocketAddr,
    calls: usize,
    log_level: &str,
) -> Vec<String> {
    [
        "--listen",
        listen,
        "--app",
        app,
        "--backend-url",
        &format!("ws://{backend}/bench"),
        "--max-calls",
        &(calls + 10).to_string(),
        "--hold-music",
        "none",
        "--fallback-endpoint",
        "none",
        "--log-level",
        log_level,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn watch_lines(
    pipe: impl Read + Send + 'static,
    output: Arc<Mutex<Output>>,
    ready: Arc<watch::Sender<bool>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if line.contains("ready") {
                ready.send_replace(true);
            }
            let Ok(mut output) = output.lock() else {
                return;
            };
            if line.contains("WARN") || line.contains("ERROR") {
                output.warning_count += 1;
                if output.warnings.len() < 10 {
                    output.warnings.push(line.clone());
                }
            }
            if let Some(file) = output.file.as_mut() {
                let _ = writeln!(file, "{line}");
            }
            output.tail.push(line);
            if output.tail.len() > 40 {
                output.tail.remove(0);
            }
        }
    });
}

impl Gateway {
    /// Starts the gateway with `args` and `env`, in an empty working directory (no
    /// stray `.env`).
    pub(crate) fn spawn(args: &[String], env: &[(&str, String)]) -> Result<Gateway, String> {
        let dir = std::env::temp_dir().join(format!("gateway-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut command = Command::new(BINARY);
        command
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Nothing the gateway reads leaks in from the environment this runs in.
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(voiceai_gateway::config::reads_variable)
            {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot run {BINARY}: {e}"))?;
        let pid = child.id();
        let file = match std::env::var_os("BENCH_GATEWAY_LOG") {
            Some(path) => Some(std::fs::File::create(&path).map_err(|e| {
                format!(
                    "BENCH_GATEWAY_LOG {}: {e}",
                    std::path::Path::new(&path).display()
                )
            })?),
            None => None,
        };
        let output = Arc::new(Mutex::new(Output {
            file,
            ..Output::default()
        }));
        let (ready_tx, ready) = watch::channel(false);
        let ready_tx = Arc::new(ready_tx);
        if let Some(stdout) = child.stdout.take() {
            watch_lines(stdout, output.clone(), ready_tx.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            watch_lines(stderr, output.clone(), ready_tx);
        }
        Ok(Gateway {
            child,
            pid,
            output,
            ready,
            dir,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the `ready` line.
    pub(crate) async fn wait_ready(&mut self, within: Duration) -> Result<(), String> {
        let waited = tokio::time::timeout(within, self.ready.wait_for(|ready| *ready))
            .await
            .is_ok_and(|ready| ready.is_ok());
        match waited {
            true => Ok(()),
            false => Err(format!(
                "the gateway logged no `ready` within {within:?}; its last lines:\n{}",
                self.tail()
            )),
        }
    }

    /// Whether it is still running.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Its last output lines.
    pub(crate) fn tail(&self) -> String {
        self.output
            .lock()
            .map(|o| o.tail.join("\n"))
            .unwrap_or_default()
    }

    /// Warning and error lines: how many, and the first few.
    pub(crate) fn warnings(&self) -> (u64, Vec<String>) {
        self.output
            .lock()
            .map(|o| (o.warning_count, o.warnings.clone()))
            .unwrap_or_default()
    }

    /// Kills it (SIGKILL to its pid) and reaps it.
    pub(crate) fn kill(&mut self) {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
