//! The gateway binary under test: spawned with the lab's ARI in its environment, its
//! output captured line by line, stopped with SIGTERM or killed on drop.
//!
//! Every output line is also printed to the test's stderr (prefixed `[gateway]`), which
//! the test harness shows when the test fails.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// The gateway binary cargo built for these tests.
pub const BINARY: &str = env!("CARGO_BIN_EXE_voiceai-gateway");

/// A free TCP port on 127.0.0.1 (for `--listen`, or a media listener).
///
/// # Panics
/// When no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free TCP port on 127.0.0.1")
}

/// A running gateway (or any program run the same way, see [`Gateway::spawn_program`]).
pub struct Gateway {
    child: Child,
    pid: u32,
    lines: Arc<Mutex<Vec<String>>>,
    changed: watch::Receiver<u64>,
    listen: Option<String>,
    dir: PathBuf,
}

impl Gateway {
    /// Runs the gateway with `args` against `lab`: `ARI_URL`, `ARI_USERNAME`,
    /// `ARI_PASSWORD` set from it, `--listen 127.0.0.1:<free port>` added unless `args` has
    /// `--listen`, `env` on top, in an empty working directory of its own (no stray `.env`).
    ///
    /// # Panics
    /// When the binary cannot be started.
    pub fn start(lab: &ari_lab::Lab, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let mut args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let mut listen = args
            .iter()
            .position(|a| a == "--listen")
            .and_then(|at| args.get(at + 1).cloned())
            .or_else(|| {
                args.iter()
                    .find_map(|a| a.strip_prefix("--listen=").map(str::to_owned))
            });
        if listen.is_none() {
            let address = format!("127.0.0.1:{}", free_port());
            args.push("--listen".into());
            args.push(address.clone());
            listen = Some(address);
        }
        let mut all_env = vec![
            ("ARI_URL", lab.ari_url.as_str()),
            ("ARI_USERNAME", lab.username.as_str()),
            ("ARI_PASSWORD", lab.password.as_str()),
        ];
        all_env.extend_from_slice(env);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut gateway = Gateway::spawn_program(Path::new(BINARY), &args, &all_env);
        gateway.listen = listen;
        gateway
    }

    /// Runs `program` with `args` and `env` (the gateway's variables of the test's own
    /// environment removed first), capturing its output as [`Gateway::start`] does.
    ///
    /// # Panics
    /// When the program cannot be started.
    pub fn spawn_program(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Gateway {
        let dir = std::env::temp_dir().join(ari_lab::unique_name("gateway"));
        std::fs::create_dir_all(&dir).expect("a working directory for the gateway");
        let mut command = Command::new(program);
        command
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Nothing the gateway reads leaks in from the environment this runs in.
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(voiceai_gateway::config::reads_variable)
            {
                command.env_remove(name);
            }
        }
        command.envs(env.iter().copied());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
        let pid = child.id().expect("the child's pid");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (changed_tx, changed) = watch::channel(0u64);
        let changed_tx = Arc::new(changed_tx);
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(collect(stdout, lines.clone(), changed_tx.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(collect(stderr, lines.clone(), changed_tx));
        }
        Gateway {
            child,
            pid,
            lines,
            changed,
            listen: None,
            dir,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The `--listen` address, e.g. `127.0.0.1:40123`.
    pub fn listen(&self) -> &str {
        self.listen.as_deref().unwrap_or("")
    }

    /// `http://<listen>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.listen())
    }

    /// `ws://<listen><path>`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.listen())
    }

    /// Every line so far (stdout and stderr, in order of arrival).
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every line so far, joined, for failure messages.
    pub fn output(&self) -> String {
        self.lines().join("\n")
    }

    /// Waits for a line containing `needle` (among all lines so far and later ones).
    ///
    /// # Errors
    /// After `within` without one, or when the output ends; the error holds the output.
    pub async fn wait_for_line(&self, needle: &str, within: Duration) -> Result<String, String> {
        self.wait_for_line_from(0, needle, within).await
    }

    /// As [`Gateway::wait_for_line`], looking only at lines from number `from` on (see
    /// [`Gateway::line_count`]).
    ///
    /// # Errors
    /// As [`Gateway::wait_for_line`].
    pub async fn wait_for_line_from(
        &self,
        from: usize,
        needle: &str,
        within: Duration,
    ) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut changed = self.changed.clone();
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .skip(from)
                .find(|line| line.contains(needle))
            {
                return Ok(line.clone());
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(format!(
                        "the gateway's output ended without a line containing {needle:?}:\n{}",
                        self.output()
                    ));
                }
                Err(_) => {
                    return Err(format!(
                        "no line containing {needle:?} within {within:?}:\n{}",
                        self.output()
                    ));
                }
            }
        }
    }

    /// How many lines there are so far.
    pub fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    /// Waits for the line saying the gateway takes calls (contains `ready`).
    ///
    /// # Errors
    /// As [`Gateway::wait_for_line`].
    pub async fn wait_ready(&self, within: Duration) -> Result<String, String> {
        self.wait_for_line("ready", within).await
    }

    /// Sends SIGTERM to this process (by its own pid).
    ///
    /// # Errors
    /// When the signal cannot be sent (the process is gone).
    pub fn sigterm(&self) -> Result<(), String> {
        self.signal(rustix::process::Signal::TERM)
    }

    /// Sends SIGINT to this process (by its own pid).
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn sigint(&self) -> Result<(), String> {
        self.signal(rustix::process::Signal::INT)
    }

    /// Sends SIGHUP to this process (by its own pid): the gateway reopens its call log.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn sighup(&self) -> Result<(), String> {
        self.signal(rustix::process::Signal::HUP)
    }

    fn signal(&self, signal: rustix::process::Signal) -> Result<(), String> {
        let pid = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| format!("bad pid {}", self.pid))?;
        rustix::process::kill_process(pid, signal)
            .map_err(|e| format!("signal {signal:?} to {}: {e}", self.pid))
    }

    /// Kills this process at once (SIGKILL through its own child handle), like a crash:
    /// it cleans nothing up.
    ///
    /// # Errors
    /// When the signal cannot be sent.
    pub fn kill(&mut self) -> Result<(), String> {
        self.child
            .start_kill()
            .map_err(|e| format!("SIGKILL to {}: {e}", self.pid))
    }

    /// Waits for the process to exit.
    ///
    /// # Errors
    /// When it is still running after `within` (it is then killed); the error holds its
    /// output.
    pub async fn wait_exit(&mut self, within: Duration) -> Result<ExitStatus, String> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(Ok(status)) => {
                // Let the readers take the last lines (they end at EOF).
                let mut changed = self.changed.clone();
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while changed.changed().await.is_ok() {}
                })
                .await;
                Ok(status)
            }
            Ok(Err(error)) => Err(format!("waiting for the gateway: {error}")),
            Err(_) => {
                let _ = self.child.start_kill();
                Err(format!(
                    "the gateway still runs after {within:?}; killed. Output:\n{}",
                    self.output()
                ))
            }
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Kills our own child only (by its handle); harmless when it has exited.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn collect(
    stream: impl AsyncRead + Unpin,
    lines: Arc<Mutex<Vec<String>>>,
    changed: Arc<watch::Sender<u64>>,
) {
    let mut reader = BufReader::new(stream).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        eprintln!("[gateway] {line}");
        lines.lock().unwrap().push(line);
        changed.send_modify(|n| *n += 1);
    }
}
