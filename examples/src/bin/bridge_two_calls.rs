//! Originates two channels into an app and bridges them for a few seconds.
//!
//! `cargo run -p ari-examples --bin bridge_two_calls -- --first Local/echo@lab --second Local/tone@lab`

use std::process::ExitCode;
use std::time::Duration;

use ari_client::cli::AriArgs;
use ari_client::model::events::StasisStart;
use ari_client::model::models::HangupReason;
use ari_client::model::operations::{bridges, channels};
use clap::Parser;

/// How long each party may take to answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(30);

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    ari: AriArgs,
    /// Stasis application name.
    #[arg(long, default_value = "bridge-demo")]
    app: String,
    /// First party's dial string.
    #[arg(long, default_value = "Local/echo@lab")]
    first: String,
    /// Second party's dial string.
    #[arg(long, default_value = "Local/tone@lab")]
    second: String,
    /// How long to keep them bridged, in seconds.
    #[arg(long, default_value = "2")]
    seconds: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    ari_examples::init_logging();
    let args = Args::parse();
    let result = async {
        let client = ari_examples::client(&args.ari)?;
        let connection = client.app_connection([args.app.as_str()]).connect().await?;
        let mut a = connection
            .originate(channels::Originate::new(args.first.as_str()).formats("ulaw"))
            .await?;
        let mut b = connection
            .originate(channels::Originate::new(args.second.as_str()).formats("ulaw"))
            .await?;
        // Each enters the app when answered; a call that fails ends the wait with why.
        a.events
            .within(ANSWER_WITHIN)
            .wait_for::<StasisStart>()
            .await?;
        b.events
            .within(ANSWER_WITHIN)
            .wait_for::<StasisStart>()
            .await?;
        let bridge = connection
            .create_bridge(bridges::Create::new().r#type("mixing"))
            .await?;
        bridge
            .add_channels([a.id().clone(), b.id().clone()])
            .await?;
        let members = bridge.get().await?.channels;
        println!(
            "bridge {} holds {} channels: {members:?}",
            bridge.id(),
            members.len()
        );
        tokio::time::sleep(Duration::from_secs(args.seconds)).await;
        a.hangup(HangupReason::Normal).await?;
        b.hangup(HangupReason::Normal).await?;
        bridge.destroy().await?;
        println!("bridged {} and {} for {} s", a.id(), b.id(), args.seconds);
        Ok::<_, ari_client::Error>(())
    }
    .await;
    ari_examples::finish("bridge_two_calls", result)
}
