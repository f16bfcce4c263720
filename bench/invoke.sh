#!/usr/bin/env bash
# Warm invoke latency through Fjord (lb -> agent -> function) against calling the same function
# directly on its port, in the same run; and the process runtime's cold start (request to first
# byte with no instance running).
#
#   bench/invoke.sh [SECONDS_PER_WARM_RUN] [COLD_SAMPLES]     defaults: 10 and 20
#
# Needs wrk and curl (installed from Debian when missing). Builds the release binaries, runs
# `fjord dev` on free ports in a temporary directory, and stops it at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-10}"
samples="${2:-20}"

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need curl curl

cargo build --release --quiet -p fjord -p fjord-examples
bin="$PWD/target/release"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lb_port=$(free_port); cp_port=$(free_port); agent_port=$(free_port); direct_port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/fjord" dev --data-dir "$work/dev" --lb-port "$lb_port" --nats-port "$(free_port)" --control-plane-port "$cp_port" \
    --agent-port "$agent_port" --no-examples > "$work/dev.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q "Press Ctrl-C" "$work/dev.out" 2>/dev/null && break; sleep 0.1; done
grep -q "Press Ctrl-C" "$work/dev.out" || { cat "$work/dev.out"; echo "fjord dev did not start" >&2; exit 1; }
export FJORD_ADDR="http://127.0.0.1:$cp_port" FJORD_TOKEN_FILE="$work/dev/admin.token"
lb="http://127.0.0.1:$lb_port"

cat > "$work/echo.yaml" <<YAML
name: echo
command: ["$bin/fjord-echo"]
concurrency: 16
memory_mib: 64
YAML
"$bin/fjord" deploy -f "$work/echo.yaml" >/dev/null
until curl -sf -d warm "$lb/function/echo" >/dev/null; do sleep 0.05; done

PORT=$direct_port "$bin/fjord-echo" &
pids+=($!)
until curl -sf -d warm "http://127.0.0.1:$direct_port/" >/dev/null; do sleep 0.05; done

# One connection, back-to-back requests: latency, not throughput.
percentiles() { # wrk output -> "p50 p99" in microseconds
    awk '/^ +50%/{p50=$2} /^ +99%/{p99=$2} END{print p50, p99}' | awk '
        function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
        { printf "%.0f %.0f\n", us($1), us($2) }'
}
run_wrk() { wrk -t1 -c1 -d"${seconds}s" --latency -s /dev/stdin "$1" <<'LUA' 2>/dev/null
wrk.method = "POST"
wrk.body = "hello"
LUA
}
read -r direct_p50 direct_p99 < <(run_wrk "http://127.0.0.1:$direct_port/" | percentiles)
read -r fjord_p50 fjord_p99 < <(run_wrk "$lb/function/echo" | percentiles)

# Cold starts: a function that scales to zero after 1 s; wait until no instance is left, then
# time one request to its first byte. Each answer must carry the agent's x-fjord-cold-start
# header: the count is printed, so a warm hit cannot pass for a cold start.
cat > "$work/cold.yaml" <<YAML
name: cold
command: ["$bin/fjord-echo"]
scale_to_zero_after: 1s
memory_mib: 64
YAML
"$bin/fjord" deploy -f "$work/cold.yaml" >/dev/null
until curl -sf -d x "$lb/function/cold" >/dev/null; do sleep 0.05; done
instances() { "$bin/fjord" describe cold --json | python3 -c 'import json,sys; print(sum(i["ready"]+i["starting"] for i in json.load(sys.stdin)["instances"]))'; }
: > "$work/cold.txt"
cold_seen=0
for _ in $(seq 1 "$samples"); do
    # Heartbeats lag: first see the last call's instance reported, then see it reaped.
    until [ "$(instances)" != 0 ]; do sleep 0.1; done
    until [ "$(instances)" = 0 ]; do sleep 0.1; done
    curl -s -o /dev/null -D "$work/headers.txt" -d x -w '%{time_starttransfer}\n' "$lb/function/cold" >> "$work/cold.txt"
    grep -qi '^x-fjord-cold-start: 1' "$work/headers.txt" && cold_seen=$((cold_seen + 1))
done
read -r cold_p50 cold_p95 cold_max < <(sort -n "$work/cold.txt" | awk '{v[NR]=$1*1000} END{
    p50=v[int((NR+1)*0.50)]; p95=v[int(NR*0.95+0.999)]; if (p95=="") p95=v[NR]; printf "%.1f %.1f %.1f\n", p50, p95, v[NR]}')

echo
echo "Warm invoke, one connection, ${seconds}s each (wrk -t1 -c1 --latency), POST 5-byte body to echo:"
printf '  %-34s %10s %10s\n' "path" "p50 (us)" "p99 (us)"
printf '  %-34s %10s %10s\n' "direct to the function process" "$direct_p50" "$direct_p99"
printf '  %-34s %10s %10s\n' "fjord: lb -> agent -> function" "$fjord_p50" "$fjord_p99"
awk -v a="$fjord_p50" -v b="$direct_p50" -v c="$fjord_p99" -v d="$direct_p99" \
    'BEGIN{printf "  %-34s %10.2f %10.2f\n", "ratio fjord / direct", a/b, c/d}'
echo
echo "Cold start, process runtime, request to first byte through the lb ($samples samples):"
echo "  p50 ${cold_p50} ms   p95 ${cold_p95} ms   max ${cold_max} ms   ($cold_seen of $samples answers carried x-fjord-cold-start)"
