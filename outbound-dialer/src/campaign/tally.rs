//! What a run keeps in memory: the ends of the last minute, for the pace (calls/min).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::outcome::Outcome;

/// The pace window.
const WINDOW: Duration = Duration::from_secs(60);

/// The recent ends of the current run.
#[derive(Debug, Default)]
pub(super) struct Tally {
    ends: Mutex<VecDeque<Instant>>,
    /// Why the campaign rules hold new calls back now (breaker, hours, abandon rate).
    held_back: Mutex<Option<String>>,
    /// The campaign's live-answered and abandoned calls (30 days, every dialer's).
    abandon: Mutex<(u64, u64)>,
    /// The circuit breaker: why and until when it holds new calls now, and its pauses.
    breaker: Mutex<Breaker>,
}

/// What the status shows of the circuit breaker.
#[derive(Debug, Default, Clone)]
pub(super) struct Breaker {
    /// Why it holds new calls back now, and until when (the next probe; `None` while a
    /// probe is out).
    pub(super) holding: Option<(String, Option<chrono::DateTime<chrono::Utc>>)>,
    /// The run's pauses, oldest first.
    pub(super) pauses: Vec<crate::rules::breaker::Pause>,
    /// The breaker's [`changes`](crate::rules::breaker::Breaker::changes) they were
    /// copied at.
    changes: u64,
}

impl Tally {
    /// An attempt got its outcome.
    pub(super) fn outcome(&self, _outcome: Outcome) {
        if let Ok(mut ends) = self.ends.lock() {
            let now = Instant::now();
            ends.push_back(now);
            while ends
                .front()
                .is_some_and(|t| now.duration_since(*t) > WINDOW)
            {
                ends.pop_front();
            }
        }
    }

    /// Says why new calls are held back (`None`: they are not).
    pub(super) fn set_held_back(&self, why: Option<String>) {
        if let Ok(mut held_back) = self.held_back.lock() {
            *held_back = why;
        }
    }

    /// Why new calls are held back, if they are.
    pub(super) fn held_back(&self) -> Option<String> {
        self.held_back.lock().ok().and_then(|why| why.clone())
    }

    /// Says what the circuit breaker does now: why and until when it holds new calls,
    /// and its pauses (copied only when they changed: this runs before every call).
    pub(super) fn set_breaker(
        &self,
        holding: Option<(String, Option<chrono::DateTime<chrono::Utc>>)>,
        breaker: &crate::rules::breaker::Breaker,
    ) {
        if let Ok(mut now) = self.breaker.lock() {
            now.holding = holding;
            if now.changes != breaker.changes() {
                now.pauses = breaker.pauses().to_vec();
                now.changes = breaker.changes();
            }
        }
    }

    /// What the circuit breaker does now.
    pub(super) fn breaker(&self) -> Breaker {
        self.breaker
            .lock()
            .map(|breaker| breaker.clone())
            .unwrap_or_default()
    }

    /// The campaign's abandon counts (live-answered, abandoned), as last read.
    pub(super) fn set_abandon(&self, live: u64, abandoned: u64) {
        if let Ok(mut counts) = self.abandon.lock() {
            *counts = (live, abandoned);
        }
    }

    /// The campaign's abandon rate in percent, once a call was answered live.
    pub(super) fn abandon_rate_pct(&self) -> Option<f64> {
        let (live, abandoned) = *self.abandon.lock().ok()?;
        (live > 0).then(|| abandoned as f64 * 100.0 / live as f64)
    }

    /// Outcomes per minute over the last minute (or since the first, when sooner).
    pub(super) fn per_minute(&self) -> f64 {
        let Ok(mut ends) = self.ends.lock() else {
            return 0.0;
        };
        let now = Instant::now();
        while ends
            .front()
            .is_some_and(|t| now.duration_since(*t) > WINDOW)
        {
            ends.pop_front();
        }
        match ends.front() {
            None => 0.0,
            Some(first) => {
                let span = now
                    .duration_since(*first)
                    .max(Duration::from_secs(5))
                    .min(WINDOW);
                ends.len() as f64 * 60.0 / span.as_secs_f64()
            }
        }
    }
}
