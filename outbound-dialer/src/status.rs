//! The campaign's state as the API, the progress bar and the summary show it.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::outcome::Outcome;

/// Where the campaign is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Not started (serve mode before `/start`, or after a finished run).
    Idle,
    /// Dialling.
    Running,
    /// No new calls until resumed; calls in progress go on.
    Paused,
    /// No new calls; the run ends when the calls in progress have.
    Stopping,
    /// Every number has an outcome (or the run was stopped).
    Finished,
}

impl RunState {
    /// The name stored in the campaign row and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Idle => "idle",
            RunState::Running => "running",
            RunState::Paused => "paused",
            RunState::Stopping => "stopping",
            RunState::Finished => "finished",
        }
    }
}

/// A snapshot of the campaign.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignStatus {
    /// The campaign's name.
    pub campaign: String,
    /// Run state.
    pub state: RunState,
    /// Numbers in the campaign.
    pub total: u64,
    /// Numbers not dialled yet.
    pub pending: u64,
    /// Calls in progress now.
    pub active_calls: u64,
    /// Attempts ended, by outcome name (every outcome present, zero when none).
    pub outcomes: BTreeMap<&'static str, u64>,
    /// Attempts ended in the last minute.
    pub calls_per_minute: f64,
    /// Seconds until every number has an outcome at the current pace, when known.
    pub eta_seconds: Option<f64>,
    /// Why the campaign rules hold new calls back now, when they do (the circuit breaker
    /// is open, nothing is callable until a time, concurrency is lowered for the abandon
    /// rate).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held_back: Option<String>,
    /// Abandoned / live-answered calls of the campaign over the last 30 days (every
    /// dialer's, earlier runs included, as the store counts them), in percent, once one
    /// was answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandon_rate_pct: Option<f64>,
    /// Who paused it, while `state` is `paused`: the operator (`/pause`) or the circuit
    /// breaker (the trunk failed the last calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_by: Option<PausedBy>,
    /// Why the breaker paused it, while it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_reason: Option<String>,
    /// When the breaker lets a probe call through (RFC 3339, UTC), while it pauses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<String>,
    /// This run's pauses by the circuit breaker (the latest 100), oldest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub breaker_pauses: Vec<BreakerPause>,
}

/// Who paused the campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PausedBy {
    /// `/pause` (serve mode).
    Operator,
    /// The circuit breaker: the trunk failed the last calls.
    Breaker,
}

impl PausedBy {
    /// The name the API shows.
    pub fn as_str(self) -> &'static str {
        match self {
            PausedBy::Operator => "operator",
            PausedBy::Breaker => "breaker",
        }
    }
}

/// One pause by the circuit breaker, times in RFC 3339 (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BreakerPause {
    /// When it tripped.
    pub paused_at: String,
    /// Why (the trunk's failures, the last cause).
    pub reason: String,
    /// When the latest probe calls were let through after a cool-down (at most 10).
    pub probes: Vec<String>,
    /// How many probe calls were let through.
    pub probe_count: u32,
    /// When a call got through the trunk again and dialling resumed; absent while it holds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resumed_at: Option<String>,
}

impl From<&crate::rules::breaker::Pause> for BreakerPause {
    fn from(pause: &crate::rules::breaker::Pause) -> Self {
        BreakerPause {
            paused_at: rfc3339(pause.since),
            reason: pause.reason.clone(),
            probes: pause.probes.iter().copied().map(rfc3339).collect(),
            probe_count: pause.probe_count,
            resumed_at: pause.resumed.map(rfc3339),
        }
    }
}

/// A time as the API shows it: RFC 3339, UTC, whole seconds.
pub fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl CampaignStatus {
    /// A campaign with nothing counted yet.
    pub fn empty(campaign: &str, state: RunState) -> Self {
        CampaignStatus {
            campaign: campaign.to_owned(),
            state,
            total: 0,
            pending: 0,
            active_calls: 0,
            outcomes: Outcome::ALL.iter().map(|o| (o.as_str(), 0)).collect(),
            calls_per_minute: 0.0,
            eta_seconds: None,
            held_back: None,
            abandon_rate_pct: None,
            paused_by: None,
            pause_reason: None,
            paused_until: None,
            breaker_pauses: Vec::new(),
        }
    }

    /// Attempts that have an outcome.
    pub fn finished(&self) -> u64 {
        self.outcomes.values().sum()
    }
}
