//! The `docker` runtime against this machine's real Docker engine.
//!
//! The engine cannot pull, so every image is `FROM scratch` with a static
//! binary: the example app `hello` (built once per run into
//! `target/static`), `tiny`, a small C server (`tests/common/tiny.c`,
//! built with `cc -static`) that listens on `0.0.0.0:$PORT`, which `hello`
//! (bound to 127.0.0.1) cannot do behind a published port, and a shell
//! image of the static `/bin/busybox` (Debian's busybox-static) with its
//! applets installed by an exec-form `RUN`. An unreachable engine fails
//! these tests; they never skip. Every container, network, volume and
//! image a test makes is removed by its [`support::Cleanup`] guard. One
//! module per concern: `images`, `instances`, `accessories`, `ci`.

#![allow(clippy::unwrap_used)] // Test helpers: a failed step is a failed test.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/static_hello.rs"]
mod static_hello;
mod support;

mod accessories;
mod ci;
mod images;
mod instances;
