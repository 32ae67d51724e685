#!/usr/bin/env bash
# Benchmark: tier 1. Deploy latency straight to a cloudlet, through our
# tier 1 (`olive2022 tier1`, forwarding), and through the real Sinfonia
# tier 1 when SINFONIA_VENV points at a virtualenv with sinfonia installed
# (scripts/interop.sh builds one); then the time from a cloudlet's SIGKILL
# to the next successful deploy through each (Sinfonia's takes minutes:
# it has no failover, so the run then lasts about 6 more minutes).
#
# Each figure is the median of N deploys (default 20) of one client key
# already deployed (the answer comes from the existing VM: what is measured
# is the API and the forwarding, not QEMU), plus one new client (a new VM).
# Needs root like the tests (QEMU).
#
# usage: [OLIVE=path/to/olive2022] [SINFONIA_VENV=dir] [N=20] bench/federation.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
if [ -z "${OLIVE:-}" ]; then
    cargo build --release --quiet -p olive2022
    OLIVE=$PWD/target/release/olive2022
fi
n=${N:-20}
work=$(mktemp -d)
pids=()
cleanup() {
    stop_pids "${pids[@]}"
    rm -rf "$work"
}
trap cleanup EXIT
wait_http() { for _ in $(seq 200); do curl -s "$1" >/dev/null && return; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
key() { python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("="))'; }

# A small VM in an OCI layout.
truncate -s 64M "$work/disk.raw"
mke2fs -q -t ext4 "$work/disk.raw"
qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
python3 bench/make-package.py "$work/vm.nxpk" "$work/disk.qcow2" qcow2 "Bench VM"
url=vmnetx+https://olivearchive.org/bench/federation.nxpk
"$OLIVE" -q convert --yes --output "oci:$work/layout" --recipes "$work/RECIPES" "$url" "$work/vm.nxpk" >/dev/null
uuid=$("$OLIVE" uuid "$url")

# Our tier 1, Sinfonia's when SINFONIA_VENV is set, and two cloudlets that
# report to both every 15 s. Cloudlet a is in Pittsburgh, b in Lisbon, and
# every deploy says it comes from Pittsburgh (X-Location), so both tier 1s
# place it on a first: the latencies compare the same path, and a's death
# is seen the same way by both. (Sinfonia's tier 1 ignores reported local
# networks, and orders cloudlets at random after location.)
tier1=127.0.0.1:$(port)
"$OLIVE" -q tier1 --listen "$tier1" --deploy-rate 0 --forward-timeout 5 &
pids+=("$!")
reports=(--tier1-url "http://$tier1")
sinfonia_api=
if [ -n "${SINFONIA_VENV:-}" ]; then
    sinfonia_api=127.0.0.1:$(port)
    "$SINFONIA_VENV/bin/python" -c "from sinfonia.app_tier1 import wsgi_app_factory as f; f(recipes='$work/RECIPES').run(host='127.0.0.1', port=${sinfonia_api#*:})" \
        >"$work/sinfonia.log" 2>&1 &
    pids+=("$!")
    reports+=(--tier1-url "http://$sinfonia_api")
fi
for where in "$tier1" $sinfonia_api; do wait_http "http://$where/api/v1/cloudlets/"; done
declare -A api pid
for name in a b; do
    api[$name]=127.0.0.1:$(port)
    place=(--location 38.72,-9.14)
    [ "$name" = a ] && place=(--location 40.44,-79.94)
    "$OLIVE" -q cloudlet --listen "${api[$name]}" --wg-listen "127.0.0.1:$(port)" \
        --recipes "$work/RECIPES" --data-dir "$work/$name" --cache-dir "$work/$name/cache" \
        --max-vms 8 --deploy-rate 0 "${reports[@]}" "${place[@]}" &
    pid[$name]=$!
    pids+=("$!")
done
# Both cloudlets on every tier 1's list.
for where in "$tier1" $sinfonia_api; do
    for _ in $(seq 300); do
        [ "$(curl -s "http://$where/api/v1/cloudlets/" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)))' 2>/dev/null)" = 2 ] && break
        sleep 0.1
    done
done

# deploy BASE KEY: seconds for one deploy (fails loudly).
deploy() {
    curl -sf -o /dev/null -w '%{time_total}\n' -H 'X-Location: 40.44,-79.94' \
        -X POST "http://$1/api/v1/deploy/$uuid/$2"
}
# median BASE: the median of N deploys of one key already deployed.
median() {
    local k
    k=$(key)
    deploy "$1" "$k" >/dev/null
    for _ in $(seq "$n"); do deploy "$1" "$k"; done | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }'
}
ms() { awk -v s="$1" '{ printf "%.1f", s * 1000 }' <<<""; }

# Warm the image caches: one deploy on each cloudlet.
for name in a b; do deploy "${api[$name]}" "$(key)" >/dev/null; done

direct=$(median "${api[a]}")
ours=$(median "$tier1")
direct_new=$(ms "$(deploy "${api[a]}" "$(key)")")
ours_new=$(ms "$(deploy "$tier1" "$(key)")")
sinfonia="-"
sinfonia_new="-"
if [ -n "$sinfonia_api" ]; then
    sinfonia=$(median "$sinfonia_api")
    sinfonia_new=$(ms "$(deploy "$sinfonia_api" "$(key)")")
fi

printf '%-34s %14s %14s\n' "deploy latency (ms)" "same client" "new client"
printf '%-34s %14s %14s\n' "straight to the cloudlet" "$direct" "$direct_new"
printf '%-34s %14s %14s\n' "through olive2022 tier1" "$ours" "$ours_new"
printf '%-34s %14s %14s\n' "through Sinfonia's tier 1" "$sinfonia" "$sinfonia_new"

# Failover: kill cloudlet a, which both tier 1s place first, then deploy
# through each until one succeeds. Ours moves on to b at once; Sinfonia's
# answers 500 until a's registration expires (5 minutes without a report,
# checked every minute), so it is polled every 2 s for at most 7 minutes.
kill -KILL "${pid[a]}"
wait "${pid[a]}" 2>/dev/null || true
killed=$(date +%s.%N)
deploy "$tier1" "$(key)" >/dev/null
recovered=$(date +%s.%N)
awk -v a="$killed" -v b="$recovered" \
    'BEGIN { printf "SIGKILL of a cloudlet to the next successful deploy, through olive2022 tier1: %.1f s\n", b - a }'
if [ -n "$sinfonia_api" ]; then
    failed=0
    result="no successful deploy within 420 s"
    while awk -v a="$killed" -v now="$(date +%s.%N)" 'BEGIN { exit !(now - a < 420) }'; do
        if deploy "$sinfonia_api" "$(key)" >/dev/null 2>&1; then
            result=$(awk -v a="$killed" -v b="$(date +%s.%N)" -v f="$failed" \
                'BEGIN { printf "%.1f s (%d deploys failed before)", b - a, f }')
            break
        fi
        failed=$((failed + 1))
        sleep 2
    done
    echo "SIGKILL of a cloudlet to the next successful deploy, through Sinfonia's tier 1: $result"
fi
