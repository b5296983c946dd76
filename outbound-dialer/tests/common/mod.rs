//! Shared set-up of the dialer's lab tests: a campaign in a temp directory of its own,
//! run through the real binary, and an independent watcher of the calls on Asterisk.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ari_client::model::Event;
use ari_client::{Client, Credentials, Update};
use futures::StreamExt as _;

/// How long a whole campaign of a test may take.
pub const CAMPAIGN_DEADLINE: Duration = Duration::from_secs(120);

/// A campaign's files and settings.
pub struct Campaign {
    pub name: String,
    pub dir: PathBuf,
    pub app: String,
    pub env: Vec<(String, String)>,
}

impl Campaign {
    /// A campaign named after `prefix` with its numbers in `numbers.txt`, in a fresh
    /// directory, dialling through the lab's trunk.
    pub fn new(prefix: &str, numbers: &[&str]) -> Campaign {
        let name = ari_lab::unique_name(prefix);
        let dir = std::env::temp_dir().join(format!("dialer-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("numbers.txt"), numbers.join("\n") + "\n").unwrap();
        let lab = ari_lab::Lab::from_env();
        let app = ari_lab::unique_name(&format!("{prefix}-app"));
        let env = [
            ("ARI_URL", lab.ari_url.as_str()),
            ("ARI_USERNAME", lab.username.as_str()),
            ("ARI_PASSWORD", lab.password.as_str()),
            ("ARI_TRUNK", "trunk"),
            ("OUTBOUND_NUMBER_FILE", "numbers.txt"),
            ("STASIS_APP", app.as_str()),
            ("CAMPAIGN", name.as_str()),
            ("CALL_TIMEOUT", "4"),
            // A short ring keeps the tests short; the rules refuse one unless forced.
            ("DIALER_FORCE_SHORT_RING", "1"),
            // The default calling window (08:00-21:00 local) would hold tests run at night.
            ("DIALER_CALLING_WINDOW", "00:00-24:00"),
            ("MAX_CC", "4"),
            ("TARGET_ENDPOINT", "Local/hello@lab"),
            ("DIALER_REPORT", "report.csv"),
            ("LOG_LEVEL", "info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Campaign {
            name,
            dir,
            app,
            env,
        }
    }

    /// Sets (or replaces) a variable.
    pub fn set(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// The dialer command for this campaign (`run`), in its directory.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_outbound-dialer"));
        command
            .args(args)
            .current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .kill_on_drop(true);
        command
    }

    /// Runs `outbound-dialer run` to its end, within the deadline.
    pub async fn run(&self) -> Output {
        tokio::time::timeout(CAMPAIGN_DEADLINE, self.command(&["run"]).output())
            .await
            .expect("the campaign finished within its deadline")
            .expect("the dialer runs")
    }

    /// The report's rows as header → value maps.
    pub fn report(&self) -> Vec<BTreeMap<String, String>> {
        let mut reader = csv::Reader::from_path(self.dir.join("report.csv")).expect("report.csv");
        let headers = reader.headers().unwrap().clone();
        reader
            .records()
            .map(|record| {
                let record = record.unwrap();
                headers
                    .iter()
                    .zip(record.iter())
                    .map(|(h, v)| (h.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    }

    /// The report's outcome per number.
    pub fn outcomes(&self) -> BTreeMap<String, String> {
        self.report()
            .into_iter()
            .map(|row| (row["number"].clone(), row["outcome"].clone()))
            .collect()
    }

    /// The id prefix of this campaign's callee channels.
    pub fn callee_prefix(&self) -> String {
        format!("dc-{}-", outbound_dialer::ids::campaign_key(&self.name))
    }
}

impl Drop for Campaign {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Independently of the dialer, watches every channel Asterisk creates whose id starts
/// with a prefix: how many are up at once, and when each was created.
pub struct Watcher {
    seen: Arc<Mutex<WatchState>>,
    _connection: ari_client::AppConnection,
}

#[derive(Default, Debug)]
pub struct WatchState {
    pub live: usize,
    pub max_live: usize,
    /// Channel id → how many times it was created.
    pub created: HashMap<String, usize>,
    pub created_at: Vec<Instant>,
    /// Hung-up channels' causes by id.
    pub destroyed: HashMap<String, i64>,
}

impl Watcher {
    /// Starts watching channels whose id starts with `prefix` (before the campaign).
    pub async fn start(prefix: String) -> Watcher {
        let lab = ari_lab::Lab::get().await;
        let client = Client::builder(&lab.ari_url)
            .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
            .build()
            .unwrap();
        let connection = client
            .app_connection([ari_lab::unique_name("dialer-watch")])
            .event_sources(["channel:", "bridge:"]) // not subscribeAll: asterisk/asterisk#2170
            .connect()
            .await
            .expect("the watcher connects");
        let seen: Arc<Mutex<WatchState>> = Arc::default();
        let mut updates = connection.updates();
        let state = seen.clone();
        tokio::spawn(async move {
            while let Some(update) = updates.next().await {
                let Update::Event(event) = update else {
                    continue;
                };
                match event.as_ref() {
                    Event::ChannelCreated(e) if e.channel.id.as_str().starts_with(&prefix) => {
                        let mut s = state.lock().unwrap();
                        s.live += 1;
                        s.max_live = s.max_live.max(s.live);
                        *s.created.entry(e.channel.id.to_string()).or_default() += 1;
                        s.created_at.push(Instant::now());
                    }
                    Event::ChannelDestroyed(e) if e.channel.id.as_str().starts_with(&prefix) => {
                        let mut s = state.lock().unwrap();
                        s.live = s.live.saturating_sub(1);
                        s.destroyed.insert(e.channel.id.to_string(), e.cause);
                    }
                    _ => {}
                }
            }
        });
        Watcher {
            seen,
            _connection: connection,
        }
    }

    /// What was seen so far.
    pub fn state(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.seen.lock().unwrap()
    }

    /// Waits (polling what was seen, within `within`) until `ready` holds.
    pub async fn until(&self, within: Duration, what: &str, ready: impl Fn(&WatchState) -> bool) {
        let reached = tokio::time::timeout(within, async {
            loop {
                if ready(&self.state()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        if reached.is_err() {
            panic!(
                "{what} did not happen within {within:?}: {:?}",
                self.state()
            );
        }
    }
}

/// Reads a WAV file: (sample rate, 16-bit samples) of its data chunk.
pub fn read_wav(path: &Path) -> (u32, Vec<i16>) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(&bytes[..4], b"RIFF", "{}", path.display());
    let rate = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        if id == b"data" {
            let data = &bytes[at + 8..(at + 8 + len).min(bytes.len())];
            return (
                rate,
                data.chunks_exact(2)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect(),
            );
        }
        at += 8 + len;
    }
    panic!("no data chunk in {}", path.display());
}

/// The dominant frequency of `samples` by counting zero crossings (good enough for a
/// pure tone).
pub fn zero_crossing_hz(rate: u32, samples: &[i16]) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / f64::from(rate))
}
