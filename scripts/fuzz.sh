#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named) for a bounded time each,
# one after the other, one libFuzzer process at a time, and prints for each:
# seconds run, executions, executions per second, corpus size, and whether
# it crashed. Exits non-zero if any target crashed (or failed to run).
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      SECONDS per target, default 60
#
# Installs what it needs if missing: a nightly toolchain (rustup) and
# cargo-fuzz. Set CARGO_LOCK to a file to run every cargo command under
# `flock` on it, where several builds share a machine.
#
# The corpus each run grows is fuzz/corpus/<target>/ (not committed; the
# committed seeds in fuzz/seeds/<target>/ are read alongside it). A crash
# leaves its input in fuzz/artifacts/<target>/, with the run's log. How to
# turn a crash into a regression test: docs/fuzzing.md.
set -uo pipefail

seconds=${1:-60}
shift || true
case $seconds in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.." || exit 2

locked() {
    if [ -n "${CARGO_LOCK:-}" ]; then
        flock "$CARGO_LOCK" "$@"
    else
        "$@"
    fi
}

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing the nightly toolchain" >&2
    locked rustup toolchain install nightly --profile minimal || exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    locked cargo install cargo-fuzz --locked || exit 2
fi

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz.sh: no fuzz targets" >&2; exit 2; }

# One build of every target (address sanitizer, optimised, debug
# assertions on), then the binaries are run directly: the time limit is
# then the fuzzing time alone.
locked cargo +nightly fuzz build >&2 || exit 2
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir=${CARGO_TARGET_DIR:-fuzz/target}/$host/release

failed=0
summary=()
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target
    log=$artifacts/run.log
    mkdir -p "$corpus" "$artifacts" "fuzz/seeds/$target"
    echo "fuzz.sh: $target for $seconds s (log: $log)" >&2
    start=$(date +%s)
    "$bin_dir/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$artifacts/" \
        "$corpus" "fuzz/seeds/$target" >"$log" 2>&1
    status=$?
    ran=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    files=$(find "$corpus" -type f | wc -l)
    bytes=$(du -sb "$corpus" | cut -f1)
    if [ "$status" -eq 0 ]; then
        verdict="no crash"
    else
        failed=1
        crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
        verdict="CRASHED (exit $status${crash:+, input $crash})"
    fi
    line=$(printf '%-12s %6ss %12s runs %8s exec/s  corpus %5s files %9s bytes  %s' \
        "$target" "$ran" "${runs:-?}" "${rate:-?}" "$files" "$bytes" "$verdict")
    echo "$line"
    summary+=("$line")
done

echo
echo "fuzz.sh: summary ($seconds s per target)"
printf '%s\n' "${summary[@]}"
exit "$failed"
