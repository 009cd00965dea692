//! Releases and the deploy state machine.
//!
//! [`Engine`] turns "deploy this source directory" into: release row →
//! build → snapshot → release command → start instances → health → switch
//! → drain → stop old, recording each [`Step`] in the store before acting
//! on it. A rollback is the same machine from "start instances" on, with a
//! retained release (accessories booted first). [`Engine::prepare_recovery`]
//! and [`Engine::recover`] are what a restarted server runs: the first
//! closes the deploys an earlier server left open and marks every app
//! restoring before anything answers; the second brings back each app's
//! serving release in the background and kills whatever of it an earlier
//! server left running.
//!
//! Architecture Invariant 3 lives here (with `wharf_store::Store::switch`
//! as the commit point); Invariants 1 and 2 are kept by [`live`].
//! This crate knows nothing of HTTP details: it hands backend sets to the
//! proxy and asks `wharf_proxy::health` whether instances are healthy.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use wharf_proxy::Proxy;
use wharf_runtime::Runtime;
use wharf_runtime::dispatch::Runtimes;
use wharf_store::Store;

pub mod analysis;
mod assets;
mod certificates;
mod containers;
mod cron;
mod deploy;
mod error;
mod hooks;
mod jobs;
mod live;
mod maintenance;
mod metrics;
mod pipeline;
mod progress;
mod progressive;
mod recover;
mod remove;
mod source;
mod start;
mod status;
pub mod statuses;
mod step;
mod volumes;

pub use certificates::Certificates;
pub use containers::AccessoryAction;
pub use deploy::git_revision;
pub use error::DeployError;
pub use jobs::{JobArgs, LEASE, Submitted};
pub use pipeline::{ForgeTokens, PipelineArgs, Pipelines};
pub use progress::{DeployReport, Progress};
pub use progressive::{Control, ProgressiveStatus, ReleaseTraffic};
pub use recover::{RecoveryPlan, RecoveryReport, RecoveryTx};
pub use source::source_hash;
pub use status::{AppStatus, DeploySummary, InstanceStatus, RouteStatus};
pub use step::Step;
pub use volumes::VolumeView;

/// Where progress of a deploy goes (the API streams it to the CLI).
pub type ProgressTx = mpsc::UnboundedSender<Progress>;

/// What to deploy.
#[derive(Debug, Clone, Default)]
pub struct DeployRequest {
    /// The app's source directory (holding `wharf.toml`).
    pub source_dir: std::path::PathBuf,
    /// `KEY=VALUE` overrides layered over the config's `env`.
    pub env: std::collections::BTreeMap<String, String>,
    /// Wait for a running deploy of the same app instead of failing.
    pub wait: bool,
    /// Canary: stop at the first step until `promote` (whatever its pause).
    pub pause: bool,
    /// The release's version (docker image tag) instead of the git revision.
    pub version: Option<String>,
    /// Docker: deploy this prebuilt image instead of building one.
    pub image: Option<String>,
    /// Where the source came from, recorded with the release (`upload
    /// sha256:…`, `git URL COMMIT`); default `dir <source_dir>`.
    pub source: Option<String>,
}

/// The deploy engine. One per server.
#[derive(Debug)]
pub struct Engine {
    store: Arc<Store>,
    runtime: Arc<Runtimes>,
    routes: Arc<live::Routes>,
    /// One deploy at a time per app, in this process (the store enforces it
    /// across processes too).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    metrics: metrics::DeployMetrics,
    /// Per app: how to reach a canary or bake in progress, and what it shows.
    progressive: Mutex<HashMap<String, progressive::InProgress>>,
    /// During recovery: instance id → (app, port) of the instances the
    /// store expected to be running, which the runtime may still have
    /// (containers outlive the server) and can adopt.
    adoptable: Mutex<HashMap<String, (String, u16)>>,
    /// The server's certificates, once it has them (see [`Engine::set_certificates`]).
    certificates: std::sync::OnceLock<Certificates>,
    /// The job queue's followers and runner (see [`jobs`]).
    jobs: jobs::Hub,
    /// What pipelines need from the server (see [`Engine::set_pipelines`]).
    pipelines: std::sync::OnceLock<Pipelines>,
    /// During recovery: per app, the restore waiting for its job.
    pending_restores: Mutex<HashMap<String, recover::PendingRestore>>,
}

impl Engine {
    /// Creates the engine; registers its metrics in `registry` and starts
    /// recording runtime events (pids, exits) in the store.
    pub fn new(
        store: Arc<Store>,
        runtime: Arc<Runtimes>,
        proxy: Arc<Proxy>,
        registry: &mut Registry,
    ) -> Arc<Engine> {
        let engine = Arc::new(Engine {
            store,
            runtime,
            routes: Arc::new(live::Routes::new(proxy)),
            locks: Mutex::new(HashMap::new()),
            metrics: metrics::DeployMetrics::new(registry),
            progressive: Mutex::new(HashMap::new()),
            adoptable: Mutex::new(HashMap::new()),
            certificates: std::sync::OnceLock::new(),
            jobs: jobs::Hub::default(),
            pipelines: std::sync::OnceLock::new(),
            pending_restores: Mutex::new(HashMap::new()),
        });
        tokio::spawn(recover::record_runtime_events(Arc::downgrade(&engine)));
        tokio::spawn(progressive::record_release_metrics(Arc::downgrade(&engine)));
        engine
    }

    /// Gives the engine the server's certificates: deploys install and
    /// order those of their TLS hosts. Once; later calls change nothing.
    pub fn set_certificates(&self, certificates: Certificates) {
        let _ = self.certificates.set(certificates);
    }

    /// The server's certificates, if it has them.
    pub fn certificates(&self) -> Option<&Certificates> {
        self.certificates.get()
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn runtime(&self) -> &Arc<Runtimes> {
        &self.runtime
    }

    pub fn proxy(&self) -> &Arc<Proxy> {
        self.routes.proxy()
    }

    /// The port of instance `id` if recovery may adopt it (once).
    pub(crate) fn take_adoptable(&self, id: &str) -> Option<u16> {
        let mut adoptable = self.adoptable.lock().unwrap_or_else(|e| e.into_inner());
        adoptable.remove(id).map(|(_, port)| port)
    }

    fn app_lock(&self, app: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(app.to_owned()).or_default().clone()
    }

    /// Stops every instance of every app, after taking them out of the
    /// routing table and draining them (server shutdown, Ctrl-C of `wharf up`).
    pub async fn shutdown(&self) {
        let started = Instant::now();
        for release in self.routes.all() {
            self.routes.remove(&release.config.name);
            let drain = release.config.deploy.drain_timeout;
            wharf_proxy::drain(&release.backends(), drain).await;
        }
        self.runtime.shutdown().await;
        for row in self.store.live_instances(None).unwrap_or_default() {
            let _ = self
                .store
                .set_instance_state(&row.id, wharf_store::InstanceState::Stopped);
        }
        tracing::info!(
            took_ms = started.elapsed().as_millis() as u64,
            "all instances stopped"
        );
    }
}
