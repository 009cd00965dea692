#!/usr/bin/env bash
# Image build time of a docker-runtime deploy, side by side with the Docker
# CLI's classic builder on the same kind of context, in one run:
#
#   cold      first build (nothing of this context in the engine's cache)
#   unchanged the next release of the same tree (must be a full cache hit)
#   one-file  one of the app's source files changed
#
# wharf's time is the "prepare release" step of `wharf deploy` (the image
# build through the engine's API, as the deploy reports it); the reference
# is `docker build` (classic builder, DOCKER_BUILDKIT=0) of a copy of the
# same app, timed around the command. Each side gets a marker file of its
# own as the first layer, so neither reuses the other's cache.
#
# The app: the static hello binary plus SOURCES small source files, a
# Dockerfile that copies both, sets an env and a command (like a real app's
# last steps).
#
# Needs a Docker engine; removes everything it creates.
# Env knobs: SOURCES (default 200), ROUNDS (default 3).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SOURCES=${SOURCES:-200}
ROUNDS=${ROUNDS:-3}
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
echo "== building wharf (release) and the static hello" >&2
cargo build --release -p wharf --bins >&2
env -u CARGO_BUILD_TARGET RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TARGET_DIR="$TARGET_DIR/static" \
    cargo build -p hello --release --target x86_64-unknown-linux-gnu >&2
WHARF="$TARGET_DIR/release/wharf"
HELLO="$TARGET_DIR/static/x86_64-unknown-linux-gnu/release/hello"

TMP=$(mktemp -d)
APP="bbuild$$"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        "$WHARF" --data "$TMP/data" apps remove "$APP" --yes --volumes >/dev/null 2>&1 || true
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    docker rmi -f "bench-build-ref$$:cold" "bench-build-ref$$:unchanged" "bench-build-ref$$:one-file" >/dev/null 2>&1 || true
    docker image prune -f --filter "label=bench-build=$$" >/dev/null 2>&1 || true
    rm -rf "$TMP"
}
trap cleanup EXIT

# make_app DIR MARKER: the app's tree.
make_app() {
    local dir=$1 marker=$2
    mkdir -p "$dir/src"
    cp "$HELLO" "$dir/hello"
    echo "$marker" > "$dir/marker"
    for i in $(seq 1 "$SOURCES"); do
        head -c 4096 /dev/urandom | base64 > "$dir/src/file$i.rb"
    done
    cat > "$dir/Dockerfile" <<'EOF'
FROM scratch
COPY marker /marker
COPY hello /hello
COPY src/ /app/src/
ENV HELLO_HOST=0.0.0.0 APP_ENV=production
CMD ["/hello"]
EOF
    cat > "$dir/wharf.toml" <<EOF
name = "$APP"
runtime = "docker"

[processes.web]
instances = 1
http = { path = "/" }
health = { path = "/up", interval = "200ms" }
EOF
}

# wharf_deploy N: seconds of the "prepare release" step of a deploy.
wharf_deploy() {
    local out
    out=$("$WHARF" --data "$TMP/data" deploy "$TMP/app" --env "ROUND=$1" 2>&1) || {
        echo "$out" >&2
        exit 1
    }
    echo "$out" | sed -n 's/^  ok prepare release: .* (\([0-9.]*\)s)$/\1/p' | tail -1
}

# docker_build TAG: wall seconds of a classic `docker build` of the ref copy.
docker_build() {
    local start end
    start=$(date +%s.%N)
    DOCKER_BUILDKIT=0 docker build -q --label "bench-build=$$" -t "bench-build-ref$$:$1" "$TMP/ref" >/dev/null
    end=$(date +%s.%N)
    echo "$end - $start" | bc -l | xargs printf '%.2f'
}

echo "== wharf server on $TMP/data" >&2
make_app "$TMP/app" "wharf $$ $(date +%s%N)"
"$WHARF" --data "$TMP/data" server --listen 127.0.0.1:0 --admin 127.0.0.1:0 --no-access-log \
    2>"$TMP/server.log" &
SERVER_PID=$!
for _ in $(seq 1 200); do
    [ -f "$TMP/data/server.json" ] && break
    sleep 0.05
done

declare -A W D
echo "== wharf: cold, then $ROUNDS x (unchanged, one file changed)" >&2
W[cold]=$(wharf_deploy 0)
make_app "$TMP/ref" "docker $$ $(date +%s%N)"
D[cold]=$(docker_build cold)
for r in $(seq 1 "$ROUNDS"); do
    W[unchanged$r]=$(wharf_deploy "u$r")
    D[unchanged$r]=$(docker_build unchanged)
    head -c 4096 /dev/urandom | base64 > "$TMP/app/src/file7.rb"
    head -c 4096 /dev/urandom | base64 > "$TMP/ref/src/file7.rb"
    W[onefile$r]=$(wharf_deploy "c$r")
    D[onefile$r]=$(docker_build one-file)
done

printf '\n| case | wharf prepare (s) | docker build (s) | wharf/docker |\n| --- | ---: | ---: | ---: |\n'
row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$(echo "$2 / $3" | bc -l | xargs printf '%.2f')"; }
row cold "${W[cold]}" "${D[cold]}"
for r in $(seq 1 "$ROUNDS"); do
    row "unchanged #$r" "${W[unchanged$r]}" "${D[unchanged$r]}"
    row "one file changed #$r" "${W[onefile$r]}" "${D[onefile$r]}"
done
