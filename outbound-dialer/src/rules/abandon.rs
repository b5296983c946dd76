//! Abandon rate: abandoned / live-answered calls, over the campaign's last
//! [`WINDOW_DAYS`] days and per day (UTC). A live-answered call is abandoned when no
//! target (agent, queue, bot) is connected within [`ABANDON_AFTER`] of the callee's live
//! moment (its answer, or the AMD verdict), or never. When the rate would pass
//! `--max-abandon-rate` (default 3 %), [`AbandonControl`] lowers the concurrency the
//! dialer may use, and raises it again a call at a time once the rate has recovered.
//! The counts are the campaign's, read from the store ([`AbandonControl::observe`]), so
//! every dialer of a shared campaign throttles on the same rate. Abandoned callees hear a
//! short identification message (the dialer plays it, and cuts a callee still waiting
//! for a target at `--abandon-after`).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

/// Within this of the callee's answer a target must be connected (US TSR).
pub const ABANDON_AFTER: Duration = Duration::from_secs(2);
/// The default highest abandon rate (3 %).
pub const DEFAULT_MAX_RATE: f64 = 0.03;
/// The rate is over this many days (UTC, today included; US TSR: per 30-day period).
pub const WINDOW_DAYS: u32 = 30;

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
    /// Whether the store's counts were taken in once (the first sets the concurrency
    /// outright; later ones step it by the calls they add).
    observed: bool,
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
            observed: false,
        }
    }

    /// The first day of the window that ends `today` (UTC).
    pub fn window_start(today: NaiveDate) -> NaiveDate {
        today
            .checked_sub_days(chrono::Days::new(u64::from(WINDOW_DAYS - 1)))
            .unwrap_or(NaiveDate::MIN)
    }

    /// Takes in the campaign's counts per day as the store has them (every dialer's
    /// calls); days before the window ending `today` are dropped. The first observation
    /// sets the concurrency from the rate (over the limit: one call; else `max_cc`);
    /// later ones step it for the calls added since, as [`AbandonControl::record`] does
    /// for one.
    pub fn observe(
        &mut self,
        mut days: BTreeMap<NaiveDate, AbandonCounts>,
        today: NaiveDate,
    ) -> Change {
        days = days.split_off(&Self::window_start(today));
        let total = days
            .values()
            .fold(AbandonCounts::default(), |sum, day| AbandonCounts {
                live: sum.live + day.live,
                abandoned: sum.abandoned + day.abandoned,
            });
        let before = self.allowed;
        let connected = |c: AbandonCounts| c.live.saturating_sub(c.abandoned);
        let new_abandoned = total.abandoned.saturating_sub(self.total.abandoned);
        let new_connected = connected(total).saturating_sub(connected(self.total));
        self.total = total;
        self.days = days;
        if self.observed {
            self.step(new_abandoned, new_connected);
        } else {
            self.observed = true;
            self.allowed = if total.rate() > self.max_rate {
                1
            } else {
                self.max_cc
            };
        }
        self.change_from(before)
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

    /// Takes in one live-answered call that ended at `at` (counted here, not read from
    /// the store).
    pub fn record(&mut self, call: LiveCall, at: DateTime<Utc>) -> Change {
        let day = self.days.entry(at.date_naive()).or_default();
        day.live += 1;
        self.total.live += 1;
        let abandoned = u64::from(call == LiveCall::Abandoned);
        day.abandoned += abandoned;
        self.total.abandoned += abandoned;
        let before = self.allowed;
        self.step(abandoned, 1 - abandoned);
        self.change_from(before)
    }

    /// Steps the concurrency for calls just counted (`abandoned` and `connected` of them),
    /// judged on the rate with them.
    fn step(&mut self, abandoned: u64, connected: u64) {
        let rate = self.total.rate();
        // Would one more abandoned call take the rate over the limit?
        let next = AbandonCounts {
            live: self.total.live + 1,
            abandoned: self.total.abandoned + 1,
        }
        .rate();
        for _ in 0..abandoned.min(64) {
            if rate > self.max_rate {
                // Over the limit: halve (multiplicative decrease, as the target cannot
                // keep up).
                self.allowed = (self.allowed / 2).max(1);
            } else if next > self.max_rate {
                // Close to it: one step down.
                self.allowed = self.allowed.saturating_sub(1).max(1);
            }
        }
        // Recovered (even one more abandon would stay within): a step up per good call
        // since the rate recovered (the calls counted here came in one after the other).
        if connected > 0 && next <= self.max_rate {
            let recovered_at = ((self.total.abandoned + 1) as f64 / self.max_rate).ceil() as u64;
            let since = (self.total.live + 1).saturating_sub(recovered_at);
            let up = u32::try_from(connected.min(since).max(1)).unwrap_or(u32::MAX);
            self.allowed = self.allowed.saturating_add(up).min(self.max_cc);
        }
    }

    fn change_from(&self, before: u32) -> Change {
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

    fn day(date: &str, live: u64, abandoned: u64) -> (NaiveDate, AbandonCounts) {
        (date.parse().unwrap(), AbandonCounts { live, abandoned })
    }

    #[test]
    fn a_resumed_campaign_over_the_limit_starts_low() {
        let today: NaiveDate = "2026-03-02".parse().unwrap();
        let mut control = AbandonControl::new(0.03, 10);
        control.observe([day("2026-03-01", 100, 10)].into(), today);
        assert_eq!(control.allowed(), 1);
        let mut control = AbandonControl::new(0.03, 10);
        assert_eq!(
            control.observe([day("2026-03-01", 100, 1)].into(), today),
            Change::Same
        );
        assert_eq!(control.allowed(), 10);
    }

    #[test]
    fn the_stores_counts_step_the_concurrency_by_the_calls_they_add() {
        let clock = FakeClock::at_rfc3339("2026-03-02T10:00:00Z");
        let today = clock.now().date_naive();
        let mut control = AbandonControl::new(DEFAULT_MAX_RATE, 8);
        control.observe([day("2026-03-02", 10, 0)].into(), today);
        assert_eq!(control.allowed(), 8);
        // Another dialer's abandon shows in the campaign's counts: 1 of 11 is 9 %, halved.
        assert_eq!(
            control.observe([day("2026-03-02", 11, 1)].into(), today),
            Change::Lowered(4)
        );
        // Nothing new: nothing changes.
        assert_eq!(
            control.observe([day("2026-03-02", 11, 1)].into(), today),
            Change::Same
        );
        // Two more at once: halved twice.
        assert_eq!(
            control.observe([day("2026-03-02", 13, 3)].into(), today),
            Change::Lowered(1)
        );
        // Good calls while the rate stays above the limit: still one call.
        assert_eq!(
            control.observe([day("2026-03-02", 50, 3)].into(), today),
            Change::Same
        );
        // 3 of 133: one more abandon would be 4 of 134 = 2.99 %, within 3 % for the first
        // time: a step up; then a step per good call.
        assert_eq!(
            control.observe([day("2026-03-02", 133, 3)].into(), today),
            Change::Raised(2)
        );
        assert_eq!(
            control.observe([day("2026-03-02", 135, 3)].into(), today),
            Change::Raised(4)
        );
        assert_eq!(
            control.total(),
            AbandonCounts {
                live: 135,
                abandoned: 3
            }
        );
        assert_eq!(
            control.observe([day("2026-03-02", 300, 3)].into(), today),
            Change::Raised(8),
            "capped at MAX_CC"
        );
    }

    #[test]
    fn days_older_than_the_window_no_longer_count() {
        let clock = FakeClock::at_rfc3339("2026-03-31T12:00:00Z");
        let mut control = AbandonControl::new(DEFAULT_MAX_RATE, 4);
        let days: BTreeMap<_, _> = [
            day("2026-03-01", 10, 5),
            day("2026-03-02", 10, 0),
            day("2026-03-31", 10, 0),
        ]
        .into();
        control.observe(days.clone(), clock.now().date_naive());
        // 2026-03-02 ..= 2026-03-31 is the window: March 1st's abandons are out.
        assert_eq!(
            AbandonControl::window_start(clock.now().date_naive()).to_string(),
            "2026-03-02"
        );
        assert_eq!(
            control.total(),
            AbandonCounts {
                live: 20,
                abandoned: 0
            }
        );
        assert_eq!(control.per_day().len(), 2);
        assert_eq!(control.allowed(), 4);
        // A day earlier, March 1st is in and the rate (5 of 30) is over the limit.
        let mut earlier = AbandonControl::new(DEFAULT_MAX_RATE, 4);
        earlier.observe(days, "2026-03-30".parse().unwrap());
        assert_eq!(
            earlier.total(),
            AbandonCounts {
                live: 30,
                abandoned: 5
            }
        );
        assert_eq!(earlier.allowed(), 1);
    }
}
