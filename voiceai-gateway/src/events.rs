//! Live call events for monitoring front ends (`/ws/frontend`, `/ws/monitor`).
//!
//! Each event is serialised once, in the seed's shape (`{"type":"call_started","callId":
//! ...,"timestamp":...}`), and shared by every subscriber. The bus is a bounded broadcast:
//! a subscriber that falls behind loses events (and is dropped by the WebSocket layer),
//! while the calls that publish never wait on it.

use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;
use tokio::sync::broadcast;

/// Events kept for subscribers that read slowly, before they start losing them.
pub const BUS_CAPACITY: usize = 4096;

/// What an event is about, for filtering without parsing its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// A call arrived (or an originated call was placed).
    CallStarted,
    /// The call was answered.
    CallAnswered,
    /// The call is over.
    CallEnded,
    /// The caller pressed a key.
    Dtmf,
    /// The backend sent a transcript (forwarded as it came).
    Transcript,
    /// The backend connection changed state.
    BackendState,
    /// A call's media counters (every second, for clients that joined the call).
    MediaStats,
    /// The gateway's counters (every second, for `/ws/monitor`).
    Stats,
}

impl EventKind {
    /// Whether the event is a call's detail, sent only to clients that joined that call
    /// (and to `/ws/monitor`).
    pub const fn is_detail(self) -> bool {
        matches!(self, Self::MediaStats)
    }
}

/// One event, serialised.
#[derive(Debug, Clone)]
pub struct MonitorEvent {
    /// What it is about.
    pub kind: EventKind,
    /// The call it belongs to (`None` for gateway-wide stats).
    pub call_id: Option<Arc<str>>,
    /// The JSON text sent to clients.
    pub json: Arc<str>,
}

/// The broadcast of [`MonitorEvent`]s.
#[derive(Debug, Clone)]
pub struct EventBus {
    sender: broadcast::Sender<Arc<MonitorEvent>>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::new(BUS_CAPACITY)
    }
}

impl EventBus {
    /// A bus that keeps `capacity` events for slow subscribers.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }

    /// A new subscriber, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<MonitorEvent>> {
        self.sender.subscribe()
    }

    /// How many subscribers there are.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Publishes `body` (a struct whose fields follow the seed's camelCase names) as an
    /// event of `kind` with `"type"` and `"timestamp"` added. Never waits.
    pub fn publish<B: Serialize>(&self, kind: EventKind, call_id: Option<&str>, body: &B) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        #[derive(Serialize)]
        struct Envelope<'a, B> {
            #[serde(rename = "type")]
            kind: &'static str,
            #[serde(flatten)]
            body: &'a B,
            timestamp: String,
        }
        let envelope = Envelope {
            kind: kind_name(kind),
            body,
            timestamp: timestamp(SystemTime::now()),
        };
        match serde_json::to_string(&envelope) {
            Ok(json) => {
                let event = MonitorEvent {
                    kind,
                    call_id: call_id.map(Arc::from),
                    json: Arc::from(json),
                };
                // No subscriber left is not an error: nobody is watching.
                let _ = self.sender.send(Arc::new(event));
            }
            Err(error) => tracing::warn!(%error, "monitor event not serialisable"),
        }
    }
}

/// The `type` of each kind, as the seed named them.
pub const fn kind_name(kind: EventKind) -> &'static str {
    match kind {
        EventKind::CallStarted => "call_started",
        EventKind::CallAnswered => "call_answered",
        EventKind::CallEnded => "call_ended",
        EventKind::Dtmf => "dtmf",
        EventKind::Transcript => "transcript",
        EventKind::BackendState => "backend_state",
        EventKind::MediaStats => "media_stats",
        EventKind::Stats => "stats",
    }
}

/// RFC 3339 UTC with milliseconds, as JavaScript's `Date.toISOString()` writes it.
pub fn timestamp(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Started<'a> {
        call_id: &'a str,
        caller_number: &'a str,
    }

    #[tokio::test]
    async fn events_carry_type_fields_and_timestamp() {
        let bus = EventBus::new(8);
        let mut subscriber = bus.subscribe();
        bus.publish(
            EventKind::CallStarted,
            Some("CA1"),
            &Started {
                call_id: "CA1",
                caller_number: "+15550001",
            },
        );
        let event = subscriber.recv().await.unwrap();
        assert_eq!(event.kind, EventKind::CallStarted);
        assert_eq!(event.call_id.as_deref(), Some("CA1"));
        let json: serde_json::Value = serde_json::from_str(&event.json).unwrap();
        assert_eq!(json["type"], "call_started");
        assert_eq!(json["callId"], "CA1");
        assert_eq!(json["callerNumber"], "+15550001");
        let stamp = json["timestamp"].as_str().unwrap();
        assert!(stamp.ends_with('Z') && stamp.len() == 24, "{stamp}");
    }

    #[test]
    fn publishing_without_subscribers_is_free_and_silent() {
        let bus = EventBus::new(1);
        bus.publish(
            EventKind::Stats,
            None,
            &serde_json::json!({"activeCalls": 0}),
        );
        assert_eq!(bus.subscribers(), 0);
    }

    #[tokio::test]
    async fn a_slow_subscriber_lags_and_the_publisher_never_waits() {
        let bus = EventBus::new(2);
        let mut slow = bus.subscribe();
        for n in 0..10 {
            bus.publish(EventKind::Stats, None, &serde_json::json!({ "n": n }));
        }
        assert!(matches!(
            slow.recv().await,
            Err(broadcast::error::RecvError::Lagged(8))
        ));
    }
}
