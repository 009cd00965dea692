//! What runs instances.
//!
//! [`Runtime`] is the seam between the deploy engine and the thing that
//! actually runs code: [`process::ProcessRuntime`] (child processes, the
//! default) and [`docker::DockerRuntime`] (containers through the Docker
//! Engine API; not selectable from `wharf.toml` yet). The trait speaks in instances of a
//! release, never in routes or strategies: the runtime does not know the
//! proxy exists.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast;

pub mod docker;
mod error;
mod logs;
pub mod process;
mod procfs;
mod release;

pub use error::RuntimeError;
pub use logs::{LogLine, LogStream};

/// Identifies one instance everywhere: `<app>-r<release>-<process>-<index>`.
pub type InstanceId = String;

/// Everything needed to start one instance of one process of one release.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub id: InstanceId,
    pub app: String,
    pub release: u64,
    pub process: String,
    pub index: u32,
    /// The command. `process`: run as `/bin/sh -c "<command>"` (may be
    /// compound). `docker`: split into argv with shell-words and run without
    /// a shell (images `FROM scratch` have none); empty keeps the image's CMD.
    pub command: String,
    /// The release directory the command runs in.
    pub workdir: PathBuf,
    /// Full environment for the instance (the runtime adds `PORT` and the
    /// `WHARF_*` identity variables; nothing from the server's own env leaks
    /// in except `PATH`, `HOME`, `LANG`, `TZ`).
    pub env: BTreeMap<String, String>,
    /// Port the instance must listen on (`$PORT`), on 127.0.0.1.
    pub port: u16,
    /// Time between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
}

impl InstanceSpec {
    /// The address the proxy uses to reach this instance.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// A one-off command of a release (the release command).
#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub app: String,
    pub release: u64,
    /// Name used in logs, e.g. "release".
    pub name: String,
    pub command: String,
    pub workdir: PathBuf,
    pub env: BTreeMap<String, String>,
    /// Killed (SIGTERM, then SIGKILL after 5 s) when it runs longer.
    pub timeout: Duration,
}

/// How a one-off command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskOutcome {
    /// Exit code; `None` when killed by a signal (then `signal` is set).
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    /// Last lines of combined output (at most 50), for error messages.
    pub tail: Vec<String>,
}

impl TaskOutcome {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

/// Lifecycle of one instance as the runtime sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Spawned; running with this pid.
    Running { pid: u32 },
    /// Exited unexpectedly; will be started again after a backoff.
    Restarting { restarts: u32 },
    /// Stopped on request (or never started); terminal.
    Stopped,
}

/// What the runtime reports, in order, for the server to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeEvent {
    Started {
        id: InstanceId,
        pid: u32,
        start_time: u64,
    },
    Exited {
        id: InstanceId,
        code: Option<i32>,
        signal: Option<i32>,
        restart_in: Option<Duration>,
    },
    Stopped {
        id: InstanceId,
        killed: bool,
    },
}

/// A process the runtime found on the machine that belongs to this data dir.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundProcess {
    pub pid: u32,
    pub instance: Option<InstanceId>,
}

#[async_trait]
pub trait Runtime: Send + Sync + std::fmt::Debug + 'static {
    /// Prepares release `release` of `app` from `source` and returns the
    /// directory instances run in. For `process`: copies `source` into
    /// `<data>/apps/<app>/releases/<release>` (skipping `.git`, `.wharf`,
    /// `target`), so a later edit of the source never changes a release.
    async fn prepare_release(
        &self,
        app: &str,
        release: u64,
        source: &Path,
    ) -> Result<PathBuf, RuntimeError>;

    /// Deletes a release's prepared files (retention).
    async fn remove_release(&self, app: &str, release: u64) -> Result<(), RuntimeError>;

    /// Runs a one-off command to completion, output going to the log of `app`.
    async fn run_task(&self, spec: TaskSpec) -> Result<TaskOutcome, RuntimeError>;

    /// Starts an instance and supervises it: an unexpected exit restarts it
    /// with exponential backoff (100 ms doubling to 10 s, reset after 30 s up).
    async fn start(&self, spec: InstanceSpec) -> Result<u32, RuntimeError>;

    /// Stops an instance: SIGTERM to its process group, SIGKILL after its
    /// stop timeout. Returns once it is gone. Unknown ids are not an error.
    async fn stop(&self, id: &str) -> Result<(), RuntimeError>;

    /// Current state of an instance (`Stopped` if unknown).
    fn state(&self, id: &str) -> InstanceState;

    /// Ids of the instances this runtime supervises.
    fn instances(&self) -> Vec<InstanceId>;

    /// Finds processes left by an earlier server on this data dir (e.g. after
    /// `kill -9` of the server) and kills them (SIGTERM, then SIGKILL after
    /// `grace`). Returns what it found.
    async fn kill_leftovers(&self, grace: Duration) -> Result<Vec<FoundProcess>, RuntimeError>;

    /// Runtime events (starts, exits, stops).
    fn events(&self) -> broadcast::Receiver<RuntimeEvent>;

    /// Live log lines of every instance and task.
    fn log_lines(&self) -> broadcast::Receiver<LogLine>;

    /// The last `n` log lines of `app` (optionally of one process), oldest first,
    /// read back from the per-instance log files.
    async fn tail_logs(
        &self,
        app: &str,
        process: Option<&str>,
        n: usize,
    ) -> Result<Vec<LogLine>, RuntimeError>;

    /// Stops every instance (server shutdown).
    async fn shutdown(&self);
}

/// Milliseconds since the epoch, for log lines and events.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
