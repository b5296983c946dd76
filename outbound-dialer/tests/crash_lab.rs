//! `kill -9` of the dialer at two points of a campaign, then the same command again:
//! no number is dialled twice (Asterisk's own ChannelCreated events say so) and every
//! number ends with exactly one stored outcome.

mod common;

use std::time::Duration;

use common::{CAMPAIGN_DEADLINE, Campaign, Watcher};

/// The store's id of a number: its position in the list (imported in order, from 1).
fn row_number_id(numbers: &[String], number: &str) -> usize {
    numbers
        .iter()
        .position(|n| n == number)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{number} is not in the list"))
}

#[tokio::test]
async fn a_campaign_killed_twice_resumes_without_dialling_anyone_twice() {
    ari_lab::Lab::get().await;
    let numbers: Vec<String> = (0..12).map(|i| format!("7{:03}", 500 + i)).collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let mut campaign = Campaign::new("dl-crash", &refs);
    campaign
        .set("MAX_CC", "4")
        .set("TARGET_ENDPOINT", "Local/answer@lab");
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let callees = Watcher::start(format!("dc-{key}-")).await;
    let targets = Watcher::start(format!("dt-{key}-")).await;

    // 1: killed as soon as the first callee exists (its originate may not have returned;
    // the other attempts of the first wave may be written and not sent).
    let mut first = campaign.command(&["run"]).spawn().unwrap();
    callees
        .until(Duration::from_secs(20), "a first callee channel", |s| {
            !s.created.is_empty()
        })
        .await;
    first.kill().await.unwrap();

    // 2: killed while calls are bridged to their targets.
    let mut second = campaign.command(&["run"]).spawn().unwrap();
    targets
        .until(Duration::from_secs(30), "a bridged target", |s| s.live >= 1)
        .await;
    second.kill().await.unwrap();

    // 3: runs to the end.
    let output = campaign.run().await;
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let report = campaign.report();
    assert_eq!(
        report.len(),
        numbers.len(),
        "one attempt per number: {report:?}"
    );
    for row in &report {
        assert_eq!(row["attempt"], "1", "{row:?}");
        assert!(
            matches!(row["outcome"].as_str(), "answered" | "interrupted"),
            "every call was answered (carrier class 7), or ended unseen: {row:?}"
        );
    }
    let (created, shown) = {
        let seen = callees.state();
        (seen.created.clone(), format!("{seen:?}"))
    };
    // A number whose attempt was written but whose originate never left the killed
    // dialer is recorded as interrupted, never dialled later by surprise.
    for row in &report {
        let id = format!(
            "dc-{key}-{:012}-001",
            row_number_id(&numbers, &row["number"])
        );
        if !created.contains_key(&id) {
            assert_eq!(
                row["outcome"], "interrupted",
                "{row:?} was never dialled: {shown}"
            );
        }
    }
    assert!(
        created.len() + 4 >= numbers.len(),
        "at most MAX_CC attempts lost in a crash: {shown}"
    );
    assert!(
        created.values().all(|n| *n == 1),
        "a number was dialled twice: {shown}"
    );
    assert!(
        created.keys().all(|id| id.ends_with("-001")),
        "only first attempts: {shown}"
    );
    // The runs after the crashes left nothing up.
    callees
        .until(CAMPAIGN_DEADLINE, "all callees hung up", |s| s.live == 0)
        .await;
}
