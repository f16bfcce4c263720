#!/usr/bin/env bash
# Asynchronous calls through the lb and NATS JetStream, against a synchronous call through the
# same lb in the same run:
#   1. enqueue throughput and latency of the 202 (hey, POST 5 bytes to /async-function/jobs),
#      alternating rounds with synchronous calls to /function/echo;
#   2. delay from enqueue to the function's start, at rest and behind a backlog of 10 times the
#      function's async.concurrency (100 ms calls), and for another function meanwhile.
#
#   bench/async.sh [REQUESTS_PER_ROUND] [ROUNDS]       defaults: 5000 and 3
#
# Needs hey, curl and nats-server (installed from Debian when missing). Builds the release
# binaries (PROFILE=debug for a quick look), runs `fjord dev` on free ports in a temporary
# directory with its own nats-server, and stops it at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
requests="${1:-5000}"
rounds="${2:-3}"
profile="${PROFILE:-release}"

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need hey hey
need curl curl
need nats-server nats-server

if [ "$profile" = release ]; then
    cargo build --release --quiet -p fjord -p fjord-examples
    bin="$PWD/target/release"
else
    cargo build --quiet -p fjord -p fjord-examples
    bin="$PWD/target/debug"
fi
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lb_port=$(free_port); cp_port=$(free_port); agent_port=$(free_port); nats_port=$(free_port)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/fjord" dev --data-dir "$work/dev" --lb-port "$lb_port" --nats-port "$nats_port" --control-plane-port "$cp_port" \
    --agent-port "$agent_port" --no-examples > "$work/dev.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q "Press Ctrl-C" "$work/dev.out" 2>/dev/null && break; sleep 0.1; done
grep -q "Press Ctrl-C" "$work/dev.out" || { cat "$work/dev.out"; echo "fjord dev did not start" >&2; exit 1; }
export FJORD_ADDR="http://127.0.0.1:$cp_port" FJORD_TOKEN_FILE="$work/dev/admin.token"
lb="http://127.0.0.1:$lb_port"

deploy() { # name program concurrency async_concurrency
    cat > "$work/$1.yaml" <<YAML
name: $1
command: ["$bin/$2"]
concurrency: $3
memory_mib: 64
min: 1
async: {concurrency: $4}
YAML
    "$bin/fjord" deploy -f "$work/$1.yaml" >/dev/null
    until curl -sf -d warm "$lb/function/$1" >/dev/null; do sleep 0.05; done
}
deploy echo fjord-echo 32 32
deploy jobs fjord-jobs 32 16
deploy other fjord-jobs 4 4
until curl -sf -o /dev/null -X POST -d x "$lb/async-function/jobs"; do sleep 0.2; done

# hey's summary -> "requests/s p50_ms p99_ms non2xx"
summary() {
    awk '/Requests\/sec:/{rps=$2} /50% in/{p50=$3} /99% in/{p99=$3}
         /^[ \t]*\[[0-9]+\]/{code=substr($1,2,3); if (code !~ /^2/) bad+=$2}
         END{printf "%.0f %.2f %.2f %d\n", rps, p50*1000, p99*1000, bad}'
}
: > "$work/enqueue.txt"; : > "$work/sync.txt"
for _ in $(seq 1 "$rounds"); do
    hey -n "$requests" -c 32 -m POST -d hello "$lb/async-function/jobs" | summary >> "$work/enqueue.txt"
    hey -n "$requests" -c 32 -m POST -d hello "$lb/function/echo" | summary >> "$work/sync.txt"
done
median() { sort -n | awk '{v[NR]=$1} END{print v[int((NR+1)/2)]}'; }
col() { awk -v c="$2" '{print $c}' "$1" | median; }
enq_rps=$(col "$work/enqueue.txt" 1); enq_p50=$(col "$work/enqueue.txt" 2); enq_p99=$(col "$work/enqueue.txt" 3)
sync_rps=$(col "$work/sync.txt" 1); sync_p50=$(col "$work/sync.txt" 2); sync_p99=$(col "$work/sync.txt" 3)
enq_bad=$(awk '{s+=$4} END{print s+0}' "$work/enqueue.txt"); sync_bad=$(awk '{s+=$4} END{print s+0}' "$work/sync.txt")

# Wait until jobs' queue is empty again (the enqueued rounds run at 16 at a time).
queued() { "$bin/fjord" describe "$1" --json | python3 -c 'import json,sys; q=json.load(sys.stdin).get("queue") or {}; print(q.get("queued",0)+q.get("in_flight",0) if "queued" in q else -1)'; }
until [ "$(queued jobs)" = 0 ]; do sleep 1; done

# Enqueue -> start, from the call's record (both times taken by the platform's clock).
delay_of() { # call id -> started - enqueued, ms, once the call has started
    for _ in $(seq 1 600); do
        v=$(curl -sf "$lb/async-calls/$1" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["started_ms"]-r["enqueued_ms"] if r.get("started_ms") else "")' || true)
        [ -n "$v" ] && { echo "$v"; return; }
        sleep 0.1
    done
    echo "call $1 never started" >&2; exit 1
}
percentile_line() { sort -n | awk '{v[NR]=$1} END{p50=v[int((NR+1)*0.5)]; p99=v[int(NR*0.99+0.999)]; if (p99=="") p99=v[NR]; printf "%d %d %d\n", p50, p99, v[NR]}'; }
: > "$work/rest.txt"
for i in $(seq 1 30); do
    curl -sf -o /dev/null -X POST -H "x-call-id: rest-$i" -d x "$lb/async-function/jobs"
    delay_of "rest-$i" >> "$work/rest.txt"
done
read -r rest_p50 rest_p99 rest_max < <(percentile_line < "$work/rest.txt")

# A backlog of 10 x async.concurrency (16) calls of 100 ms each, then the sample behind it; and a
# call to `other` at the same moment.
: > "$work/backlog.txt"; : > "$work/other.txt"
for r in $(seq 1 "$rounds"); do
    hey -n 160 -c 16 -m POST -d x "$lb/async-function/jobs/?ms=100" > /dev/null
    curl -sf -o /dev/null -X POST -H "x-call-id: behind-$r" -d x "$lb/async-function/jobs"
    curl -sf -o /dev/null -X POST -H "x-call-id: other-$r" -d x "$lb/async-function/other"
    delay_of "behind-$r" >> "$work/backlog.txt"
    delay_of "other-$r" >> "$work/other.txt"
    until [ "$(queued jobs)" = 0 ]; do sleep 0.5; done
done
read -r back_p50 _ back_max < <(percentile_line < "$work/backlog.txt")
read -r other_p50 _ other_max < <(percentile_line < "$work/other.txt")

echo
echo "Enqueue vs synchronous call through the same lb, hey -n $requests -c 32, POST 5 bytes, median of $rounds alternating rounds ($profile build):"
printf '  %-40s %12s %10s %10s %8s\n' "route" "requests/s" "p50 (ms)" "p99 (ms)" "non-2xx"
printf '  %-40s %12s %10s %10s %8s\n' "POST /async-function/jobs (202, stored)" "$enq_rps" "$enq_p50" "$enq_p99" "$enq_bad"
printf '  %-40s %12s %10s %10s %8s\n' "POST /function/echo (200, answered)" "$sync_rps" "$sync_p50" "$sync_p99" "$sync_bad"
awk -v a="$enq_rps" -v b="$sync_rps" -v c="$enq_p99" -v d="$sync_p99" \
    'BEGIN{printf "  %-40s %12.2f %10s %10.2f\n", "ratio enqueue / sync", a/b, "", c/d}'
echo
echo "Enqueue to function start (ms, from the call record):"
printf '  %-58s %8s %8s %8s\n' "case" "p50" "p99" "max"
printf '  %-58s %8s %8s %8s\n' "at rest, warm instance (30 calls)" "$rest_p50" "$rest_p99" "$rest_max"
printf '  %-58s %8s %8s %8s\n' "behind 160 calls of 100 ms, async.concurrency 16 ($rounds)" "$back_p50" "-" "$back_max"
printf '  %-58s %8s %8s %8s\n' "another function meanwhile ($rounds)" "$other_p50" "-" "$other_max"
echo "  (behind the backlog, the ideal is 160 x 100 ms / 16 = 1000 ms)"
