#!/usr/bin/env bash
# Sets up, builds olive2022, makes a small VMNetX package from real files and
# extracts it to a compressed qcow2 image that QEMU accepts, then runs the
# main job, `olive2022 demo` (a viewer opens, or olive2022-demo.png is saved
# here when there is no display).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet -p olive2022
work=$(mktemp -d "${TMPDIR:-/tmp}/olive2022-try.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "try: making a 256 MiB ext4 disk from /usr/share/perl5 and packaging it"
truncate -s 256M "$work/disk.raw"
mke2fs -q -t ext4 -d /usr/share/perl5 "$work/disk.raw"
qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
python3 bench/make-package.py "$work/demo.nxpk" "$work/disk.qcow2" qcow2 "Demo VM"
target/release/olive2022 extract -o "$work/demo.qcow2" "$work/demo.nxpk"
qemu-img check "$work/demo.qcow2"
qemu-img compare "$work/demo.qcow2" "$work/disk.raw"
echo "try: the main job: olive2022 demo (build, package, convert, serve, launch a VM)"
target/release/olive2022 demo
