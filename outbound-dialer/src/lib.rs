//! outbound-dialer: dials a campaign's numbers through a PJSIP trunk with a concurrency
//! limit, bridges answered calls to a target, records them, and keeps every outcome.
#![warn(missing_docs)]

pub mod call;
pub mod config;
pub mod ids;
pub mod logging;
pub mod outcome;
pub mod pacing;
pub mod progress;
pub mod record;
pub mod report;
pub mod serve;
pub mod status;
