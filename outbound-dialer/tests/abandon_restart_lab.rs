//! `--abandon-after` across a `kill -9` of the dialer, on the lab: the dialer dies while
//! the target of an answered callee rings, and the restarted dialer counts the callee's
//! abandon limit from the live moment stored before the kill. A callee whose limit passed
//! while the dialer was down hears the identification message and is hung up at once (no
//! target rung for it); one with time left gets only that time; one whose new target
//! comes in time is connected. What Asterisk did is read from its own events (a tracker
//! of the campaign's channels, bridges and playbacks), the live moment from the store.

mod common;

use std::path::Path;
use std::time::Duration;

use common::tracker::Tracker;
use common::{Campaign, now_ms, output_text, unix_ms};
use outbound_dialer::ids::AttemptIds;

/// `(state, live_at, target_connected_at)` of the campaign's one attempt, read-only from
/// its SQLite store while a dialer may have it.
async fn attempt_row(path: &Path) -> (String, Option<i64>, Option<i64>) {
    use sqlx::{Connection as _, Row as _};
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let mut connection = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    let row = sqlx::query("SELECT state, live_at, target_connected_at FROM attempts")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    let row = (row.get(0), row.get(1), row.get(2));
    let _ = connection.close().await;
    row
}

/// A campaign of one callee that answers at once and holds (1001), on SQLite, whose target
/// is `target`, with this abandon limit; the tracker of its key and its first ids.
async fn campaign(
    prefix: &str,
    target: &str,
    abandon_after: &str,
) -> (Campaign, Tracker, AttemptIds) {
    let mut campaign = Campaign::new(prefix, &["1001"]);
    campaign
        .set("DIALER_DB", "campaign.sqlite")
        .set("TARGET_ENDPOINT", target)
        .set("DIALER_TARGET_TIMEOUT", "10")
        .set("DIALER_ABANDON_AFTER", abandon_after)
        .set("DIALER_TARGET_FAILED_SOUND", "sound:beep");
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let tracker = Tracker::start(key.clone()).await;
    (campaign, tracker, AttemptIds::new(&key, 1, 1))
}

/// Runs the dialer and kills it (`kill -9`) once the answered callee's target rings;
/// returns the stored live moment (Unix ms).
async fn kill_while_the_target_rings(
    campaign: &Campaign,
    tracker: &Tracker,
    ids: &AttemptIds,
) -> i64 {
    let mut first = campaign.command(&["run"]).spawn().unwrap();
    let target = ids.target.clone();
    tracker
        .until(Duration::from_secs(20), "the target ringing", |seen| {
            seen.get(&target).is_some_and(|s| s.created.is_some())
        })
        .await;
    first.kill().await.unwrap();
    let seen = tracker.channels();
    assert!(
        seen[&ids.callee].destroyed.is_none() && tracker.playbacks().is_empty(),
        "the kill landed before the limit cut the call: {seen:#?}"
    );
    let (state, live_at, connected) = attempt_row(&campaign.dir.join("campaign.sqlite")).await;
    assert_eq!(
        (state.as_str(), connected),
        ("answered", None),
        "when killed"
    );
    live_at.expect("the live moment is stored before the target is dialled")
}

/// Waits until the wall clock reaches `at` (Unix ms): the condition is the time itself.
async fn until_wall_clock(at: i64) {
    let left = at.saturating_sub(now_ms()).max(0);
    tokio::time::sleep(Duration::from_millis(left.unsigned_abs())).await;
    assert!(now_ms() >= at);
}

/// Runs the dialer again to its end (within 60 s); its output text.
async fn restart(campaign: &Campaign) -> String {
    let output = tokio::time::timeout(Duration::from_secs(60), campaign.command(&["run"]).output())
        .await
        .expect("the restarted campaign ends")
        .unwrap();
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_whose_abandon_limit_passed_while_the_dialer_was_down_is_cut_at_once() {
    ari_lab::Lab::get().await;
    // The target rings 5 s; the limit is 2 s.
    let (campaign, tracker, ids) = campaign("abr-passed", "Local/delay-5@lab", "2s").await;
    let live_at = kill_while_the_target_rings(&campaign, &tracker, &ids).await;
    // Restarted once the limit has passed (the killed dialer cannot cut it).
    until_wall_clock(live_at + 2_500).await;
    let restarted_at = now_ms();
    let text = restart(&campaign).await;
    tracker.until_all_ended().await;

    let report = campaign.report();
    assert_eq!(report.len(), 1, "{report:?}\n{text}");
    assert_eq!(report[0]["outcome"], "target_failed", "{report:?}\n{text}");
    let message = &report[0]["message"];
    assert!(
        message.contains("abandoned: no target connected within 2 s of the callee's answer")
            && message.contains("before a target was dialled"),
        "{message}"
    );
    let seen = tracker.channels();
    let callee = &seen[&ids.callee];
    assert_eq!(callee.creations, 1, "dialled once: {seen:#?}");
    // No target rung for it after the restart: the one from before the kill only.
    assert_eq!(seen[&ids.target].creations, 1, "{seen:#?}");
    // It heard the message on its bridge, and was hung up at once: within the restart's
    // own start-up (the binary, the store, ARI) and the message.
    let playbacks = tracker.playbacks();
    assert!(
        playbacks
            .iter()
            .any(|p| p.started.is_some() && p.target_uri == format!("bridge:{}", ids.bridge)),
        "{playbacks:#?}"
    );
    let hung_up = unix_ms(callee.destroyed_wall.unwrap());
    eprintln!(
        "limit passed: hung up {} ms after the restart began, {} ms after the live moment",
        hung_up - restarted_at,
        hung_up - live_at
    );
    assert!(
        hung_up - restarted_at < 5_000,
        "hung up {} ms after the restart began ({} ms after its live moment)\n{text}",
        hung_up - restarted_at,
        hung_up - live_at
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_with_time_left_after_a_restart_gets_only_that_time() {
    ari_lab::Lab::get().await;
    // The limit is 6 s; a target rings 5 s, and the restart begins 2.5 s after the live
    // moment: a new target would answer after the limit.
    let (campaign, tracker, ids) = campaign("abr-left", "Local/delay-5@lab", "6s").await;
    let live_at = kill_while_the_target_rings(&campaign, &tracker, &ids).await;
    until_wall_clock(live_at + 2_500).await;
    let text = restart(&campaign).await;
    tracker.until_all_ended().await;

    let report = campaign.report();
    assert_eq!(report.len(), 1, "{report:?}\n{text}");
    assert_eq!(report[0]["outcome"], "target_failed", "{report:?}\n{text}");
    assert!(
        report[0]["message"].contains("abandoned: no target connected within 6 s"),
        "{:?}",
        report[0]
    );
    let seen = tracker.channels();
    // The restarted dialer rang a new target (time was left) ...
    assert_eq!(seen[&ids.target].creations, 2, "{seen:#?}");
    // ... and cut it at the limit counted from the stored live moment (6 s), not from
    // the pick-up (that would be at least 8.5 s); the message is a beep.
    let hung_up = unix_ms(seen[&ids.callee].destroyed_wall.unwrap());
    eprintln!(
        "time left: hung up {} ms after the live moment",
        hung_up - live_at
    );
    assert!(
        (6_000..7_500).contains(&(hung_up - live_at)),
        "hung up {} ms after the live moment\n{text}",
        hung_up - live_at
    );
    assert!(
        tracker.playbacks().iter().any(|p| p.started.is_some()),
        "the message played: {:#?}",
        tracker.playbacks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_whose_new_target_comes_within_the_limit_is_connected_after_a_restart() {
    ari_lab::Lab::get().await;
    // The limit is 10 s; a target rings 2 s.
    let (campaign, tracker, ids) = campaign("abr-connects", "Local/delay-2@lab", "10s").await;
    let live_at = kill_while_the_target_rings(&campaign, &tracker, &ids).await;
    let second = campaign
        .command(&["run"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Connected: the store says so (nothing announces its rows to the test).
    let store = campaign.dir.join("campaign.sqlite");
    let connected_at = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let (_, _, Some(at)) = attempt_row(&store).await {
                return at;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("connected within 20 s of the restart");
    eprintln!(
        "connects: connected {} ms after the live moment",
        connected_at - live_at
    );
    assert!(
        connected_at - live_at < 10_000,
        "connected {} ms after the live moment",
        connected_at - live_at
    );
    // The callee hangs up.
    common::hang_up_on_lab(ids.callee.as_str()).await;
    let text = common::ended_well(second).await;
    let report = campaign.report();
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["outcome"], "answered", "{report:?}\n{text}");
    let seen = tracker.channels();
    assert_eq!(seen[&ids.callee].creations, 1, "{seen:#?}");
    assert_eq!(seen[&ids.target].creations, 2, "made again: {seen:#?}");
    assert!(
        tracker.playbacks().is_empty(),
        "no message: {:#?}",
        tracker.playbacks()
    );
}
