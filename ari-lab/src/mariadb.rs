//! A real MariaDB for tests: Debian's `mariadbd` (package `mariadb-server`, installed by
//! `asterisk_conf/lab install`) on 127.0.0.1 with a data directory of its own, started on
//! first use and shared by every test process, like the lab's Asterisk.
//!
//! One server per user and directory: `$ARI_LAB_MARIADB_DIR`, default
//! `<temp dir>/ari-lab-mariadb-<uid>`, holds `data/`, the socket, the pid file and a
//! `state` file (pid and port). A file lock (`lock`) makes the first test process start it
//! and the others wait, then reuse it; cargo runs test binaries one after another and the
//! tests of one binary in parallel, so it starts once per `cargo test`, or once per
//! machine when it is left running. Each test gets its own database
//! ([`MariaDb::database`]), dropped when the test's [`TestDatabase`] is.
//!
//! The server keeps running after the tests; `asterisk_conf/lab stop` (or [`stop`]) ends it
//! by its pid.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The server binary (Debian package `mariadb-server`).
pub const MARIADBD: &str = "/usr/sbin/mariadbd";
/// Creates a data directory (same package).
pub const INSTALL_DB: &str = "/usr/bin/mariadb-install-db";
/// The command-line client (package `mariadb-client`), for creating test databases.
pub const CLIENT: &str = "/usr/bin/mariadb";

/// The user tests connect as (over TCP, with a password).
pub const USER: &str = "lab";
/// Its password.
pub const PASSWORD: &str = "lab-password";

/// How long a start may take (a fresh data directory takes ~2 s, the server ~1 s).
const START_DEADLINE: Duration = Duration::from_secs(60);
/// How long a waiting test process waits for another one's start.
const LOCK_DEADLINE: Duration = Duration::from_secs(120);

/// A running MariaDB the tests may use.
#[derive(Debug, Clone)]
pub struct MariaDb {
    /// Always 127.0.0.1.
    pub host: String,
    /// Its TCP port.
    pub port: u16,
    /// The user with every privilege.
    pub user: String,
    /// Its password.
    pub password: String,
    /// The server's pid.
    pub pid: u32,
    dir: PathBuf,
}

/// Why MariaDB could not be had; the message says what to do.
#[derive(Debug)]
pub struct MariaDbError(String);

impl std::fmt::Display for MariaDbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MariaDbError {}

fn failed(what: impl Into<String>) -> MariaDbError {
    MariaDbError(what.into())
}

/// The directory the shared server lives in.
pub fn server_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ARI_LAB_MARIADB_DIR") {
        return PathBuf::from(dir);
    }
    let uid = {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
    };
    std::env::temp_dir().join(format!("ari-lab-mariadb-{uid}"))
}

static SERVER: OnceLock<MariaDb> = OnceLock::new();

impl MariaDb {
    /// The shared server, started if no test process has started it yet. Blocks (up to a
    /// minute) the first time in a process.
    ///
    /// # Panics
    /// When it cannot be started: the message names the missing package or the server's
    /// last log lines. A missing database fails the test, never skips it.
    pub fn get() -> &'static MariaDb {
        SERVER.get_or_init(|| match MariaDb::start_or_reuse(&server_dir()) {
            Ok(server) => server,
            Err(error) => panic!("MariaDB for the tests: {error}"),
        })
    }

    /// Starts the server in `dir` unless one runs there already.
    ///
    /// # Errors
    /// A missing package, a server that does not start in time, a lock not had in time.
    pub fn start_or_reuse(dir: &Path) -> Result<MariaDb, MariaDbError> {
        for binary in [MARIADBD, INSTALL_DB] {
            if !Path::new(binary).exists() {
                return Err(failed(format!(
                    "{binary} is missing: install Debian's mariadb-server package \
                     (`sudo asterisk_conf/lab install` does, or `apt-get install mariadb-server`)"
                )));
            }
        }
        if !Path::new(CLIENT).exists() {
            return Err(failed(format!(
                "{CLIENT} is missing: install Debian's mariadb-client package"
            )));
        }
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(format!("cannot create {}: {e}", dir.display())))?;
        let _lock = lock(dir)?;
        if let Some(server) = running(dir) {
            return Ok(server);
        }
        start(dir)
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:PORT/DATABASE`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "mysql://{}:{}@{}:{}/{database}",
            self.user, self.password, self.host, self.port
        )
    }

    /// A fresh database named after `prefix` (unique across processes), dropped when the
    /// returned value is.
    ///
    /// # Panics
    /// When the server refuses to create it.
    pub fn database(&'static self, prefix: &str) -> TestDatabase {
        let name: String = crate::unique_name(prefix)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        if let Err(error) = self.sql(&format!("CREATE DATABASE `{name}`")) {
            panic!("MariaDB: cannot create database {name}: {error}");
        }
        TestDatabase {
            url: self.url(&name),
            name,
            server: self,
        }
    }

    /// Runs SQL statements through the command-line client; returns its output (tab
    /// separated, no headers).
    ///
    /// # Errors
    /// The client's message when a statement fails.
    pub fn sql(&self, statements: &str) -> Result<String, MariaDbError> {
        client(self.port, statements)
    }

    /// The server's data and log directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A database of one test; dropped with it.
#[derive(Debug)]
pub struct TestDatabase {
    /// Its name.
    pub name: String,
    /// `mysql://...` for `--db`.
    pub url: String,
    server: &'static MariaDb,
}

impl TestDatabase {
    /// The server it lives on.
    pub fn server(&self) -> &'static MariaDb {
        self.server
    }

    /// Runs SQL in this database (see [`MariaDb::sql`]).
    ///
    /// # Errors
    /// The client's message when a statement fails.
    pub fn sql(&self, statements: &str) -> Result<String, MariaDbError> {
        self.server
            .sql(&format!("USE `{}`; {statements}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Kept after a failure, for a look at what the test left.
        if !std::thread::panicking() {
            let _ = self
                .server
                .sql(&format!("DROP DATABASE IF EXISTS `{}`", self.name));
        }
    }
}

fn client(port: u16, statements: &str) -> Result<String, MariaDbError> {
    let output = Command::new(CLIENT)
        .args([
            "--no-defaults",
            "--protocol=tcp",
            "--host=127.0.0.1",
            &format!("--port={port}"),
            &format!("--user={USER}"),
            "--batch",
            "--skip-column-names",
            "--connect-timeout=5",
            "-e",
            statements,
        ])
        // Not on the command line, where `ps` would show it.
        .env("MYSQL_PWD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| failed(format!("cannot run {CLIENT}: {e}")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(failed(
            String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        ))
    }
}

/// Holds the directory's lock file exclusively until dropped.
fn lock(dir: &Path) -> Result<File, MariaDbError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| failed(format!("cannot open {}: {e}", path.display())))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_DEADLINE => {
                // Another test process is starting the server: polling a file lock, there
                // is no event to wait on.
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(failed(format!(
                    "{} stayed locked for {LOCK_DEADLINE:?} (another test process starting MariaDB?)",
                    path.display()
                )));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(failed(format!("cannot lock {}: {e}", path.display())));
            }
        }
    }
}

/// The server recorded in `dir/state`, if that pid is our mariadbd and it answers.
fn running(dir: &Path) -> Option<MariaDb> {
    let state = std::fs::read_to_string(dir.join("state")).ok()?;
    let mut fields = state.split_whitespace();
    let pid: u32 = fields.next()?.parse().ok()?;
    let port: u16 = fields.next()?.parse().ok()?;
    if !is_our_server(pid, dir) {
        return None;
    }
    client(port, "SELECT 1").ok()?;
    Some(server(dir, pid, port))
}

fn server(dir: &Path, pid: u32, port: u16) -> MariaDb {
    MariaDb {
        host: "127.0.0.1".to_owned(),
        port,
        user: USER.to_owned(),
        password: PASSWORD.to_owned(),
        pid,
        dir: dir.to_owned(),
    }
}

/// Whether `pid` is a mariadbd running on `dir`'s data (a pid may have been reused).
fn is_our_server(pid: u32, dir: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let cmdline = String::from_utf8_lossy(&cmdline);
    cmdline.contains("mariadbd") && cmdline.contains(&*data_dir(dir).to_string_lossy())
}

fn data_dir(dir: &Path) -> PathBuf {
    dir.join("data")
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

fn start(dir: &Path) -> Result<MariaDb, MariaDbError> {
    let data = data_dir(dir);
    let installed = dir.join("installed");
    // mariadbd refuses to run as root unless told which user to be.
    let user = is_root().then_some("--user=root");
    if !installed.exists() {
        let _ = std::fs::remove_dir_all(&data);
        let log = dir.join("install.log");
        let log_file = File::create(&log)
            .map_err(|e| failed(format!("cannot write {}: {e}", log.display())))?;
        let status = Command::new(INSTALL_DB)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(user)
            .args(["--skip-test-db", "--auth-root-authentication-method=socket"])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| failed(e.to_string()))?)
            .stderr(log_file)
            .status()
            .map_err(|e| failed(format!("cannot run {INSTALL_DB}: {e}")))?;
        if !status.success() {
            return Err(failed(format!(
                "{INSTALL_DB} failed ({status}); {}:\n{}",
                log.display(),
                tail(&log)
            )));
        }
        std::fs::write(&installed, "").map_err(|e| failed(e.to_string()))?;
    }
    let init = dir.join("init.sql");
    std::fs::write(
        &init,
        format!(
            "CREATE USER IF NOT EXISTS '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}';\n\
             GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'127.0.0.1' WITH GRANT OPTION;\n"
        ),
    )
    .map_err(|e| failed(e.to_string()))?;
    let port = free_port().map_err(|e| failed(format!("no free port on 127.0.0.1: {e}")))?;
    let log = dir.join("mariadbd.err");
    let _ = std::fs::remove_file(&log);
    let mut child = {
        use std::os::unix::process::CommandExt as _;
        Command::new(MARIADBD)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(user)
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--socket={}", dir.join("mariadbd.sock").display()))
            .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
            .arg(format!("--log-error={}", log.display()))
            .arg(format!("--init-file={}", init.display()))
            .args([
                "--skip-name-resolve",
                "--innodb-buffer-pool-size=256M",
                "--max-connections=500",
                "--character-set-server=utf8mb4",
                "--collation-server=utf8mb4_general_ci",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C of `cargo test` does not take the shared
            // server down with it.
            .process_group(0)
            .spawn()
            .map_err(|e| failed(format!("cannot run {MARIADBD}: {e}")))?
    };
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(format!(
                "{MARIADBD} exited ({status}) at start; {}:\n{}",
                log.display(),
                tail(&log)
            )));
        }
        if client(port, "SELECT 1").is_ok() {
            break;
        }
        if started.elapsed() > START_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            return Err(failed(format!(
                "{MARIADBD} did not accept connections on 127.0.0.1:{port} within {START_DEADLINE:?}; {}:\n{}",
                log.display(),
                tail(&log)
            )));
        }
        // Polling a server's readiness: it announces nothing we could wait on.
        std::thread::sleep(Duration::from_millis(50));
    }
    let pid = child.id();
    std::fs::write(dir.join("state"), format!("{pid} {port}\n"))
        .map_err(|e| failed(e.to_string()))?;
    Ok(server(dir, pid, port))
}

fn free_port() -> io::Result<u16> {
    // The port is free when the server binds it a moment later, barring a race with
    // another program; the server then fails to start and says so in its log.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Stops the shared server of `dir` (default [`server_dir`]) by its pid: TERM, then KILL
/// after 30 s. Returns whether one was running.
///
/// # Errors
/// When the signal cannot be sent.
pub fn stop(dir: Option<&Path>) -> Result<bool, MariaDbError> {
    let dir = dir.map_or_else(server_dir, Path::to_path_buf);
    let _lock = lock(&dir)?;
    let Ok(state) = std::fs::read_to_string(dir.join("state")) else {
        return Ok(false);
    };
    let Some(pid) = state
        .split_whitespace()
        .next()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return Ok(false);
    };
    let _ = std::fs::remove_file(dir.join("state"));
    if !is_our_server(pid, &dir) {
        return Ok(false);
    }
    let signal = |name: &str| {
        Command::new("kill")
            .args([name, &pid.to_string()])
            .status()
            .map_err(|e| failed(format!("cannot run kill: {e}")))
    };
    signal("-TERM")?;
    let started = Instant::now();
    while is_our_server(pid, &dir) {
        if started.elapsed() > Duration::from_secs(30) {
            signal("-KILL")?;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(true)
}
