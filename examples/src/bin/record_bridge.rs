//! Records a bridge with a call in it, then downloads the recording to a file.
//!
//! `cargo run -p ari-examples --bin record_bridge -- --out /tmp/call.wav`

use std::path::PathBuf;
use std::process::ExitCode;

use ari_client::cli::AriArgs;
use std::time::Duration;

use ari_client::RecordOptions;
use ari_client::model::events::StasisStart;
use ari_client::model::models::{HangupReason, IfExists};
use ari_client::model::operations::{bridges, channels};
use clap::Parser;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    ari: AriArgs,
    /// Stasis application name.
    #[arg(long, default_value = "record-demo")]
    app: String,
    /// The call to record (a dial string).
    #[arg(long, default_value = "Local/tone@lab")]
    call: String,
    /// Seconds to record.
    #[arg(long, default_value = "2")]
    seconds: i64,
    /// Where to write the recording.
    #[arg(long, default_value = "recording.wav")]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> ExitCode {
    ari_examples::init_logging();
    let args = Args::parse();
    let result = async {
        let client = ari_examples::client(&args.ari)?;
        let connection = client.app_connection([args.app.as_str()]).connect().await?;
        let mut call = connection
            .originate(channels::Originate::new(args.call.as_str()).formats("ulaw"))
            .await?;
        call.events
            .within(Duration::from_secs(30))
            .wait_for::<StasisStart>()
            .await?;
        let bridge = connection
            .create_bridge(bridges::Create::new().r#type("mixing"))
            .await?;
        bridge.add_channels([call.id().clone()]).await?;
        let name = ari_client::new_id("demo-recording");
        let mut recording = bridge
            .record(
                &name,
                "wav",
                RecordOptions::default()
                    .max_duration_seconds(args.seconds)
                    .if_exists(IfExists::Fail),
            )
            .await?;
        // The recording stops by itself after `seconds`; give Asterisk a margin.
        let within = Duration::from_secs(u64::try_from(args.seconds).unwrap_or(0) + 30);
        let finished = tokio::time::timeout(within, recording.finished())
            .await
            .map_err(|_| ari_client::Error::Timeout {
                operation: "recording".into(),
                timeout: within,
            })??;
        println!(
            "recorded {} ({}, {:?} s)",
            finished.name, finished.state, finished.duration
        );
        let mut file = tokio::fs::File::create(&args.out).await.map_err(|source| {
            ari_client::Error::Write {
                operation: "create the output file".into(),
                source,
            }
        })?;
        let bytes = recording.download(&mut file).await?;
        println!("wrote {bytes} bytes to {}", args.out.display());
        recording.delete_stored().await?;
        call.hangup(HangupReason::Normal).await?;
        bridge.destroy().await?;
        Ok::<_, ari_client::Error>(())
    }
    .await;
    ari_examples::finish("record_bridge", result)
}
