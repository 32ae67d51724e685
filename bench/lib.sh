# Shared by the bench scripts (sourced): a free loopback port, and stopping
# the processes a script started.

# port: a free TCP port on 127.0.0.1.
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# stop_pids PID…: Ctrl-C to each (our cloudlets stop their VMs), then
# SIGKILL to whatever is left after 20 s (a Flask server may ignore it).
stop_pids() {
    for pid in "$@"; do kill -INT "$pid" 2>/dev/null || true; done
    for _ in $(seq 200); do
        alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
