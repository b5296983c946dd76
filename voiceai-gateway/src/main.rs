//! The voiceai-gateway service binary: parse, validate, log, run.

use std::path::Path;
use std::process::ExitCode;

use voiceai_gateway::config::{Args, DOTENV_FILE, ParseError};

fn main() -> ExitCode {
    let args = match Args::parse_with_dotenv(std::env::args_os(), Some(Path::new(DOTENV_FILE))) {
        Ok(args) => args,
        Err(ParseError::Clap(error)) => error.exit(),
        Err(error) => {
            eprintln!("voiceai-gateway: {error}");
            return ExitCode::from(2);
        }
    };
    let config = match args.validate() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("voiceai-gateway: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = voiceai_gateway::logging::init_with_directives(
        config.log.level,
        config.log.format,
        config.log.directives.as_deref(),
    ) {
        eprintln!("voiceai-gateway: {error}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("voiceai-gateway: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(voiceai_gateway::app::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "voiceai-gateway failed");
            eprintln!("voiceai-gateway: {error}");
            ExitCode::FAILURE
        }
    }
}
