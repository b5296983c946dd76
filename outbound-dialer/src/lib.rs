//! outbound-dialer: dials a campaign's numbers through a PJSIP trunk with a concurrency
//! limit, bridges answered calls to a target, records them, and keeps every outcome.
#![warn(missing_docs)]

pub mod config;
pub mod numbers;
pub mod outcome;
pub mod record;
pub mod status;
pub mod store;
