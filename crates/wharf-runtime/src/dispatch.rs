//! [`Runtimes`]: one [`Runtime`] made of the process runtime and the docker
//! runtime, sending each call to the runtime of the app it is about.
//!
//! The deploy engine talks to one runtime and never asks which kind it is:
//! it says once per app which kind the app uses ([`Runtimes::select`], from
//! the app's config), and every later call about that app (by app name, or
//! by instance id) goes there. The docker runtime is connected on first use,
//! so a server with only process apps never needs a Docker engine, and an
//! unreachable engine fails the deploys of docker apps only, with the
//! engine's error (which socket was tried, how to fix it).
//!
//! Events and log lines of both runtimes are forwarded into one stream each.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use tokio::sync::{OnceCell, broadcast, mpsc};

use crate::{
    AccessorySpec, AccessoryStatus, FoundProcess, InstanceId, InstanceSpec, InstanceState, LogLine,
    PruneReport, ReleaseSource, RemovedApp, Runtime, RuntimeError, RuntimeEvent, TaskOutcome,
    TaskSpec, VolumeInfo,
};

const EVENT_CAPACITY: usize = 1024;
const LOG_CAPACITY: usize = 4096;

/// Which runtime an app uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Process,
    Docker,
}

/// Connects the docker runtime when an app first needs it.
pub type DockerConnector =
    Box<dyn Fn() -> BoxFuture<'static, Result<Arc<dyn Runtime>, RuntimeError>> + Send + Sync>;

/// See the module docs.
pub struct Runtimes {
    process: Arc<dyn Runtime>,
    docker: OnceCell<Arc<dyn Runtime>>,
    connect_docker: DockerConnector,
    kinds: Mutex<HashMap<String, Kind>>,
    events: broadcast::Sender<RuntimeEvent>,
    logs: broadcast::Sender<LogLine>,
}

impl std::fmt::Debug for Runtimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtimes")
            .field("process", &self.process)
            .field("docker", &self.docker.get())
            .field("kinds", &*lock(&self.kinds))
            .finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Forwards a runtime's broadcast into ours until either side closes.
fn forward<T: Clone + Send + 'static>(
    mut from: broadcast::Receiver<T>,
    to: broadcast::Sender<T>,
    what: &'static str,
) {
    tokio::spawn(async move {
        loop {
            match from.recv().await {
                Ok(item) => {
                    let _ = to.send(item);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "{what} were dropped while forwarding");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    });
}

impl Runtimes {
    /// `process` runs process apps; `connect_docker` is called once, the
    /// first time a docker app is selected. Must be called within a tokio
    /// runtime (it spawns the forwarders).
    pub fn new(process: Arc<dyn Runtime>, connect_docker: DockerConnector) -> Self {
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let (logs, _) = broadcast::channel(LOG_CAPACITY);
        forward(process.events(), events.clone(), "runtime events");
        forward(process.log_lines(), logs.clone(), "log lines");
        Runtimes {
            process,
            docker: OnceCell::new(),
            connect_docker,
            kinds: Mutex::new(HashMap::new()),
            events,
            logs,
        }
    }

    /// Only the process runtime: selecting a docker app fails (tests).
    pub fn process_only(process: Arc<dyn Runtime>) -> Self {
        Self::new(
            process,
            Box::new(|| {
                Box::pin(async {
                    Err(RuntimeError::Unsupported {
                        what: "containers",
                        on: "this server".to_owned(),
                    })
                })
            }),
        )
    }

    /// Records that `app` runs on `kind` (connecting the docker runtime if
    /// this is its first app) and returns that runtime.
    pub async fn select(&self, app: &str, kind: Kind) -> Result<Arc<dyn Runtime>, RuntimeError> {
        let runtime = match kind {
            Kind::Process => self.process.clone(),
            Kind::Docker => self.docker().await?,
        };
        lock(&self.kinds).insert(app.to_owned(), kind);
        Ok(runtime)
    }

    /// The process runtime (host commands such as an app's build command
    /// run there whatever the app's runtime).
    pub fn process(&self) -> Arc<dyn Runtime> {
        self.process.clone()
    }

    /// The docker runtime, connecting it on first use.
    pub async fn docker(&self) -> Result<Arc<dyn Runtime>, RuntimeError> {
        self.docker
            .get_or_try_init(|| async {
                let docker = (self.connect_docker)().await?;
                forward(docker.events(), self.events.clone(), "runtime events");
                forward(docker.log_lines(), self.logs.clone(), "log lines");
                Ok(docker)
            })
            .await
            .cloned()
    }

    /// The kind `app` was last selected with (process if never).
    pub fn kind_of(&self, app: &str) -> Kind {
        lock(&self.kinds).get(app).copied().unwrap_or(Kind::Process)
    }

    /// The runtime of `app`. A docker app selected earlier always finds
    /// the docker runtime connected.
    fn for_app(&self, app: &str) -> &Arc<dyn Runtime> {
        match (self.kind_of(app), self.docker.get()) {
            (Kind::Docker, Some(docker)) => docker,
            _ => &self.process,
        }
    }

    /// The runtime supervising instance `id`, if any.
    fn for_instance(&self, id: &str) -> &Arc<dyn Runtime> {
        if let Some(docker) = self.docker.get()
            && docker.instances().iter().any(|i| i == id)
        {
            return docker;
        }
        &self.process
    }

    /// Both runtimes that exist.
    fn all(&self) -> impl Iterator<Item = &Arc<dyn Runtime>> {
        std::iter::once(&self.process).chain(self.docker.get())
    }
}

#[async_trait]
impl Runtime for Runtimes {
    async fn prepare_release(&self, source: &ReleaseSource) -> Result<PathBuf, RuntimeError> {
        self.for_app(&source.app).prepare_release(source).await
    }

    async fn remove_release(&self, app: &str, release: u64) -> Result<(), RuntimeError> {
        self.for_app(app).remove_release(app, release).await
    }

    async fn run_task(&self, spec: TaskSpec) -> Result<TaskOutcome, RuntimeError> {
        self.for_app(&spec.app).clone().run_task(spec).await
    }

    async fn start(&self, spec: InstanceSpec) -> Result<u32, RuntimeError> {
        self.for_app(&spec.app).clone().start(spec).await
    }

    async fn stop(&self, id: &str) -> Result<(), RuntimeError> {
        self.for_instance(id).stop(id).await
    }

    fn state(&self, id: &str) -> InstanceState {
        self.for_instance(id).state(id)
    }

    fn instances(&self) -> Vec<InstanceId> {
        self.all().flat_map(|r| r.instances()).collect()
    }

    async fn kill_leftovers(
        &self,
        app: Option<&str>,
        grace: Duration,
    ) -> Result<Vec<FoundProcess>, RuntimeError> {
        let mut found = Vec::new();
        for runtime in self.all() {
            found.extend(runtime.kill_leftovers(app, grace).await?);
        }
        Ok(found)
    }

    fn events(&self) -> broadcast::Receiver<RuntimeEvent> {
        self.events.subscribe()
    }

    fn log_lines(&self) -> broadcast::Receiver<LogLine> {
        self.logs.subscribe()
    }

    async fn tail_logs(
        &self,
        app: &str,
        process: Option<&str>,
        n: usize,
    ) -> Result<Vec<LogLine>, RuntimeError> {
        self.for_app(app).tail_logs(app, process, n).await
    }

    async fn shutdown(&self) {
        for runtime in self.all() {
            runtime.shutdown().await;
        }
    }

    async fn adopt(&self, spec: InstanceSpec) -> Result<Option<u32>, RuntimeError> {
        self.for_app(&spec.app).clone().adopt(spec).await
    }

    async fn exec(
        &self,
        id: &str,
        argv: Vec<String>,
        output: mpsc::Sender<LogLine>,
    ) -> Result<i64, RuntimeError> {
        self.for_instance(id).exec(id, argv, output).await
    }

    async fn boot_accessory(&self, spec: &AccessorySpec) -> Result<AccessoryStatus, RuntimeError> {
        self.for_app(&spec.app).boot_accessory(spec).await
    }

    async fn stop_accessory(&self, app: &str, name: &str) -> Result<(), RuntimeError> {
        self.for_app(app).stop_accessory(app, name).await
    }

    async fn remove_accessory(
        &self,
        app: &str,
        name: &str,
        volumes: bool,
    ) -> Result<(), RuntimeError> {
        self.for_app(app).remove_accessory(app, name, volumes).await
    }

    async fn accessory_status(
        &self,
        app: &str,
        name: &str,
    ) -> Result<AccessoryStatus, RuntimeError> {
        self.for_app(app).accessory_status(app, name).await
    }

    async fn accessory_logs(
        &self,
        app: &str,
        name: &str,
        tail: usize,
        follow: bool,
        output: mpsc::Sender<LogLine>,
    ) -> Result<(), RuntimeError> {
        self.for_app(app)
            .accessory_logs(app, name, tail, follow, output)
            .await
    }

    async fn remove_app(&self, app: &str, volumes: bool) -> Result<RemovedApp, RuntimeError> {
        let mut removed = RemovedApp::default();
        // Docker first: its files live in the same app dir the process
        // runtime removes.
        for runtime in self.all().collect::<Vec<_>>().into_iter().rev() {
            removed.merge(runtime.remove_app(app, volumes).await?);
        }
        Ok(removed)
    }

    async fn volumes(&self, app: &str) -> Result<Vec<VolumeInfo>, RuntimeError> {
        self.for_app(app).volumes(app).await
    }

    async fn remove_volume(&self, app: &str, name: &str) -> Result<bool, RuntimeError> {
        self.for_app(app).remove_volume(app, name).await
    }

    async fn copy_out(
        &self,
        app: &str,
        workdir: &std::path::Path,
        process: &str,
        path: &str,
        dest: &std::path::Path,
    ) -> Result<(), RuntimeError> {
        self.for_app(app)
            .copy_out(app, workdir, process, path, dest)
            .await
    }

    async fn prune(&self, keep: &[(String, u64)]) -> Result<PruneReport, RuntimeError> {
        let mut report = PruneReport::default();
        for runtime in self.all() {
            let r = runtime.prune(keep).await?;
            report.images.extend(r.images);
            report.containers.extend(r.containers);
            report.reclaimed_bytes += r.reclaimed_bytes;
        }
        Ok(report)
    }
}
