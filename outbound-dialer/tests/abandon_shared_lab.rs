//! Two `outbound-dialer run` processes on one campaign in the lab's MariaDB share its
//! abandon rate: dialer A's target is too slow (every call A makes is abandoned at 2 s),
//! dialer B's answers at once (none of B's calls is abandoned); B still lowers its
//! concurrency, because the rate it throttles on is the campaign's, read from the store.

mod common;

use std::time::Duration;

use common::Campaign;

const NUMBERS: usize = 16;

fn output_text(output: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dialers_abandoned_calls_lower_the_others_concurrency() {
    ari_lab::Lab::get().await;
    let db = ari_lab::mariadb::MariaDb::get().database("abshared");
    // 7... answers and hangs up itself after 3 s.
    let numbers: Vec<String> = (0..NUMBERS)
        .map(|i| format!("7{:05}", 30_000 + i))
        .collect();
    let refs: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let mut campaign = Campaign::new("ab-shared", &refs);
    campaign
        .set("DIALER_DB", &db.url)
        .set("MAX_CC", "4")
        .set("DIALER_TARGET_TIMEOUT", "10")
        .set("DIALER_TARGET_FAILED_SOUND", "sound:beep");
    let apps = [
        ari_lab::unique_name("ab-shared-slow"),
        ari_lab::unique_name("ab-shared-fast"),
    ];
    let targets = ["Local/delay-3@lab", "Local/answer@lab"];
    let mut children = Vec::new();
    for (i, (app, target)) in apps.iter().zip(targets).enumerate() {
        let mut command = campaign.command(&["run"]);
        command
            .env("STASIS_APP", app)
            .env("TARGET_ENDPOINT", target)
            .env("DIALER_REPORT", format!("report-{i}.csv"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        children.push(command.spawn().expect("the dialer starts"));
    }
    let mut outputs = Vec::new();
    for child in children {
        let output = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
            .await
            .expect("the dialers finish the campaign in time")
            .unwrap();
        outputs.push(output);
    }
    let texts: Vec<String> = outputs.iter().map(output_text).collect();
    for (output, text) in outputs.iter().zip(&texts) {
        assert!(output.status.success(), "{text}");
    }
    // The database: A's calls all abandoned, B's all connected, both dialled.
    let by_app = db
        .sql(
            "SELECT d.app, a.outcome, COUNT(*) FROM attempts a JOIN dialers d ON d.id = a.dialer \
             GROUP BY d.app, a.outcome ORDER BY d.app, a.outcome",
        )
        .unwrap();
    let rows: Vec<Vec<&str>> = by_app
        .lines()
        .map(|line| line.split('\t').collect())
        .collect();
    let count = |app: &str, outcome: &str| -> u64 {
        rows.iter()
            .find(|row| row[0] == app && row[1] == outcome)
            .map_or(0, |row| row[2].trim().parse().unwrap())
    };
    let (slow, fast) = (&apps[0], &apps[1]);
    let slow_abandoned = count(slow, "target_failed");
    let fast_answered = count(fast, "answered");
    assert!(slow_abandoned >= 1, "{by_app}");
    assert!(fast_answered >= 1, "{by_app}");
    assert_eq!(count(slow, "answered"), 0, "{by_app}");
    assert_eq!(count(fast, "target_failed"), 0, "{by_app}");
    assert_eq!(
        slow_abandoned + fast_answered,
        NUMBERS as u64,
        "every number once: {by_app}"
    );
    // B never abandoned a call, yet it throttled on the campaign's rate.
    let fast_text = &texts[1];
    assert!(
        fast_text.contains("abandon rate too high: concurrency lowered"),
        "the fast dialer lowered its concurrency on the campaign's rate\n{fast_text}"
    );
    assert!(fast_text.contains("concurrency=1"), "{fast_text}");
    assert!(!fast_text.contains("abandoned: no target"), "{fast_text}");
    // The last to finish reports the campaign's rate over every dialer's calls (the
    // first may end while the other's last calls are up).
    let total = format!("live_answered={NUMBERS} abandoned={slow_abandoned}");
    assert!(
        texts.iter().any(|t| t.contains(&total)),
        "{total}\n{texts:#?}"
    );
    let day_reports: Vec<String> = (0..2)
        .map(|i| {
            std::fs::read_to_string(campaign.dir.join(format!("report-{i}.abandon.csv")))
                .expect("the per-day abandon report")
        })
        .collect();
    let last = format!("last_30_days,{NUMBERS},{slow_abandoned},");
    assert!(
        day_reports.iter().any(|r| r.contains(&last)),
        "{last}\n{day_reports:#?}"
    );
    let day_report = day_reports.join("\n");
    eprintln!("attempts by dialer and outcome:\n{by_app}\n{day_report}");
}
