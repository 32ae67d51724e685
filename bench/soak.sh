#!/usr/bin/env bash
# Soak: the cloudlet under clients that keep coming back. CLIENTS clients
# (each with its own key) cycle launch → view → disconnect for SECONDS,
# against a cloudlet with --max-vms 4 and a short idle timeout, so leases
# expire and VMs stop and start all the time. Prints the deploys served,
# the refusals (503 at capacity, 429 rate-limited) and other errors, the
# cloudlet's RSS and open file descriptors at the start, every SAMPLE
# seconds (default 60) against the deploys served so far, and at the end,
# and the QEMU processes left after SIGTERM (must be 0). RSS and
# descriptors must not grow with the number of cycles: the last line of
# figures is the RSS trend per 1000 deploys after warm-up, and the idle RSS
# at the end (after the last leases expired) tells against the start. Needs root like the
# tests (QEMU, KVM when /dev/kvm works).
#
# usage: bench/soak.sh [SECONDS] [CLIENTS]   (default: 600 s, 20 clients)
#        OLIVE2022=path/to/olive2022 bench/soak.sh …  (skip the release build)
#        HEAPTRACK=FILE bench/soak.sh …  (the cloudlet under heaptrack, its
#        profile in FILE.zst; prints the peak heap and what was never
#        freed: runs of different lengths tell a leak from fixed costs)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
seconds=${1:-600}
clients=${2:-20}
if [ -z "${OLIVE2022:-}" ]; then
    cargo build --release --quiet -p olive2022
    OLIVE2022=$PWD/target/release/olive2022
fi
olive=$OLIVE2022
work=$(mktemp -d)
cloudlet=
loops=()
cleanup() {
    for pid in "${loops[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "$cloudlet" ] && kill -TERM "$cloudlet" 2>/dev/null && wait "$launcher" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# A small bootable-enough VM: a 64 MiB ext4 disk in an OCI layout.
truncate -s 64M "$work/disk.raw"
mke2fs -q -t ext4 -d /usr/share/perl5 "$work/disk.raw"
qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
python3 bench/make-package.py "$work/vm.nxpk" "$work/disk.qcow2" qcow2 "Soak VM"
url=vmnetx+https://olivearchive.org/bench/soak.nxpk
"$olive" -q convert --yes --output "oci:$work/layout" --recipes "$work/RECIPES" "$url" "$work/vm.nxpk" >/dev/null

api=127.0.0.1:$(port)
profiler=()
if [ -n "${HEAPTRACK:-}" ]; then
    command -v heaptrack >/dev/null || { echo "HEAPTRACK needs heaptrack (apt-get install heaptrack)" >&2; exit 1; }
    profiler=(heaptrack -o "$HEAPTRACK")
fi
"${profiler[@]}" "$olive" -q cloudlet --listen "$api" --wg-listen "127.0.0.1:$(port)" --recipes "$work/RECIPES" \
    --data-dir "$work/data" --cache-dir "$work/cache" --max-vms 4 --idle-timeout 5 \
    --deploy-rate 0 >"$work/profiler.log" 2>"$work/cloudlet.log" &
launcher=$!
cloudlet=$launcher
if [ -n "${HEAPTRACK:-}" ]; then
    # heaptrack's script runs the cloudlet as its child: measure and
    # signal that one, wait for the script (it writes the profile last).
    cloudlet=
    for _ in $(seq 100); do
        cloudlet=$(pgrep -P "$launcher" -x olive2022 || true)
        [ -n "$cloudlet" ] && break
        sleep 0.1
    done
fi
for _ in $(seq 100); do curl -s "http://$api/healthz" >/dev/null && break; sleep 0.1; done

rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$cloudlet/status"; }
fds() { ls "/proc/$cloudlet/fd" | wc -l; }
report() { echo "$1: RSS $(rss) MiB, $(fds) open fds, $(pgrep -fc "qemu-system.*$work" || true) QEMU running"; }

# One client: launch with a viewer that exits at once (the client
# disconnects), wait past the idle timeout now and then, and count outcomes.
client() {
    local n=$1 end=$2 out
    while [ "$(date +%s)" -lt "$end" ]; do
        if out=$(XDG_CACHE_HOME="$work/client$n" "$olive" -q launch --timeout 60 \
            --tier1-url "http://$api" --viewer true "$url" 2>&1); then
            echo served >>"$work/outcomes"
        else
            case "$out" in
            *503*) echo at_capacity >>"$work/outcomes"; sleep 2 ;;
            *429*) echo rate_limited >>"$work/outcomes"; sleep 2 ;;
            *) echo error >>"$work/outcomes"; echo "$out" >>"$work/errors" ;;
            esac
        fi
        [ $((RANDOM % 4)) -eq 0 ] && sleep 7  # let the lease expire
    done
}

report "start"
end=$(($(date +%s) + seconds))
for n in $(seq "$clients"); do
    client "$n" "$end" &
    loops+=($!)
done
sample=${SAMPLE:-60}
served() { grep -c '^served$' "$work/outcomes" 2>/dev/null || echo 0; }
echo "seconds deploys rss_mib fds" >"$work/samples"
started=$(date +%s)
while [ $(($(date +%s) + sample)) -le "$end" ]; do
    sleep "$sample"
    echo "$(($(date +%s) - started)) $(served) $(rss) $(fds)" | tee -a "$work/samples"
done
wait "${loops[@]}" 2>/dev/null || true
loops=()
sleep 7  # the last leases expire
report "end"
count() { awk -v outcome="$1" '$0 == outcome { n++ } END { print n + 0 }' "$work/outcomes" 2>/dev/null || echo 0; }
echo "deploys served: $(count served), refused at capacity: $(count at_capacity), rate-limited: $(count rate_limited), errors: $(count error)"
[ -f "$work/errors" ] && { echo "first errors:"; head -5 "$work/errors"; }
# The RSS trend against deploys served: a least-squares slope over the
# samples after the first (which warms the allocator and the caches), with
# the samples' spread around it, since RSS under load swings by a few MiB
# with whatever is in flight. A leak of 1 KiB per deploy is +1 MiB/1000.
awk 'NR > 2 { n++; x[n] = $2; y[n] = $3; sx += $2; sy += $3 }
     END {
         if (n < 3) { print "too few samples for the RSS trend (run longer)"; exit }
         mx = sx / n; my = sy / n
         for (i = 1; i <= n; i++) { sxy += (x[i] - mx) * (y[i] - my); sxx += (x[i] - mx) ^ 2 }
         b = sxx > 0 ? sxy / sxx : 0
         for (i = 1; i <= n; i++) { r = y[i] - my - b * (x[i] - mx); ss += r * r }
         printf "RSS trend after warm-up: %+.2f MiB per 1000 deploys (%d samples, spread ±%.1f MiB, mean %.1f MiB)\n", b * 1000, n, sqrt(ss / n), my
     }' "$work/samples"
kill -TERM "$cloudlet"
wait "$launcher" && echo "cloudlet exited 0 after SIGTERM"
cloudlet=
if [ -n "${HEAPTRACK:-}" ]; then
    heaptrack_print -f "$(ls "$HEAPTRACK".* | head -1)" 2>/dev/null |
        grep -E '^(total runtime|calls to allocation functions|peak heap memory consumption|peak RSS|total memory leaked)'
fi
sleep 1
echo "QEMU processes left: $(pgrep -fc "qemu-system.*$work" || true)"
