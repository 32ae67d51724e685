#!/usr/bin/env bash
# Benchmark: tier 1. Deploy latency straight to a cloudlet, through our
# tier 1 (`olive2022 tier1`, forwarding), and through the real Sinfonia
# tier 1 when SINFONIA_VENV points at a virtualenv with sinfonia installed
# (scripts/interop.sh builds one); then the time from a cloudlet's SIGKILL
# to the next successful deploy through our tier 1.
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

# Two cloudlets and our tier 1; both report to it.
declare -A api pid
for name in a b; do
    api[$name]=127.0.0.1:$(port)
    "$OLIVE" -q cloudlet --listen "${api[$name]}" --wg-listen "127.0.0.1:$(port)" \
        --recipes "$work/RECIPES" --data-dir "$work/$name" --cache-dir "$work/$name/cache" \
        --max-vms 8 --deploy-rate 0 &
    pid[$name]=$!
    pids+=("$!")
done
tier1=127.0.0.1:$(port)
"$OLIVE" -q tier1 --listen "$tier1" --deploy-rate 0 --forward-timeout 5 &
pids+=("$!")
for where in "${api[a]}" "${api[b]}" "$tier1"; do wait_http "http://$where/api/v1/cloudlets/"; done
n_site=0
for name in a b; do
    n_site=$((n_site + 1))
    curl -sf -X POST "http://$tier1/api/v1/cloudlets/" -H 'Content-Type: application/json' --data-binary \
        "{\"uuid\": \"00000000-0000-4000-8000-00000000000$n_site\", \"name\": \"$name\",
          \"endpoint\": \"http://${api[$name]}/api/v1/deploy\", \"resources\": {\"vm_slots_free\": 8}}"
done

# deploy BASE KEY: seconds for one deploy (fails loudly).
deploy() {
    curl -sf -o /dev/null -w '%{time_total}\n' -X POST "http://$1/api/v1/deploy/$uuid/$2"
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
if [ -n "${SINFONIA_VENV:-}" ]; then
    sport=$(port)
    "$SINFONIA_VENV/bin/sinfonia-tier1" --port "$sport" --recipes "$work/RECIPES" >"$work/sinfonia.log" 2>&1 &
    pids+=("$!")
    wait_http "http://127.0.0.1:$sport/api/v1/cloudlets/"
    curl -sf -X POST "http://127.0.0.1:$sport/api/v1/cloudlets/" -H 'Content-Type: application/json' --data-binary \
        "{\"uuid\": \"00000000-0000-4000-8000-00000000000a\", \"endpoint\": \"http://${api[a]}/api/v1/deploy\", \"resources\": {}}"
    sinfonia=$(median "127.0.0.1:$sport")
    sinfonia_new=$(ms "$(deploy "127.0.0.1:$sport" "$(key)")")
fi

printf '%-34s %14s %14s\n' "deploy latency (ms)" "same client" "new client"
printf '%-34s %14s %14s\n' "straight to the cloudlet" "$direct" "$direct_new"
printf '%-34s %14s %14s\n' "through olive2022 tier1" "$ours" "$ours_new"
printf '%-34s %14s %14s\n' "through Sinfonia's tier 1" "$sinfonia" "$sinfonia_new"

# Failover: kill the cloudlet a new client got, then deploy another.
k=$(key)
deploy "$tier1" "$k" >/dev/null
victim=b
curl -sf -o /dev/null "http://${api[a]}/api/v1/deploy/$uuid/$k" && victim=a
kill -KILL "${pid[$victim]}"
wait "${pid[$victim]}" 2>/dev/null || true
killed=$(date +%s.%N)
curl -sf -o /dev/null -X POST "http://$tier1/api/v1/deploy/$uuid/$(key)"
recovered=$(date +%s.%N)
awk -v a="$killed" -v b="$recovered" -v v="$victim" \
    'BEGIN { printf "SIGKILL of cloudlet %s to the next successful deploy through our tier 1: %.0f ms\n", v, (b - a) * 1000 }'
