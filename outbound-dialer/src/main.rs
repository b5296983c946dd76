//! The outbound-dialer campaign binary.

use std::process::ExitCode;

use clap::Parser as _;
use outbound_dialer::config::Args;

fn main() -> ExitCode {
    match Args::parse().validate() {
        Ok(config) => {
            println!("outbound-dialer: configuration is valid: {config:?}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("outbound-dialer: {error}");
            ExitCode::from(2)
        }
    }
}
