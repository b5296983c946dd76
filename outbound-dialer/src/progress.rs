//! The campaign's progress for the operator: an indicatif bar on a terminal, otherwise a
//! throttled log line; and the summary printed at the end.

use std::io::IsTerminal as _;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::outcome::Outcome;
use crate::status::{CampaignStatus, PausedBy, RunState};

/// The bar on screen, if any, so that log lines can be written around it.
static ACTIVE_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Runs `f` with the progress bar (if one is drawn) hidden, so that what `f` writes to
/// the terminal does not tear it; the logging writer goes through this.
pub(crate) fn suspend_bar<R>(f: impl FnOnce() -> R) -> R {
    // Cloned out so that the lock is not held while writing.
    let bar = match ACTIVE_BAR.lock() {
        Ok(active) => active.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    match bar {
        Some(bar) => bar.suspend(f),
        None => f(),
    }
}

fn set_active_bar(bar: Option<ProgressBar>) {
    match ACTIVE_BAR.lock() {
        Ok(mut active) => *active = bar,
        Err(poisoned) => *poisoned.into_inner() = bar,
    }
}

/// Shows campaign snapshots as they come: a bar on a terminal, log lines otherwise.
#[derive(Debug)]
pub struct Progress {
    display: Display,
}

#[derive(Debug)]
enum Display {
    Bar(ProgressBar),
    Log {
        every: Duration,
        last: Option<Logged>,
    },
}

/// The last line logged, when, and for which state.
#[derive(Debug)]
struct Logged {
    at: Instant,
    state: RunState,
    line: String,
}

impl Progress {
    /// A bar when stdout is a terminal, else a log line at most every `log_every`.
    pub fn for_stdout(log_every: Duration) -> Self {
        if std::io::stdout().is_terminal() {
            Progress::bar()
        } else {
            Progress::log(log_every)
        }
    }

    /// A bar on stdout.
    pub fn bar() -> Self {
        Progress::bar_to(ProgressDrawTarget::stdout())
    }

    fn bar_to(target: ProgressDrawTarget) -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), target);
        // The template is a constant, so it parses; the plain bar is a safe fallback.
        let style = ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar:.cyan/blue}] {pos}/{len} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        // Keeps the elapsed time moving between snapshots.
        bar.enable_steady_tick(Duration::from_secs(1));
        set_active_bar(Some(bar.clone()));
        Progress {
            display: Display::Bar(bar),
        }
    }

    /// Log lines (`tracing::info!`) at most every `every`, and at every change of state.
    pub fn log(every: Duration) -> Self {
        Progress {
            display: Display::Log { every, last: None },
        }
    }

    /// Whether this draws a bar (rather than logging).
    pub fn is_bar(&self) -> bool {
        matches!(self.display, Display::Bar(_))
    }

    /// Shows `status`.
    pub fn update(&mut self, status: &CampaignStatus) {
        self.update_at(status, Instant::now());
    }

    /// Shows `status` at `now`; answers the line it logged, if it logged one.
    fn update_at(&mut self, status: &CampaignStatus, now: Instant) -> Option<String> {
        match &mut self.display {
            Display::Bar(bar) => {
                show(bar, status);
                None
            }
            Display::Log { every, last } => {
                let due = last.as_ref().is_none_or(|logged| {
                    logged.state != status.state || now.duration_since(logged.at) >= *every
                });
                if !due {
                    return None;
                }
                let line = status_line(status);
                tracing::info!("{line}");
                *last = Some(Logged {
                    at: now,
                    state: status.state,
                    line: line.clone(),
                });
                Some(line)
            }
        }
    }

    /// Shows the last snapshot whatever the throttle, and leaves the bar on screen.
    pub fn finish(mut self, status: &CampaignStatus) {
        match &mut self.display {
            Display::Bar(bar) => {
                show(bar, status);
                bar.finish();
            }
            Display::Log { last, .. } => {
                if let Some(line) = final_line(last.as_ref(), status) {
                    tracing::info!("{line}");
                }
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Display::Bar(bar) = &self.display {
            if !bar.is_finished() {
                bar.abandon();
            }
            set_active_bar(None);
        }
    }
}

/// Puts `status` on the bar. Retries can end more attempts than there are numbers: the
/// bar stops at full.
fn show(bar: &ProgressBar, status: &CampaignStatus) {
    bar.set_length(status.total);
    bar.set_position(status.finished().min(status.total));
    bar.set_message(bar_message(status));
}

/// The last line to log, unless it was just logged (as the change to its state).
fn final_line(last: Option<&Logged>, status: &CampaignStatus) -> Option<String> {
    let line = status_line(status);
    last.is_none_or(|logged| logged.line != line)
        .then_some(line)
}

/// Shows every snapshot `statuses` sends until its sender is dropped, then the last one
/// unthrottled; answers that last snapshot.
pub async fn follow(
    mut statuses: watch::Receiver<CampaignStatus>,
    mut progress: Progress,
) -> CampaignStatus {
    loop {
        let status = statuses.borrow_and_update().clone();
        progress.update(&status);
        if statuses.changed().await.is_err() {
            break;
        }
    }
    let last = statuses.borrow().clone();
    progress.finish(&last);
    last
}

/// The counts that are not zero, in report order: `answered 3, busy 1`.
fn outcome_counts(status: &CampaignStatus) -> String {
    let counts: Vec<String> = ordered_outcomes(status)
        .filter(|(_, count)| *count > 0)
        .map(|(name, count)| format!("{name} {count}"))
        .collect();
    if counts.is_empty() {
        "no calls ended yet".to_owned()
    } else {
        counts.join(", ")
    }
}

/// Every outcome in report order, then any name the runner added that is not one.
fn ordered_outcomes(status: &CampaignStatus) -> impl Iterator<Item = (&str, u64)> {
    let known = Outcome::ALL.into_iter().map(|outcome| {
        (
            outcome.as_str(),
            status.outcomes.get(outcome.as_str()).copied().unwrap_or(0),
        )
    });
    let other = status
        .outcomes
        .iter()
        .filter(|(name, _)| name.parse::<Outcome>().is_err())
        .map(|(name, count)| (*name, *count));
    known.chain(other)
}

fn bar_message(status: &CampaignStatus) -> String {
    let state = match (status.state, status.paused_by) {
        (RunState::Running, _) => String::new(),
        (RunState::Paused, Some(PausedBy::Breaker)) => {
            "[paused by the circuit breaker] ".to_owned()
        }
        (other, _) => format!("[{}] ", other.as_str()),
    };
    format!(
        "{state}{} · {} active · {:.1} calls/min · ETA {}",
        outcome_counts(status),
        status.active_calls,
        finite_or_zero(status.calls_per_minute),
        eta_text(status.eta_seconds)
    )
}

/// One line for logs: `campaign c running: 57/120 done (answered 40, busy 17), 3 active,
/// 12.5 calls/min, ETA 5m 03s`.
pub fn status_line(status: &CampaignStatus) -> String {
    format!(
        "campaign {} {}{}: {}/{} done ({}), {} active, {:.1} calls/min, ETA {}",
        status.campaign,
        status.state.as_str(),
        paused_by_text(status),
        status.finished(),
        status.total,
        outcome_counts(status),
        status.active_calls,
        finite_or_zero(status.calls_per_minute),
        eta_text(status.eta_seconds)
    )
}

/// ` by the circuit breaker (why) until T` while the breaker pauses the campaign, ` by
/// the operator` for `/pause`; nothing otherwise.
fn paused_by_text(status: &CampaignStatus) -> String {
    match status.paused_by {
        Some(PausedBy::Breaker) => {
            let mut text = " by the circuit breaker".to_owned();
            if let Some(reason) = &status.pause_reason {
                text.push_str(&format!(" ({reason})"));
            }
            match &status.paused_until {
                Some(until) => text.push_str(&format!(", probe call at {until}")),
                None => text.push_str(", a probe call is out"),
            }
            text
        }
        Some(PausedBy::Operator) => " by the operator".to_owned(),
        None => String::new(),
    }
}

/// The breaker's pauses, a line each: when it paused and why, its probes, when it resumed.
fn breaker_lines(status: &CampaignStatus) -> Vec<String> {
    status
        .breaker_pauses
        .iter()
        .map(|pause| {
            let mut line = format!(
                "paused by the circuit breaker at {}: {}",
                pause.paused_at, pause.reason
            );
            if !pause.probes.is_empty() {
                line.push_str(&format!("; probe calls at {}", pause.probes.join(", ")));
                let earlier = (pause.probe_count as usize).saturating_sub(pause.probes.len());
                if earlier > 0 {
                    line.push_str(&format!(" (and {earlier} before)"));
                }
            }
            match &pause.resumed_at {
                Some(at) => line.push_str(&format!("; resumed at {at}")),
                None => line.push_str("; still paused at the end"),
            }
            line
        })
        .collect()
}

fn finite_or_zero(value: f64) -> f64 {
    if value.is_finite() { value } else { 0.0 }
}

/// `1h 02m`, `4m 05s`, `12s`; `unknown` when there is no estimate (or a nonsense one).
fn eta_text(eta_seconds: Option<f64>) -> String {
    let Some(seconds) = eta_seconds.filter(|s| s.is_finite() && *s >= 0.0) else {
        return "unknown".to_owned();
    };
    // Rounded up: "0s" while calls remain would read as done. `as` saturates.
    let seconds = seconds.ceil() as u64;
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours >= 100 * 24 {
        ">99d".to_owned()
    } else if hours > 0 {
        format!("{hours}h {minutes:02}m")
    } else if minutes > 0 {
        format!("{minutes}m {seconds:02}s")
    } else {
        format!("{seconds}s")
    }
}

/// The end-of-run summary, a line each: the campaign, its numbers, then every outcome
/// with its count and share of the ended attempts.
pub fn summary_lines(status: &CampaignStatus) -> Vec<String> {
    let finished = status.finished();
    let mut lines = vec![
        format!("campaign {}: {}", status.campaign, status.state.as_str()),
        format!(
            "numbers: {} total, {} not dialled, {} calls in progress",
            status.total, status.pending, status.active_calls
        ),
        format!("attempts ended: {finished}"),
    ];
    let width = ordered_outcomes(status)
        .map(|(name, _)| name.len())
        .max()
        .unwrap_or(0);
    for (name, count) in ordered_outcomes(status) {
        let share = if finished == 0 {
            0.0
        } else {
            count as f64 * 100.0 / finished as f64
        };
        lines.push(format!("  {name:<width$} {count:>7} {share:>5.1}%"));
    }
    lines.extend(breaker_lines(status));
    lines
}

/// Prints [`summary_lines`] to stdout.
pub fn print_summary(status: &CampaignStatus) {
    for line in summary_lines(status) {
        println!("{line}");
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Arc;

    use super::*;

    fn status(state: RunState, answered: u64, busy: u64) -> CampaignStatus {
        let mut status = CampaignStatus::empty("spring", state);
        status.total = 10;
        status.pending = 10 - answered - busy - 1;
        status.active_calls = 1;
        status.outcomes.insert("answered", answered);
        status.outcomes.insert("busy", busy);
        status.calls_per_minute = 12.5;
        status.eta_seconds = Some(303.2);
        status
    }

    #[test]
    fn the_log_line_has_counts_pace_and_eta() {
        assert_eq!(
            status_line(&status(RunState::Running, 3, 1)),
            "campaign spring running: 4/10 done (answered 3, busy 1), 1 active, \
             12.5 calls/min, ETA 5m 04s"
        );
        let mut idle = CampaignStatus::empty("spring", RunState::Idle);
        idle.calls_per_minute = f64::NAN;
        idle.eta_seconds = Some(f64::INFINITY);
        assert_eq!(
            status_line(&idle),
            "campaign spring idle: 0/0 done (no calls ended yet), 0 active, 0.0 calls/min, \
             ETA unknown"
        );
    }

    #[test]
    fn the_log_line_says_who_paused_and_until_when() {
        let mut paused = status(RunState::Paused, 3, 1);
        paused.paused_by = Some(PausedBy::Breaker);
        paused.pause_reason = Some("circuit breaker open: the last 20 calls failed".into());
        paused.paused_until = Some("2026-03-02T10:01:00Z".into());
        assert_eq!(
            status_line(&paused),
            "campaign spring paused by the circuit breaker (circuit breaker open: the last 20 \
             calls failed), probe call at 2026-03-02T10:01:00Z: 4/10 done (answered 3, busy 1), \
             1 active, 12.5 calls/min, ETA 5m 04s"
        );
        paused.paused_until = None;
        assert!(
            status_line(&paused).contains("failed), a probe call is out: 4/10"),
            "{}",
            status_line(&paused)
        );
        assert!(bar_message(&paused).starts_with("[paused by the circuit breaker] answered 3"));
        paused.paused_by = Some(PausedBy::Operator);
        assert!(status_line(&paused).starts_with("campaign spring paused by the operator: 4/10"));
    }

    #[test]
    fn the_summary_lists_the_breakers_pauses() {
        let mut done = status(RunState::Finished, 3, 1);
        done.breaker_pauses = vec![
            crate::status::BreakerPause {
                paused_at: "2026-03-02T10:00:00Z".into(),
                reason: "circuit breaker open: the last 3 calls failed".into(),
                probes: vec!["2026-03-02T10:01:00Z".into(), "2026-03-02T10:02:01Z".into()],
                probe_count: 5,
                resumed_at: Some("2026-03-02T10:02:03Z".into()),
            },
            crate::status::BreakerPause {
                paused_at: "2026-03-02T10:05:00Z".into(),
                reason: "circuit breaker open: the last 3 calls failed".into(),
                probes: Vec::new(),
                probe_count: 0,
                resumed_at: None,
            },
        ];
        let lines = summary_lines(&done);
        assert_eq!(lines.len(), 3 + Outcome::ALL.len() + 2);
        assert_eq!(
            lines[3 + Outcome::ALL.len()],
            "paused by the circuit breaker at 2026-03-02T10:00:00Z: circuit breaker open: the \
             last 3 calls failed; probe calls at 2026-03-02T10:01:00Z, 2026-03-02T10:02:01Z \
             (and 3 before); resumed at 2026-03-02T10:02:03Z"
        );
        assert!(lines[4 + Outcome::ALL.len()].ends_with("calls failed; still paused at the end"));
    }

    #[test]
    fn eta_reads_in_the_largest_units() {
        assert_eq!(eta_text(None), "unknown");
        assert_eq!(eta_text(Some(-1.0)), "unknown");
        assert_eq!(eta_text(Some(0.2)), "1s");
        assert_eq!(eta_text(Some(59.0)), "59s");
        assert_eq!(eta_text(Some(3_725.0)), "1h 02m");
        assert_eq!(eta_text(Some(1e300)), ">99d");
    }

    #[test]
    fn the_log_is_throttled_except_on_a_change_of_state() {
        let mut progress = Progress::log(Duration::from_secs(10));
        assert!(!progress.is_bar());
        let start = Instant::now();
        let at = |seconds| start + Duration::from_secs(seconds);
        let running = status(RunState::Running, 1, 0);
        assert!(progress.update_at(&running, at(0)).is_some());
        assert!(progress.update_at(&running, at(5)).is_none());
        assert!(progress.update_at(&running, at(10)).is_some());
        assert!(progress.update_at(&running, at(11)).is_none());
        let paused = status(RunState::Paused, 1, 0);
        let line = progress.update_at(&paused, at(12)).unwrap();
        assert!(line.contains("paused"), "{line}");
        assert!(progress.update_at(&paused, at(13)).is_none());
        let Display::Log { last, .. } = &progress.display else {
            unreachable!("built to log");
        };
        assert_eq!(final_line(last.as_ref(), &paused), None, "just logged");
        let later = status(RunState::Paused, 2, 0);
        assert!(
            final_line(last.as_ref(), &later)
                .unwrap()
                .contains("2/10 done")
        );
    }

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_terminal_follow_logs_and_ends_with_the_sender() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let (sender, receiver) = watch::channel(status(RunState::Running, 0, 0));
        let follower = tokio::spawn(follow(receiver, Progress::log(Duration::from_secs(60))));
        // Throttled away: a second later, same state.
        tokio::time::advance(Duration::from_secs(1)).await;
        sender.send_replace(status(RunState::Running, 1, 0));
        tokio::task::yield_now().await;
        sender.send_replace(status(RunState::Finished, 2, 1));
        drop(sender);
        let last = tokio::time::timeout(Duration::from_secs(5), follower)
            .await
            .expect("follow ends when the sender is dropped")
            .unwrap();
        assert_eq!(last.state, RunState::Finished);

        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().all(|line| line.contains(" INFO ")), "{text}");
        assert!(lines[0].contains("spring running: 0/10 done"), "{text}");
        assert!(!text.contains("1/10 done"), "{text}");
        // The change to finished, logged once though it is also the last.
        assert!(lines[1].contains("spring finished: 3/10 done"), "{text}");
        assert_eq!(lines.len(), 2, "{text}");
    }

    #[test]
    fn the_summary_lists_every_outcome_with_its_share() {
        let lines = summary_lines(&status(RunState::Finished, 3, 1));
        assert_eq!(lines[0], "campaign spring: finished");
        assert_eq!(
            lines[1],
            "numbers: 10 total, 5 not dialled, 1 calls in progress"
        );
        assert_eq!(lines[2], "attempts ended: 4");
        assert_eq!(lines.len(), 3 + Outcome::ALL.len());
        assert_eq!(lines[3], "  answered            3  75.0%");
        assert_eq!(lines[4], "  busy                1  25.0%");
        assert_eq!(lines[5], "  no_answer           0   0.0%");
        assert!(lines[11].starts_with("  error "), "{lines:?}");
    }

    #[test]
    fn a_bar_tracks_the_snapshots() {
        // Drawn to a hidden target so that tests write nothing to the terminal.
        let mut progress = Progress::bar_to(ProgressDrawTarget::hidden());
        assert!(progress.is_bar());
        progress.update(&status(RunState::Running, 3, 1));
        let Display::Bar(bar) = &progress.display else {
            unreachable!("built as a bar");
        };
        assert_eq!((bar.position(), bar.length()), (4, Some(10)));
        assert!(bar.message().starts_with("answered 3, busy 1 · 1 active"));
        let bar = bar.clone();
        progress.finish(&status(RunState::Finished, 5, 4));
        assert!(bar.is_finished());
        assert!(bar.message().starts_with("[finished] "));
        assert!(ACTIVE_BAR.lock().unwrap().is_none());
    }
}
