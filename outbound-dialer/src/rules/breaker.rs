//! Circuit breaker: when the most recent attempts all failed at the trunk (by default 20
//! in a row with cause 34 / 38 / 41 / 42 — SIP 503 arrives as 34), the campaign stops
//! starting calls instead of burning its list, and says why. After a cool-down one probe
//! call is let through: if it gets past the trunk the breaker closes, if not it opens
//! again for another cool-down.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Failures in a row that open the breaker by default.
pub const DEFAULT_THRESHOLD: u32 = 20;
/// How long it stays open by default before a probe.
pub const DEFAULT_COOLDOWN: Duration = Duration::from_secs(60);

/// Probe times a pause keeps (the latest; [`Pause::probe_count`] counts them all): a trunk
/// down for a day probes every cool-down.
pub const PROBES_KEPT: usize = 10;
/// Pauses the breaker keeps (the latest).
pub const PAUSES_KEPT: usize = 100;

/// Q.850 causes that mean the trunk (not the callee) failed.
pub const TRUNK_FAILURE_CAUSES: [i64; 4] = [34, 38, 41, 42];

/// Whether an ended attempt's cause says the trunk failed.
pub fn is_trunk_failure(cause: Option<i64>) -> bool {
    cause.is_some_and(|c| TRUNK_FAILURE_CAUSES.contains(&c))
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: DateTime<Utc>,
    },
    /// One probe is out; nothing else starts until it ends.
    Probing,
}

/// What the breaker lets through now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Calls may start.
    Open,
    /// This call is the probe: start it, and no other until it ends.
    Probe,
    /// No call may start until `until` (or, while probing, until the probe ends).
    Wait {
        /// When to ask again (for a probe out: a short while).
        until: DateTime<Utc>,
        /// Why, in words.
        reason: String,
    },
}

/// One pause of the campaign by the breaker: from its trip to the call that got through
/// (a failed probe continues the same pause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pause {
    /// When it opened.
    pub since: DateTime<Utc>,
    /// Why, in words (as when it opened).
    pub reason: String,
    /// When the latest probe calls were let through (at most [`PROBES_KEPT`]).
    pub probes: Vec<DateTime<Utc>>,
    /// How many probe calls were let through.
    pub probe_count: u32,
    /// When a call got through the trunk again and it closed; `None` while it holds.
    pub resumed: Option<DateTime<Utc>>,
}

/// Counts trunk failures in a row and decides whether calls may start.
#[derive(Debug, Clone)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    in_a_row: u32,
    last_cause: Option<i64>,
    state: State,
    trips: u32,
    /// The latest pauses, oldest first.
    pauses: Vec<Pause>,
    /// Bumped at every change of `pauses`, so a reader copies them only when they changed.
    changes: u64,
}

/// What a recorded end changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Nothing to say.
    None,
    /// The breaker opened (or re-opened after a failed probe), with the reason.
    Opened(String),
    /// A call got through: the breaker closed again.
    Closed,
}

impl Breaker {
    /// Opens after `threshold` trunk failures in a row (0: never), for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold,
            cooldown,
            in_a_row: 0,
            last_cause: None,
            state: State::Closed,
            trips: 0,
            pauses: Vec::new(),
            changes: 0,
        }
    }

    /// How often [`Breaker::pauses`] changed: unchanged, they are the same.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// Whether a probe call is out (nothing else starts until it ends).
    pub fn is_probing(&self) -> bool {
        self.state == State::Probing
    }

    /// The campaign's latest pauses by the breaker (at most [`PAUSES_KEPT`]), oldest first.
    pub fn pauses(&self) -> &[Pause] {
        &self.pauses
    }

    /// How often it opened.
    pub fn trips(&self) -> u32 {
        self.trips
    }

    /// Whether it is open (or probing) now.
    pub fn is_open(&self) -> bool {
        self.state != State::Closed
    }

    fn reason(&self) -> String {
        format!(
            "circuit breaker open: the last {} calls failed at the trunk (last cause {}); check the trunk and carrier",
            self.in_a_row,
            self.last_cause.map_or_else(
                || "unknown".to_owned(),
                |c| format!("{c} {}", crate::outcome::cause_text(c))
            )
        )
    }

    /// May a call start at `now`?
    pub fn gate(&mut self, now: DateTime<Utc>) -> Gate {
        match &self.state {
            State::Closed => Gate::Open,
            State::Open { until } if now >= *until => {
                self.state = State::Probing;
                if let Some(pause) = self.pauses.last_mut() {
                    if pause.probes.len() == PROBES_KEPT {
                        pause.probes.remove(0);
                    }
                    pause.probes.push(now);
                    pause.probe_count += 1;
                    self.changes += 1;
                }
                Gate::Probe
            }
            State::Open { until } => Gate::Wait {
                until: *until,
                reason: self.reason(),
            },
            State::Probing => Gate::Wait {
                until: now + chrono::Duration::milliseconds(200),
                reason: format!("{}; a probe call is out", self.reason()),
            },
        }
    }

    /// Takes in an ended attempt's cause at `now`: trunk failure or not.
    pub fn record(&mut self, cause: Option<i64>, now: DateTime<Utc>) -> Transition {
        if self.threshold == 0 {
            return Transition::None;
        }
        let cooldown = chrono::Duration::from_std(self.cooldown).unwrap_or(chrono::Duration::MAX);
        if is_trunk_failure(cause) {
            self.in_a_row += 1;
            self.last_cause = cause;
            let trip = match self.state {
                State::Closed => self.in_a_row >= self.threshold,
                State::Probing => true,
                // Calls started before it opened end meanwhile: counted, no new trip.
                State::Open { .. } => false,
            };
            if trip {
                let probe_failed = self.state == State::Probing;
                self.state = State::Open {
                    until: now + cooldown,
                };
                self.trips += 1;
                let reason = self.reason();
                match self.pauses.last_mut() {
                    Some(pause) if probe_failed && pause.resumed.is_none() => {}
                    _ => {
                        if self.pauses.len() == PAUSES_KEPT {
                            self.pauses.remove(0);
                        }
                        self.pauses.push(Pause {
                            since: now,
                            reason: reason.clone(),
                            probes: Vec::new(),
                            probe_count: 0,
                            resumed: None,
                        });
                        self.changes += 1;
                    }
                }
                return Transition::Opened(reason);
            }
            Transition::None
        } else {
            self.in_a_row = 0;
            if self.state != State::Closed {
                self.state = State::Closed;
                if let Some(pause) = self.pauses.last_mut() {
                    pause.resumed = Some(now);
                    self.changes += 1;
                }
                return Transition::Closed;
            }
            Transition::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::clock::{Clock as _, FakeClock};

    #[test]
    fn twenty_trunk_failures_in_a_row_open_it() {
        let clock = FakeClock::at_rfc3339("2026-03-02T10:00:00Z");
        let mut breaker = Breaker::new(DEFAULT_THRESHOLD, DEFAULT_COOLDOWN);
        for _ in 0..19 {
            assert_eq!(breaker.record(Some(34), clock.now()), Transition::None);
            assert_eq!(breaker.gate(clock.now()), Gate::Open);
        }
        let Transition::Opened(reason) = breaker.record(Some(38), clock.now()) else {
            panic!("the 20th failure opens it");
        };
        assert!(
            reason.contains("last 20 calls") && reason.contains("38"),
            "{reason}"
        );
        match breaker.gate(clock.now()) {
            Gate::Wait { until, .. } => {
                assert_eq!(until, clock.now() + chrono::Duration::seconds(60))
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(breaker.trips(), 1);
    }

    #[test]
    fn a_call_that_gets_through_resets_the_run() {
        let now = FakeClock::at_rfc3339("2026-03-02T10:00:00Z").now();
        let mut breaker = Breaker::new(3, DEFAULT_COOLDOWN);
        breaker.record(Some(34), now);
        breaker.record(Some(34), now);
        // Busy and no answer are the callee's, not the trunk's.
        breaker.record(Some(17), now);
        breaker.record(Some(34), now);
        breaker.record(Some(34), now);
        assert_eq!(breaker.gate(now), Gate::Open);
        breaker.record(None, now);
        breaker.record(Some(42), now);
        assert_eq!(breaker.gate(now), Gate::Open);
        assert!(!breaker.is_open());
    }

    #[test]
    fn after_the_cooldown_one_probe_decides() {
        let clock = FakeClock::at_rfc3339("2026-03-02T10:00:00Z");
        let mut breaker = Breaker::new(2, Duration::from_secs(30));
        breaker.record(Some(34), clock.now());
        assert!(matches!(
            breaker.record(Some(34), clock.now()),
            Transition::Opened(_)
        ));
        clock.advance(Duration::from_secs(29));
        assert!(matches!(breaker.gate(clock.now()), Gate::Wait { .. }));
        clock.advance(Duration::from_secs(1));
        assert_eq!(breaker.gate(clock.now()), Gate::Probe);
        // While the probe is out nothing else starts.
        assert!(matches!(breaker.gate(clock.now()), Gate::Wait { .. }));
        // The probe fails: open again for a whole cool-down.
        assert!(matches!(
            breaker.record(Some(34), clock.now()),
            Transition::Opened(_)
        ));
        assert_eq!(breaker.trips(), 2);
        clock.advance(Duration::from_secs(30));
        assert_eq!(breaker.gate(clock.now()), Gate::Probe);
        // This one gets through: closed.
        assert_eq!(breaker.record(Some(16), clock.now()), Transition::Closed);
        assert_eq!(breaker.gate(clock.now()), Gate::Open);
    }

    #[test]
    fn pauses_record_the_trip_each_probe_and_the_resume() {
        let clock = FakeClock::at_rfc3339("2026-03-02T10:00:00Z");
        let start = clock.now();
        let at = |s: i64| start + chrono::Duration::seconds(s);
        let mut breaker = Breaker::new(2, Duration::from_secs(30));
        breaker.record(Some(34), clock.now());
        breaker.record(Some(34), clock.now());
        clock.advance(Duration::from_secs(30));
        assert_eq!(breaker.gate(clock.now()), Gate::Probe);
        clock.advance(Duration::from_secs(2));
        // The failed probe continues the same pause.
        breaker.record(Some(38), clock.now());
        clock.advance(Duration::from_secs(30));
        assert_eq!(breaker.gate(clock.now()), Gate::Probe);
        clock.advance(Duration::from_secs(1));
        breaker.record(Some(16), clock.now());
        assert_eq!(breaker.pauses().len(), 1, "{:?}", breaker.pauses());
        let pause = &breaker.pauses()[0];
        assert_eq!(pause.since, start);
        assert!(pause.reason.contains("last 2 calls"), "{}", pause.reason);
        assert_eq!(pause.probes, vec![at(30), at(62)]);
        assert_eq!(pause.resumed, Some(at(63)));
        // A later trip is a second pause, still holding.
        breaker.record(Some(34), clock.now());
        breaker.record(Some(34), clock.now());
        assert_eq!(breaker.pauses().len(), 2);
        assert_eq!(breaker.pauses()[1].since, at(63));
        assert_eq!(breaker.pauses()[1].resumed, None);
        assert!(breaker.pauses()[1].probes.is_empty());
    }

    #[test]
    fn a_long_outage_keeps_the_latest_probes_and_counts_them_all() {
        let clock = FakeClock::at_rfc3339("2026-03-02T10:00:00Z");
        let mut breaker = Breaker::new(1, Duration::from_secs(60));
        breaker.record(Some(34), clock.now());
        let changes = breaker.changes();
        for _ in 0..(PROBES_KEPT + 5) {
            clock.advance(Duration::from_secs(60));
            assert_eq!(breaker.gate(clock.now()), Gate::Probe);
            breaker.record(Some(34), clock.now());
        }
        let pause = &breaker.pauses()[0];
        assert_eq!(breaker.pauses().len(), 1);
        assert_eq!(pause.probe_count as usize, PROBES_KEPT + 5);
        assert_eq!(pause.probes.len(), PROBES_KEPT);
        assert_eq!(pause.probes.last(), Some(&clock.now()));
        assert!(breaker.changes() > changes);
        // Only a change bumps the counter.
        let changes = breaker.changes();
        assert!(matches!(breaker.gate(clock.now()), Gate::Wait { .. }));
        assert_eq!(breaker.changes(), changes);
    }

    #[test]
    fn failures_of_calls_started_before_it_opened_do_not_extend_it() {
        let clock = FakeClock::at_rfc3339("2026-03-02T10:00:00Z");
        let mut breaker = Breaker::new(2, Duration::from_secs(30));
        breaker.record(Some(34), clock.now());
        breaker.record(Some(34), clock.now());
        clock.advance(Duration::from_secs(10));
        assert_eq!(breaker.record(Some(34), clock.now()), Transition::None);
        clock.advance(Duration::from_secs(20));
        assert_eq!(breaker.gate(clock.now()), Gate::Probe);
    }

    #[test]
    fn threshold_zero_never_opens() {
        let now = FakeClock::at_rfc3339("2026-03-02T10:00:00Z").now();
        let mut breaker = Breaker::new(0, DEFAULT_COOLDOWN);
        for _ in 0..100 {
            breaker.record(Some(34), now);
        }
        assert_eq!(breaker.gate(now), Gate::Open);
    }
}
