#!/usr/bin/env bash
# Benchmark: the embedded cloudlet. Time from a deploy request (`olive2022
# launch` starting) to the first RFB byte through the tunnel, cold (the
# image is pulled from a loopback registry) and warm (cached: a new client,
# so a new VM); then the cloudlet's memory with 1 and 4 VMs running (QEMU's
# own memory excluded: it is another process). Needs root like the tests
# (QEMU, KVM when /dev/kvm works).
#
# usage: bench/cloudlet.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
cargo build --release --quiet -p olive2022
olive=$PWD/target/release/olive2022
work=$(mktemp -d)

# A registry on loopback.
reg=127.0.0.1:$(port)
printf 'version: 0.1\nlog: {level: error}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s, secret: bench}\n' \
    "$work/registry" "$reg" >"$work/registry.yml"
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 &
registry=$!
cloudlet=
cleanup() {
    [ -n "$cloudlet" ] && kill -INT "$cloudlet" 2>/dev/null && wait "$cloudlet" 2>/dev/null
    kill "$registry" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 100); do curl -s "http://$reg/v2/" >/dev/null && break; sleep 0.1; done

# A package of a 256 MiB ext4 disk, converted into the registry.
truncate -s 256M "$work/disk.raw"
mke2fs -q -t ext4 -d /usr/share/perl5 "$work/disk.raw"
qemu-img convert -c -O qcow2 "$work/disk.raw" "$work/disk.qcow2"
python3 bench/make-package.py "$work/vm.nxpk" "$work/disk.qcow2" qcow2 "Bench VM"
url=vmnetx+https://olivearchive.org/bench/cloudlet.nxpk
"$olive" -q convert --yes --registry "$reg/olive" --recipes "$work/RECIPES" "$url" "$work/vm.nxpk" >/dev/null

api=127.0.0.1:$(port)
"$olive" -q cloudlet --listen "$api" --wg-listen "127.0.0.1:$(port)" --recipes "$work/RECIPES" \
    --data-dir "$work/data" --max-vms 8 &
cloudlet=$!
for _ in $(seq 100); do curl -s "http://$api/api/v1/cloudlets/" >/dev/null && break; sleep 0.1; done
mkdir "$work/bin"
cp bench/launch-viewer.py "$work/bin/remote-viewer"

# launch CLIENT: seconds from start to the banner.
launch() {
    local start
    start=$(date +%s.%N)
    BENCH_MIB=0 BENCH_OUT="$work/$1.txt" XDG_CACHE_HOME="$work/cache-$1" PATH="$work/bin:$PATH" \
        "$olive" -q launch --tier1-url "http://$api" "$url"
    awk -v s="$start" '{ printf "%.3f\n", $1 - s }' "$work/$1.txt"
}
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$cloudlet/status"; }

cold=$(launch client1)
echo "cold start (pull + VM + tunnel) to first RFB byte: $cold s"
echo "cloudlet RSS with 1 VM: $(rss) MiB"
for client in client2 client3 client4; do
    warm=$(launch "$client")
    echo "warm start (cached image, new VM) to first RFB byte: $warm s"
done
echo "cloudlet RSS with 4 VMs: $(rss) MiB (peak $(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$cloudlet/status") MiB)"
