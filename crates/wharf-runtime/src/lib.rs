//! What runs instances.
//!
//! [`Runtime`] is the seam between the deploy engine and the thing that
//! actually runs code: [`process::ProcessRuntime`] (child processes, the
//! default) and [`docker::DockerRuntime`] (containers through the Docker
//! Engine API, `runtime = "docker"`). [`dispatch::Runtimes`] holds both and
//! sends each call to the runtime of the app it is about. The trait speaks
//! in instances of a release, never in routes or strategies: the runtime
//! does not know the proxy exists.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use tokio::sync::broadcast;

pub mod dispatch;
pub mod docker;
mod error;
mod logs;
pub mod process;
mod procfs;
mod release;
mod supervise;
pub mod volumes;

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
    /// Docker: replaces the image's ENTRYPOINT (split like `command`);
    /// `Some("")` clears it, `None` keeps it. Ignored by the process runtime.
    pub entrypoint: Option<String>,
    /// The release directory the command runs in.
    pub workdir: PathBuf,
    /// Full environment for the instance (the runtime adds `PORT` and the
    /// `WHARF_*` identity variables; nothing from the server's own env leaks
    /// in except `PATH`, `HOME`, `LANG`, `TZ`).
    pub env: BTreeMap<String, String>,
    /// Port the proxy reaches the instance on, on 127.0.0.1. The process
    /// runtime and docker's host network: the port the instance listens on
    /// (`$PORT`). Docker's app network: the host port the container's port
    /// is published on.
    pub port: u16,
    /// Docker's app network only: the port the app listens on inside its
    /// container (`$PORT` there; `wharf.toml`'s `port`). `None`: the same
    /// number as `port`.
    pub container_port: Option<u16>,
    /// Docker's app network only: publish `$PORT` on `127.0.0.1:port` for
    /// the proxy and its health checks. Only `http` processes need it; a
    /// worker's container publishes nothing.
    pub publish: bool,
    /// Volumes kept across releases. Docker: named volumes
    /// `wharf-<app>-<name>` (or host paths) mounted at their targets. The
    /// process runtime links `<workdir>/<target>` to
    /// `<data>/apps/<app>/volumes/<name>` (or the host path).
    pub volumes: Vec<VolumeMount>,
    /// Docker: ports published on the host besides `port` (a process
    /// without `http` serving TCP).
    pub ports: Vec<PortMapping>,
    /// Time between SIGTERM and SIGKILL.
    pub stop_timeout: Duration,
    /// Memory and CPU limits (docker only; the process runtime is given none).
    pub limits: Limits,
    /// What happens when the instance exits without being asked to.
    pub restart: RestartPolicy,
}

/// Resource limits of a container.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Hard memory limit in bytes (the kernel OOM-kills past it).
    pub memory_bytes: Option<u64>,
    /// CPUs, e.g. 0.5 for half of one core.
    pub cpus: Option<f64>,
}

/// When a supervised instance that exited on its own is started again.
/// Restarts back off (100 ms doubling to 10 s, reset after 30 s up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// After any exit (the default: a web process must keep serving).
    #[default]
    Always,
    /// Only after a non-zero exit (or a kill by signal).
    OnFailure,
    /// Never: the instance stays `Stopped`.
    Never,
}

/// Where the code of a new release comes from ([`Runtime::prepare_release`]).
#[derive(Debug, Clone)]
pub struct ReleaseSource {
    pub app: String,
    pub release: u64,
    /// The app's source directory (the one holding `wharf.toml`).
    pub dir: PathBuf,
    /// The release's version: the git revision of `dir` (`-dirty` when its
    /// tree has changes), `wharf deploy --version`, else `r<release>`.
    /// Docker tags the image `wharf/<app>:<version>`.
    pub version: String,
    /// Docker only: how to build the image (ignored when `image` is set).
    pub build: DockerBuild,
    /// Docker only: a prebuilt image to deploy instead of building one
    /// (`wharf deploy --image`); it must exist in the engine.
    pub image: Option<String>,
    /// Docker only: whether the release needs the app's image (`build` or
    /// `image`) at all: false when every process has its own.
    pub app_image: bool,
    /// Docker only: processes with their own image, by process name. The
    /// release keeps every image; a rollback brings them back together.
    pub processes: BTreeMap<String, ImageSource>,
}

/// What CI steps of a commit run in under docker (`[ci] image = "build"`,
/// [`Runtime::ci_launcher`]): the app's image built from the checkout, as
/// a deploy of it would build it.
#[derive(Debug, Clone)]
pub struct CiSource {
    pub app: String,
    /// The checkout (the directory holding `wharf.toml`).
    pub dir: PathBuf,
    /// The commit's version; the image is tagged `wharf/<app>:ci-<version>`.
    pub version: String,
    pub build: DockerBuild,
}

/// Where an image of a release comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A prebuilt image, pulled when missing.
    Prebuilt(String),
    /// Built from the app's source directory.
    Build(DockerBuild),
}

/// How the docker runtime builds a release's image through the engine's
/// build API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerBuild {
    /// The Dockerfile, relative to the app's source dir. Default `Dockerfile`.
    pub dockerfile: PathBuf,
    /// The build context, relative to the app's source dir. Default `.`.
    pub context: PathBuf,
    /// Multi-stage target, if any.
    pub target: Option<String>,
    /// Build arguments. Values may be secrets: never logged or reported.
    pub args: BTreeMap<String, String>,
}

impl Default for DockerBuild {
    fn default() -> Self {
        DockerBuild {
            dockerfile: PathBuf::from("Dockerfile"),
            context: PathBuf::from("."),
            target: None,
            args: BTreeMap::new(),
        }
    }
}

/// A long-lived service next to an app (`[accessories.<name>]`): a
/// database, a queue. Booted once and kept across the app's deploys;
/// reachable from the app's containers by `name` on the app's network.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessorySpec {
    pub app: String,
    pub name: String,
    /// The image to run; ignored when `build` is set.
    pub image: String,
    /// Build the image from the app's source instead.
    pub build: Option<AccessoryBuild>,
    /// Replaces the image's CMD (split like instance commands); `None` keeps it.
    pub command: Option<String>,
    /// Full environment (secrets included: never logged or reported).
    pub env: BTreeMap<String, String>,
    pub ports: Vec<PortMapping>,
    pub volumes: Vec<VolumeMount>,
    /// Names it is reached by on the app's network besides `name`.
    pub aliases: Vec<String>,
    pub health: Option<AccessoryHealth>,
    pub limits: Limits,
}

/// How an accessory's image is built from the app's source: tagged
/// `wharf/<app>:accessory-<name>`, labelled like release images (with
/// `wharf.accessory` in place of the release), output to the app's log as
/// `<app>-<name>-build`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessoryBuild {
    /// The app's source directory.
    pub dir: PathBuf,
    pub build: DockerBuild,
    /// Build even when the image is there (`wharf accessory boot`: the
    /// engine's cache makes an unchanged build quick, and a changed image
    /// recreates the container); otherwise only when it is missing
    /// (deploys, which must not rebuild a database on every release).
    pub rebuild: bool,
}

/// A container port published on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortMapping {
    /// Host address to bind; default 127.0.0.1 (never all interfaces unless asked).
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
}

/// A volume mounted into an instance or an accessory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeMount {
    pub source: VolumeSource,
    /// Absolute path inside the container.
    pub target: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSource {
    /// A named volume, created as `wharf-<app>-<name>`; survives container
    /// removal (only `remove_accessory(.., volumes: true)` deletes it).
    Named(String),
    /// A host directory (absolute path).
    Bind(PathBuf),
}

/// An accessory's health check, run by the engine inside the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessoryHealth {
    /// Argv form (split like instance commands): exit 0 is healthy.
    pub command: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
    /// How long `boot_accessory` waits for the first healthy answer.
    pub start_timeout: Duration,
}

/// What the engine says about an accessory's container.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AccessoryStatus {
    pub name: String,
    pub container: String,
    pub image: String,
    /// "running", "exited", "created", … or "missing" (no container).
    pub state: String,
    /// "healthy", "unhealthy", "starting", or `None` without a health check.
    pub health: Option<String>,
}

/// A volume of an app, as `wharf volumes` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VolumeInfo {
    /// The name in `wharf.toml`.
    pub name: String,
    /// Where it is: the engine's volume name, or a directory.
    pub location: String,
    /// Bytes used, when the runtime can tell.
    pub size_bytes: Option<u64>,
}

/// What [`Runtime::remove_app`] removed, and the volumes it kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemovedApp {
    pub containers: Vec<String>,
    pub images: Vec<String>,
    pub volumes: Vec<String>,
    /// Named volumes left in place (removal without `volumes`).
    pub kept_volumes: Vec<String>,
}

impl RemovedApp {
    pub fn merge(&mut self, other: RemovedApp) {
        self.containers.extend(other.containers);
        self.images.extend(other.images);
        self.volumes.extend(other.volumes);
        self.kept_volumes.extend(other.kept_volumes);
    }
}

/// What [`Runtime::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PruneReport {
    pub images: Vec<String>,
    pub containers: Vec<String>,
    /// Uploaded or fetched sources no app deploys from any more (filled
    /// in by the server, which keeps them).
    #[serde(default)]
    pub sources: Vec<String>,
    pub reclaimed_bytes: u64,
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
    /// Mounted (docker) or linked (process) as for instances, so a
    /// migration reaches the database on a volume.
    pub volumes: Vec<VolumeMount>,
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
    /// The exit code as a shell reports it: 128 + signal when killed.
    pub fn exit_code(&self) -> i64 {
        match (self.code, self.signal) {
            (Some(code), _) => i64::from(code),
            (None, Some(signal)) => 128 + i64::from(signal),
            (None, None) => 1,
        }
    }
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
    /// For `docker`: builds (or takes the prebuilt) image, tags it
    /// `wharf/<app>:<version>`, and keeps its id in the release directory.
    async fn prepare_release(&self, source: &ReleaseSource) -> Result<PathBuf, RuntimeError>;

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
    /// `kill -9` of the server) — of `app` only, when given — and kills
    /// them (SIGTERM, then SIGKILL after `grace`). What this runtime runs
    /// now (started or adopted) is never a leftover. Returns what it found.
    async fn kill_leftovers(
        &self,
        app: Option<&str>,
        grace: Duration,
    ) -> Result<Vec<FoundProcess>, RuntimeError>;

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

    /// Takes over the instance `spec` describes if an earlier server left
    /// it running (same id, release and port) and returns its pid; from
    /// then on it is supervised as if started by [`Runtime::start`].
    /// `Ok(None)`: nothing to adopt (the caller starts it). The process
    /// runtime never adopts (another server's children cannot be
    /// re-attached); its leftovers are killed instead.
    async fn adopt(&self, spec: InstanceSpec) -> Result<Option<u32>, RuntimeError> {
        let _ = spec;
        Ok(None)
    }

    /// Runs `argv` inside a running instance (`wharf exec`), sending its
    /// output to `output`; returns the exit code.
    async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        output: tokio::sync::mpsc::Sender<LogLine>,
    ) -> Result<i64, RuntimeError> {
        let _ = (argv, output);
        Err(RuntimeError::Unsupported {
            what: "exec",
            on: id.to_owned(),
        })
    }

    /// Creates and starts an accessory, or starts it if it is stopped, or
    /// recreates it if its spec changed (volumes keep their data); then
    /// waits for its health check. A running, unchanged one is left alone.
    async fn boot_accessory(&self, spec: &AccessorySpec) -> Result<AccessoryStatus, RuntimeError> {
        Err(RuntimeError::Unsupported {
            what: "accessories",
            on: spec.app.clone(),
        })
    }

    /// Stops an accessory's container (kept, with its volumes).
    async fn stop_accessory(&self, app: &str, name: &str) -> Result<(), RuntimeError> {
        let _ = name;
        Err(RuntimeError::Unsupported {
            what: "accessories",
            on: app.to_owned(),
        })
    }

    /// Removes an accessory's container; its named volumes too when `volumes`.
    async fn remove_accessory(
        &self,
        app: &str,
        name: &str,
        volumes: bool,
    ) -> Result<(), RuntimeError> {
        let _ = (name, volumes);
        Err(RuntimeError::Unsupported {
            what: "accessories",
            on: app.to_owned(),
        })
    }

    /// The accessory's container as the engine sees it (`state: "missing"`
    /// when there is none).
    async fn accessory_status(
        &self,
        app: &str,
        name: &str,
    ) -> Result<AccessoryStatus, RuntimeError> {
        let _ = name;
        Err(RuntimeError::Unsupported {
            what: "accessories",
            on: app.to_owned(),
        })
    }

    /// The last `tail` lines of an accessory's output, then (with `follow`)
    /// new ones as they come, sent to `output` until it is closed.
    async fn accessory_logs(
        &self,
        app: &str,
        name: &str,
        tail: usize,
        follow: bool,
        output: tokio::sync::mpsc::Sender<LogLine>,
    ) -> Result<(), RuntimeError> {
        let _ = (name, tail, follow, output);
        Err(RuntimeError::Unsupported {
            what: "accessories",
            on: app.to_owned(),
        })
    }

    /// Removes everything this runtime keeps for `app` (`wharf apps
    /// remove`): its containers (instances, tasks, accessories — stopped
    /// first), the images built for it, its network and its files under
    /// `<data>/apps/<app>`; its named volumes too when `volumes`, else they
    /// are kept and listed. The caller stops the app's instances first.
    async fn remove_app(&self, app: &str, volumes: bool) -> Result<RemovedApp, RuntimeError>;

    /// The named volumes of `app` this runtime keeps (process and accessory
    /// volumes), with their sizes.
    async fn volumes(&self, app: &str) -> Result<Vec<VolumeInfo>, RuntimeError>;

    /// Removes named volume `name` of `app` and its data (`wharf volumes
    /// remove`); an error while a container uses it. `Ok(false)` when there
    /// was none.
    async fn remove_volume(&self, app: &str, name: &str) -> Result<bool, RuntimeError>;

    /// Copies directory `path` of prepared release `workdir` (of
    /// `process`'s image under docker; a path in the release directory
    /// under the process runtime) into `dest` on the host, which is made
    /// anew. A missing `path` gives an empty `dest`. (Asset bridging.)
    async fn copy_out(
        &self,
        app: &str,
        workdir: &std::path::Path,
        process: &str,
        path: &str,
        dest: &std::path::Path,
    ) -> Result<(), RuntimeError>;

    /// Builds the image CI steps of `source` run in and returns a launcher
    /// that runs each step in a new container of it (docker). The build's
    /// output goes to the app's log as process `ci-build`. Without
    /// containers (the process runtime) steps run on the host, through
    /// [`wharf_ci::Host`], and this is unsupported.
    async fn ci_launcher(
        &self,
        source: &CiSource,
    ) -> Result<Arc<dyn wharf_ci::Launcher>, RuntimeError> {
        Err(RuntimeError::Unsupported {
            what: "CI steps in containers",
            on: source.app.clone(),
        })
    }

    /// Removes what the runtime keeps for releases not in `keep` (images of
    /// pruned releases, exited containers of this data dir).
    async fn prune(&self, keep: &[(String, u64)]) -> Result<PruneReport, RuntimeError> {
        let _ = keep;
        Ok(PruneReport::default())
    }
}

/// Milliseconds since the epoch, for log lines and events.
pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
