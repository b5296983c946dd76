//! `ari-model-codegen`: generates `ari-model/src/generated/` from Asterisk's api-docs.
//!
//! Its input is `ari-model/api-docs/`: one directory per Asterisk release and
//! `compat.json`; the code is generated from the release `compat.json` names as primary.
//!
//! - no flags: regenerate the files;
//! - `--check`: exit 1 when the checked-in files differ from what would be generated;
//! - `--derive-compat [DIR]`: rebuild `compat.json` from the `DIR/<release>/` specs
//!   (default: the vendored releases); with `--check`, only check that it is up to date.
//!
//! Every mode prints `coverage: operations X/Y models X/Y events X/Y` for the primary spec.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ari_model_codegen::compat::Compat;
use clap::Parser;

/// Generate ari-model from Asterisk's ARI api-docs.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory with compat.json and a directory per release (resources.json and the
    /// resource files); the generator reads the release compat.json names as primary.
    #[arg(long, env = "ARI_CODEGEN_API_DOCS", default_value_os_t = model_dir().join("api-docs"))]
    api_docs: PathBuf,
    /// Directory the generated model files go to.
    #[arg(long, env = "ARI_CODEGEN_OUT", default_value_os_t = model_dir().join("src/generated"))]
    out: PathBuf,
    /// Directory the generated client files go to.
    #[arg(long, env = "ARI_CODEGEN_CLIENT_OUT", default_value_os_t = model_dir().join("../ari-client/src/generated"))]
    client_out: PathBuf,
    /// Only check that the checked-in files are what the generator produces.
    #[arg(long)]
    check: bool,
    /// Rebuild compat.json from the specs in DIR/<release>/ (default: the --api-docs
    /// directory, where the releases are vendored).
    #[arg(long, value_name = "DIR")]
    derive_compat: Option<Option<PathBuf>>,
    /// With --derive-compat: the release the code is generated from (default: the one the
    /// current compat.json names).
    #[arg(long)]
    primary: Option<String>,
}

/// `ari-model/`, found from the manifest directory cargo gives at run time (a binary
/// built in a target directory shared between clones must not write to another clone).
fn model_dir() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from);
    manifest
        .parent()
        .map_or_else(|| PathBuf::from("ari-model"), Path::to_path_buf)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("ari-model-codegen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<ExitCode, String> {
    if let Some(dir) = &args.derive_compat {
        let dir = dir.as_ref().unwrap_or(&args.api_docs);
        let path = args.api_docs.join("compat.json");
        let primary = match &args.primary {
            Some(primary) => primary.clone(),
            None => {
                Compat::load(&path)
                    .map_err(|e| format!("{e} (or give --primary)"))?
                    .primary
            }
        };
        let compat = Compat::derive(dir, &primary).map_err(|e| e.to_string())?;
        let summary = format!(
            "{} releases, {} models, {} operations",
            compat.versions.len(),
            compat.models.len(),
            compat.operations.len()
        );
        let json = compat.to_json();
        if !args.check {
            std::fs::write(&path, &json)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            println!("wrote {} ({summary})", path.display());
        } else if std::fs::read_to_string(&path).ok().as_deref() == Some(json.as_str()) {
            println!("{} is up to date ({summary})", path.display());
        } else {
            eprintln!(
                "ari-model-codegen: {} differs from what {} derives: run `cargo run -p ari-model-codegen -- --derive-compat` and commit the result",
                path.display(),
                dir.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    let generated = ari_model_codegen::generate_formatted(&args.api_docs)?;
    println!("{}", generated.coverage);
    println!(
        "client: {} operations as methods (the events WebSocket is AppConnection)",
        generated.client_operations
    );
    let targets = [
        (&args.out, &generated.model),
        (&args.client_out, &generated.client),
    ];
    if args.check {
        let mut differing = Vec::new();
        for (dir, files) in targets {
            differing.extend(
                out_of_date(dir, files)
                    .into_iter()
                    .map(|name| format!("{}", dir.join(name).display())),
            );
        }
        if differing.is_empty() {
            println!("generated code is up to date");
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "ari-model-codegen: generated code is out of date: {}\nrun `cargo run -p ari-model-codegen` and commit the result",
            differing.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    for (dir, files) in targets {
        write_dir(dir, files)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn existing_sources(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.ends_with(".rs"))
                .collect()
        })
        .unwrap_or_default()
}

/// Files of `dir` that differ from `files`, or that are not generated any more.
fn out_of_date(dir: &Path, files: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = files
        .iter()
        .filter(|(name, source)| {
            std::fs::read_to_string(dir.join(name)).ok().as_deref() != Some(source.as_str())
        })
        .map(|(name, _)| name.clone())
        .collect();
    names.extend(
        existing_sources(dir)
            .into_iter()
            .filter(|name| !files.iter().any(|(f, _)| f == name)),
    );
    names
}

fn write_dir(dir: &Path, files: &[(String, String)]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for name in existing_sources(dir) {
        if !files.iter().any(|(f, _)| *f == name) {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
    for (name, source) in files {
        let path = dir.join(name);
        std::fs::write(&path, source)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    println!("wrote {} files to {}", files.len(), dir.display());
    Ok(())
}
