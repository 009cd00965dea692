//! The example app `hello`, linked statically, for `FROM scratch` test
//! images (the engine here cannot pull a base image with a libc). Shared,
//! by `#[path]`, by wharf-runtime's docker tests and wharf's end-to-end
//! docker tests, so both build it the same way into the same place.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// Builds `hello` once per test run with `+crt-static` on the gnu target
/// (so RUSTFLAGS do not reach build scripts) into `target/static`, and
/// returns the binary.
pub fn static_hello() -> &'static Path {
    static HELLO: OnceLock<PathBuf> = OnceLock::new();
    HELLO.get_or_init(|| {
        let root = workspace_root();
        let target = root.join("target/static");
        let status = std::process::Command::new(env!("CARGO"))
            .args([
                "build",
                "-p",
                "hello",
                "--release",
                "--target",
                "x86_64-unknown-linux-gnu",
            ])
            .current_dir(&root)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("CARGO_BUILD_TARGET")
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the static hello failed");
        target.join("x86_64-unknown-linux-gnu/release/hello")
    })
}
