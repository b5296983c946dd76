//! The binary's logger: human-readable or JSON lines on stderr.
//!
//! The level comes from `--log-level` (`VOICEAI_LOG_LEVEL`, the seed's `LOG_LEVEL`);
//! `RUST_LOG`, when set, refines it with `tracing` directives applied on top
//! (`ari_client=debug` raises one crate; a bare `trace` replaces the level). Fields of
//! the spans a line is in (`call_id`, `channel_id`) appear on every line: in the prefix of
//! human lines, under `span`/`spans` in JSON ones.

use std::fmt;
use std::io::{self, IsTerminal as _};
use std::str::FromStr;

use tracing::Dispatch;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

/// How log lines look (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line per event for people, coloured on a terminal.
    #[default]
    Human,
    /// One JSON object per event, the event's fields at the top level, for log shippers.
    Json,
}

impl LogFormat {
    /// The name used in configuration: `human` or `json`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Human => "human",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A format name other than `human` and `json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?} (expected human or json)")]
pub struct UnknownLogFormat(pub String);

impl FromStr for LogFormat {
    type Err = UnknownLogFormat;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [Self::Human, Self::Json]
            .into_iter()
            .find(|format| format.as_str().eq_ignore_ascii_case(name))
            .ok_or_else(|| UnknownLogFormat(name.to_owned()))
    }
}

/// Why the logger was not installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// `RUST_LOG` is not a list of `tracing` directives.
    #[error("RUST_LOG: invalid filter directives {directives:?}: {source}")]
    Directives {
        /// The directives as given.
        directives: String,
        /// The parser's complaint.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// Another logger was installed first.
    #[error("a logger is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the process's logger on stderr at `level`, refined by the process's `RUST_LOG`.
///
/// # Errors
/// `RUST_LOG` does not parse, or a logger is already installed.
pub fn init(level: LevelFilter, format: LogFormat) -> Result<(), LogError> {
    let directives = std::env::var(crate::config::RUST_LOG).ok();
    init_with_directives(level, format, directives.as_deref())
}

/// Installs the process's logger on stderr at `level`, refined by `directives` (the
/// configuration's [`LogConfig::directives`](crate::config::LogConfig::directives), which
/// also reads `RUST_LOG` from `.env`).
///
/// # Errors
/// The directives do not parse, or a logger is already installed.
pub fn init_with_directives(
    level: LevelFilter,
    format: LogFormat,
    directives: Option<&str>,
) -> Result<(), LogError> {
    let filter = filter(level, directives)?;
    let ansi = io::stderr().is_terminal();
    dispatch(format, filter, ansi, io::stderr)
        .try_init()
        .map_err(LogError::AlreadyInstalled)
}

/// The filter for `level` with `directives` applied on top.
///
/// # Errors
/// The directives do not parse.
pub fn filter(level: LevelFilter, directives: Option<&str>) -> Result<EnvFilter, LogError> {
    let directives = directives.map(str::trim).unwrap_or_default();
    // Later directives for the same target replace earlier ones, so RUST_LOG refines (or,
    // with a bare level, replaces) the configured level.
    let all = if directives.is_empty() {
        level.to_string()
    } else {
        format!("{level},{directives}")
    };
    EnvFilter::builder()
        .parse(&all)
        .map_err(|source| LogError::Directives {
            directives: directives.to_owned(),
            source,
        })
}

fn dispatch<W>(format: LogFormat, filter: EnvFilter, ansi: bool, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    // tracing-subscriber reports a failed write with `eprintln!`, which panics when stderr
    // itself is gone (the log reader exited): every task that logged would then die —
    // calls, and the signal handler, so SIGTERM would no longer stop the gateway. A log
    // line that cannot be written is dropped instead.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false);
    match format {
        LogFormat::Human => Dispatch::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Dispatch::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(true)
                .finish(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log_with(format: LogFormat, level: LevelFilter, directives: Option<&str>) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let filter = filter(level, directives).unwrap();
        let dispatch = dispatch(format, filter, false, move || writer.clone());
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("call", call_id = "c-1", channel_id = "ch-9");
            let _entered = span.enter();
            tracing::info!(frames = 3, "call answered");
            tracing::debug!("details");
        });
        String::from_utf8(captured.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_lines_carry_the_event_and_the_call() {
        let text = log_with(LogFormat::Json, LevelFilter::INFO, None);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "call answered");
        assert_eq!(lines[0]["frames"], 3);
        assert_eq!(lines[0]["span"]["call_id"], "c-1");
        assert_eq!(lines[0]["span"]["channel_id"], "ch-9");
        assert!(lines[0]["timestamp"].is_string());
    }

    #[test]
    fn human_lines_follow_the_level_and_name_the_call() {
        let text = log_with(LogFormat::Human, LevelFilter::DEBUG, None);
        assert!(
            text.contains(" INFO ") && text.contains("call answered"),
            "{text}"
        );
        assert!(
            text.contains("call_id=\"c-1\"") && text.contains("channel_id=\"ch-9\""),
            "{text}"
        );
        assert!(
            text.contains(" DEBUG ") && text.contains("details"),
            "{text}"
        );
        assert!(
            !text.contains('\u{1b}'),
            "no colours when told not to: {text}"
        );
        assert!(log_with(LogFormat::Human, LevelFilter::WARN, None).is_empty());
    }

    #[test]
    fn rust_log_refines_the_level() {
        // A directive for another crate leaves this one at the level.
        let text = log_with(
            LogFormat::Human,
            LevelFilter::INFO,
            Some("ari_client=trace"),
        );
        assert!(
            text.contains("call answered") && !text.contains("details"),
            "{text}"
        );
        // A bare level replaces it.
        let text = log_with(LogFormat::Human, LevelFilter::INFO, Some("debug"));
        assert!(text.contains("details"), "{text}");
        let text = log_with(LogFormat::Human, LevelFilter::INFO, Some("warn"));
        assert!(text.is_empty(), "{text}");
        // This test's events come from this crate's target.
        let text = log_with(
            LogFormat::Human,
            LevelFilter::WARN,
            Some("voiceai_gateway=debug"),
        );
        assert!(text.contains("details"), "{text}");
    }

    #[test]
    fn bad_directives_are_refused() {
        let error = filter(LevelFilter::INFO, Some("ari_client=loud")).unwrap_err();
        assert!(error.to_string().starts_with("RUST_LOG: "), "{error}");
        assert!(filter(LevelFilter::INFO, Some("  ")).is_ok());
        assert!(filter(LevelFilter::OFF, None).is_ok());
    }
}
