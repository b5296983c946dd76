//! Command-line and environment configuration of a campaign, validated into a [`Config`].
//!
//! The Node.js dialer's environment names work unchanged (`ARI_TRUNK`, `MAX_CC`,
//! `OUTBOUND_NUMBER_FILE`, ...), and a `.env` file in the working directory is read:
//! the real environment wins over it, and flags win over both.

use std::collections::HashSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ari_client::cli::AriArgs;
use clap::{CommandFactory as _, Parser, Subcommand};

use crate::logging::LogFormat;
use crate::store::{Location, MySqlTarget};

/// Flags as typed by the operator; [`Args::validate`] turns them into a [`Config`].
#[derive(Debug, Parser)]
#[command(
    name = "outbound-dialer",
    version,
    about = "Dial a campaign's numbers through a PJSIP trunk, bridge answered calls to a target, record them and keep every outcome",
    args_override_self = true
)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Option<Mode>,
    /// How to reach Asterisk's ARI.
    #[command(flatten)]
    pub ari: AriArgs,
    /// PJSIP endpoint of the carrier trunk: calls go to PJSIP/NUMBER@TRUNK.
    #[arg(long, env = "ARI_TRUNK", default_value = "trunk", global = true)]
    pub trunk: String,
    /// One number to dial (instead of a file).
    #[arg(long, env = "OUTBOUND_NUMBER", global = true)]
    pub number: Option<String>,
    /// File of numbers: one per line, or CSV with a `number`/`phone` column (other
    /// columns become channel variables).
    #[arg(long, env = "OUTBOUND_NUMBER_FILE", global = true)]
    pub number_file: Option<PathBuf>,
    /// Dial string of the target answered callees are bridged to (default:
    /// Local/TARGET_EXTENSION@TARGET_CONTEXT).
    #[arg(long, env = "TARGET_ENDPOINT", global = true)]
    pub target_endpoint: Option<String>,
    /// Extension of the default target.
    #[arg(long, env = "TARGET_EXTENSION", default_value = "777", global = true)]
    pub target_extension: String,
    /// Context of the default target.
    #[arg(long, env = "TARGET_CONTEXT", default_value = "default", global = true)]
    pub target_context: String,
    /// Stasis application of this campaign (ari.conf must allow it).
    #[arg(
        long,
        env = "STASIS_APP",
        default_value = "outbound_dialer",
        global = true
    )]
    pub app: String,
    /// Seconds a callee may ring before the call counts as not answered.
    #[arg(long, env = "CALL_TIMEOUT", default_value = "30", global = true)]
    pub call_timeout: u32,
    /// Caller id presented to callees (`"Name" <number>` or a number).
    #[arg(long, env = "CALLER_ID", global = true)]
    pub caller_id: Option<String>,
    /// Calls in progress at most.
    #[arg(long, env = "MAX_CC", default_value = "1", global = true)]
    pub max_cc: u32,
    /// New calls per second at most (token bucket); unlimited when not given.
    #[arg(long, env = "DIALER_CPS", global = true)]
    pub cps: Option<f64>,
    /// Where recordings are downloaded to.
    #[arg(
        long,
        env = "RECORDINGS_DIR",
        default_value = "recordings",
        global = true
    )]
    pub recordings_dir: PathBuf,
    /// Recording format (wav, gsm, ...).
    #[arg(long, env = "RECORDING_FORMAT", default_value = "wav", global = true)]
    pub recording_format: String,
    /// Longest recording, in seconds.
    #[arg(
        long,
        env = "DIALER_MAX_RECORDING_SECONDS",
        default_value = "3600",
        global = true
    )]
    pub max_recording_seconds: u32,
    /// Keep recordings on Asterisk after a verified download (default: delete them).
    #[arg(
        long,
        env = "DIALER_KEEP_RECORDINGS_ON_ASTERISK",
        global = true,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub keep_recordings_on_asterisk: bool,
    /// Seconds the target may take to answer before the call counts as target_failed.
    #[arg(
        long,
        env = "DIALER_TARGET_TIMEOUT",
        default_value = "20",
        global = true
    )]
    pub target_timeout: u32,
    /// What a callee hears when the target fails, before the hang-up.
    #[arg(
        long,
        env = "DIALER_TARGET_FAILED_SOUND",
        default_value = "sound:sorry-youre-having-problems",
        global = true
    )]
    pub target_failed_sound: String,
    /// Campaign name (default: the number file's name without extension, or `outbound`).
    #[arg(long, env = "CAMPAIGN", global = true)]
    pub campaign: Option<String>,
    /// Where the campaign is stored.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Write a per-attempt report here at the end (`.csv`, `.json` or `.jsonl`).
    #[arg(long, env = "DIALER_REPORT", global = true)]
    pub report: Option<PathBuf>,
    /// Address of the controller in `serve` mode.
    #[arg(
        long,
        env = "DIALER_LISTEN",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub listen: std::net::SocketAddr,
    /// Log format.
    #[arg(
        long,
        env = "LOG_FORMAT",
        value_enum,
        default_value = "human",
        global = true
    )]
    pub log_format: LogFormat,
    /// Log level (error, warn, info, debug, trace) unless RUST_LOG says otherwise.
    #[arg(long, env = "LOG_LEVEL", default_value = "info", global = true)]
    pub log_level: String,
    /// Campaign rules: retries, calling hours, do-not-call, AMD, abandon rate, breaker.
    #[command(flatten)]
    pub rules: crate::rules::args::RuleArgs,
}

/// The store's flags: `--db`, `DATABASE_URL`, the seed's `MYSQL_*`, the lease.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The campaign's store: an SQLite file (default: CAMPAIGN.sqlite in the working
    /// directory; one dialer at a time) or a MySQL/MariaDB database
    /// `mysql://USER:PASSWORD@HOST:PORT/DATABASE` (several dialers may share it). Without
    /// it: DATABASE_URL, then the MYSQL_* variables.
    #[arg(long, env = "DIALER_DB", global = true, hide_env_values = true)]
    pub db: Option<Secret>,
    /// MySQL store URL, when --db (DIALER_DB) is not given.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        hide = true,
        hide_env_values = true
    )]
    pub database_url: Option<Secret>,
    /// Seconds a dialer's claims (and calls) stay its own without a renewal, when several
    /// dialers share a MySQL campaign: a crashed dialer's unstarted numbers go back to the
    /// others after it, and its calls are reconciled.
    #[arg(
        long,
        env = "DIALER_LEASE_SECONDS",
        default_value = "30",
        global = true
    )]
    pub lease_seconds: u32,
    /// The seed's MySQL store: host (with MYSQL_DATABASE; used when neither --db nor
    /// DATABASE_URL is given).
    #[arg(long, env = "MYSQL_HOST", global = true)]
    pub mysql_host: Option<String>,
    /// The seed's MySQL store: database.
    #[arg(long, env = "MYSQL_DATABASE", global = true)]
    pub mysql_database: Option<String>,
    /// The seed's MySQL store: port (default 3306).
    #[arg(long, env = "MYSQL_PORT", global = true)]
    pub mysql_port: Option<String>,
    /// The seed's MySQL store: user (default root).
    #[arg(long, env = "MYSQL_USER", global = true)]
    pub mysql_user: Option<String>,
    /// The seed's MySQL store: password.
    #[arg(long, env = "MYSQL_PASSWORD", global = true, hide_env_values = true)]
    pub mysql_password: Option<Secret>,
}

/// A value that may hold a password (a MySQL URL, MYSQL_PASSWORD): `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The value itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(value.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Mode {
    /// Dial the campaign now and exit when every number has an outcome (the default).
    Run,
    /// Serve the seed's controller (`GET /start`, `/status`, `POST /pause`, `/resume`,
    /// `/stop`) and dial when told to; `POST`/`GET /dnc`, `GET`/`DELETE /dnc/{number}` edit
    /// the campaign's do-not-call list.
    Serve,
}

/// Where the numbers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberSource {
    /// `OUTBOUND_NUMBER`.
    One(String),
    /// `OUTBOUND_NUMBER_FILE`.
    File(PathBuf),
}

/// Validated campaign configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Run now or serve the controller.
    pub mode: Mode,
    /// How to reach ARI.
    pub ari: AriArgs,
    /// Trunk endpoint name.
    pub trunk: String,
    /// The numbers.
    pub numbers: NumberSource,
    /// Dial string of the bridge target.
    pub target: String,
    /// Stasis application name.
    pub app: String,
    /// Ring time before no answer.
    pub call_timeout: Duration,
    /// Caller id, when set.
    pub caller_id: Option<String>,
    /// Concurrency limit.
    pub max_cc: u32,
    /// Calls per second, when limited.
    pub cps: Option<f64>,
    /// Recordings directory.
    pub recordings_dir: PathBuf,
    /// Recording format.
    pub recording_format: String,
    /// Longest recording.
    pub max_recording: Duration,
    /// Delete recordings from Asterisk once downloaded and verified.
    pub delete_after_download: bool,
    /// How long the target may take to answer.
    pub target_timeout: Duration,
    /// Played to a callee whose target failed.
    pub target_failed_sound: String,
    /// Campaign name.
    pub campaign: String,
    /// The store: an SQLite file or a MySQL database.
    pub db: Location,
    /// How long this dialer's claims last without a renewal (shared MySQL campaigns).
    pub lease: Duration,
    /// Report file, when asked for.
    pub report: Option<PathBuf>,
    /// Controller address (serve mode).
    pub listen: std::net::SocketAddr,
    /// Log format.
    pub log_format: LogFormat,
    /// Log level.
    pub log_level: String,
    /// Campaign rules.
    pub rules: crate::rules::args::Rules,
}

/// A configuration value that cannot work, named with the flag and variable that carry it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value that cannot work.
    #[error("{flag} ({env}) {problem}, got {value:?}")]
    Invalid {
        /// The flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// What is wrong.
        problem: &'static str,
        /// What was given.
        value: String,
    },
    /// A campaign rule's value that cannot work.
    #[error("{flag} ({env}) {problem}, got {value:?}")]
    Rule {
        /// The flag.
        flag: &'static str,
        /// Its environment variable.
        env: &'static str,
        /// What is wrong.
        problem: String,
        /// What was given.
        value: String,
    },
    /// Neither a number nor a file.
    #[error(
        "no numbers to dial: set OUTBOUND_NUMBER_FILE (--number-file) to a list, or OUTBOUND_NUMBER (--number) to one number"
    )]
    NoNumbers,
    /// The seed's MySQL variables are incomplete.
    #[error(
        "MYSQL_HOST (--mysql-host) and MYSQL_DATABASE (--mysql-database) go together: set both (and MYSQL_USER, MYSQL_PASSWORD, MYSQL_PORT as needed), or give --db mysql://USER:PASSWORD@HOST:PORT/DATABASE"
    )]
    MysqlIncomplete,
    /// The `.env` file is unreadable or malformed.
    #[error(".env: {0}")]
    DotEnv(String),
}

/// Characters that would change the meaning of a dial string or a channel variable.
const DIAL_STRING_SPECIALS: [char; 6] = ['&', ',', '|', '\n', '\r', '\0'];

impl Args {
    /// Parses `argv`, with the `.env` file's values for variables the real
    /// environment does not set, without touching the process environment.
    ///
    /// # Errors
    /// clap's error for bad flags; [`ConfigError::DotEnv`] for a malformed `.env`.
    pub fn parse_with_dotenv(
        argv: Vec<OsString>,
        dotenv: Option<&Path>,
    ) -> Result<Args, ParseError> {
        let pairs = match dotenv {
            Some(path) if path.exists() => read_dotenv(path)?,
            _ => Vec::new(),
        };
        let real: HashSet<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .collect();
        let command = Args::command();
        let mut from_dotenv = Vec::new();
        for (key, value) in pairs {
            if real.contains(&key) {
                continue;
            }
            let flag = command
                .get_arguments()
                .find(|arg| arg.get_env().is_some_and(|env| env == key.as_str()))
                .and_then(|arg| {
                    arg.get_long()
                        .map(|long| (long, arg.get_action().takes_values()))
                });
            match flag {
                Some((long, true)) => {
                    from_dotenv.push(OsString::from(format!("--{long}")));
                    from_dotenv.push(OsString::from(value));
                }
                Some((long, false)) => {
                    if matches!(value.trim(), "1" | "true" | "yes" | "on") {
                        from_dotenv.push(OsString::from(format!("--{long}")));
                    }
                }
                None => {}
            }
        }
        // The .env values go first: the operator's own flags come later and win.
        let mut argv = argv.into_iter();
        let program = argv.next().unwrap_or_else(|| "outbound-dialer".into());
        let all = std::iter::once(program).chain(from_dotenv).chain(argv);
        Args::try_parse_from(all).map_err(ParseError::Clap)
    }

    /// Checks the flags that parsing alone cannot.
    ///
    /// # Errors
    /// The first value that cannot work.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |flag, env, problem, value: &str| ConfigError::Invalid {
            flag,
            env,
            problem,
            value: value.to_owned(),
        };
        if self.store.lease_seconds < 2 || self.store.lease_seconds > 3600 {
            return Err(invalid(
                "--lease-seconds",
                "DIALER_LEASE_SECONDS",
                "must be 2..=3600 seconds",
                &self.store.lease_seconds.to_string(),
            ));
        }
        if !self.ari.url.starts_with("http://") && !self.ari.url.starts_with("https://") {
            return Err(invalid(
                "--ari-url",
                "ARI_URL",
                "must start with http:// or https://",
                &self.ari.url,
            ));
        }
        if self.trunk.is_empty()
            || !self
                .trunk
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(
                "--trunk",
                "ARI_TRUNK",
                "must be a PJSIP endpoint name (letters, digits, - _ .)",
                &self.trunk,
            ));
        }
        if self.app.is_empty() || self.app.contains([',', ' ', '/', '?', '&', '#']) {
            return Err(invalid(
                "--app",
                "STASIS_APP",
                "must be a Stasis application name without commas, spaces or URL characters",
                &self.app,
            ));
        }
        if self.call_timeout == 0 || self.call_timeout > 600 {
            return Err(invalid(
                "--call-timeout",
                "CALL_TIMEOUT",
                "must be 1..=600 seconds",
                &self.call_timeout.to_string(),
            ));
        }
        if self.max_cc == 0 || self.max_cc > 5000 {
            return Err(invalid(
                "--max-cc",
                "MAX_CC",
                "must be 1..=5000",
                &self.max_cc.to_string(),
            ));
        }
        if let Some(cps) = self.cps {
            if !(0.001..=1000.0).contains(&cps) {
                return Err(invalid(
                    "--cps",
                    "DIALER_CPS",
                    "must be 0.001..=1000 calls per second",
                    &cps.to_string(),
                ));
            }
        }
        if self.target_timeout == 0 || self.target_timeout > 600 {
            return Err(invalid(
                "--target-timeout",
                "DIALER_TARGET_TIMEOUT",
                "must be 1..=600 seconds",
                &self.target_timeout.to_string(),
            ));
        }
        if self.recording_format.is_empty()
            || !self
                .recording_format
                .chars()
                .all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(
                "--recording-format",
                "RECORDING_FORMAT",
                "must be a format name such as wav or gsm",
                &self.recording_format,
            ));
        }
        if self.max_recording_seconds == 0 {
            return Err(invalid(
                "--max-recording-seconds",
                "DIALER_MAX_RECORDING_SECONDS",
                "must be at least 1",
                "0",
            ));
        }
        if let Some(caller_id) = &self.caller_id {
            if caller_id.len() > 80 || caller_id.contains(DIAL_STRING_SPECIALS) {
                return Err(invalid(
                    "--caller-id",
                    "CALLER_ID",
                    "must be at most 80 characters without & , | or control characters",
                    caller_id,
                ));
            }
        }
        let rules = self
            .rules
            .validate(Duration::from_secs(self.call_timeout.into()))?;
        let target = match self.target_endpoint.as_deref().map(str::trim) {
            Some(target) if !target.is_empty() => target.to_owned(),
            _ => format!("Local/{}@{}", self.target_extension, self.target_context),
        };
        if !target.contains('/')
            || target.len() > 200
            || target.contains(DIAL_STRING_SPECIALS)
            || target.contains(char::is_whitespace)
        {
            return Err(invalid(
                "--target-endpoint",
                "TARGET_ENDPOINT",
                "must be one dial string like Local/777@default or PJSIP/agent",
                &target,
            ));
        }
        let numbers = match (self.number.as_deref().map(str::trim), &self.number_file) {
            (_, Some(file)) => NumberSource::File(file.clone()),
            (Some(number), None) if !number.is_empty() => NumberSource::One(number.to_owned()),
            _ => return Err(ConfigError::NoNumbers),
        };
        let campaign = match (&self.campaign, &numbers) {
            (Some(name), _) => name.clone(),
            (None, NumberSource::File(file)) => file
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("campaign")
                .to_owned(),
            (None, NumberSource::One(_)) => "outbound".to_owned(),
        };
        if campaign.is_empty() || campaign.len() > 100 || campaign.contains(['/', '\\', '\0']) {
            return Err(invalid(
                "--campaign",
                "CAMPAIGN",
                "must be a name of 1..=100 characters without slashes",
                &campaign,
            ));
        }
        let db = self.store.location(&campaign)?;
        Ok(Config {
            mode: self.command.unwrap_or(Mode::Run),
            ari: self.ari,
            trunk: self.trunk,
            numbers,
            target,
            app: self.app,
            call_timeout: Duration::from_secs(self.call_timeout.into()),
            caller_id: self.caller_id,
            max_cc: self.max_cc,
            cps: self.cps,
            recordings_dir: self.recordings_dir,
            recording_format: self.recording_format,
            max_recording: Duration::from_secs(self.max_recording_seconds.into()),
            delete_after_download: !self.keep_recordings_on_asterisk,
            target_timeout: Duration::from_secs(self.target_timeout.into()),
            target_failed_sound: self.target_failed_sound,
            campaign,
            db,
            lease: Duration::from_secs(self.store.lease_seconds.into()),
            report: self.report,
            listen: self.listen,
            log_format: self.log_format,
            log_level: self.log_level,
            rules,
        })
    }
}

impl StoreArgs {
    /// Where the store is: `--db` (a file or a MySQL URL), else `DATABASE_URL`, else the
    /// seed's `MYSQL_*` variables, else `CAMPAIGN.sqlite`.
    fn location(&self, campaign: &str) -> Result<Location, ConfigError> {
        let set = |value: Option<&str>| {
            value
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let url = |text: String, flag, env| {
            let target = MySqlTarget::Url(text);
            match target.options() {
                Ok(_) => Ok(Location::MySql(target)),
                Err(problem) => Err(ConfigError::Invalid {
                    flag,
                    env,
                    problem: "is not a usable MySQL URL (mysql://USER:PASSWORD@HOST:PORT/DATABASE)",
                    // Named without its password.
                    value: format!("{target}: {problem}"),
                }),
            }
        };
        if let Some(db) = set(self.db.as_ref().map(Secret::expose)) {
            if MySqlTarget::is_url(&db) {
                return url(db, "--db", "DIALER_DB");
            }
            if db.contains("://") && !db.starts_with("sqlite://") {
                return Err(ConfigError::Invalid {
                    flag: "--db",
                    env: "DIALER_DB",
                    problem: "must be an SQLite file or mysql://USER:PASSWORD@HOST:PORT/DATABASE",
                    value: crate::store::Location::MySql(MySqlTarget::Url(db)).to_string(),
                });
            }
            let path = db.strip_prefix("sqlite://").unwrap_or(&db);
            return Ok(Location::Sqlite(PathBuf::from(path)));
        }
        if let Some(database_url) = set(self.database_url.as_ref().map(Secret::expose)) {
            return url(database_url, "--database-url", "DATABASE_URL");
        }
        match (
            set(self.mysql_host.as_deref()),
            set(self.mysql_database.as_deref()),
        ) {
            (Some(host), Some(database)) => {
                let port = match set(self.mysql_port.as_deref()) {
                    None => 3306,
                    Some(port) => port.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
                        ConfigError::Invalid {
                            flag: "--mysql-port",
                            env: "MYSQL_PORT",
                            problem: "must be a TCP port",
                            value: port.clone(),
                        }
                    })?,
                };
                Ok(Location::MySql(MySqlTarget::Parts {
                    host,
                    port,
                    user: set(self.mysql_user.as_deref()).unwrap_or_else(|| "root".to_owned()),
                    password: self
                        .mysql_password
                        .as_ref()
                        .map(|p| p.expose().to_owned())
                        .filter(|p| !p.is_empty()),
                    database,
                }))
            }
            (None, None) => Ok(Location::Sqlite(PathBuf::from(format!(
                "{campaign}.sqlite"
            )))),
            _ => Err(ConfigError::MysqlIncomplete),
        }
    }
}

/// Why the command line or `.env` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A bad flag (clap prints its own help and message).
    #[error(transparent)]
    Clap(clap::Error),
    /// A malformed `.env`.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn read_dotenv(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let iter = dotenvy::from_path_iter(path)
        .map_err(|e| ConfigError::DotEnv(format!("{}: {e}", path.display())))?;
    iter.map(|pair| pair.map_err(|e| ConfigError::DotEnv(format!("{}: {e}", path.display()))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("outbound-dialer").chain(args.iter().copied()))
    }

    #[test]
    fn defaults_reach_the_lab_and_keep_the_seeds_values() {
        let config = parse(&["--number", "1000"]).unwrap().validate().unwrap();
        assert_eq!(config.trunk, "trunk");
        assert_eq!(config.target, "Local/777@default");
        assert_eq!(config.app, "outbound_dialer");
        assert_eq!(config.max_cc, 1);
        assert_eq!(config.call_timeout, Duration::from_secs(30));
        assert_eq!(config.recordings_dir, PathBuf::from("recordings"));
        assert_eq!(config.recording_format, "wav");
        assert_eq!(config.mode, Mode::Run);
        assert_eq!(config.campaign, "outbound");
        assert_eq!(
            config.db,
            Location::Sqlite(PathBuf::from("outbound.sqlite"))
        );
        assert_eq!(config.lease, Duration::from_secs(30));
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
    }

    #[test]
    fn the_campaign_is_named_after_its_list() {
        let config = parse(&["--number-file", "/lists/spring.csv", "serve"])
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(config.campaign, "spring");
        assert_eq!(config.db, Location::Sqlite(PathBuf::from("spring.sqlite")));
        assert_eq!(config.mode, Mode::Serve);
        assert_eq!(
            config.numbers,
            NumberSource::File("/lists/spring.csv".into())
        );
    }

    #[test]
    fn bad_values_name_their_flag_and_variable() {
        for (args, names) in [
            (
                &["--number", "1", "--trunk", "a/b"][..],
                "--trunk (ARI_TRUNK)",
            ),
            (&["--number", "1", "--max-cc", "0"][..], "--max-cc (MAX_CC)"),
            (&["--number", "1", "--cps", "0"][..], "--cps (DIALER_CPS)"),
            (
                &["--number", "1", "--cps", "1e-20"][..],
                "--cps (DIALER_CPS)",
            ),
            (&["--number", "1", "--cps", "NaN"][..], "--cps (DIALER_CPS)"),
            (
                &["--number", "1", "--target-endpoint", "Local/1@x&PJSIP/evil"][..],
                "--target-endpoint (TARGET_ENDPOINT)",
            ),
            (
                &["--number", "1", "--caller-id", "a,b"][..],
                "--caller-id (CALLER_ID)",
            ),
            (&["--number", "1", "--app", "a b"][..], "--app (STASIS_APP)"),
        ] {
            let error = parse(args).unwrap().validate().unwrap_err().to_string();
            assert!(error.contains(names), "{args:?}: {error}");
        }
        let error = parse(&[]).unwrap().validate().unwrap_err().to_string();
        assert!(error.contains("OUTBOUND_NUMBER_FILE"), "{error}");
        for flag in ["--mysql-host", "--mysql-database"] {
            let error = parse(&["--number", "1", flag, "x"])
                .unwrap()
                .validate()
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("MYSQL_HOST") && error.contains("MYSQL_DATABASE"),
                "{flag}: {error}"
            );
        }
        let error = parse(&["--number", "1", "--db", "mysql://u:pw-9@127.0.0.1:1"])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("--db (DIALER_DB)"), "{error}");
        assert!(
            !error.contains("pw-9"),
            "the password is never shown: {error}"
        );
        let error = parse(&["--number", "1", "--db", "postgres://u@127.0.0.1/x"])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("--db (DIALER_DB)"), "{error}");
        let error = parse(&["--number", "1", "--lease-seconds", "1"])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--lease-seconds (DIALER_LEASE_SECONDS)"),
            "{error}"
        );
    }

    #[test]
    fn the_store_is_db_then_database_url_then_the_seeds_mysql_variables() {
        let db = |args: &[&str]| {
            let mut all = vec!["--number", "1"];
            all.extend_from_slice(args);
            parse(&all).unwrap().validate().unwrap().db
        };
        let url = "mysql://dialer:pw@127.0.0.1:3306/calls";
        assert_eq!(
            db(&["--db", url]),
            Location::MySql(MySqlTarget::Url(url.to_owned()))
        );
        assert_eq!(
            db(&["--db", "x.sqlite", "--database-url", url]),
            Location::Sqlite("x.sqlite".into())
        );
        assert_eq!(
            db(&[
                "--database-url",
                url,
                "--mysql-host",
                "127.0.0.1",
                "--mysql-database",
                "y"
            ]),
            Location::MySql(MySqlTarget::Url(url.to_owned()))
        );
        assert_eq!(
            db(&[
                "--mysql-host",
                "127.0.0.1",
                "--mysql-database",
                "calls",
                "--mysql-user",
                "dialer",
                "--mysql-password",
                "pw",
            ]),
            Location::MySql(MySqlTarget::Parts {
                host: "127.0.0.1".into(),
                port: 3306,
                user: "dialer".into(),
                password: Some("pw".into()),
                database: "calls".into(),
            })
        );
        let shown = db(&["--db", url]).to_string();
        assert_eq!(shown, "mysql://dialer:***@127.0.0.1:3306/calls");
    }

    #[test]
    fn dotenv_values_fill_in_but_flags_win() {
        let dir = std::env::temp_dir().join(format!("dialer-dotenv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".env");
        std::fs::write(&path, "MAX_CC=7\nARI_TRUNK=carrier\nCALL_TIMEOUT=9\nDIALER_FORCE_SHORT_RING=1\nDIALER_KEEP_RECORDINGS_ON_ASTERISK=true\nUNRELATED=1\n").unwrap();
        let argv: Vec<OsString> = ["outbound-dialer", "--number", "1", "--call-timeout", "12"]
            .into_iter()
            .map(OsString::from)
            .collect();
        let config = Args::parse_with_dotenv(argv, Some(&path))
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(config.max_cc, 7);
        assert_eq!(config.trunk, "carrier");
        assert_eq!(
            config.call_timeout,
            Duration::from_secs(12),
            "the flag wins over .env"
        );
        assert!(!config.delete_after_download);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!(
            "{:?}",
            parse(&[
                "--ari-password",
                "hunter22",
                "--mysql-password",
                "hunter24",
                "--db",
                "mysql://u:hunter25@127.0.0.1/x"
            ])
            .unwrap()
        );
        assert!(
            !shown.contains("hunter22")
                && !shown.contains("hunter24")
                && !shown.contains("hunter25"),
            "{shown}"
        );
        let config = parse(&[
            "--number",
            "1",
            "--db",
            "mysql://u:hunter23@127.0.0.1:3306/db",
        ])
        .unwrap()
        .validate()
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter23"), "{shown}");
    }
}
