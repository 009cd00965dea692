#!/usr/bin/env bash
# Canary benchmark: constant load on the wharf proxy, a bad release (failing
# FAILURE of its requests) deployed as a canary at WEIGHT %, default analysis
# rules. Reports the time from canary start to the rollback decision and the
# share of all client requests that failed in the incident window.
#
# Env knobs: RATE (req/s, default 200), WEIGHT (default 10), FAILURE (default 0.2).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RATE=${RATE:-200}
WEIGHT=${WEIGHT:-10}
FAILURE=${FAILURE:-0.2}
cd "$ROOT"
echo "== building wharf, hello and bench_canary (release)" >&2
cargo build --release -p wharf -p hello --bins --example bench_canary >&2
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
"$TARGET_DIR/release/examples/bench_canary" "$TARGET_DIR/release/wharf" "$TARGET_DIR/release/hello" "$RATE" "$WEIGHT" "$FAILURE"
