//! outbound-dialer: dials a campaign's numbers through a PJSIP trunk with a concurrency
//! limit, bridges answered calls to a target, records them, and keeps every outcome.
#![warn(missing_docs)]

pub mod app;
pub mod call;
pub mod campaign;
pub mod config;
pub mod ids;
pub mod logging;
pub mod numbers;
pub mod outcome;
pub mod pacing;
pub mod progress;
pub mod record;
pub mod report;
pub mod rules;
pub mod serve;
pub mod status;
pub mod store;
