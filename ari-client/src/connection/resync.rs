//! Re-reading state after a reconnect: Asterisk does not queue events for a
//! disconnected client, so this is how a program (and the handles) learn what is left.

use std::collections::HashSet;

use ari_model::operations::{applications, bridges, channels, playbacks, recordings};
use ari_model::{PlaybackId, RecordingName};

use super::update::Snapshot;
use crate::client::Client;
use crate::error::Error;
use crate::router::Object;

/// Ids of every object that still exists, for ending the handles of those that do not.
#[derive(Debug, Default)]
pub(crate) struct Live {
    pub(crate) channels: HashSet<String>,
    pub(crate) bridges: HashSet<String>,
    pub(crate) playbacks: HashSet<String>,
    pub(crate) recordings: HashSet<String>,
}

/// Reads the apps, every channel and bridge (two list calls, whatever their number), and
/// the playbacks and recordings that handles follow.
///
/// Liveness is judged on all of Asterisk's channels, not only the apps' own: a channel
/// originated into an app belongs to it only once answered, and its handle must not end
/// while it rings.
pub(crate) async fn resync(
    client: &Client,
    apps: &[String],
    followed_playbacks: Vec<PlaybackId>,
    followed_recordings: Vec<RecordingName>,
) -> Result<(Snapshot, Live), Error> {
    let mut snapshot = Snapshot::default();
    for app in apps {
        snapshot.applications.push(
            client
                .applications()
                .get(applications::Get::new(app.as_str()))
                .await?,
        );
    }
    let all_channels = client.channels().list(channels::List::new()).await?;
    let all_bridges = client.bridges().list(bridges::List::new()).await?;
    let mut live = Live {
        channels: all_channels.iter().map(|c| c.id.to_string()).collect(),
        bridges: all_bridges.iter().map(|b| b.id.to_string()).collect(),
        ..Live::default()
    };
    let owned_channels: HashSet<&str> = snapshot
        .applications
        .iter()
        .flat_map(|a| a.channel_ids.iter().map(|id| id.as_str()))
        .collect();
    let owned_bridges: HashSet<&str> = snapshot
        .applications
        .iter()
        .flat_map(|a| a.bridge_ids.iter().map(|id| id.as_str()))
        .collect();
    let channels: Vec<_> = all_channels
        .into_iter()
        .filter(|c| owned_channels.contains(c.id.as_str()))
        .collect();
    let bridges: Vec<_> = all_bridges
        .into_iter()
        .filter(|b| owned_bridges.contains(b.id.as_str()))
        .collect();
    snapshot.channels = channels;
    snapshot.bridges = bridges;
    for id in followed_playbacks {
        match client.playbacks().get(playbacks::Get::new(id)).await {
            Ok(playback) => {
                live.playbacks.insert(playback.id.to_string());
                snapshot.playbacks.push(playback);
            }
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    for name in followed_recordings {
        match client
            .recordings()
            .get_live(recordings::GetLive::new(name))
            .await
        {
            Ok(recording) => {
                live.recordings.insert(recording.name.to_string());
                snapshot.recordings.push(recording);
            }
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error),
        }
    }
    Ok((snapshot, live))
}

/// Of the objects a resync found absent from the lists, those that really are gone:
/// each is asked for once, so one created after the lists were read is not ended.
pub(crate) async fn confirm_gone(
    client: &Client,
    absent: Vec<Object>,
) -> Result<Vec<Object>, Error> {
    let mut gone = Vec::new();
    for object in absent {
        let found = match &object {
            Object::Channel(id) => client
                .channels()
                .get(channels::Get::new(id.clone()))
                .await
                .map(drop),
            Object::Bridge(id) => client
                .bridges()
                .get(bridges::Get::new(id.clone()))
                .await
                .map(drop),
            Object::Playback(id) => client
                .playbacks()
                .get(playbacks::Get::new(id.clone()))
                .await
                .map(drop),
            Object::Recording(name) => client
                .recordings()
                .get_live(recordings::GetLive::new(name.clone()))
                .await
                .map(drop),
        };
        match found {
            Ok(()) => {}
            Err(error) if error.is_not_found() => gone.push(object),
            Err(error) => return Err(error),
        }
    }
    Ok(gone)
}
