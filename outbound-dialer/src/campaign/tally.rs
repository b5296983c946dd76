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
