#!/usr/bin/env bash
# Proxy cost: requests/s and latency for the `echo` function reached three ways in one run,
#   direct      wrk -> the function process
#   nginx       wrk -> nginx (reverse proxy, keep-alive upstream) -> the function process
#   fjord       wrk -> fjord-lb -> fjord-node-agent -> the function instance
# with the same wrk settings. Everything shares this machine's cores with wrk, so read the
# ratios, not the absolute figures.
#
#   bench/proxy.sh [SECONDS] [CONNECTIONS]      defaults: 10 and 64
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds="${1:-10}"
connections="${2:-64}"

need() { command -v "$1" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need curl curl
[ -x /usr/sbin/nginx ] || { apt-get update -qq && apt-get install -y -qq nginx-light >/dev/null 2>&1 || apt-get install -y -qq nginx >/dev/null; }

cargo build --release --quiet -p fjord -p fjord-examples
bin="$PWD/target/release"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
lb_port=$(free_port); cp_port=$(free_port); agent_port=$(free_port); direct_port=$(free_port); nginx_port=$(free_port)
pids=()
cleanup() {
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

PORT=$direct_port "$bin/fjord-echo" &
pids+=($!)

mkdir -p "$work/nginx"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    upstream echo { server 127.0.0.1:$direct_port; keepalive 256; }
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            proxy_pass http://echo;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
CONF
/usr/sbin/nginx -p "$work/nginx" -c "$work/nginx.conf"

"$bin/fjord" dev --data-dir "$work/dev" --lb-port "$lb_port" --nats-port "$(free_port)" --control-plane-port "$cp_port" \
    --agent-port "$agent_port" --no-examples > "$work/dev.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -q "Press Ctrl-C" "$work/dev.out" 2>/dev/null && break; sleep 0.1; done
grep -q "Press Ctrl-C" "$work/dev.out" || { cat "$work/dev.out"; echo "fjord dev did not start" >&2; exit 1; }
export FJORD_ADDR="http://127.0.0.1:$cp_port" FJORD_TOKEN_FILE="$work/dev/admin.token"
cat > "$work/echo.yaml" <<YAML
name: echo
command: ["$bin/fjord-echo"]
concurrency: 1000
min: 1
YAML
"$bin/fjord" deploy -f "$work/echo.yaml" >/dev/null
until curl -sf -d warm "http://127.0.0.1:$lb_port/function/echo" >/dev/null; do sleep 0.05; done
until curl -sf -d warm "http://127.0.0.1:$nginx_port/" >/dev/null; do sleep 0.05; done

run() { # url -> "rps p50_us p99_us"
    wrk -t2 -c"$connections" -d"${seconds}s" --latency -s /dev/stdin "$1" 2>/dev/null <<'LUA' | awk '
function us(v) { if (v ~ /us$/) return v+0; if (v ~ /ms$/) return v*1000; if (v ~ /s$/) return v*1000000; return v }
/^Requests\/sec/ {rps=$2} /^ +50%/ {p50=us($2)} /^ +99%/ {p99=us($2)}
END {printf "%.0f %.0f %.0f\n", rps, p50, p99}'
wrk.method = "POST"
wrk.body = "hello"
LUA
}
read -r d_rps d_p50 d_p99 < <(run "http://127.0.0.1:$direct_port/")
read -r n_rps n_p50 n_p99 < <(run "http://127.0.0.1:$nginx_port/")
read -r f_rps f_p50 f_p99 < <(run "http://127.0.0.1:$lb_port/function/echo")

echo
echo "Proxy cost, wrk -t2 -c$connections -d${seconds}s, POST 5 bytes to echo, one 2-core machine:"
printf '  %-34s %10s %10s %10s %12s\n' "path" "req/s" "p50 (us)" "p99 (us)" "req/s vs nginx"
printf '  %-34s %10s %10s %10s %12s\n' "direct to the function" "$d_rps" "$d_p50" "$d_p99" "$(awk -v a="$d_rps" -v b="$n_rps" 'BEGIN{printf "%.2f", a/b}')"
printf '  %-34s %10s %10s %10s %12s\n' "nginx -> function" "$n_rps" "$n_p50" "$n_p99" "1.00"
printf '  %-34s %10s %10s %10s %12s\n' "fjord lb -> agent -> function" "$f_rps" "$f_p50" "$f_p99" "$(awk -v a="$f_rps" -v b="$n_rps" 'BEGIN{printf "%.2f", a/b}')"
