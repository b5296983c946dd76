//! Command-line and environment configuration, validated into a [`Config`].
//!
//! Every option has a flag, an environment variable and a default that reaches the lab
//! of `asterisk_conf/` (ARI on 127.0.0.1:8088 as asterisk/asterisk, the `[inbound]`
//! context sending calls to the Stasis app `voiceai`).
//!
//! # Where a value comes from
//!
//! For each option the first of these that is set (and not blank) wins:
//!
//! 1. its flag on the command line (`--listen 127.0.0.1:9000`);
//! 2. its own variable (`VOICEAI_LISTEN`; for the ARI options ari-client's `ARI_URL`,
//!    `ARI_USERNAME`, `ARI_PASSWORD`);
//! 3. the Node.js service's variable it replaces, so an existing `.env` carries over
//!    ([`SEED_VARIABLES`]: `NODE_SERVER_HOST`/`NODE_SERVER_PORT` for `--listen`,
//!    `ASTERISK_HOST`/`ASTERISK_ARI_PORT` for `--ari-url`, ...);
//! 4. the default.
//!
//! Variables are read from the process environment and from a `.env` file (in the working
//! directory, for the binary): the file only supplies names the environment does not set,
//! exactly as if it had been loaded into the environment; the process environment itself
//! is never modified. A variable set to an empty value counts as not set.
//!
//! Values are checked by [`Args::validate`]; every refusal names the flag and its variable
//! (and the variable the value actually came from, when that is a seed name or `.env`).

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ari_client::cli::AriArgs;
use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _, Parser};
use tracing::level_filters::LevelFilter;

use crate::audio::AudioFormat;
use crate::logging::LogFormat;
use crate::media::MediaKind;
use crate::protocol::ProtocolKind;

/// The file of variables read from the working directory by the binary.
pub const DOTENV_FILE: &str = ".env";

/// The Node.js service's variables that still work, with the flag each one sets. They are
/// read only when neither the flag nor the flag's own variable is given.
///
/// `ASTERISK_HOST` and `ASTERISK_ARI_PORT` together make `--ari-url`
/// (`http://HOST:PORT`; a missing host is 127.0.0.1, a missing port 8088, and a host
/// written with `http://` or `https://` keeps its scheme). `NODE_SERVER_HOST` and
/// `NODE_SERVER_PORT` together make `--listen` (a missing host is 127.0.0.1, a missing
/// port 8090).
pub const SEED_VARIABLES: &[(&str, &str)] = &[
    ("ASTERISK_HOST", "--ari-url"),
    ("ASTERISK_ARI_PORT", "--ari-url"),
    ("ASTERISK_ARI_USERNAME", "--ari-username"),
    ("ASTERISK_ARI_PASSWORD", "--ari-password"),
    ("ASTERISK_APP_NAME", "--app"),
    ("NODE_SERVER_HOST", "--listen"),
    ("NODE_SERVER_PORT", "--listen"),
    ("PYTHON_BACKEND_WS_URL", "--backend-url"),
    ("BACKEND_AUTH_TOKEN", "--auth-token"),
    ("LOG_LEVEL", "--log-level"),
    ("CORS_ORIGINS", "--cors-origins"),
];

/// The variable that refines the log level with `tracing` filter directives.
pub const RUST_LOG: &str = "RUST_LOG";

/// Whether the gateway reads the environment variable `name`: our `VOICEAI_*` names,
/// `ari-client`'s `ARI_*`, the seed's names and [`RUST_LOG`]. Programs that run the
/// gateway (tests, benches) clear these so their own environment cannot leak in.
pub fn reads_variable(name: &str) -> bool {
    name.starts_with("VOICEAI_")
        || name.starts_with("ARI_")
        || name == RUST_LOG
        || SEED_VARIABLES.iter().any(|(seed, _)| *seed == name)
}

/// Default `--twilio-account-sid`: what bots see as `accountSid` and use in the
/// Twilio-compatible REST path (`/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json`).
pub const DEFAULT_ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

/// The dial string of outbound calls by default (`{number}` is the number called).
pub const DEFAULT_ORIGINATE_ENDPOINT: &str = "PJSIP/{number}@trunk";

const DEFAULT_LISTEN_HOST: &str = "127.0.0.1";
const DEFAULT_LISTEN_PORT: u16 = 8090;
const DEFAULT_ARI_HOST: &str = "127.0.0.1";
/// `--call-lease auto` with `--claim-broadcasts`: a killed gateway's calls end within it.
const DEFAULT_BROADCAST_CALL_LEASE: Duration = Duration::from_secs(10);
const DEFAULT_ARI_PORT: u16 = 8088;

/// Characters that would change the meaning of a dial string or a channel variable.
const DIAL_STRING_SPECIALS: [char; 3] = ['&', ',', '|'];

/// Flags as typed by the operator; [`Args::validate`] turns them into a [`Config`].
///
/// Values are kept as text so that [`Args::validate`] can refuse a bad one naming both its
/// flag and its variable.
#[derive(Debug, Parser)]
#[command(
    name = "voiceai-gateway",
    version,
    about = "Bridge inbound Asterisk calls to an AI voice backend",
    long_about = "Bridge inbound Asterisk calls to an AI voice backend.\n\n\
        Each option is read from its flag, else its variable, else the Node.js service's \
        variable (ASTERISK_HOST, NODE_SERVER_PORT, PYTHON_BACKEND_WS_URL, ...), else its \
        default. A .env file in the working directory supplies variables the environment \
        does not set. Durations are written like 500ms, 10s, 2m or 1m30s.",
    args_override_self = true,
    mut_arg("url", |arg| arg.help(
        "ARI base URL (http:// or https://), without /ari; several Asterisk servers: repeat \
         the flag or give a comma list of [NAME=]URL (NAME defaults to HOST:PORT; \
         http://USER:PASSWORD@HOST:PORT overrides the shared credentials; ?app=APP serves \
         another Stasis app on that server)"
    ))
)]
pub struct Args {
    /// How to reach Asterisk's ARI (seed: ASTERISK_HOST + ASTERISK_ARI_PORT,
    /// ASTERISK_ARI_USERNAME, ASTERISK_ARI_PASSWORD).
    #[command(flatten)]
    pub ari: AriArgs,
    /// Stasis application that receives the inbound calls (extensions.conf INBOUND_APP;
    /// seed: ASTERISK_APP_NAME, whose own default was denco_voiceai).
    #[arg(long, env = "VOICEAI_APP", default_value = "voiceai")]
    pub app: String,
    /// Address of the REST API and the event WebSockets (seed: NODE_SERVER_HOST +
    /// NODE_SERVER_PORT).
    #[arg(long, env = "VOICEAI_LISTEN", default_value = "127.0.0.1:8090")]
    pub listen: String,
    /// Bearer token the REST API and WebSockets require (seed: BACKEND_AUTH_TOKEN).
    /// Without one the gateway only listens on a loopback address.
    #[arg(long, env = "VOICEAI_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<Secret>,
    /// Origins allowed to call the REST API from a browser, comma separated, or `*`
    /// (seed: CORS_ORIGINS). Empty: same origin only.
    #[arg(long, env = "VOICEAI_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
    /// WebSocket URL of the AI voice backend, ws:// or wss:// (seed: PYTHON_BACKEND_WS_URL).
    #[arg(
        long,
        env = "VOICEAI_BACKEND_URL",
        default_value = "ws://127.0.0.1:8765/"
    )]
    pub backend_url: String,
    /// Protocol the backend speaks: twilio (Twilio Media Streams) or raw (binary PCM and
    /// JSON control).
    #[arg(long, env = "VOICEAI_BACKEND_PROTOCOL", default_value = "twilio")]
    pub backend_protocol: String,
    /// Audio format of the raw protocol: ulaw, alaw, slin or slin16 (twilio is always
    /// 8 kHz μ-law).
    #[arg(long, env = "VOICEAI_BACKEND_FORMAT", default_value = "slin16")]
    pub backend_format: String,
    /// File mapping dialled numbers to backend URLs.
    #[arg(long, env = "VOICEAI_BACKEND_MAP")]
    pub backend_map: Option<PathBuf>,
    /// Channel variable whose value, when the dialplan sets it, is the call's backend URL.
    #[arg(
        long,
        env = "VOICEAI_BACKEND_URL_VARIABLE",
        default_value = "VOICEAI_BACKEND_URL"
    )]
    pub backend_url_variable: String,
    /// Token sent to the backend as `Authorization: Bearer`.
    #[arg(long, env = "VOICEAI_BACKEND_TOKEN", hide_env_values = true)]
    pub backend_token: Option<Secret>,
    /// How long connecting to the backend may take.
    #[arg(long, env = "VOICEAI_BACKEND_CONNECT_TIMEOUT", default_value = "5s")]
    pub backend_connect_timeout: String,
    /// How long a call waits on hold for an unreachable backend before it goes to the
    /// fallback endpoint.
    #[arg(long, env = "VOICEAI_BACKEND_FAILOVER_AFTER", default_value = "10s")]
    pub backend_failover_after: String,
    /// Where a call goes when its backend stays unreachable (a dial string); `none` hangs
    /// it up instead.
    #[arg(
        long,
        env = "VOICEAI_FALLBACK_ENDPOINT",
        default_value = "Local/777@default"
    )]
    pub fallback_endpoint: String,
    /// Music-on-hold class played while the backend is unreachable; `none` is silence.
    #[arg(long, env = "VOICEAI_HOLD_MUSIC", default_value = "default")]
    pub hold_music: String,
    /// Media transport toward Asterisk: websocket (Asterisk 22.6+), rtp (16.6+) or
    /// audiosocket (18+).
    #[arg(long, env = "VOICEAI_MEDIA", default_value = "websocket")]
    pub media: String,
    /// Audio format toward Asterisk: websocket takes ulaw, alaw or slin16, rtp ulaw or alaw;
    /// audiosocket takes slin or slin16 [default: ulaw, slin for audiosocket].
    #[arg(long, env = "VOICEAI_MEDIA_FORMAT")]
    pub media_format: Option<String>,
    /// Local address of the RTP sockets (sent to Asterisk as the external host).
    #[arg(long, env = "VOICEAI_RTP_ADDRESS", default_value = "127.0.0.1")]
    pub rtp_address: String,
    /// UDP ports of the RTP sockets, FIRST-LAST; one even port per call.
    #[arg(long, env = "VOICEAI_RTP_PORTS", default_value = "40000-40999")]
    pub rtp_ports: String,
    /// TCP address Asterisk's AudioSocket channels connect to.
    #[arg(
        long,
        env = "VOICEAI_AUDIOSOCKET_LISTEN",
        default_value = "127.0.0.1:9093"
    )]
    pub audiosocket_listen: String,
    /// How long setting up a call's media path may take.
    #[arg(long, env = "VOICEAI_MEDIA_CONNECT_TIMEOUT", default_value = "5s")]
    pub media_connect_timeout: String,
    /// Calls handled at once; further calls go back to the dialplan.
    #[arg(long, env = "VOICEAI_MAX_CALLS", default_value = "100")]
    pub max_calls: String,
    /// Claim calls the dialplan offers with StasisBroadcast (CallBroadcast) while there is
    /// room (--max-calls) and the gateway is not draining: several gateways, each with its
    /// own --app (voiceai-a, voiceai-b, ...), share one Asterisk. `--claim-broadcasts`
    /// alone means true.
    #[arg(
        long,
        env = "VOICEAI_CLAIM_BROADCASTS",
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub claim_broadcasts: String,
    /// Keep each call's channels alive for this long at a time (Asterisk's
    /// TIMEOUT(absolute), renewed every third of it), so that the calls of a gateway that
    /// died end within it; 0s: off; auto: 10s with --claim-broadcasts, else off.
    #[arg(long, env = "VOICEAI_CALL_LEASE", default_value = "auto")]
    pub call_lease: String,
    /// On SIGTERM/SIGINT, how long active calls may go on before they are hung up.
    #[arg(long, env = "VOICEAI_DRAIN_TIMEOUT", default_value = "30s")]
    pub drain_timeout: String,
    /// Dial string of outbound AI calls (POST /api/calls/originate); {number} is replaced
    /// by the number.
    #[arg(
        long,
        env = "VOICEAI_ORIGINATE_ENDPOINT",
        default_value = DEFAULT_ORIGINATE_ENDPOINT
    )]
    pub originate_endpoint: String,
    /// How long an originated call may ring.
    #[arg(long, env = "VOICEAI_ORIGINATE_TIMEOUT", default_value = "30s")]
    pub originate_timeout: String,
    /// Caller id of originated calls when the request gives none.
    #[arg(long, env = "VOICEAI_ORIGINATE_CALLER_ID")]
    pub originate_caller_id: Option<String>,
    /// Channel variables passed to the backend with each call, comma separated.
    #[arg(long, env = "VOICEAI_CHANNEL_VARIABLES", default_value = "")]
    pub channel_variables: String,
    /// Dialplan context of transfers to a bare extension.
    #[arg(long, env = "VOICEAI_TRANSFER_CONTEXT", default_value = "default")]
    pub transfer_context: String,
    /// Account SID bots see (`accountSid`) and use with the Twilio-compatible REST endpoint.
    #[arg(
        long,
        env = "VOICEAI_TWILIO_ACCOUNT_SID",
        default_value = DEFAULT_ACCOUNT_SID
    )]
    pub twilio_account_sid: String,
    /// Password of the Twilio-compatible REST endpoint's Basic auth [default: the
    /// --auth-token value].
    #[arg(long, env = "VOICEAI_TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub twilio_auth_token: Option<Secret>,
    /// Ended calls kept in memory for the REST API.
    #[arg(long, env = "VOICEAI_ENDED_CALLS_KEPT", default_value = "1000")]
    pub ended_calls_kept: String,
    /// Record each AI call (caller and AI mixed, a bridge recording) and save it in
    /// --recordings-dir when the call ends; the copy on Asterisk is then deleted. `--record`
    /// alone means true.
    #[arg(
        long,
        env = "VOICEAI_RECORD",
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true",
        value_name = "BOOL"
    )]
    pub record: String,
    /// Directory the recordings are saved in (created if missing; checked writable at
    /// startup when --record is on).
    #[arg(long, env = "VOICEAI_RECORDINGS_DIR", default_value = "./recordings")]
    pub recordings_dir: PathBuf,
    /// File each ended call's summary is appended to, one JSON object a line (SIGHUP
    /// reopens it, for logrotate); unset: no call log.
    #[arg(long, env = "VOICEAI_CALL_LOG")]
    pub call_log: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace (seed: LOG_LEVEL); RUST_LOG, when set,
    /// refines it with tracing directives.
    #[arg(long, env = "VOICEAI_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Log format: human, or json (one object a line) for log shippers.
    #[arg(long, env = "VOICEAI_LOG_FORMAT", default_value = "human")]
    pub log_format: String,
    /// Where each value came from, by flag (filled by [`Args::parse_with_env`]).
    #[arg(skip)]
    pub origins: BTreeMap<String, Origin>,
    /// `RUST_LOG` as [`Args::parse_with_env`] found it.
    #[arg(skip)]
    pub rust_log: Option<String>,
}

/// Where an option's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Its flag on the command line.
    Flag,
    /// A variable (the option's own or a seed name; two names when a pair makes the value).
    Variable {
        /// The variable(s), e.g. `NODE_SERVER_PORT` or `ASTERISK_HOST, ASTERISK_ARI_PORT`.
        name: String,
        /// Whether the value was read from the `.env` file.
        dotenv: bool,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag => f.write_str("the command line"),
            Self::Variable {
                name,
                dotenv: false,
            } => f.write_str(name),
            Self::Variable { name, dotenv: true } => write!(f, "{name} in {DOTENV_FILE}"),
        }
    }
}

/// A value that must not be shown: its `Debug` is `Secret(..)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Secret(value.to_owned()))
    }
}

/// The variables the configuration reads: the process environment, plus a `.env` file's
/// values for names the environment does not set. Never modifies the process environment.
#[derive(Clone, Default)]
pub struct Environment {
    vars: HashMap<String, Var>,
}

#[derive(Clone)]
struct Var {
    /// `None`: set, but not valid UTF-8.
    value: Option<String>,
    dotenv: bool,
}

/// A variable's value and where it was found.
struct Found<'e> {
    value: &'e str,
    name: &'e str,
    dotenv: bool,
}

impl Environment {
    /// The process environment.
    pub fn process() -> Environment {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| {
                let name = name.into_string().ok()?;
                let value = value.into_string().ok();
                Some((
                    name,
                    Var {
                        value,
                        dotenv: false,
                    },
                ))
            })
            .collect();
        Environment { vars }
    }

    /// Exactly these variables (for tests and embedding).
    pub fn from_vars<I, K, V>(vars: I) -> Environment
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(name, value)| {
                (
                    name.into(),
                    Var {
                        value: Some(value.into()),
                        dotenv: false,
                    },
                )
            })
            .collect();
        Environment { vars }
    }

    /// Adds the variables of a `.env` file (dotenvy's syntax) that are not already set.
    /// A missing file adds nothing.
    ///
    /// # Errors
    /// [`ConfigError::DotEnv`] when the file exists but cannot be read or parsed.
    pub fn with_dotenv_file(mut self, path: &Path) -> Result<Environment, ConfigError> {
        let error = |message: String| ConfigError::DotEnv {
            path: path.to_path_buf(),
            message,
        };
        let iter = match dotenvy::from_path_iter(path) {
            Ok(iter) => iter,
            Err(dotenvy::Error::Io(io)) if io.kind() == std::io::ErrorKind::NotFound => {
                return Ok(self);
            }
            Err(e) => return Err(error(e.to_string())),
        };
        for pair in iter {
            let (name, value) = pair.map_err(|e| error(e.to_string()))?;
            self.vars.entry(name).or_insert(Var {
                value: Some(value),
                dotenv: true,
            });
        }
        Ok(self)
    }

    /// A variable's value; `None` when it is unset, blank or not valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .and_then(|var| var.value.as_deref())
            .filter(|value| !value.trim().is_empty())
    }

    fn find<'e>(&'e self, name: &'e str) -> Result<Option<Found<'e>>, ConfigError> {
        match self.vars.get(name) {
            None => Ok(None),
            Some(Var { value: None, .. }) => Err(ConfigError::NotUnicode {
                name: name.to_owned(),
            }),
            Some(Var {
                value: Some(value),
                dotenv,
            }) if !value.trim().is_empty() => Ok(Some(Found {
                value,
                name,
                dotenv: *dotenv,
            })),
            Some(_) => Ok(None),
        }
    }
}

impl fmt::Debug for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Names only: values may be secrets.
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Environment")
            .field("names", &names)
            .finish()
    }
}

/// Why the command line, the environment or `.env` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// A bad flag, or `--help`/`--version`: clap's own message (`error.exit()` prints it).
    #[error(transparent)]
    Clap(clap::Error),
    /// A variable or `.env` that cannot be read.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

impl Args {
    /// Parses `argv` (program name first) with the process environment and, when `dotenv`
    /// names an existing file, its variables. What `main` calls:
    /// `Args::parse_with_dotenv(std::env::args_os(), Some(Path::new(DOTENV_FILE)))`.
    ///
    /// # Errors
    /// See [`Args::parse_with_env`]; also a malformed `.env`.
    pub fn parse_with_dotenv<I, T>(argv: I, dotenv: Option<&Path>) -> Result<Args, ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        let mut env = Environment::process();
        if let Some(path) = dotenv {
            env = env.with_dotenv_file(path)?;
        }
        Args::parse_with_env(argv, &env)
    }

    /// Parses `argv` (program name first) reading variables from `env` only, never from the
    /// process environment: flag, else the option's variable, else its seed variable(s),
    /// else the default.
    ///
    /// # Errors
    /// clap's error for an unknown flag or `--help`; a variable that is not UTF-8; a seed
    /// port that is not a port.
    pub fn parse_with_env<I, T>(argv: I, env: &Environment) -> Result<Args, ParseError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        // `--ari-url` may be repeated: one list for clap, which keeps only the last value.
        let argv =
            crate::ari_servers::merge_repeated_urls(argv.into_iter().map(Into::into).collect());
        // clap reads the process environment itself; this command does not, so that
        // `env` is the only source of variables.
        let without_env = || Args::command().mut_args(|arg| arg.env(None::<&'static str>));
        let explicit = match without_env().try_get_matches_from(&argv) {
            Ok(matches) => matches,
            Err(error) => return Err(ParseError::Clap(with_env_help(&argv, error))),
        };
        let command = Args::command();
        let mut origins = BTreeMap::new();
        let mut from_env = Vec::new();
        for arg in command.get_arguments() {
            let (Some(long), Some(own)) = (arg.get_long(), arg.get_env()) else {
                continue;
            };
            if explicit.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
                origins.insert(long.to_owned(), Origin::Flag);
                continue;
            }
            let own = own.to_string_lossy();
            let resolved = match env.find(&own)? {
                Some(found) => Some((
                    found.value.to_owned(),
                    Origin::Variable {
                        name: found.name.to_owned(),
                        dotenv: found.dotenv,
                    },
                )),
                None => seed_value(long, env)?,
            };
            if let Some((value, origin)) = resolved {
                let mut flag = OsString::from(format!("--{long}="));
                flag.push(value);
                from_env.push(flag);
                origins.insert(long.to_owned(), origin);
            }
        }
        // Variables become flags placed before the operator's own (which are never
        // duplicated: an option given on the command line is not looked up).
        let mut argv = argv.into_iter();
        let program = argv.next().unwrap_or_else(|| "voiceai-gateway".into());
        let all = std::iter::once(program).chain(from_env).chain(argv);
        let matches = without_env()
            .try_get_matches_from(all)
            .map_err(ParseError::Clap)?;
        let mut args = Args::from_arg_matches(&matches).map_err(ParseError::Clap)?;
        args.origins = origins;
        args.rust_log = env.get(RUST_LOG).map(str::to_owned);
        Ok(args)
    }
}

/// `--help` rendered by the command that lists the variables.
fn with_env_help(argv: &[OsString], error: clap::Error) -> clap::Error {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Args::command()
                .try_get_matches_from(argv)
                .err()
                .unwrap_or(error)
        }
        _ => error,
    }
}

/// The value a seed variable (or pair) gives the flag `long`, if any.
fn seed_value(long: &str, env: &Environment) -> Result<Option<(String, Origin)>, ConfigError> {
    let single = |name: &'static str| -> Result<Option<(String, Origin)>, ConfigError> {
        Ok(env.find(name)?.map(|found| {
            (
                found.value.to_owned(),
                Origin::Variable {
                    name: name.to_owned(),
                    dotenv: found.dotenv,
                },
            )
        }))
    };
    match long {
        "ari-url" => {
            let (host, port) = (env.find("ASTERISK_HOST")?, env.find("ASTERISK_ARI_PORT")?);
            host_and_port(host, port, DEFAULT_ARI_HOST, DEFAULT_ARI_PORT).map(|found| {
                found.map(|(host, port, origin)| {
                    let (scheme, host) = match host.split_once("://") {
                        Some((scheme, rest)) => (scheme.to_owned(), rest.to_owned()),
                        None => ("http".to_owned(), host),
                    };
                    let host = host.trim_end_matches('/');
                    (format!("{scheme}://{}:{port}", bracket(host)), origin)
                })
            })
        }
        "listen" => {
            let (host, port) = (env.find("NODE_SERVER_HOST")?, env.find("NODE_SERVER_PORT")?);
            host_and_port(host, port, DEFAULT_LISTEN_HOST, DEFAULT_LISTEN_PORT).map(|found| {
                found.map(|(host, port, origin)| (format!("{}:{port}", bracket(&host)), origin))
            })
        }
        "ari-username" => single("ASTERISK_ARI_USERNAME"),
        "ari-password" => single("ASTERISK_ARI_PASSWORD"),
        "app" => single("ASTERISK_APP_NAME"),
        "backend-url" => single("PYTHON_BACKEND_WS_URL"),
        "auth-token" => single("BACKEND_AUTH_TOKEN"),
        "log-level" => single("LOG_LEVEL"),
        "cors-origins" => single("CORS_ORIGINS"),
        _ => Ok(None),
    }
}

/// A host and port made of a seed pair, either of which may be missing.
fn host_and_port(
    host: Option<Found<'_>>,
    port: Option<Found<'_>>,
    default_host: &str,
    default_port: u16,
) -> Result<Option<(String, u16, Origin)>, ConfigError> {
    if host.is_none() && port.is_none() {
        return Ok(None);
    }
    let number = match &port {
        None => default_port,
        Some(found) => match found.value.trim().parse::<u16>() {
            Ok(number) if number > 0 => number,
            _ => {
                return Err(ConfigError::Variable {
                    name: found.name.to_owned(),
                    problem: "must be a port number 1..=65535".to_owned(),
                    value: found.value.to_owned(),
                });
            }
        },
    };
    let names: Vec<&str> = host.iter().chain(port.iter()).map(|f| f.name).collect();
    let origin = Origin::Variable {
        name: names.join(", "),
        dotenv: host.iter().chain(port.iter()).any(|f| f.dotenv),
    };
    let host = host.map_or(default_host, |found| found.value.trim());
    Ok(Some((host.to_owned(), number, origin)))
}

/// An IPv6 address in brackets, so that a port can follow it.
fn bracket(host: &str) -> String {
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// Validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// How to reach ARI (`Debug` hides the password; `credentials()` gives it).
    pub ari: AriArgs,
    /// Host and port of `ari.url`, for `GET /api/asterisk/status`.
    pub ari_endpoint: AriEndpoint,
    /// The Asterisk servers (every `--ari-url`; `ari` is the first) and how gateways
    /// share them.
    pub cluster: ClusterConfig,
    /// Stasis application name.
    pub app: String,
    /// REST API and event WebSockets.
    pub api: ApiConfig,
    /// The AI backend.
    pub backend: BackendConfig,
    /// The Twilio-compatible identity and REST endpoint.
    pub twilio: TwilioConfig,
    /// Media toward Asterisk.
    pub media: MediaConfig,
    /// Call handling.
    pub calls: CallsConfig,
    /// Outbound AI calls.
    pub originate: OriginateConfig,
    /// Logging.
    pub log: LogConfig,
    /// Recordings and the call log.
    pub call_data: CallDataConfig,
}

/// What is kept of each call: its recording and its line in the call log.
#[derive(Debug, Clone)]
pub struct CallDataConfig {
    /// Whether calls are recorded.
    pub record: bool,
    /// Where recordings are saved.
    pub recordings_dir: PathBuf,
    /// The call log file; `None`: no call log.
    pub call_log: Option<PathBuf>,
}

/// The Asterisk servers, and how several gateways share one.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Every `--ari-url`, in order (at least one).
    pub servers: Vec<crate::ari_servers::AriServer>,
    /// Claim `StasisBroadcast` calls (`--claim-broadcasts`).
    pub claim_broadcasts: bool,
    /// `--call-lease`; `None`: off.
    pub call_lease: Option<Duration>,
}

/// Host and port of the ARI URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AriEndpoint {
    /// Host name or address, without brackets.
    pub host: String,
    /// Port (80/443 when the URL gives none).
    pub port: u16,
}

/// REST API and event WebSockets.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Listening address.
    pub listen: SocketAddr,
    /// Bearer token required on every route but `/health` and `/ready`; `None`: no auth
    /// (only allowed on a loopback address).
    pub auth_token: Option<Secret>,
    /// Allowed browser origins (`*` allows any); empty: same origin only.
    pub cors_origins: Vec<String>,
}

/// The AI backend.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// Protocol spoken.
    pub protocol: ProtocolKind,
    /// Default URL (ws:// or wss://).
    pub default_url: String,
    /// File mapping dialled numbers to URLs (parsed by the backend module).
    pub map_file: Option<PathBuf>,
    /// Channel variable that overrides the URL per call.
    pub url_variable: String,
    /// Bearer token sent to the backend.
    pub auth_token: Option<Secret>,
    /// Audio format of the raw protocol.
    pub raw_format: AudioFormat,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Time on hold before the call fails over.
    pub failover_after: Duration,
}

/// The Twilio-compatible identity and REST endpoint.
#[derive(Debug, Clone)]
pub struct TwilioConfig {
    /// `accountSid` in `start`, and the SID of the REST path.
    pub account_sid: String,
    /// Basic auth password of the REST endpoint (defaults to the API's token); `None`: no
    /// auth, as for the rest of the API.
    pub auth_token: Option<Secret>,
}

/// Media toward Asterisk.
#[derive(Debug, Clone)]
pub struct MediaConfig {
    /// Transport.
    pub transport: MediaKind,
    /// Format of the media leg (valid for the transport).
    pub format: AudioFormat,
    /// Local address of RTP sockets.
    pub rtp_address: IpAddr,
    /// UDP port range for RTP (starts on an even port).
    pub rtp_ports: RangeInclusive<u16>,
    /// AudioSocket TCP listener.
    pub audiosocket_listen: SocketAddr,
    /// How long setting up the media path may take.
    pub connect_timeout: Duration,
}

/// Call handling.
#[derive(Debug, Clone)]
pub struct CallsConfig {
    /// Calls at once; more go back to the dialplan.
    pub max_calls: u32,
    /// How long active calls may go on at shutdown.
    pub drain_timeout: Duration,
    /// Where calls go when the backend stays unreachable; `None`: hang up.
    pub fallback_endpoint: Option<String>,
    /// Music-on-hold class while waiting for the backend; `None`: silence.
    pub hold_music: Option<String>,
    /// Channel variables passed to the backend.
    pub channel_variables: Vec<String>,
    /// Context of transfers to a bare extension.
    pub transfer_context: String,
    /// Ended calls kept for the API.
    pub ended_calls_kept: usize,
}

/// Outbound AI calls.
#[derive(Debug, Clone)]
pub struct OriginateConfig {
    /// Dial string template containing `{number}`.
    pub endpoint: String,
    /// Ring timeout.
    pub timeout: Duration,
    /// Default caller id.
    pub caller_id: Option<String>,
}

impl OriginateConfig {
    /// The dial string for `number` (which the caller has validated).
    pub fn endpoint_for(&self, number: &str) -> String {
        self.endpoint.replace("{number}", number)
    }
}

/// Logging.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// Level of everything RUST_LOG does not refine.
    pub level: LevelFilter,
    /// Line format.
    pub format: LogFormat,
    /// `RUST_LOG` directives, checked.
    pub directives: Option<String>,
}

/// A configuration value that cannot work, named with the flag and variable that carry it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A value that cannot work.
    #[error("{flag} ({env}): {problem}, got {got}{from}")]
    Invalid {
        /// The flag.
        flag: String,
        /// Its variable.
        env: String,
        /// What is wrong.
        problem: String,
        /// The value as given (quoted), or a note that it is secret.
        got: String,
        /// ` (from NAME)` when a seed variable or `.env` gave the value, else empty.
        from: String,
    },
    /// No token, and an address others can reach.
    #[error(
        "--listen (VOICEAI_LISTEN) is {listen}, which is not a loopback address, and no \
         --auth-token (VOICEAI_AUTH_TOKEN or BACKEND_AUTH_TOKEN) is set: anyone who can \
         reach it could control calls; set a token or listen on 127.0.0.1"
    )]
    NoAuthToken {
        /// The address.
        listen: SocketAddr,
    },
    /// A variable read outside any flag (a seed port, `RUST_LOG`).
    #[error("{name}: {problem}, got {value:?}")]
    Variable {
        /// The variable.
        name: String,
        /// What is wrong.
        problem: String,
        /// Its value.
        value: String,
    },
    /// A variable that is not valid UTF-8.
    #[error("{name}: the value is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        name: String,
    },
    /// The `.env` file cannot be read or parsed.
    #[error("{}: {message}", path.display())]
    DotEnv {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// Builds errors that name a flag, its variable and the value's origin.
struct Checker<'a> {
    envs: HashMap<String, String>,
    origins: &'a BTreeMap<String, Origin>,
}

impl Checker<'_> {
    fn invalid(&self, long: &str, problem: impl Into<String>, value: &str) -> ConfigError {
        self.error(long, problem, format!("{value:?}"))
    }

    fn invalid_secret(&self, long: &str, problem: impl Into<String>) -> ConfigError {
        self.error(long, problem, "a value (not shown)".to_owned())
    }

    fn error(&self, long: &str, problem: impl Into<String>, got: String) -> ConfigError {
        let env = self.envs.get(long).cloned().unwrap_or_default();
        let from = match self.origins.get(long) {
            Some(origin @ Origin::Variable { name, dotenv }) if *name != env || *dotenv => {
                format!(" (from {origin})")
            }
            _ => String::new(),
        };
        ConfigError::Invalid {
            flag: format!("--{long}"),
            env,
            problem: problem.into(),
            got,
            from,
        }
    }

    fn duration(
        &self,
        long: &str,
        value: &str,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration, ConfigError> {
        let problem = || {
            format!(
                "must be a duration from {} to {} such as 500ms, 10s or 2m",
                show_duration(*range.start()),
                show_duration(*range.end())
            )
        };
        match parse_duration(value) {
            Some(duration) if range.contains(&duration) => Ok(duration),
            _ => Err(self.invalid(long, problem(), value)),
        }
    }

    fn number<T: FromStr + PartialOrd + fmt::Display>(
        &self,
        long: &str,
        value: &str,
        range: RangeInclusive<T>,
    ) -> Result<T, ConfigError> {
        match value.trim().parse::<T>() {
            Ok(number) if range.contains(&number) => Ok(number),
            Ok(number) if number < *range.start() => {
                Err(self.invalid(long, format!("must be at least {}", range.start()), value))
            }
            Ok(_) => Err(self.invalid(long, format!("must be at most {}", range.end()), value)),
            Err(_) => Err(self.invalid(
                long,
                format!("must be a whole number {}..={}", range.start(), range.end()),
                value,
            )),
        }
    }

    fn socket_addr(&self, long: &str, value: &str) -> Result<SocketAddr, ConfigError> {
        let value_trimmed = value.trim();
        // The seed's NODE_SERVER_HOST is often `localhost`.
        let text = match value_trimmed.strip_prefix("localhost:") {
            Some(port) => format!("127.0.0.1:{port}"),
            None => value_trimmed.to_owned(),
        };
        text.parse().map_err(|_| {
            self.invalid(
                long,
                "must be an IP address (or localhost) and port such as 127.0.0.1:8090 or [::1]:8090",
                value,
            )
        })
    }

    fn token(&self, long: &str, token: Option<Secret>) -> Result<Option<Secret>, ConfigError> {
        match token {
            Some(token) if token.0.trim().is_empty() => Ok(None),
            Some(token)
                if !token.0.bytes().all(|b| b.is_ascii_graphic()) || token.0.len() > 4096 =>
            {
                Err(self.invalid_secret(
                    long,
                    "must be at most 4096 visible ASCII characters, without spaces",
                ))
            }
            other => Ok(other),
        }
    }

    fn dial_string(&self, long: &str, value: &str) -> Result<(), ConfigError> {
        if !value.contains('/')
            || value.len() > 200
            || value.contains(DIAL_STRING_SPECIALS)
            || value.contains(|c: char| c.is_whitespace() || c.is_control())
        {
            return Err(self.invalid(
                long,
                "must be one dial string like Local/777@default or PJSIP/agent, without & , | or spaces",
                value,
            ));
        }
        Ok(())
    }
}

impl Args {
    /// Checks every value and builds the [`Config`].
    ///
    /// # Errors
    /// The first value that cannot work, naming its flag and variable.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let command = Args::command();
        let envs = command
            .get_arguments()
            .filter_map(|arg| {
                Some((
                    arg.get_long()?.to_owned(),
                    arg.get_env()?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        let check = Checker {
            envs,
            origins: &self.origins,
        };

        let servers = crate::ari_servers::parse(
            &self.ari.url,
            &self.app,
            &self.ari.username,
            &Secret::new(self.ari.password.clone()),
        )
        .map_err(|refusal| check.invalid("ari-url", refusal.problem, &refusal.shown))?;
        let ari_endpoint = servers[0].endpoint.clone();
        // The first server stands for "the" ARI where one is shown (status, logs).
        let mut ari = self.ari.clone();
        ari.url = servers[0].url.clone();
        let claim_broadcasts = match self.claim_broadcasts.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                return Err(check.invalid(
                    "claim-broadcasts",
                    "must be true or false (or 1/0, yes/no, on/off)",
                    &self.claim_broadcasts,
                ));
            }
        };
        // Active-active gateways lease their calls by default: a dead one's calls end.
        let call_lease = if self.call_lease.trim().eq_ignore_ascii_case("auto") {
            if claim_broadcasts {
                DEFAULT_BROADCAST_CALL_LEASE
            } else {
                Duration::ZERO
            }
        } else {
            check.duration(
                "call-lease",
                &self.call_lease,
                Duration::ZERO..=Duration::from_secs(3600),
            )?
        };
        if !call_lease.is_zero() && call_lease < Duration::from_secs(3) {
            return Err(check.invalid(
                "call-lease",
                "must be auto, 0s (off) or at least 3s",
                &self.call_lease,
            ));
        }
        if self.ari.username.trim().is_empty() || self.ari.username.contains(':') {
            return Err(check.invalid(
                "ari-username",
                "must be a non-empty ari.conf user name without ':'",
                &self.ari.username,
            ));
        }
        if self.app.is_empty()
            || self.app.len() > 80
            || self
                .app
                .contains(|c: char| ",/?&#%:;=".contains(c) || c.is_whitespace() || c.is_control())
        {
            return Err(check.invalid(
                "app",
                "must be a Stasis application name of at most 80 characters, without spaces or , / ? & # % : ; =",
                &self.app,
            ));
        }

        // API.
        let listen = check.socket_addr("listen", &self.listen)?;
        let auth_token = check.token("auth-token", self.auth_token)?;
        if auth_token.is_none() && !listen.ip().is_loopback() {
            return Err(ConfigError::NoAuthToken { listen });
        }
        let cors_origins = comma_list(&self.cors_origins)
            .map(|origin| origin.trim_end_matches('/').to_owned())
            .collect::<Vec<_>>();
        for origin in &cors_origins {
            let ok = origin == "*"
                || (origin.starts_with("http://") || origin.starts_with("https://"))
                    && !origin.contains(char::is_whitespace)
                    && origin
                        .split_once("://")
                        .is_some_and(|(_, rest)| !rest.is_empty() && !rest.contains('/'));
            if !ok {
                return Err(check.invalid(
                    "cors-origins",
                    format!(
                        "each origin must be * or scheme://host[:port] such as http://localhost:3000 ({origin:?} is not)"
                    ),
                    &self.cors_origins,
                ));
            }
        }

        // Backend.
        let protocol: ProtocolKind = self.backend_protocol.trim().parse().map_err(|_| {
            check.invalid(
                "backend-protocol",
                "must be twilio or raw",
                &self.backend_protocol,
            )
        })?;
        let raw_format: AudioFormat = self.backend_format.trim().parse().map_err(|_| {
            check.invalid(
                "backend-format",
                "must be ulaw, alaw, slin or slin16",
                &self.backend_format,
            )
        })?;
        let default_url = self.backend_url.trim().to_owned();
        if !is_ws_url(&default_url) {
            return Err(check.invalid(
                "backend-url",
                "must be a ws:// or wss:// URL such as ws://127.0.0.1:8765/",
                &self.backend_url,
            ));
        }
        let map_file = self.backend_map.filter(|path| !path.as_os_str().is_empty());
        if !is_variable_name(&self.backend_url_variable) {
            return Err(check.invalid(
                "backend-url-variable",
                "must be a channel variable name (letters, digits, _)",
                &self.backend_url_variable,
            ));
        }
        let backend_token = check.token("backend-token", self.backend_token)?;
        let backend_connect_timeout = check.duration(
            "backend-connect-timeout",
            &self.backend_connect_timeout,
            Duration::from_millis(100)..=Duration::from_secs(600),
        )?;
        let failover_after = check.duration(
            "backend-failover-after",
            &self.backend_failover_after,
            Duration::ZERO..=Duration::from_secs(3600),
        )?;

        // Twilio.
        let account_sid = self.twilio_account_sid.trim().to_owned();
        if account_sid.is_empty()
            || account_sid.len() > 64
            || !account_sid.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(check.invalid(
                "twilio-account-sid",
                "must be 1..=64 letters and digits, like AC followed by 32 hex digits",
                &self.twilio_account_sid,
            ));
        }
        let twilio_auth_token = check
            .token("twilio-auth-token", self.twilio_auth_token)?
            .or_else(|| auth_token.clone());

        // Media.
        let transport: MediaKind = self.media.trim().parse().map_err(|_| {
            check.invalid(
                "media",
                "must be websocket, rtp or audiosocket",
                &self.media,
            )
        })?;
        let format = match self.media_format.as_deref().map(str::trim) {
            None | Some("") => transport.default_format(),
            Some(name) => {
                let allowed = transport.formats();
                let names: Vec<&str> = allowed.iter().map(|f| f.as_str()).collect();
                let problem = format!("--media {transport} takes {}", names.join(", "));
                let format: AudioFormat = name
                    .parse()
                    .map_err(|_| check.invalid("media-format", problem.clone(), name))?;
                if !allowed.contains(&format) {
                    return Err(check.invalid("media-format", problem, name));
                }
                format
            }
        };
        let rtp_address: IpAddr = self.rtp_address.trim().parse().map_err(|_| {
            check.invalid(
                "rtp-address",
                "must be an IP address such as 127.0.0.1",
                &self.rtp_address,
            )
        })?;
        if rtp_address.is_unspecified() || rtp_address.is_multicast() {
            return Err(check.invalid(
                "rtp-address",
                "must be the address Asterisk sends RTP to, not a wildcard or multicast address",
                &self.rtp_address,
            ));
        }
        let rtp_ports = parse_port_range(&self.rtp_ports).ok_or_else(|| {
            check.invalid(
                "rtp-ports",
                "must be FIRST-LAST with an even FIRST, 1 <= FIRST <= LAST <= 65535, such as 40000-40999",
                &self.rtp_ports,
            )
        })?;
        let audiosocket_listen =
            check.socket_addr("audiosocket-listen", &self.audiosocket_listen)?;
        let media_connect_timeout = check.duration(
            "media-connect-timeout",
            &self.media_connect_timeout,
            Duration::from_millis(100)..=Duration::from_secs(600),
        )?;

        // Calls.
        let max_calls = check.number("max-calls", &self.max_calls, 1..=100_000)?;
        if transport == MediaKind::Rtp {
            let even_ports = (u32::from(*rtp_ports.end()) - u32::from(*rtp_ports.start())) / 2 + 1;
            if even_ports < max_calls {
                return Err(check.invalid(
                    "rtp-ports",
                    format!(
                        "has {even_ports} even ports, fewer than --max-calls {max_calls} (one port per call)"
                    ),
                    &self.rtp_ports,
                ));
            }
        }
        if transport == MediaKind::Audiosocket && audiosocket_listen == listen && listen.port() != 0
        {
            return Err(check.invalid(
                "audiosocket-listen",
                "must differ from --listen",
                &self.audiosocket_listen,
            ));
        }
        let drain_timeout = check.duration(
            "drain-timeout",
            &self.drain_timeout,
            Duration::ZERO..=Duration::from_secs(24 * 3600),
        )?;
        let fallback_endpoint = match self.fallback_endpoint.trim() {
            none if none.eq_ignore_ascii_case("none") => None,
            endpoint => {
                check.dial_string("fallback-endpoint", endpoint)?;
                Some(endpoint.to_owned())
            }
        };
        let hold_music = match self.hold_music.trim() {
            none if none.eq_ignore_ascii_case("none") => None,
            class if is_name(class) => Some(class.to_owned()),
            _ => {
                return Err(check.invalid(
                    "hold-music",
                    "must be a musiconhold.conf class (letters, digits, - _) or none",
                    &self.hold_music,
                ));
            }
        };
        let channel_variables: Vec<String> = comma_list(&self.channel_variables)
            .map(str::to_owned)
            .collect();
        if let Some(bad) = channel_variables
            .iter()
            .find(|name| !is_channel_variable(name))
        {
            return Err(check.invalid(
                "channel-variables",
                format!(
                    "must be channel variable names separated by commas, such as ACCOUNT_ID,CALLERID(name) ({bad:?} is not one)"
                ),
                &self.channel_variables,
            ));
        }
        let transfer_context = self.transfer_context.trim().to_owned();
        if !is_name(&transfer_context) {
            return Err(check.invalid(
                "transfer-context",
                "must be a dialplan context name (letters, digits, - _)",
                &self.transfer_context,
            ));
        }
        let ended_calls_kept =
            check.number("ended-calls-kept", &self.ended_calls_kept, 0..=1_000_000)?;

        // Originate.
        let endpoint = self.originate_endpoint.trim().to_owned();
        if !endpoint.contains("{number}") {
            return Err(check.invalid(
                "originate-endpoint",
                "must contain {number}, such as PJSIP/{number}@trunk",
                &self.originate_endpoint,
            ));
        }
        check.dial_string("originate-endpoint", &endpoint)?;
        let originate_timeout = check.duration(
            "originate-timeout",
            &self.originate_timeout,
            Duration::from_secs(1)..=Duration::from_secs(600),
        )?;
        let caller_id = match self.originate_caller_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(id)
                if id.len() <= 80
                    && !id.contains(DIAL_STRING_SPECIALS)
                    && !id.contains(char::is_control) =>
            {
                Some(id.to_owned())
            }
            Some(id) => {
                return Err(check.invalid(
                    "originate-caller-id",
                    "must be at most 80 characters without & , | or control characters",
                    id,
                ));
            }
        };

        // Recordings and the call log.
        let record = match self.record.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => true,
            "false" | "0" | "no" | "off" => false,
            _ => {
                return Err(check.invalid(
                    "record",
                    "must be true or false (or 1/0, yes/no, on/off)",
                    &self.record,
                ));
            }
        };
        if self.recordings_dir.as_os_str().is_empty() {
            return Err(check.invalid("recordings-dir", "must be a directory path", ""));
        }
        let call_log = self.call_log.filter(|path| !path.as_os_str().is_empty());

        // Logging.
        let level = parse_level(&self.log_level).ok_or_else(|| {
            check.invalid(
                "log-level",
                "must be error, warn, info, debug, trace or off",
                &self.log_level,
            )
        })?;
        let log_format: LogFormat =
            self.log_format.trim().parse().map_err(|_| {
                check.invalid("log-format", "must be human or json", &self.log_format)
            })?;
        let directives = self.rust_log.filter(|d| !d.trim().is_empty());
        if let Some(directives) = &directives {
            if let Err(error) = crate::logging::filter(level, Some(directives)) {
                return Err(ConfigError::Variable {
                    name: RUST_LOG.to_owned(),
                    problem: format!("must be tracing filter directives ({error})"),
                    value: directives.clone(),
                });
            }
        }

        Ok(Config {
            ari,
            ari_endpoint,
            cluster: ClusterConfig {
                servers,
                claim_broadcasts,
                call_lease: (!call_lease.is_zero()).then_some(call_lease),
            },
            app: self.app,
            api: ApiConfig {
                listen,
                auth_token,
                cors_origins,
            },
            backend: BackendConfig {
                protocol,
                default_url,
                map_file,
                url_variable: self.backend_url_variable,
                auth_token: backend_token,
                raw_format,
                connect_timeout: backend_connect_timeout,
                failover_after,
            },
            twilio: TwilioConfig {
                account_sid,
                auth_token: twilio_auth_token,
            },
            media: MediaConfig {
                transport,
                format,
                rtp_address,
                rtp_ports,
                audiosocket_listen,
                connect_timeout: media_connect_timeout,
            },
            calls: CallsConfig {
                max_calls,
                drain_timeout,
                fallback_endpoint,
                hold_music,
                channel_variables,
                transfer_context,
                ended_calls_kept,
            },
            originate: OriginateConfig {
                endpoint,
                timeout: originate_timeout,
                caller_id,
            },
            log: LogConfig {
                level,
                format: log_format,
                directives,
            },
            call_data: CallDataConfig {
                record,
                recordings_dir: self.recordings_dir,
                call_log,
            },
        })
    }
}

/// Parses `500ms`, `10s`, `2m`, `1h`, `1m30s` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok().map(Duration::from_secs);
    }
    let mut rest = text;
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest[..unit_len].trim();
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" | "sec" | "secs" => Duration::from_secs(number),
            "m" | "min" | "mins" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    Some(total)
}

fn show_duration(duration: Duration) -> String {
    if duration.subsec_millis() != 0 || duration.is_zero() {
        format!("{}ms", duration.as_millis())
    } else if duration.as_secs() % 3600 == 0 {
        format!("{}h", duration.as_secs() / 3600)
    } else if duration.as_secs() % 60 == 0 {
        format!("{}m", duration.as_secs() / 60)
    } else {
        format!("{}s", duration.as_secs())
    }
}

fn parse_level(level: &str) -> Option<LevelFilter> {
    let level = level.trim().to_ascii_lowercase();
    match level.as_str() {
        "off" => Some(LevelFilter::OFF),
        "error" => Some(LevelFilter::ERROR),
        "warn" | "warning" => Some(LevelFilter::WARN),
        "info" => Some(LevelFilter::INFO),
        "debug" => Some(LevelFilter::DEBUG),
        "trace" => Some(LevelFilter::TRACE),
        _ => None,
    }
}

/// `FIRST-LAST`, FIRST even and not 0, FIRST <= LAST.
fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let (first, last) = text.trim().split_once('-')?;
    let first: u16 = first.trim().parse().ok()?;
    let last: u16 = last.trim().parse().ok()?;
    (first != 0 && first % 2 == 0 && first <= last).then_some(first..=last)
}

/// Host and port of an http(s) URL, or `None` if it is not one.
pub(crate) fn ari_endpoint(url: &str) -> Option<AriEndpoint> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    if url.contains(|c: char| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return None;
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':')?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() || (host.contains(':') && !authority.starts_with('[')) {
        return None;
    }
    let port = match port {
        None => default_port,
        Some(port) => port.parse::<u16>().ok().filter(|port| *port != 0)?,
    };
    Some(AriEndpoint {
        host: host.to_owned(),
        port,
    })
}

fn is_ws_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
    else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty() && !url.contains(|c: char| c.is_whitespace() || c.is_control())
}

/// Letters, digits, `-` and `_`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A variable name: letters, digits and `_`, not starting with a digit.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A variable name, or a dialplan function reading one such as `CALLERID(name)`.
fn is_channel_variable(name: &str) -> bool {
    match name.split_once('(') {
        None => is_variable_name(name),
        Some((function, rest)) => {
            is_variable_name(function)
                && rest.strip_suffix(')').is_some_and(|argument| {
                    argument
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
                })
        }
    }
}

/// The non-blank items of a comma-separated list, trimmed.
fn comma_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variable_the_gateway_reads_is_recognised() {
        for name in [
            "VOICEAI_MAX_CALLS",
            "ARI_URL",
            "RUST_LOG",
            "PYTHON_BACKEND_WS_URL",
        ] {
            assert!(reads_variable(name), "{name}");
        }
        for (seed, _) in SEED_VARIABLES {
            assert!(reads_variable(seed), "{seed}");
        }
        assert!(!reads_variable("PATH"));
        assert!(!reads_variable("HOME"));
    }

    fn env(vars: &[(&str, &str)]) -> Environment {
        Environment::from_vars(vars.iter().copied())
    }

    fn parse_in(args: &[&str], vars: &[(&str, &str)]) -> Args {
        let argv = std::iter::once("voiceai-gateway").chain(args.iter().copied());
        Args::parse_with_env(argv, &env(vars)).unwrap()
    }

    fn valid(args: &[&str], vars: &[(&str, &str)]) -> Config {
        parse_in(args, vars).validate().unwrap()
    }

    fn refusal(args: &[&str], vars: &[(&str, &str)]) -> String {
        parse_in(args, vars).validate().unwrap_err().to_string()
    }

    #[test]
    fn defaults_reach_the_lab() {
        let config = valid(&[], &[]);
        assert_eq!(config.ari.url, "http://127.0.0.1:8088");
        assert_eq!(config.ari.username, "asterisk");
        assert_eq!(config.ari.password, "asterisk");
        assert_eq!(
            config.ari_endpoint,
            AriEndpoint {
                host: "127.0.0.1".into(),
                port: 8088
            }
        );
        assert_eq!(config.app, "voiceai", "asterisk_conf INBOUND_APP");
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:8090");
        assert!(config.api.auth_token.is_none());
        assert!(config.api.cors_origins.is_empty());
        assert_eq!(config.backend.protocol, ProtocolKind::Twilio);
        assert_eq!(config.backend.default_url, "ws://127.0.0.1:8765/");
        assert_eq!(config.backend.raw_format, AudioFormat::Slin16);
        assert_eq!(config.backend.url_variable, "VOICEAI_BACKEND_URL");
        assert!(config.backend.map_file.is_none());
        assert!(config.backend.auth_token.is_none());
        assert_eq!(config.backend.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.backend.failover_after, Duration::from_secs(10));
        assert_eq!(config.twilio.account_sid, DEFAULT_ACCOUNT_SID);
        assert!(config.twilio.auth_token.is_none());
        assert_eq!(config.media.transport, MediaKind::Websocket);
        assert_eq!(config.media.format, AudioFormat::Ulaw);
        assert_eq!(config.media.rtp_address.to_string(), "127.0.0.1");
        assert_eq!(config.media.rtp_ports, 40000..=40999);
        assert_eq!(
            config.media.audiosocket_listen.to_string(),
            "127.0.0.1:9093"
        );
        assert_eq!(config.media.connect_timeout, Duration::from_secs(5));
        assert_eq!(config.calls.max_calls, 100);
        assert_eq!(config.calls.drain_timeout, Duration::from_secs(30));
        assert_eq!(
            config.calls.fallback_endpoint.as_deref(),
            Some("Local/777@default")
        );
        assert_eq!(config.calls.hold_music.as_deref(), Some("default"));
        assert!(config.calls.channel_variables.is_empty());
        assert_eq!(config.calls.transfer_context, "default");
        assert_eq!(config.calls.ended_calls_kept, 1000);
        assert_eq!(config.originate.endpoint, "PJSIP/{number}@trunk");
        assert_eq!(config.originate.endpoint_for("1000"), "PJSIP/1000@trunk");
        assert_eq!(config.originate.timeout, Duration::from_secs(30));
        assert!(config.originate.caller_id.is_none());
        assert_eq!(config.log.level, LevelFilter::INFO);
        assert_eq!(config.log.format, LogFormat::Human);
        assert!(config.log.directives.is_none());
    }

    #[test]
    fn the_external_interface_flags_work() {
        let config = valid(
            &[
                "--listen",
                "127.0.0.1:0",
                "--app",
                "lab-x1",
                "--backend-url",
                "ws://127.0.0.1:9/bot",
                "--backend-protocol",
                "raw",
                "--media",
                "audiosocket",
                "--auth-token",
                "t0ken",
            ],
            &[
                ("ARI_URL", "http://127.0.0.1:8088"),
                ("ARI_USERNAME", "u"),
                ("ARI_PASSWORD", "p"),
            ],
        );
        assert_eq!(config.app, "lab-x1");
        assert_eq!(config.api.listen.port(), 0);
        assert_eq!(config.backend.protocol, ProtocolKind::Raw);
        assert_eq!(config.backend.default_url, "ws://127.0.0.1:9/bot");
        assert_eq!(config.media.transport, MediaKind::Audiosocket);
        assert_eq!(
            config.media.format,
            AudioFormat::Slin,
            "audiosocket's default"
        );
        assert_eq!(config.api.auth_token.as_ref().unwrap().expose(), "t0ken");
        assert_eq!(
            config.twilio.auth_token.as_ref().unwrap().expose(),
            "t0ken",
            "the Twilio endpoint's password defaults to the API token"
        );
        assert_eq!(config.ari.username, "u");
        assert_eq!(config.ari.password, "p");
    }

    #[test]
    fn each_seed_name_works() {
        let seed = [
            ("ASTERISK_HOST", "127.0.0.5"),
            ("ASTERISK_ARI_PORT", "8089"),
            ("ASTERISK_ARI_USERNAME", "seeduser"),
            ("ASTERISK_ARI_PASSWORD", "seedpass"),
            ("ASTERISK_APP_NAME", "denco_voiceai"),
            ("NODE_SERVER_HOST", "0.0.0.0"),
            ("NODE_SERVER_PORT", "3000"),
            ("PYTHON_BACKEND_WS_URL", "ws://127.0.0.9:8000/ws"),
            ("BACKEND_AUTH_TOKEN", "seedtoken"),
            ("LOG_LEVEL", "debug"),
            (
                "CORS_ORIGINS",
                "http://localhost:3000, https://ops.example.com/",
            ),
        ];
        for (name, _) in &seed {
            assert!(
                SEED_VARIABLES.iter().any(|(seed, _)| seed == name),
                "{name} is documented"
            );
        }
        let config = valid(&[], &seed);
        assert_eq!(config.ari.url, "http://127.0.0.5:8089");
        assert_eq!(config.ari_endpoint.host, "127.0.0.5");
        assert_eq!(config.ari_endpoint.port, 8089);
        assert_eq!(config.ari.username, "seeduser");
        assert_eq!(config.ari.password, "seedpass");
        assert_eq!(config.app, "denco_voiceai");
        assert_eq!(config.api.listen.to_string(), "0.0.0.0:3000");
        assert_eq!(config.backend.default_url, "ws://127.0.0.9:8000/ws");
        assert_eq!(config.api.auth_token.unwrap().expose(), "seedtoken");
        assert_eq!(config.log.level, LevelFilter::DEBUG);
        assert_eq!(
            config.api.cors_origins,
            ["http://localhost:3000", "https://ops.example.com"]
        );
    }

    #[test]
    fn half_a_seed_pair_keeps_the_other_half_s_default() {
        let config = valid(&[], &[("ASTERISK_HOST", "pbx.example.com")]);
        assert_eq!(config.ari.url, "http://pbx.example.com:8088");
        let config = valid(&[], &[("ASTERISK_ARI_PORT", "8089")]);
        assert_eq!(config.ari.url, "http://127.0.0.1:8089");
        let config = valid(&[], &[("ASTERISK_HOST", "https://pbx.example.com/")]);
        assert_eq!(config.ari.url, "https://pbx.example.com:8088");
        let config = valid(&[], &[("ASTERISK_HOST", "::1")]);
        assert_eq!(config.ari.url, "http://[::1]:8088");
        assert_eq!(config.ari_endpoint.host, "::1");
        let config = valid(&[], &[("NODE_SERVER_PORT", "3000")]);
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:3000");
        let config = valid(&[], &[("NODE_SERVER_HOST", "localhost")]);
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:8090");
        let error = refusal(
            &[],
            &[("ASTERISK_HOST", "pbx:8088"), ("ASTERISK_ARI_PORT", "8089")],
        );
        assert!(
            error.contains("--ari-url (ARI_URL)")
                && error.contains("(from ASTERISK_HOST, ASTERISK_ARI_PORT)"),
            "{error}"
        );
        let config = valid(&[], &[("NODE_SERVER_HOST", "::1")]);
        assert_eq!(config.api.listen.to_string(), "[::1]:8090");
    }

    #[test]
    fn flag_beats_own_variable_beats_seed_variable_beats_default() {
        let vars = [
            ("VOICEAI_LISTEN", "127.0.0.1:7001"),
            ("NODE_SERVER_PORT", "7002"),
            ("ARI_URL", "http://127.0.0.2:8088"),
            ("ASTERISK_HOST", "127.0.0.3"),
            ("VOICEAI_APP", "ours"),
            ("ASTERISK_APP_NAME", "seed"),
            ("VOICEAI_BACKEND_URL", "ws://ours/"),
            ("PYTHON_BACKEND_WS_URL", "ws://seed/"),
            ("VOICEAI_AUTH_TOKEN", "ours"),
            ("BACKEND_AUTH_TOKEN", "seed"),
            ("VOICEAI_LOG_LEVEL", "warn"),
            ("LOG_LEVEL", "debug"),
        ];
        let config = valid(&[], &vars);
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:7001");
        assert_eq!(
            config.ari.url, "http://127.0.0.2:8088",
            "ARI_URL beats ASTERISK_HOST"
        );
        assert_eq!(config.app, "ours");
        assert_eq!(config.backend.default_url, "ws://ours/");
        assert_eq!(config.api.auth_token.unwrap().expose(), "ours");
        assert_eq!(config.log.level, LevelFilter::WARN);

        let config = valid(
            &[
                "--listen",
                "127.0.0.1:7000",
                "--ari-url",
                "http://127.0.0.4:8088",
                "--app",
                "flag",
                "--log-level",
                "error",
            ],
            &vars,
        );
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:7000");
        assert_eq!(config.ari.url, "http://127.0.0.4:8088");
        assert_eq!(config.app, "flag");
        assert_eq!(config.log.level, LevelFilter::ERROR);

        let args = parse_in(&["--app", "flag"], &vars);
        assert_eq!(args.origins["app"], Origin::Flag);
        assert_eq!(
            args.origins["listen"],
            Origin::Variable {
                name: "VOICEAI_LISTEN".into(),
                dotenv: false
            }
        );
        assert!(!args.origins.contains_key("max-calls"), "a default");
    }

    #[test]
    fn blank_variables_count_as_unset() {
        let config = valid(
            &[],
            &[
                ("VOICEAI_LISTEN", ""),
                ("NODE_SERVER_PORT", "3001"),
                ("VOICEAI_AUTH_TOKEN", " "),
                ("VOICEAI_MAX_CALLS", ""),
            ],
        );
        assert_eq!(config.api.listen.to_string(), "127.0.0.1:3001");
        assert!(config.api.auth_token.is_none());
        assert_eq!(config.calls.max_calls, 100);
    }

    #[test]
    fn the_process_environment_is_not_read_by_parse_with_env() {
        // Whatever this process's environment holds (ARI_URL in CI, say), an empty
        // Environment gives the defaults.
        let args = parse_in(&[], &[]);
        assert_eq!(args.ari.url, "http://127.0.0.1:8088");
        assert!(args.origins.is_empty());
    }

    /// Flags, variables, and what the refusal must say.
    type Case = (
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
        &'static str,
    );

    #[test]
    fn bad_values_name_their_flag_and_variable() {
        #[rustfmt::skip]
        let cases: &[Case] = &[
            (&["--max-calls", "0"], &[], "--max-calls (VOICEAI_MAX_CALLS): must be at least 1, got \"0\""),
            (&["--max-calls", "lots"], &[], "--max-calls (VOICEAI_MAX_CALLS)"),
            (&[], &[("VOICEAI_MAX_CALLS", "-3")], "--max-calls (VOICEAI_MAX_CALLS)"),
            (&["--ari-url", "ftp://x"], &[], "--ari-url (ARI_URL)"),
            (&["--ari-url", "http://:8088"], &[], "--ari-url (ARI_URL)"),
            (&["--ari-username", ""], &[], "--ari-username (ARI_USERNAME)"),
            (&["--app", "a,b"], &[], "--app (VOICEAI_APP)"),
            (&["--listen", "nowhere"], &[], "--listen (VOICEAI_LISTEN)"),
            (&["--cors-origins", "localhost:3000"], &[], "--cors-origins (VOICEAI_CORS_ORIGINS)"),
            (&["--backend-url", "http://x"], &[], "--backend-url (VOICEAI_BACKEND_URL)"),
            (&["--backend-protocol", "sip"], &[], "--backend-protocol (VOICEAI_BACKEND_PROTOCOL)"),
            (&["--backend-format", "opus"], &[], "--backend-format (VOICEAI_BACKEND_FORMAT)"),
            (&["--backend-url-variable", "A B"], &[], "--backend-url-variable (VOICEAI_BACKEND_URL_VARIABLE)"),
            (&["--backend-connect-timeout", "5 parsecs"], &[], "--backend-connect-timeout (VOICEAI_BACKEND_CONNECT_TIMEOUT)"),
            (&["--backend-connect-timeout", "0s"], &[], "--backend-connect-timeout (VOICEAI_BACKEND_CONNECT_TIMEOUT)"),
            (&["--backend-failover-after", "2h"], &[], "--backend-failover-after (VOICEAI_BACKEND_FAILOVER_AFTER)"),
            (&["--fallback-endpoint", "Local/1@x&PJSIP/evil"], &[], "--fallback-endpoint (VOICEAI_FALLBACK_ENDPOINT)"),
            (&["--hold-music", "a/b"], &[], "--hold-music (VOICEAI_HOLD_MUSIC)"),
            (&["--media", "sip"], &[], "--media (VOICEAI_MEDIA)"),
            (&["--media-format", "slin"], &[], "--media-format (VOICEAI_MEDIA_FORMAT): --media websocket takes ulaw, alaw, slin16"),
            (&["--media", "rtp", "--media-format", "slin"], &[], "--media-format (VOICEAI_MEDIA_FORMAT)"),
            (&["--media", "audiosocket", "--media-format", "ulaw"], &[], "--media-format (VOICEAI_MEDIA_FORMAT): --media audiosocket takes slin, slin16"),
            (&["--media-format", "mp3"], &[], "--media-format (VOICEAI_MEDIA_FORMAT)"),
            (&["--rtp-address", "0.0.0.0"], &[], "--rtp-address (VOICEAI_RTP_ADDRESS)"),
            (&["--rtp-address", "pbx"], &[], "--rtp-address (VOICEAI_RTP_ADDRESS)"),
            (&["--rtp-ports", "40001-40999"], &[], "--rtp-ports (VOICEAI_RTP_PORTS)"),
            (&["--rtp-ports", "40998-40000"], &[], "--rtp-ports (VOICEAI_RTP_PORTS)"),
            (&["--rtp-ports", "40000"], &[], "--rtp-ports (VOICEAI_RTP_PORTS)"),
            (&["--rtp-ports", "0-10"], &[], "--rtp-ports (VOICEAI_RTP_PORTS)"),
            (&["--media", "rtp", "--rtp-ports", "40000-40009"], &[], "--rtp-ports (VOICEAI_RTP_PORTS): has 5 even ports, fewer than --max-calls 100"),
            (&["--audiosocket-listen", "x"], &[], "--audiosocket-listen (VOICEAI_AUDIOSOCKET_LISTEN)"),
            (&["--media", "audiosocket", "--audiosocket-listen", "127.0.0.1:8090"], &[], "--audiosocket-listen (VOICEAI_AUDIOSOCKET_LISTEN)"),
            (&["--media-connect-timeout=-1s"], &[], "--media-connect-timeout (VOICEAI_MEDIA_CONNECT_TIMEOUT)"),
            (&["--drain-timeout", "forever"], &[], "--drain-timeout (VOICEAI_DRAIN_TIMEOUT)"),
            (&["--originate-endpoint", "PJSIP/1000@trunk"], &[], "--originate-endpoint (VOICEAI_ORIGINATE_ENDPOINT): must contain {number}"),
            (&["--originate-endpoint", "PJSIP/{number}@trunk&Local/1"], &[], "--originate-endpoint (VOICEAI_ORIGINATE_ENDPOINT)"),
            (&["--originate-timeout", "0"], &[], "--originate-timeout (VOICEAI_ORIGINATE_TIMEOUT)"),
            (&["--originate-caller-id", "a,b"], &[], "--originate-caller-id (VOICEAI_ORIGINATE_CALLER_ID)"),
            (&["--channel-variables", "A,B C"], &[], "--channel-variables (VOICEAI_CHANNEL_VARIABLES)"),
            (&["--transfer-context", "a b"], &[], "--transfer-context (VOICEAI_TRANSFER_CONTEXT)"),
            (&["--twilio-account-sid", "AC/../x"], &[], "--twilio-account-sid (VOICEAI_TWILIO_ACCOUNT_SID)"),
            (&["--ended-calls-kept", "many"], &[], "--ended-calls-kept (VOICEAI_ENDED_CALLS_KEPT)"),
            (&["--log-level", "verbose"], &[], "--log-level (VOICEAI_LOG_LEVEL)"),
            (&["--log-format", "xml"], &[], "--log-format (VOICEAI_LOG_FORMAT)"),
            (&["--auth-token", "two words"], &[], "--auth-token (VOICEAI_AUTH_TOKEN)"),
            (&["--backend-token", "a\u{1}b"], &[], "--backend-token (VOICEAI_BACKEND_TOKEN)"),
            (&["--twilio-auth-token", "é"], &[], "--twilio-auth-token (VOICEAI_TWILIO_AUTH_TOKEN)"),
        ];
        for (args, vars, expected) in cases {
            let error = refusal(args, vars);
            assert!(error.contains(expected), "{args:?} {vars:?}: {error}");
        }
    }

    #[test]
    fn a_bad_seed_value_names_the_seed_variable() {
        let error = refusal(&[], &[("PYTHON_BACKEND_WS_URL", "http://bot")]);
        assert!(
            error.contains("--backend-url (VOICEAI_BACKEND_URL)")
                && error.contains("(from PYTHON_BACKEND_WS_URL)"),
            "{error}"
        );
        let error = refusal(&[], &[("LOG_LEVEL", "chatty")]);
        assert!(error.contains("(from LOG_LEVEL)"), "{error}");
        let argv = ["voiceai-gateway"];
        let error = Args::parse_with_env(argv, &env(&[("ASTERISK_ARI_PORT", "http")]))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("ASTERISK_ARI_PORT: must be a port"),
            "{error}"
        );
        let error = Args::parse_with_env(argv, &env(&[("NODE_SERVER_PORT", "99999")]))
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("NODE_SERVER_PORT: "), "{error}");
        let error = refusal(&[], &[("RUST_LOG", "ari_client=loud")]);
        assert!(error.starts_with("RUST_LOG: "), "{error}");
    }

    #[test]
    fn no_token_refuses_a_non_loopback_listen() {
        let error = refusal(&["--listen", "0.0.0.0:8090"], &[]);
        assert!(
            error.contains("--listen (VOICEAI_LISTEN)")
                && error.contains("--auth-token (VOICEAI_AUTH_TOKEN or BACKEND_AUTH_TOKEN)"),
            "{error}"
        );
        let error = refusal(&[], &[("NODE_SERVER_HOST", "0.0.0.0")]);
        assert!(error.contains("0.0.0.0:8090"), "{error}");
        let config = valid(
            &["--listen", "0.0.0.0:8090"],
            &[("BACKEND_AUTH_TOKEN", "s3cret")],
        );
        assert_eq!(config.api.listen.to_string(), "0.0.0.0:8090");
        config_ok(&["--listen", "[::1]:8090"]);
    }

    fn config_ok(args: &[&str]) {
        parse_in(args, &[]).validate().unwrap();
    }

    #[test]
    fn options_are_parsed_into_their_types() {
        let config = valid(
            &[
                "--media",
                "rtp",
                "--media-format",
                "alaw",
                "--rtp-address",
                "::1",
                "--rtp-ports",
                "50000-50199",
                "--fallback-endpoint",
                "none",
                "--hold-music",
                "none",
                "--channel-variables",
                "ACCOUNT_ID, CALLERID(name),",
                "--backend-map",
                "/etc/voiceai/map.toml",
                "--backend-token",
                "bot-token",
                "--backend-failover-after",
                "1m30s",
                "--drain-timeout",
                "0",
                "--originate-caller-id",
                "\"AI\" <1000>",
                "--log-format",
                "json",
                "--ended-calls-kept",
                "0",
            ],
            &[("RUST_LOG", "ari_client=debug")],
        );
        assert_eq!(config.media.transport, MediaKind::Rtp);
        assert_eq!(config.media.format, AudioFormat::Alaw);
        assert_eq!(config.media.rtp_address.to_string(), "::1");
        assert_eq!(config.media.rtp_ports, 50000..=50199);
        assert!(config.calls.fallback_endpoint.is_none());
        assert!(config.calls.hold_music.is_none());
        assert_eq!(
            config.calls.channel_variables,
            ["ACCOUNT_ID", "CALLERID(name)"]
        );
        assert_eq!(
            config.backend.map_file.as_deref(),
            Some(Path::new("/etc/voiceai/map.toml"))
        );
        assert_eq!(config.backend.auth_token.unwrap().expose(), "bot-token");
        assert_eq!(config.backend.failover_after, Duration::from_secs(90));
        assert_eq!(config.calls.drain_timeout, Duration::ZERO);
        assert_eq!(config.originate.caller_id.as_deref(), Some("\"AI\" <1000>"));
        assert_eq!(config.log.format, LogFormat::Json);
        assert_eq!(config.log.directives.as_deref(), Some("ari_client=debug"));
        assert_eq!(config.calls.ended_calls_kept, 0);
    }

    #[test]
    fn durations_are_humane() {
        for (text, expected) in [
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("1m30s", Duration::from_secs(90)),
            ("1m 30s", Duration::from_secs(90)),
            ("7", Duration::from_secs(7)),
            (" 3s ", Duration::from_secs(3)),
        ] {
            assert_eq!(parse_duration(text), Some(expected), "{text}");
        }
        for text in ["", "s", "10x", "1.5s", "-1s", "99999999999999999999h", "m5"] {
            assert_eq!(parse_duration(text), None, "{text}");
        }
    }

    #[test]
    fn dotenv_is_read_from_the_given_directory_and_the_environment_wins() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DOTENV_FILE);
        std::fs::write(
            &path,
            "# the seed's .env\n\
             ASTERISK_HOST=127.1.1.1\n\
             ASTERISK_APP_NAME=denco_voiceai\n\
             PYTHON_BACKEND_WS_URL=ws://bot.internal:8000/ws\n\
             VOICEAI_MAX_CALLS=7\n\
             VOICEAI_DRAIN_TIMEOUT=\"2m\"\n\
             BACKEND_AUTH_TOKEN=from-file\n\
             RUST_LOG=voiceai_gateway=debug\n\
             UNRELATED=1\n",
        )
        .unwrap();
        let env = env(&[("VOICEAI_MAX_CALLS", "9"), ("ASTERISK_APP_NAME", "real")])
            .with_dotenv_file(&path)
            .unwrap();
        let argv = ["voiceai-gateway", "--drain-timeout", "5s"];
        let args = Args::parse_with_env(argv, &env).unwrap();
        assert_eq!(
            args.origins["backend-url"],
            Origin::Variable {
                name: "PYTHON_BACKEND_WS_URL".into(),
                dotenv: true
            }
        );
        let config = args.validate().unwrap();
        assert_eq!(config.ari.url, "http://127.1.1.1:8088");
        assert_eq!(config.app, "real", "the environment wins over .env");
        assert_eq!(config.backend.default_url, "ws://bot.internal:8000/ws");
        assert_eq!(config.calls.max_calls, 9, "the environment wins over .env");
        assert_eq!(
            config.calls.drain_timeout,
            Duration::from_secs(5),
            "the flag wins"
        );
        assert_eq!(config.api.auth_token.unwrap().expose(), "from-file");
        assert_eq!(
            config.log.directives.as_deref(),
            Some("voiceai_gateway=debug")
        );

        std::fs::write(&path, "VOICEAI_MAX_CALLS=0\n").unwrap();
        let env = Environment::default().with_dotenv_file(&path).unwrap();
        let error = Args::parse_with_env(["voiceai-gateway"], &env)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--max-calls (VOICEAI_MAX_CALLS)")
                && error.contains("(from VOICEAI_MAX_CALLS in .env)"),
            "{error}"
        );

        let missing = Environment::default()
            .with_dotenv_file(&dir.path().join("absent"))
            .unwrap();
        assert!(missing.get("VOICEAI_MAX_CALLS").is_none());
        std::fs::write(&path, "NOT A LINE\n").unwrap();
        let error = Environment::default().with_dotenv_file(&path).unwrap_err();
        assert!(matches!(error, ConfigError::DotEnv { .. }), "{error}");
        assert!(error.to_string().contains(".env"), "{error}");
    }

    #[test]
    fn debug_hides_secrets() {
        let secrets = [
            ("ARI_PASSWORD", "pw-hunter22"),
            ("VOICEAI_AUTH_TOKEN", "tok-hunter22"),
            ("VOICEAI_BACKEND_TOKEN", "bot-hunter22"),
            ("VOICEAI_TWILIO_AUTH_TOKEN", "twi-hunter22"),
        ];
        let environment = env(&secrets);
        let args = Args::parse_with_env(["voiceai-gateway"], &environment).unwrap();
        let shown = format!("{args:?} {environment:?}");
        let config = args.validate().unwrap();
        let shown = format!("{shown} {config:?}");
        assert!(!shown.contains("hunter22"), "{shown}");
        assert_eq!(config.ari.password, "pw-hunter22");
        assert_eq!(config.twilio.auth_token.unwrap().expose(), "twi-hunter22");

        let args = parse_in(
            &[
                "--ari-password",
                "flag-hunter22",
                "--auth-token",
                "x y hunter22",
            ],
            &[],
        );
        let shown = format!("{args:?}");
        assert!(!shown.contains("hunter22"), "{shown}");
        let error = args.validate().unwrap_err().to_string();
        assert!(
            !error.contains("hunter22"),
            "a refused secret is not shown: {error}"
        );
    }

    #[test]
    fn every_option_has_a_flag_a_variable_and_help() {
        let command = Args::command();
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version"].contains(&id) {
                continue;
            }
            let long = arg.get_long().unwrap_or_else(|| panic!("{id} has no flag"));
            arg.get_env()
                .unwrap_or_else(|| panic!("--{long} has no variable"));
            assert!(arg.get_help().is_some(), "--{long} has no help");
        }
        for (_, flag) in SEED_VARIABLES {
            let long = flag.trim_start_matches("--");
            assert!(
                command
                    .get_arguments()
                    .any(|arg| arg.get_long() == Some(long)),
                "{flag}"
            );
        }
    }

    #[test]
    fn help_lists_the_variables_and_unknown_flags_are_refused() {
        let error = Args::parse_with_env(["voiceai-gateway", "--help"], &Environment::default())
            .unwrap_err();
        let ParseError::Clap(error) = error else {
            panic!("{error}")
        };
        assert_eq!(error.kind(), clap::error::ErrorKind::DisplayHelp);
        let help = error.to_string();
        assert!(
            help.contains("VOICEAI_MAX_CALLS") && help.contains("ARI_URL"),
            "{help}"
        );
        let error = Args::parse_with_env(
            ["voiceai-gateway", "--max-cals", "3"],
            &Environment::default(),
        )
        .unwrap_err();
        assert!(error.to_string().contains("--max-cals"), "{error}");
    }

    #[test]
    fn env_template_lists_every_variable_with_its_default() {
        let template = include_str!("../env.template");
        let line_of = |name: &str| {
            template
                .lines()
                .find_map(|line| line.strip_prefix(&format!("# {name}=")))
                .unwrap_or_else(|| panic!("env.template has no line '# {name}='"))
        };
        for arg in Args::command().get_arguments() {
            let Some(env) = arg.get_env() else { continue };
            let default = arg
                .get_default_values()
                .first()
                .map(|value| value.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert_eq!(line_of(&env.to_string_lossy()), default, "{env:?}");
        }
        for (seed, _) in SEED_VARIABLES {
            line_of(seed);
        }
        line_of(RUST_LOG);

        // Uncommented as it stands, the template changes nothing.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(DOTENV_FILE);
        let uncommented: String = template
            .lines()
            .filter_map(|line| line.strip_prefix("# "))
            .filter(|line| {
                line.split_once('=').is_some_and(|(name, _)| {
                    !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                })
            })
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(&path, uncommented).unwrap();
        let env = Environment::default().with_dotenv_file(&path).unwrap();
        assert!(env.get("VOICEAI_MAX_CALLS").is_some());
        let args = Args::parse_with_env(["voiceai-gateway"], &env).unwrap();
        assert_eq!(
            format!("{:?}", args.validate().unwrap()),
            format!("{:?}", valid(&[], &[]))
        );
    }

    #[test]
    fn a_repeated_flag_takes_the_last_value() {
        let config = valid(&["--max-calls", "3", "--max-calls", "4"], &[]);
        assert_eq!(config.calls.max_calls, 4);
    }

    #[test]
    fn recording_and_the_call_log_are_off_by_default_and_switch_on() {
        let config = valid(&[], &[]);
        assert!(!config.call_data.record);
        assert_eq!(config.call_data.recordings_dir, Path::new("./recordings"));
        assert!(config.call_data.call_log.is_none());
        let config = valid(
            &[
                "--record",
                "--recordings-dir",
                "/tmp/rec",
                "--call-log",
                "/tmp/calls.jsonl",
            ],
            &[],
        );
        assert!(config.call_data.record);
        assert_eq!(config.call_data.recordings_dir, Path::new("/tmp/rec"));
        assert_eq!(
            config.call_data.call_log.as_deref(),
            Some(Path::new("/tmp/calls.jsonl"))
        );
        let config = valid(
            &[],
            &[("VOICEAI_RECORD", "yes"), ("VOICEAI_CALL_LOG", "c.jsonl")],
        );
        assert!(config.call_data.record);
        assert_eq!(
            config.call_data.call_log.as_deref(),
            Some(Path::new("c.jsonl"))
        );
        assert!(
            !valid(&["--record=false"], &[("VOICEAI_RECORD", "1")])
                .call_data
                .record
        );
        let error = refusal(&[], &[("VOICEAI_RECORD", "maybe")]);
        assert!(
            error.contains("--record (VOICEAI_RECORD)") && error.contains("maybe"),
            "{error}"
        );
    }

    #[test]
    fn ari_url_repeats_or_lists_servers_and_broadcast_claims_switch_on() {
        let config = valid(&[], &[]);
        assert_eq!(config.cluster.servers.len(), 1);
        assert_eq!(config.cluster.servers[0].name, "127.0.0.1:8088");
        assert!(!config.cluster.claim_broadcasts);
        assert_eq!(config.cluster.call_lease, None);
        let config = valid(
            &[
                "--ari-url",
                "a=http://127.0.0.1:8088",
                "--claim-broadcasts",
                "--ari-url=b=http://127.0.0.1:8088?app=voiceai-b",
                "--call-lease",
                "6s",
            ],
            &[],
        );
        let names: Vec<&str> = config
            .cluster
            .servers
            .iter()
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(config.cluster.servers[1].app, "voiceai-b");
        assert_eq!(config.ari.url, "http://127.0.0.1:8088", "the first server");
        assert!(config.cluster.claim_broadcasts);
        assert_eq!(config.cluster.call_lease, Some(Duration::from_secs(6)));
        let leased = |args: &[&str]| valid(args, &[]).cluster.call_lease;
        assert_eq!(
            leased(&["--claim-broadcasts"]),
            Some(Duration::from_secs(10))
        );
        assert_eq!(leased(&["--claim-broadcasts", "--call-lease", "0s"]), None);
        assert_eq!(leased(&["--call-lease", "auto"]), None);
        let config = valid(
            &[],
            &[
                (
                    "ARI_URL",
                    "http://127.0.0.1:8088,x=http://u:pw@127.0.0.2:8088",
                ),
                ("VOICEAI_CLAIM_BROADCASTS", "yes"),
            ],
        );
        assert_eq!(config.cluster.servers[1].username, "u");
        assert!(config.cluster.claim_broadcasts);
        for (args, vars, needle) in [
            (
                &["--claim-broadcasts", "maybe"][..],
                &[][..],
                "--claim-broadcasts (VOICEAI_CLAIM_BROADCASTS)",
            ),
            (
                &["--call-lease", "1s"][..],
                &[][..],
                "--call-lease (VOICEAI_CALL_LEASE)",
            ),
            (
                &[][..],
                &[("ARI_URL", "http://u:hunter2@127.0.0.1:8088,")][..],
                "--ari-url (ARI_URL)",
            ),
        ] {
            let error = refusal(args, vars);
            assert!(
                error.contains(needle) && !error.contains("hunter2"),
                "{error}"
            );
        }
    }
}
