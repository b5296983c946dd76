//! How fast new calls start: at most `MAX_CC` at once (a slot is freed on every end,
//! answered or not, and refilled at once) and at most `--cps` per second (a token
//! bucket); a burst of congestion outcomes (trunk overload, cause 34) slows the pace
//! down, and it recovers as calls go through.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// The slowest pace congestion can push new calls down to.
const SLOWEST_GAP: Duration = Duration::from_secs(5);
/// The gap after the first congestion when there is no CPS limit.
const FIRST_BACKOFF_GAP: Duration = Duration::from_millis(200);

/// Gates new calls.
#[derive(Debug)]
pub struct Pacer {
    slots: Arc<Semaphore>,
    max_cc: u32,
    /// Tokens per second, when limited.
    cps: Option<f64>,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    /// Tokens available (at most the burst size).
    tokens: f64,
    last_refill: Instant,
    /// Extra gap between calls imposed by congestion.
    congestion_gap: Duration,
    next_allowed: Instant,
}

/// A running call's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    /// `None` only if the semaphore were closed, which the pacer never does.
    _permit: Option<OwnedSemaphorePermit>,
}

impl Pacer {
    /// At most `max_cc` calls at once and `cps` new calls a second (`None`: no limit).
    pub fn new(max_cc: u32, cps: Option<f64>) -> Self {
        let now = Instant::now();
        Pacer {
            slots: Arc::new(Semaphore::new(max_cc as usize)),
            max_cc,
            cps,
            state: Mutex::new(Bucket {
                tokens: 1.0,
                last_refill: now,
                congestion_gap: Duration::ZERO,
                next_allowed: now,
            }),
        }
    }

    /// Calls in progress now.
    pub fn active(&self) -> u32 {
        self.max_cc
            .saturating_sub(u32::try_from(self.slots.available_permits()).unwrap_or(u32::MAX))
    }

    /// Waits until a new call may start, and returns its slot.
    pub async fn admit(&self) -> Slot {
        let permit = self.slots.clone().acquire_owned().await.ok();
        self.wait_for_token().await;
        Slot { _permit: permit }
    }

    async fn wait_for_token(&self) {
        loop {
            let wait = {
                let mut bucket = self.state.lock().await;
                let now = Instant::now();
                if let Some(cps) = self.cps {
                    let refill = now.duration_since(bucket.last_refill).as_secs_f64() * cps;
                    // Burst at most one second's worth (and at least one call).
                    bucket.tokens = (bucket.tokens + refill).min(cps.max(1.0));
                    bucket.last_refill = now;
                }
                let token_wait = match self.cps {
                    Some(cps) if bucket.tokens < 1.0 => {
                        Duration::from_secs_f64((1.0 - bucket.tokens) / cps)
                    }
                    _ => Duration::ZERO,
                };
                let gap_wait = bucket.next_allowed.saturating_duration_since(now);
                let wait = token_wait.max(gap_wait);
                if wait.is_zero() {
                    if self.cps.is_some() {
                        bucket.tokens -= 1.0;
                    }
                    bucket.next_allowed = now + bucket.congestion_gap;
                    return;
                }
                wait
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// A call ended in congestion (the trunk refused it): space new calls further apart.
    pub async fn congested(&self) {
        let mut bucket = self.state.lock().await;
        let base = self
            .cps
            .map_or(FIRST_BACKOFF_GAP, |cps| Duration::from_secs_f64(1.0 / cps));
        bucket.congestion_gap = (bucket.congestion_gap * 2).max(base).min(SLOWEST_GAP);
        bucket.next_allowed = Instant::now() + bucket.congestion_gap;
        tracing::warn!(
            gap_ms = bucket.congestion_gap.as_millis() as u64,
            "trunk congestion: slowing down new calls"
        );
    }

    /// A call got through the trunk: recover the pace a step.
    pub async fn went_through(&self) {
        let mut bucket = self.state.lock().await;
        if !bucket.congestion_gap.is_zero() {
            bucket.congestion_gap = bucket.congestion_gap.mul_f64(0.75);
            if bucket.congestion_gap < Duration::from_millis(10) {
                bucket.congestion_gap = Duration::ZERO;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn cps_limits_the_rate_of_new_calls() {
        let pacer = Pacer::new(100, Some(5.0));
        let started = Instant::now();
        let mut slots = Vec::new();
        for _ in 0..21 {
            slots.push(pacer.admit().await);
        }
        // One token at start, then 5 a second: the 21st call at 4 s.
        let elapsed = started.elapsed();
        assert!(
            elapsed >= Duration::from_millis(3990) && elapsed <= Duration::from_millis(4100),
            "{elapsed:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn max_cc_holds_and_a_freed_slot_is_refilled_at_once() {
        let pacer = Arc::new(Pacer::new(2, None));
        let a = pacer.admit().await;
        let _b = pacer.admit().await;
        assert_eq!(pacer.active(), 2);
        let waiting = tokio::spawn({
            let pacer = pacer.clone();
            async move {
                let started = Instant::now();
                let _slot = pacer.admit().await;
                started.elapsed()
            }
        });
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            !waiting.is_finished(),
            "a third call started with two running"
        );
        drop(a);
        let waited = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("the freed slot was taken")
            .unwrap();
        assert!(
            waited >= Duration::from_secs(3) && waited < Duration::from_millis(3010),
            "{waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn congestion_slows_down_and_recovers() {
        let pacer = Pacer::new(100, None);
        for _ in 0..5 {
            pacer.congested().await;
        }
        let started = Instant::now();
        let _a = pacer.admit().await;
        let _b = pacer.admit().await;
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        for _ in 0..40 {
            pacer.went_through().await;
        }
        // The call after `_b` was already spaced under the old gap.
        let _after = pacer.admit().await;
        let started = Instant::now();
        let _c = pacer.admit().await;
        let _d = pacer.admit().await;
        assert!(
            started.elapsed() < Duration::from_millis(100),
            "{:?}",
            started.elapsed()
        );
    }
}
