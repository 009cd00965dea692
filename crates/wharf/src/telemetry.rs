//! Where wharf's own logs go.
//!
//! * `wharf server`: JSON lines on stderr (a supervisor collects them).
//! * `wharf up`: JSON lines into `<data>/server.log`, so the terminal shows
//!   progress and the app's own logs, not every access-log line.
//! * client commands: warnings and errors only, human-readable, on stderr.
//!
//! `RUST_LOG` overrides the level everywhere (e.g. `RUST_LOG=wharf::access=off`).

use std::path::Path;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::EnvFilter;

/// `RUST_LOG`, else `default`; the Docker client's debug output is always
/// off: it logs request URLs and bodies, which carry build arguments and
/// environments (secrets).
fn filter(default: &str) -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    match "bollard=info".parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

/// Logs to stderr through a background writer, so a slow reader of
/// stderr never stalls the proxy; keep the guard alive to flush.
pub fn server_to_stderr() -> WorkerGuard {
    json_logs(std::io::stderr())
}

/// Logs to `<data>/server.log`; keep the guard alive to flush.
pub fn server_to_file(data_dir: &Path) -> anyhow::Result<WorkerGuard> {
    std::fs::create_dir_all(data_dir)?;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join("server.log"))?;
    Ok(json_logs(file))
}

/// JSON lines, written by a background thread.
fn json_logs<W: std::io::Write + Send + 'static>(out: W) -> WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking(out);
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter("info"))
        .with_writer(writer)
        .try_init();
    guard
}

pub fn client() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("warn"))
        .with_writer(std::io::stderr)
        .without_time()
        .try_init();
}
