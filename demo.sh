#!/usr/bin/env bash
# The main job, end to end: the lab (a real Asterisk 22 on 127.0.0.1), the voice AI gateway
# against it, a demo AI bot (examples/src/bin/demo_bot.rs), and one call placed by SIPp.
# Prints the call as it happens (started, answered, backend connected, audio frames each
# way, DTMF, ended) and exits 0 when it went through. The lab keeps running afterwards.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v cargo >/dev/null || {
    echo "demo.sh: cargo not found: install Rust $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) or newer (https://rustup.rs)" >&2
    exit 1
}
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo --preserve-env=ARI_LAB_DIR,ARI_LAB_MIRROR,ARI_URL,ARI_USERNAME,ARI_PASSWORD)

"${sudo[@]}" asterisk_conf/lab install
"${sudo[@]}" asterisk_conf/lab start
cargo build --release --locked -p voiceai-gateway -p ari-examples \
    --bin voiceai-gateway --bin demo_bot --bin gateway_demo
# SIPp sends the caller's audio from a raw socket: root.
"${sudo[@]}" target/release/gateway_demo "$@"
