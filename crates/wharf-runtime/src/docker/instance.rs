//! Instances and tasks as containers: launching them (network, port,
//! limits, labels), supervising them through [`crate::supervise`],
//! adopting the ones a crashed server left running, `exec` in them, and
//! one-off task containers.
//!
//! Adoption: a server that dies without stopping its instances (crash,
//! `kill -9`) leaves their containers running. [`adopt`] takes one over when
//! it is exactly what the caller would start (same container name, this
//! data dir, same release, and in bridge mode the same `127.0.0.1` port):
//! from then on its output (new lines only; the dead server logged the rest)
//! goes to the same log file and broadcast, its exit is waited for and it
//! is restarted per policy, like an instance started here. Anything else is
//! left for [`crate::Runtime::kill_leftovers`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerCreateBody, ContainerInspectResponse, EndpointSettings, ExecConfig, HostConfig,
    NetworkingConfig, PortBinding,
};
use bollard::query_parameters::InspectContainerOptions;
use tokio::sync::mpsc;

use super::build::read_image;
use super::volumes::port_bindings;
use super::{
    DockerError, DockerNetwork, Inner, LABEL_INSTANCE, LABEL_PROCESS, LABEL_RELEASE, OUTPUT_DRAIN,
    Output, TASK_KILL_AFTER, apply_limits, argv, check_app, check_name, container_name, env_list,
    forward_lines, is_not_found, lock, network_name,
};
use crate::logs::{LogSource, SharedLogFile, SharedTail};
use crate::supervise::{Exit, Launcher};
use crate::{InstanceSpec, InstanceState, LogLine, RuntimeError, TaskOutcome, TaskSpec};

/// How long `exec` waits for the engine to record the exit code after the
/// output ended.
const EXEC_EXIT_WAIT: Duration = Duration::from_secs(5);

/// One running container of an instance and the capture of its output.
#[derive(Debug)]
pub(super) struct Running {
    name: String,
    pid: u32,
    output: Output,
}

/// How the supervisor runs one instance as containers.
#[derive(Debug)]
struct DockerLauncher {
    inner: Arc<Inner>,
    spec: InstanceSpec,
    image: String,
    log: SharedLogFile,
}

impl Launcher for DockerLauncher {
    type Run = Running;

    async fn launch(&self) -> Result<Running, RuntimeError> {
        self.inner.launch(&self.spec, &self.image, &self.log).await
    }

    fn pid(run: &Running) -> u32 {
        run.pid
    }

    async fn wait(&self, run: &mut Running) -> Exit {
        let code = self.inner.wait_exit(&run.name).await;
        Exit {
            code: code.and_then(|c| i32::try_from(c).ok()),
            signal: None,
        }
    }

    async fn reap(&self, run: Running) {
        self.inner.reap(run).await;
    }

    async fn terminate(&self, run: Running, timeout: Duration) -> bool {
        let code = self.inner.stop_container(&run.name, timeout).await;
        self.inner.reap(run).await;
        // The engine's SIGKILL after the stop timeout shows as 128 + 9.
        code == Some(137)
    }
}

fn source_of(spec: &InstanceSpec) -> LogSource {
    LogSource {
        app: spec.app.clone(),
        release: spec.release,
        process: spec.process.clone(),
        instance: spec.id.clone(),
    }
}

/// Starts an instance and supervises it.
pub(super) async fn start(inner: &Arc<Inner>, spec: InstanceSpec) -> Result<u32, RuntimeError> {
    check_spec(&spec)?;
    let image = read_image(&spec.workdir, Some(&spec.process))?;
    let reservation = inner.sups.reserve(&spec.id)?;
    let log = inner.log_file(&spec.app, format!("{}.log", spec.id));
    let first = inner.launch(&spec, &image, &log).await?;
    let (policy, stop_timeout) = (spec.restart, spec.stop_timeout);
    let launcher = DockerLauncher {
        inner: inner.clone(),
        spec,
        image,
        log,
    };
    Ok(reservation.supervise(launcher, first, policy, stop_timeout))
}

fn check_spec(spec: &InstanceSpec) -> Result<(), RuntimeError> {
    check_app(&spec.app)?;
    check_name("instance id", &spec.id)?;
    check_name("process name", &spec.process)
}

/// Takes over the running container of `spec` if it is the one `start`
/// would make; `None` otherwise (see the module docs).
pub(super) async fn adopt(
    inner: &Arc<Inner>,
    spec: InstanceSpec,
) -> Result<Option<u32>, RuntimeError> {
    check_spec(&spec)?;
    let name = container_name(&spec.id);
    let info = match inner
        .docker
        .inspect_container(&name, None::<InspectContainerOptions>)
        .await
    {
        Ok(info) => info,
        Err(err) if is_not_found(&err) => return Ok(None),
        Err(err) => return Err(DockerError::api(format!("inspect container {name}"), err).into()),
    };
    let Some(pid) = adoptable(inner, &spec, &info) else {
        tracing::info!(instance = %spec.id, container = %name, "container does not match the instance; not adopting it");
        return Ok(None);
    };
    let image = read_image(&spec.workdir, Some(&spec.process))?;
    let reservation = inner.sups.reserve(&spec.id)?;
    let log = inner.log_file(&spec.app, format!("{}.log", spec.id));
    lock(&inner.live).insert(name.clone());
    let output = inner.follow_output(&name, source_of(&spec), log.clone(), None, true);
    let first = Running { name, pid, output };
    tracing::info!(instance = %spec.id, pid, "adopted the running container of an earlier server");
    let (policy, stop_timeout) = (spec.restart, spec.stop_timeout);
    let launcher = DockerLauncher {
        inner: inner.clone(),
        spec,
        image,
        log,
    };
    Ok(Some(reservation.supervise(
        launcher,
        first,
        policy,
        stop_timeout,
    )))
}

/// The pid of a container that `spec` may adopt.
fn adoptable(inner: &Inner, spec: &InstanceSpec, info: &ContainerInspectResponse) -> Option<u32> {
    let state = info.state.as_ref()?;
    if state.running != Some(true) {
        return None;
    }
    let labels = info.config.as_ref()?.labels.as_ref()?;
    if !inner.is_ours(Some(labels))
        || labels.get(LABEL_RELEASE) != Some(&spec.release.to_string())
        || labels.get(LABEL_INSTANCE) != Some(&spec.id)
    {
        return None;
    }
    if inner.network == DockerNetwork::AppBridge && spec.publish {
        let bindings = info.host_config.as_ref()?.port_bindings.as_ref()?;
        let published = bindings
            .get(&format!("{}/tcp", inner.listen_port(spec)))?
            .as_ref()?
            .iter()
            .any(|b| {
                b.host_ip.as_deref() == Some("127.0.0.1")
                    && b.host_port.as_deref() == Some(spec.port.to_string().as_str())
            });
        if !published {
            return None;
        }
    }
    state
        .pid
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| *p > 0)
}

impl Inner {
    /// The port the app listens on in its container: `container_port` on
    /// the app network (published on `port`), `port` on the host network.
    pub(super) fn listen_port(&self, spec: &InstanceSpec) -> u16 {
        match self.network {
            DockerNetwork::AppBridge => spec.container_port.unwrap_or(spec.port),
            DockerNetwork::Host => spec.port,
        }
    }

    /// Creates, starts and follows the container of an instance.
    async fn launch(
        &self,
        spec: &InstanceSpec,
        image: &str,
        log: &SharedLogFile,
    ) -> Result<Running, RuntimeError> {
        let name = container_name(&spec.id);
        let listen = self.listen_port(spec);
        let identity = [
            ("PORT", listen.to_string()),
            ("WHARF_APP", spec.app.clone()),
            ("WHARF_RELEASE", spec.release.to_string()),
            ("WHARF_PROCESS", spec.process.clone()),
            ("WHARF_INSTANCE", spec.id.clone()),
        ];
        let mut labels = self.labels(&spec.app, spec.release, &spec.process);
        labels.insert(LABEL_INSTANCE.to_owned(), spec.id.clone());
        let cmd = argv(&format!("instance {}", spec.id), &spec.command)?;
        let port_key = format!("{listen}/tcp");
        let (mut host_config, networking_config, exposed_ports) = match self.network {
            DockerNetwork::AppBridge => {
                self.ensure_network(&spec.app).await?;
                let network = network_name(&spec.app);
                // What the proxy reaches is published on loopback; `ports`
                // (a process without http) where they say.
                let (mut exposed, mut bindings) = port_bindings(&spec.ports);
                if spec.publish {
                    exposed.push(port_key.clone());
                    bindings.insert(
                        port_key.clone(),
                        Some(vec![PortBinding {
                            host_ip: Some("127.0.0.1".to_owned()),
                            host_port: Some(spec.port.to_string()),
                        }]),
                    );
                }
                let host_config = HostConfig {
                    network_mode: Some(network.clone()),
                    port_bindings: (!bindings.is_empty()).then_some(bindings),
                    ..Default::default()
                };
                let endpoint = EndpointSettings {
                    aliases: Some(vec![spec.process.clone()]),
                    ..Default::default()
                };
                let networking = NetworkingConfig {
                    endpoints_config: Some(HashMap::from([(network, endpoint)])),
                };
                (
                    host_config,
                    Some(networking),
                    Some(exposed).filter(|e| !e.is_empty()),
                )
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
        apply_limits(&mut host_config, &spec.limits);
        host_config.mounts = Some(self.mounts(&spec.app, &spec.volumes, None).await?);
        let entrypoint = match &spec.entrypoint {
            // An empty ENTRYPOINT list clears the image's.
            Some(e) => Some(argv(&format!("entrypoint of {}", spec.id), e)?.unwrap_or_default()),
            None => None,
        };
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            entrypoint,
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
        let output = self.follow_output(&name, source_of(spec), log.clone(), None, false);
        Ok(Running { name, pid, output })
    }

    /// Removes an exited container after its output is written.
    async fn reap(&self, run: Running) {
        run.output.finish(OUTPUT_DRAIN).await;
        if let Err(err) = self.remove_container(&run.name).await {
            tracing::warn!(error = %err, "could not remove exited container");
        }
        lock(&self.live).remove(&run.name);
    }

    /// Runs `argv` in the running container of instance `id`.
    pub(super) async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        output: mpsc::Sender<LogLine>,
    ) -> Result<i64, RuntimeError> {
        let not_running = || DockerError::NotRunning {
            instance: id.to_owned(),
        };
        if !matches!(self.sups.state(id), InstanceState::Running { .. }) {
            return Err(not_running().into());
        }
        if argv.first().is_none_or(|a| a.is_empty()) {
            return Err(DockerError::Command {
                what: format!("exec in {id}"),
                command: String::new(),
                reason: "it is empty".to_owned(),
            }
            .into());
        }
        let name = container_name(id);
        let info = match self
            .docker
            .inspect_container(&name, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => info,
            Err(err) if is_not_found(&err) => return Err(not_running().into()),
            Err(err) => {
                return Err(DockerError::api(format!("inspect container {name}"), err).into());
            }
        };
        let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
        let source = LogSource {
            app: labels.get(super::LABEL_APP).cloned().unwrap_or_default(),
            release: labels
                .get(LABEL_RELEASE)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            process: labels.get(LABEL_PROCESS).cloned().unwrap_or_default(),
            instance: id.to_owned(),
        };
        let config = ExecConfig {
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            cmd: Some(argv),
            ..Default::default()
        };
        let created = self
            .docker
            .create_exec(&name, config)
            .await
            .map_err(|err| {
                if err_is_not_running(&err) {
                    not_running()
                } else {
                    DockerError::api(format!("create exec in {name}"), err)
                }
            })?;
        let started = self
            .docker
            .start_exec(&created.id, None::<StartExecOptions>)
            .await
            .map_err(|err| DockerError::api(format!("start exec in {name}"), err))?;
        if let StartExecResults::Attached { output: stream, .. } = started {
            forward_lines(stream, &source, &output).await;
        }
        // The output ends a moment before the engine records the exit code.
        let deadline = tokio::time::Instant::now() + EXEC_EXIT_WAIT;
        loop {
            let answer = self
                .docker
                .inspect_exec(&created.id)
                .await
                .map_err(|err| DockerError::api(format!("inspect exec in {name}"), err))?;
            if answer.running != Some(true)
                && let Some(code) = answer.exit_code
            {
                return Ok(code);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(DockerError::api(
                    format!("get the exit code of exec in {name}"),
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 500,
                        message: "the command is still running after its output ended".to_owned(),
                    },
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a task in a one-off container of the release's image, on the
    /// app's network (so it reaches accessories by name), output to the
    /// app's log as process `spec.name`; the container is removed after.
    pub(super) async fn run_task(
        self: &Arc<Self>,
        spec: TaskSpec,
    ) -> Result<TaskOutcome, RuntimeError> {
        check_app(&spec.app)?;
        check_name("task name", &spec.name)?;
        let image = read_image(&spec.workdir, None)?;
        let instance = format!("{}-r{}-{}", spec.app, spec.release, spec.name);
        let name = format!("wharf-{instance}-{}", unique_suffix());
        let cmd = argv(&format!("task {instance}"), &spec.command)?;
        let identity = [
            ("WHARF_APP", spec.app.clone()),
            ("WHARF_RELEASE", spec.release.to_string()),
            ("WHARF_PROCESS", spec.name.clone()),
            ("WHARF_INSTANCE", instance.clone()),
        ];
        let mut host_config = match self.network {
            DockerNetwork::AppBridge => {
                self.ensure_network(&spec.app).await?;
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
        host_config.mounts = Some(self.mounts(&spec.app, &spec.volumes, None).await?);
        let body = ContainerCreateBody {
            image: Some(image),
            cmd,
            env: Some(env_list(&spec.env, &identity)),
            labels: Some(self.labels(&spec.app, spec.release, &spec.name)),
            host_config: Some(host_config),
            ..Default::default()
        };
        lock(&self.live).insert(name.clone());
        if let Err(err) = self.run_container(&name, body).await {
            lock(&self.live).remove(&name);
            return Err(err.into());
        }
        let log = self.log_file(
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
        let output = self.follow_output(&name, source, log, Some(tail.clone()), false);
        let (code, timed_out) = tokio::select! {
            code = self.wait_exit(&name) => (code, false),
            _ = tokio::time::sleep(spec.timeout) => {
                tracing::warn!(task = %instance, timeout = ?spec.timeout, "task ran past its timeout; stopping it");
                (self.stop_container(&name, TASK_KILL_AFTER).await, true)
            }
        };
        output.finish(OUTPUT_DRAIN).await;
        let removed = self.remove_container(&name).await;
        lock(&self.live).remove(&name);
        removed?;
        let tail = lock(&tail).iter().cloned().collect();
        Ok(TaskOutcome {
            code: code.and_then(|c| i32::try_from(c).ok()),
            signal: None,
            timed_out,
            tail,
        })
    }
}

/// Whether the engine refused an exec because the container is not running.
fn err_is_not_running(err: &bollard::errors::Error) -> bool {
    matches!(
        err,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 409 | 404,
            ..
        }
    )
}

pub(super) fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}-{nanos}", std::process::id())
}
