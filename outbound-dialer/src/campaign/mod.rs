//! A campaign run: import the list, check the trunk, reconcile what a crash left, then
//! dial every pending number under the pacer's limits until each has an outcome, and
//! write the report.

mod abandon;
mod control;
mod log;
mod tally;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ari_client::model::operations::endpoints;
use ari_client::{AppConnection, Client};
use tokio::task::JoinSet;
use tracing::Instrument as _;

pub use control::{Request, RunControl};
use log::StoreLog;
use tally::Tally;

use crate::call::{self, CallPlan, CallResult, CallSettings, Stage};
use crate::config::{Config, NumberSource};
use crate::ids::{AttemptIds, campaign_key};
use crate::numbers::{NumbersError, Source};
use crate::outcome::Outcome;
use crate::pacing::{Pacer, Slot};
use crate::rules::campaign::{CampaignRules, NumberVerdict, StartGate};
use crate::rules::clock::{SystemClock, until};
use crate::rules::dnc::DncFile;
use crate::status::{CampaignStatus, PausedBy, RunState};
use crate::store::{
    Attempt, AttemptState, DialerInfo, ImportSummary, PendingNumber, Store, StoreError,
};

/// How many pending numbers are read from the store at a time.
const PENDING_BATCH: u32 = 256;
/// How long a call that could not be sent (Asterisk unreachable) waits before its retry.
const NOT_SENT_RETRY: Duration = Duration::from_secs(1);
/// How often the status is recomputed.
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// How often with several dialers: counting a campaign of a million numbers in MySQL takes
/// ~0.1 s of the server's time, and every dialer counts.
const SHARED_STATUS_EVERY: Duration = Duration::from_secs(2);
/// With several dialers, how often one with nothing to dial looks again: numbers may come
/// back from a stopped dialer, and the campaign ends only when every number has its
/// outcome, whoever dials it.
const SHARED_POLL: Duration = Duration::from_millis(500);

/// Why a campaign could not run (what to fix is in the message).
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    /// The number list.
    #[error(transparent)]
    Numbers(#[from] NumbersError),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// ARI could not be reached or refused us.
    #[error("ARI at {url}: {message} (check ARI_URL, ARI_USERNAME, ARI_PASSWORD)")]
    Ari {
        /// Where.
        url: String,
        /// The error chain.
        message: String,
    },
    /// The trunk endpoint does not exist.
    #[error(
        "the trunk PJSIP/{0} does not exist on Asterisk (GET /endpoints/PJSIP/{0} answered 404): set ARI_TRUNK (--trunk) to an endpoint of pjsip.conf"
    )]
    UnknownTrunk(String),
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] crate::report::ReportError),
    /// A call's progress could not be stored.
    #[error(transparent)]
    Log(#[from] call::LogError),
    /// The do-not-call file.
    #[error(transparent)]
    Dnc(#[from] crate::rules::dnc::DncError),
}

/// What a finished run came to.
#[derive(Debug, Clone)]
pub struct Summary {
    /// The final status.
    pub status: CampaignStatus,
    /// What the import added (none on a resumed run whose list did not change).
    pub imported: ImportSummary,
    /// Invalid input lines skipped.
    pub invalid_lines: u64,
}

fn settings(config: &Config) -> CallSettings {
    CallSettings {
        app: config.app.clone(),
        trunk: config.trunk.clone(),
        target: config.target.clone(),
        caller_id: config.caller_id.clone(),
        call_timeout: config.call_timeout,
        target_timeout: config.target_timeout,
        target_failed_sound: config.target_failed_sound.clone(),
        abandon_after: config.rules.abandon_after,
        recording_format: config.recording_format.clone(),
        max_recording: config.max_recording,
        recordings_dir: config.recordings_dir.clone(),
        delete_after_download: config.delete_after_download,
        amd: config.rules.amd.clone(),
    }
}

fn source(config: &Config) -> Result<Source, NumbersError> {
    match &config.numbers {
        NumberSource::One(number) => Source::new(Some(number), None),
        NumberSource::File(path) => Source::new(None, Some(path)),
    }
}

/// Imports the list unless the store has this very list already (a resumed run, or
/// another dialer of the campaign imported it: they take turns under the store's import
/// lock).
async fn import(store: &Store, source: &Source) -> Result<(ImportSummary, u64), CampaignError> {
    let lock = store.import_lock().await?;
    let imported = import_unlocked(store, source).await;
    lock.release().await;
    imported
}

async fn import_unlocked(
    store: &Store,
    source: &Source,
) -> Result<(ImportSummary, u64), CampaignError> {
    let fingerprint = source.fingerprint()?;
    if store.input_fingerprint().await?.as_deref() == Some(fingerprint.as_str()) {
        tracing::info!("the number list is imported already");
        return Ok((ImportSummary::default(), 0));
    }
    let mut input = source.open()?;
    let mut invalid = 0_u64;
    let summary = store
        .import(input.entries(|bad| {
            invalid += 1;
            tracing::warn!(line = bad.line, reason = %bad.reason, excerpt = %bad.excerpt, "invalid line skipped");
        }))
        .await?;
    input.finish()?;
    // Checked against the store's do-not-call table (the file is loaded into it first).
    let on_dnc = store.pending_dnc_count().await?;
    if on_dnc > 0 {
        tracing::info!(
            numbers = on_dnc,
            "numbers of the list are on the do-not-call list: they get the outcome dnc and are never dialled"
        );
    }
    store.set_input_fingerprint(&fingerprint).await?;
    tracing::info!(
        inserted = summary.inserted,
        duplicates = summary.duplicates,
        invalid,
        "number list imported"
    );
    Ok((summary, invalid))
}

/// Checks before dialling that the trunk exists and ARI answers, and connects the app.
async fn connect(config: &Config) -> Result<AppConnection, CampaignError> {
    let ari = |error: ari_client::Error| CampaignError::Ari {
        url: config.ari.url.clone(),
        message: error.chain().to_string(),
    };
    let client = Client::builder(&config.ari.url)
        .credentials(config.ari.credentials())
        .build()
        .map_err(ari)?;
    match client
        .endpoints()
        .get(endpoints::Get::new("PJSIP", config.trunk.as_str()))
        .await
    {
        Ok(_) => {}
        Err(error) if error.is_not_found() => {
            return Err(CampaignError::UnknownTrunk(config.trunk.clone()));
        }
        Err(error) => return Err(ari(error)),
    }
    client
        .app_connection([config.app.as_str()])
        .connect()
        .await
        .map_err(ari)
}

/// A plan for a stored attempt that a crash left unfinished.
fn resumed(attempt: &Attempt, key: &str) -> CallPlan {
    let record = &attempt.record;
    let stage = match attempt.state {
        AttemptState::Answered => Stage::Answered,
        AttemptState::Connected => Stage::Connected,
        AttemptState::Dialing | AttemptState::Ended => Stage::Dialing,
    };
    CallPlan {
        attempt_id: attempt.id.0,
        number: record.number.clone(),
        variables: record.data.clone(),
        ids: AttemptIds::new(key, attempt.number_id.0, record.attempt),
        stage,
        live_at: attempt.live_at,
    }
}

/// The running calls and what is waiting to be dialled.
struct Dialer {
    connection: AppConnection,
    settings: Arc<CallSettings>,
    log: Arc<StoreLog>,
    store: Store,
    pacer: Arc<Pacer>,
    tally: Arc<Tally>,
    key: String,
    calls: JoinSet<(CallPlan, Result<CallResult, call::LogError>)>,
    /// Calls that never reached Asterisk, to send again (same ids: no double call).
    not_sent: VecDeque<CallPlan>,
    pending: VecDeque<PendingNumber>,
    /// Recordings of earlier runs being fetched.
    downloads: JoinSet<()>,
    /// Campaign rules: hours, retries, abandon rate, breaker.
    rules: CampaignRules,
    /// The campaign's abandon counts, read from the store (every dialer's calls).
    abandon: abandon::AbandonFeed,
    /// The `--dnc-file`, loaded into the store's `dnc` table again when it changes.
    dnc: Option<DncFile>,
    /// Numbers claimed at a time: with several dialers, about what this one can start
    /// soon, so the others get the rest.
    claim_batch: u32,
    /// This dialer's Asterisk, as other dialers of the campaign know it.
    asterisk: String,
}

impl Dialer {
    fn spawn(&mut self, plan: CallPlan, slot: Slot) {
        let connection = self.connection.clone();
        let settings = self.settings.clone();
        let log = self.log.clone();
        self.calls.spawn(async move {
            // The slot goes to the next number as soon as the callee is gone; the rest of
            // the teardown and the download are not a call.
            let gone = call::CalleeGone::new(move || drop(slot));
            let result = call::run(&connection, &settings, log.as_ref(), plan.clone(), gone).await;
            let result = match result {
                Ok(CallResult::Ended(end, Some(recording))) => {
                    // Logged like the call it belongs to.
                    let span = tracing::info_span!(
                        "call",
                        number = %plan.number,
                        channel_id = %plan.ids.callee,
                        attempt_id = plan.attempt_id
                    );
                    call::save_recording(&settings, log.as_ref(), recording)
                        .instrument(span)
                        .await
                        .map(|()| CallResult::Ended(end, None))
                }
                other => other,
            };
            (plan, result)
        });
    }

    /// Takes in a finished call: pace and counts follow its outcome.
    async fn reap(
        &mut self,
        done: Result<(CallPlan, Result<CallResult, call::LogError>), tokio::task::JoinError>,
    ) -> Result<(), CampaignError> {
        let (plan, result) = match done {
            Ok(done) => done,
            Err(error) => {
                // A call task panicked: its attempt stays unfinished for the next run.
                tracing::error!(%error, "a call task failed");
                return Ok(());
            }
        };
        match result? {
            // Sent again with the same ids: nothing reached Asterisk.
            CallResult::NotSent => self.not_sent.push_back(CallPlan {
                stage: Stage::New,
                ..plan
            }),
            // Looked up again, never originated again.
            CallResult::LookUpAgain => self.not_sent.push_back(CallPlan {
                stage: Stage::Dialing,
                ..plan
            }),
            CallResult::Ended(end, _) => {
                // A retry is stored already, with the attempt's end (`StoreLog::finished`):
                // a crash or another dialer keeps it.
                let _retry = self.rules.ended(plan.attempt_id, &end);
                if end.live_at.is_some() {
                    // The campaign's rate, with this call in it, from the store.
                    self.abandon.call_ended();
                    self.abandon
                        .refresh(&self.store, &mut self.rules, &self.tally)
                        .await;
                }
                self.tally.outcome(end.outcome);
                if end.outcome == Outcome::Congestion {
                    self.pacer.congested().await;
                } else {
                    self.pacer.went_through().await;
                }
            }
        }
        Ok(())
    }

    /// The next plan to dial: a retry first, then the next pending number.
    async fn next_plan(&mut self) -> Result<Option<CallPlan>, CampaignError> {
        if let Some(plan) = self.not_sent.pop_front() {
            tokio::time::sleep(NOT_SENT_RETRY).await;
            return Ok(Some(plan));
        }
        loop {
            if self.pending.is_empty() {
                // Numbers that wait (a retry, a calling window) are not claimed before
                // their time.
                self.pending = self.store.claim(self.claim_batch).await?.into();
            }
            let Some(number) = self.pending.pop_front() else {
                return Ok(None);
            };
            // Right before the originate: the store's DNC table (what any dialer or an
            // operator added until now; the file again first if it changed), the hours.
            if let Some(file) = self.dnc.as_mut() {
                if file.refresh() {
                    load_dnc(&self.store, file).await?;
                }
            }
            if let Some(source) = self.store.is_dnc(&number.number).await? {
                let message = format!("not dialled: on the do-not-call list (from {source})");
                self.never_dial(number, Outcome::Dnc, message).await?;
                continue;
            }
            match self.rules.check_number(&number.number, &number.data) {
                NumberVerdict::Dial => {}
                NumberVerdict::Later(open) => {
                    tracing::debug!(number = %number.number, opens = %open.to_rfc3339(), "outside its calling window");
                    // In the store: claimable again (by any dialer) once it opens.
                    self.store.defer(number.id, open.timestamp_millis()).await?;
                    continue;
                }
                NumberVerdict::Skip(outcome, message) => {
                    self.never_dial(number, outcome, message).await?;
                    continue;
                }
            }
            let key = self.key.clone();
            let number_id = number.id;
            match self
                .store
                .begin_attempt(number_id, |attempt| {
                    AttemptIds::new(&key, number_id.0, attempt).callee
                })
                .await
            {
                Ok(attempt) => {
                    self.rules
                        .started(attempt.id.0, number_id.0, attempt.record.attempt);
                    return Ok(Some(CallPlan {
                        attempt_id: attempt.id.0,
                        number: number.number,
                        variables: number.data,
                        ids: AttemptIds::new(&self.key, number_id.0, attempt.record.attempt),
                        stage: Stage::New,
                        live_at: None,
                    }));
                }
                // Taken meanwhile (a stale batch): never dial it twice.
                Err(StoreError::NotPending { .. }) => continue,
                // Added to the DNC table since the check above.
                Err(StoreError::OnDnc { from, .. }) => {
                    let message = format!("not dialled: on the do-not-call list (from {from})");
                    self.never_dial(number, Outcome::Dnc, message).await?;
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }
}

impl Dialer {
    /// Whether every number of the campaign has its outcome (every dialer's calls too).
    async fn campaign_done(&self) -> Result<bool, CampaignError> {
        Ok(!self.store.has_open_numbers().await?)
    }

    /// Picks up the unfinished attempts of dialers that are gone: an earlier run of this
    /// store (SQLite, or a crashed process), or, with several dialers, one whose lease
    /// ran out. A call on this dialer's Asterisk is adopted as after a crash (still up:
    /// finished normally; gone: interrupted); one on an Asterisk no running dialer
    /// reaches is recorded as interrupted; one whose Asterisk another running dialer has
    /// is left to it.
    async fn reconcile_orphans(&mut self, control: &RunControl) -> Result<(), CampaignError> {
        let orphans = self.store.orphaned().await?;
        if orphans.is_empty() {
            return Ok(());
        }
        let live: Vec<String> = if self.store.is_shared() {
            self.store
                .live_dialers()
                .await?
                .into_iter()
                .map(|dialer| asterisk_of(&dialer.asterisk))
                .collect()
        } else {
            Vec::new()
        };
        for attempt in orphans {
            let theirs = attempt.asterisk.as_deref().map(asterisk_of);
            // One dialer (SQLite) asks its own Asterisk, as before: its ARI URL may just be
            // spelt differently from the last run's.
            let here =
                !self.store.is_shared() || theirs.as_deref().is_none_or(|url| url == self.asterisk);
            if !here
                && live
                    .iter()
                    .any(|url| Some(url.as_str()) == theirs.as_deref())
            {
                continue;
            }
            if !self.store.take_over(&attempt).await? {
                // Another dialer took it first.
                continue;
            }
            let plan = resumed(&attempt, &self.key);
            let from = attempt.dialer.as_deref().unwrap_or("an earlier run");
            if !here {
                tracing::warn!(number = %plan.number, channel_id = %plan.ids.callee, dialer = from, asterisk = theirs.as_deref().unwrap_or(""), "a stopped dialer's call is on an Asterisk no running dialer reaches: recorded as interrupted");
                let ending = crate::store::Ending {
                    outcome: Outcome::Interrupted,
                    cause: None,
                    cause_text: None,
                    message: Some(format!(
                        "dialer {from} stopped during the call and no running dialer reaches its Asterisk {}",
                        theirs.as_deref().unwrap_or("")
                    )),
                    ended_at: crate::store::unix_millis_now(),
                };
                self.store.finish(attempt.id, &ending).await?;
                continue;
            }
            tracing::info!(number = %plan.number, channel_id = %plan.ids.callee, state = attempt.state.as_str(), dialer = from, "reconciling an attempt left by a stopped dialer");
            if self.store.is_shared() {
                follow(&self.connection, &plan.ids).await;
            }
            self.rules
                .started(attempt.id.0, attempt.number_id.0, attempt.record.attempt);
            let slot = tokio::select! {
                slot = self.pacer.admit() => slot,
                // The attempt stays this dialer's: the next run (or dialer) reconciles it.
                () = control.stopped() => return Ok(()),
            };
            self.spawn(plan, slot);
        }
        Ok(())
    }

    /// Stores an outcome for a number that must not be dialled (DNC): an attempt row
    /// that never reaches Asterisk, without `originated_at`.
    async fn never_dial(
        &mut self,
        number: PendingNumber,
        outcome: Outcome,
        message: String,
    ) -> Result<(), CampaignError> {
        let key = self.key.clone();
        let number_id = number.id;
        let ending = crate::store::Ending {
            outcome,
            cause: None,
            cause_text: None,
            message: Some(message),
            ended_at: crate::store::unix_millis_now(),
        };
        match self
            .store
            .finish_without_call(
                number_id,
                |attempt| AttemptIds::new(&key, number_id.0, attempt).callee,
                &ending,
            )
            .await
        {
            Ok(_) => {}
            // Taken meanwhile (a stale batch).
            Err(StoreError::NotPending { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        }
        let reason = ending.message.as_deref().unwrap_or("");
        tracing::info!(number = %number.number, %outcome, %reason, "not dialled");
        self.tally.outcome(outcome);
        Ok(())
    }
}

/// Runs the campaign until every number has an outcome or a stop is asked, publishing
/// its status to `control` as it goes.
///
/// # Errors
/// When the campaign cannot start (list, store, ARI, trunk) or the store fails; what was
/// stored before stays.
pub async fn run(config: &Config, control: &Arc<RunControl>) -> Result<Summary, CampaignError> {
    let prepared = prepare(config).await?;
    run_prepared(config, prepared, control).await
}

/// A campaign ready to dial: its list imported, ARI reached, the trunk checked.
pub struct Prepared {
    store: Store,
    dnc: Option<DncFile>,
    connection: AppConnection,
    imported: ImportSummary,
    invalid_lines: u64,
}

impl Prepared {
    /// The campaign's store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Everything that can refuse a campaign before its first call: the list, the store,
/// ARI, the trunk.
///
/// # Errors
/// What to fix, in words.
pub async fn prepare(config: &Config) -> Result<Prepared, CampaignError> {
    let source = source(config)?;
    let store = Store::open_at(&config.db, &config.campaign).await?;
    // Into the store's table, checked at import (counted) and again before each call.
    let dnc = config
        .rules
        .dnc_file
        .as_deref()
        .map(DncFile::open)
        .transpose()?;
    if let Some(file) = &dnc {
        load_dnc(&store, file).await?;
    }
    let (imported, invalid_lines) = import(&store, &source).await?;
    let connection = connect(config).await?;
    store.register_dialer(&dialer_info(config)).await?;
    if store.is_shared() {
        tracing::info!(dialer = %store.dialer_id(), store = %store.path().display(), "dialing a shared campaign: numbers are claimed under a lease");
    }
    Ok(Prepared {
        store,
        dnc,
        connection,
        imported,
        invalid_lines,
    })
}

/// Loads the DNC file into the store's `dnc` table (idempotent: numbers already there are
/// kept as they are), where every dialer of the campaign sees it.
async fn load_dnc(store: &Store, file: &DncFile) -> Result<(), StoreError> {
    let source = file.path().display().to_string();
    let added = store.load_dnc(file.list().iter(), &source).await?;
    let total = store.dnc_count().await?;
    tracing::info!(file = %source, numbers = file.list().len(), added, total, "do-not-call list loaded into the store");
    Ok(())
}

/// What the store records about this dialer.
fn dialer_info(config: &Config) -> DialerInfo {
    DialerInfo {
        app: config.app.clone(),
        asterisk: asterisk_of(&config.ari.url),
        max_cc: config.max_cc,
        lease: config.lease,
    }
}

/// An Asterisk as dialers of a campaign name it: its ARI base URL, without a trailing `/`.
fn asterisk_of(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}

/// Renews the dialer's lease (and its claims') three times per lease.
async fn renew_leases(store: Store, lease: Duration) {
    let mut ticker = tokio::time::interval(lease / 3);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = store.renew().await {
            tracing::warn!(error = %crate::app::error_chain(&error), "cannot renew the dialer's lease; other dialers take its numbers and calls when it runs out");
        }
    }
}

/// Subscribes this dialer's app to a taken-over call's channels and bridge: they are in
/// another dialer's Stasis app, whose events would not reach this one.
async fn follow(connection: &AppConnection, ids: &AttemptIds) {
    use ari_client::model::operations::applications::Subscribe;
    for source in [
        format!("channel:{}", ids.callee),
        format!("channel:{}", ids.target),
        format!("bridge:{}", ids.bridge),
    ] {
        let subscribe = Subscribe::new(connection.app(), [source]);
        // A part that does not exist (any more) has nothing to follow.
        let _ = connection
            .client()
            .applications()
            .subscribe(subscribe)
            .await;
    }
}

/// Dials a prepared campaign; see [`run`].
///
/// # Errors
/// As [`run`].
pub async fn run_prepared(
    config: &Config,
    prepared: Prepared,
    control: &Arc<RunControl>,
) -> Result<Summary, CampaignError> {
    let Prepared {
        store,
        dnc,
        connection,
        imported,
        invalid_lines,
    } = prepared;
    store.set_status(RunState::Running).await?;
    let tally = Arc::new(Tally::default());
    let mut rules = CampaignRules::new(&config.rules, config.max_cc, Arc::new(SystemClock));
    // The campaign's rate (every dialer's calls, earlier runs' too) from the start.
    let abandon = abandon::AbandonFeed::start(&store, &mut rules, &tally).await?;
    let mut dialer = Dialer {
        connection,
        settings: Arc::new(settings(config)),
        log: Arc::new(StoreLog {
            store: store.clone(),
            retry: config.rules.retry.clone(),
        }),
        store: store.clone(),
        pacer: Arc::new(Pacer::new(config.max_cc, config.cps)),
        tally: tally.clone(),
        key: campaign_key(&config.campaign),
        calls: JoinSet::new(),
        not_sent: VecDeque::new(),
        pending: VecDeque::new(),
        downloads: JoinSet::new(),
        rules,
        abandon,
        dnc,
        claim_batch: if store.is_shared() {
            config.max_cc.clamp(1, PENDING_BATCH)
        } else {
            PENDING_BATCH
        },
        asterisk: asterisk_of(&config.ari.url),
    };
    let renewer = tokio::spawn(renew_leases(store.clone(), config.lease));
    let reporter = tokio::spawn(publish_status(
        store.clone(),
        tally.clone(),
        dialer.pacer.clone(),
        config.campaign.clone(),
        control.clone(),
    ));
    let outcome = dial_all(&mut dialer, control).await;
    // Whatever happened, calls in progress finish and are stored.
    while let Some(done) = dialer.calls.join_next().await {
        if let Err(error) = dialer.reap(done).await {
            tracing::error!(error = %error, "storing a call's outcome failed");
        }
    }
    while dialer.downloads.join_next().await.is_some() {}
    // Attempts that never reached Asterisk (it was down when the run stopped) are taken
    // back, so their numbers are dialled by a later run instead of counting as lost.
    for plan in std::mem::take(&mut dialer.not_sent) {
        if plan.stage == Stage::New {
            store
                .void_attempt(crate::store::AttemptId(plan.attempt_id))
                .await?;
        }
    }
    reporter.abort();
    renewer.abort();
    // Unstarted claims go back to the other dialers at once.
    if let Err(error) = store.retire().await {
        tracing::warn!(error = %crate::app::error_chain(&error), "cannot release the dialer's claims; they return when its lease runs out");
    }
    dialer
        .abandon
        .read(&dialer.store, &mut dialer.rules, &dialer.tally)
        .await;
    let abandon = dialer.rules.abandon().total();
    if abandon.live > 0 {
        tracing::info!(
            live_answered = abandon.live,
            abandoned = abandon.abandoned,
            rate_pct = abandon.rate() * 100.0,
            "abandon rate of the campaign over the last 30 days (every dialer's calls, earlier runs included)"
        );
        for (day, counts) in dialer.rules.abandon().per_day() {
            tracing::info!(%day, live_answered = counts.live, abandoned = counts.abandoned, rate_pct = counts.rate() * 100.0, "abandon rate by day (UTC)");
        }
    }
    outcome?;
    let state = RunState::Finished;
    // The breaker's pauses as the last calls left them (one may have closed it).
    tally.set_breaker(None, dialer.rules.breaker());
    // A shared campaign is finished when every number has its outcome, whoever ends last.
    let counts = store.counts().await?;
    if !store.is_shared() || (counts.pending == 0 && counts.in_progress == 0) {
        store.set_status(state).await?;
    }
    let status = status_of(&store, &tally, 0, &config.campaign, state).await?;
    control.publish(status.clone());
    if let Some(path) = &config.report {
        write_report(&store, path).await?;
        abandon::write_day_report(&store, &dialer.rules, path).await?;
    }
    dialer.connection.close();
    Ok(Summary {
        status,
        imported,
        invalid_lines,
    })
}

async fn dial_all(dialer: &mut Dialer, control: &RunControl) -> Result<(), CampaignError> {
    // Recordings a crash left on Asterisk (the dialer died while downloading).
    for attempt in dialer.store.unsaved_recordings().await? {
        let Some(name) = attempt.record.recording_name.clone() else {
            continue;
        };
        let (connection, settings, log) = (
            dialer.connection.clone(),
            dialer.settings.clone(),
            dialer.log.clone(),
        );
        tracing::info!(recording = %name, channel_id = %attempt.record.channel_id, "fetching a recording left by an earlier run");
        dialer.downloads.spawn(async move {
            if let Err(error) = call::save_recording_of_ended(
                &connection,
                &settings,
                log.as_ref(),
                attempt.id.0,
                &name,
            )
            .await
            {
                tracing::error!(%error, "storing a recording's file name failed");
            }
        });
    }
    // What a crash left: adopt the calls still up, record the others as interrupted.
    dialer.reconcile_orphans(control).await?;
    let mut orphans_checked = tokio::time::Instant::now();
    // The wake-up last announced while nothing was callable (said once each).
    let mut announced = None;
    loop {
        while let Some(done) = dialer.calls.try_join_next() {
            dialer.reap(done).await?;
        }
        // Other dialers' calls count in the campaign's abandon rate too.
        dialer
            .abandon
            .refresh(&dialer.store, &mut dialer.rules, &dialer.tally)
            .await;
        if !control.may_dial().await {
            return Ok(());
        }
        // With several dialers, a stopped one's calls are picked up once its lease is over.
        if dialer.store.is_shared() && orphans_checked.elapsed() >= SHARED_POLL {
            orphans_checked = tokio::time::Instant::now();
            dialer.reconcile_orphans(control).await?;
        }
        // The breaker and the abandon rate may hold new calls back.
        // Calls count until their outcome is accounted (a freed slot may precede it).
        let unaccounted = u32::try_from(dialer.calls.len()).unwrap_or(u32::MAX);
        let gate = dialer.rules.start_gate(unaccounted);
        dialer.tally.set_held_back(match &gate {
            StartGate::Go => None,
            StartGate::Concurrency(allowed) => Some(format!(
                "abandon rate {:.1} % above the limit: at most {allowed} calls at once",
                dialer.rules.abandon().total().rate() * 100.0
            )),
            StartGate::Breaker { until, reason } => Some(format!(
                "{reason}; no new calls until {}",
                until.to_rfc3339()
            )),
        });
        // For the status: paused by the breaker, why, until when, and its pauses so far.
        let breaker = dialer.rules.breaker();
        dialer.tally.set_breaker(
            match &gate {
                StartGate::Breaker { until, reason } => Some((
                    reason.clone(),
                    // While the probe is out the wait is its end, not a time.
                    (!breaker.is_probing()).then_some(*until),
                )),
                _ => None,
            },
            breaker,
        );
        match gate {
            StartGate::Go => {}
            StartGate::Concurrency(_) | StartGate::Breaker { .. }
                if control.current() != Request::Run => {}
            StartGate::Concurrency(_) => {
                tokio::select! {
                    Some(done) = dialer.calls.join_next() => dialer.reap(done).await?,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                    () = control.stopped() => return Ok(()),
                }
                continue;
            }
            StartGate::Breaker {
                until: open,
                reason,
            } => {
                if dialer.rules.announce_trip() {
                    tracing::warn!(%reason, until = %open.to_rfc3339(), "circuit breaker: no new calls until then");
                }
                let wait = until(dialer.rules.now(), open).max(Duration::from_millis(50));
                tokio::select! {
                    Some(done) = dialer.calls.join_next() => dialer.reap(done).await?,
                    () = tokio::time::sleep(wait) => {}
                    () = control.stopped() => return Ok(()),
                }
                continue;
            }
        }
        let slot = tokio::select! {
            slot = dialer.pacer.admit() => slot,
            () = control.stopped() => return Ok(()),
            Some(done) = dialer.calls.join_next() => {
                dialer.reap(done).await?;
                continue;
            }
        };
        // A pause or stop asked while we waited for the slot holds from now on.
        if control.current() != Request::Run {
            drop(slot);
            continue;
        }
        match dialer.next_plan().await? {
            Some(plan) => dialer.spawn(plan, slot),
            None => {
                drop(slot);
                // Nothing to start now: wait for a call to end (it may need a retry), a
                // retry to come due or a calling window to open.
                let wake = dialer
                    .store
                    .next_not_before()
                    .await?
                    .map(crate::rules::clock::from_unix_millis);
                if let Some(at) = wake {
                    dialer.tally.set_held_back(Some(format!(
                        "nothing callable until {} (numbers wait for a retry or their calling window)",
                        at.to_rfc3339()
                    )));
                }
                if dialer.calls.is_empty() {
                    match wake {
                        None if dialer.not_sent.is_empty() => {
                            if !dialer.store.is_shared() || dialer.campaign_done().await? {
                                return Ok(());
                            }
                            // Others still dial, or a stopped dialer's numbers and calls
                            // come back when its lease runs out.
                            tokio::select! {
                                () = tokio::time::sleep(SHARED_POLL) => {}
                                () = control.stopped() => return Ok(()),
                            }
                            continue;
                        }
                        None => continue,
                        Some(at) if announced != Some(at) => {
                            announced = Some(at);
                            tracing::info!(
                                until = %at.to_rfc3339(),
                                "nothing callable now: sleeping until then"
                            );
                        }
                        Some(_) => {}
                    }
                }
                let mut sleep = wake.map_or(Duration::from_secs(3600), |at| {
                    until(dialer.rules.now(), at).max(Duration::from_millis(20))
                });
                if dialer.store.is_shared() {
                    // A stopped dialer's numbers and calls may come back at any moment.
                    sleep = sleep.min(SHARED_POLL);
                }
                tokio::select! {
                    Some(done) = dialer.calls.join_next() => dialer.reap(done).await?,
                    () = tokio::time::sleep(sleep) => {}
                    () = control.stopped() => return Ok(()),
                }
            }
        }
    }
}

async fn status_of(
    store: &Store,
    tally: &Tally,
    active: u64,
    campaign: &str,
    state: RunState,
) -> Result<CampaignStatus, StoreError> {
    let counts = store.counts().await?;
    let mut status = CampaignStatus::empty(campaign, state);
    status.total = counts.total;
    status.pending = counts.pending;
    status.active_calls = active;
    for (outcome, count) in &counts.by_outcome {
        status.outcomes.insert(outcome.as_str(), *count);
    }
    status.calls_per_minute = tally.per_minute();
    status.held_back = tally.held_back();
    status.abandon_rate_pct = tally.abandon_rate_pct();
    let breaker = tally.breaker();
    status.breaker_pauses = breaker.pauses.iter().map(Into::into).collect();
    match (state, breaker.holding) {
        // The operator's pause is the operator's, whatever the breaker does meanwhile.
        (RunState::Paused, _) => status.paused_by = Some(PausedBy::Operator),
        (RunState::Running, Some((reason, until))) => {
            status.state = RunState::Paused;
            status.paused_by = Some(PausedBy::Breaker);
            status.pause_reason = Some(reason);
            status.paused_until = until.map(crate::status::rfc3339);
        }
        _ => {}
    }
    if store.is_shared() {
        // Every dialer's calls and pace, from the database.
        status.active_calls = counts.in_progress;
        status.calls_per_minute = shared_pace(&counts);
    }
    status.eta_seconds = (status.calls_per_minute > 0.0)
        .then(|| (status.pending + status.active_calls) as f64 * 60.0 / status.calls_per_minute);
    Ok(status)
}

/// Attempts ended per minute over the last minute, by every dialer of the campaign.
fn shared_pace(counts: &crate::store::Counts) -> f64 {
    let Some(first) = counts.first_end_in_minute else {
        return 0.0;
    };
    let span_ms = (crate::store::unix_millis_now() - first).clamp(5_000, 60_000);
    counts.ended_last_minute as f64 * 60_000.0 / span_ms as f64
}

async fn publish_status(
    store: Store,
    tally: Arc<Tally>,
    pacer: Arc<Pacer>,
    campaign: String,
    control: Arc<RunControl>,
) {
    let mut ticker = tokio::time::interval(if store.is_shared() {
        SHARED_STATUS_EVERY
    } else {
        STATUS_EVERY
    });
    loop {
        ticker.tick().await;
        let state = match control.current() {
            Request::Run => RunState::Running,
            Request::Pause => RunState::Paused,
            Request::Stop => RunState::Stopping,
        };
        match status_of(&store, &tally, u64::from(pacer.active()), &campaign, state).await {
            Ok(status) => control.publish(status),
            Err(error) => tracing::warn!(%error, "cannot read the campaign's counts"),
        }
    }
}

/// Writes the per-day abandon report beside the report at `report` (`NAME.abandon.csv`),
/// its 30-day window ending today (UTC).
///
/// # Errors
/// The store cannot be read or the file written.
pub async fn write_abandon_report(
    store: &Store,
    report: &std::path::Path,
) -> Result<std::path::PathBuf, CampaignError> {
    use crate::rules::clock::{Clock as _, SystemClock};
    let today = SystemClock.now().date_naive();
    let window_start = crate::rules::abandon::AbandonControl::window_start(today);
    abandon::write_day_report_from(store, window_start, report).await
}

/// Writes the per-attempt report from the store.
///
/// # Errors
/// The report cannot be written or the store cannot be read.
pub async fn write_report(
    store: &Store,
    path: &std::path::Path,
) -> Result<crate::report::ReportSummary, CampaignError> {
    // The data columns are the list's: every record of a CSV has the same keys.
    let columns: Vec<String> = {
        use futures::StreamExt as _;
        let mut records = Box::pin(store.attempts());
        match records.next().await {
            Some(Ok(first)) => first.data.keys().cloned().collect(),
            Some(Err(error)) => return Err(error.into()),
            None => Vec::new(),
        }
    };
    let summary = crate::report::write_stream(path, store.attempts(), &columns).await?;
    tracing::info!(path = %path.display(), "report written");
    Ok(summary)
}
