//! The rules as the campaign loop uses them: asked before each originate (DNC, calling
//! hours, breaker, abandon-rate concurrency) and told each outcome (retry scheduling,
//! breaker and abandon accounting). Holds the run's rule state; no I/O. The DNC check
//! reads the store's `dnc` table (the campaign loop asks it before these rules).
//! What waits for a time (a retry's delay, a calling window) waits in the store
//! (`numbers.not_before`), so it survives a crash and any dialer of the campaign takes it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::abandon::{AbandonControl, Change};
use super::args::Rules;
use super::breaker::{Breaker, Gate, Transition};
use super::clock::{Clock, from_unix_millis};
use super::hours::CallingHours;
use super::retry::RetryPolicy;
use crate::call::CallEnd;
use crate::outcome::Outcome;

/// A number to dial again, not before `due`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// The number's row id.
    pub number_id: i64,
    /// When the retry is due.
    pub due: DateTime<Utc>,
}

/// Whether a number may be dialled now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberVerdict {
    /// Dial it.
    Dial,
    /// Never dial it: store this outcome and message instead (unknown zone).
    Skip(Outcome, String),
    /// Outside its calling window: not before this.
    Later(DateTime<Utc>),
}

/// What the loop must wait for before starting another call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartGate {
    /// A call may start.
    Go,
    /// The abandon rate allows this many calls at once and they are running.
    Concurrency(u32),
    /// The circuit breaker is open until then.
    Breaker {
        /// When to ask again.
        until: DateTime<Utc>,
        /// Why.
        reason: String,
    },
}

/// The run's rule state.
#[derive(Debug)]
pub struct CampaignRules {
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    hours: CallingHours,
    abandon: AbandonControl,
    breaker: Breaker,
    /// Attempts in flight: attempt id → (number id, attempt number).
    attempts: HashMap<i64, (i64, u32)>,
    /// The breaker trip last announced (said once per trip).
    announced_trip: u32,
    max_cc: u32,
}

impl CampaignRules {
    /// The rules of a run of at most `max_cc` calls at once, on `clock`.
    pub fn new(rules: &Rules, max_cc: u32, clock: Arc<dyn Clock>) -> Self {
        tracing::info!(
            retries = %rules.retry.describe(),
            calling_window = %rules.hours.window(),
            default_timezone = %rules.hours.default_zone(),
            national_country_code = %rules.hours.national().map_or("none", |n| n.code()),
            max_abandon_rate_pct = rules.max_abandon_rate * 100.0,
            amd = rules.amd.is_some(),
            "campaign rules"
        );
        CampaignRules {
            clock,
            retry: rules.retry.clone(),
            hours: rules.hours.clone(),
            abandon: AbandonControl::new(rules.max_abandon_rate, max_cc),
            breaker: Breaker::new(rules.breaker_threshold, rules.breaker_cooldown),
            attempts: HashMap::new(),
            announced_trip: 0,
            max_cc: max_cc.max(1),
        }
    }

    /// Now, on the rules' clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Asked right before a number's originate (after the store's DNC check): its
    /// calling window.
    pub fn check_number(&mut self, number: &str, data: &BTreeMap<String, String>) -> NumberVerdict {
        let now = self.clock.now();
        match self.hours.next_open(number, data, now) {
            Ok(open) if open <= now => NumberVerdict::Dial,
            Ok(open) => NumberVerdict::Later(open),
            Err(error) => NumberVerdict::Skip(
                Outcome::Error,
                format!("not dialled: its calling hours are unknown: {error}"),
            ),
        }
    }

    /// A call may start (breaker, abandon-rate concurrency) with `active` calls whose
    /// outcome is not accounted yet?
    pub fn start_gate(&mut self, active: u32) -> StartGate {
        let allowed = self.abandon.allowed();
        // Only the abandon control's own limit: MAX_CC itself is the pacer's.
        if allowed < self.max_cc && active >= allowed {
            return StartGate::Concurrency(allowed);
        }
        match self.breaker.gate(self.clock.now()) {
            Gate::Open => StartGate::Go,
            Gate::Probe => {
                tracing::warn!("circuit breaker: one probe call after the cool-down");
                StartGate::Go
            }
            Gate::Wait { until, reason } => StartGate::Breaker { until, reason },
        }
    }

    /// Whether the breaker's current trip was announced; marks it announced.
    pub fn announce_trip(&mut self) -> bool {
        let trips = self.breaker.trips();
        let first = trips != self.announced_trip;
        self.announced_trip = trips;
        first
    }

    /// The circuit breaker (its pauses so far, whether a probe is out).
    pub fn breaker(&self) -> &Breaker {
        &self.breaker
    }

    /// An attempt was written and will be dialled.
    pub fn started(&mut self, attempt_id: i64, number_id: i64, attempt: u32) {
        self.attempts.insert(attempt_id, (number_id, attempt));
    }

    /// An attempt ended: accounts it, and says when the number is to be dialled again
    /// when its outcome asks for a retry (the caller stores it).
    pub fn ended(&mut self, attempt_id: i64, end: &CallEnd) -> Option<Retry> {
        let now = self.clock.now();
        match self
            .breaker
            .record(end.cause.filter(|_| end.outcome != Outcome::Dnc), now)
        {
            Transition::Opened(reason) => {
                tracing::error!(%reason, "pausing new calls");
            }
            Transition::Closed => {
                tracing::info!("circuit breaker closed: calls get through the trunk again")
            }
            Transition::None => {}
        }
        // Live-answered calls count through the store ([`CampaignRules::observe_abandon`]),
        // which has every dialer's.
        let (number_id, attempt) = self.attempts.remove(&attempt_id)?;
        let due = self.retry.next_attempt_at(
            end.outcome,
            attempt,
            from_unix_millis(end.ended_at).max(now),
        )?;
        tracing::info!(outcome = %end.outcome, attempt, due = %due.to_rfc3339(), "retry scheduled");
        Some(Retry { number_id, due })
    }

    /// Takes in the campaign's abandon counts per day as the store has them (every
    /// dialer's calls, earlier runs' too): the concurrency follows the campaign's rate.
    pub fn observe_abandon(
        &mut self,
        days: BTreeMap<chrono::NaiveDate, super::abandon::AbandonCounts>,
    ) -> Change {
        let change = self.abandon.observe(days, self.clock.now().date_naive());
        self.log_abandon_change(change);
        change
    }

    fn log_abandon_change(&self, change: Change) {
        let total = self.abandon.total();
        match change {
            Change::Lowered(to) => tracing::warn!(
                rate_pct = total.rate() * 100.0,
                max_pct = self.abandon.max_rate() * 100.0,
                live_answered = total.live,
                abandoned = total.abandoned,
                concurrency = to,
                "abandon rate too high: concurrency lowered"
            ),
            Change::Raised(to) => tracing::info!(
                rate_pct = total.rate() * 100.0,
                live_answered = total.live,
                abandoned = total.abandoned,
                concurrency = to,
                "abandon rate recovered: concurrency raised"
            ),
            Change::Same => {}
        }
    }

    /// Since when (Unix ms) the abandon rate's window runs: the first UTC day of it.
    pub fn abandon_window_start(&self) -> i64 {
        AbandonControl::window_start(self.clock.now().date_naive())
            .and_hms_opt(0, 0, 0)
            .map_or(0, |start| start.and_utc().timestamp_millis())
    }

    /// The abandon counts, for the summary.
    pub fn abandon(&self) -> &AbandonControl {
        &self.abandon
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::rules::clock::{FakeClock, parse_utc};
    use crate::rules::hours::{CallingHours, CallingWindow};

    fn end(outcome: Outcome, cause: Option<i64>, at: &str) -> CallEnd {
        CallEnd {
            outcome,
            cause,
            cause_text: None,
            message: None,
            ended_at: parse_utc(at).timestamp_millis(),
            live_at: None,
            connected_at: None,
        }
    }

    fn rules(clock: &Arc<FakeClock>, configure: impl FnOnce(&mut Rules)) -> CampaignRules {
        let mut rules = Rules::default();
        configure(&mut rules);
        CampaignRules::new(&rules, 4, clock.clone())
    }

    #[test]
    fn a_number_outside_its_window_waits_until_it_opens() {
        let clock = Arc::new(FakeClock::at_rfc3339("2026-03-02T07:59:50Z"));
        let mut rules = rules(&clock, |r| {
            r.hours = CallingHours::new(CallingWindow::default(), chrono_tz::Tz::UTC)
        });
        let data = BTreeMap::new();
        assert_eq!(
            rules.check_number("1001", &data),
            NumberVerdict::Later(parse_utc("2026-03-02T08:00:00Z"))
        );
        clock.advance(Duration::from_secs(10));
        assert_eq!(rules.check_number("1001", &data), NumberVerdict::Dial);
    }

    #[test]
    fn outcomes_schedule_retries_and_feed_the_breaker() {
        let clock = Arc::new(FakeClock::at_rfc3339("2026-03-02T12:00:00Z"));
        let mut rules = rules(&clock, |r| {
            r.retry =
                RetryPolicy::new(2, &[(Outcome::Busy, Some(Duration::from_secs(5)))]).unwrap();
            r.breaker_threshold = 2;
        });
        rules.started(10, 1, 1);
        rules.started(11, 2, 2);
        let retry = rules.ended(10, &end(Outcome::Busy, Some(17), "2026-03-02T12:00:00Z"));
        assert_eq!(
            retry,
            Some(Retry {
                number_id: 1,
                due: parse_utc("2026-03-02T12:00:05Z")
            })
        );
        // The last allowed attempt: no retry.
        assert_eq!(
            rules.ended(11, &end(Outcome::Busy, Some(17), "2026-03-02T12:00:00Z")),
            None
        );
        // Two trunk failures in a row: new calls wait.
        assert_eq!(rules.start_gate(0), StartGate::Go);
        for id in [12, 13] {
            rules.started(id, 3, 1);
            rules.ended(
                id,
                &end(Outcome::Congestion, Some(34), "2026-03-02T12:00:05Z"),
            );
        }
        assert!(matches!(rules.start_gate(0), StartGate::Breaker { .. }));
        assert!(rules.announce_trip());
        assert!(!rules.announce_trip(), "said once per trip");
    }

    fn counts(live: u64, abandoned: u64) -> super::super::abandon::AbandonCounts {
        super::super::abandon::AbandonCounts { live, abandoned }
    }

    #[test]
    fn a_resumed_campaign_starts_from_the_stored_rate() {
        let clock = Arc::new(FakeClock::at_rfc3339("2026-03-02T12:00:00Z"));
        let mut rules = rules(&clock, |_| {});
        let yesterday = parse_utc("2026-03-01T12:00:00Z").date_naive();
        rules.observe_abandon([(yesterday, counts(2, 1))].into());
        assert_eq!(rules.abandon().total().live, 2);
        assert_eq!(rules.abandon().total().abandoned, 1);
        assert_eq!(rules.abandon().per_day().len(), 1);
        // 50 % is over 3 %: the run starts with fewer calls.
        assert!(matches!(rules.start_gate(3), StartGate::Concurrency(_)));
        assert_eq!(
            rules.abandon_window_start(),
            parse_utc("2026-02-01T00:00:00Z").timestamp_millis(),
            "30 UTC days, today included"
        );
    }

    #[test]
    fn abandoned_calls_lower_the_concurrency_allowed() {
        let clock = Arc::new(FakeClock::at_rfc3339("2026-03-02T12:00:00Z"));
        let mut rules = rules(&clock, |_| {});
        let today = clock.now().date_naive();
        rules.observe_abandon(BTreeMap::new());
        assert_eq!(rules.start_gate(3), StartGate::Go);
        // An abandoned call (this dialer's or another's) in the campaign's counts.
        assert_eq!(
            rules.observe_abandon([(today, counts(1, 1))].into()),
            Change::Lowered(2)
        );
        assert_eq!(rules.start_gate(2), StartGate::Concurrency(2));
        assert_eq!(rules.start_gate(1), StartGate::Go);
        // A call's end counts through the store's counts only (no double count).
        rules.started(2, 1, 1);
        let connected = CallEnd {
            live_at: Some(clock.now().timestamp_millis()),
            connected_at: Some(clock.now().timestamp_millis() + 500),
            ..end(Outcome::Answered, Some(16), "2026-03-02T12:00:09Z")
        };
        rules.ended(2, &connected);
        assert_eq!(rules.abandon().total().live, 1);
        rules.observe_abandon([(today, counts(2, 1))].into());
        assert_eq!(rules.abandon().total().live, 2);
        assert_eq!(rules.abandon().total().abandoned, 1);
    }
}
