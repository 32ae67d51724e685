#!/usr/bin/env bash
# Benchmark: `olive2022 extract` against the original's command
# `qemu-img convert -c -O qcow2`, side by side on the same disks.
#
# Builds a 3 GiB ext4 disk filled from /usr/share (about 0.8 GB of real
# files), packages it twice (raw disk, qcow2 disk), then times each tool and
# prints wall time, output size, peak RSS and the ratios.
#
# usage: bench/extract.sh [WORKDIR]   (default: target/bench; needs ~8 GB)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/bench}
mkdir -p "$work"
work=$(cd "$work" && pwd)

for tool in qemu-img mke2fs python3 /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install qemu-utils e2fsprogs time)"; exit 1; }
done
cargo build --release --quiet -p olive2022
olive=$PWD/target/release/olive2022

if [ ! -f "$work/disk.raw" ]; then
    echo "building a 3 GiB ext4 disk from /usr/share…"
    truncate -s 3G "$work/disk.raw.tmp"
    mke2fs -q -t ext4 -d /usr/share "$work/disk.raw.tmp"
    mv "$work/disk.raw.tmp" "$work/disk.raw"
fi
if [ ! -f "$work/disk.qcow2" ]; then
    qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
fi
for fmt in raw qcow2; do
    [ -f "$work/$fmt.nxpk" ] || python3 bench/make-package.py "$work/$fmt.nxpk" "$work/disk.$fmt" "$fmt"
done

# measure NAME OUTPUT COMMAND…: prints "seconds size_bytes peak_kib"
measure() {
    local out=$2
    shift 2
    rm -f "$out"
    sync
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >/dev/null 2>"$work/stderr.txt" ||
        { cat "$work/stderr.txt"; exit 1; }
    qemu-img check -q "$out"
    read -r secs kib <"$work/time.txt"
    echo "$secs $(stat -c %s "$out") $kib"
}

printf '%-34s %9s %11s %10s\n' "run" "seconds" "output MB" "peak MiB"
row() { awk -v n="$1" -v s="$2" -v b="$3" -v k="$4" \
    'BEGIN { printf "%-34s %9.2f %11.1f %10.1f\n", n, s, b / 1e6, k / 1024 }'; }
ratio() { awk -v n="$1" -v a="$2" -v b="$3" -v c="$4" -v d="$5" \
    'BEGIN { printf "  %-32s speed %.2fx  size %.3fx\n", n, a / b, d / c }'; }

for fmt in raw qcow2; do
    read -r q_s q_b q_k < <(measure qemu "$work/ref.qcow2" qemu-img convert -c -O qcow2 -f "$fmt" "$work/disk.$fmt" "$work/ref.qcow2")
    row "qemu-img convert -c ($fmt in)" "$q_s" "$q_b" "$q_k"
    for comp in deflate zstd; do
        read -r o_s o_b o_k < <(measure ours "$work/ours.qcow2" "$olive" -q extract --compression "$comp" -o "$work/ours.qcow2" "$work/$fmt.nxpk")
        row "olive2022 extract $comp ($fmt in)" "$o_s" "$o_b" "$o_k"
        ratio "ours/qemu-img, $comp, $fmt in:" "$q_s" "$o_s" "$q_b" "$o_b"
        qemu-img compare -q "$work/ours.qcow2" "$work/disk.raw"
    done
done
rm -f "$work/ours.qcow2" "$work/ref.qcow2" "$work/time.txt" "$work/stderr.txt"
echo "outputs verified with qemu-img check and qemu-img compare"
