//! What became of one attempt: the outcome names the report and the store use, and how
//! Asterisk's Q.850 cause codes map onto them.

use std::fmt;
use std::str::FromStr;

/// The outcome of one attempt. The names (`as_str`) are part of the report's interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The callee answered and was connected to the target.
    Answered,
    /// Busy (cause 17).
    Busy,
    /// No answer (cause 18 or 19, or the originate timeout).
    NoAnswer,
    /// Rejected by the callee or the network (cause 21).
    Rejected,
    /// The number does not exist or is malformed (cause 1 or 28).
    BadNumber,
    /// The trunk or network was congested (cause 34, 38, 41 or 42).
    Congestion,
    /// The callee answered but the target did not, or not within `--abandon-after` (2 s):
    /// the callee heard a short identification message and was hung up (an abandoned
    /// call).
    TargetFailed,
    /// The dialer stopped (crash, Asterisk restart) while the call was up, and its end
    /// could not be observed; the number is not redialled.
    Interrupted,
    /// Anything else, with Asterisk's message or the cause.
    Error,
    /// On the do-not-call list: never dialled.
    Dnc,
    /// Answering-machine detection heard a machine (`--amd`): not bridged to the target.
    Machine,
}

impl Outcome {
    /// Every outcome, in report order.
    pub const ALL: [Outcome; 11] = [
        Outcome::Answered,
        Outcome::Busy,
        Outcome::NoAnswer,
        Outcome::Rejected,
        Outcome::BadNumber,
        Outcome::Congestion,
        Outcome::TargetFailed,
        Outcome::Interrupted,
        Outcome::Error,
        Outcome::Dnc,
        Outcome::Machine,
    ];

    /// The outcome's name in reports, the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Answered => "answered",
            Outcome::Busy => "busy",
            Outcome::NoAnswer => "no_answer",
            Outcome::Rejected => "rejected",
            Outcome::BadNumber => "bad_number",
            Outcome::Congestion => "congestion",
            Outcome::TargetFailed => "target_failed",
            Outcome::Interrupted => "interrupted",
            Outcome::Error => "error",
            Outcome::Dnc => "dnc",
            Outcome::Machine => "machine",
        }
    }

    /// The outcome of a call that ended before it was answered, from the callee
    /// channel's `ChannelDestroyed.cause` (Q.850).
    pub fn of_unanswered_cause(cause: i64) -> Outcome {
        match cause {
            17 => Outcome::Busy,
            18 | 19 => Outcome::NoAnswer,
            21 => Outcome::Rejected,
            1 | 28 => Outcome::BadNumber,
            34 | 38 | 41 | 42 => Outcome::Congestion,
            _ => Outcome::Error,
        }
    }
}

impl serde::Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for Outcome {
    type Err = UnknownOutcome;

    fn from_str(name: &str) -> Result<Outcome, UnknownOutcome> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == name)
            .ok_or_else(|| UnknownOutcome(name.to_owned()))
    }
}

/// The text Asterisk gives for common Q.850 causes, for reports when an event carried
/// none.
pub fn cause_text(cause: i64) -> &'static str {
    match cause {
        0 => "Unknown",
        1 => "Unallocated (unassigned) number",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        21 => "Call Rejected",
        28 => "Invalid number format (addr incomplete)",
        34 => "Circuit/channel congestion",
        38 => "Network out of order",
        41 => "Temporary failure",
        42 => "Switching equipment congestion",
        _ => "Other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_map_to_the_documented_outcomes() {
        let expected = [
            (17, Outcome::Busy),
            (18, Outcome::NoAnswer),
            (19, Outcome::NoAnswer),
            (21, Outcome::Rejected),
            (1, Outcome::BadNumber),
            (28, Outcome::BadNumber),
            (34, Outcome::Congestion),
            (38, Outcome::Congestion),
            (41, Outcome::Congestion),
            (42, Outcome::Congestion),
            (16, Outcome::Error),
            (0, Outcome::Error),
        ];
        for (cause, outcome) in expected {
            assert_eq!(
                Outcome::of_unanswered_cause(cause),
                outcome,
                "cause {cause}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for outcome in Outcome::ALL {
            assert_eq!(outcome.as_str().parse::<Outcome>().unwrap(), outcome);
        }
        assert!("voicemail".parse::<Outcome>().is_err());
    }
}
