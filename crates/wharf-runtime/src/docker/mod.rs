//! The `docker` runtime: releases are images, instances are containers,
//! all through the Docker Engine API on its unix socket (never the `docker`
//! CLI).
//!
//! * Releases (`build.rs`): [`Runtime::prepare_release`] sends the build
//!   context (without `.git`, `.wharf`, `target`) and the release's
//!   [`crate::DockerBuild`] (Dockerfile, target, build args) to the engine's
//!   build API, or takes a prebuilt image that must exist in the engine; the
//!   image is tagged `wharf/<app>:<version>` ([`image_tag`]) and its id
//!   written to `<data_dir>/apps/<app>/releases/<release>/image`: that
//!   directory is the release's `workdir`, and `start`/`run_task` read the
//!   image from it. Build output goes to the app's log as process `build`,
//!   with the values of build args masked.
//! * Instances (`instance.rs`): a container `wharf-<instance id>` labelled
//!   with `wharf.data-dir` (canonical), `wharf.app`, `wharf.release`,
//!   `wharf.process` and `wharf.instance`, with the instance's memory and
//!   CPU limits. In [`DockerNetwork::AppBridge`] mode (the default) it
//!   joins the app's bridge network `wharf-<app>` with its process name as
//!   alias, and — for processes the proxy reaches ([`InstanceSpec::publish`])
//!   — its `$PORT/tcp` is published on host `127.0.0.1:$PORT`: the app must
//!   listen on `0.0.0.0:$PORT` (or `::`), not on 127.0.0.1, which is the
//!   container's own loopback. A worker publishes nothing. In [`DockerNetwork::Host`] mode it
//!   shares the host's network, so an app listening on `127.0.0.1:$PORT`
//!   (as under the process runtime) works.
//! * The instance's `command` replaces the image's `CMD`, split into an argv
//!   with shell quoting rules but run without a shell (images `FROM scratch`
//!   have none): `&&`, pipes, redirections and `$VAR` are not interpreted.
//!   An empty command keeps the image's `CMD`.
//! * Supervision is wharf's own (`supervise.rs`, shared with the
//!   process runtime; no engine restart policy): an exited container is
//!   removed and, per the instance's restart policy, a new one created
//!   after a backoff. Container output (logs API, followed) goes to the
//!   same per-instance log files and broadcast as the process runtime's.
//!   Containers outlive a crashed server: [`Runtime::adopt`] takes a
//!   matching one over instead of starting a new one.
//! * Accessories (`accessory.rs`): long-lived containers `wharf-<app>-<name>`
//!   on the app's network, restarted by the engine (`unless-stopped`), never
//!   touched by [`Runtime::kill_leftovers`] or [`Runtime::prune`].
//! * Exit codes are the engine's: a container killed by signal N exits with
//!   128+N, reported as `code` (`signal` is always `None`).
//! * Secrets (instance and accessory env values, build arg values) are never
//!   written to logs, errors or tracing by this module. The engine client
//!   (`bollard`) logs request URIs and bodies at `debug`/`trace` through the
//!   `log` crate, so the server's log filter must keep `bollard` at `info`.

mod accessory;
mod build;
mod ci;
mod context;
mod error;
mod instance;
mod prune;
mod remove;
mod volumes;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{HostConfig, NetworkCreateRequest};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinHandle;

pub use accessory::{accessory_container, accessory_image_tag};
pub use build::image_tag;
pub use error::DockerError;
pub use volumes::{LABEL_VOLUME, volume_name};

use crate::logs::{Capture, LogFile, LogSource, SharedLogFile, SharedTail};
use crate::supervise::Supervisors;
use crate::{
    AccessorySpec, AccessoryStatus, FoundProcess, InstanceId, InstanceSpec, InstanceState, Limits,
    LogLine, PruneReport, ReleaseSource, RemovedApp, Runtime, RuntimeError, RuntimeEvent,
    TaskOutcome, TaskSpec, VolumeInfo,
};

/// Time between SIGTERM and SIGKILL for a task that ran past its timeout.
const TASK_KILL_AFTER: Duration = Duration::from_secs(5);
/// How long to wait for the output of an exited container to be written.
const OUTPUT_DRAIN: Duration = Duration::from_secs(2);
/// How long `connect` waits for the engine to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per-request timeout of the engine client (until response headers; a
/// `stop` answers only once the container is gone, so this bounds stop
/// timeouts too).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15 * 60);

const LOG_CAPACITY: usize = 4096;

/// Label keys set on the containers (and images, networks, volumes) of this
/// runtime.
pub const LABEL_DATA_DIR: &str = "wharf.data-dir";
pub const LABEL_APP: &str = "wharf.app";
pub const LABEL_RELEASE: &str = "wharf.release";
pub const LABEL_PROCESS: &str = "wharf.process";
pub const LABEL_INSTANCE: &str = "wharf.instance";
/// On accessory containers and their named volumes: the accessory's name.
pub const LABEL_ACCESSORY: &str = "wharf.accessory";
/// On accessory containers: a hash of the spec they were created from.
pub const LABEL_SPEC: &str = "wharf.spec";
/// On a CI step's container: the step's name.
pub const LABEL_CI: &str = "wharf.ci";

/// How instance containers are networked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DockerNetwork {
    /// The app's own bridge network `wharf-<app>` (process name as alias),
    /// `$PORT/tcp` published on `127.0.0.1:$PORT`. The app must listen on
    /// `0.0.0.0:$PORT`.
    #[default]
    AppBridge,
    /// The host's network (no isolation, no aliases): the app listens on
    /// `127.0.0.1:$PORT` as under the process runtime.
    Host,
}

/// Options of the Docker runtime.
#[derive(Debug, Clone)]
pub struct DockerRuntimeOptions {
    /// Root of wharf's data: release dirs go to
    /// `<data_dir>/apps/<app>/releases/<n>`, logs to `<data_dir>/apps/<app>/logs/`.
    pub data_dir: PathBuf,
    /// The engine's unix socket; `None`: `$DOCKER_HOST` (`unix://…`), else
    /// `/var/run/docker.sock`.
    pub socket: Option<PathBuf>,
    /// A log file is rotated (to `<file>.1`, replacing it) past this size.
    pub log_max_bytes: u64,
    /// How instance containers are networked.
    pub network: DockerNetwork,
}

impl DockerRuntimeOptions {
    /// Options with the default socket and network.
    pub fn new(data_dir: impl Into<PathBuf>, log_max_bytes: u64) -> Self {
        DockerRuntimeOptions {
            data_dir: data_dir.into(),
            socket: None,
            log_max_bytes,
            network: DockerNetwork::default(),
        }
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct DockerRuntime {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    docker: Docker,
    /// Canonical, so the `wharf.data-dir` label is the same however the data
    /// dir was spelled.
    data_dir: PathBuf,
    log_max_bytes: u64,
    network: DockerNetwork,
    sups: Arc<Supervisors>,
    /// Names of the containers this runtime runs right now (instances,
    /// adopted instances and tasks): never "leftovers".
    live: Mutex<HashSet<String>>,
    logs: broadcast::Sender<LogLine>,
}

/// The logs stream of a container, fed into a [`Capture`].
#[derive(Debug)]
struct Output {
    pump: JoinHandle<()>,
    capture: Capture,
}

impl Output {
    async fn finish(self, limit: Duration) {
        self.capture.finish(limit).await;
        self.pump.abort();
    }
}

/// Locks, recovering from poisoning (a panic elsewhere must not cascade).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Rejects names that cannot safely become part of a path or a Docker name.
fn check_name(what: &'static str, value: &str) -> Result<(), RuntimeError> {
    let reason = if value.is_empty() {
        "it is empty"
    } else if value == "." || value == ".." {
        "it is a relative path component"
    } else if value.len() > 200 {
        "it is longer than 200 bytes"
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        "Docker names allow only ASCII letters, digits, '-', '_' and '.'"
    } else {
        return Ok(());
    };
    Err(RuntimeError::InvalidName {
        what,
        value: value.to_owned(),
        reason,
    })
}

/// App names also become image repositories, which must be lowercase.
fn check_app(app: &str) -> Result<(), RuntimeError> {
    check_name("app name", app)?;
    if app.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(RuntimeError::InvalidName {
            what: "app name",
            value: app.to_owned(),
            reason: "Docker image names must be lowercase",
        });
    }
    Ok(())
}

/// The HTTP status of an engine error, if it is one.
fn status_of(err: &BollardError) -> Option<u16> {
    match err {
        BollardError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// Whether an engine error is a 404 (no such container/image/network).
fn is_not_found(err: &BollardError) -> bool {
    status_of(err) == Some(404)
}

/// Whether an engine error is a 304 (already started/stopped).
fn is_not_modified(err: &BollardError) -> bool {
    status_of(err) == Some(304)
}

/// Whether an engine error is a 409 (in use, already exists, being removed).
fn is_conflict(err: &BollardError) -> bool {
    status_of(err) == Some(409)
}

/// Splits a command into an argv without a shell.
fn argv(what: &str, command: &str) -> Result<Option<Vec<String>>, DockerError> {
    if command.trim().is_empty() {
        return Ok(None);
    }
    let words = shell_words::split(command).map_err(|err| DockerError::Command {
        what: what.to_owned(),
        command: command.to_owned(),
        reason: err.to_string(),
    })?;
    const OPERATORS: &[&str] = &["&&", "||", "|", ";", "&", ">", ">>", "<", "2>", "2>&1"];
    if let Some(op) = words.iter().find(|w| OPERATORS.contains(&w.as_str())) {
        return Err(DockerError::Command {
            what: what.to_owned(),
            command: command.to_owned(),
            reason: format!("`{op}` is shell syntax"),
        });
    }
    Ok(Some(words))
}

/// `KEY=value` strings, later entries overriding earlier ones.
fn env_list(env: &BTreeMap<String, String>, identity: &[(&str, String)]) -> Vec<String> {
    let mut all: BTreeMap<&str, &str> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (k, v) in identity {
        all.insert(k, v);
    }
    all.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Seconds for the engine's stop timeout, rounded up.
fn stop_secs(timeout: Duration) -> i32 {
    let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
    i32::try_from(secs).unwrap_or(i32::MAX)
}

/// Applies memory and CPU limits to a container's host config. Swap is
/// capped at the memory limit, so the limit is a hard one (OOM kill, not
/// swapping).
fn apply_limits(host: &mut HostConfig, limits: &Limits) {
    if let Some(bytes) = limits.memory_bytes {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        host.memory = Some(bytes);
        host.memory_swap = Some(bytes);
    }
    if let Some(cpus) = limits.cpus.filter(|c| c.is_finite() && *c > 0.0) {
        // Float-to-int `as` saturates, which is what a huge value should do.
        host.nano_cpus = Some((cpus * 1e9).round() as i64);
    }
}

/// The name of the network of an app (bridge mode).
pub fn network_name(app: &str) -> String {
    format!("wharf-{app}")
}

/// The name of the container of an instance.
pub fn container_name(instance: &str) -> String {
    format!("wharf-{instance}")
}

/// The socket to use: the option, else `$DOCKER_HOST`, else the default.
fn resolve_socket(socket: Option<&Path>) -> Result<String, DockerError> {
    if let Some(path) = socket {
        return Ok(format!("unix://{}", path.display()));
    }
    match std::env::var("DOCKER_HOST") {
        Ok(host) if !host.trim().is_empty() => {
            if host.starts_with("unix://") {
                Ok(host)
            } else {
                Err(DockerError::UnsupportedHost { host })
            }
        }
        _ => Ok("unix:///var/run/docker.sock".to_owned()),
    }
}

async fn blocking<T: Send + 'static>(
    what: &'static str,
    path: &Path,
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(err) => Err(RuntimeError::io(
            what,
            path,
            std::io::Error::other(err.to_string()),
        )),
    }
}

impl DockerRuntime {
    /// Connects to the engine (see [`DockerRuntimeOptions::socket`]) and
    /// checks that it answers.
    pub async fn connect(options: DockerRuntimeOptions) -> Result<Self, RuntimeError> {
        let dir = &options.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|err| RuntimeError::io("create data directory", dir, err))?;
        let data_dir = std::fs::canonicalize(dir)
            .map_err(|err| RuntimeError::io("resolve data directory", dir, err))?;
        let socket = resolve_socket(options.socket.as_deref())?;
        let unreachable = |source| DockerError::Unreachable {
            socket: socket.clone(),
            source,
        };
        let docker = Docker::connect_with_unix(
            &socket,
            REQUEST_TIMEOUT.as_secs(),
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(unreachable)?;
        let answer = tokio::time::timeout(CONNECT_TIMEOUT, async {
            // The engine may be older than the client's API version.
            let docker = docker.negotiate_version().await?;
            docker.ping().await?;
            Ok::<_, BollardError>(docker)
        })
        .await;
        let docker = match answer {
            Ok(Ok(docker)) => docker,
            Ok(Err(err)) => return Err(unreachable(err).into()),
            Err(_) => return Err(unreachable(BollardError::RequestTimeoutError).into()),
        };
        let (logs, _) = broadcast::channel(LOG_CAPACITY);
        Ok(DockerRuntime {
            inner: Arc::new(Inner {
                docker,
                data_dir,
                log_max_bytes: options.log_max_bytes,
                network: options.network,
                sups: Supervisors::new(),
                live: Mutex::new(HashSet::new()),
                logs,
            }),
        })
    }

    /// The data directory, canonicalised.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// `<data_dir>/apps/<app>/releases/<release>`.
    pub fn release_dir(&self, app: &str, release: u64) -> PathBuf {
        self.inner.release_dir(app, release)
    }

    /// `<data_dir>/apps/<app>/logs`.
    pub fn logs_dir(&self, app: &str) -> PathBuf {
        self.inner.app_dir(app).join("logs")
    }

    /// The engine client (e.g. for tests and diagnostics).
    pub fn client(&self) -> &Docker {
        &self.inner.docker
    }

    /// Removes the app's bridge network (once no container uses it).
    /// A missing network is not an error.
    pub async fn remove_network(&self, app: &str) -> Result<(), RuntimeError> {
        let name = network_name(app);
        match self.inner.docker.remove_network(&name).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            Err(err) => Err(DockerError::api(format!("remove network {name}"), err).into()),
        }
    }
}

impl Inner {
    fn app_dir(&self, app: &str) -> PathBuf {
        self.data_dir.join("apps").join(app)
    }

    fn release_dir(&self, app: &str, release: u64) -> PathBuf {
        self.app_dir(app).join("releases").join(release.to_string())
    }

    fn log_file(&self, app: &str, file_name: String) -> SharedLogFile {
        let path = self.app_dir(app).join("logs").join(file_name);
        Arc::new(Mutex::new(LogFile::new(path, self.log_max_bytes)))
    }

    /// The value of the `wharf.data-dir` label of this runtime.
    fn data_dir_label(&self) -> String {
        self.data_dir.to_string_lossy().into_owned()
    }

    /// Whether `labels` mark something as this data dir's.
    fn is_ours(&self, labels: Option<&HashMap<String, String>>) -> bool {
        labels
            .and_then(|l| l.get(LABEL_DATA_DIR))
            .is_some_and(|d| *d == self.data_dir_label())
    }

    fn labels(&self, app: &str, release: u64, process: &str) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_DATA_DIR.to_owned(), self.data_dir_label()),
            (LABEL_APP.to_owned(), app.to_owned()),
            (LABEL_RELEASE.to_owned(), release.to_string()),
            (LABEL_PROCESS.to_owned(), process.to_owned()),
        ])
    }

    /// Refuses what another wharf server (another data dir) labelled as
    /// its own: reusing it would let two servers fight over one app.
    fn check_owner(
        &self,
        kind: &'static str,
        name: &str,
        app: &str,
        labels: Option<&HashMap<String, String>>,
    ) -> Result<(), DockerError> {
        match labels.and_then(|l| l.get(LABEL_DATA_DIR)) {
            Some(owner) if *owner != self.data_dir_label() => Err(DockerError::OtherServer {
                kind,
                name: name.to_owned(),
                app: app.to_owned(),
                owner: owner.clone(),
                data_dir: self.data_dir.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Creates the app's bridge network unless it exists (and refuses one
    /// of another wharf server's).
    async fn ensure_network(&self, app: &str) -> Result<(), DockerError> {
        let name = network_name(app);
        match self.docker.inspect_network(&name, None).await {
            Ok(network) => return self.check_owner("network", &name, app, network.labels.as_ref()),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(DockerError::api(format!("inspect network {name}"), err)),
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(HashMap::from([
                (LABEL_DATA_DIR.to_owned(), self.data_dir_label()),
                (LABEL_APP.to_owned(), app.to_owned()),
            ])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Created meanwhile by a concurrent start.
            Err(err) if is_conflict(&err) => Ok(()),
            Err(err) => Err(DockerError::api(format!("create network {name}"), err)),
        }
    }

    /// Removes a container whatever its state; a missing one is fine.
    async fn remove_container(&self, name: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match self.docker.remove_container(name, Some(options)).await {
            Ok(()) => Ok(()),
            Err(err) if is_not_found(&err) => Ok(()),
            // Already being removed.
            Err(err) if is_conflict(&err) => Ok(()),
            Err(err) => Err(DockerError::api(format!("remove container {name}"), err)),
        }
    }

    /// Stops a container (SIGTERM, SIGKILL after `timeout`); returns its exit
    /// code, if known.
    async fn stop_container(&self, name: &str, timeout: Duration) -> Option<i64> {
        let options = StopContainerOptionsBuilder::default()
            .t(stop_secs(timeout))
            .build();
        match self.docker.stop_container(name, Some(options)).await {
            Ok(()) => {}
            Err(err) if is_not_modified(&err) || is_not_found(&err) => {}
            Err(err) => {
                tracing::warn!(container = name, error = %err, "could not stop container; killing it");
                let _ = self.docker.kill_container(name, None).await;
            }
        }
        self.docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.exit_code)
    }

    /// Follows the output of container `name` into the log file, broadcast
    /// and (if given) tail. `from_now`: only output written from now on
    /// (an adopted container's earlier output was logged by the server that
    /// started it).
    fn follow_output(
        &self,
        name: &str,
        source: LogSource,
        log: SharedLogFile,
        tail: Option<SharedTail>,
        from_now: bool,
    ) -> Output {
        let (mut out_w, out_r) = tokio::io::duplex(64 * 1024);
        let (mut err_w, err_r) = tokio::io::duplex(64 * 1024);
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
            .tail(if from_now { "0" } else { "all" })
            .build();
        let docker = self.docker.clone();
        let name = name.to_owned();
        let pump = tokio::spawn(async move {
            let mut stream = docker.logs(&name, Some(options));
            while let Some(item) = stream.next().await {
                let written = match item {
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        out_w.write_all(&message).await
                    }
                    Ok(LogOutput::StdErr { message }) => err_w.write_all(&message).await,
                    Ok(LogOutput::StdIn { .. }) => Ok(()),
                    Err(err) => {
                        tracing::debug!(container = %name, error = %err, "container log stream ended");
                        break;
                    }
                };
                if written.is_err() {
                    break;
                }
            }
            // Dropping the writers closes the readers: the capture ends.
        });
        let capture = Capture::start(
            Some(out_r),
            Some(err_r),
            source,
            log,
            self.logs.clone(),
            tail,
        );
        Output { pump, capture }
    }

    /// Creates and starts container `name` (replacing one of that name);
    /// removes it again if it cannot start. Returns its pid.
    async fn run_container(
        &self,
        name: &str,
        body: bollard::models::ContainerCreateBody,
    ) -> Result<u32, DockerError> {
        // A leftover of the same name (e.g. after a crash) would conflict;
        // one that is not this server's is not ours to remove.
        match self
            .docker
            .inspect_container(name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => {
                let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
                let app = body
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_APP))
                    .cloned()
                    .unwrap_or_default();
                self.check_owner("container", name, &app, labels)?;
                if labels.and_then(|l| l.get(LABEL_DATA_DIR)).is_none() {
                    return Err(DockerError::Foreign {
                        name: name.to_owned(),
                        data_dir: self.data_dir.clone(),
                        what: "instance",
                    });
                }
                self.remove_container(name).await?;
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(DockerError::api(format!("inspect container {name}"), err)),
        }
        let options = CreateContainerOptionsBuilder::default().name(name).build();
        self.docker
            .create_container(Some(options), body)
            .await
            .map_err(|err| DockerError::api(format!("create container {name}"), err))?;
        let started = async {
            self.docker
                .start_container(name, None)
                .await
                .map_err(|err| DockerError::api(format!("start container {name}"), err))?;
            let info = self
                .docker
                .inspect_container(name, None::<InspectContainerOptions>)
                .await
                .map_err(|err| DockerError::api(format!("inspect container {name}"), err))?;
            Ok(info
                .state
                .and_then(|s| s.pid)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0))
        }
        .await;
        if started.is_err() {
            let _ = self.remove_container(name).await;
        }
        started
    }

    /// Waits until container `name` is not running; its exit code.
    async fn wait_exit(&self, name: &str) -> Option<i64> {
        let options = WaitContainerOptionsBuilder::default()
            .condition("not-running")
            .build();
        let mut stream = self.docker.wait_container(name, Some(options));
        match stream.next().await {
            Some(Ok(answer)) => Some(answer.status_code),
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Some(code),
            Some(Err(err)) => {
                tracing::warn!(container = name, error = %err, "waiting for container failed");
                None
            }
            None => None,
        }
    }

    /// The images matching one filter (`label`, `reference`…) of the
    /// engine's list API.
    async fn images_where(
        &self,
        filter: &str,
        values: Vec<String>,
    ) -> Result<Vec<bollard::models::ImageSummary>, DockerError> {
        let filters = HashMap::from([(filter, values)]);
        let options = bollard::query_parameters::ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        self.docker
            .list_images(Some(options))
            .await
            .map_err(|err| DockerError::api("list images", err))
    }

    /// The containers labelled with this data dir (and `extra` labels).
    async fn our_containers(
        &self,
        extra: &[String],
        size: bool,
    ) -> Result<Vec<bollard::models::ContainerSummary>, DockerError> {
        let mut labels = vec![format!("{LABEL_DATA_DIR}={}", self.data_dir_label())];
        labels.extend(extra.iter().cloned());
        let filters = HashMap::from([("label", labels)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .size(size)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|err| DockerError::api("list containers", err))
    }
}

/// Cuts output into lines (at most [`crate::logs::MAX_LINE_BYTES`] each),
/// for streams the engine sends in arbitrary pieces.
#[derive(Debug, Default)]
struct Lines {
    pending: Vec<u8>,
}

impl Lines {
    /// Adds a piece; returns the lines it completed.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
            let rest = self.pending.split_off(i + 1);
            let mut line = std::mem::replace(&mut self.pending, rest);
            line.pop();
            lines.push(Self::text(line));
        }
        if self.pending.len() > crate::logs::MAX_LINE_BYTES {
            // An endless line: keep its start, as the log files do.
            let line = std::mem::take(&mut self.pending);
            lines.push(Self::text(line));
        }
        lines
    }

    /// The unterminated rest, if any.
    fn finish(&mut self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        Some(Self::text(std::mem::take(&mut self.pending)))
    }

    fn text(mut line: Vec<u8>) -> String {
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        line.truncate(crate::logs::MAX_LINE_BYTES);
        String::from_utf8_lossy(&line).into_owned()
    }
}

/// Forwards a stream of container output (logs, exec) to `output` line by
/// line, as lines of `source`. Returns once the stream ends or `output` is
/// closed.
async fn forward_lines<S>(mut stream: S, source: &LogSource, output: &mpsc::Sender<LogLine>)
where
    S: futures_util::Stream<Item = Result<LogOutput, BollardError>> + Unpin,
{
    let mut out = Lines::default();
    let mut err = Lines::default();
    let line_of = |stream: crate::LogStream, line: String| LogLine {
        at_ms: crate::unix_ms(std::time::SystemTime::now()),
        app: source.app.clone(),
        release: source.release,
        process: source.process.clone(),
        instance: source.instance.clone(),
        stream,
        line,
    };
    loop {
        let item = tokio::select! {
            item = stream.next() => item,
            () = output.closed() => return,
        };
        let (kind, lines) = match item {
            Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                (crate::LogStream::Stdout, out.push(&message))
            }
            Some(Ok(LogOutput::StdErr { message })) => {
                (crate::LogStream::Stderr, err.push(&message))
            }
            Some(Ok(LogOutput::StdIn { .. })) => continue,
            Some(Err(error)) => {
                tracing::debug!(instance = %source.instance, %error, "output stream ended");
                break;
            }
            None => break,
        };
        for line in lines {
            if output.send(line_of(kind, line)).await.is_err() {
                return;
            }
        }
    }
    for (kind, rest) in [
        (crate::LogStream::Stdout, out.finish()),
        (crate::LogStream::Stderr, err.finish()),
    ] {
        if let Some(line) = rest
            && output.send(line_of(kind, line)).await.is_err()
        {
            return;
        }
    }
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn prepare_release(&self, source: &ReleaseSource) -> Result<PathBuf, RuntimeError> {
        self.inner.prepare_release(source).await
    }

    async fn remove_release(&self, app: &str, release: u64) -> Result<(), RuntimeError> {
        self.inner.remove_release(app, release).await
    }

    async fn run_task(&self, spec: TaskSpec) -> Result<TaskOutcome, RuntimeError> {
        self.inner.run_task(spec).await
    }

    async fn start(&self, spec: InstanceSpec) -> Result<u32, RuntimeError> {
        instance::start(&self.inner, spec).await
    }

    async fn stop(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.sups.stop(id).await;
        Ok(())
    }

    fn state(&self, id: &str) -> InstanceState {
        self.inner.sups.state(id)
    }

    fn instances(&self) -> Vec<InstanceId> {
        self.inner.sups.ids()
    }

    async fn kill_leftovers(
        &self,
        app: Option<&str>,
        grace: Duration,
    ) -> Result<Vec<FoundProcess>, RuntimeError> {
        let inner = &self.inner;
        let only: Vec<String> = app
            .map(|a| format!("{LABEL_APP}={a}"))
            .into_iter()
            .collect();
        let containers = inner.our_containers(&only, false).await?;
        let live = lock(&inner.live).clone();
        let mut found = Vec::new();
        for container in containers {
            let Some(id) = container.id else { continue };
            let labels = container.labels.unwrap_or_default();
            // Accessories live independently of the server, by design.
            if labels.contains_key(LABEL_ACCESSORY) {
                continue;
            }
            let names = container.names.unwrap_or_default();
            if names
                .iter()
                .any(|n| live.contains(n.trim_start_matches('/')))
            {
                continue;
            }
            let instance = labels.get(LABEL_INSTANCE).cloned();
            let pid = inner
                .docker
                .inspect_container(&id, None::<InspectContainerOptions>)
                .await
                .ok()
                .and_then(|c| c.state)
                .and_then(|s| s.pid)
                .and_then(|p| u32::try_from(p).ok())
                .unwrap_or(0);
            tracing::warn!(container = %id, ?instance, pid, "stopping container left by an earlier server");
            found.push((id, FoundProcess { pid, instance }));
        }
        let mut stops = tokio::task::JoinSet::new();
        for (id, _) in &found {
            let inner = inner.clone();
            let id = id.clone();
            stops.spawn(async move {
                inner.stop_container(&id, grace).await;
                inner.remove_container(&id).await
            });
        }
        while let Some(result) = stops.join_next().await {
            if let Ok(Err(err)) = result {
                return Err(err.into());
            }
        }
        Ok(found.into_iter().map(|(_, p)| p).collect())
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.inner.sups.subscribe()
    }

    fn log_lines(&self) -> broadcast::Receiver<LogLine> {
        self.inner.logs.subscribe()
    }

    async fn tail_logs(
        &self,
        app: &str,
        process: Option<&str>,
        n: usize,
    ) -> Result<Vec<LogLine>, RuntimeError> {
        check_app(app)?;
        let dir = self.logs_dir(app);
        let (path, app, process) = (dir.clone(), app.to_owned(), process.map(str::to_owned));
        blocking("read logs in", &dir, move || {
            crate::logs::tail_dir(&path, &app, process.as_deref(), n)
        })
        .await
    }

    async fn shutdown(&self) {
        self.inner.sups.stop_all().await;
    }

    async fn adopt(&self, spec: InstanceSpec) -> Result<Option<u32>, RuntimeError> {
        instance::adopt(&self.inner, spec).await
    }

    async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        output: mpsc::Sender<LogLine>,
    ) -> Result<i64, RuntimeError> {
        self.inner.exec(id, argv, output).await
    }

    async fn boot_accessory(&self, spec: &AccessorySpec) -> Result<AccessoryStatus, RuntimeError> {
        self.inner.boot_accessory(spec).await
    }

    async fn stop_accessory(&self, app: &str, name: &str) -> Result<(), RuntimeError> {
        self.inner.stop_accessory(app, name).await
    }

    async fn remove_accessory(
        &self,
        app: &str,
        name: &str,
        volumes: bool,
    ) -> Result<(), RuntimeError> {
        self.inner.remove_accessory(app, name, volumes).await
    }

    async fn accessory_status(
        &self,
        app: &str,
        name: &str,
    ) -> Result<AccessoryStatus, RuntimeError> {
        self.inner.accessory_status(app, name).await
    }

    async fn accessory_logs(
        &self,
        app: &str,
        name: &str,
        tail: usize,
        follow: bool,
        output: mpsc::Sender<LogLine>,
    ) -> Result<(), RuntimeError> {
        self.inner
            .accessory_logs(app, name, tail, follow, output)
            .await
    }

    async fn volumes(&self, app: &str) -> Result<Vec<VolumeInfo>, RuntimeError> {
        self.inner.app_volumes(app).await
    }

    async fn remove_volume(&self, app: &str, name: &str) -> Result<bool, RuntimeError> {
        self.inner.remove_app_volume(app, name).await
    }

    async fn copy_out(
        &self,
        app: &str,
        workdir: &Path,
        process: &str,
        path: &str,
        dest: &Path,
    ) -> Result<(), RuntimeError> {
        check_app(app)?;
        let image = build::read_image(workdir, Some(process))?;
        self.inner.copy_out_of_image(app, &image, path, dest).await
    }

    async fn ci_launcher(
        &self,
        source: &crate::CiSource,
    ) -> Result<Arc<dyn wharf_ci::Launcher>, RuntimeError> {
        self.inner.ci_launcher(source).await
    }

    async fn prune(&self, keep: &[(String, u64)]) -> Result<PruneReport, RuntimeError> {
        self.inner.prune(keep).await
    }

    async fn remove_app(&self, app: &str, volumes: bool) -> Result<RemovedApp, RuntimeError> {
        self.inner.remove_app(app, volumes).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn commands_split_without_a_shell() {
        assert_eq!(argv("t", "  ").unwrap(), None);
        assert_eq!(
            argv("t", "/hello --name 'a b' \"c\"").unwrap(),
            Some(vec![
                "/hello".to_owned(),
                "--name".to_owned(),
                "a b".to_owned(),
                "c".to_owned()
            ])
        );
        let err = argv("task x", "migrate && serve").unwrap_err().to_string();
        assert!(err.contains("`&&` is shell syntax"), "{err}");
        assert!(err.contains("sh -c"), "{err}");
        assert!(argv("t", "echo 'unterminated").is_err());
    }

    #[test]
    fn env_identity_wins() {
        let env = BTreeMap::from([
            ("A".to_owned(), "1".to_owned()),
            ("PORT".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(
            env_list(&env, &[("PORT", "8080".to_owned())]),
            vec!["A=1", "PORT=8080"]
        );
    }

    #[test]
    fn names_and_timeouts() {
        assert!(check_name("app name", "my-app_2.x").is_ok());
        assert!(check_name("app name", "My App").is_err());
        assert_eq!(stop_secs(Duration::from_millis(1500)), 2);
        assert_eq!(stop_secs(Duration::from_secs(10)), 10);
    }

    #[test]
    fn limits_become_host_config() {
        let mut host = HostConfig::default();
        apply_limits(
            &mut host,
            &Limits {
                memory_bytes: Some(64 << 20),
                cpus: Some(0.5),
            },
        );
        assert_eq!(host.memory, Some(64 << 20));
        assert_eq!(host.memory_swap, Some(64 << 20));
        assert_eq!(host.nano_cpus, Some(500_000_000));
        let mut host = HostConfig::default();
        apply_limits(&mut host, &Limits::default());
        assert_eq!((host.memory, host.nano_cpus), (None, None));
    }

    #[test]
    fn lines_are_cut_across_pieces() {
        let mut lines = Lines::default();
        assert!(lines.push(b"ab").is_empty());
        assert_eq!(lines.push(b"c\r\nd\ne"), vec!["abc", "d"]);
        assert_eq!(lines.finish(), Some("e".to_owned()));
        assert_eq!(lines.finish(), None);
    }
}
