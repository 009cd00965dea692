//! The `docker` runtime: releases are images, instances are containers,
//! all through the Docker Engine API on its unix socket (never the `docker`
//! CLI).
//!
//! * [`Runtime::prepare_release`] sends the source tree (without `.git`,
//!   `.wharf`, `target`) to the engine's build API, tags the image
//!   `wharf/<app>:r<release>` and writes its id to
//!   `<data_dir>/apps/<app>/releases/<release>/image`: that directory is the
//!   release's `workdir`, and `start`/`run_task` read the image from it.
//!   Build output goes to the app's log as process `build`.
//! * An instance is a container `wharf-<instance id>` labelled with
//!   `wharf.data-dir` (canonical), `wharf.app`, `wharf.release`,
//!   `wharf.process` and `wharf.instance`. In [`DockerNetwork::AppBridge`]
//!   mode (the default) it joins the app's bridge network `wharf-<app>` with
//!   its process name as alias, and its `$PORT/tcp` is published on host
//!   `127.0.0.1:$PORT`: the app must listen on `0.0.0.0:$PORT` (or `::`),
//!   not on 127.0.0.1, which is the container's own loopback. In
//!   [`DockerNetwork::Host`] mode it shares the host's network, so an app
//!   listening on `127.0.0.1:$PORT` (as under the process runtime) works.
//! * The instance's `command` replaces the image's `CMD`, split into an argv
//!   with shell quoting rules but run without a shell (images `FROM scratch`
//!   have none): `&&`, pipes, redirections and `$VAR` are not interpreted.
//!   An empty command keeps the image's `CMD`.
//! * Supervision is wharf's own, as in the process runtime (no engine
//!   restart policy): an exited container is removed and a new one created
//!   after a backoff (100 ms doubling to 10 s), reported as `Exited` then
//!   `Started` events. Container output (logs API, followed) goes to the
//!   same per-instance log files and broadcast as the process runtime's.
//! * Exit codes are the engine's: a container killed by signal N exits with
//!   128+N, reported as `code` (`signal` is always `None`).

mod context;
mod error;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig,
    PortBinding,
};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, InspectContainerOptions,
    ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveImageOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use error::DockerError;

use crate::logs::{Capture, LogFile, LogSource, SharedLogFile, SharedTail};
use crate::{
    FoundProcess, InstanceId, InstanceSpec, InstanceState, LogLine, ReleaseSource, Runtime,
    RuntimeError, RuntimeEvent, TaskOutcome, TaskSpec, procfs, release,
};

/// First restart delay after an unexpected exit.
const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
/// Longest restart delay.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// An instance up this long before it exits restarts after [`INITIAL_BACKOFF`] again.
const BACKOFF_RESET_AFTER: Duration = Duration::from_secs(30);
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
/// Build output lines kept for the error of a failed build.
const BUILD_TAIL_LINES: usize = 20;

const EVENT_CAPACITY: usize = 1024;
const LOG_CAPACITY: usize = 4096;

/// Label keys set on every container of this runtime.
pub const LABEL_DATA_DIR: &str = "wharf.data-dir";
pub const LABEL_APP: &str = "wharf.app";
pub const LABEL_RELEASE: &str = "wharf.release";
pub const LABEL_PROCESS: &str = "wharf.process";
pub const LABEL_INSTANCE: &str = "wharf.instance";

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
    instances: Mutex<HashMap<InstanceId, Arc<Supervised>>>,
    /// Names of the containers this runtime runs right now (instances and
    /// tasks): never "leftovers".
    live: Mutex<HashSet<String>>,
    events: broadcast::Sender<RuntimeEvent>,
    logs: broadcast::Sender<LogLine>,
}

/// The handle of one supervised instance.
#[derive(Debug)]
struct Supervised {
    state: Mutex<InstanceState>,
    /// Set to `true` to ask the supervisor to stop the instance.
    stop: watch::Sender<bool>,
    /// Becomes `true` when the supervisor has stopped the instance.
    done: watch::Receiver<bool>,
}

/// One running container and the capture of its output.
#[derive(Debug)]
struct Running {
    name: String,
    pid: u32,
    started: Instant,
    output: Output,
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

/// Whether an engine error is a 404 (no such container/image/network).
fn is_not_found(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

/// Whether an engine error is a 304 (already started/stopped).
fn is_not_modified(err: &BollardError) -> bool {
    matches!(
        err,
        BollardError::DockerResponseServerError {
            status_code: 304,
            ..
        }
    )
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

/// The image tag of a release.
pub fn image_tag(app: &str, release: u64) -> String {
    format!("wharf/{app}:r{release}")
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
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (logs, _) = broadcast::channel(LOG_CAPACITY);
        Ok(DockerRuntime {
            inner: Arc::new(Inner {
                docker,
                data_dir,
                log_max_bytes: options.log_max_bytes,
                network: options.network,
                instances: Mutex::new(HashMap::new()),
                live: Mutex::new(HashSet::new()),
                events,
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
        self.inner
            .app_dir(app)
            .join("releases")
            .join(release.to_string())
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

    fn log_file(&self, app: &str, file_name: String) -> SharedLogFile {
        let path = self.app_dir(app).join("logs").join(file_name);
        Arc::new(Mutex::new(LogFile::new(path, self.log_max_bytes)))
    }

    fn emit(&self, event: RuntimeEvent) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    fn labels(&self, app: &str, release: u64, process: &str) -> HashMap<String, String> {
        HashMap::from([
            (
                LABEL_DATA_DIR.to_owned(),
                self.data_dir.to_string_lossy().into_owned(),
            ),
            (LABEL_APP.to_owned(), app.to_owned()),
            (LABEL_RELEASE.to_owned(), release.to_string()),
            (LABEL_PROCESS.to_owned(), process.to_owned()),
        ])
    }

    /// Creates the app's bridge network unless it exists.
    async fn ensure_network(&self, app: &str) -> Result<(), DockerError> {
        let name = network_name(app);
        match self.docker.inspect_network(&name, None).await {
            Ok(_) => return Ok(()),
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(DockerError::api(format!("inspect network {name}"), err)),
        }
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_owned()),
            labels: Some(HashMap::from([
                (
                    LABEL_DATA_DIR.to_owned(),
                    self.data_dir.to_string_lossy().into_owned(),
                ),
                (LABEL_APP.to_owned(), app.to_owned()),
            ])),
            ..Default::default()
        };
        match self.docker.create_network(request).await {
            Ok(_) => Ok(()),
            // Created meanwhile by a concurrent start.
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
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
            Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
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
    /// and (if given) tail.
    fn follow_output(
        &self,
        name: &str,
        source: LogSource,
        log: SharedLogFile,
        tail: Option<SharedTail>,
    ) -> Output {
        let (mut out_w, out_r) = tokio::io::duplex(64 * 1024);
        let (mut err_w, err_r) = tokio::io::duplex(64 * 1024);
        let options = LogsOptionsBuilder::default()
            .follow(true)
            .stdout(true)
            .stderr(true)
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

    /// Creates and starts container `name`; removes it again on failure.
    async fn run_container(
        &self,
        name: &str,
        body: ContainerCreateBody,
    ) -> Result<u32, DockerError> {
        // A leftover of the same name (e.g. after a crash) would conflict.
        self.remove_container(name).await?;
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

    /// Creates, starts and follows the container of an instance.
    async fn launch(
        &self,
        spec: &InstanceSpec,
        image: &str,
        log: &SharedLogFile,
    ) -> Result<Running, RuntimeError> {
        let name = container_name(&spec.id);
        let identity = [
            ("PORT", spec.port.to_string()),
            ("WHARF_APP", spec.app.clone()),
            ("WHARF_RELEASE", spec.release.to_string()),
            ("WHARF_PROCESS", spec.process.clone()),
            ("WHARF_INSTANCE", spec.id.clone()),
        ];
        let mut labels = self.labels(&spec.app, spec.release, &spec.process);
        labels.insert(LABEL_INSTANCE.to_owned(), spec.id.clone());
        let cmd = argv(&format!("instance {}", spec.id), &spec.command)?;
        let port_key = format!("{}/tcp", spec.port);
        let (host_config, networking_config, exposed_ports) = match self.network {
            DockerNetwork::AppBridge => {
                self.ensure_network(&spec.app).await?;
                let network = network_name(&spec.app);
                let host_config = HostConfig {
                    network_mode: Some(network.clone()),
                    port_bindings: Some(HashMap::from([(
                        port_key.clone(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".to_owned()),
                            host_port: Some(spec.port.to_string()),
                        }]),
                    )])),
                    ..Default::default()
                };
                let endpoint = EndpointSettings {
                    aliases: Some(vec![spec.process.clone()]),
                    ..Default::default()
                };
                let networking = NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(network, endpoint)])),
                };
                (host_config, Some(networking), Some(vec![port_key]))
            }
            DockerNetwork::Host => (
                HostConfig {
                    network_mode: Some("host".to_owned()),
                    ..Default::default()
                },
                None,
                None,
            ),
        };
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd,
            env: Some(env_list(&spec.env, &identity)),
            labels: Some(labels),
            exposed_ports,
            host_config: Some(host_config),
            networking_config,
            ..Default::default()
        };
        lock(&self.live).insert(name.clone());
        let pid = match self.run_container(&name, body).await {
            Ok(pid) => pid,
            Err(err) => {
                lock(&self.live).remove(&name);
                return Err(err.into());
            }
        };
        let source = LogSource {
            app: spec.app.clone(),
            release: spec.release,
            process: spec.process.clone(),
            instance: spec.id.clone(),
        };
        let output = self.follow_output(&name, source, log.clone(), None);
        Ok(Running {
            name,
            pid,
            started: Instant::now(),
            output,
        })
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

    /// Removes an exited container after its output is written.
    async fn reap(&self, run: Running) {
        run.output.finish(OUTPUT_DRAIN).await;
        if let Err(err) = self.remove_container(&run.name).await {
            tracing::warn!(error = %err, "could not remove exited container");
        }
        lock(&self.live).remove(&run.name);
    }

    fn set_state(&self, sup: &Supervised, state: InstanceState) {
        *lock(&sup.state) = state;
    }

    /// The supervisor of one instance; returns when it is stopped.
    #[allow(clippy::too_many_arguments)]
    async fn supervise(
        self: Arc<Self>,
        spec: InstanceSpec,
        image: String,
        sup: Arc<Supervised>,
        first: Running,
        log: SharedLogFile,
        mut stop_rx: watch::Receiver<bool>,
        done_tx: watch::Sender<bool>,
    ) {
        let mut backoff = INITIAL_BACKOFF;
        let mut restarts: u32 = 0;
        let mut current = Some(first);
        let killed = loop {
            if let Some(run) = current.take() {
                tokio::select! {
                    code = self.wait_exit(&run.name) => {
                        if run.started.elapsed() >= BACKOFF_RESET_AFTER {
                            backoff = INITIAL_BACKOFF;
                        }
                        self.reap(run).await;
                        restarts = restarts.saturating_add(1);
                        self.set_state(&sup, InstanceState::Restarting { restarts });
                        let code = code.and_then(|c| i32::try_from(c).ok());
                        tracing::warn!(instance = %spec.id, ?code, restart_in = ?backoff, "container exited unexpectedly");
                        self.emit(RuntimeEvent::Exited { id: spec.id.clone(), code, signal: None, restart_in: Some(backoff) });
                    }
                    _ = stop_requested(&mut stop_rx) => {
                        let code = self.stop_container(&run.name, spec.stop_timeout).await;
                        self.reap(run).await;
                        break code == Some(137);
                    }
                }
            }
            // Not running: wait out the backoff, then start again.
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = stop_requested(&mut stop_rx) => break false,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            match self.launch(&spec, &image, &log).await {
                Ok(run) => {
                    let start_time = procfs::start_time(run.pid);
                    self.set_state(&sup, InstanceState::Running { pid: run.pid });
                    self.emit(RuntimeEvent::Started {
                        id: spec.id.clone(),
                        pid: run.pid,
                        start_time,
                    });
                    current = Some(run);
                }
                Err(err) => {
                    restarts = restarts.saturating_add(1);
                    self.set_state(&sup, InstanceState::Restarting { restarts });
                    tracing::error!(instance = %spec.id, error = %err, restart_in = ?backoff, "could not restart instance");
                    self.emit(RuntimeEvent::Exited {
                        id: spec.id.clone(),
                        code: None,
                        signal: None,
                        restart_in: Some(backoff),
                    });
                }
            }
        };
        self.set_state(&sup, InstanceState::Stopped);
        {
            let mut instances = lock(&self.instances);
            if instances
                .get(&spec.id)
                .is_some_and(|s| Arc::ptr_eq(s, &sup))
            {
                instances.remove(&spec.id);
            }
        }
        self.emit(RuntimeEvent::Stopped {
            id: spec.id.clone(),
            killed,
        });
        done_tx.send_replace(true);
    }

    async fn stop(&self, id: &str) {
        let Some(sup) = lock(&self.instances).get(id).cloned() else {
            return;
        };
        sup.stop.send_replace(true);
        let mut done = sup.done.clone();
        // An error means the supervisor is gone: stopped as well.
        let _ = done.wait_for(|done| *done).await;
    }

    /// Builds `source`'s Dockerfile into `tag`, output to the app's log;
    /// returns the image id.
    async fn build(
        &self,
        app: &str,
        release: u64,
        source: &Path,
        tag: &str,
    ) -> Result<String, RuntimeError> {
        let meta = match std::fs::metadata(source) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotADirectory {
                    path: source.to_owned(),
                });
            }
            Err(err) => return Err(RuntimeError::io("read release source", source, err)),
        };
        if !meta.is_dir() {
            return Err(RuntimeError::NotADirectory {
                path: source.to_owned(),
            });
        }
        if !source.join("Dockerfile").is_file() {
            return Err(DockerError::NoDockerfile {
                source_dir: source.to_owned(),
            }
            .into());
        }
        let (src, avoid) = (source.to_owned(), self.data_dir.clone());
        let context = blocking("read build context", source, move || {
            context::tar_context(&src, &avoid)
                .map_err(|err| RuntimeError::io("pack build context from", src, err))
        })
        .await?;

        let log = self.log_file(app, format!("release-{release}-build.log"));
        let tail: SharedTail = Arc::new(Mutex::new(VecDeque::new()));
        let source_info = LogSource {
            app: app.to_owned(),
            release,
            process: "build".to_owned(),
            instance: format!("{app}-r{release}-build"),
        };
        let (mut out_w, out_r) = tokio::io::duplex(64 * 1024);
        let capture = Capture::start(
            Some(out_r),
            None::<tokio::io::DuplexStream>,
            source_info,
            log,
            self.logs.clone(),
            Some(tail.clone()),
        );
        let options = BuildImageOptionsBuilder::default()
            .dockerfile("Dockerfile")
            .t(tag)
            .rm(true)
            .forcerm(true)
            .build();
        let mut stream =
            self.docker
                .build_image(options, None, Some(bollard::body_full(context.into())));
        let mut failure: Option<String> = None;
        while let Some(item) = stream.next().await {
            match item {
                Ok(info) => {
                    let text = info.stream.or(info.status).unwrap_or_default();
                    if !text.is_empty() && out_w.write_all(text.as_bytes()).await.is_err() {
                        break;
                    }
                }
                Err(BollardError::DockerStreamError { error }) => {
                    let _ = out_w.write_all(format!("{error}\n").as_bytes()).await;
                    failure = Some(error);
                    break;
                }
                Err(err) => {
                    failure = Some(err.to_string());
                    break;
                }
            }
        }
        drop(stream);
        drop(out_w);
        capture.finish(OUTPUT_DRAIN).await;
        if let Some(message) = failure {
            let lines: Vec<String> = lock(&tail).iter().cloned().collect();
            let skip = lines.len().saturating_sub(BUILD_TAIL_LINES);
            return Err(DockerError::Build {
                tag: tag.to_owned(),
                source_dir: source.to_owned(),
                message: message.trim().to_owned(),
                tail: lines[skip..].join("\n"),
            }
            .into());
        }
        let image = self
            .docker
            .inspect_image(tag)
            .await
            .map_err(|err| DockerError::api(format!("inspect built image {tag}"), err))?;
        image.id.ok_or_else(|| {
            DockerError::api(
                format!("inspect built image {tag}"),
                BollardError::DockerResponseServerError {
                    status_code: 500,
                    message: "the engine returned no image id".to_owned(),
                },
            )
            .into()
        })
    }
}

/// Reads the image id a release directory maps to.
fn read_image(workdir: &Path) -> Result<String, RuntimeError> {
    let path = workdir.join("image");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_owned()),
        Ok(_) => Err(DockerError::NoImage { path }.into()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(DockerError::NoImage { path }.into())
        }
        Err(err) => Err(RuntimeError::io("read image id from", path, err)),
    }
}

/// Writes the `image` file of a release directory, atomically.
fn write_image(dir: &Path, image: &str) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(dir)
        .map_err(|err| RuntimeError::io("create release directory", dir, err))?;
    let tmp = dir.join(".image.tmp");
    std::fs::write(&tmp, format!("{image}\n"))
        .map_err(|err| RuntimeError::io("write image id to", &tmp, err))?;
    let path = dir.join("image");
    std::fs::rename(&tmp, &path).map_err(|err| RuntimeError::io("write image id to", path, err))
}

/// Resolves once a stop is requested (or nobody can request one any more).
async fn stop_requested(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

fn unique_suffix() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}

#[async_trait]
impl Runtime for DockerRuntime {
    async fn prepare_release(&self, source: &ReleaseSource) -> Result<PathBuf, RuntimeError> {
        let (app, release) = (source.app.as_str(), source.release);
        check_app(app)?;
        let tag = image_tag(app, release);
        let image = self.inner.build(app, release, &source.dir, &tag).await?;
        let dest = self.release_dir(app, release);
        let dir = dest.clone();
        blocking("write release", &dest, move || write_image(&dir, &image)).await?;
        Ok(dest)
    }

    async fn remove_release(&self, app: &str, release: u64) -> Result<(), RuntimeError> {
        check_app(app)?;
        let tag = image_tag(app, release);
        let options = RemoveImageOptionsBuilder::default().build();
        match self
            .inner
            .docker
            .remove_image(&tag, Some(options), None)
            .await
        {
            Ok(_) => {}
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(DockerError::api(format!("remove image {tag}"), err).into()),
        }
        let dest = self.release_dir(app, release);
        let target = dest.clone();
        blocking("remove release", &dest, move || release::remove(&target)).await
    }

    async fn run_task(&self, spec: TaskSpec) -> Result<TaskOutcome, RuntimeError> {
        check_app(&spec.app)?;
        check_name("task name", &spec.name)?;
        let inner = &self.inner;
        let image = read_image(&spec.workdir)?;
        let instance = format!("{}-r{}-{}", spec.app, spec.release, spec.name);
        let name = format!("wharf-{instance}-{}", unique_suffix());
        let cmd = argv(&format!("task {instance}"), &spec.command)?;
        let identity = [
            ("WHARF_APP", spec.app.clone()),
            ("WHARF_RELEASE", spec.release.to_string()),
            ("WHARF_PROCESS", spec.name.clone()),
            ("WHARF_INSTANCE", instance.clone()),
        ];
        let host_config = match inner.network {
            DockerNetwork::AppBridge => {
                inner.ensure_network(&spec.app).await?;
                HostConfig {
                    network_mode: Some(network_name(&spec.app)),
                    ..Default::default()
                }
            }
            DockerNetwork::Host => HostConfig {
                network_mode: Some("host".to_owned()),
                ..Default::default()
            },
        };
        let body = ContainerCreateBody {
            image: Some(image),
            cmd,
            env: Some(env_list(&spec.env, &identity)),
            labels: Some(inner.labels(&spec.app, spec.release, &spec.name)),
            host_config: Some(host_config),
            ..Default::default()
        };
        lock(&inner.live).insert(name.clone());
        if let Err(err) = inner.run_container(&name, body).await {
            lock(&inner.live).remove(&name);
            return Err(err.into());
        }
        let log = inner.log_file(
            &spec.app,
            format!("release-{}-{}.log", spec.release, spec.name),
        );
        let tail: SharedTail = Arc::new(Mutex::new(VecDeque::new()));
        let source = LogSource {
            app: spec.app.clone(),
            release: spec.release,
            process: spec.name.clone(),
            instance: instance.clone(),
        };
        let output = inner.follow_output(&name, source, log, Some(tail.clone()));
        let (code, timed_out) = tokio::select! {
            code = inner.wait_exit(&name) => (code, false),
            _ = tokio::time::sleep(spec.timeout) => {
                tracing::warn!(task = %instance, timeout = ?spec.timeout, "task ran past its timeout; stopping it");
                (inner.stop_container(&name, TASK_KILL_AFTER).await, true)
            }
        };
        output.finish(OUTPUT_DRAIN).await;
        let removed = inner.remove_container(&name).await;
        lock(&inner.live).remove(&name);
        removed?;
        let tail = lock(&tail).iter().cloned().collect();
        Ok(TaskOutcome {
            code: code.and_then(|c| i32::try_from(c).ok()),
            signal: None,
            timed_out,
            tail,
        })
    }

    async fn start(&self, spec: InstanceSpec) -> Result<u32, RuntimeError> {
        check_app(&spec.app)?;
        check_name("instance id", &spec.id)?;
        check_name("process name", &spec.process)?;
        let inner = &self.inner;
        let image = read_image(&spec.workdir)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let (done_tx, done_rx) = watch::channel(false);
        let sup = Arc::new(Supervised {
            state: Mutex::new(InstanceState::Stopped),
            stop: stop_tx,
            done: done_rx,
        });
        {
            let mut instances = lock(&inner.instances);
            if instances.contains_key(&spec.id) {
                return Err(RuntimeError::AlreadyRunning {
                    instance: spec.id.clone(),
                });
            }
            instances.insert(spec.id.clone(), sup.clone());
        }
        let log = inner.log_file(&spec.app, format!("{}.log", spec.id));
        let run = match inner.launch(&spec, &image, &log).await {
            Ok(run) => run,
            Err(err) => {
                lock(&inner.instances).remove(&spec.id);
                return Err(err);
            }
        };
        let pid = run.pid;
        let start_time = procfs::start_time(pid);
        inner.set_state(&sup, InstanceState::Running { pid });
        inner.emit(RuntimeEvent::Started {
            id: spec.id.clone(),
            pid,
            start_time,
        });
        tokio::spawn(
            inner
                .clone()
                .supervise(spec, image, sup, run, log, stop_rx, done_tx),
        );
        Ok(pid)
    }

    async fn stop(&self, id: &str) -> Result<(), RuntimeError> {
        self.inner.stop(id).await;
        Ok(())
    }

    fn state(&self, id: &str) -> InstanceState {
        lock(&self.inner.instances)
            .get(id)
            .map(|sup| *lock(&sup.state))
            .unwrap_or(InstanceState::Stopped)
    }

    fn instances(&self) -> Vec<InstanceId> {
        let mut ids: Vec<InstanceId> = lock(&self.inner.instances).keys().cloned().collect();
        ids.sort();
        ids
    }

    async fn kill_leftovers(&self, grace: Duration) -> Result<Vec<FoundProcess>, RuntimeError> {
        let inner = &self.inner;
        let filter = format!("{LABEL_DATA_DIR}={}", inner.data_dir.to_string_lossy());
        let filters = HashMap::from([("label", vec![filter.as_str()])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let containers = inner
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|err| DockerError::api("list containers", err))?;
        let live = lock(&inner.live).clone();
        let mut found = Vec::new();
        for container in containers {
            let Some(id) = container.id else { continue };
            let names = container.names.unwrap_or_default();
            if names
                .iter()
                .any(|n| live.contains(n.trim_start_matches('/')))
            {
                continue;
            }
            let instance = container
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_INSTANCE))
                .cloned();
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
        self.inner.events.subscribe()
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
        let mut stops = tokio::task::JoinSet::new();
        for id in self.instances() {
            let inner = self.inner.clone();
            stops.spawn(async move { inner.stop(&id).await });
        }
        while stops.join_next().await.is_some() {}
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
        assert_eq!(image_tag("shop", 3), "wharf/shop:r3");
    }
}
