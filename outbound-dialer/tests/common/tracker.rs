//! An independent tracker of what Asterisk did with a test's calls, read from its own
//! events: every channel whose id contains a key (a campaign's key, or an id prefix such
//! as [`Campaign::callee_prefix`]), with its times, and every playback whose target
//! contains it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use ari_client::model::Event;
use ari_client::model::models::ChannelState;
use ari_client::{Client, Credentials, Update};
use futures::StreamExt as _;

use super::Campaign;

/// One channel as Asterisk reported it: each time both as an `Instant` (to measure
/// gaps) and as a wall-clock time (to compare with the store's and the calling window).
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// Its last creation.
    pub created: Option<Instant>,
    pub created_wall: Option<SystemTime>,
    /// The first time it was seen up (answered).
    pub up: Option<Instant>,
    /// Its last end.
    pub destroyed: Option<Instant>,
    pub destroyed_wall: Option<SystemTime>,
    /// The hang-up cause of its last end.
    pub cause: Option<i64>,
    /// Times it was created (more than once: dialled twice under the same id).
    pub creations: u32,
    /// Dialplan applications it ran, in order.
    pub apps: Vec<String>,
}

/// One playback as Asterisk reported it.
#[derive(Debug, Clone, Default)]
pub struct Playback {
    /// Where it played (`bridge:...`, `channel:...`).
    pub target_uri: String,
    pub started: Option<Instant>,
    pub finished: Option<Instant>,
}

/// Everything tracked so far.
#[derive(Debug, Default)]
pub struct Tracked {
    /// Channels by id.
    pub channels: BTreeMap<String, Seen>,
    /// Playbacks by id.
    pub playbacks: BTreeMap<String, Playback>,
    /// Channels created and not yet destroyed, counted by event.
    pub live: usize,
    /// The most channels live at once.
    pub max_live: usize,
    /// Every channel creation, in order.
    pub created_at: Vec<Instant>,
}

impl Tracked {
    fn record(&mut self, event: &Event, key: &str) {
        let (now, wall) = (Instant::now(), SystemTime::now());
        match event {
            Event::ChannelCreated(e) => {
                if let Some(seen) = channel(&mut self.channels, e.channel.id.as_str(), key) {
                    seen.created = Some(now);
                    seen.created_wall = Some(wall);
                    seen.creations += 1;
                    self.live += 1;
                    self.max_live = self.max_live.max(self.live);
                    self.created_at.push(now);
                }
            }
            Event::ChannelStateChange(e) if e.channel.state == ChannelState::Up => {
                if let Some(seen) = channel(&mut self.channels, e.channel.id.as_str(), key) {
                    seen.up.get_or_insert(now);
                }
            }
            Event::ChannelDialplan(e) => {
                if let Some(seen) = channel(&mut self.channels, e.channel.id.as_str(), key) {
                    seen.apps.push(e.dialplan_app.clone());
                }
            }
            Event::ChannelDestroyed(e) => {
                if let Some(seen) = channel(&mut self.channels, e.channel.id.as_str(), key) {
                    seen.destroyed = Some(now);
                    seen.destroyed_wall = Some(wall);
                    seen.cause = Some(e.cause);
                    self.live = self.live.saturating_sub(1);
                }
            }
            Event::PlaybackStarted(e) if e.playback.target_uri.contains(key) => {
                let playback = self.playbacks.entry(e.playback.id.to_string()).or_default();
                playback.target_uri = e.playback.target_uri.clone();
                playback.started = Some(now);
            }
            Event::PlaybackFinished(e) if e.playback.target_uri.contains(key) => {
                let playback = self.playbacks.entry(e.playback.id.to_string()).or_default();
                playback.target_uri = e.playback.target_uri.clone();
                playback.finished = Some(now);
            }
            _ => {}
        }
    }
}

/// The entry of channel `id` if it contains `key`.
fn channel<'a>(
    channels: &'a mut BTreeMap<String, Seen>,
    id: &str,
    key: &str,
) -> Option<&'a mut Seen> {
    id.contains(key)
        .then(|| channels.entry(id.to_owned()).or_default())
}

/// Tracks, on an app connection of its own, the channels and playbacks of one key.
pub struct Tracker {
    tracked: Arc<Mutex<Tracked>>,
    _connection: ari_client::AppConnection,
}

impl Tracker {
    /// Starts tracking what contains `key` (before the campaign dials).
    pub async fn start(key: impl Into<String>) -> Tracker {
        let key = key.into();
        let lab = ari_lab::Lab::get().await;
        let client = Client::builder(&lab.ari_url)
            .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
            .build()
            .unwrap();
        let connection = client
            .app_connection([ari_lab::unique_name("dialer-track")])
            .event_sources(["channel:", "bridge:"]) // not subscribeAll: asterisk/asterisk#2170
            .connect()
            .await
            .expect("the tracker connects");
        let tracked: Arc<Mutex<Tracked>> = Arc::default();
        let mut updates = connection.updates();
        let state = tracked.clone();
        tokio::spawn(async move {
            while let Some(update) = updates.next().await {
                if let Update::Event(event) = update {
                    state.lock().unwrap().record(&event, &key);
                }
            }
        });
        Tracker {
            tracked,
            _connection: connection,
        }
    }

    /// What was tracked so far (held: do not wait while holding it).
    pub fn tracked(&self) -> MutexGuard<'_, Tracked> {
        self.tracked.lock().unwrap()
    }

    /// The channels seen so far, by id.
    pub fn channels(&self) -> BTreeMap<String, Seen> {
        self.tracked().channels.clone()
    }

    /// The playbacks seen so far, by id.
    pub fn playbacks(&self) -> Vec<Playback> {
        self.tracked().playbacks.values().cloned().collect()
    }

    /// The channels whose id starts with `prefix`, in id order.
    pub fn with_prefix(&self, prefix: &str) -> Vec<Seen> {
        self.tracked()
            .channels
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(_, seen)| seen.clone())
            .collect()
    }

    /// The callee channels of the number stored as `number_id`, by attempt.
    pub fn attempts_of(&self, campaign: &Campaign, number_id: u32) -> Vec<Seen> {
        self.with_prefix(&format!("{}{number_id:012}-", campaign.callee_prefix()))
    }

    /// Waits (polling what was seen, within `within`) until `ready` holds for it.
    pub async fn until_tracked(
        &self,
        within: Duration,
        what: &str,
        ready: impl Fn(&Tracked) -> bool,
    ) {
        let reached = tokio::time::timeout(within, async {
            loop {
                if ready(&self.tracked()) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if reached.is_err() {
            panic!(
                "{what} did not happen within {within:?}: {:#?}",
                self.tracked()
            );
        }
    }

    /// Waits (within `within`) until `ready` holds for the channels seen.
    pub async fn until(
        &self,
        within: Duration,
        what: &str,
        ready: impl Fn(&BTreeMap<String, Seen>) -> bool,
    ) {
        self.until_tracked(within, what, |tracked| ready(&tracked.channels))
            .await;
    }

    /// Waits (within 5 s: the dialer has seen it already) until channels were seen and
    /// every one of them is destroyed.
    pub async fn until_all_ended(&self) {
        self.until(Duration::from_secs(5), "every channel's end", |channels| {
            !channels.is_empty() && channels.values().all(|seen| seen.destroyed.is_some())
        })
        .await;
    }
}
