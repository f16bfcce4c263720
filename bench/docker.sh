#!/usr/bin/env bash
# The docker runtime's numbers, in one run:
#   - cold start, image already local: request to first byte through the lb for a function
#     scaled to zero, beside plain `docker run` of the same image until it answers, and the ratio;
#   - the same cold starts with pre-created containers turned off (FJORD_PRECREATE_CONTAINERS=
#     false, in a platform of its own started first), and the ratio: what pre-creation saves;
#   - where those cold starts spent their time (p50 per phase, from the agent's "started in"
#     platform log line: image check, create, start, port lookup, first readiness answer) and
#     how many took a pre-created container;
#   - warm invoke latency through the docker runtime (one connection, back to back);
#   - the agent's memory with 50 warm instances;
#   - warm latency and the engine's port proxies with instances reached on a published loopback
#     port instead of the function network (FJORD_INSTANCE_ADDRESS=published, a third platform).
#
#   bench/docker.sh [COLD_SAMPLES] [WARM_SECONDS]       defaults: 20 and 10
#
# Needs a Docker engine. Builds the release binaries and the FROM-scratch example images
# (scripts/build-example-images.sh), starts `fjord dev --runtime docker` on free ports.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
samples="${1:-20}"
seconds="${2:-10}"

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need curl curl
docker version >/dev/null 2>&1 || { echo "no Docker engine answers" >&2; exit 1; }

cargo build --release --quiet -p fjord
scripts/build-example-images.sh bench >/dev/null
bin="${CARGO_TARGET_DIR:-$PWD/target}/release"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    docker ps -aq --filter label=fjord-bench=1 | xargs -r docker rm -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts `fjord dev --runtime docker` on free ports in $work/$1 (the environment reaches the
# agent: FJORD_PRECREATE_CONTAINERS=false turns pre-created containers off); sets lb, dev_pid
# and the CLI's FJORD_ADDR and FJORD_TOKEN_FILE.
start_dev() {
    local dir="$work/$1"
    local lb_port cp_port agent_port
    lb_port=$(free_port); cp_port=$(free_port); agent_port=$(free_port)
    "$bin/fjord" dev --runtime docker --no-examples --agent-memory-mib 16384 --data-dir "$dir" \
        --lb-port "$lb_port" --nats-port "$(free_port)" --control-plane-port "$cp_port" --agent-port "$agent_port" > "$work/$1.out" 2>&1 &
    dev_pid=$!
    pids+=("$dev_pid")
    for _ in $(seq 1 300); do grep -q "Press Ctrl-C" "$work/$1.out" 2>/dev/null && break; sleep 0.1; done
    grep -q "Press Ctrl-C" "$work/$1.out" || { cat "$work/$1.out"; echo "fjord dev did not start" >&2; exit 1; }
    export FJORD_ADDR="http://127.0.0.1:$cp_port" FJORD_TOKEN_FILE="$dir/admin.token"
    lb="http://127.0.0.1:$lb_port"
}
stop_dev() { kill "$dev_pid" 2>/dev/null || true; wait "$dev_pid" 2>/dev/null || true; }

# Cold starts through Fjord, every sample confirmed cold by the agent's header, into
# $work/cold-$1.txt (seconds); sets cold_seen and phases (the agent's account, p50 per phase).
cold_run() {
    cat > "$work/cold.yaml" <<YAML
name: cold
image: fjord-example/echo:bench
scale_to_zero_after: 1s
memory_mib: 64
YAML
    "$bin/fjord" deploy -f "$work/cold.yaml" >/dev/null
    until curl -sf -d x "$lb/function/cold" >/dev/null; do sleep 0.05; done
    instances() { "$bin/fjord" describe cold --json | python3 -c 'import json,sys; print(sum(i["ready"]+i["starting"] for i in json.load(sys.stdin)["instances"]))'; }
    : > "$work/cold-$1.txt"; cold_seen=0
    for _ in $(seq 1 "$samples"); do
        until [ "$(instances)" != 0 ]; do sleep 0.1; done
        until [ "$(instances)" = 0 ]; do sleep 0.1; done
        curl -s -o /dev/null -D "$work/h.txt" -d x -w '%{time_starttransfer}\n' "$lb/function/cold" >> "$work/cold-$1.txt"
        grep -qi '^x-fjord-cold-start: 1' "$work/h.txt" && cold_seen=$((cold_seen + 1))
        # The agent keeps the logs of a few ended instances only: collect each start's line now.
        "$bin/fjord" logs cold --json --tail 200 >> "$work/logs-$1.jsonl"
    done
    phases=$(python3 -c '
import json, re, sys
samples = int(sys.argv[1])
pattern = re.compile(r"started in ([\d.]+) ms: image ([\d.]+) ms, create ([\d.]+) ms, start ([\d.]+) ms, "
                     r"port ([\d.]+) ms, ready ([\d.]+) ms( \(pre-created container\))?")
seen = {}
text, at, decoder = open(sys.argv[2]).read(), 0, json.JSONDecoder()
dumps = []
while text[at:].strip():
    at += len(text[at:]) - len(text[at:].lstrip())
    dump, at = decoder.raw_decode(text, at)
    dumps.append(dump)
for dump in dumps:
    for l in dump["lines"]:
        m = pattern.search(l["line"]) if l["stream"] == "platform" else None
        if m:
            seen[(l["instance"], l["timestamp_ms"])] = m
starts = [seen[k] for k in sorted(seen, key=lambda k: k[1])][-samples:]
def p50(i):
    v = sorted(float(m.group(i)) for m in starts)
    return v[(len(v) - 1) // 2] if v else float("nan")
names = ["total", "image", "create", "start", "port", "ready"]
print("  ".join(f"{n} {p50(i + 1):.1f}" for i, n in enumerate(names)),
      f"| {sum(1 for m in starts if m.group(7))} of {len(starts)} from a pre-created container")
' "$samples" "$work/logs-$1.jsonl")
}

# --- without pre-created containers: every cold start creates its container
export FJORD_PRECREATE_CONTAINERS=false
start_dev dev-no-precreate
unset FJORD_PRECREATE_CONTAINERS
cold_run no-precreate
plain_seen=$cold_seen; plain_phases=$phases
stop_dev

# --- the default: a pre-created container waits for each function's next cold start
start_dev dev
cold_run precreate
# --- plain docker run of the same image until it answers, same limits. The timer runs in one
#     python process: `docker run -d`, `docker port`, then an HTTP request every millisecond
#     (as the agent probes), so the poll itself costs no process starts.
: > "$work/run.txt"
for _ in $(seq 1 "$samples"); do
    python3 - >> "$work/run.txt" <<'PY'
import http.client, subprocess, time
start = time.monotonic()
cid = subprocess.run(["docker", "run", "-d", "--rm", "--label", "fjord-bench=1", "-m", "64m",
                      "-e", "PORT=8080", "-e", "HOST=0.0.0.0", "-p", "127.0.0.1::8080",
                      "fjord-example/echo:bench"], check=True, capture_output=True, text=True).stdout.strip()
port = int(subprocess.run(["docker", "port", cid, "8080/tcp"], check=True, capture_output=True,
                          text=True).stdout.splitlines()[0].rsplit(":", 1)[1])
while True:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        c.request("POST", "/", body=b"x")
        if c.getresponse().status == 200:
            break
    except OSError:
        pass
    time.sleep(0.001)
print(int((time.monotonic() - start) * 1e6))
subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
PY
done
stats() { sort -n | awk -v scale="$1" '{v[NR]=$1*scale} END{p50=v[int((NR+1)*0.50)]; p95=v[int(NR*0.95+0.999)]; if (p95=="") p95=v[NR]; printf "%.1f %.1f\n", p50, p95}'; }
read -r f_p50 f_p95 < <(stats 1000 < "$work/cold-precreate.txt")
read -r n_p50 n_p95 < <(stats 1000 < "$work/cold-no-precreate.txt")
read -r d_p50 d_p95 < <(stats 0.001 < "$work/run.txt")

# --- warm latency through the docker runtime (sets the $1 figures from the platform at $lb)
warm_run() {
    cat > "$work/warm.yaml" <<YAML
name: warm
image: fjord-example/echo:bench
memory_mib: 64
YAML
    "$bin/fjord" deploy -f "$work/warm.yaml" >/dev/null
    until curl -sf -d x "$lb/function/warm" >/dev/null; do sleep 0.05; done
    wrk -t1 -c1 -d"${seconds}s" --latency "$lb/function/warm" 2>/dev/null | awk '
function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
/^ +50%/ {p50=us($2)} /^ +99%/ {p99=us($2)} END {printf "%.0f %.0f\n", p50, p99}'
}
read -r w_p50 w_p99 < <(warm_run)

# --- agent memory with 50 warm instances (the scheduler places them within the node's
#     CPU, 4000 millicores by default: 50 x 50)
cat > "$work/many.yaml" <<YAML
name: many
image: fjord-example/echo:bench
memory_mib: 32
cpu_millis: 50
min: 50
max: 50
YAML
agent_pid=$(python3 -c "import json;print([m['pid'] for m in json.load(open('$work/dev/cluster.json'))['members'] if m['role']=='node-agent'][0])")
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
before=$(rss "$agent_pid")
"$bin/fjord" deploy -f "$work/many.yaml" >/dev/null
ready() { "$bin/fjord" describe many --json | python3 -c 'import json,sys; print(sum(i["ready"] for i in json.load(sys.stdin)["instances"]))'; }
deadline=$((SECONDS + 300))
until [ "$(ready)" -ge 50 ]; do [ $SECONDS -lt $deadline ] || { echo "50 instances not ready in 300 s" >&2; exit 1; }; sleep 1; done
sleep 2
after=$(rss "$agent_pid")
# The engine's port proxies: one process per published port (none when instances are reached on
# the function network, the default).
proxies=$({ pgrep -x docker-proxy || true; } | wc -l)
proxy_kib=$(for p in $(pgrep -x docker-proxy || true); do rss "$p"; done | awk '{s+=$1} END {print s+0}')
stop_dev

# --- the same warm latency with instances reached on a published loopback port instead, and
#     the port proxies 50 instances then bring
export FJORD_INSTANCE_ADDRESS=published
start_dev dev-published
unset FJORD_INSTANCE_ADDRESS
read -r pw_p50 pw_p99 < <(warm_run)
"$bin/fjord" deploy -f "$work/many.yaml" >/dev/null
deadline=$((SECONDS + 300))
until [ "$(ready)" -ge 50 ]; do [ $SECONDS -lt $deadline ] || { echo "50 instances not ready in 300 s" >&2; exit 1; }; sleep 1; done
sleep 2
p_proxies=$({ pgrep -x docker-proxy || true; } | wc -l)
p_proxy_kib=$(for p in $(pgrep -x docker-proxy || true); do rss "$p"; done | awk '{s+=$1} END {print s+0}')

echo
echo "Docker runtime (image local, FROM scratch echo):"
echo "  cold start, request to first byte through the lb ($samples samples each):"
echo "    fjord                         p50 ${f_p50} ms   p95 ${f_p95} ms   ($cold_seen confirmed cold)"
echo "    fjord, no pre-created ones    p50 ${n_p50} ms   p95 ${n_p95} ms   ($plain_seen confirmed cold)"
echo "    docker run                    p50 ${d_p50} ms   p95 ${d_p95} ms   (create + start + first answer, same image and memory limit)"
awk -v a="$f_p50" -v b="$d_p50" -v c="$f_p95" -v d="$d_p95" 'BEGIN{printf "    ratio fjord / docker run: p50 %.2f  p95 %.2f\n", a/b, c/d}'
awk -v a="$f_p50" -v b="$n_p50" -v c="$f_p95" -v d="$n_p95" 'BEGIN{printf "    ratio with / without pre-created containers: p50 %.2f  p95 %.2f\n", a/b, c/d}'
echo "  inside the agent, p50 per phase in ms (the agent's own account of the same starts):"
echo "    with pre-created containers:    $phases"
echo "    without:                        $plain_phases"
echo "  warm invoke through lb -> agent -> container, one connection:"
echo "    reached on the function network (default)   p50 ${w_p50} us   p99 ${w_p99} us"
echo "    reached on a published loopback port         p50 ${pw_p50} us   p99 ${pw_p99} us"
awk -v a="$w_p50" -v b="$pw_p50" 'BEGIN{printf "    ratio network / published: p50 %.2f\n", a/b}'
echo "  agent RSS: $((before / 1024)) MiB idle, $((after / 1024)) MiB with 50 warm instances"
echo "  engine port proxies with 51 instances: $proxies processes, $((proxy_kib / 1024)) MiB (network, default);" \
     "$p_proxies processes, $((p_proxy_kib / 1024)) MiB (published)"
