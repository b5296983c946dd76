//! Waiting on an object's stream for a typed event or a condition, with or without a
//! deadline. A wait that cannot succeed any more (the object ended, the connection
//! closed, the deadline passed) returns [`Error::NotReceived`] saying why.

use std::sync::Arc;
use std::time::Duration;

use ari_model::{Event, EventType};

use super::ObjectEvents;
use crate::connection::Update;
use crate::error::{Error, StreamEnd, WaitFailure};

const A_MATCHING_EVENT: &str = "an event matching the condition";

impl ObjectEvents {
    /// The next event of type `T` (e.g. `wait_for::<StasisStart>()`), skipping others.
    ///
    /// # Errors
    /// [`Error::NotReceived`] when the stream ends first: the object's last event came
    /// (a `ChannelDestroyed` before the awaited `StasisStart`, say), the object was gone
    /// after a reconnect, or the connection closed; or when updates of the object were
    /// dropped because the program read too slowly ([`WaitFailure::Lagged`]).
    pub async fn wait_for<T: EventType>(&mut self) -> Result<T, Error> {
        let event = self
            .wait_until_named(T::KIND, |event| T::from_event(event).is_some())
            .await?;
        T::from_event(&event)
            .cloned()
            .ok_or_else(|| self.not_received(T::KIND, WaitFailure::Ended(StreamEnd::Closed)))
    }

    /// The next event for which `condition` holds, skipping others.
    ///
    /// # Errors
    /// As [`ObjectEvents::wait_for`].
    pub async fn wait_until(
        &mut self,
        condition: impl FnMut(&Event) -> bool,
    ) -> Result<Arc<Event>, Error> {
        self.wait_until_named(A_MATCHING_EVENT, condition).await
    }

    /// The same waits, given up after `deadline` with
    /// [`WaitFailure::Deadline`]: `events.within(Duration::from_secs(5)).wait_for::<StasisStart>()`.
    pub fn within(&mut self, deadline: Duration) -> Within<'_> {
        Within {
            events: self,
            deadline,
        }
    }

    async fn wait_until_named(
        &mut self,
        waited_for: &str,
        mut condition: impl FnMut(&Event) -> bool,
    ) -> Result<Arc<Event>, Error> {
        while let Some(update) = std::future::poll_fn(|cx| self.poll_update(cx)).await {
            match update {
                Update::Event(event) if condition(&event) => return Ok(event),
                Update::Lagged { missed } => {
                    return Err(self.not_received(waited_for, WaitFailure::Lagged(missed)));
                }
                _ => {}
            }
        }
        let end = self.ended().unwrap_or(StreamEnd::Closed);
        Err(self.not_received(waited_for, WaitFailure::Ended(end)))
    }

    fn not_received(&self, waited_for: &str, failure: WaitFailure) -> Error {
        Error::NotReceived {
            object: self.object.to_string(),
            waited_for: waited_for.to_owned(),
            failure,
        }
    }
}

/// Waits with a deadline; see [`ObjectEvents::within`].
#[derive(Debug)]
#[must_use = "a deadline does nothing until a wait is called on it"]
pub struct Within<'a> {
    events: &'a mut ObjectEvents,
    deadline: Duration,
}

impl Within<'_> {
    /// [`ObjectEvents::wait_for`], given up after the deadline.
    ///
    /// # Errors
    /// As [`ObjectEvents::wait_for`], and [`WaitFailure::Deadline`].
    pub async fn wait_for<T: EventType>(self) -> Result<T, Error> {
        let deadline = self.deadline;
        match tokio::time::timeout(deadline, self.events.wait_for::<T>()).await {
            Ok(result) => result,
            Err(_) => Err(self
                .events
                .not_received(T::KIND, WaitFailure::Deadline(deadline))),
        }
    }

    /// [`ObjectEvents::wait_until`], given up after the deadline.
    ///
    /// # Errors
    /// As [`ObjectEvents::wait_until`], and [`WaitFailure::Deadline`].
    pub async fn wait_until(
        self,
        condition: impl FnMut(&Event) -> bool,
    ) -> Result<Arc<Event>, Error> {
        let deadline = self.deadline;
        match tokio::time::timeout(deadline, self.events.wait_until(condition)).await {
            Ok(result) => result,
            Err(_) => Err(self
                .events
                .not_received(A_MATCHING_EVENT, WaitFailure::Deadline(deadline))),
        }
    }
}
