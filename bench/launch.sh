#!/usr/bin/env bash
# Benchmark: `olive2022 launch` side by side with the original (olive2022
# 0.1.7 from PyPI: sinfonia-tier3, a network namespace and its bundled
# wireguard-go), against the same namespace cloudlet (testkit's: its own
# wireguard-go, dnsmasq, and a VNC stand-in that can send bulk data).
#
# Measures, for each: the time from start to the viewer holding the RFB
# banner, the bulk throughput from the VM side to the viewer through the
# tunnel, and (ours) the peak RSS of the launch process. Needs root (the
# cloudlet is a network namespace), like the tests.
#
# usage: bench/launch.sh [RUNS] [MIB]   (defaults: 3 runs, 256 MiB)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
export BENCH_MIB=${2:-256}
oracle=${OLIVE2022_ORACLE_VENV:-/opt/olive-oracle}
[ -x "$oracle/bin/olive2022" ] || { echo "the original is missing: run scripts/setup.sh"; exit 1; }
cargo build --release --quiet -p olive2022
cargo build --release --quiet -p testkit --example cloudlet
work=$(mktemp -d)
mkdir "$work/bin"
# The stand-in viewer, found first on PATH as the original's first choice.
cp bench/launch-viewer.py "$work/bin/remote-viewer"
# The cloudlet lives until its standard input closes: a FIFO held open by
# this script, so that it goes away with the script whatever happens.
mkfifo "$work/keep"
target/release/examples/cloudlet bulk <"$work/keep" >"$work/cloudlet.json" 2>"$work/cloudlet.log" &
cloudlet=$!
exec 3>"$work/keep"
trap 'exec 3>&-; wait $cloudlet 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/cloudlet.json" ] && break; sleep 0.1; done
tier1=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["tier1_url"])' "$work/cloudlet.json")
url=vmnetx+https://olivearchive.org/bench/package.nxpk

# run NAME COMMAND…: one launch; prints "seconds_to_banner MiB/s rss_kib".
run() {
    local name=$1
    shift
    local start
    start=$(date +%s.%N)
    BENCH_OUT="$work/$name.txt" XDG_CACHE_HOME="$work/cache-$name" PATH="$work/bin:$PATH" \
        "$@" --tier1-url "$tier1" "$url" >"$work/$name.log" 2>&1 || { cat "$work/$name.log"; exit 1; }
    read -r banner_at rate rss _ <"$work/$name.txt"
    awk -v s="$start" -v b="$banner_at" -v r="$rate" -v k="$rss" 'BEGIN { printf "%.3f %.1f %d\n", b - s, r, k }'
}

printf '%-26s %12s %12s %12s\n' "run" "to banner s" "MiB/s" "peak RSS MiB"
for i in $(seq "$runs"); do
    read -r o_t o_r _ < <(run original "$oracle/bin/olive2022" launch)
    printf '%-26s %12.3f %12.1f %12s\n' "original #$i" "$o_t" "$o_r" "-"
    read -r n_t n_r n_k < <(run ours target/release/olive2022 -q launch)
    printf '%-26s %12.3f %12.1f %12.1f\n' "olive2022 (Rust) #$i" "$n_t" "$n_r" "$(awk -v k="$n_k" 'BEGIN { print k / 1024 }')"
    awk -v a="$o_t" -v b="$n_t" -v c="$o_r" -v d="$n_r" \
        'BEGIN { printf "  ratios: %.1fx faster to the banner, %.2fx the throughput\n", a / b, d / c }'
done
