#!/usr/bin/env bash
# Zero-downtime benchmark: constant load on the wharf proxy while an app
# under runtime = "docker" is deployed DEPLOYS times with ROLLBACKS rollbacks
# in between; then the same image and load behind a docker-compose published
# port, recreated (`docker-compose up -d --force-recreate`) as many times.
# Reports requests, failed requests and time per operation for both.
#
# Needs a Docker engine and /usr/bin/docker-compose (v1); removes
# everything it creates.
#
# Env knobs: DEPLOYS (default 50), ROLLBACKS (default 10), RATE (req/s,
# default 200), RECREATES (default DEPLOYS + rollbacks done).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEPLOYS=${DEPLOYS:-50}
ROLLBACKS=${ROLLBACKS:-10}
RATE=${RATE:-200}
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
echo "== building wharf and bench_deploys (release)" >&2
cargo build --release -p wharf --bins --example bench_deploys >&2
# A FROM scratch image needs hello linked statically: built like the docker
# e2e tests' static_hello() (crates/wharf/tests/support/docker.rs).
echo "== building the static hello" >&2
env -u CARGO_BUILD_TARGET RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TARGET_DIR="$TARGET_DIR/static" \
    cargo build -p hello --release --target x86_64-unknown-linux-gnu >&2
"$TARGET_DIR/release/examples/bench_deploys" "$TARGET_DIR/release/wharf" \
    "$TARGET_DIR/static/x86_64-unknown-linux-gnu/release/hello" \
    "$DEPLOYS" "$ROLLBACKS" "$RATE" ${RECREATES:+"$RECREATES"}
