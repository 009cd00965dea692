#!/usr/bin/env bash
# WebSocket echo benchmark: messages/s and round-trip p50/p99 of CONNS
# sockets echoing SIZE-byte messages back to back, straight to the hello
# example's /ws (the limit) and through `wharf server` (the app's one
# instance is that same hello), in one run on 127.0.0.1.
#
# Env knobs: CONNS (default 32), DURATION seconds (default 10), SIZE bytes
# (default 64), THREADS (wharf's tokio workers, default 1).
set -euo pipefail
CONNS=${CONNS:-32}
DURATION=${DURATION:-10}
SIZE=${SIZE:-64}
THREADS=${THREADS:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

echo "== building wharf, hello and bench_ws (release)" >&2
(cd "$ROOT" && cargo build --release -p wharf -p hello --bins --example bench_ws >&2)
WHARF="$TARGET_DIR/release/wharf"
HELLO="$TARGET_DIR/release/hello"
CLIENT="$TARGET_DIR/release/examples/bench_ws"

WORK=$(mktemp -d /tmp/wharf-bench-ws.XXXXXX)
SERVER_PID=""
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

mkdir -p "$WORK/app"
cat >"$WORK/app/wharf.toml" <<TOML
name = "wsbench"
[processes.web]
command = "$HELLO"
http = { path = "/" }
TOML
WHARF_DATA="$WORK/data" TOKIO_WORKER_THREADS="$THREADS" HOME="$WORK" "$WHARF" server \
  --listen 127.0.0.1:0 --admin 127.0.0.1:0 --no-access-log 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 200); do [ -S "$WORK/data/wharf.sock" ] && break; sleep 0.05; done
WHARF_DATA="$WORK/data" HOME="$WORK" "$WHARF" deploy "$WORK/app" >&2
read -r PROXY BACKEND < <(WHARF_DATA="$WORK/data" HOME="$WORK" "$WHARF" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
print(s["server"]["proxy"], s["apps"][0]["instances"][0]["port"])')

run() { # name url
  "$CLIENT" "$2" 8 2 "$SIZE" >/dev/null # warm-up
  local out
  out=$("$CLIENT" "$2" "$CONNS" "$DURATION" "$SIZE")
  echo "---- $1 ($2): $out" >&2
  echo "$out"
}
DIRECT=$(run direct "ws://127.0.0.1:$BACKEND/ws")
THROUGH=$(run wharf "ws://$PROXY/ws")
python3 - "$DIRECT" "$THROUGH" <<'PY'
import json, sys
d, w = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| target | messages/s | p50 µs | p99 µs |")
print("| --- | ---: | ---: | ---: |")
for name, r in (("direct", d), ("wharf", w)):
    print(f"| {name} | {r['per_sec']} | {r['p50_us']} | {r['p99_us']} |")
print(f"\nwharf/direct: messages/s {w['per_sec'] / d['per_sec']:.2f}, p50 {w['p50_us'] / d['p50_us']:.2f}, p99 {w['p99_us'] / d['p99_us']:.2f}")
PY
echo "(CONNS=$CONNS DURATION=${DURATION}s SIZE=$SIZE THREADS=$THREADS; client: bench_ws, 1 tokio worker; hello: 2 workers)"
