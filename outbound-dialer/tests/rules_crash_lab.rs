//! `kill -9` of the dialer while the campaign rules hold numbers back, then the same
//! command again, on the lab: retries keep their delays and their limit (every attempt
//! kept, none added), numbers waiting for their calling window are dialled once it opens
//! and only once, and calls killed during answering-machine detection get their verdict
//! from the restarted dialer. What happened is read from Asterisk's own events (a tracker
//! app subscribed to everything) and from the store's rows, not from the dialer's words.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::tracker::{Seen, Tracker};
use common::{Campaign, now_ms, unix_ms};

/// The campaign's store as the test reads it while a dialer has it (read-only for
/// SQLite; the MariaDB client for MySQL).
enum Db {
    Sqlite(PathBuf),
    Maria(ari_lab::mariadb::TestDatabase),
}

impl Db {
    /// Integer columns of each row of `sql` (NULL as `None`).
    async fn rows(&self, sql: &str) -> Vec<Vec<Option<i64>>> {
        self.try_rows(sql).await.unwrap()
    }

    /// As [`Db::rows`]; an error while the dialer has not created the store yet.
    async fn try_rows(&self, sql: &str) -> Result<Vec<Vec<Option<i64>>>, String> {
        match self {
            Db::Sqlite(path) => {
                use sqlx::{Connection as _, Row as _};
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .read_only(true);
                let mut connection = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let rows = sqlx::query(sql)
                    .fetch_all(&mut connection)
                    .await
                    .map_err(|e| format!("{sql}: {e}"))?;
                let rows = rows
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| row.try_get::<Option<i64>, _>(i).unwrap())
                            .collect()
                    })
                    .collect();
                let _ = connection.close().await;
                Ok(rows)
            }
            Db::Maria(db) => Ok(db
                .sql(sql)
                .map_err(|e| e.to_string())?
                .lines()
                .map(|line| {
                    line.split('\t')
                        .map(|v| (v != "NULL").then(|| v.parse().unwrap()))
                        .collect()
                })
                .collect()),
        }
    }

    /// One integer.
    async fn count(&self, sql: &str) -> i64 {
        self.rows(sql).await[0][0].unwrap_or(0)
    }

    /// Waits (polling the store: nothing announces its rows to the test) until `sql`
    /// counts at least `n`.
    async fn until_count(&self, sql: &str, n: i64, within: Duration) {
        let started = tokio::time::Instant::now();
        loop {
            // An error until the dialer has created the store.
            let count = match self.try_rows(sql).await {
                Ok(rows) => Ok(rows[0][0].unwrap_or(0)),
                Err(error) => Err(error),
            };
            if matches!(count, Ok(count) if count >= n) {
                return;
            }
            assert!(
                started.elapsed() < within,
                "{sql} counted {count:?} after {within:?}, waited for {n}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A campaign on SQLite (its file in the campaign's directory) or on a MariaDB database
/// of its own, with the store as the test reads it.
fn on_store(prefix: &str, numbers: &[&str], maria: bool) -> (Campaign, Db) {
    let mut campaign = Campaign::new(prefix, numbers);
    let db = if maria {
        let db = ari_lab::mariadb::MariaDb::get().database(prefix);
        campaign
            .set("DIALER_DB", &db.url)
            .set("DIALER_LEASE_SECONDS", "3");
        Db::Maria(db)
    } else {
        campaign.set("DIALER_DB", "campaign.sqlite");
        Db::Sqlite(campaign.dir.join("campaign.sqlite"))
    };
    (campaign, db)
}

const RETRY_DELAY_MS: i64 = 5_000;

async fn retries_survive_a_kill(maria: bool) {
    ari_lab::Lab::get().await;
    // Two busy numbers (carrier class 2) and one answered: 3 attempts, 1 attempt.
    let numbers = ["2001", "2002", "1003"];
    let (mut campaign, db) = on_store("rc-retry", &numbers, maria);
    campaign
        .set("DIALER_MAX_ATTEMPTS", "3")
        .set("DIALER_RETRY_DELAY", "busy=5s");
    let tracker = Tracker::start(campaign.callee_prefix()).await;

    // Killed once both first attempts are busy, before their retries are due.
    let mut first = campaign.command(&["run"]).spawn().unwrap();
    db.until_count(
        "SELECT COUNT(*) FROM attempts WHERE state = 'ended' AND number_id IN (1, 2)",
        2,
        Duration::from_secs(20),
    )
    .await;
    first.kill().await.unwrap();
    let killed_at = now_ms();
    let firsts = db
        .rows("SELECT MIN(ended_at), COUNT(*) FROM attempts WHERE number_id IN (1, 2)")
        .await;
    let (first_end, rows) = (firsts[0][0].unwrap(), firsts[0][1].unwrap());
    assert_eq!(rows, 2, "no retry before the kill");
    assert!(
        killed_at < first_end + RETRY_DELAY_MS,
        "killed {} ms after the first busy end: the retries were due",
        killed_at - first_end
    );
    // The retries wait in the store.
    let waiting = db
        .count(&format!(
            "SELECT COUNT(*) FROM numbers WHERE id IN (1, 2) AND state = 'pending' \
             AND not_before >= {first_end}"
        ))
        .await;
    assert_eq!(waiting, 2, "both retries are stored");

    let text = campaign.run_ok().await;
    campaign.assert_attempts(&["2001", "2002"], &["busy", "busy", "busy"], &text);
    // The answered number is never retried. Killed while it talked, its call is
    // adopted (SQLite: at once) or, on MariaDB, taken over once the killed dialer's lease
    // ran out, by when it may have ended unseen (interrupted, as crash_lab.rs). Killed
    // between its answer and its target's join, it waited for a target: on MariaDB the
    // lease outlasts the 2 s abandon limit, counted from its stored live moment, so it is
    // cut at the take-over (target_failed, abandoned; abandon_restart_lab.rs).
    let answered = campaign.attempts("1003");
    assert_eq!(answered.len(), 1, "{answered:?}\n{text}");
    let report = campaign.report();
    let row = report.iter().find(|row| row["number"] == "1003").unwrap();
    let abandoned = row["outcome"] == "target_failed" && row["message"].starts_with("abandoned:");
    assert!(
        answered[0].1 == "answered" || (maria && (answered[0].1 == "interrupted" || abandoned)),
        "{row:?}\n{text}"
    );
    // The store: each retry originated no earlier than its delay after the previous
    // attempt ended (the clock the rule uses), and after it, never overlapping.
    for number_id in [1, 2] {
        let rows = db
            .rows(&format!(
                "SELECT attempt, originated_at, ended_at FROM attempts \
                 WHERE number_id = {number_id} ORDER BY attempt"
            ))
            .await;
        assert_eq!(rows.len(), 3, "{rows:?}");
        for pair in rows.windows(2) {
            let (ended, next) = (pair[0][2].unwrap(), pair[1][1].unwrap());
            assert!(
                next >= ended + RETRY_DELAY_MS,
                "attempt {:?} originated {} ms after the previous ended, delay {RETRY_DELAY_MS} ms: {rows:?}",
                pair[1][0],
                next - ended
            );
            assert!(
                next <= ended + RETRY_DELAY_MS + 6_000,
                "a retry long after it was due: {rows:?}"
            );
        }
    }
    // Asterisk: three calls per busy number, one per attempt id, each created only after
    // the previous one was gone; one call for the answered number.
    let channels = tracker.channels();
    for number_id in [1, 2] {
        let calls: Vec<&Seen> = (1..=3)
            .map(|attempt| {
                let id = format!("{}{number_id:012}-{attempt:03}", campaign.callee_prefix());
                channels
                    .get(&id)
                    .unwrap_or_else(|| panic!("{id} never dialled: {channels:?}"))
            })
            .collect();
        for pair in calls.windows(2) {
            let gap =
                unix_ms(pair[1].created_wall.unwrap()) - unix_ms(pair[0].destroyed_wall.unwrap());
            // The store's end is written a little after Asterisk's; allow for it.
            assert!(
                gap >= RETRY_DELAY_MS - 200,
                "retry {gap} ms after the busy end on Asterisk: {calls:?}"
            );
        }
    }
    assert_eq!(channels.len(), 7, "no other call: {channels:?}");
    assert!(
        channels.values().all(|seen| seen.creations == 1),
        "a channel dialled twice: {channels:?}"
    );
}

#[tokio::test]
async fn retries_keep_their_delay_and_limit_across_a_kill_on_sqlite() {
    retries_survive_a_kill(false).await;
}

#[tokio::test]
async fn retries_keep_their_delay_and_limit_across_a_kill_on_mariadb() {
    retries_survive_a_kill(true).await;
}

/// `HH:MM:SS` of a Unix time in seconds (UTC).
fn clock(secs: i64) -> String {
    let s = secs.rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

async fn window_survives_a_kill(maria: bool) {
    ari_lab::Lab::get().await;
    let numbers = ["1001", "1002", "1003"];
    let (mut campaign, db) = on_store("rc-window", &[], maria);
    // The callees' zone is the list's `timezone` column (UTC), not the default (Tokyo,
    // where the window below is hours away): the restarted dialer reads it from the store.
    std::fs::write(
        campaign.dir.join("numbers.csv"),
        "phone,timezone\n1001,UTC\n1002,Etc/UTC\n1003,UTC\n",
    )
    .unwrap();
    // A window opening 8 s from now (in UTC), for two hours.
    let opens = now_ms() / 1000 + 8;
    let window = format!("{}-{}", clock(opens), clock(opens + 7200));
    campaign
        .set("OUTBOUND_NUMBER_FILE", "numbers.csv")
        .set("DIALER_CALLING_WINDOW", &window)
        .set("DIALER_DEFAULT_TIMEZONE", "Asia/Tokyo");
    let tracker = Tracker::start(campaign.callee_prefix()).await;

    // Killed once every number waits in the store for its window.
    let mut first = campaign.command(&["run"]).spawn().unwrap();
    db.until_count(
        &format!(
            "SELECT COUNT(*) FROM numbers WHERE state = 'pending' AND not_before = {}",
            opens * 1000
        ),
        3,
        Duration::from_secs(20),
    )
    .await;
    first.kill().await.unwrap();
    assert!(now_ms() < opens * 1000, "killed after the window opened");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM attempts").await,
        0,
        "nothing dialled before the window"
    );

    let text = campaign.run_ok().await;
    campaign.assert_attempts(&numbers, &["answered"], &text);
    let originated = db.rows("SELECT originated_at FROM attempts").await;
    assert_eq!(originated.len(), 3);
    for row in &originated {
        assert!(
            row[0].unwrap() >= opens * 1000,
            "{originated:?}, opens {opens} s"
        );
    }
    let channels = tracker.channels();
    assert_eq!(channels.len(), 3, "{channels:?}");
    for seen in channels.values() {
        assert_eq!(seen.creations, 1, "{channels:?}");
        let created = unix_ms(seen.created_wall.unwrap());
        assert!(
            created >= opens * 1000,
            "called at {created} ms, before the window opened at {opens} s"
        );
        assert!(
            created <= opens * 1000 + 5_000,
            "called at {created} ms, long after the window opened at {opens} s"
        );
    }
}

#[tokio::test]
async fn a_window_opening_after_a_kill_is_kept_on_sqlite() {
    window_survives_a_kill(false).await;
}

#[tokio::test]
async fn a_window_opening_after_a_kill_is_kept_on_mariadb() {
    window_survives_a_kill(true).await;
}

/// Whether a channel is running AMD() now (its last dialplan application).
fn in_amd(seen: &Seen) -> bool {
    seen.apps.last().is_some_and(|app| app == "AMD")
}

/// Runs the campaign's dialer and kills it (`kill -9`) once `callees` callees are all
/// in detection (AMD() runs on them).
async fn kill_during_amd(campaign: &Campaign, tracker: &Tracker, callees: usize) {
    let mut first = campaign.command(&["run"]).spawn().unwrap();
    tracker
        .until(
            Duration::from_secs(20),
            &format!("{callees} callee(s) in AMD"),
            |seen| seen.len() == callees && seen.values().all(in_amd),
        )
        .await;
    first.kill().await.unwrap();
}

/// An AMD campaign of `number` alone, on SQLite, whose dialer was killed while the
/// callee was in detection; its tracker.
async fn one_callee_killed_during_amd(prefix: &str, number: &str) -> (Campaign, Tracker) {
    let (mut campaign, _db) = on_store(prefix, &[number], false);
    campaign.set("DIALER_AMD", "1");
    let tracker = Tracker::start(campaign.callee_prefix()).await;
    kill_during_amd(&campaign, &tracker, 1).await;
    (campaign, tracker)
}

async fn amd_survives_a_kill(maria: bool) {
    ari_lab::Lab::get().await;
    // A person (81...) and a machine (82...), as the carrier answers them.
    let (mut campaign, db) = on_store("rc-amd", &["81001", "82001"], maria);
    campaign
        .set("DIALER_AMD", "1")
        .set("DIALER_MACHINE_MESSAGE", "sound:beep");
    let tracker = Tracker::start(campaign.callee_prefix()).await;

    // Killed while both callees are in detection.
    kill_during_amd(&campaign, &tracker, 2).await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM attempts WHERE state = 'answered'")
            .await,
        2,
        "both stored as answered when the dialer died"
    );

    let text = campaign.run_ok().await;
    let report = campaign.report();
    assert_eq!(report.len(), 2, "one attempt each: {report:?}");
    let row = |number: &str| report.iter().find(|r| r["number"] == number).unwrap();
    assert_eq!(
        row("81001")["outcome"],
        "answered",
        "the person is connected to the target after the restart\n{text}"
    );
    assert!(
        !row("81001")["recording"].is_empty(),
        "bridged and recorded: {:?}",
        row("81001")
    );
    assert_eq!(
        row("82001")["outcome"],
        "machine",
        "the machine is told apart after the restart\n{text}"
    );
    assert!(text.contains("amd_status=HUMAN"), "{text}");
    assert!(text.contains("amd_status=MACHINE"), "{text}");
    // SQLite: the restart is up within AMD's seconds and awaits the verdicts. MariaDB:
    // the restarted dialer takes the calls over once the killed one's lease (3 s) runs
    // out, after AMD ended: the callees wait in its Stasis app with their verdicts.
    let path = if maria {
        "the callee came back from answering-machine detection while the dialer was down"
    } else {
        "the callee is in answering-machine detection: waiting for its verdict"
    };
    assert_eq!(text.matches(path).count(), 2, "{path}\n{text}");
    // Asterisk: each callee dialled once; it went through AMD and back into Stasis.
    let channels = tracker.channels();
    assert_eq!(channels.len(), 2, "{channels:?}");
    for (id, seen) in &channels {
        assert_eq!(seen.creations, 1, "{id} dialled twice: {channels:?}");
        let amd = seen.apps.iter().position(|app| app == "AMD");
        let back = seen.apps.iter().rposition(|app| app == "Stasis");
        assert!(
            matches!((amd, back), (Some(amd), Some(back)) if back > amd),
            "{id} came back from AMD into Stasis: {seen:?}"
        );
    }
}

#[tokio::test]
async fn calls_killed_during_amd_get_their_verdict_after_a_restart_on_sqlite() {
    amd_survives_a_kill(false).await;
}

#[tokio::test]
async fn calls_killed_during_amd_get_their_verdict_after_a_restart_on_mariadb() {
    amd_survives_a_kill(true).await;
}

#[tokio::test]
async fn a_call_whose_amd_ended_while_the_dialer_was_down_is_interrupted_not_target_failed() {
    ari_lab::Lab::get().await;
    let (campaign, tracker) = one_callee_killed_during_amd("rc-amd-gone", "81002").await;
    // AMD ends with no app to return to: Asterisk hangs the callee up.
    tracker
        .until(Duration::from_secs(20), "the callee hung up", |seen| {
            seen.values().all(|s| s.destroyed.is_some())
        })
        .await;

    let text = campaign.run_ok().await;
    let report = campaign.report();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["outcome"], "interrupted", "{report:?}\n{text}");
    assert!(!report[0]["message"].is_empty(), "says why: {report:?}");
    assert_eq!(tracker.channels().len(), 1, "not dialled again");
}

#[tokio::test]
async fn a_person_whose_target_rang_when_the_dialer_died_is_connected_after_the_restart() {
    ari_lab::Lab::get().await;
    let (mut campaign, db) = on_store("rc-amd-target", &["81003"], false);
    // The target rings 2 s; the callee waits for it (no abandon cut).
    campaign
        .set("DIALER_AMD", "1")
        .set("TARGET_ENDPOINT", "Local/delay-2@lab")
        .set("DIALER_TARGET_TIMEOUT", "10")
        .set("DIALER_ABANDON_AFTER", "0");
    let callees = Tracker::start(campaign.callee_prefix()).await;
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let targets = Tracker::start(format!("dt-{key}-")).await;

    // Killed once AMD said "person" and the target rings.
    let mut first = campaign.command(&["run"]).spawn().unwrap();
    targets
        .until(Duration::from_secs(20), "the target ringing", |seen| {
            seen.values().any(|s| s.created.is_some())
        })
        .await;
    first.kill().await.unwrap();

    let second = campaign
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    db.until_count(
        "SELECT COUNT(*) FROM attempts WHERE state = 'connected'",
        1,
        Duration::from_secs(20),
    )
    .await;
    // The person hangs up.
    let callee = format!("{}{:012}-001", campaign.callee_prefix(), 1);
    common::hang_up_on_lab(&callee).await;
    let text = common::ended_well(second).await;
    let report = campaign.report();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(
        report[0]["outcome"], "answered",
        "connected to a new target after the restart: {report:?}\n{text}"
    );
    assert!(!report[0]["recording"].is_empty(), "{report:?}");
    let callee_seen = callees.channels();
    assert_eq!(callee_seen.len(), 1, "dialled once: {callee_seen:?}");
    assert_eq!(callee_seen[&callee].creations, 1, "{callee_seen:?}");
    // The ringing target was hung up and made again under the same id (its Local
    // channel's other half is `;2`).
    let target_seen = targets.channels();
    let target = format!("dt-{key}-{:012}-001", 1);
    assert_eq!(target_seen[&target].creations, 2, "{target_seen:?}");
}

#[tokio::test]
async fn a_call_in_amd_restarted_under_another_app_name_is_interrupted_and_says_why() {
    ari_lab::Lab::get().await;
    let (mut campaign, tracker) = one_callee_killed_during_amd("rc-amd-app", "81004").await;
    // The same campaign restarted under another Stasis app: AMD returns the callee to
    // the old app, which is gone.
    let old_app = campaign.app.clone();
    campaign.set("STASIS_APP", &ari_lab::unique_name("rc-amd-other-app"));
    let text = campaign.run_ok().await;
    let report = campaign.report();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["outcome"], "interrupted", "{report:?}\n{text}");
    assert!(
        report[0]["message"].contains(&format!("to that dialer's app {old_app}")),
        "{report:?}"
    );
    assert_eq!(tracker.channels().len(), 1, "not dialled again");
}
