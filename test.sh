#!/usr/bin/env bash
# The project's test command: installs and starts the lab (a real Asterisk 22 on
# 127.0.0.1) when needed, checks the lab script itself, then runs every test against it.
# The lab keeps running afterwards; stop it with `sudo asterisk_conf/lab stop`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

command -v cargo >/dev/null || {
    echo "test.sh: cargo not found: install Rust $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) or newer (https://rustup.rs)" >&2
    exit 1
}
# The lab needs root (debootstrap, chroot, mount); cargo does not.
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo --preserve-env=ARI_LAB_DIR,ARI_LAB_MIRROR)

"${sudo[@]}" asterisk_conf/lab install
# The self-test restarts Asterisk, so it runs before the parallel tests, alone.
"${sudo[@]}" asterisk_conf/lab-selftest
"${sudo[@]}" asterisk_conf/lab start

# Generated code must be exactly what the generator produces from the vendored spec.
cargo run -q --locked -p ari-model-codegen -- --check
cargo test --workspace --locked
