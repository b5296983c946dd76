//! Retries by outcome: off by default (one attempt per number, as the seed). With
//! `--max-attempts N` (N > 1) a number whose attempt ended busy, not answered or in
//! congestion is dialled again after that outcome's delay, up to N attempts in all; each
//! retry is a new attempt row. Outcomes that reached a person or must never be redialled
//! (answered, bad number, dnc, machine, target failed, interrupted) never retry.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::RuleError;
use crate::outcome::Outcome;

/// Most attempts per number that may be configured.
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;

/// The outcomes that retry by default and their default delays.
pub const DEFAULT_DELAYS: [(Outcome, Duration); 3] = [
    (Outcome::Busy, Duration::from_secs(5 * 60)),
    (Outcome::NoAnswer, Duration::from_secs(30 * 60)),
    (Outcome::Congestion, Duration::from_secs(10 * 60)),
];

/// Outcomes that may be configured to retry; the others never do.
const RETRYABLE: [Outcome; 5] = [
    Outcome::Busy,
    Outcome::NoAnswer,
    Outcome::Congestion,
    Outcome::Rejected,
    Outcome::Error,
];

/// When (and whether) a number is dialled again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    max_attempts: u32,
    delays: BTreeMap<Outcome, Duration>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::off()
    }
}

impl RetryPolicy {
    /// One attempt per number.
    pub fn off() -> Self {
        RetryPolicy::new(1, &[]).unwrap_or_else(|_| RetryPolicy {
            max_attempts: 1,
            delays: BTreeMap::new(),
        })
    }

    /// Up to `max_attempts` attempts per number; `overrides` (from [`parse_delays`]) change
    /// the default delays, add outcomes (`None` removes one).
    ///
    /// # Errors
    /// `max_attempts` of 0 or above [`MAX_ATTEMPTS_LIMIT`].
    pub fn new(
        max_attempts: u32,
        overrides: &[(Outcome, Option<Duration>)],
    ) -> Result<Self, RuleError> {
        if max_attempts == 0 || max_attempts > MAX_ATTEMPTS_LIMIT {
            return Err(RuleError::new(format!(
                "must be 1..={MAX_ATTEMPTS_LIMIT} attempts per number"
            )));
        }
        let mut delays: BTreeMap<Outcome, Duration> = DEFAULT_DELAYS.into_iter().collect();
        for &(outcome, delay) in overrides {
            match delay {
                Some(delay) => delays.insert(outcome, delay),
                None => delays.remove(&outcome),
            };
        }
        Ok(RetryPolicy {
            max_attempts,
            delays,
        })
    }

    /// Attempts per number at most.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Whether retries are on at all.
    pub fn enabled(&self) -> bool {
        self.max_attempts > 1 && !self.delays.is_empty()
    }

    /// The delay after `outcome`, when it retries.
    pub fn delay(&self, outcome: Outcome) -> Option<Duration> {
        if self.max_attempts > 1 {
            self.delays.get(&outcome).copied()
        } else {
            None
        }
    }

    /// When attempt `attempt` (1-based) ended with `outcome` at `ended_at`: when the next
    /// attempt is due, or `None` when the number is done.
    pub fn next_attempt_at(
        &self,
        outcome: Outcome,
        attempt: u32,
        ended_at: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if attempt >= self.max_attempts {
            return None;
        }
        let delay = self.delay(outcome)?;
        Some(ended_at + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX))
    }

    /// The configured delays, for logs and `--help`.
    pub fn describe(&self) -> String {
        if !self.enabled() {
            return "off (one attempt per number)".to_owned();
        }
        let delays: Vec<String> = self
            .delays
            .iter()
            .map(|(outcome, delay)| format!("{outcome}={}", format_duration(*delay)))
            .collect();
        format!("up to {} attempts; {}", self.max_attempts, delays.join(","))
    }
}

/// Reads `busy=5m,noanswer=30m,congestion=off`: an outcome (`no_answer` or `noanswer`),
/// `=`, and a delay (`90`, `90s`, `5m`, `2h`, `1h30m`, `1d`) or `off`.
///
/// # Errors
/// An unknown outcome, one that may never retry (answered, bad number, dnc, machine,
/// target failed, interrupted), a repeated outcome, or a bad delay.
pub fn parse_delays(text: &str) -> Result<Vec<(Outcome, Option<Duration>)>, RuleError> {
    let mut parsed: Vec<(Outcome, Option<Duration>)> = Vec::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let Some((name, delay)) = item.split_once('=') else {
            return Err(RuleError::new(format!(
                "{item:?} is not OUTCOME=DELAY (e.g. busy=5m)"
            )));
        };
        let name = name.trim().to_ascii_lowercase();
        let name = match name.as_str() {
            "noanswer" | "no-answer" => "no_answer",
            "badnumber" | "bad-number" => "bad_number",
            other => other,
        };
        let outcome: Outcome = name
            .parse()
            .map_err(|_| RuleError::new(format!("{name:?} is not an outcome")))?;
        if !RETRYABLE.contains(&outcome) {
            return Err(RuleError::new(format!(
                "{outcome} never retries (only busy, no_answer, congestion, rejected, error)"
            )));
        }
        if parsed.iter().any(|(seen, _)| *seen == outcome) {
            return Err(RuleError::new(format!("{outcome} is given twice")));
        }
        let delay = delay.trim();
        let delay = if delay.eq_ignore_ascii_case("off") {
            None
        } else {
            Some(parse_duration(delay)?)
        };
        parsed.push((outcome, delay));
    }
    Ok(parsed)
}

/// Reads `90`, `90s`, `5m`, `2h`, `1h30m`, `1d`, `500ms` (at most 30 days).
///
/// # Errors
/// Anything else.
pub fn parse_duration(text: &str) -> Result<Duration, RuleError> {
    let bad = || {
        RuleError::new(format!(
            "{text:?} is not a duration (e.g. 90s, 5m, 2h, 1h30m)"
        ))
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: u64 = text.parse().map_err(|_| bad())?;
        return check_limit(Duration::from_secs(seconds), text);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per = match unit {
            "ms" => 1,
            "s" => 1_000,
            "m" | "min" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return Err(bad()),
        };
        total += Duration::from_millis(value.checked_mul(millis_per).ok_or_else(bad)?);
    }
    check_limit(total, text)
}

fn check_limit(delay: Duration, text: &str) -> Result<Duration, RuleError> {
    if delay > Duration::from_secs(30 * 86_400) {
        return Err(RuleError::new(format!("{text:?} is longer than 30 days")));
    }
    Ok(delay)
}

/// `5m`, `1h30m`, `45s`, `500ms`: the short form [`parse_duration`] reads.
pub fn format_duration(delay: Duration) -> String {
    let ms = delay.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = delay.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::clock::{Clock as _, FakeClock, parse_utc};

    #[test]
    fn off_by_default_one_attempt_per_number() {
        let policy = RetryPolicy::default();
        assert!(!policy.enabled());
        let now = parse_utc("2026-03-01T12:00:00Z");
        for outcome in Outcome::ALL {
            assert_eq!(policy.next_attempt_at(outcome, 1, now), None, "{outcome}");
        }
        assert_eq!(policy.describe(), "off (one attempt per number)");
    }

    #[test]
    fn busy_noanswer_and_congestion_retry_by_default_the_others_never() {
        let policy = RetryPolicy::new(3, &[]).unwrap();
        let clock = FakeClock::at_rfc3339("2026-03-01T12:00:00Z");
        let now = clock.now();
        assert_eq!(
            policy.next_attempt_at(Outcome::Busy, 1, now),
            Some(parse_utc("2026-03-01T12:05:00Z"))
        );
        assert_eq!(
            policy.next_attempt_at(Outcome::NoAnswer, 1, now),
            Some(parse_utc("2026-03-01T12:30:00Z"))
        );
        assert_eq!(
            policy.next_attempt_at(Outcome::Congestion, 2, now),
            Some(parse_utc("2026-03-01T12:10:00Z"))
        );
        for never in [
            Outcome::Answered,
            Outcome::BadNumber,
            Outcome::Dnc,
            Outcome::Machine,
            Outcome::TargetFailed,
            Outcome::Interrupted,
            Outcome::Rejected,
            Outcome::Error,
        ] {
            assert_eq!(policy.next_attempt_at(never, 1, now), None, "{never}");
        }
    }

    #[test]
    fn retries_stop_at_the_limit() {
        let policy = RetryPolicy::new(3, &parse_delays("busy=2s").unwrap()).unwrap();
        let clock = FakeClock::at_rfc3339("2026-03-01T12:00:00Z");
        let mut attempts = 1;
        while let Some(due) = policy.next_attempt_at(Outcome::Busy, attempts, clock.now()) {
            assert_eq!(due - clock.now(), chrono::Duration::seconds(2));
            clock.set(due);
            attempts += 1;
        }
        assert_eq!(attempts, 3);
        assert_eq!(clock.now(), parse_utc("2026-03-01T12:00:04Z"));
    }

    #[test]
    fn delays_are_configurable_per_outcome() {
        let overrides = parse_delays("busy=5m, noanswer=1h30m,congestion=off,rejected=90").unwrap();
        let policy = RetryPolicy::new(2, &overrides).unwrap();
        assert_eq!(policy.delay(Outcome::Busy), Some(Duration::from_secs(300)));
        assert_eq!(
            policy.delay(Outcome::NoAnswer),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(policy.delay(Outcome::Congestion), None);
        assert_eq!(
            policy.delay(Outcome::Rejected),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            policy.describe(),
            "up to 2 attempts; busy=5m,no_answer=1h30m,rejected=1m30s"
        );
    }

    #[test]
    fn outcomes_that_must_not_retry_are_refused() {
        for text in [
            "answered=1m",
            "bad_number=1m",
            "dnc=1m",
            "machine=1m",
            "target_failed=1m",
            "interrupted=1m",
        ] {
            let error = parse_delays(text).unwrap_err().to_string();
            assert!(error.contains("never retries"), "{text}: {error}");
        }
        for bad in [
            "busy",
            "voicemail=1m",
            "busy=5x",
            "busy=1m,busy=2m",
            "busy=",
            "busy=m",
        ] {
            assert!(parse_delays(bad).is_err(), "{bad}");
        }
        assert!(RetryPolicy::new(0, &[]).is_err());
        assert!(RetryPolicy::new(MAX_ATTEMPTS_LIMIT + 1, &[]).is_err());
    }

    #[test]
    fn durations_read_and_print_in_the_short_form() {
        for (text, secs) in [
            ("90", 90),
            ("90s", 90),
            ("5m", 300),
            ("2h", 7200),
            ("1d", 86_400),
        ] {
            assert_eq!(
                parse_duration(text).unwrap(),
                Duration::from_secs(secs),
                "{text}"
            );
        }
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert!(parse_duration("31d").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }
}
