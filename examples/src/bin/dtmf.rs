//! Reacts to DTMF: prints each digit a caller presses and hangs up on `#`.
//!
//! `cargo run -p ari-examples --bin dtmf -- --originate Local/dtmf@lab`
//! (the lab's `dtmf` extension presses 1 2 3 #), or route real calls to `Stasis(dtmf-demo)`.

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
    #[arg(long, default_value = "dtmf-demo")]
    app: String,
    /// Place a call into the app first (e.g. Local/dtmf@lab) and stop after it.
    #[arg(long)]
    originate: Option<String>,
}

async fn collect_digits(connection: &AppConnection) -> Result<String, ari_client::Error> {
    let mut updates = connection.updates();
    let mut digits = String::new();
    while let Some(update) = updates.next().await {
        let Update::Event(event) = update else {
            continue;
        };
        if let Event::ChannelDtmfReceived(dtmf) = event.as_ref() {
            println!(
                "{} pressed {} ({} ms)",
                dtmf.channel.id, dtmf.digit, dtmf.duration_ms
            );
            if dtmf.digit == "#" {
                connection
                    .channel(dtmf.channel.id.clone())
                    .hangup(HangupReason::Normal)
                    .await?;
                return Ok(digits);
            }
            digits.push_str(&dtmf.digit);
        }
    }
    Err(ari_client::Error::Closed)
}

#[tokio::main]
async fn main() -> ExitCode {
    ari_examples::init_logging();
    let args = Args::parse();
    let result = async {
        let client = ari_examples::client(&args.ari)?;
        let connection = client.app_connection([args.app.as_str()]).connect().await?;
        if let Some(endpoint) = &args.originate {
            connection
                .originate(Originate::new(endpoint.as_str()).formats("ulaw"))
                .await?;
        }
        loop {
            let digits = collect_digits(&connection).await?;
            println!("digits before #: {digits}");
            if args.originate.is_some() {
                return Ok::<_, ari_client::Error>(());
            }
        }
    }
    .await;
    ari_examples::finish("dtmf", result)
}
