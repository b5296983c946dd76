//! The campaign's abandon rate as the store counts it (every dialer's calls, earlier
//! runs' too), fed to the rules' [`AbandonControl`](crate::rules::abandon::AbandonControl):
//! the whole 30-day window at start, then the last day or two after calls end and every
//! couple of seconds, so all dialers of a shared campaign throttle on the campaign's rate.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use tokio::time::Instant;

use crate::rules::abandon::{ABANDON_AFTER, AbandonCounts};
use crate::rules::campaign::CampaignRules;
use crate::store::{Store, StoreError};

use super::tally::Tally;

/// After a live call ended, the store is read again at most this often...
const AFTER_CALL: Duration = Duration::from_millis(100);
/// ...and at most this share of the time: a read of a busy day's calls takes MariaDB about
/// 10 ms (22 000 live calls a day in a table of a million attempts), so a dialer whose
/// calls end all the time reads every 100 ms of that, not after each call.
const BUSY_SHARE: u32 = 10;
/// And at least this often, for the other dialers' calls (and a day rolling over).
const EVERY: Duration = Duration::from_secs(2);
/// Once this much of a UTC day has passed, the day before is final: its calls have all
/// ended or been connected (a target gets at most 600 s), so it is read no more.
const DAY_SETTLED: i64 = 15 * 60 * 1000;
const DAY_MS: i64 = 86_400_000;

/// The store's counts of earlier days, and when it was read.
#[derive(Debug)]
pub(super) struct AbandonFeed {
    days: BTreeMap<NaiveDate, AbandonCounts>,
    read_at: Instant,
    /// How long the last read took.
    took: Duration,
    /// A live call ended since the last read.
    dirty: bool,
}

impl AbandonFeed {
    /// Reads the window's counts and gives them to the rules.
    pub(super) async fn start(
        store: &Store,
        rules: &mut CampaignRules,
        tally: &Tally,
    ) -> Result<AbandonFeed, StoreError> {
        let since = rules.abandon_window_start();
        let days = store.abandon_counts(since, ABANDON_AFTER).await?;
        let mut feed = AbandonFeed {
            days,
            read_at: Instant::now(),
            took: Duration::ZERO,
            dirty: false,
        };
        feed.give(rules, tally);
        Ok(feed)
    }

    /// A live-answered call ended (its attempt is stored).
    pub(super) fn call_ended(&mut self) {
        self.dirty = true;
    }

    /// Reads the store again if it is time to; a failed read is said and tried later
    /// (the rate stays as last read).
    pub(super) async fn refresh(
        &mut self,
        store: &Store,
        rules: &mut CampaignRules,
        tally: &Tally,
    ) {
        let elapsed = self.read_at.elapsed();
        let after_call = AFTER_CALL.max(self.took * BUSY_SHARE);
        if self.dirty && elapsed >= after_call || elapsed >= EVERY {
            self.read(store, rules, tally).await;
        }
    }

    /// Reads the store's recent days now.
    pub(super) async fn read(&mut self, store: &Store, rules: &mut CampaignRules, tally: &Tally) {
        self.read_at = Instant::now();
        self.dirty = false;
        let now = rules.now().timestamp_millis();
        let today = now - now.rem_euclid(DAY_MS);
        let since = if now - today < DAY_SETTLED {
            today - DAY_MS
        } else {
            today
        };
        let read = store.abandon_counts(since, ABANDON_AFTER).await;
        self.took = self.read_at.elapsed();
        match read {
            Ok(recent) => {
                let first = crate::rules::clock::from_unix_millis(since).date_naive();
                self.days.split_off(&first);
                self.days.extend(recent);
                self.give(rules, tally);
            }
            Err(error) => {
                tracing::warn!(error = %crate::app::error_chain(&error), "cannot read the campaign's abandon counts; trying again");
            }
        }
    }

    fn give(&mut self, rules: &mut CampaignRules, tally: &Tally) {
        rules.observe_abandon(self.days.clone());
        // What the rules keep (the window) is all that is kept here too.
        self.days = rules.abandon().per_day().clone();
        let total = rules.abandon().total();
        tally.set_abandon(total.live, total.abandoned);
    }
}

/// The per-day abandon report beside `report`: `NAME.abandon.csv` with a row per UTC day of
/// the whole campaign (`day`, `live_answered`, `abandoned`, `abandon_rate_pct`) and a last
/// row `last_30_days`, the rate the dialers throttle on.
///
/// # Errors
/// The store cannot be read or the file written.
pub(super) async fn write_day_report(
    store: &Store,
    rules: &CampaignRules,
    report: &Path,
) -> Result<PathBuf, super::CampaignError> {
    let window_start =
        crate::rules::clock::from_unix_millis(rules.abandon_window_start()).date_naive();
    write_day_report_from(store, window_start, report).await
}

/// [`write_day_report`] with the 30-day window starting on `window_start` (UTC).
pub(super) async fn write_day_report_from(
    store: &Store,
    window_start: chrono::NaiveDate,
    report: &Path,
) -> Result<PathBuf, super::CampaignError> {
    let days = store.abandon_counts(0, ABANDON_AFTER).await?;
    let mut text = String::from("day,live_answered,abandoned,abandon_rate_pct\n");
    let mut window = AbandonCounts::default();
    let row = |text: &mut String, day: &str, counts: AbandonCounts| {
        text.push_str(&format!(
            "{day},{},{},{:.2}\n",
            counts.live,
            counts.abandoned,
            counts.rate() * 100.0
        ));
    };
    for (day, counts) in &days {
        row(&mut text, &day.to_string(), *counts);
        if *day >= window_start {
            window.live += counts.live;
            window.abandoned += counts.abandoned;
        }
    }
    row(&mut text, "last_30_days", window);
    let path = day_report_path(report);
    let write = |path: &Path| -> std::io::Result<()> {
        // Beside it first, then renamed: a reader sees the old file or the new one.
        let partial = path.with_extension("csv.partial");
        std::fs::write(&partial, &text)?;
        std::fs::rename(&partial, path)
    };
    write(&path).map_err(|source| {
        super::CampaignError::Report(crate::report::ReportError::Write {
            path: path.clone(),
            source,
        })
    })?;
    tracing::info!(path = %path.display(), live_answered = window.live, abandoned = window.abandoned, rate_pct = window.rate() * 100.0, "abandon rate of the campaign over the last 30 days written");
    Ok(path)
}

/// `DIR/NAME.abandon.csv` for a report `DIR/NAME.EXT`.
pub(crate) fn day_report_path(report: &Path) -> PathBuf {
    let stem = report
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".to_owned());
    report.with_file_name(format!("{stem}.abandon.csv"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::outcome::Outcome;
    use crate::rules::args::Rules;
    use crate::rules::clock::{FakeClock, parse_utc};
    use crate::store::Ending;

    /// An attempt of `number`, live at `live` (RFC 3339), connected after `connect_ms`
    /// (or never), ended.
    async fn call(store: &Store, number: &str, live: &str, connect_ms: Option<i64>) {
        let id = store
            .next_pending(100)
            .await
            .unwrap()
            .into_iter()
            .find(|n| n.number == number)
            .unwrap()
            .id;
        let attempt = store
            .begin_attempt(id, |n| format!("af-{}-{n}", id.0))
            .await
            .unwrap();
        let at = parse_utc(live).timestamp_millis();
        store.answered(attempt.id, at).await.unwrap();
        store.live(attempt.id, at).await.unwrap();
        if let Some(after) = connect_ms {
            store
                .connected(attempt.id, at + after, "t", "b", None)
                .await
                .unwrap();
        }
        let outcome = if connect_ms.is_some() {
            Outcome::Answered
        } else {
            Outcome::TargetFailed
        };
        let ending = Ending {
            outcome,
            cause: Some(16),
            cause_text: None,
            message: None,
            ended_at: at + 5_000,
        };
        store.finish(attempt.id, &ending).await.unwrap();
    }

    #[tokio::test]
    async fn the_feed_keeps_earlier_days_and_reads_the_recent_ones_again() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("c.sqlite"), "c")
            .await
            .unwrap();
        let numbers = ["1001", "1002", "1003"].map(|n| {
            Ok::<_, std::convert::Infallible>(crate::numbers::NumberEntry {
                line: 1,
                number: n.to_owned(),
                data: Default::default(),
            })
        });
        store.import(numbers).await.unwrap();
        let clock = Arc::new(FakeClock::at_rfc3339("2026-03-10T12:00:00Z"));
        let mut rules = CampaignRules::new(&Rules::default(), 4, clock.clone());
        let tally = Tally::default();
        // Nine days ago (in the 30-day window, never read again after the start): one
        // abandoned call.
        call(&store, "1001", "2026-03-01T10:00:00Z", None).await;
        let mut feed = AbandonFeed::start(&store, &mut rules, &tally)
            .await
            .unwrap();
        assert_eq!(
            rules.abandon().total(),
            AbandonCounts {
                live: 1,
                abandoned: 1
            }
        );
        assert_eq!(
            rules.abandon().allowed(),
            1,
            "100 % abandoned: one call at a time"
        );
        assert_eq!(tally.abandon_rate_pct(), Some(100.0));
        // Today: two calls connected in time; the read covers today only, and the start's
        // day stays counted.
        call(&store, "1002", "2026-03-10T11:00:00Z", Some(500)).await;
        call(&store, "1003", "2026-03-10T11:30:00Z", Some(1_900)).await;
        feed.call_ended();
        feed.read(&store, &mut rules, &tally).await;
        assert_eq!(
            rules.abandon().total(),
            AbandonCounts {
                live: 3,
                abandoned: 1
            }
        );
        assert_eq!(rules.abandon().per_day().len(), 2);
        assert!(!feed.dirty);
        // Twenty-one days on, March 1st has left the window.
        clock.advance(Duration::from_secs(21 * 86_400));
        feed.read(&store, &mut rules, &tally).await;
        assert_eq!(
            rules.abandon().total(),
            AbandonCounts {
                live: 2,
                abandoned: 0
            }
        );
        assert_eq!(tally.abandon_rate_pct(), Some(0.0));
    }

    #[test]
    fn the_day_report_sits_beside_the_report() {
        assert_eq!(
            day_report_path(Path::new("/tmp/x/spring.csv")),
            PathBuf::from("/tmp/x/spring.abandon.csv")
        );
        assert_eq!(
            day_report_path(Path::new("report.jsonl")),
            PathBuf::from("report.abandon.csv")
        );
    }
}
