//! Claiming the channels `StasisBroadcast` offers (`CallBroadcast`; Asterisk 20.17,
//! 22.7, 23.1 and later): several programs, each with its own app, see the same call and
//! the first claim wins. The winner's app then gets the channel's `StasisStart` (offered
//! by [`AppConnection::incoming_channels`] like any inbound call); the losers' claims
//! come back [`Claim::Taken`].

use ari_model::events::CallBroadcast;
use ari_model::ids::ChannelId;
use ari_model::operations::events::ClaimChannel;

use super::AppConnection;
use crate::error::Error;

/// What a claim of a broadcast channel came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Claim {
    /// This app won: the channel enters Stasis for it (its `StasisStart` follows, and
    /// may arrive before the claim's answer does).
    Won,
    /// Another app claimed the channel first (Asterisk answered 409).
    Taken,
    /// The channel is not being broadcast (any more): it hung up, its broadcast timed
    /// out, or it never was one (Asterisk answered 404).
    NotOffered,
}

impl Claim {
    /// Whether this app won the channel.
    pub fn won(self) -> bool {
        self == Claim::Won
    }
}

impl AppConnection {
    /// Claims the broadcast channel `channel_id` for `app`, one of this connection's apps
    /// (`POST /events/claim`). Losing is an answer, not an error: [`Claim::Taken`] or
    /// [`Claim::NotOffered`].
    ///
    /// # Errors
    /// Any other failure of the request (transport, time-out, another status).
    pub async fn claim(
        &self,
        channel_id: impl Into<ChannelId>,
        app: impl Into<String>,
    ) -> Result<Claim, Error> {
        let params = ClaimChannel::new(channel_id, app);
        match self.client().events().claim_channel(params).await {
            Ok(()) => Ok(Claim::Won),
            Err(error) if error.is_conflict() => Ok(Claim::Taken),
            Err(error) if error.is_not_found() => Ok(Claim::NotOffered),
            Err(error) => Err(error),
        }
    }

    /// Claims the channel `broadcast` offers, for the app that received it.
    ///
    /// # Errors
    /// As [`AppConnection::claim`].
    pub async fn claim_broadcast(&self, broadcast: &CallBroadcast) -> Result<Claim, Error> {
        self.claim(broadcast.channel.id.clone(), broadcast.application.as_str())
            .await
    }
}
