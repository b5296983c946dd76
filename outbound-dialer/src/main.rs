//! The outbound-dialer campaign binary: parses, logs, and hands over to the library.

use std::path::Path;
use std::process::ExitCode;

use outbound_dialer::app;
use outbound_dialer::config::{Args, Mode, ParseError};

fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    let dotenv = Path::new(".env");
    let args = match Args::parse_with_dotenv(argv.clone(), Some(dotenv)) {
        Ok(args) => args,
        Err(ParseError::Clap(error)) => error.exit(),
        Err(error) => {
            eprintln!("outbound-dialer: {error}");
            return ExitCode::from(2);
        }
    };
    let config = match args.validate() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("outbound-dialer: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = outbound_dialer::logging::init(config.log_format, Some(&config.log_level)) {
        eprintln!("outbound-dialer: {}", app::error_chain(&error));
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("outbound-dialer: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match config.mode {
            Mode::Run => match app::run(config).await {
                Ok(_) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("outbound-dialer: {}", app::error_chain(&error));
                    ExitCode::FAILURE
                }
            },
            Mode::Serve => match app::serve(&config, argv, Some(dotenv.to_owned())).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!(
                        "outbound-dialer: cannot serve on {}: {error}",
                        config.listen
                    );
                    ExitCode::FAILURE
                }
            },
        }
    })
}
