#!/bin/sh
# Builds the hello binary in release mode and copies it to bin/hello,
# next to this script. Honours CARGO_TARGET_DIR (through cargo metadata)
# and CARGO_BUILD_TARGET (e.g. a musl target for a static binary).
set -eu

cd "$(dirname "$0")"

cargo build --release --bin hello -p hello

target_dir=$(cargo metadata --format-version 1 --no-deps \
    | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$target_dir" ]; then
    echo "build.sh: could not find the target directory in 'cargo metadata' output" >&2
    exit 1
fi

if [ -n "${CARGO_BUILD_TARGET:-}" ]; then
    built="$target_dir/$CARGO_BUILD_TARGET/release/hello"
else
    built="$target_dir/release/hello"
fi
if [ ! -x "$built" ]; then
    echo "build.sh: cargo finished but $built is missing" >&2
    exit 1
fi

mkdir -p bin
# Copy then rename, so bin/hello is never half-written.
cp "$built" bin/hello.tmp
mv -f bin/hello.tmp bin/hello
echo "build.sh: built bin/hello"
