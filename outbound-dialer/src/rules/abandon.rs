//! Abandon rate: abandoned / live-answered calls, over the campaign and per day (UTC).
//! A live-answered call is abandoned when no target (agent, queue, bot) is connected
//! within [`ABANDON_AFTER`] of the callee's answer, or never. When the rate would pass
//! `--max-abandon-rate` (default 3 %), [`AbandonControl`] lowers the concurrency the
//! dialer may use, and raises it again a call at a time once the rate has recovered.
//! Abandoned callees hear a short identification message (the dialer plays it).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

/// Within this of the callee's answer a target must be connected (US TSR).
pub const ABANDON_AFTER: Duration = Duration::from_secs(2);
/// The default highest abandon rate (3 %).
pub const DEFAULT_MAX_RATE: f64 = 0.03;

/// How a live-answered call went, for the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveCall {
    /// A target was connected within [`ABANDON_AFTER`].
    Connected,
    /// Connected late or never.
    Abandoned,
}

impl LiveCall {
    /// Classifies an answered call from its answer and target-connected times (ms);
    /// `None` connected means the target never came.
    pub fn of(answered_ms: i64, connected_ms: Option<i64>) -> LiveCall {
        match connected_ms {
            Some(connected)
                if connected.saturating_sub(answered_ms) <= ABANDON_AFTER.as_millis() as i64 =>
            {
                LiveCall::Connected
            }
            _ => LiveCall::Abandoned,
        }
    }
}

/// Counts of one period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AbandonCounts {
    /// Live-answered calls.
    pub live: u64,
    /// Of them abandoned.
    pub abandoned: u64,
}

impl AbandonCounts {
    /// abandoned / live (0 without calls).
    pub fn rate(&self) -> f64 {
        if self.live == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.live as f64
        }
    }
}

/// Measures the rate and decides the concurrency allowed.
#[derive(Debug, Clone)]
pub struct AbandonControl {
    max_rate: f64,
    max_cc: u32,
    allowed: u32,
    total: AbandonCounts,
    days: BTreeMap<NaiveDate, AbandonCounts>,
}

/// What a recorded call changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing.
    Same,
    /// Concurrency lowered to this.
    Lowered(u32),
    /// Concurrency raised to this.
    Raised(u32),
}

impl AbandonControl {
    /// A campaign of at most `max_cc` calls that keeps the rate at or below `max_rate`
    /// (0..=1).
    pub fn new(max_rate: f64, max_cc: u32) -> Self {
        let max_cc = max_cc.max(1);
        AbandonControl {
            max_rate,
            max_cc,
            allowed: max_cc,
            total: AbandonCounts::default(),
            days: BTreeMap::new(),
        }
    }

    /// The same, with counts already stored (a resumed campaign).
    pub fn resumed(max_rate: f64, max_cc: u32, live: u64, abandoned: u64) -> Self {
        let mut control = AbandonControl::new(max_rate, max_cc);
        control.total = AbandonCounts { live, abandoned };
        if control.total.rate() > max_rate {
            control.allowed = 1;
        }
        control
    }

    /// Calls the dialer may have up at once now.
    pub fn allowed(&self) -> u32 {
        self.allowed
    }

    /// The campaign's counts.
    pub fn total(&self) -> AbandonCounts {
        self.total
    }

    /// The counts per day (UTC).
    pub fn per_day(&self) -> &BTreeMap<NaiveDate, AbandonCounts> {
        &self.days
    }

    /// The highest rate allowed.
    pub fn max_rate(&self) -> f64 {
        self.max_rate
    }

    /// Takes in a live-answered call that ended at `at`.
    pub fn record(&mut self, call: LiveCall, at: DateTime<Utc>) -> Change {
        let day = self.days.entry(at.date_naive()).or_default();
        day.live += 1;
        self.total.live += 1;
        if call == LiveCall::Abandoned {
            day.abandoned += 1;
            self.total.abandoned += 1;
        }
        let before = self.allowed;
        let rate = self.total.rate();
        // Would one more abandoned call take the rate over the limit?
        let next = AbandonCounts {
            live: self.total.live + 1,
            abandoned: self.total.abandoned + 1,
        }
        .rate();
        match call {
            // Over the limit: halve (multiplicative decrease, as the target cannot keep
            // up); close to it: one step down.
            LiveCall::Abandoned if rate > self.max_rate => self.allowed = (self.allowed / 2).max(1),
            LiveCall::Abandoned if next > self.max_rate => {
                self.allowed = self.allowed.saturating_sub(1).max(1)
            }
            // Recovered (even one more abandon would stay within): one step up.
            LiveCall::Connected if next <= self.max_rate => {
                self.allowed = (self.allowed + 1).min(self.max_cc)
            }
            _ => {}
        }
        match self.allowed.cmp(&before) {
            std::cmp::Ordering::Less => Change::Lowered(self.allowed),
            std::cmp::Ordering::Greater => Change::Raised(self.allowed),
            std::cmp::Ordering::Equal => Change::Same,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::clock::{Clock as _, FakeClock};

    #[test]
    fn a_call_is_abandoned_without_a_target_within_two_seconds() {
        assert_eq!(LiveCall::of(10_000, Some(11_500)), LiveCall::Connected);
        assert_eq!(LiveCall::of(10_000, Some(12_000)), LiveCall::Connected);
        assert_eq!(LiveCall::of(10_000, Some(12_001)), LiveCall::Abandoned);
        assert_eq!(LiveCall::of(10_000, None), LiveCall::Abandoned);
    }

    #[test]
    fn abandons_lower_the_concurrency_and_good_calls_bring_it_back() {
        let clock = FakeClock::at_rfc3339("2026-03-02T10:00:00Z");
        let mut control = AbandonControl::new(DEFAULT_MAX_RATE, 8);
        for _ in 0..10 {
            assert_eq!(
                control.record(LiveCall::Connected, clock.now()),
                Change::Same
            );
        }
        assert_eq!(control.allowed(), 8);
        // 1 of 11 is 9 %: over 3 %, halved; again: halved again.
        assert_eq!(
            control.record(LiveCall::Abandoned, clock.now()),
            Change::Lowered(4)
        );
        assert_eq!(
            control.record(LiveCall::Abandoned, clock.now()),
            Change::Lowered(2)
        );
        assert_eq!(
            control.record(LiveCall::Abandoned, clock.now()),
            Change::Lowered(1)
        );
        assert_eq!(
            control.record(LiveCall::Abandoned, clock.now()),
            Change::Same
        );
        assert_eq!(control.allowed(), 1, "never below one call");
        // Good calls: it stays low while the rate is above the limit...
        let mut good = 0;
        while control.allowed() == 1 {
            clock.advance(Duration::from_secs(60));
            control.record(LiveCall::Connected, clock.now());
            good += 1;
            assert!(good < 1000);
        }
        // ...and rises once even one more abandon would keep it within 3 %.
        let total = control.total();
        assert!(
            (total.abandoned + 1) as f64 / (total.live + 1) as f64 <= DEFAULT_MAX_RATE,
            "{total:?}"
        );
        while control.allowed() < 8 {
            control.record(LiveCall::Connected, clock.now());
        }
        assert_eq!(
            control.record(LiveCall::Connected, clock.now()),
            Change::Same,
            "capped at MAX_CC"
        );
    }

    #[test]
    fn near_the_limit_it_steps_down_one() {
        let now = FakeClock::at_rfc3339("2026-03-02T10:00:00Z").now();
        let mut control = AbandonControl::new(0.05, 10);
        for _ in 0..38 {
            control.record(LiveCall::Connected, now);
        }
        // 1 of 39 = 2.6 % (within 5 %), but a second would be 2 of 40 = 5 %: within, so
        // nothing; a third would pass it.
        assert_eq!(control.record(LiveCall::Abandoned, now), Change::Same);
        assert_eq!(control.record(LiveCall::Abandoned, now), Change::Lowered(9));
    }

    #[test]
    fn the_rate_is_kept_per_day_and_over_the_campaign() {
        let clock = FakeClock::at_rfc3339("2026-03-02T23:59:00Z");
        let mut control = AbandonControl::new(DEFAULT_MAX_RATE, 4);
        control.record(LiveCall::Connected, clock.now());
        control.record(LiveCall::Abandoned, clock.now());
        clock.advance(Duration::from_secs(120));
        control.record(LiveCall::Connected, clock.now());
        let days: Vec<_> = control
            .per_day()
            .iter()
            .map(|(d, c)| (d.to_string(), *c))
            .collect();
        assert_eq!(
            days,
            vec![
                (
                    "2026-03-02".to_owned(),
                    AbandonCounts {
                        live: 2,
                        abandoned: 1
                    }
                ),
                (
                    "2026-03-03".to_owned(),
                    AbandonCounts {
                        live: 1,
                        abandoned: 0
                    }
                ),
            ]
        );
        assert!((control.total().rate() - 1.0 / 3.0).abs() < 1e-9);
        assert_eq!(AbandonCounts::default().rate(), 0.0);
    }

    #[test]
    fn a_resumed_campaign_over_the_limit_starts_low() {
        assert_eq!(AbandonControl::resumed(0.03, 10, 100, 10).allowed(), 1);
        assert_eq!(AbandonControl::resumed(0.03, 10, 100, 1).allowed(), 10);
    }
}
