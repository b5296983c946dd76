//! Campaigns on the lab: the carrier chooses each call's fate by the number's first digit
//! (1 answer, 2 busy, 3 never answer, 4 answer after 3 s, 5 403, 6 503, 7 answer and hang
//! up after 3 s, other 404), and a watcher of Asterisk's own events checks what the
//! dialer did.

mod common;

use std::time::Duration;

use common::{Campaign, Watcher, read_wav, zero_crossing_hz};

fn stdout(output: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test]
async fn every_class_of_number_gets_its_outcome_and_answered_calls_are_recorded() {
    ari_lab::Lab::get().await;
    let numbers = [
        "1001", "2001", "3001", "4001", "5001", "6001", "7001", "9001",
    ];
    let campaign = Campaign::new("dl-classes", &numbers);
    let watcher = Watcher::start(campaign.callee_prefix()).await;
    let output = campaign.run().await;
    assert!(output.status.success(), "{}", stdout(&output));
    let outcomes = campaign.outcomes();
    let expected = [
        ("1001", "answered"),
        ("2001", "busy"),
        ("3001", "no_answer"),
        ("4001", "answered"),
        ("5001", "rejected"),
        ("6001", "congestion"),
        ("7001", "answered"),
        ("9001", "bad_number"),
    ];
    for (number, outcome) in expected {
        assert_eq!(
            outcomes.get(number).map(String::as_str),
            Some(outcome),
            "{number}: {outcomes:?}\n{}",
            stdout(&output)
        );
    }
    // Every answered call was recorded and downloaded as a whole WAV.
    for row in campaign.report() {
        if row["outcome"] == "answered" {
            let file = campaign.dir.join("recordings").join(&row["recording"]);
            assert!(!row["recording"].is_empty(), "{row:?}");
            let (rate, samples) = read_wav(&file);
            assert!(rate == 8000 && !samples.is_empty(), "{}", file.display());
        }
    }
    // Each number was dialled exactly once, seen by Asterisk itself.
    let seen = watcher.state();
    assert_eq!(seen.created.len(), numbers.len(), "{seen:?}");
    assert!(seen.created.values().all(|n| *n == 1), "{seen:?}");
    assert!(output.status.success());
}

#[tokio::test]
async fn a_recording_holds_the_targets_audio_for_the_talk_time() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("dl-tone", &["7101"]);
    campaign.set("TARGET_ENDPOINT", "Local/tone@lab");
    let output = campaign.run().await;
    assert!(output.status.success(), "{}", stdout(&output));
    let report = campaign.report();
    let row = &report[0];
    assert_eq!(row["outcome"], "answered", "{row:?}");
    let talk: f64 = row["talk_seconds"].parse().unwrap();
    let (rate, samples) = read_wav(&campaign.dir.join("recordings").join(&row["recording"]));
    let seconds = samples.len() as f64 / f64::from(rate);
    // The carrier hangs up 3 s after answering; the recording covers the bridged part.
    assert!((2.0..=4.5).contains(&talk), "talk {talk} s");
    assert!(
        (1.5..=talk + 0.5).contains(&seconds),
        "recording {seconds} s, talk {talk} s"
    );
    let hz = zero_crossing_hz(rate, &samples[samples.len() / 4..samples.len() * 3 / 4]);
    assert!(
        (400.0..=480.0).contains(&hz),
        "the recording's tone is {hz} Hz, not 440"
    );
}

#[tokio::test]
async fn a_target_that_never_answers_means_target_failed_and_the_callee_is_hung_up() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("dl-target", &["1201"]);
    campaign.set("TARGET_ENDPOINT", "Local/busy@lab");
    let watcher = Watcher::start(campaign.callee_prefix()).await;
    let output = campaign.run().await;
    assert!(output.status.success(), "{}", stdout(&output));
    let report = campaign.report();
    assert_eq!(report[0]["outcome"], "target_failed", "{report:?}");
    assert!(
        report[0]["answered_at"].len() > 10,
        "the callee had answered: {report:?}"
    );
    assert_eq!(watcher.state().live, 0, "the callee was hung up");
}

#[tokio::test]
async fn max_cc_is_never_exceeded_and_cps_is_respected() {
    ari_lab::Lab::get().await;
    let numbers: Vec<String> = (0..10).map(|i| format!("7{:03}", 300 + i)).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let mut campaign = Campaign::new("dl-pace", &refs);
    campaign.set("MAX_CC", "3").set("DIALER_CPS", "2");
    let watcher = Watcher::start(campaign.callee_prefix()).await;
    let output = campaign.run().await;
    assert!(output.status.success(), "{}", stdout(&output));
    assert!(
        campaign.outcomes().values().all(|o| o == "answered"),
        "{:?}",
        campaign.outcomes()
    );
    let seen = watcher.state();
    assert_eq!(seen.created.len(), 10);
    assert!(
        seen.max_live <= 3,
        "{} callees at once with MAX_CC=3",
        seen.max_live
    );
    assert_eq!(seen.max_live, 3, "the slots were used");
    // At most 2 new calls in any second (plus the one token the bucket starts with).
    for (i, start) in seen.created_at.iter().enumerate() {
        let within = seen.created_at[i..]
            .iter()
            .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
            .count();
        assert!(
            within <= 3,
            "{within} calls started within a second at CPS 2"
        );
    }
}

#[tokio::test]
async fn an_unknown_trunk_or_no_numbers_stop_the_run_before_dialling() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("dl-trunk", &["1301"]);
    campaign.set("ARI_TRUNK", "no-such-trunk");
    let output = campaign.run().await;
    assert!(!output.status.success());
    let text = stdout(&output);
    assert!(
        text.contains("no-such-trunk") && text.contains("ARI_TRUNK"),
        "{text}"
    );

    let mut empty = Campaign::new("dl-empty", &["not-a-number", "12ab"]);
    empty.set("ARI_TRUNK", "trunk");
    let output = empty.run().await;
    assert!(!output.status.success());
    let text = stdout(&output);
    assert!(text.contains("no valid number"), "{text}");

    let mut missing = Campaign::new("dl-missing", &[]);
    missing.set("OUTBOUND_NUMBER_FILE", "does-not-exist.txt");
    let output = missing.run().await;
    assert!(!output.status.success());
    let text = stdout(&output);
    assert!(text.contains("does-not-exist.txt"), "{text}");
}

#[tokio::test]
async fn a_recording_whose_download_was_cut_short_is_fetched_by_the_next_run() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("dl-refetch", &["7701"]);
    campaign.set("DIALER_KEEP_RECORDINGS_ON_ASTERISK", "1");
    let output = campaign.run().await;
    assert!(output.status.success(), "{}", stdout(&output));
    let file = campaign.report()[0]["recording"].clone();
    assert!(!file.is_empty());
    // As after a crash mid-download: no file, nothing stored about it.
    std::fs::remove_file(campaign.dir.join("recordings").join(&file)).unwrap();
    let db = campaign.dir.join(format!("{}.sqlite", campaign.name));
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    sqlx::query("UPDATE attempts SET recording_file = NULL")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let output = campaign.run().await;
    assert!(output.status.success(), "{}", stdout(&output));
    assert_eq!(campaign.report()[0]["recording"], file);
    let (rate, samples) = read_wav(&campaign.dir.join("recordings").join(&file));
    assert!(rate == 8000 && !samples.is_empty());
}
