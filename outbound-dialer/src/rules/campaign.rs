//! The rules as the campaign loop uses them: asked before each originate (DNC, calling
//! hours, breaker, abandon-rate concurrency) and told each outcome (retry scheduling,
//! breaker and abandon accounting). Holds the run's rule state; no I/O but the DNC file.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::abandon::{AbandonControl, Change, LiveCall};
use super::args::Rules;
use super::breaker::{Breaker, Gate, Transition};
use super::clock::{Clock, from_unix_millis};
use super::dnc::{DncError, DncFile};
use super::hours::CallingHours;
use super::retry::RetryPolicy;
use crate::call::CallEnd;
use crate::outcome::Outcome;

/// Whether a number may be dialled now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NumberVerdict {
    /// Dial it.
    Dial,
    /// Never dial it: store this outcome and message instead (DNC, unknown zone).
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
    dnc: Option<DncFile>,
    abandon: AbandonControl,
    breaker: Breaker,
    /// Attempts in flight: attempt id → (number id, attempt number).
    attempts: HashMap<i64, (i64, u32)>,
    /// Retries due: (when, number id).
    retries: BinaryHeap<Reverse<(DateTime<Utc>, i64)>>,
    /// Numbers outside their window: number id → when it opens.
    waiting: HashMap<i64, DateTime<Utc>>,
    /// The breaker trip last announced (said once per trip).
    announced_trip: u32,
    max_cc: u32,
}

impl CampaignRules {
    /// The rules of a run of at most `max_cc` calls at once, on `clock`.
    ///
    /// # Errors
    /// The DNC file cannot be read.
    pub fn new(rules: &Rules, max_cc: u32, clock: Arc<dyn Clock>) -> Result<Self, DncError> {
        let dnc = rules.dnc_file.as_deref().map(DncFile::open).transpose()?;
        if let Some(dnc) = &dnc {
            tracing::info!(file = %dnc.path().display(), numbers = dnc.list().len(), "do-not-call list read");
        }
        tracing::info!(
            retries = %rules.retry.describe(),
            calling_window = %rules.hours.window(),
            default_timezone = %rules.hours.default_zone(),
            max_abandon_rate_pct = rules.max_abandon_rate * 100.0,
            amd = rules.amd.is_some(),
            "campaign rules"
        );
        Ok(CampaignRules {
            clock,
            retry: rules.retry.clone(),
            hours: rules.hours.clone(),
            dnc,
            abandon: AbandonControl::new(rules.max_abandon_rate, max_cc),
            breaker: Breaker::new(rules.breaker_threshold, rules.breaker_cooldown),
            attempts: HashMap::new(),
            retries: BinaryHeap::new(),
            waiting: HashMap::new(),
            announced_trip: 0,
            max_cc: max_cc.max(1),
        })
    }

    /// Now, on the rules' clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Whether a number is on the DNC list (as last read; for the import's count).
    pub fn is_dnc(&self, number: &str) -> bool {
        self.dnc
            .as_ref()
            .is_some_and(|dnc| dnc.list().contains(number))
    }

    /// Asked right before a number's originate: the DNC file (re-read if it changed),
    /// then its calling window.
    pub fn check_number(
        &mut self,
        number_id: i64,
        number: &str,
        data: &BTreeMap<String, String>,
    ) -> NumberVerdict {
        if let Some(dnc) = &mut self.dnc {
            dnc.refresh();
            if dnc.list().contains(number) {
                return NumberVerdict::Skip(
                    Outcome::Dnc,
                    format!(
                        "not dialled: on the do-not-call list {}",
                        dnc.path().display()
                    ),
                );
            }
        }
        let now = self.clock.now();
        match self.hours.next_open(number, data, now) {
            Ok(open) if open <= now => {
                self.waiting.remove(&number_id);
                NumberVerdict::Dial
            }
            Ok(open) => {
                self.waiting.insert(number_id, open);
                NumberVerdict::Later(open)
            }
            Err(error) => NumberVerdict::Skip(
                Outcome::Error,
                format!("not dialled: its calling hours are unknown: {error}"),
            ),
        }
    }

    /// Whether a number waits for its window (asked before reading it again).
    pub fn is_waiting(&self, number_id: i64) -> bool {
        self.waiting
            .get(&number_id)
            .is_some_and(|open| *open > self.clock.now())
    }

    /// A call may start (breaker, abandon-rate concurrency) with `active` calls up?
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

    /// An attempt was written and will be dialled.
    pub fn started(&mut self, attempt_id: i64, number_id: i64, attempt: u32) {
        self.attempts.insert(attempt_id, (number_id, attempt));
    }

    /// An attempt ended: accounts it, and schedules the number's retry when its outcome
    /// asks for one. Returns when the retry is due.
    pub fn ended(&mut self, attempt_id: i64, end: &CallEnd) -> Option<DateTime<Utc>> {
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
        if let Some(live_at) = end.live_at {
            let call = LiveCall::of(live_at, end.connected_at);
            match self.abandon.record(call, now) {
                Change::Lowered(to) => tracing::warn!(
                    rate_pct = self.abandon.total().rate() * 100.0,
                    max_pct = self.abandon.max_rate() * 100.0,
                    concurrency = to,
                    "abandon rate too high: concurrency lowered"
                ),
                Change::Raised(to) => tracing::info!(
                    rate_pct = self.abandon.total().rate() * 100.0,
                    concurrency = to,
                    "abandon rate recovered: concurrency raised"
                ),
                Change::Same => {}
            }
        }
        let (number_id, attempt) = self.attempts.remove(&attempt_id)?;
        let due = self.retry.next_attempt_at(
            end.outcome,
            attempt,
            from_unix_millis(end.ended_at).max(now),
        )?;
        tracing::info!(outcome = %end.outcome, attempt, due = %due.to_rfc3339(), "retry scheduled");
        self.retries.push(Reverse((due, number_id)));
        Some(due)
    }

    /// Numbers whose retry is due now (each returned once).
    pub fn due_retries(&mut self) -> Vec<i64> {
        let now = self.clock.now();
        let mut due = Vec::new();
        while let Some(Reverse((at, number_id))) = self.retries.peek().copied() {
            if at > now {
                break;
            }
            self.retries.pop();
            due.push(number_id);
        }
        due
    }

    /// Retries not yet due.
    pub fn scheduled_retries(&self) -> usize {
        self.retries.len()
    }

    /// The next moment something becomes callable (a retry due, a window opening).
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let now = self.clock.now();
        let retry = self.retries.peek().map(|Reverse((at, _))| *at);
        let window = self.waiting.values().copied().filter(|at| *at > now).min();
        retry.into_iter().chain(window).min()
    }

    /// The abandon counts, for the summary.
    pub fn abandon(&self) -> &AbandonControl {
        &self.abandon
    }
}
