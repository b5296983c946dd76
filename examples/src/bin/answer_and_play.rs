//! A Stasis app that answers each call and plays a sound, then hangs up.
//!
//! `cargo run -p ari-examples --bin answer_and_play -- --app hello`
//! then route calls to `Stasis(hello)` — or let it call itself:
//! `... -- --originate Local/answer@lab --calls 1`.

use std::process::ExitCode;

use ari_client::cli::AriArgs;
use ari_client::model::Event;
use ari_client::model::models::HangupReason;
use ari_client::model::operations::channels::Originate;
use ari_client::{AppConnection, Update};
use clap::Parser;
use futures::StreamExt as _;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    ari: AriArgs,
    /// Stasis application name.
    #[arg(long, default_value = "hello")]
    app: String,
    /// Sound to play.
    #[arg(long, default_value = "sound:hello-world")]
    media: String,
    /// Stop after this many calls (0: run forever).
    #[arg(long, default_value = "0")]
    calls: u32,
    /// Place a call into the app first (a dial string such as Local/answer@lab).
    #[arg(long)]
    originate: Option<String>,
}

async fn serve(
    connection: AppConnection,
    channel_id: ari_client::model::ChannelId,
    media: String,
) -> Result<(), ari_client::Error> {
    let channel = connection.channel(channel_id);
    channel.answer().await?;
    let mut playback = channel.play(&media).await?;
    // A playback of a missing file or a hung-up caller ends the wait with an error; a
    // stuck one, the deadline.
    let finished = tokio::time::timeout(std::time::Duration::from_secs(300), playback.finished())
        .await
        .map_err(|_| ari_client::Error::Timeout {
            operation: format!("playback of {media}"),
            timeout: std::time::Duration::from_secs(300),
        })??;
    println!("played {media} to {}: {}", channel.id(), finished.state);
    channel.hangup(HangupReason::Normal).await
}

#[tokio::main]
async fn main() -> ExitCode {
    ari_examples::init_logging();
    let args = Args::parse();
    let result = async {
        let client = ari_examples::client(&args.ari)?;
        let connection = client.app_connection([args.app.as_str()]).connect().await?;
        let mut updates = connection.updates();
        if let Some(endpoint) = &args.originate {
            connection
                .originate(Originate::new(endpoint.as_str()).formats("ulaw"))
                .await?;
        }
        println!("waiting for calls to Stasis({})", args.app);
        let mut served = 0;
        let mut calls = Vec::new();
        while let Some(update) = updates.next().await {
            if let Update::Event(event) = update {
                if let Event::StasisStart(start) = event.as_ref() {
                    println!(
                        "call {} from {}",
                        start.channel.id, start.channel.caller.number
                    );
                    calls.push(tokio::spawn(serve(
                        connection.clone(),
                        start.channel.id.clone(),
                        args.media.clone(),
                    )));
                    served += 1;
                    if args.calls != 0 && served >= args.calls {
                        break;
                    }
                }
            }
        }
        for call in calls {
            call.await
                .map_err(|e| ari_client::Error::Config(e.to_string()))??;
        }
        Ok::<_, ari_client::Error>(())
    }
    .await;
    ari_examples::finish("answer_and_play", result)
}
