#!/usr/bin/env bash
# Sets up a fresh machine and runs every check CI runs: formatting, clippy
# with warnings as errors, and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --quiet
