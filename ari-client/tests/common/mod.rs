//! Shared set-up of the client's lab tests.
#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use ari_client::model::events::StasisStart;
use ari_client::{AppConnection, Client, Credentials, Update};
use ari_lab::Lab;
use futures::StreamExt as _;

pub const WAIT: Duration = Duration::from_secs(10);

/// A client for the lab (fails the test, with how to start it, when the lab is down).
pub async fn client() -> Client {
    let lab = Lab::get().await;
    Client::builder(&lab.ari_url)
        .credentials(Credentials::new(lab.username.clone(), lab.password.clone()))
        .build()
        .expect("client for the lab")
}

/// A connected app of its own for this test.
pub async fn app(prefix: &str) -> AppConnection {
    let client = client().await;
    client
        .app_connection([ari_lab::unique_name(prefix)])
        .connect()
        .await
        .expect("events connection")
}

/// A Local channel (`Local/<exten>@lab`) originated into `connection`'s app, once it
/// has entered Stasis.
pub async fn local_call(connection: &AppConnection, exten: &str) -> ari_client::ChannelHandle {
    let params =
        ari_client::model::operations::channels::Originate::new(format!("Local/{exten}@lab"))
            .formats("ulaw");
    let mut channel = connection.originate(params).await.expect("originate");
    channel
        .events
        .within(WAIT)
        .wait_for::<StasisStart>()
        .await
        .expect("StasisStart of the Local channel");
    channel
}

/// The next update matching `pick`, within `WAIT`.
pub async fn next_matching<T>(
    updates: &mut (impl futures::Stream<Item = Update> + Unpin),
    mut pick: impl FnMut(&Update) -> Option<T>,
) -> T {
    tokio::time::timeout(WAIT, async {
        while let Some(update) = updates.next().await {
            if let Some(found) = pick(&update) {
                return found;
            }
        }
        panic!("the update stream ended before the update awaited");
    })
    .await
    .expect("the update awaited did not come within 10 s")
}
