#!/usr/bin/env bash
# Benchmark: `olive2022 convert` into a loopback registry, side by side with
# the original's pipeline reproduced with real tools: extract disk.img from
# the ZIP, `qemu-img convert -c -O qcow2`, build the same layer with tar and
# gzip (as `docker push` compresses it), push it with `skopeo copy`.
# Prints wall time, peak RSS, peak temporary disk space and the ratios.
#
# usage: bench/convert.sh [WORKDIR]   (default: target/bench; reuses the
#        packages of bench/extract.sh, building them if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-target/bench}
mkdir -p "$work"
work=$(cd "$work" && pwd)
for tool in docker-registry skopeo qemu-img python3 gzip /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup.sh"; exit 1; }
done
[ -f "$work/qcow2.nxpk" ] || bench/extract.sh "$work" >/dev/null
cargo build --release --quiet -p olive2022
olive=$PWD/target/release/olive2022

# A registry on loopback, storage in the work dir.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
reg=127.0.0.1:$port
rm -rf "$work/registry"
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<YAML
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/registry/storage}}
http: {addr: $reg, secret: bench}
YAML
docker-registry serve "$work/registry/config.yml" >/dev/null 2>&1 &
registry_pid=$!
trap 'kill $registry_pid 2>/dev/null; rm -rf "$work/tmp" "$work/registry"' EXIT
for _ in $(seq 100); do curl -s "http://$reg/v2/" >/dev/null 2>&1 && break; sleep 0.1; done

# Samples the size of a directory every 0.1 s while COMMAND runs; prints
# "seconds peak_rss_kib peak_dir_bytes".
measure() {
    local dir=$1
    shift
    rm -rf "$dir"
    mkdir -p "$dir"
    local peak=0
    /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" >"$work/out.txt" 2>&1 &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        local now
        now=$(du -sb "$dir" 2>/dev/null | cut -f1)
        [ "${now:-0}" -gt "$peak" ] && peak=$now
        sleep 0.1
    done
    wait "$pid" || { cat "$work/out.txt"; exit 1; }
    read -r secs kib <"$work/time.txt"
    echo "$secs $kib $peak"
}

# The original's pipeline, each step with real tools.
original_pipeline() {
    local pkg=$1 tmp=$2 repo=$3
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("disk.img", sys.argv[2])' "$pkg" "$tmp"
    qemu-img convert -c -O qcow2 "$tmp/disk.img" "$tmp/disk.qcow2"
    rm "$tmp/disk.img"
    mkdir -p "$tmp/layer/disk"
    mv "$tmp/disk.qcow2" "$tmp/layer/disk/"
    tar --owner=107 --group=107 --numeric-owner -C "$tmp/layer" -cf - disk | gzip >"$tmp/layer.tar.gz"
    rm -r "$tmp/layer"
    python3 bench/oci-layout.py "$tmp/layer.tar.gz" "$tmp/oci"
    rm "$tmp/layer.tar.gz"
    skopeo copy --quiet --dest-tls-verify=false "oci:$tmp/oci:latest" "docker://$repo:latest"
}

printf '%-30s %9s %10s %12s\n' "run" "seconds" "peak MiB" "temp MB"
row() { awk -v n="$1" -v s="$2" -v k="$3" -v t="$4" 'BEGIN { printf "%-30s %9.2f %10.1f %12.1f\n", n, s, k / 1024, t / 1e6 }'; }
for fmt in qcow2 raw; do
    export -f original_pipeline
    read -r o_s o_k o_t < <(measure "$work/tmp" bash -c "cd '$PWD' && original_pipeline '$work/$fmt.nxpk' '$work/tmp' '$reg/original/$fmt'")
    row "original pipeline ($fmt in)" "$o_s" "$o_k" "$o_t"
    read -r n_s n_k n_t < <(measure "$work/tmp" env TMPDIR="$work/tmp" "$olive" -q convert --yes \
        --registry "$reg/ours-$fmt" --recipes "$work/tmp/RECIPES" \
        "vmnetx+https://olivearchive.org/bench/$fmt.nxpk" "$work/$fmt.nxpk")
    row "olive2022 convert ($fmt in)" "$n_s" "$n_k" "$n_t"
    awk -v a="$o_s" -v b="$n_s" -v f="$fmt" 'BEGIN { printf "  speed-up, %s in: %.2fx\n", f, a / b }'
done
