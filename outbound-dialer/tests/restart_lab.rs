//! Asterisk killed (SIGKILL: no call ends cleanly) and started again in the middle of a
//! campaign: the calls that were up end as interrupted with a reason, the dialer waits
//! for ARI and dials the rest. It needs the shared Asterisk alone
//! (`ari_lab::Lab::alone`). Needs root (the lab script does).

mod common;

use std::time::Duration;

use common::{CAMPAIGN_DEADLINE, Campaign, Watcher};

#[tokio::test]
async fn calls_up_when_asterisk_dies_end_interrupted_and_the_campaign_goes_on() {
    ari_lab::Lab::alone().await;
    // Four calls that hold (carrier class 1, target that stays), then four short ones.
    let numbers = [
        "1601", "1602", "1603", "1604", "7601", "7602", "7603", "7604",
    ];
    let mut campaign = Campaign::new("dl-restart", &numbers);
    campaign
        .set("MAX_CC", "4")
        .set("TARGET_ENDPOINT", "Local/answer@lab");
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let targets = Watcher::start(format!("dt-{key}-")).await;
    let mut dialer = campaign.command(&["run"]).spawn().unwrap();
    targets
        .until(
            Duration::from_secs(30),
            "four calls bridged to their targets",
            |s| s.live >= 4,
        )
        .await;
    drop(targets);

    let lab = ari_lab::workspace_root().join("asterisk_conf/lab");
    let killed = tokio::process::Command::new(&lab)
        .args(["stop", "--kill"])
        .status()
        .await
        .unwrap();
    assert!(killed.success(), "lab stop --kill");
    let started = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(&lab).arg("start").status(),
    )
    .await
    .expect("the lab starts within 60 s")
    .unwrap();
    assert!(started.success(), "lab start");

    let status = tokio::time::timeout(CAMPAIGN_DEADLINE, dialer.wait())
        .await
        .expect("the campaign ends after Asterisk is back")
        .unwrap();
    assert!(
        status.success(),
        "the dialer exits 0 once every number has an outcome"
    );
    let report = campaign.report();
    assert_eq!(report.len(), numbers.len(), "{report:?}");
    for row in &report {
        let expected = if row["number"].starts_with('1') {
            "interrupted"
        } else {
            "answered"
        };
        assert_eq!(row["outcome"], expected, "{row:?}");
        if expected == "interrupted" {
            assert!(
                !row["message"].is_empty(),
                "an interrupted call says why: {row:?}"
            );
        }
    }
}
