//! Test support for the workspace: the lab's real Asterisk and SIPp peers, and a real
//! MariaDB ([`mariadb`]) for the dialer's MySQL store.
//!
//! Every integration test in the workspace talks to the Asterisk that
//! `asterisk_conf/lab start` runs on 127.0.0.1. [`Lab::get`] checks once per test
//! process that ARI answers and fails the test with instructions when it does not: a
//! missing lab is a failure, never a skip.
//!
//! Tests share one Asterisk, so each one names its own Stasis app and object ids with
//! [`unique_name`]; events of other tests never reach it.

pub mod audio;
pub mod events;
mod gate;
pub mod mariadb;
pub mod pcap;
pub mod rest;
pub mod sipp;
pub mod tap;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::OnceCell;

/// Where the lab's ARI is and how to log in, from `ARI_URL`, `ARI_USERNAME`,
/// `ARI_PASSWORD` or the defaults of `asterisk_conf/`.
#[derive(Clone)]
pub struct Lab {
    /// Base URL without `/ari`, e.g. `http://127.0.0.1:8088`.
    pub ari_url: String,
    /// ARI user name.
    pub username: String,
    /// ARI password.
    pub password: String,
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("ari_url", &self.ari_url)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Default ARI base URL of the lab (asterisk_conf/http.conf).
pub const DEFAULT_ARI_URL: &str = "http://127.0.0.1:8088";
/// Default ARI user of the lab (asterisk_conf/ari.conf).
pub const DEFAULT_USERNAME: &str = "asterisk";
/// Default ARI password of the lab (asterisk_conf/ari.conf).
pub const DEFAULT_PASSWORD: &str = "asterisk";

static REACHABLE: OnceCell<Lab> = OnceCell::const_new();

impl Lab {
    /// The lab's coordinates from the environment, without checking that it answers.
    pub fn from_env() -> Lab {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.to_owned());
        Lab {
            ari_url: var("ARI_URL", DEFAULT_ARI_URL)
                .trim_end_matches('/')
                .to_owned(),
            username: var("ARI_USERNAME", DEFAULT_USERNAME),
            password: var("ARI_PASSWORD", DEFAULT_PASSWORD),
        }
    }

    /// The lab, once ARI has answered `GET /ari/asterisk/info` in this process.
    ///
    /// # Panics
    /// When ARI does not answer: the test fails with what went wrong and how to start
    /// the lab. Tests must never pass without the real Asterisk.
    pub async fn get() -> &'static Lab {
        gate::share();
        Lab::reachable().await
    }

    /// The lab for a test that stops, kills or restarts Asterisk: waits until no other
    /// test process uses it, then keeps every other test process out until this one
    /// ends (one such test per test binary).
    ///
    /// # Panics
    /// As [`Lab::get`], and when the lab cannot be had alone within twenty minutes.
    pub async fn alone() -> &'static Lab {
        gate::exclusive().await;
        Lab::reachable().await
    }

    async fn reachable() -> &'static Lab {
        REACHABLE
            .get_or_init(|| async {
                let lab = Lab::from_env();
                match rest::Rest::new(&lab).get("/asterisk/info").await {
                    Ok(response) if response.status == 200 => lab,
                    Ok(response) => panic!(
                        "the ARI lab at {} answered {} to GET /ari/asterisk/info: {}\n\
                         check ARI_USERNAME/ARI_PASSWORD or restart it with `asterisk_conf/lab restart`",
                        lab.ari_url, response.status, response.text
                    ),
                    Err(error) => panic!(
                        "the ARI lab is not reachable at {}: {error}\n\
                         start it with `sudo asterisk_conf/lab install && sudo asterisk_conf/lab start` \
                         (or set ARI_URL to a running Asterisk 22)",
                        lab.ari_url
                    ),
                }
            })
            .await
    }

    /// The host and port of ARI's HTTP server, e.g. `127.0.0.1:8088`.
    pub fn authority(&self) -> &str {
        let without_scheme = self
            .ari_url
            .split_once("://")
            .map_or(self.ari_url.as_str(), |(_, rest)| rest);
        without_scheme.split('/').next().unwrap_or(without_scheme)
    }

    /// The value of an HTTP `Authorization` header for this lab's user.
    pub fn basic_auth(&self) -> String {
        use base64::Engine as _;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", self.username, self.password));
        format!("Basic {token}")
    }
}

/// A name no other test of any process uses: `<prefix>-<pid>-<time>-<n>`.
///
/// Use it for Stasis app names and client-generated object ids, so tests that share the
/// lab never see each other's events.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() % 1_000_000_000);
    format!("{prefix}-{}-{millis}-{n}", std::process::id())
}

/// The workspace root (the directory holding `Cargo.lock`), for paths to `asterisk_conf/`.
///
/// Found at run time from the manifest directory cargo gives the running test (or the
/// current directory), never from a path compiled in: a target directory shared between
/// clones would otherwise send one clone's tests to another clone's files.
pub fn workspace_root() -> std::path::PathBuf {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map_or_else(|| start.clone(), std::path::Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ() {
        assert_ne!(unique_name("t"), unique_name("t"));
        assert!(unique_name("app").starts_with("app-"));
    }

    #[test]
    fn authority_strips_scheme_and_path() {
        let lab = Lab {
            ari_url: "http://127.0.0.1:8088/x".into(),
            username: "u".into(),
            password: "p".into(),
        };
        assert_eq!(lab.authority(), "127.0.0.1:8088");
        assert_eq!(lab.basic_auth(), "Basic dTpw");
        assert!(!format!("{lab:?}").contains("\"p\""));
    }
}
