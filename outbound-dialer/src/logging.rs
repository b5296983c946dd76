//! The binary's logger: human-readable or JSON lines on stderr, filtered by a level.
//!
//! Lines are written around the progress bar (see [`crate::progress`]), so that a log
//! line on a terminal does not tear the bar.

use std::io::{self, IsTerminal as _, Write};

use tracing::Dispatch;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The level when none is given: `info`.
pub const DEFAULT_LEVEL: &str = "info";

/// How log lines look (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// One line per event for people, coloured on a terminal.
    #[default]
    Human,
    /// One JSON object per event, fields at the top level, for log collectors.
    Json,
}

/// Why the logger was not installed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The level is not a level nor a `RUST_LOG`-style filter.
    #[error(
        "invalid log level {level:?}: use off, error, warn, info, debug, trace \
         or a filter such as outbound_dialer=debug,info"
    )]
    Level {
        /// The level as given.
        level: String,
        /// The filter parser's complaint, when it had one.
        #[source]
        source: Option<tracing_subscriber::filter::ParseError>,
    },
    /// Another logger was installed first.
    #[error("a logger is already installed")]
    AlreadyInstalled(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the process's logger, writing to stderr.
///
/// `level` (from `--log-level`, say) wins; without it `LOG_LEVEL`, then `RUST_LOG`, then
/// [`DEFAULT_LEVEL`]. A level is a name (`debug`) or a `RUST_LOG` filter
/// (`outbound_dialer=debug,info`).
///
/// # Errors
/// The level does not parse, or a logger is already installed.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), LogError> {
    let level = resolve_level(level, |name| std::env::var(name).ok());
    let filter = parse_level(&level)?;
    let ansi = io::stderr().is_terminal();
    dispatch(format, filter, ansi, || StderrAroundBar)
        .try_init()
        .map_err(LogError::AlreadyInstalled)
}

/// The level to use: the explicit one, else the first of `LOG_LEVEL` and `RUST_LOG` that
/// is set and not blank, else the default.
fn resolve_level(explicit: Option<&str>, env: impl Fn(&str) -> Option<String>) -> String {
    explicit
        .map(str::to_owned)
        .into_iter()
        .chain(env("LOG_LEVEL"))
        .chain(env("RUST_LOG"))
        .find(|level| !level.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_LEVEL.to_owned())
}

fn parse_level(level: &str) -> Result<EnvFilter, LogError> {
    let level = level.trim();
    let invalid = |source| LogError::Level {
        level: level.to_owned(),
        source,
    };
    // A lone word would parse as a target name (`verbose` = "everything in a crate
    // named verbose") and silence the rest: only level names may stand alone.
    let lone_word = !level.contains(['=', ',', '[', ':']);
    let is_level = ["off", "error", "warn", "info", "debug", "trace"]
        .iter()
        .any(|name| level.eq_ignore_ascii_case(name));
    if lone_word && !is_level {
        return Err(invalid(None));
    }
    EnvFilter::builder()
        .parse(level)
        .map_err(|error| invalid(Some(error)))
}

fn dispatch<W>(format: LogFormat, filter: EnvFilter, ansi: bool, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Human => Dispatch::new(builder.with_ansi(ansi).finish()),
        LogFormat::Json => Dispatch::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .finish(),
        ),
    }
}

/// Stderr, written with the progress bar hidden for the moment of the write.
struct StderrAroundBar;

impl Write for StderrAroundBar {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // One event is one write_all from the formatter: one suspension per line.
        crate::progress::suspend_bar(|| io::stderr().lock().write_all(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
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

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_with(format: LogFormat, level: &str) -> String {
        let captured = Captured::default();
        let writer = captured.clone();
        let dispatch = dispatch(format, parse_level(level).unwrap(), false, move || {
            writer.clone()
        });
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!(number = "+15550100", "call answered");
            tracing::debug!("details");
        });
        captured.text()
    }

    #[test]
    fn json_lines_have_the_fields_at_the_top() {
        let text = log_with(LogFormat::Json, "info");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1, "{text}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["message"], "call answered");
        assert_eq!(lines[0]["number"], "+15550100");
        assert!(lines[0]["timestamp"].is_string());
    }

    #[test]
    fn human_lines_follow_the_level() {
        let text = log_with(LogFormat::Human, "debug");
        assert!(
            text.contains(" INFO ") && text.contains("call answered"),
            "{text}"
        );
        assert!(text.contains("number=\"+15550100\""), "{text}");
        assert!(
            text.contains(" DEBUG ") && text.contains("details"),
            "{text}"
        );
        assert!(
            !text.contains('\u{1b}'),
            "no colours when told not to: {text}"
        );
        let text = log_with(LogFormat::Human, "warn");
        assert!(text.is_empty(), "{text}");
        let text = log_with(LogFormat::Human, "ari_client=trace,warn");
        assert!(text.is_empty(), "{text}");
    }

    #[test]
    fn the_explicit_level_wins_then_log_level_then_rust_log() {
        let env = |log_level: Option<&str>, rust_log: Option<&str>| {
            let (log_level, rust_log) = (log_level.map(str::to_owned), rust_log.map(str::to_owned));
            move |name: &str| match name {
                "LOG_LEVEL" => log_level.clone(),
                "RUST_LOG" => rust_log.clone(),
                _ => None,
            }
        };
        assert_eq!(
            resolve_level(Some("trace"), env(Some("debug"), Some("warn"))),
            "trace"
        );
        assert_eq!(
            resolve_level(None, env(Some("debug"), Some("warn"))),
            "debug"
        );
        assert_eq!(resolve_level(None, env(Some(" "), Some("warn"))), "warn");
        assert_eq!(resolve_level(None, env(None, None)), DEFAULT_LEVEL);
    }

    #[test]
    fn bad_levels_are_refused_before_anything_is_installed() {
        for level in ["verbose", "info,[", "loud=x"] {
            let error = init(LogFormat::Human, Some(level)).unwrap_err();
            assert!(matches!(error, LogError::Level { .. }), "{level}: {error}");
            assert!(error.to_string().contains(level), "{error}");
        }
        assert!(parse_level("DEBUG").is_ok());
    }

    #[test]
    fn formats_are_clap_values() {
        use clap::ValueEnum as _;
        assert_eq!(LogFormat::from_str("json", false).unwrap(), LogFormat::Json);
        assert_eq!(
            LogFormat::from_str("human", false).unwrap(),
            LogFormat::Human
        );
        assert!(LogFormat::from_str("xml", false).is_err());
    }
}
