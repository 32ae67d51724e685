#!/usr/bin/env bash
# Sets up a fresh machine and runs every check CI runs: formatting, clippy
# with warnings as errors, and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# --no-fail-fast: one failing test binary must not hide the others.
cargo test --workspace --no-fail-fast --quiet 2>&1 | tee "$log" || status=$?
# One closing line for the whole suite (cargo prints one per test binary).
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "workspace: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
