//! The campaign rules on the lab, through the real binary: retries with their delays and
//! limit, a calling window that opens a few seconds ahead, DNC numbers that never reach
//! the trunk, the abandon-rate control lowering concurrency when the target fails, the
//! circuit breaker on a run of 503s, and answering-machine detection of the carrier's
//! person (81...) and machine (82...) answers. What Asterisk did is read from its own
//! events (a tracker app subscribed to everything), not from the dialer.

mod common;

use std::time::{Duration, SystemTime};

use common::Campaign;
use common::tracker::{Seen, Tracker};

#[tokio::test]
async fn retries_follow_their_delays_and_stop_at_the_limit() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("rl-retry", &["2001", "2002", "1001"]);
    campaign
        .set("DIALER_MAX_ATTEMPTS", "3")
        .set("DIALER_RETRY_DELAY", "busy=2s");
    let tracker = Tracker::start(campaign.callee_prefix()).await;
    let text = campaign.run_ok().await;
    campaign.assert_attempts(&["2001", "2002"], &["busy", "busy", "busy"], &text);
    campaign.assert_attempts(
        &["1001"],
        &["answered"],
        &format!("an answered number is not retried\n{text}"),
    );
    // On Asterisk: three calls per busy number, each 2 s (and not much more, allowing for
    // a loaded machine) after the previous one ended.
    for number_id in [1, 2] {
        let calls = tracker.attempts_of(&campaign, number_id);
        assert_eq!(calls.len(), 3, "{calls:?}");
        for pair in calls.windows(2) {
            let gap = pair[1].created.unwrap() - pair[0].destroyed.unwrap();
            assert!(
                gap >= Duration::from_millis(1900) && gap <= Duration::from_millis(6000),
                "retry {gap:?} after the busy end, configured 2 s: {calls:?}"
            );
        }
    }
    assert_eq!(tracker.attempts_of(&campaign, 3).len(), 1);
}

/// A calling window opening 6 s from now in `zone`, for an hour: (its opening in Unix
/// seconds, the window as `--calling-window` takes it).
fn window_opening_soon(zone: chrono_tz::Tz) -> (u64, String) {
    use chrono::TimeZone as _;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let opens = now + 6;
    let local = |secs: u64| {
        zone.timestamp_opt(i64::try_from(secs).unwrap(), 0)
            .unwrap()
            .format("%H:%M:%S")
            .to_string()
    };
    (opens, format!("{}-{}", local(opens), local(opens + 3600)))
}

/// The campaign's first number was called once, within 5 s after `opens` (Unix s).
fn assert_called_once_when_open(tracker: &Tracker, campaign: &Campaign, opens: u64) {
    let calls = tracker.attempts_of(campaign, 1);
    assert_eq!(calls.len(), 1, "{calls:?}");
    let created = calls[0]
        .created_wall
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    assert!(
        created >= Duration::from_secs(opens),
        "called at {created:?}, before the window opened at {opens} s"
    );
    assert!(
        created <= Duration::from_secs(opens + 5),
        "called at {created:?}, long after the window opened at {opens} s"
    );
}

#[tokio::test]
async fn a_number_outside_its_window_is_called_when_it_opens() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("rl-window", &["1001"]);
    // UTC: 1... numbers are NANP of no area code, whose zone the default gives.
    let (opens, window) = window_opening_soon(chrono_tz::UTC);
    campaign
        .set("DIALER_CALLING_WINDOW", &window)
        .set("DIALER_DEFAULT_TIMEZONE", "UTC");
    let tracker = Tracker::start(campaign.callee_prefix()).await;
    let text = campaign.run_ok().await;
    assert!(
        text.contains("nothing callable now: sleeping until"),
        "the dialer says until when it sleeps\n{text}"
    );
    campaign.assert_attempts(&["1001"], &["answered"], &text);
    assert_called_once_when_open(&tracker, &campaign, opens);
}

#[tokio::test]
async fn a_national_us_number_waits_for_its_area_codes_window() {
    ari_lab::Lab::get().await;
    // 718 is New York: with --national-country-code 1 the 10-digit number is +1 718, so
    // its window opens 6 s from now, New York time. Without it, 718… would read as +7
    // (no zone) and take the default, Tokyo, where that window is hours away. (The lab
    // carrier answers 7… and hangs up after 3 s.)
    let mut campaign = Campaign::new("rl-national", &["7185550100"]);
    let (opens, window) = window_opening_soon(chrono_tz::America::New_York);
    campaign
        .set("DIALER_CALLING_WINDOW", &window)
        .set("DIALER_DEFAULT_TIMEZONE", "Asia/Tokyo")
        .set("DIALER_NATIONAL_COUNTRY_CODE", "1");
    let tracker = Tracker::start(campaign.callee_prefix()).await;
    let text = campaign.run_ok().await;
    assert!(
        text.contains("national_country_code=1"),
        "the rules line names it\n{text}"
    );
    campaign.assert_attempts(&["7185550100"], &["answered"], &text);
    assert_called_once_when_open(&tracker, &campaign, opens);
}

#[tokio::test]
async fn dnc_numbers_never_reach_the_trunk() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("rl-dnc", &["1001", "1002", "2003"]);
    std::fs::write(
        campaign.dir.join("dnc.txt"),
        "# do not call\n+1 002\n2003  # asked on the phone\nnot a number\n",
    )
    .unwrap();
    campaign.set("DIALER_DNC_FILE", "dnc.txt");
    let tracker = Tracker::start(campaign.callee_prefix()).await;
    let text = campaign.run_ok().await;
    let outcomes = campaign.outcomes();
    assert_eq!(outcomes["1001"], "answered", "{text}");
    assert_eq!(outcomes["1002"], "dnc", "{text}");
    assert_eq!(outcomes["2003"], "dnc", "{text}");
    assert!(
        text.contains(
            "are on the do-not-call list: they get the outcome dnc and are never dialled numbers=2"
        ),
        "counted at import\n{text}"
    );
    // Asterisk created a channel for the one number not on the list, and none other.
    let channels = tracker.channels();
    assert_eq!(channels.len(), 1, "{channels:?}");
    assert_eq!(tracker.attempts_of(&campaign, 1).len(), 1, "{channels:?}");
}

#[tokio::test]
async fn the_abandon_rate_lowers_concurrency_when_the_target_fails() {
    ari_lab::Lab::get().await;
    let numbers = [
        "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010",
    ];
    let mut campaign = Campaign::new("rl-abandon", &numbers);
    // The target never answers: after 1 s each callee hears the identification message
    // and is hung up, an abandoned call (no target within 2 s).
    campaign
        .set("MAX_CC", "4")
        .set("TARGET_ENDPOINT", "Local/noanswer@lab")
        .set("DIALER_TARGET_TIMEOUT", "1")
        .set("DIALER_TARGET_FAILED_SOUND", "sound:beep");
    let tracker = Tracker::start(campaign.callee_prefix()).await;
    let text = campaign.run_ok().await;
    for number in numbers {
        assert_eq!(campaign.outcomes()[number], "target_failed", "{text}");
    }
    assert!(
        text.contains("abandon rate too high: concurrency lowered"),
        "{text}"
    );
    assert!(text.contains("concurrency=1"), "{text}");
    // On Asterisk: the first four rang together (MAX_CC); once the rate was over 3 %
    // (two abandons in; a call or two may start meanwhile) the rest went one at a time:
    // each of the last four started only after every earlier call had ended.
    let mut calls: Vec<Seen> = tracker.channels().into_values().collect();
    calls.sort_by_key(|seen| seen.created);
    assert_eq!(calls.len(), numbers.len(), "{calls:?}");
    let first_end = calls.iter().filter_map(|c| c.destroyed).min().unwrap();
    assert!(
        calls[..4].iter().all(|c| c.created.unwrap() < first_end),
        "the first wave used MAX_CC: {calls:?}"
    );
    for later in numbers.len() - 4..numbers.len() {
        let earlier_end = calls[..later]
            .iter()
            .map(|c| c.destroyed.unwrap())
            .max()
            .unwrap();
        assert!(
            calls[later].created.unwrap() >= earlier_end,
            "call {later} started while another was up: {calls:?}"
        );
    }
}

#[tokio::test]
async fn the_circuit_breaker_trips_on_a_run_of_503s() {
    ari_lab::Lab::get().await;
    let numbers = ["6001", "6002", "6003", "6004", "1005"];
    let mut campaign = Campaign::new("rl-breaker", &numbers);
    campaign
        .set("MAX_CC", "1")
        .set("DIALER_BREAKER_THRESHOLD", "3")
        .set("DIALER_BREAKER_COOLDOWN", "3s");
    let tracker = Tracker::start(campaign.callee_prefix()).await;
    let text = campaign.run_ok().await;
    assert!(
        text.contains("circuit breaker open: the last 3 calls failed at the trunk (last cause 34"),
        "the dialer says why it pauses\n{text}"
    );
    let outcomes = campaign.outcomes();
    for number in ["6001", "6002", "6003", "6004"] {
        assert_eq!(outcomes[number], "congestion", "{text}");
    }
    assert_eq!(outcomes["1005"], "answered", "{text}");
    // On Asterisk: after the third 503 nothing went to the trunk for the cool-down; then
    // one probe (503 again: another cool-down), then the next probe got through.
    let calls: Vec<Seen> = (1..=5)
        .map(|id| {
            let attempts = tracker.attempts_of(&campaign, id);
            assert_eq!(attempts.len(), 1, "number {id}: {attempts:?}");
            attempts[0].clone()
        })
        .collect();
    for (after, what) in [(2, "the first trip"), (3, "the failed probe")] {
        let gap = calls[after + 1].created.unwrap() - calls[after].destroyed.unwrap();
        assert!(
            gap >= Duration::from_millis(2900),
            "{gap:?} after {what}, cool-down 3 s: {calls:?}"
        );
    }
    assert!(text.contains("circuit breaker closed"), "{text}");
    // The progress line says who paused and why; the summary when it probed and resumed.
    assert!(
        text.contains("paused by the circuit breaker (circuit breaker open: the last 3 calls"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|line| line.starts_with("paused by the circuit breaker at ")
                && line.contains("; probe calls at ")
                && line.contains("; resumed at ")),
        "{text}"
    );
}

#[tokio::test]
async fn amd_tells_the_carriers_person_from_its_machine() {
    ari_lab::Lab::get().await;
    let mut campaign = Campaign::new("rl-amd", &["81001", "82001"]);
    campaign
        .set("DIALER_AMD", "1")
        .set("DIALER_MACHINE_MESSAGE", "sound:beep");
    let tracker = Tracker::start(campaign.callee_prefix()).await;
    let text = campaign.run_ok().await;
    let outcomes = campaign.outcomes();
    assert_eq!(outcomes["81001"], "answered", "a person is bridged\n{text}");
    assert_eq!(outcomes["82001"], "machine", "a machine is not\n{text}");
    assert!(text.contains("amd_status=HUMAN"), "{text}");
    assert!(text.contains("amd_status=MACHINE"), "{text}");
    let report = campaign.report();
    let machine = report.iter().find(|r| r["number"] == "82001").unwrap();
    assert!(
        machine["recording"].is_empty(),
        "a machine is not recorded: {machine:?}"
    );
    let person = report.iter().find(|r| r["number"] == "81001").unwrap();
    assert!(!person["recording"].is_empty(), "{person:?}");
    assert_eq!(tracker.channels().len(), 2);
}
