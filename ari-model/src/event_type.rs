//! [`EventType`]: events by their Rust type, for code that waits for one type
//! (`wait_for::<StasisStart>()`) instead of matching on every variant of [`Event`].
//! The generator implements it for every event struct.

use crate::Event;

/// An event type of the model: its `type` on the wire and how to find it in an [`Event`].
pub trait EventType: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// The event's `type`, e.g. `"StasisStart"`.
    const KIND: &'static str;
    /// The event when `event` is of this type.
    fn from_event(event: &Event) -> Option<&Self>;
}

impl Event {
    /// The event as a `T` when it is one, e.g. `event.downcast::<StasisStart>()`.
    ///
    /// ```
    /// use ari_model::events::{StasisEnd, StasisStart};
    /// use ari_model::{Event, EventType};
    ///
    /// let text = r#"{"type":"StasisStart","application":"demo","timestamp":"2026-11-22T04:16:09.015+0000",
    ///   "args":[],"channel":{"id":"1700000000.1","name":"PJSIP/trunk-00000001","state":"Ring",
    ///   "protocol_id":"","caller":{"name":"","number":"100"},"connected":{"name":"","number":""},
    ///   "accountcode":"","dialplan":{"context":"inbound","exten":"100","priority":1,
    ///   "app_name":"Stasis","app_data":"demo"},"creationtime":"2026-11-22T04:16:08.000+0000",
    ///   "language":"en"}}"#;
    /// let event = Event::from_json_str(text)?;
    /// assert_eq!(event.kind(), StasisStart::KIND);
    /// let start = event.downcast::<StasisStart>().expect("a StasisStart");
    /// assert_eq!(start.channel.id.as_str(), "1700000000.1");
    /// assert!(event.downcast::<StasisEnd>().is_none());
    /// # Ok::<(), ari_model::EventDecodeError>(())
    /// ```
    pub fn downcast<T: EventType>(&self) -> Option<&T> {
        T::from_event(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::EventType;
    use crate::Event;
    use crate::generated::events::for_each_event_type;

    /// Every captured event with the `type` Asterisk wrote, read from the JSON itself.
    fn fixtures() -> Vec<(String, Event)> {
        // Read at run time (cargo sets it) so a shared target directory never points at
        // another clone's files.
        let path = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap())
            .join("tests/fixtures/events.jsonl");
        let text = std::fs::read_to_string(&path).unwrap();
        text.lines()
            .map(|line| {
                let raw: serde_json::Value = serde_json::from_str(line).unwrap();
                let wire = raw["type"].as_str().unwrap().to_owned();
                (wire, Event::from_json_str(line).unwrap())
            })
            .collect()
    }

    /// Checks `T` against every fixture; returns its KIND and how many fixtures it matched.
    fn check<T: EventType>(fixtures: &[(String, Event)]) -> (&'static str, usize) {
        let mut matched = 0;
        for (wire, event) in fixtures {
            match event.downcast::<T>() {
                Some(found) => {
                    assert_eq!(wire, T::KIND, "downcast to {} took a {wire}", T::KIND);
                    assert_eq!(event.kind(), T::KIND);
                    assert!(std::ptr::eq(found, T::from_event(event).unwrap()));
                    matched += 1;
                }
                None => assert_ne!(wire, T::KIND, "a {wire} did not downcast to its type"),
            }
        }
        let unknown = Event::Unknown {
            kind: T::KIND.to_owned(),
            raw: serde_json::json!({ "type": T::KIND }),
        };
        assert!(unknown.downcast::<T>().is_none(), "{}", T::KIND);
        (T::KIND, matched)
    }

    macro_rules! check_all {
        ($($name:ident),* $(,)?) => {
            |fixtures: &[(String, Event)]| vec![$(check::<crate::events::$name>(fixtures)),*]
        };
    }

    #[test]
    fn every_event_type_downcasts_its_own_events_and_no_other() {
        let fixtures = fixtures();
        let check_every_type = for_each_event_type!(check_all);
        let results = check_every_type(&fixtures);

        let mut kinds: Vec<&str> = results.iter().map(|(kind, _)| *kind).collect();
        kinds.sort_unstable();
        let mut known = Event::KNOWN_KINDS.to_vec();
        known.sort_unstable();
        assert_eq!(kinds, known, "the KINDs are exactly Event::KNOWN_KINDS");

        // Each fixture downcast to exactly one type: the one named by its `type`.
        let matched: usize = results.iter().map(|(_, n)| n).sum();
        assert_eq!(matched, fixtures.len());
        let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
        for (wire, _) in &fixtures {
            *by_kind.entry(wire.as_str()).or_default() += 1;
        }
        for (kind, count) in results {
            assert_eq!(by_kind.get(kind).copied().unwrap_or(0), count, "{kind}");
        }
        assert!(
            by_kind.len() >= 25,
            "fixtures of only {} types",
            by_kind.len()
        );
    }
}
