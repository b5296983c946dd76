//! `ari-model-codegen`: generates `ari-model/src/generated/` from Asterisk's api-docs.

use std::path::PathBuf;
use std::process::ExitCode;

use ari_model_codegen::spec;
use clap::Parser;

/// Generate ari-model from Asterisk's ARI api-docs.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory with resources.json and the resource files (swagger 1.1).
    #[arg(long, env = "ARI_CODEGEN_API_DOCS", default_value_os_t = default_api_docs())]
    api_docs: PathBuf,
}

fn default_api_docs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../api-docs")
}

fn main() -> ExitCode {
    let args = Args::parse();
    match spec::Spec::load(&args.api_docs) {
        Ok(spec) => {
            println!(
                "api-docs {}: ARI {}, {} operations, {} models",
                args.api_docs.display(),
                spec.api_version,
                spec.operations().count(),
                spec.models().len()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ari-model-codegen: {error}");
            ExitCode::FAILURE
        }
    }
}
