//! The two ways the program runs, for the binary and for tests: `run` dials the campaign
//! now; `serve` answers the seed's controller and dials when told to.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use tokio::sync::{Mutex, RwLock};

use crate::campaign::{self, CampaignError, Request, RunControl, Summary};
use crate::config::{Args, Config};
use crate::progress::{self, Progress};
use crate::report::ReportSummary;
use crate::serve::{self, Control, ControlError, Started};
use crate::status::{CampaignStatus, PausedBy, RunState};
use crate::store::{Location, Store};

/// How often the non-terminal progress logs a line.
const LOG_EVERY: Duration = Duration::from_secs(10);
/// The report is rewritten on `/status` at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Dials the campaign now; the first SIGINT/SIGTERM stops new calls and lets the active
/// ones finish. Prints the summary.
///
/// # Errors
/// When the campaign cannot run.
pub async fn run(config: Config) -> Result<Summary, CampaignError> {
    let control = Arc::new(RunControl::new(&config.campaign));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let follower = tokio::spawn(follow_progress(control.clone(), done_rx));
    let stopper = tokio::spawn(stop_on_signal(control.clone()));
    let result = campaign::run(&config, &control).await;
    stopper.abort();
    // The bar (or the log) shows the final counts before the summary.
    let _ = done_tx.send(());
    let _ = follower.await;
    if let Ok(summary) = &result {
        progress::print_summary(&summary.status);
    }
    result
}

async fn follow_progress(control: Arc<RunControl>, done: tokio::sync::oneshot::Receiver<()>) {
    let mut progress = Progress::for_stdout(LOG_EVERY);
    let mut statuses = control.watch_status();
    tokio::pin!(done);
    loop {
        progress.update(&statuses.borrow_and_update().clone());
        tokio::select! {
            changed = statuses.changed() => if changed.is_err() { break },
            _ = &mut done => break,
        }
    }
    progress.finish(&control.status());
}

async fn stop_on_signal(control: Arc<RunControl>) {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let term = async {
        match terminate.as_mut() {
            Some(signal) => {
                signal.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::warn!(
        "stopping: no new calls; the calls in progress finish (again to quit at once: the store keeps every outcome)"
    );
    control.request(Request::Stop);
    let _ = tokio::signal::ctrl_c().await;
    tracing::warn!("quitting now; the next run reconciles the calls left");
    std::process::exit(130);
}

/// The controller of `serve` mode: each `/start` re-reads `.env` and the flags, as the
/// seed did, and runs the campaign in the background.
pub struct Controller {
    argv: Vec<OsString>,
    dotenv: Option<PathBuf>,
    /// Who uses a campaign store besides a run, so that the SQLite file's lock (one opener
    /// at a time, this process included) never refuses a `/start`: a `/dnc` request holds
    /// it shared while it uses the run's store or a MySQL store of its own, and alone
    /// while it opens the SQLite file; `/start` holds it alone while it opens the store.
    /// Taken before `state`, and never while waiting on the database under `state`.
    stores: RwLock<()>,
    state: Mutex<ControllerState>,
}

#[derive(Default)]
struct ControllerState {
    run: Option<Running>,
    /// The status of the last run that ended.
    last: Option<CampaignStatus>,
    report: Option<(Instant, ReportSummary)>,
}

/// How long a start waits for a run that has finished to write its report.
const FINISHING_WITHIN: Duration = Duration::from_secs(30);

struct Running {
    control: Arc<RunControl>,
    config: Config,
    store: Store,
    task: tokio::task::JoinHandle<Result<Summary, CampaignError>>,
}

impl Controller {
    /// A controller that builds each run's configuration from `argv` and `dotenv`.
    pub fn new(argv: Vec<OsString>, dotenv: Option<PathBuf>) -> Self {
        Controller {
            argv,
            dotenv,
            stores: RwLock::new(()),
            state: Mutex::new(ControllerState::default()),
        }
    }

    fn config(&self) -> Result<Config, ControlError> {
        let args = Args::parse_with_dotenv(self.argv.clone(), self.dotenv.as_deref())
            .map_err(|e| ControlError::CannotRun(e.to_string()))?;
        args.validate()
            .map_err(|e| ControlError::CannotRun(e.to_string()))
    }
}

impl ControllerState {
    /// Forgets a run that has ended, keeping its final status.
    fn reap(&mut self) {
        if self.run.as_ref().is_some_and(|run| run.task.is_finished()) {
            if let Some(run) = self.run.take() {
                let mut status = run.control.status();
                status.state = RunState::Finished;
                self.last = Some(status);
            }
        }
    }

    fn running(&mut self, action: &'static str) -> Result<&Running, ControlError> {
        self.reap();
        let state = self.last.as_ref().map_or(RunState::Idle, |s| s.state);
        self.run
            .as_ref()
            .ok_or(ControlError::WrongState { action, state })
    }
}

impl Control for Controller {
    fn start(&self) -> BoxFuture<'_, Result<Started, ControlError>> {
        async move {
            // No `/dnc` request has the store open (or a clone of the last run's) meanwhile.
            let _alone = self.stores.write().await;
            let mut state = self.state.lock().await;
            if let Some(run) = state.run.as_mut() {
                if run.control.status().state == RunState::Finished {
                    // The run said it finished and is writing its report and rates: a
                    // start right after /status showed "finished" waits for that.
                    let _ = tokio::time::timeout(FINISHING_WITHIN, &mut run.task).await;
                }
            }
            state.reap();
            if let Some(run) = &state.run {
                return Ok(Started::AlreadyRunning(run.control.status().state));
            }
            let config = self.config()?;
            let prepared = campaign::prepare(&config)
                .await
                .map_err(|e| ControlError::CannotRun(error_chain(&e)))?;
            let control = Arc::new(RunControl::new(&config.campaign));
            let store = prepared.store().clone();
            let task = tokio::spawn({
                let config = config.clone();
                let control = control.clone();
                async move {
                    let result = campaign::run_prepared(&config, prepared, &control).await;
                    match &result {
                        Ok(summary) => progress::print_summary(&summary.status),
                        Err(error) => {
                            tracing::error!(error = %error_chain(error), "the campaign failed")
                        }
                    }
                    result
                }
            });
            state.run = Some(Running {
                control,
                config,
                store,
                task,
            });
            Ok(Started::Now)
        }
        .boxed()
    }

    fn status(&self) -> BoxFuture<'_, CampaignStatus> {
        async move {
            let mut state = self.state.lock().await;
            state.reap();
            match (&state.run, &state.last) {
                (Some(run), _) => run.control.status(),
                (None, Some(last)) => last.clone(),
                (None, None) => {
                    let campaign = self.config().map(|c| c.campaign).unwrap_or_default();
                    CampaignStatus::empty(&campaign, RunState::Idle)
                }
            }
        }
        .boxed()
    }

    fn pause(&self) -> BoxFuture<'_, Result<(), ControlError>> {
        self.order("pause", Request::Pause, &[RunState::Running])
    }

    fn resume(&self) -> BoxFuture<'_, Result<(), ControlError>> {
        self.order("resume", Request::Run, &[RunState::Paused])
    }

    fn stop(&self) -> BoxFuture<'_, Result<(), ControlError>> {
        self.order(
            "stop",
            Request::Stop,
            &[RunState::Running, RunState::Paused],
        )
    }

    fn write_report(&self) -> BoxFuture<'_, Result<Option<ReportSummary>, ControlError>> {
        async move {
            let mut state = self.state.lock().await;
            if let Some((at, summary)) = &state.report {
                if at.elapsed() < REPORT_EVERY {
                    return Ok(Some(summary.clone()));
                }
            }
            let Some(run) = &state.run else {
                return Ok(state.report.as_ref().map(|(_, s)| s.clone()));
            };
            let Some(path) = run.config.report.clone() else {
                return Ok(None);
            };
            let internal = |e: campaign::CampaignError| ControlError::Internal {
                message: error_chain(&e),
                source: None,
            };
            let summary = campaign::write_report(&run.store, &path)
                .await
                .map_err(internal)?;
            // The per-day abandon rates too, as at the end of a run.
            campaign::write_abandon_report(&run.store, &path)
                .await
                .map_err(internal)?;
            state.report = Some((Instant::now(), summary.clone()));
            Ok(Some(summary))
        }
        .boxed()
    }

    fn dnc_add(
        &self,
        numbers: Vec<String>,
        source: String,
    ) -> BoxFuture<'_, Result<u64, ControlError>> {
        self.with_store(move |store| {
            async move { store.load_dnc(numbers.iter(), &source).await }.boxed()
        })
    }

    fn dnc_remove(&self, number: String) -> BoxFuture<'_, Result<bool, ControlError>> {
        self.with_store(move |store| async move { store.remove_dnc(&number).await }.boxed())
    }

    fn dnc_lookup(
        &self,
        number: String,
    ) -> BoxFuture<'_, Result<Option<crate::store::DncEntry>, ControlError>> {
        self.with_store(move |store| async move { store.dnc_entry(&number).await }.boxed())
    }

    fn dnc_count(&self) -> BoxFuture<'_, Result<u64, ControlError>> {
        self.with_store(|store| async move { store.dnc_count().await }.boxed())
    }
}

impl Controller {
    /// Runs `op` on the campaign's store: the run's while one is under way (a shared
    /// campaign's dialers all see it at once), else the store opened for this request
    /// and closed after it, so a later `/start` (or another dialer of an SQLite file)
    /// can open it. Never under the state lock: `/status` and the orders do not wait for
    /// the database; a `/start` waits for the request (see `stores`).
    fn with_store<T, F>(&self, op: F) -> BoxFuture<'_, Result<T, ControlError>>
    where
        T: Send + 'static,
        F: FnOnce(Store) -> BoxFuture<'static, Result<T, crate::store::StoreError>>
            + Send
            + 'static,
    {
        async move {
            let failed = |error: crate::store::StoreError| ControlError::Internal {
                message: error_chain(&error),
                source: None,
            };
            let shared = self.stores.read().await;
            if let Some(store) = self.run_store().await {
                return op(store).await.map_err(failed);
            }
            let config = self.config()?;
            // Opening an SQLite file is one request at a time; a run may have started
            // while this one waited for that, and then its store is the one to use.
            let _alone = match config.db {
                Location::Sqlite(_) => {
                    drop(shared);
                    let alone = self.stores.write().await;
                    if let Some(store) = self.run_store().await {
                        return op(store).await.map_err(failed);
                    }
                    Some(alone)
                }
                Location::MySql(_) => None,
            };
            let store = Store::open_at(&config.db, &config.campaign)
                .await
                .map_err(|e| ControlError::CannotRun(error_chain(&e)))?;
            let result = op(store.clone()).await;
            store.close().await;
            result.map_err(failed)
        }
        .boxed()
    }

    /// The store of the run under way, if any; the state lock is held only for this.
    async fn run_store(&self) -> Option<Store> {
        let mut state = self.state.lock().await;
        state.reap();
        state.run.as_ref().map(|run| run.store.clone())
    }

    fn order(
        &self,
        action: &'static str,
        request: Request,
        allowed: &'static [RunState],
    ) -> BoxFuture<'_, Result<(), ControlError>> {
        async move {
            let mut state = self.state.lock().await;
            let run = state.running(action)?;
            let now = match run.control.current() {
                Request::Run => RunState::Running,
                Request::Pause => RunState::Paused,
                Request::Stop => RunState::Stopping,
            };
            if !allowed.contains(&now) {
                let status = run.control.status();
                if request == Request::Run && status.paused_by == Some(PausedBy::Breaker) {
                    // The operator did not pause it: only a probe call that gets through
                    // the trunk resumes it.
                    return Err(ControlError::Held(format!(
                        "the circuit breaker paused the campaign, not /pause: {}; it lets one probe call through {} and resumes when one gets through the trunk",
                        status.pause_reason.as_deref().unwrap_or("the trunk failed"),
                        status
                            .paused_until
                            .map_or_else(|| "now".to_owned(), |at| format!("at {at}")),
                    )));
                }
                return Err(ControlError::WrongState { action, state: now });
            }
            run.control.request(request);
            Ok(())
        }
        .boxed()
    }
}

/// Serves the controller on `config.listen` until SIGINT/SIGTERM.
///
/// # Errors
/// The address cannot be bound.
pub async fn serve(
    config: &Config,
    argv: Vec<OsString>,
    dotenv: Option<PathBuf>,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    tracing::info!(listen = %config.listen, "controller ready: GET /start to dial, /status, POST /pause /resume /stop; do-not-call list: POST /dnc, GET /dnc, GET|DELETE /dnc/{{number}}");
    let controller = Arc::new(Controller::new(argv, dotenv));
    serve::serve(listener, controller, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}

/// An error and its causes on one line.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}
