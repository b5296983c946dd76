//! Bad input files through the real binary on the lab: invalid lines are reported with
//! their line numbers and skipped, exactly the valid numbers are dialled (Asterisk's own
//! ChannelCreated events say so), CSV columns reach the call as channel variables and the
//! report, and a file that holds no number stops the run before any call.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Output, Stdio};
use std::time::Duration;

use ari_client::model::operations::channels::GetChannelVar;
use ari_client::{Client, Credentials};
use common::{CAMPAIGN_DEADLINE, Campaign, Watcher};
use serde_json::Value;

fn shown(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A 10 MB line must never be echoed; cut what is shown in any case.
    let stderr: String = stderr.chars().take(20_000).collect();
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
    )
}

/// Bytes that are no text: every byte ≥ 0x80 (never valid UTF-8 alone), `\n` now and then.
fn junk(len: usize, newline_every: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|i| {
            if newline_every > 0 && i % newline_every == newline_every - 1 {
                return b'\n';
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            0x80 | (state >> 56) as u8
        })
        .collect()
}

/// Waits for the run to end within the deadline.
async fn finish(child: tokio::process::Child) -> Output {
    tokio::time::timeout(CAMPAIGN_DEADLINE, child.wait_with_output())
        .await
        .expect("the campaign finished within its deadline")
        .expect("the dialer runs")
}

#[tokio::test]
async fn a_list_with_bad_lines_dials_exactly_its_valid_numbers() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("dl-badlines", &[]);
    // Busy (2) and not found (other): calls that end at once.
    let mut list = Vec::new();
    list.extend_from_slice(b"2001001\r\n"); // 1 valid
    list.extend_from_slice(b"hello\r\n"); // 2 letters
    list.extend_from_slice(b"1000&Local/x\r\n"); // 3 a second destination
    list.extend_from_slice(b"2 001-002\r\n"); // 4 valid, with separators
    list.extend(std::iter::repeat_n(b'2', 10 * 1024 * 1024)); // 5 a 10 MB line
    list.extend_from_slice(b"\r\n");
    list.extend_from_slice(b"\x00\xff\xfe\x01junk\x1b[2J\r\n"); // 6 binary junk
    list.extend_from_slice(b"\r\n"); // 7 blank: skipped without a word
    list.extend_from_slice(b"9001003\r\n"); // 8 valid
    list.extend_from_slice(b"2001001\r\n"); // 9 the number of line 1 again
    list.extend_from_slice(&junk(300, 0)); // 10 more junk, no line end
    list.extend_from_slice(b"\r\n# a comment\r\n2001004"); // 11 comment, 12 valid, no end
    std::fs::write(campaign.dir.join("numbers.txt"), &list).unwrap();
    campaign.set("LOG_FORMAT", "json");
    let valid: BTreeSet<&str> = ["2001001", "2001002", "9001003", "2001004"].into();
    let invalid_lines: BTreeMap<u64, &str> = [
        (2, "'h'"),
        (3, "'&'"),
        (5, "longer than"),
        (6, "not UTF-8"),
        (10, "not UTF-8"),
    ]
    .into();

    let watcher = Watcher::start(campaign.callee_prefix()).await;
    let output = campaign.run().await;
    assert!(output.status.success(), "{}", shown(&output));

    // Each invalid line is reported once, with its number and why; nothing else is.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.len() < 200_000,
        "the long line was echoed: {} bytes",
        stderr.len()
    );
    let reported: Vec<Value> = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "invalid line skipped")
        .collect();
    let lines: Vec<u64> = reported.iter().filter_map(|e| e["line"].as_u64()).collect();
    assert_eq!(
        lines,
        invalid_lines.keys().copied().collect::<Vec<_>>(),
        "{}",
        shown(&output)
    );
    for event in &reported {
        let line = event["line"].as_u64().unwrap();
        let reason = event["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(invalid_lines[&line]),
            "line {line}: {event}"
        );
        assert!(
            event["excerpt"]
                .as_str()
                .is_some_and(|e| e.chars().count() <= 61),
            "line {line}: a short excerpt: {event}"
        );
        assert_eq!(event["level"], "WARN", "{event}");
    }
    let imported = stderr
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|event| event["message"] == "number list imported")
        .unwrap_or_else(|| panic!("no import line: {}", shown(&output)));
    assert_eq!(imported["inserted"], valid.len(), "{imported}");
    assert_eq!(imported["duplicates"], 1, "{imported}");
    assert_eq!(imported["invalid"], invalid_lines.len(), "{imported}");

    // Exactly the valid numbers were dialled, each once; the report says which is which.
    let report = campaign.report();
    let numbers: BTreeSet<&str> = report.iter().map(|row| row["number"].as_str()).collect();
    assert_eq!(numbers, valid, "{report:?}");
    assert_eq!(report.len(), valid.len(), "one row per number: {report:?}");
    for row in &report {
        let expected = if row["number"].starts_with('2') {
            "busy"
        } else {
            "bad_number"
        };
        assert_eq!(row["outcome"], expected, "{row:?}");
    }
    let seen = watcher.state();
    let created: BTreeSet<&str> = seen.created.keys().map(String::as_str).collect();
    let reported_ids: BTreeSet<&str> = report
        .iter()
        .map(|row| row["channel_id"].as_str())
        .collect();
    assert_eq!(created, reported_ids, "{seen:?}");
    assert!(seen.created.values().all(|n| *n == 1), "{seen:?}");
}

/// A channel variable as Asterisk has it, when it can be read now.
async fn variable(client: &Client, channel: &str, name: &str) -> Option<String> {
    client
        .channels()
        .get_channel_var(GetChannelVar::new(channel, name))
        .await
        .ok()
        .map(|variable| variable.value)
}

#[tokio::test]
async fn csv_columns_reach_the_call_as_channel_variables_and_the_report() {
    let lab = ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("dl-csv", &[]);
    std::fs::write(
        campaign.dir.join("people.csv"),
        "phone,name,customer_id\r\n7002001,Alice Smith,C-1001\r\n\"7002002\",\"Bob, Jr.\",C-1002\r\n",
    )
    .unwrap();
    campaign
        .set("OUTBOUND_NUMBER_FILE", "people.csv")
        .set("TARGET_ENDPOINT", "Local/answer@lab");
    let expected: BTreeMap<&str, (&str, &str)> = [
        ("7002001", ("Alice Smith", "C-1001")),
        ("7002002", ("Bob, Jr.", "C-1002")),
    ]
    .into();
    let client = Client::builder(&lab.ari_url)
        .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
        .build()
        .unwrap();
    let watcher = Watcher::start(campaign.callee_prefix()).await;
    // Two calls log a few lines: the pipes cannot fill while the variables are read.
    let child = campaign
        .command(&["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    // Each callee talks for 3 s (carrier class 7): read its variables while it is up.
    let mut variables: BTreeMap<String, (String, String)> = BTreeMap::new();
    let read_all = async {
        while variables.len() < expected.len() {
            let ids: Vec<String> = watcher
                .state()
                .created
                .keys()
                .filter(|id| !variables.contains_key(*id))
                .cloned()
                .collect();
            for id in ids {
                // 409 until the callee is in the app (answered); 404 once it is gone.
                let name = variable(&client, &id, "name").await;
                let customer = variable(&client, &id, "customer_id").await;
                if let (Some(name), Some(customer)) = (name, customer) {
                    variables.insert(id, (name, customer));
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read_all)
        .await
        .unwrap_or_else(|_| panic!("variables read: {variables:?}; {:?}", watcher.state()));
    let output = finish(child).await;
    assert!(output.status.success(), "{}", shown(&output));

    let report = campaign.report();
    assert_eq!(report.len(), expected.len(), "{report:?}");
    for row in &report {
        let (name, customer) = expected[row["number"].as_str()];
        assert_eq!(row["name"], name, "{row:?}");
        assert_eq!(row["customer_id"], customer, "{row:?}");
        assert_eq!(row["outcome"], "answered", "{row:?}");
        assert_eq!(
            variables.get(&row["channel_id"]),
            Some(&(name.to_owned(), customer.to_owned())),
            "the call's variables on Asterisk: {variables:?}"
        );
    }
    let seen = watcher.state();
    assert_eq!(seen.created.len(), expected.len(), "{seen:?}");
}

#[tokio::test]
async fn files_without_numbers_stop_the_run_before_dialling() {
    ari_lab::Lab::get().await;
    let mut only_junk = Campaign::new("dl-junk", &[]);
    std::fs::write(only_junk.dir.join("junk.bin"), junk(50_000, 97)).unwrap();
    only_junk.set("OUTBOUND_NUMBER_FILE", "junk.bin");
    let watcher = Watcher::start(only_junk.callee_prefix()).await;
    let output = only_junk.run().await;
    assert!(!output.status.success(), "{}", shown(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no valid number in junk.bin"),
        "{}",
        shown(&output)
    );
    assert!(
        !only_junk.dir.join("report.csv").exists(),
        "nothing to report"
    );
    assert!(watcher.state().created.is_empty(), "{:?}", watcher.state());

    let mut headless = Campaign::new("dl-headless", &[]);
    std::fs::write(
        headless.dir.join("customers.csv"),
        "name,customer_id\r\nAlice,C-1001\r\nBob,C-1002\r\n",
    )
    .unwrap();
    headless.set("OUTBOUND_NUMBER_FILE", "customers.csv");
    let watcher = Watcher::start(headless.callee_prefix()).await;
    let output = headless.run().await;
    assert!(!output.status.success(), "{}", shown(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("customers.csv")
            && stderr.contains("no number or phone column")
            && stderr.contains("its columns: name, customer_id"),
        "{}",
        shown(&output)
    );
    assert!(watcher.state().created.is_empty(), "{:?}", watcher.state());
}
