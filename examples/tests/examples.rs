//! Runs every example against the lab, as a user would, and checks what it prints.

use std::time::Duration;

/// How long an example may run before the test fails (and kills it).
const DEADLINE: Duration = Duration::from_secs(60);

async fn run(binary: &str, args: &[&str]) -> String {
    let child = tokio::process::Command::new(binary)
        .args(args)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(DEADLINE, child)
        .await
        .unwrap_or_else(|_| panic!("{binary} did not finish within {DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{binary} failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn answer_and_play() {
    ari_lab::Lab::get().await;
    let app = ari_lab::unique_name("ex-hello");
    let out = run(
        env!("CARGO_BIN_EXE_answer_and_play"),
        &[
            "--app",
            &app,
            "--originate",
            "Local/answer@lab",
            "--calls",
            "1",
            "--media",
            "sound:beep",
        ],
    )
    .await;
    assert!(out.contains("played sound:beep"), "{out}");
}

#[tokio::test]
async fn bridge_two_calls() {
    ari_lab::Lab::get().await;
    let app = ari_lab::unique_name("ex-bridge");
    let out = run(
        env!("CARGO_BIN_EXE_bridge_two_calls"),
        &["--app", &app, "--seconds", "1"],
    )
    .await;
    assert!(out.contains("holds 2 channels"), "{out}");
}

#[tokio::test]
async fn record_bridge() {
    ari_lab::Lab::get().await;
    let app = ari_lab::unique_name("ex-record");
    let path = std::env::temp_dir().join(format!("{app}.wav"));
    let out = run(
        env!("CARGO_BIN_EXE_record_bridge"),
        &[
            "--app",
            &app,
            "--seconds",
            "1",
            "--out",
            path.to_str().unwrap(),
        ],
    )
    .await;
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        bytes.len() > 4000 && &bytes[..4] == b"RIFF",
        "{} bytes: {out}",
        bytes.len()
    );
}

#[tokio::test]
async fn dtmf() {
    ari_lab::Lab::get().await;
    let app = ari_lab::unique_name("ex-dtmf");
    let out = run(
        env!("CARGO_BIN_EXE_dtmf"),
        &["--app", &app, "--originate", "Local/dtmf@lab"],
    )
    .await;
    assert!(out.contains("digits before #: 123"), "{out}");
}
