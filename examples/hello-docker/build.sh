#!/bin/sh
# Builds a static hello binary and copies it to ./hello, next to this script,
# for the Dockerfile to COPY into a FROM-scratch image (no libc there).
#
# The flags match hello_binary() in crates/wharf-runtime/tests/docker.rs so
# both builds share their artifacts in target/static:
# - crt-static links glibc statically;
# - an explicit --target keeps RUSTFLAGS away from build scripts and proc
#   macros, which must stay dynamic to be loaded by the compiler;
# - a target dir of its own, so these flags do not force rebuilds of the
#   normal (dynamic) builds sharing the workspace target dir.
set -eu

cd "$(dirname "$0")"

manifest=$(cargo locate-project --workspace --message-format plain)
root=$(dirname "$manifest")
target_dir="${CARGO_TARGET_DIR:-$root/target}/static"
triple=x86_64-unknown-linux-gnu

# CARGO_BUILD_TARGET would fight --target; the docker.rs build drops it too.
env -u CARGO_BUILD_TARGET \
    RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TARGET_DIR="$target_dir" \
    cargo build --manifest-path "$manifest" -p hello --release --target "$triple"

built="$target_dir/$triple/release/hello"
if [ ! -x "$built" ]; then
    echo "build.sh: cargo finished but $built is missing" >&2
    exit 1
fi

# Copy then rename, so ./hello is never half-written (a docker build reading
# the context meanwhile sees the old binary or the new one).
cp "$built" hello.tmp
mv -f hello.tmp hello
echo "build.sh: built $(pwd)/hello"
