//! The generator's output for a small two-release sample spec
//! (`tests/sample/releases/`) is exactly the committed snapshot (`tests/sample/expected/`).
//! After an intended change: `UPDATE_SNAPSHOTS=1 cargo test -p ari-model-codegen --test snapshot`.

use std::path::PathBuf;

use ari_model_codegen::compat::Compat;
use ari_model_codegen::format::rustfmt;
use ari_model_codegen::generate::generate;
use ari_model_codegen::spec::Spec;

fn sample() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap()).join("tests/sample")
}

#[test]
fn sample_spec_generates_the_snapshot() {
    let compat = Compat::derive(&sample().join("releases"), "2.0.0").unwrap();
    let spec = Spec::load(&sample().join("releases/2.0.0")).unwrap();
    let output = generate(&spec, &compat).unwrap();
    assert_eq!(
        output.coverage.to_string(),
        "coverage: operations 5/5 models 5/5 events 2/2"
    );

    let expected_dir = sample().join("expected");
    let update = std::env::var_os("UPDATE_SNAPSHOTS").is_some();
    let mut mismatches = Vec::new();
    let client = output
        .client_files
        .into_iter()
        .map(|(name, source)| (format!("client_{name}"), source));
    for (name, source) in output.files.into_iter().chain(client) {
        let formatted = rustfmt(&name, &source).unwrap();
        let path = expected_dir.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&expected_dir).unwrap();
            std::fs::write(&path, &formatted).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(formatted.as_str()) {
            mismatches.push(name);
        }
    }
    assert!(
        mismatches.is_empty(),
        "generated {mismatches:?} differ from tests/sample/expected (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

#[test]
fn generation_is_deterministic() {
    let compat = Compat::derive(&sample().join("releases"), "2.0.0").unwrap();
    let spec = Spec::load(&sample().join("releases/2.0.0")).unwrap();
    let first = generate(&spec, &compat).unwrap().files;
    let second = generate(&spec, &compat).unwrap().files;
    assert_eq!(first, second);
}

#[test]
fn compat_decides_optional_fields_and_availability() {
    let compat = Compat::derive(&sample().join("releases"), "2.0.0").unwrap();
    // `extra` is required in 2.0.0 but 1.0.0 lacks it: optional.
    assert_eq!(compat.required("Widget", "extra"), Some(false));
    assert_eq!(compat.required("Widget", "id"), Some(true));
    assert_eq!(compat.operation_versions("widgets", "getFile"), ["2.0.0"]);
    let spec = Spec::load(&sample().join("releases/2.0.0")).unwrap();
    let models = generate(&spec, &compat)
        .unwrap()
        .files
        .into_iter()
        .find(|(n, _)| n == "models.rs")
        .unwrap()
        .1;
    assert!(
        models.contains("pub extra: Option<serde_json::Value>"),
        "{models}"
    );
    assert!(models.contains("UnknownColor"), "{models}");
}
