//! The rules' flags (flattened into the dialer's [`crate::config::Args`]) and their
//! validation into [`Rules`].

use std::path::PathBuf;
use std::time::Duration;

use chrono_tz::Tz;

use super::breaker::{DEFAULT_COOLDOWN, DEFAULT_THRESHOLD};
use super::hours::{CallingHours, CallingWindow, NationalNumbers, parse_zone};
use super::retry::{RetryPolicy, parse_delays, parse_duration};
use super::{RuleError, check_ring_time};
use crate::config::ConfigError;

/// Flags of the campaign rules.
#[derive(Debug, Clone, clap::Args)]
pub struct RuleArgs {
    /// Attempts per number at most; above 1, busy, no-answer and congestion outcomes are
    /// dialled again after their --retry-delay (a retry is a new attempt).
    #[arg(long, env = "DIALER_MAX_ATTEMPTS", default_value = "1", global = true)]
    pub max_attempts: u32,
    /// Delay per outcome before a retry, e.g. `busy=5m,noanswer=30m,congestion=10m`
    /// (those are the defaults; `rejected`/`error` may be added, `OUTCOME=off` removes one).
    #[arg(long, env = "DIALER_RETRY_DELAY", global = true)]
    pub retry_delay: Option<String>,
    /// Local time of the callee during which calls may start (`HH:MM[:SS]-HH:MM[:SS]`;
    /// `00:00-24:00`: always).
    #[arg(
        long,
        env = "DIALER_CALLING_WINDOW",
        default_value = "08:00-21:00",
        global = true
    )]
    pub calling_window: String,
    /// Time zone (IANA name) of callees whose zone the list does not give (a `timezone`
    /// column) and their country code cannot tell (e.g. US/CA, RU, AU, BR, MX).
    #[arg(
        long,
        env = "DIALER_DEFAULT_TIMEZONE",
        default_value = "UTC",
        global = true
    )]
    pub default_timezone: String,
    /// Country calling code of numbers the list writes in national form, for the
    /// time-zone lookup only (numbers are dialled as written): with `1`, a 10-digit
    /// number is read as +1 and its area code (else 305… would read as +30, Greece);
    /// with another code, a number with the trunk prefix 0 is read as that country's.
    /// Empty: numbers are international digits.
    #[arg(
        long,
        env = "DIALER_NATIONAL_COUNTRY_CODE",
        default_value = "",
        global = true
    )]
    pub national_country_code: String,
    /// Do-not-call file: one number per line (`#` comments); checked at import and
    /// before each call; such numbers get the outcome `dnc` and are never dialled.
    #[arg(long, env = "DIALER_DNC_FILE", global = true)]
    pub dnc_file: Option<PathBuf>,
    /// Answering-machine detection: answered callees go through the AMD dialplan context
    /// first; machines get the outcome `machine` and are not bridged.
    #[arg(
        long,
        env = "DIALER_AMD",
        global = true,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub amd: bool,
    /// Dialplan context that runs AMD() and returns to Stasis (asterisk_conf/extensions.conf).
    #[arg(
        long,
        env = "DIALER_AMD_CONTEXT",
        default_value = "dialer-amd",
        global = true
    )]
    pub amd_context: String,
    /// Played to a machine before the hang-up (e.g. `sound:vm-goodbye`); none by default.
    #[arg(long, env = "DIALER_MACHINE_MESSAGE", global = true)]
    pub machine_message: Option<String>,
    /// Highest abandon rate, in percent of live-answered calls (a call is abandoned when
    /// no target is connected within 2 s of the answer); above it concurrency is lowered.
    #[arg(
        long,
        env = "DIALER_MAX_ABANDON_RATE",
        default_value = "3",
        global = true
    )]
    pub max_abandon_rate: String,
    /// How long a live callee (answered, or AMD's verdict) waits for the target: then the
    /// target attempt is hung up, the callee hears --target-failed-sound and is hung up
    /// (an abandoned call, outcome target_failed). `0`: wait up to --target-timeout (a
    /// target connected after 2 s still counts as abandoned).
    #[arg(
        long,
        env = "DIALER_ABANDON_AFTER",
        default_value = "2s",
        global = true
    )]
    pub abandon_after: String,
    /// Trunk failures in a row (cause 34/38/41/42, SIP 503) that pause new calls (0: never).
    #[arg(long, env = "DIALER_BREAKER_THRESHOLD", default_value_t = DEFAULT_THRESHOLD, global = true)]
    pub breaker_threshold: u32,
    /// How long the breaker pauses new calls before one probe call (e.g. 60s, 5m).
    #[arg(
        long,
        env = "DIALER_BREAKER_COOLDOWN",
        default_value = "60s",
        global = true
    )]
    pub breaker_cooldown: String,
    /// Allow a CALL_TIMEOUT below 15 s (US TSR asks for at least 15 s of ringing).
    #[arg(
        long,
        env = "DIALER_FORCE_SHORT_RING",
        global = true,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub force_short_ring: bool,
}

/// Answering-machine detection settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmdSettings {
    /// The context answered callees are sent to (extension `s`).
    pub context: String,
    /// Played to machines before the hang-up.
    pub machine_message: Option<String>,
}

/// The validated campaign rules.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Retries by outcome.
    pub retry: RetryPolicy,
    /// Calling hours.
    pub hours: CallingHours,
    /// The do-not-call file.
    pub dnc_file: Option<PathBuf>,
    /// AMD, when on.
    pub amd: Option<AmdSettings>,
    /// Highest abandon rate (0..=1).
    pub max_abandon_rate: f64,
    /// How long a live callee waits for the target before it is abandoned (hears the
    /// message, is hung up); `None`: up to the target timeout.
    pub abandon_after: Option<Duration>,
    /// Trunk failures in a row that open the breaker (0: never).
    pub breaker_threshold: u32,
    /// How long it stays open.
    pub breaker_cooldown: Duration,
}

impl Default for Rules {
    /// No retries, always open, no DNC, no AMD, 3 %, breaker at 20 for 60 s.
    fn default() -> Self {
        Rules {
            retry: RetryPolicy::off(),
            hours: CallingHours::new(CallingWindow::ALWAYS, Tz::UTC),
            dnc_file: None,
            amd: None,
            max_abandon_rate: super::abandon::DEFAULT_MAX_RATE,
            abandon_after: Some(super::abandon::ABANDON_AFTER),
            breaker_threshold: DEFAULT_THRESHOLD,
            breaker_cooldown: DEFAULT_COOLDOWN,
        }
    }
}

fn invalid(
    flag: &'static str,
    env: &'static str,
    value: &str,
) -> impl Fn(RuleError) -> ConfigError {
    let value = value.to_owned();
    move |error: RuleError| ConfigError::Rule {
        flag,
        env,
        problem: error.0,
        value: value.clone(),
    }
}

impl RuleArgs {
    /// Checks the rules' flags; `call_timeout` is the ring time (CALL_TIMEOUT).
    ///
    /// # Errors
    /// The first value that cannot work, naming its flag and variable.
    pub fn validate(self, call_timeout: Duration) -> Result<Rules, ConfigError> {
        check_ring_time(call_timeout, self.force_short_ring).map_err(invalid(
            "--call-timeout",
            "CALL_TIMEOUT",
            &call_timeout.as_secs().to_string(),
        ))?;
        let overrides = match &self.retry_delay {
            Some(text) => {
                parse_delays(text).map_err(invalid("--retry-delay", "DIALER_RETRY_DELAY", text))?
            }
            None => Vec::new(),
        };
        let retry = RetryPolicy::new(self.max_attempts, &overrides).map_err(invalid(
            "--max-attempts",
            "DIALER_MAX_ATTEMPTS",
            &self.max_attempts.to_string(),
        ))?;
        let window = CallingWindow::parse(&self.calling_window).map_err(invalid(
            "--calling-window",
            "DIALER_CALLING_WINDOW",
            &self.calling_window,
        ))?;
        let zone = parse_zone(self.default_timezone.trim()).map_err(invalid(
            "--default-timezone",
            "DIALER_DEFAULT_TIMEZONE",
            &self.default_timezone,
        ))?;
        let national = if self.national_country_code.trim().is_empty() {
            None
        } else {
            Some(
                NationalNumbers::parse(&self.national_country_code).map_err(invalid(
                    "--national-country-code",
                    "DIALER_NATIONAL_COUNTRY_CODE",
                    &self.national_country_code,
                ))?,
            )
        };
        let rate = parse_percent(&self.max_abandon_rate).map_err(invalid(
            "--max-abandon-rate",
            "DIALER_MAX_ABANDON_RATE",
            &self.max_abandon_rate,
        ))?;
        let abandon_after = parse_duration(&self.abandon_after)
            .and_then(|d| {
                if d > MAX_ABANDON_AFTER {
                    Err(RuleError::new(format!(
                        "must be at most {} s (US TSR: 2 s; 0 waits for the target up to --target-timeout)",
                        MAX_ABANDON_AFTER.as_secs()
                    )))
                } else {
                    Ok((!d.is_zero()).then_some(d))
                }
            })
            .map_err(invalid(
                "--abandon-after",
                "DIALER_ABANDON_AFTER",
                &self.abandon_after,
            ))?;
        let cooldown = parse_duration(&self.breaker_cooldown)
            .and_then(|d| {
                if d < Duration::from_secs(1) {
                    Err(RuleError::new("must be at least 1s"))
                } else {
                    Ok(d)
                }
            })
            .map_err(invalid(
                "--breaker-cooldown",
                "DIALER_BREAKER_COOLDOWN",
                &self.breaker_cooldown,
            ))?;
        let amd = if self.amd {
            let context = self.amd_context.trim().to_owned();
            if context.is_empty()
                || !context
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                return Err(invalid(
                    "--amd-context",
                    "DIALER_AMD_CONTEXT",
                    &self.amd_context,
                )(RuleError::new(
                    "must be a dialplan context name (letters, digits, - _)",
                )));
            }
            Some(AmdSettings {
                context,
                machine_message: self.machine_message.filter(|m| !m.trim().is_empty()),
            })
        } else {
            None
        };
        Ok(Rules {
            retry,
            hours: CallingHours::new(window, zone).with_national(national),
            dnc_file: self.dnc_file,
            amd,
            max_abandon_rate: rate,
            abandon_after,
            breaker_threshold: self.breaker_threshold,
            breaker_cooldown: cooldown,
        })
    }
}

/// The longest `--abandon-after`: a callee kept waiting longer is an abandoned call anyway.
const MAX_ABANDON_AFTER: Duration = Duration::from_secs(60);

/// `3`, `3%` or `2.5 %`: a percentage of 0..=100, as a fraction.
fn parse_percent(text: &str) -> Result<f64, RuleError> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p / 100.0),
        _ => Err(RuleError::new(
            "must be a percentage of 0..=100 (e.g. 3 or 2.5%)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    #[derive(Debug, clap::Parser)]
    struct Only {
        #[command(flatten)]
        rules: RuleArgs,
    }

    fn rules(args: &[&str]) -> Result<Rules, ConfigError> {
        Only::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
            .unwrap()
            .rules
            .validate(Duration::from_secs(30))
    }

    #[test]
    fn defaults_follow_the_rules_users_must_obey() {
        let rules = rules(&[]).unwrap();
        assert!(!rules.retry.enabled());
        assert_eq!(rules.hours.window().to_string(), "08:00-21:00");
        assert_eq!(rules.hours.default_zone(), Tz::UTC);
        assert!((rules.max_abandon_rate - 0.03).abs() < 1e-12);
        assert_eq!(rules.breaker_threshold, 20);
        assert_eq!(rules.breaker_cooldown, Duration::from_secs(60));
        assert!(rules.amd.is_none() && rules.dnc_file.is_none());
        assert_eq!(rules.abandon_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn abandon_after_takes_a_duration_or_zero() {
        let after =
            |value: &str| rules(&[&format!("--abandon-after={value}")]).map(|r| r.abandon_after);
        assert_eq!(after("1500ms").unwrap(), Some(Duration::from_millis(1500)));
        assert_eq!(after("3").unwrap(), Some(Duration::from_secs(3)));
        assert_eq!(after("0").unwrap(), None, "0: up to the target timeout");
        for bad in ["2 seconds", "-1", "61s"] {
            let error = after(bad).unwrap_err().to_string();
            assert!(
                error.contains("--abandon-after (DIALER_ABANDON_AFTER)"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn flags_set_the_rules() {
        let rules = rules(&[
            "--max-attempts",
            "3",
            "--retry-delay",
            "busy=2s,noanswer=off",
            "--calling-window",
            "09:00-17:30",
            "--default-timezone",
            "America/Chicago",
            "--max-abandon-rate",
            "2.5%",
            "--amd",
            "--machine-message",
            "sound:vm-goodbye",
            "--dnc-file",
            "dnc.txt",
        ])
        .unwrap();
        assert_eq!(rules.retry.max_attempts(), 3);
        assert_eq!(
            rules.retry.delay(crate::outcome::Outcome::Busy),
            Some(Duration::from_secs(2))
        );
        assert_eq!(rules.retry.delay(crate::outcome::Outcome::NoAnswer), None);
        assert_eq!(rules.hours.window().to_string(), "09:00-17:30");
        assert_eq!(rules.hours.default_zone(), Tz::America__Chicago);
        assert!((rules.max_abandon_rate - 0.025).abs() < 1e-12);
        let amd = rules.amd.unwrap();
        assert_eq!(amd.context, "dialer-amd");
        assert_eq!(amd.machine_message.as_deref(), Some("sound:vm-goodbye"));
        assert_eq!(rules.dnc_file, Some(PathBuf::from("dnc.txt")));
    }

    #[test]
    fn bad_values_name_their_flag_and_variable() {
        for (args, names) in [
            (
                &["--max-attempts", "0"][..],
                "--max-attempts (DIALER_MAX_ATTEMPTS)",
            ),
            (
                &["--retry-delay", "answered=1m"][..],
                "--retry-delay (DIALER_RETRY_DELAY)",
            ),
            (
                &["--calling-window", "8-21"][..],
                "--calling-window (DIALER_CALLING_WINDOW)",
            ),
            (
                &["--default-timezone", "Mars/Base"][..],
                "--default-timezone (DIALER_DEFAULT_TIMEZONE)",
            ),
            (
                &["--national-country-code", "999"][..],
                "--national-country-code (DIALER_NATIONAL_COUNTRY_CODE)",
            ),
            (
                &["--max-abandon-rate", "120"][..],
                "--max-abandon-rate (DIALER_MAX_ABANDON_RATE)",
            ),
            (
                &["--breaker-cooldown", "0s"][..],
                "--breaker-cooldown (DIALER_BREAKER_COOLDOWN)",
            ),
            (
                &["--amd", "--amd-context", "a,b"][..],
                "--amd-context (DIALER_AMD_CONTEXT)",
            ),
        ] {
            let error = rules(args).unwrap_err().to_string();
            assert!(error.contains(names), "{args:?}: {error}");
        }
    }

    #[test]
    fn a_short_ring_needs_force() {
        let parse = |args: &[&str]| {
            Only::try_parse_from(std::iter::once("t").chain(args.iter().copied()))
                .unwrap()
                .rules
        };
        let error = parse(&[])
            .validate(Duration::from_secs(4))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--call-timeout (CALL_TIMEOUT)") && error.contains("--force-short-ring"),
            "{error}"
        );
        assert!(
            parse(&["--force-short-ring"])
                .validate(Duration::from_secs(4))
                .is_ok()
        );
    }
}
