//! Campaign rules: retries by outcome, calling hours in the callee's zone, do-not-call,
//! the abandon-rate limit, the trunk circuit breaker, the minimum ring time, and the
//! clock they all read. Each is plain logic with no I/O but the DNC file; the campaign
//! loop asks them before each originate and tells them each outcome.

pub mod abandon;
pub mod args;
pub mod breaker;
pub mod campaign;
pub mod clock;
pub mod dnc;
pub mod hours;
pub mod retry;

use std::time::Duration;

/// Shortest ring time allowed without `--force-short-ring` (US TSR: at least 15 s).
pub const MIN_RING: Duration = Duration::from_secs(15);

/// A rule's value that cannot work; the caller names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

impl RuleError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        RuleError(message.into())
    }
}

/// Whether a ring time may be used: at least [`MIN_RING`], or shorter when forced.
///
/// # Errors
/// A ring time below [`MIN_RING`] that is not forced.
pub fn check_ring_time(ring: Duration, forced: bool) -> Result<(), RuleError> {
    if ring < MIN_RING && !forced {
        return Err(RuleError::new(format!(
            "must be at least {} s so callees have time to answer (US TSR); add --force-short-ring (DIALER_FORCE_SHORT_RING=1) for a shorter ring",
            MIN_RING.as_secs()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_shorter_than_15_s_need_force() {
        assert!(check_ring_time(Duration::from_secs(15), false).is_ok());
        assert!(check_ring_time(Duration::from_secs(30), false).is_ok());
        let error = check_ring_time(Duration::from_secs(14), false)
            .unwrap_err()
            .to_string();
        assert!(error.contains("--force-short-ring"), "{error}");
        assert!(check_ring_time(Duration::from_secs(4), true).is_ok());
    }
}
