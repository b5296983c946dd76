//! Jittered exponential backoff between reconnect attempts.

use std::time::Duration;

/// Delays between reconnect attempts: exponential from `initial` to `max`, each drawn
/// at random from the upper half of the current step so that many clients restarted
/// together do not reconnect in lockstep. [`Backoff::reset`] after a good connection.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Default for Backoff {
    /// 250 ms doubling to 4 s: Asterisk restarts in about a second, a connection is
    /// back within about 5 s of Asterisk's return (the step plus the handshake), and an
    /// outage costs at most one attempt every 2–4 s.
    fn default() -> Self {
        Backoff::new(Duration::from_millis(250), Duration::from_secs(4))
    }
}

impl Backoff {
    /// Backoff from `initial` doubling up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        Backoff {
            initial,
            max: max.max(initial),
            current: initial,
        }
    }

    /// Starts again from the initial delay.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

impl Iterator for Backoff {
    type Item = Duration;

    /// Never ends: reconnecting goes on as long as the connection is wanted.
    fn next(&mut self) -> Option<Duration> {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = step / 2;
        let jitter = half.mul_f64(fastrand::f64());
        Some(half + jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_gives_up_and_never_exceeds_the_cap() {
        let backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(2));
        assert!(
            backoff
                .take(10_000)
                .all(|d| d <= Duration::from_secs(2) && d >= Duration::from_millis(5))
        );
    }

    #[test]
    fn grows_to_the_cap_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = backoff.by_ref().take(8).collect();
        let steps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (delay, step) in delays.iter().zip(steps) {
            let step = Duration::from_millis(step);
            assert!(
                *delay >= step / 2 && *delay <= step,
                "{delay:?} not in [{:?}, {step:?}]",
                step / 2
            );
        }
        backoff.reset();
        assert!(backoff.next().unwrap() <= Duration::from_millis(100));
    }

    #[test]
    fn the_default_retries_at_least_every_four_seconds() {
        let mut backoff = Backoff::default();
        let delays: Vec<Duration> = backoff.by_ref().take(1000).collect();
        assert!(delays[0] <= Duration::from_millis(250));
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(4)));
        // It does reach the cap's range: a long outage is not hammered.
        assert!(delays[10..].iter().all(|d| *d >= Duration::from_secs(2)));
    }

    #[test]
    fn clients_restarted_together_do_not_retry_in_lockstep() {
        let a: Vec<Duration> = Backoff::default().take(20).collect();
        let b: Vec<Duration> = Backoff::default().take(20).collect();
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!(same < 3, "{same} of 20 delays equal: {a:?} vs {b:?}");
    }
}
