//! The packaging in `voiceai-gateway/deploy/`: the systemd unit passes `systemd-analyze
//! verify` (with `ExecStart` pointed at the binary cargo built, since the unit names the
//! installed path), and the Dockerfile builds the binary it runs.

use std::path::PathBuf;
use std::process::Command;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy_dir().join("voiceai-gateway.service")).unwrap();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/voiceai-gateway\n"),
        "{unit}"
    );
    for needed in [
        "User=voiceai",
        "EnvironmentFile=/etc/voiceai-gateway/env",
        "Restart=on-failure",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("voiceai-gateway.service");
    let built = unit.replace(
        "ExecStart=/usr/local/bin/voiceai-gateway",
        &format!("ExecStart={}", env!("CARGO_BIN_EXE_voiceai-gateway")),
    );
    std::fs::write(&path, built).unwrap();
    // systemd ships on every Debian machine this project supports; a missing tool is a
    // broken test machine, not a pass.
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (package systemd) must be installed to check the unit");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "systemd-analyze verify failed: {said}"
    );
    assert!(
        said.trim().is_empty(),
        "systemd-analyze verify warned: {said}"
    );
}

#[test]
fn the_dockerfile_builds_and_runs_the_gateway_as_non_root() {
    let dockerfile = std::fs::read_to_string(deploy_dir().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("cargo build --release --locked -p voiceai-gateway"));
    assert_eq!(
        dockerfile.matches("\nFROM ").count() + usize::from(dockerfile.starts_with("FROM ")),
        2,
        "multi-stage"
    );
    assert!(dockerfile.contains("\nUSER voiceai\n"));
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/voiceai-gateway\"]"));
}
