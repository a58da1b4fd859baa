#!/usr/bin/env bash
# Runs every test of vecfusion: formatting, lints, and the Rust unit, integration and
# sqllogictest suites. This is the README's test command and what CI (.ci/run) runs.
#
# Build artefacts go to $CARGO_TARGET_DIR when set (CI points it at a cache outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo build (tests and binaries)"
cargo build --workspace --all-targets --locked

step "cargo test"
cargo test --workspace --locked

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

printf '\nAll tests passed.\n'
