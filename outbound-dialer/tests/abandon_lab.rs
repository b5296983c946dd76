//! Abandoned calls on the lab, through the real binary: a target slower than the 2 s
//! abandon limit is hung up 2 s after the callee's answer, the callee hears the
//! identification message and is hung up (target_failed); a target that answers at once
//! is never cut. What Asterisk did is read from its own events (a tracker app subscribed
//! to everything: channel states, ends, playbacks), not from the dialer.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ari_client::model::Event;
use ari_client::model::models::ChannelState;
use ari_client::{Client, Credentials, Update};
use futures::StreamExt as _;

use common::Campaign;

/// One channel or playback as Asterisk reported it.
#[derive(Debug, Clone, Default)]
struct Seen {
    created: Option<Instant>,
    up: Option<Instant>,
    destroyed: Option<Instant>,
    /// Playbacks: where (`bridge:...`, `channel:...`).
    target_uri: String,
    started: Option<Instant>,
    finished: Option<Instant>,
}

/// Channels and playbacks whose ids (or targets) carry the campaign's key.
struct Tracker {
    seen: Arc<Mutex<BTreeMap<String, Seen>>>,
    _connection: ari_client::AppConnection,
}

impl Tracker {
    async fn start(key: String) -> Tracker {
        let lab = ari_lab::Lab::get().await;
        let client = Client::builder(&lab.ari_url)
            .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
            .build()
            .unwrap();
        let connection = client
            .app_connection([ari_lab::unique_name("abandon-track")])
            .event_sources(["channel:", "bridge:"]) // not subscribeAll: asterisk/asterisk#2170
            .connect()
            .await
            .expect("the tracker connects");
        let seen: Arc<Mutex<BTreeMap<String, Seen>>> = Arc::default();
        let mut updates = connection.updates();
        let state = seen.clone();
        tokio::spawn(async move {
            while let Some(update) = updates.next().await {
                let Update::Event(event) = update else {
                    continue;
                };
                let now = Instant::now();
                let mut s = state.lock().unwrap();
                match event.as_ref() {
                    Event::ChannelCreated(e) if e.channel.id.as_str().contains(&key) => {
                        s.entry(e.channel.id.to_string()).or_default().created = Some(now);
                    }
                    Event::ChannelStateChange(e)
                        if e.channel.id.as_str().contains(&key)
                            && e.channel.state == ChannelState::Up =>
                    {
                        let entry = s.entry(e.channel.id.to_string()).or_default();
                        entry.up.get_or_insert(now);
                    }
                    Event::ChannelDestroyed(e) if e.channel.id.as_str().contains(&key) => {
                        s.entry(e.channel.id.to_string()).or_default().destroyed = Some(now);
                    }
                    Event::PlaybackStarted(e) if e.playback.target_uri.contains(&key) => {
                        let entry = s.entry(format!("pb-{}", e.playback.id)).or_default();
                        entry.target_uri = e.playback.target_uri.clone();
                        entry.started = Some(now);
                    }
                    Event::PlaybackFinished(e) if e.playback.target_uri.contains(&key) => {
                        let entry = s.entry(format!("pb-{}", e.playback.id)).or_default();
                        entry.target_uri = e.playback.target_uri.clone();
                        entry.finished = Some(now);
                    }
                    _ => {}
                }
            }
        });
        Tracker {
            seen,
            _connection: connection,
        }
    }

    /// What was seen whose id starts with `prefix`.
    fn with_prefix(&self, prefix: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(_, seen)| seen.clone())
            .collect()
    }

    fn all(&self) -> BTreeMap<String, Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (within 5 s: the dialer has seen it already) until every channel of the
    /// campaign is seen destroyed.
    async fn until_all_ended(&self) {
        let ended = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let all = self.all();
                let channels = all.iter().filter(|(id, _)| !id.starts_with("pb-"));
                if !all.is_empty() && channels.clone().all(|(_, seen)| seen.destroyed.is_some()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(ended.is_ok(), "channels still up: {:#?}", self.all());
    }
}

fn output_text(output: &std::process::Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
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
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let tracker = Tracker::start(key.clone()).await;
    let output = campaign.run().await;
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let report = campaign.report();
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

    tracker.until_all_ended().await;
    let seen = tracker.all();
    let one = |prefix: &str| {
        let found = tracker.with_prefix(prefix);
        assert_eq!(found.len(), 1, "{prefix}: {seen:#?}");
        found[0].clone()
    };
    // The first attempt of the first number; the Local target's other half is `;2`.
    let ids = outbound_dialer::ids::AttemptIds::new(&key, 1, 1);
    let exactly = |id: &str| {
        seen.get(id)
            .cloned()
            .unwrap_or_else(|| panic!("{id}: {seen:#?}"))
    };
    let callee = exactly(&ids.callee);
    let target = exactly(&ids.target);
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
    let playback = one("pb-");
    assert!(
        playback.target_uri == format!("bridge:{}", ids.bridge),
        "{seen:#?}"
    );
    let (started, finished) = (playback.started.unwrap(), playback.finished.unwrap());
    assert!(
        started >= target_end - Duration::from_millis(100),
        "{seen:#?}"
    );
    assert!(finished <= callee_end, "{seen:#?}");
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
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let tracker = Tracker::start(key.clone()).await;
    let output = campaign.run().await;
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let report = campaign.report();
    assert_eq!(report[0]["outcome"], "answered", "{text}");
    assert!(
        !report[0]["target_connected_at"].is_empty(),
        "{:?}",
        report[0]
    );
    tracker.until_all_ended().await;
    let seen = tracker.all();
    let callee = tracker.with_prefix(&format!("dc-{key}-"));
    assert_eq!(callee.len(), 1, "{seen:#?}");
    let lifetime = callee[0].destroyed.unwrap() - callee[0].up.unwrap();
    // The callee's own 3 s, well past the 2 s limit: the dialer cut nothing.
    assert!(
        lifetime >= Duration::from_millis(2700),
        "the callee lived {lifetime:?} after answering: {seen:#?}"
    );
    assert!(
        tracker.with_prefix("pb-").is_empty(),
        "no message was played: {seen:#?}"
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
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let tracker = Tracker::start(key.clone()).await;
    let output = campaign.run().await;
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    let report = campaign.report();
    assert_eq!(report[0]["outcome"], "answered", "not cut\n{text}");
    tracker.until_all_ended().await;
    let seen = tracker.all();
    let ids = outbound_dialer::ids::AttemptIds::new(&key, 1, 1);
    let callee = &seen[&ids.callee];
    let target = &seen[&ids.target];
    let joined = target.up.expect("the target answered") - callee.up.unwrap();
    assert!(joined > Duration::from_secs(2), "{joined:?}: {seen:#?}");
    assert!(
        tracker.with_prefix("pb-").is_empty(),
        "no message: {seen:#?}"
    );
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
    let key = outbound_dialer::ids::campaign_key(&campaign.name);
    let tracker = Tracker::start(key.clone()).await;
    let output = campaign.run().await;
    let text = output_text(&output);
    assert!(output.status.success(), "{text}");
    assert!(text.contains("amd_status=HUMAN"), "{text}");
    let report = campaign.report();
    assert_eq!(report[0]["outcome"], "target_failed", "{text}");
    assert!(
        report[0]["message"]
            .contains("abandoned: no target connected within 2 s of the callee's AMD verdict"),
        "{:?}",
        report[0]
    );
    tracker.until_all_ended().await;
    let seen = tracker.all();
    let ids = outbound_dialer::ids::AttemptIds::new(&key, 1, 1);
    let callee = &seen[&ids.callee];
    let target = &seen[&ids.target];
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
    assert_eq!(
        tracker.with_prefix("pb-").len(),
        1,
        "the message: {seen:#?}"
    );
}
