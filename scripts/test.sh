#!/usr/bin/env bash
# Runs every test of vecfusion: formatting, lints, the Rust unit, integration and
# sqllogictest suites, and the Python package's tests and notebooks. This is the README's test command and what CI (.ci/run) runs.
#
# Build artefacts go to $CARGO_TARGET_DIR when set (CI points it at a cache outside the clone).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo build (tests and binaries)"
cargo build --workspace --all-targets --locked

step "reference embedding model (all-MiniLM-L6-v2, once)"
scripts/fetch-models.sh

step "S3-compatible server for the storage tests (SeaweedFS, once)"
VECFUSION_S3_SERVER="$(scripts/fetch-s3-server.sh)"
export VECFUSION_S3_SERVER

step "cargo test"
cargo test --workspace --locked

step "Python: build the wheel, install it in a virtual environment, run pytest and the notebooks"
venv="${VECFUSION_PY_VENV:-python/.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r python/requirements-test.txt
wheels="$(mktemp -d)"
(cd python && "../$venv/bin/maturin" build --quiet --profile dev --interpreter "../$venv/bin/python" --out "$wheels")
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$wheels"/vecfusion-*.whl
rm -rf "$wheels"
"$venv/bin/python" -m pytest -q python/tests
"$venv/bin/python" python/run_notebooks.py

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

printf '\nAll tests passed.\n'
