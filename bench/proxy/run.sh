#!/usr/bin/env bash
# Proxy benchmark: wrk direct to a backend, through the real `wharf server`,
# through the wharf proxy crate alone (bench_proxy), through nginx and
# through HAProxy as keep-alive reverse proxies, in one run on 127.0.0.1.
# Then TLS: wharf's HTTPS listener and nginx terminating TLS with the same
# certificate (P-256, for `localhost`), with keep-alive connections and
# with a new connection (a full handshake) per request.
#
# Backend: nginx (1 worker, access_log off) answering `return 200` with a
# 13-byte text body, started by `wharf server` as the one instance of an
# app, so wharf routes to it the way it routes to any app. All three
# proxies forward to that same backend.
#
# Env knobs: THREADS (wharf tokio workers = nginx proxy worker_processes,
# default 1), DURATION (default 10s), CONNS (default 64), WARMUP (default 3s).
set -euo pipefail

THREADS=${THREADS:-1}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-3s}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

need_install=()
command -v wrk >/dev/null || need_install+=(wrk)
command -v curl >/dev/null || need_install+=(curl)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_install+=(nginx)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_install+=(haproxy)
command -v openssl >/dev/null || need_install+=(openssl)
if [ ${#need_install[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_install[@]}"
  else
    echo "error: missing ${need_install[*]}; install them (apt-get install ${need_install[*]}) or run as root" >&2
    exit 1
  fi
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
HAPROXY=$(command -v haproxy || echo /usr/sbin/haproxy)

echo "== building wharf and bench_proxy (release)" >&2
(cd "$ROOT" && cargo build --release -p wharf -p wharf-proxy --bins --example bench_proxy >&2)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BENCH_BIN=$TARGET_DIR/release/examples/bench_proxy
WHARF_BIN=$TARGET_DIR/release/wharf

WORK=$(mktemp -d /tmp/wharf-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null \
    || echo $((20000 + RANDOM % 30000))
}

wait_port() { # port [log file to show when nothing listens]
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "error: nothing listening on port $1" >&2
  [ -n "${2:-}" ] && tail -n 20 "$2" >&2
  exit 1
}

start_nginx() { # name workers port body-of-http-block
  local dir=$WORK/$1
  mkdir -p "$dir/logs"
  cat >"$dir/nginx.conf" <<CONF
worker_processes $2;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $dir/body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  keepalive_requests 1000000;
  $4
}
CONF
  "$NGINX" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' 2>"$dir/logs/stderr" &
  PIDS+=($!)
  wait_port "$3" "$dir/logs/stderr"
}

# The backend: an app of `wharf server`, whose one instance is nginx on $PORT.
mkdir -p "$WORK/app"
cat >"$WORK/app/nginx.conf.in" <<'CONF'
worker_processes 1;
pid nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path body; proxy_temp_path proxy; fastcgi_temp_path fastcgi;
  uwsgi_temp_path uwsgi; scgi_temp_path scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:__PORT__;
    location / { default_type text/plain; return 200 'hello, world\n'; }
  }
}
CONF
# One certificate for wharf's and nginx's TLS.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$WORK/app/key.pem" -out "$WORK/app/cert.pem" -days 30 \
  -subj /CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null
# `web` takes any host on plain HTTP; `tls` is `localhost` over HTTPS (each
# its own nginx instance, the same config).
cat >"$WORK/app/wharf.toml" <<TOML
name = "bench"

[processes.web]
command = "mkdir -p web && cd web && sed s/__PORT__/\$PORT/ ../nginx.conf.in > nginx.conf && mkdir -p logs && exec $NGINX -p \"\$PWD/\" -c \"\$PWD/nginx.conf\" -g 'daemon off;'"
http = { path = "/" }
health = { path = "/", interval = "1s", timeout = "1s", threshold = 1 }

[processes.tls]
command = "mkdir -p tls && cd tls && sed s/__PORT__/\$PORT/ ../nginx.conf.in > nginx.conf && mkdir -p logs && exec $NGINX -p \"\$PWD/\" -c \"\$PWD/nginx.conf\" -g 'daemon off;'"
http = { host = "localhost", tls = { cert = "cert.pem", key = "key.pem" } }
health = { path = "/", interval = "1s", timeout = "1s", threshold = 1 }
TOML
WHARF_PORT=$(free_port)
WHARF_TLS_PORT=$(free_port)
WHARF_DATA="$WORK/data" TOKIO_WORKER_THREADS="$THREADS" HOME="$WORK" "$WHARF_BIN" server \
  --listen "127.0.0.1:$WHARF_PORT" --https-listen "127.0.0.1:$WHARF_TLS_PORT" \
  --admin 127.0.0.1:0 --no-access-log 2>"$WORK/wharf-server.log" &
PIDS+=($!)
wait_port "$WHARF_PORT"
for _ in $(seq 1 100); do [ -S "$WORK/data/wharf.sock" ] && break; sleep 0.05; done
WHARF_DATA="$WORK/data" HOME="$WORK" "$WHARF_BIN" deploy "$WORK/app" >&2
read -r BACKEND_PORT TLS_BACKEND_PORT < <(WHARF_DATA="$WORK/data" HOME="$WORK" "$WHARF_BIN" status --json \
  | python3 -c '
import json, sys
i = {x["process"]: x["port"] for x in json.load(sys.stdin)["apps"][0]["instances"]}
print(i["web"], i["tls"])')
wait_port "$BACKEND_PORT"
wait_port "$TLS_BACKEND_PORT"

NGINX_PROXY_PORT=$(free_port)
start_nginx proxy "$THREADS" "$NGINX_PROXY_PORT" "
  upstream backend { server 127.0.0.1:$BACKEND_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_PROXY_PORT;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
    }
  }"

NGINX_TLS_PORT=$(free_port)
start_nginx tls "$THREADS" "$NGINX_TLS_PORT" "
  upstream backend { server 127.0.0.1:$TLS_BACKEND_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$NGINX_TLS_PORT ssl;
    ssl_certificate $WORK/app/cert.pem;
    ssl_certificate_key $WORK/app/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host \$host;
    }
  }"

HAPROXY_PORT=$(free_port)
mkdir -p "$WORK/haproxy"
cat >"$WORK/haproxy/haproxy.cfg" <<CFG
global
  nbthread $THREADS
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend fe
  bind 127.0.0.1:$HAPROXY_PORT
  default_backend be
backend be
  server b1 127.0.0.1:$BACKEND_PORT maxconn 1000
CFG
"$HAPROXY" -f "$WORK/haproxy/haproxy.cfg" -db >"$WORK/haproxy/log" 2>&1 &
PIDS+=($!)
wait_port "$HAPROXY_PORT" "$WORK/haproxy/log"

"$BENCH_BIN" "127.0.0.1:$BACKEND_PORT" 0 "$THREADS" >"$WORK/crate.port" &
PIDS+=($!)
for _ in $(seq 1 100); do [ -s "$WORK/crate.port" ] && break; sleep 0.05; done
CRATE_PORT=$(head -n1 "$WORK/crate.port")
wait_port "$CRATE_PORT"

# to_ms VALUE-WITH-UNIT → milliseconds
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000;
    printf "%.3f", n }'
}

declare -A RPS P50 P99
run() { # name port [url [extra wrk args…]]
  local url="${3:-http://127.0.0.1:$2/}"
  local extra=("${@:4}")
  curl -kfsS "$url" >/dev/null 2>&1 || { echo "error: $1 does not answer on $url" >&2; exit 1; }
  wrk -t1 -c"$CONNS" -d"$WARMUP" "${extra[@]}" "$url" >/dev/null
  local out
  out=$(wrk -t1 -c"$CONNS" -d"$DURATION" --latency "${extra[@]}" "$url")
  echo "---- $1: wrk -t1 -c$CONNS -d$DURATION --latency ${extra[*]} $url" >&2
  echo "$out" >&2
  if echo "$out" | grep -q "Non-2xx"; then echo "error: $1 returned non-2xx responses" >&2; exit 1; fi
  RPS[$1]=$(echo "$out" | awk '/^Requests\/sec:/ {print $2}')
  P50[$1]=$(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')")
  P99[$1]=$(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")
}

run direct "$BACKEND_PORT"
run wharf "$WHARF_PORT"
run wharf-proxy-crate "$CRATE_PORT"
run nginx "$NGINX_PROXY_PORT"
run haproxy "$HAPROXY_PORT"
run tls-wharf "$WHARF_TLS_PORT" "https://localhost:$WHARF_TLS_PORT/"
run tls-nginx "$NGINX_TLS_PORT" "https://localhost:$NGINX_TLS_PORT/"
run handshake-wharf "$WHARF_TLS_PORT" "https://localhost:$WHARF_TLS_PORT/" -H "Connection: close"
run handshake-nginx "$NGINX_TLS_PORT" "https://localhost:$NGINX_TLS_PORT/" -H "Connection: close"

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
echo "| target | req/s | p50 ms | p99 ms |"
echo "| --- | ---: | ---: | ---: |"
for t in direct wharf wharf-proxy-crate nginx haproxy tls-wharf tls-nginx handshake-wharf handshake-nginx; do
  printf '| %s | %s | %s | %s |\n' "$t" "${RPS[$t]}" "${P50[$t]}" "${P99[$t]}"
done
echo
echo "wharf/nginx: req/s $(ratio "${RPS[wharf]}" "${RPS[nginx]}"), p50 $(ratio "${P50[wharf]}" "${P50[nginx]}"), p99 $(ratio "${P99[wharf]}" "${P99[nginx]}")"
echo "wharf-proxy-crate/nginx: req/s $(ratio "${RPS[wharf-proxy-crate]}" "${RPS[nginx]}"), p99 $(ratio "${P99[wharf-proxy-crate]}" "${P99[nginx]}")"
echo "wharf/haproxy: req/s $(ratio "${RPS[wharf]}" "${RPS[haproxy]}"), p99 $(ratio "${P99[wharf]}" "${P99[haproxy]}")"
echo "TLS keep-alive wharf/nginx: req/s $(ratio "${RPS[tls-wharf]}" "${RPS[tls-nginx]}"), p99 $(ratio "${P99[tls-wharf]}" "${P99[tls-nginx]}")"
echo "TLS new connection per request (handshakes/s) wharf/nginx: $(ratio "${RPS[handshake-wharf]}" "${RPS[handshake-nginx]}"), p99 $(ratio "${P99[handshake-wharf]}" "${P99[handshake-nginx]}")"
echo "wharf/direct: req/s $(ratio "${RPS[wharf]}" "${RPS[direct]}"), p50 $(ratio "${P50[wharf]}" "${P50[direct]}"), p99 $(ratio "${P99[wharf]}" "${P99[direct]}")"
echo "(THREADS=$THREADS: wharf server and bench_proxy tokio worker threads = nginx proxy worker_processes = haproxy nbthread; backends nginx 1 worker each, run by wharf; wrk -t1 -c$CONNS -d$DURATION, warm-up $WARMUP; TLS: P-256 certificate for localhost, TLS 1.3 as negotiated by wrk's OpenSSL)"
