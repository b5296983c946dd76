//! Abandoned calls on the lab, through the real binary: a target slower than the 2 s
//! abandon limit is hung up 2 s after the callee's answer, the callee hears the
//! identification message and is hung up (target_failed); a target that answers at once
//! is never cut. What Asterisk did is read from its own events (a tracker app subscribed
//! to everything: channel states, ends, playbacks), not from the dialer.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Campaign;
use common::tracker::{Playback, Seen, Tracker};
use outbound_dialer::ids::AttemptIds;

/// What a campaign of one number did: the dialer's output and report, and on Asterisk
/// (once every channel of the campaign ended) its channels and playbacks.
struct Ran {
    text: String,
    report: Vec<BTreeMap<String, String>>,
    key: String,
    /// The ids of the first attempt of the first number.
    ids: AttemptIds,
    tracker: Tracker,
    seen: BTreeMap<String, Seen>,
    playbacks: Vec<Playback>,
}

/// Runs `campaign` to its end (it must succeed) with a tracker of its key.
async fn run(campaign: &Campaign) -> Ran {
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let tracker = Tracker::start(key.clone()).await;
    let text = campaign.run_ok().await;
    tracker.until_all_ended().await;
    Ran {
        text,
        report: campaign.report(),
        ids: AttemptIds::new(&key, 1, 1),
        key,
        seen: tracker.channels(),
        playbacks: tracker.playbacks(),
        tracker,
    }
}

impl Ran {
    /// The channel `id`, which must have been seen.
    fn channel(&self, id: &str) -> &Seen {
        self.seen
            .get(id)
            .unwrap_or_else(|| panic!("{id}: {:#?}", self.seen))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_target_is_cut_at_two_seconds_and_the_callee_hears_the_message() {
    ari_lab::Lab::get().await;
    // 1001 answers at once and holds; the target rings 3 s before it would answer, and
    // may take 10 s: the 2 s abandon limit, not the target's timeout, ends its attempt.
    let mut campaign = Campaign::new("ab-slow", &["1001"]);
    campaign
        .set("TARGET_ENDPOINT", "Local/delay-3@lab")
        .set("DIALER_TARGET_TIMEOUT", "10")
        .set("DIALER_TARGET_FAILED_SOUND", "sound:beep");
    let ran = run(&campaign).await;
    let (text, report, seen) = (&ran.text, &ran.report, &ran.seen);
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["outcome"], "target_failed", "{text}");
    assert!(
        report[0]["message"].contains("abandoned: no target connected within 2 s"),
        "{:?}",
        report[0]
    );
    assert!(
        report[0]["target_connected_at"].is_empty(),
        "{:?}",
        report[0]
    );

    // The first attempt of the first number; the Local target's other half is `;2`.
    let callee = ran.channel(&ran.ids.callee);
    let target = ran.channel(&ran.ids.target);
    let answered = callee.up.expect("the callee answered");
    let callee_end = callee.destroyed.expect("the callee was hung up");
    let target_end = target.destroyed.expect("the target attempt was hung up");
    // The target attempt was ended at the limit: about 2 s after the answer, before it
    // would have answered (3 s of ringing after its originate).
    let cut = target_end - answered;
    assert!(
        cut >= Duration::from_millis(1900) && cut < Duration::from_millis(2900),
        "the target was hung up {cut:?} after the callee's answer: {seen:#?}"
    );
    assert!(target.up.is_none(), "the target never answered: {seen:#?}");
    // The message was played on the callee's bridge after the cut, to its end, and only
    // then was the callee hung up.
    let playbacks = &ran.playbacks;
    assert_eq!(playbacks.len(), 1, "{playbacks:#?}");
    let playback = &playbacks[0];
    assert!(
        playback.target_uri == format!("bridge:{}", ran.ids.bridge),
        "{playbacks:#?}"
    );
    let (started, finished) = (playback.started.unwrap(), playback.finished.unwrap());
    assert!(
        started >= target_end - Duration::from_millis(100),
        "{playbacks:#?}\n{seen:#?}"
    );
    assert!(finished <= callee_end, "{playbacks:#?}\n{seen:#?}");
    let lifetime = callee_end - answered;
    eprintln!(
        "target cut {cut:?} after the answer; message {:?}; callee hung up {lifetime:?} after the answer",
        finished - started
    );
    assert!(
        lifetime >= Duration::from_millis(1900) && lifetime < Duration::from_secs(5),
        "the callee lived {lifetime:?} after answering (2 s, then a short message): {seen:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_target_is_never_cut() {
    ari_lab::Lab::get().await;
    // 7001 answers and hangs up itself after 3 s; the target answers at once.
    let mut campaign = Campaign::new("ab-fast", &["7001"]);
    campaign
        .set("TARGET_ENDPOINT", "Local/answer@lab")
        .set("DIALER_TARGET_FAILED_SOUND", "sound:beep");
    let ran = run(&campaign).await;
    let (text, report, seen) = (&ran.text, &ran.report, &ran.seen);
    assert_eq!(report[0]["outcome"], "answered", "{text}");
    assert!(
        !report[0]["target_connected_at"].is_empty(),
        "{:?}",
        report[0]
    );
    let callee = ran.tracker.with_prefix(&format!("dc-{}-", ran.key));
    assert_eq!(callee.len(), 1, "{seen:#?}");
    let lifetime = callee[0].destroyed.unwrap() - callee[0].up.unwrap();
    // The callee's own 3 s, well past the 2 s limit: the dialer cut nothing.
    assert!(
        lifetime >= Duration::from_millis(2700),
        "the callee lived {lifetime:?} after answering: {seen:#?}"
    );
    assert!(
        ran.playbacks.is_empty(),
        "no message was played: {:#?}",
        ran.playbacks
    );
    assert!(!text.contains("abandoned: no target"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_abandon_after_zero_a_late_target_connects_and_counts_as_abandoned() {
    ari_lab::Lab::get().await;
    // 7001 answers and hangs up itself after 3 s; the target rings 2 s from its
    // originate (which follows the answer), so it joins more than 2 s after the answer.
    let mut campaign = Campaign::new("ab-zero", &["7001"]);
    campaign
        .set("TARGET_ENDPOINT", "Local/delay-2@lab")
        .set("DIALER_TARGET_TIMEOUT", "10")
        .set("DIALER_ABANDON_AFTER", "0")
        .set("DIALER_TARGET_FAILED_SOUND", "sound:beep");
    let ran = run(&campaign).await;
    let (text, report, seen) = (&ran.text, &ran.report, &ran.seen);
    assert_eq!(report[0]["outcome"], "answered", "not cut\n{text}");
    let callee = ran.channel(&ran.ids.callee);
    let target = ran.channel(&ran.ids.target);
    let joined = target.up.expect("the target answered") - callee.up.unwrap();
    assert!(joined > Duration::from_secs(2), "{joined:?}: {seen:#?}");
    assert!(ran.playbacks.is_empty(), "no message: {:#?}", ran.playbacks);
    // Connected, but late: the campaign's rate counts it abandoned.
    let days = std::fs::read_to_string(campaign.dir.join("report.abandon.csv")).unwrap();
    assert!(days.contains("\nlast_30_days,1,1,100.00\n"), "{days}");
    assert!(
        text.contains("abandon rate too high: concurrency lowered"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_amd_the_two_seconds_count_from_the_verdict() {
    ari_lab::Lab::get().await;
    // 81001 answers like a person ("hello", then silence): AMD says HUMAN a second or two
    // after the answer; the target rings 3 s, too slow.
    let mut campaign = Campaign::new("ab-amd", &["81001"]);
    campaign
        .set("DIALER_AMD", "1")
        .set("TARGET_ENDPOINT", "Local/delay-3@lab")
        .set("DIALER_TARGET_TIMEOUT", "10")
        .set("DIALER_TARGET_FAILED_SOUND", "sound:beep");
    let ran = run(&campaign).await;
    let (text, report, seen) = (&ran.text, &ran.report, &ran.seen);
    assert!(text.contains("amd_status=HUMAN"), "{text}");
    assert_eq!(report[0]["outcome"], "target_failed", "{text}");
    assert!(
        report[0]["message"]
            .contains("abandoned: no target connected within 2 s of the callee's AMD verdict"),
        "{:?}",
        report[0]
    );
    let callee = ran.channel(&ran.ids.callee);
    let target = ran.channel(&ran.ids.target);
    // The target is dialled at the verdict and cut 2 s after it, which is well after 2 s
    // from the answer.
    let target_lifetime = target.destroyed.unwrap() - target.created.unwrap();
    let cut = target.destroyed.unwrap() - callee.up.unwrap();
    eprintln!(
        "with AMD: target cut {cut:?} after the answer, after {target_lifetime:?} of ringing"
    );
    assert!(
        target_lifetime >= Duration::from_millis(1700)
            && target_lifetime < Duration::from_millis(2600),
        "the target rang {target_lifetime:?}: {seen:#?}"
    );
    assert!(
        cut > Duration::from_millis(2900),
        "cut {cut:?} after the answer: {seen:#?}"
    );
    assert_eq!(ran.playbacks.len(), 1, "the message: {:#?}", ran.playbacks);
}
