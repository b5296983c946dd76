//! The voiceai-gateway service binary.

use std::process::ExitCode;

use clap::Parser as _;
use voiceai_gateway::config::Args;

fn main() -> ExitCode {
    match Args::parse().validate() {
        Ok(config) => {
            println!("voiceai-gateway: configuration is valid: {config:?}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("voiceai-gateway: {error}");
            ExitCode::from(2)
        }
    }
}
