#!/usr/bin/env bash
# Interoperability with the REAL Sinfonia tier 1 (Carnegie Mellon's Python
# code at commit 79b26ce, from ../shared/oracles next to the repository):
#
#  1. one of our cloudlets reports itself to the real tier 1 (--tier1-url)
#     and shows up in its cloudlet list;
#  2. a deploy through the real tier 1 reaches the VM's screen, with our
#     client (`olive2022 launch`) and with the original Python client
#     (sinfonia-tier3 0.7.4 from the original olive2022, with our stage2);
#  3. three sites: three cloudlets, each accepting only its site's client
#     network, and one client in each site's network namespace; the real
#     tier 1 sends every client to its own site's cloudlet.
#
# Needs root (network namespaces), QEMU and the oracle (scripts/setup.sh,
# run first when something is missing). Every process started is stopped
# by PID, and every namespace and link removed, on any exit. Any failed
# check stops the script with a message and a non-zero status.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
oracles=$(cd "$(dirname "$0")/../../shared/oracles" && pwd)
cd "$repo"

fail() { echo "interop: FAIL: $*" >&2; exit 1; }
step() { echo "interop: $*"; }
passed=()

# --- tools -----------------------------------------------------------------
[[ $(id -u) == 0 ]] || fail "needs root (network namespaces)"
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v curl >/dev/null ||
    [[ ! -x /opt/olive-oracle/bin/sinfonia-tier3 ]]; then
    scripts/setup.sh
fi
step "building olive2022 and the test viewer"
cargo build --quiet -p olive2022 --bins
target=${CARGO_TARGET_DIR:-$repo/target}
olive=$target/debug/olive2022
probe=$target/debug/rfb-probe
[[ -x $olive && -x $probe ]] || fail "the build left no $olive or $probe"

# --- cleanup ---------------------------------------------------------------
work=$(mktemp -d /tmp/olive2022-interop.XXXXXX)
pids=()
namespaces=()
links=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        # Each was started with setsid: its group is its own PID.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    for ns in "${namespaces[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    for link in "${links[@]}"; do ip link del "$link" 2>/dev/null || true; done
    if [[ $status != 0 ]]; then
        echo "interop: logs kept in $work" >&2
        for log in "$work"/*.log; do
            [[ -f $log ]] || continue
            echo "--- $log (last lines)" >&2
            tail -n 15 "$log" >&2
        done
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Starts a command in its own process group, its output in $work/$1.log;
# its PID in $started.
start() {
    local name=$1
    shift
    setsid "$@" >"$work/$name.log" 2>&1 </dev/null &
    started=$!
    pids+=("$started")
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # SECONDS WHAT COMMAND...
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || fail "timed out waiting for $what"
        sleep 0.5
    done
}

# --- the real tier 1 -------------------------------------------------------
venv=${XDG_CACHE_HOME:-$HOME/.cache}/olive2022/interop/sinfonia-79b26ce
if ! "$venv/bin/python" -c 'import sinfonia.app_tier1' 2>/dev/null; then
    step "installing the real Sinfonia into $venv"
    rm -rf "$venv"
    mkdir -p "$work/src" "$(dirname "$venv")"
    tar xzf "$oracles/sinfonia-79b26ce.tar.gz" -C "$work/src"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -c "$oracles/sinfonia-constraints.txt" "$work/src/sinfonia"
fi

# start_tier1 NAME HOST: the real tier 1 on HOST:PORT; sets $tier1.
start_tier1() {
    local name=$1 host=$2 port
    port=$(free_port)
    start "$name" "$venv/bin/python" -c \
        "from sinfonia.app_tier1 import wsgi_app_factory as f; f(recipes='$work/tier1-recipes').run(host='$host', port=$port)"
    tier1=http://$host:$port
    wait_for 60 "the real tier 1 at $tier1" curl -sf "$tier1/api/v1/cloudlets/"
}

# registered TIER1 ENDPOINT: whether the real tier 1 lists that endpoint.
registered() {
    curl -sf "$1/api/v1/cloudlets/" |
        python3 -c 'import json, sys; sys.exit(not any(c["endpoint"] == sys.argv[1] for c in json.load(sys.stdin)))' "$2"
}

# --- the VM: the demo's disk, converted, its recipe --------------------------
step "building the demo VM (olive2022 demo)"
"$olive" -q demo --work-dir "$work/demo" --headless --screenshot "$work/demo.png" \
    >"$work/demo.log" 2>&1 || fail "olive2022 demo failed"
url=vmnetx+https://olivearchive.org/demo/olive2022-demo.nxpk
uuid=$("$olive" uuid "$url")
[[ -f $work/demo/RECIPES/$uuid.yaml ]] || fail "the demo left no recipe $uuid.yaml"
mkdir -p "$work/tier1-recipes"
# Tier 1 needs its own copy of every recipe it deploys.
cp "$work/demo/RECIPES/$uuid.yaml" "$work/tier1-recipes/"

# cloudlet NAME EXTRA...: our cloudlet reporting to $tier1; sets $api.
cloudlet() {
    local name=$1 port
    shift
    port=$(free_port)
    start "$name" "$olive" -v cloudlet --recipes "$work/demo/RECIPES" \
        --listen "127.0.0.1:$port" --data-dir "$work/$name" \
        --cache-dir "$work/$name/cache" --accel tcg --tier1-url "$tier1" "$@"
    api=http://127.0.0.1:$port
    wait_for 60 "cloudlet $name" curl -sf "$api/healthz"
    wait_for 60 "the real tier 1 to list cloudlet $name" registered "$tier1" "$api/api/v1/deploy"
}

# deploys NAME: how many deploys cloudlet NAME answered with 200.
deploys() {
    grep -c 'method=POST path="/api/v1/deploy/.*status=200' "$work/$1.log" || true
}

# check_screen REPORT WHO: the viewer's report shows the VM's screen.
check_screen() {
    [[ -s $1 ]] || fail "$2: the viewer reported nothing"
    python3 - "$1" "$2" <<'EOF' || fail "$2: the viewer did not see the VM's screen ($(cat "$1"))"
import json, sys
report = json.load(open(sys.argv[1]))
assert report["banner"] == "RFB 003.008\n", report
assert report["name"].startswith("QEMU"), report
assert report["width"] >= 640, report
EOF
}

# launch WHO TIER1 [PREFIX...]: our client through TIER1 (in a namespace
# when PREFIX is `ip netns exec NS`).
launch() {
    local who=$1 via=$2
    shift 2
    "$@" env -u OLIVE2022_VIEWER XDG_CACHE_HOME="$work/$who-cache" \
        RFB_REPORT="$work/$who.json" "$olive" launch --timeout 120 --tier1-url "$via" \
        --viewer "$probe" "$url" >"$work/$who.log" 2>&1 ||
        fail "$who: olive2022 launch through the real tier 1 failed"
    check_screen "$work/$who.json" "$who"
}

# --- 1 and 2: one cloudlet, both clients ------------------------------------
start_tier1 tier1 127.0.0.1
step "real tier 1 at $tier1"
cloudlet solo
step "our cloudlet registered with the real tier 1"
passed+=("registration with the real tier 1")

launch ours "$tier1"
[[ $(deploys solo) -ge 1 ]] || fail "the deploy did not reach our cloudlet"
passed+=("olive2022 launch through the real tier 1 reached the VM")

# The original client: sinfonia-tier3 deploys through the real tier 1, then
# runs our stage2 in its namespace. Its own teardown may hang: the report
# file proves the path, and the process group is stopped after it.
step "the original sinfonia-tier3 through the real tier 1"
start tier3 env XDG_CACHE_HOME="$work/tier3-cache" RFB_REPORT="$work/tier3.json" \
    /opt/olive-oracle/bin/sinfonia-tier3 "$tier1" "$uuid" "$olive" stage2 \
    --timeout 120 --viewer "$probe"
tier3=$started
wait_for 180 "the original client's viewer report" test -s "$work/tier3.json"
check_screen "$work/tier3.json" "sinfonia-tier3"
for _ in $(seq 20); do kill -0 "$tier3" 2>/dev/null || break; sleep 0.5; done
kill -TERM -- "-$tier3" 2>/dev/null || true
passed+=("the original sinfonia-tier3 through the real tier 1 reached the VM")

# --- 3: three sites ----------------------------------------------------------
# Site N: namespace with 10.231.N.2, veth to the host's 10.231.N.1. The
# second real tier 1 listens on 10.231.1.1 (a host address every site
# reaches through its default route; nothing is forwarded), so it sees each
# client's own address. Cloudlet N accepts only 10.231.N.0/24 and gives its
# WireGuard endpoint on 10.231.N.1.
tag=$$
for n in 1 2 3; do
    ns=olvi$tag-$n host_link=oi${tag}h$n ns_link=oi${tag}n$n
    ip netns add "$ns"
    namespaces+=("$ns")
    ip link add "$host_link" type veth peer name "$ns_link"
    links+=("$host_link")
    ip link set "$ns_link" netns "$ns"
    ip addr add "10.231.$n.1/24" dev "$host_link"
    ip link set "$host_link" up
    ip -n "$ns" addr add "10.231.$n.2/24" dev "$ns_link"
    ip -n "$ns" link set "$ns_link" up
    ip -n "$ns" link set lo up
    ip -n "$ns" route add default via "10.231.$n.1"
done
start_tier1 tier1-sites 10.231.1.1
step "real tier 1 for the sites at $tier1"
for n in 1 2 3; do
    wg=$(free_port)
    cloudlet "site$n" --accept-clients "10.231.$n.0/24" \
        --wg-listen "10.231.$n.1:$wg" --public-endpoint "10.231.$n.1:$wg"
done
step "three sites registered"
for n in 1 2 3; do
    before=($(deploys site1) $(deploys site2) $(deploys site3))
    launch "client$n" "$tier1" ip netns exec "olvi$tag-$n"
    for m in 1 2 3; do
        added=$(($(deploys "site$m") - before[m - 1]))
        if [[ $m == "$n" ]]; then
            ((added >= 1)) || fail "client $n was not deployed by its site's cloudlet"
        else
            ((added == 0)) || fail "client $n's deploy went to site $m's cloudlet"
        fi
    done
    step "client $n reached the VM of site $n's cloudlet"
done
passed+=("three sites: every client reached its own site's cloudlet through the real tier 1")

echo
echo "interop: ${#passed[@]} checks passed against the real Sinfonia tier 1:"
for check in "${passed[@]}"; do echo "  ok  $check"; done
