//! Time as the rules see it: a [`Clock`] trait with the system clock for the dialer and a
//! [`FakeClock`] that tests set and advance by hand.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};

/// Where the rules read the time from.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        DateTime::<Utc>::from(SystemTime::now())
    }
}

/// A clock that only moves when told to (tests).
#[derive(Debug)]
pub struct FakeClock {
    now: Mutex<DateTime<Utc>>,
}

impl FakeClock {
    /// A clock showing `now`.
    pub fn at(now: DateTime<Utc>) -> Self {
        FakeClock {
            now: Mutex::new(now),
        }
    }

    /// A clock showing an RFC 3339 time (tests; panics on a malformed literal).
    pub fn at_rfc3339(now: &str) -> Self {
        FakeClock::at(parse_utc(now))
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An RFC 3339 literal as UTC (tests and examples; panics on a malformed literal).
pub fn parse_utc(at: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(at)
        .unwrap_or_else(|e| panic!("bad RFC 3339 literal {at:?}: {e}"))
        .with_timezone(&Utc)
}

/// Milliseconds since the Unix epoch (the store's time) as a UTC time.
pub fn from_unix_millis(ms: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

/// How long from `now` until `then` (zero when `then` has passed).
pub fn until(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (then - now).to_std().unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fake_clock_moves_only_when_told() {
        let clock = FakeClock::at_rfc3339("2026-03-01T12:00:00Z");
        assert_eq!(clock.now(), parse_utc("2026-03-01T12:00:00Z"));
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), parse_utc("2026-03-01T12:01:30Z"));
        clock.set(parse_utc("2027-01-01T00:00:00+01:00"));
        assert_eq!(clock.now(), parse_utc("2026-12-31T23:00:00Z"));
    }

    #[test]
    fn the_system_clock_is_near_system_time() {
        let now = SystemClock.now();
        let system = DateTime::<Utc>::from(SystemTime::now());
        assert!((system - now).num_seconds().abs() < 5);
    }

    #[test]
    fn until_never_goes_negative_and_millis_convert() {
        let a = parse_utc("2026-03-01T12:00:00Z");
        let b = parse_utc("2026-03-01T12:00:05Z");
        assert_eq!(until(a, b), Duration::from_secs(5));
        assert_eq!(until(b, a), Duration::ZERO);
        assert_eq!(from_unix_millis(b.timestamp_millis()), b);
    }
}
