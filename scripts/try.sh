#!/usr/bin/env bash
# The main job on a fresh machine: sets up, builds olive2022 and runs
# `olive2022 demo`, which builds a small bootable VM, packages it as VMNetX,
# converts it, serves it from the embedded cloudlet and launches it (a
# viewer opens, or olive2022-demo.png is saved here when there is no display).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p olive2022
# Where cargo put it (CARGO_TARGET_DIR moves the whole target directory).
"${CARGO_TARGET_DIR:-target}/release/olive2022" demo "$@"
