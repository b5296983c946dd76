//! Shared set-up of the dialer's lab tests: a campaign in a temp directory of its own,
//! run through the real binary, and independent trackers of the calls on Asterisk.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime};

use outbound_dialer::store::{Location, MySqlTarget, Store};

pub mod http;
pub mod tracker;

use tracker::{Tracked, Tracker};

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

    /// Runs `outbound-dialer run` to its end, which must succeed; its [`output_text`].
    pub async fn run_ok(&self) -> String {
        let output = self.run().await;
        let text = output_text(&output);
        assert!(output.status.success(), "{text}");
        text
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

    /// The report's rows of one number, in attempt order: (attempt, outcome).
    pub fn attempts(&self, number: &str) -> Vec<(String, String)> {
        self.report()
            .into_iter()
            .filter(|row| row["number"] == number)
            .map(|row| (row["attempt"].clone(), row["outcome"].clone()))
            .collect()
    }

    /// Asserts that each of `numbers` has in the report the attempts 1, 2, ... with these
    /// `outcomes`, and no other row (`context` says what went on, on failure).
    pub fn assert_attempts(&self, numbers: &[&str], outcomes: &[&str], context: &str) {
        let expected: Vec<(String, String)> = outcomes
            .iter()
            .enumerate()
            .map(|(i, outcome)| ((i + 1).to_string(), (*outcome).to_owned()))
            .collect();
        for number in numbers {
            assert_eq!(self.attempts(number), expected, "{number}\n{context}");
        }
    }

    /// The campaign's store on MySQL/MariaDB at `url`, opened beside the dialers.
    pub async fn mysql_store(&self, url: &str) -> Store {
        Store::open_at(
            &Location::MySql(MySqlTarget::Url(url.to_owned())),
            &self.name,
        )
        .await
        .unwrap()
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
/// with a prefix: how many are up at once, and when each was created (a view of a
/// [`Tracker`]).
pub struct Watcher {
    tracker: Tracker,
}

/// What a [`Watcher`] saw.
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

impl From<&Tracked> for WatchState {
    fn from(tracked: &Tracked) -> WatchState {
        let channels = &tracked.channels;
        WatchState {
            live: tracked.live,
            max_live: tracked.max_live,
            created: channels
                .iter()
                .filter(|(_, seen)| seen.creations > 0)
                .map(|(id, seen)| (id.clone(), seen.creations as usize))
                .collect(),
            created_at: tracked.created_at.clone(),
            destroyed: channels
                .iter()
                .filter_map(|(id, seen)| Some((id.clone(), seen.cause?)))
                .collect(),
        }
    }
}

impl Watcher {
    /// Starts watching channels whose id starts with `prefix` (before the campaign).
    pub async fn start(prefix: String) -> Watcher {
        Watcher {
            tracker: Tracker::start(prefix).await,
        }
    }

    /// What was seen so far.
    pub fn state(&self) -> WatchState {
        WatchState::from(&*self.tracker.tracked())
    }

    /// Waits (polling what was seen, within `within`) until `ready` holds.
    pub async fn until(&self, within: Duration, what: &str, ready: impl Fn(&WatchState) -> bool) {
        self.tracker
            .until_tracked(within, what, |tracked| ready(&WatchState::from(tracked)))
            .await;
    }
}

/// A finished process's status and output, for an assertion's message.
pub fn output_text(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Hangs up the channel `id` on the lab, as a callee or the carrier would.
pub async fn hang_up_on_lab(id: &str) {
    let lab = ari_lab::Lab::get().await;
    let client = ari_client::Client::builder(&lab.ari_url)
        .credentials(ari_client::Credentials::new(
            lab.username.clone(),
            lab.password.clone(),
        ))
        .build()
        .unwrap();
    client
        .channels()
        .hangup(ari_client::model::operations::channels::Hangup::new(id))
        .await
        .unwrap();
}

/// Waits (within 60 s) for a dialer process that must end well; its output text.
pub async fn ended_well(child: tokio::process::Child) -> String {
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the campaign ends after the hang-up")
        .unwrap();
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    text
}

/// Milliseconds since the Unix epoch (the store's clock) of `at`.
pub fn unix_ms(at: SystemTime) -> i64 {
    i64::try_from(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// [`unix_ms`] of now.
pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
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
