//! What is running and routed right now, per app, and how the routing
//! table is derived from it.
//!
//! The proxy's table is never edited: [`Routes::publish`] rebuilds it from
//! the live state of every app and swaps it in whole (Architecture
//! Invariant 2). Only instances whose health monitor currently says healthy
//! are put in it (Invariant 1): an instance gets a monitor only after it
//! passed `wait_healthy` for this deploy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wharf_config::AppConfig;
use wharf_proxy::{Backend, BackendSet, Proxy, Route, RoutingTable};
use wharf_runtime::InstanceSpec;

/// One started instance of a release.
#[derive(Debug)]
pub(crate) struct LiveInstance {
    pub spec: InstanceSpec,
    /// For `http` processes: the proxy's handle on it.
    pub backend: Option<Arc<Backend>>,
    /// Health as last judged by its monitor; `None` until it passed once.
    pub healthy: Option<watch::Receiver<bool>>,
    /// False from the moment its process exits until the restarted process
    /// passed its health check again: a crash takes an instance out of the
    /// table at once, not after `threshold` failed probes.
    pub up: Arc<AtomicBool>,
    /// Task following `healthy` and republishing the table on changes.
    pub watcher: Option<JoinHandle<()>>,
}

impl Drop for LiveInstance {
    fn drop(&mut self) {
        if let Some(w) = self.watcher.take() {
            w.abort();
        }
    }
}

/// The instances of one release of an app.
#[derive(Debug)]
pub(crate) struct LiveRelease {
    pub number: i64,
    pub config: AppConfig,
    pub instances: Vec<LiveInstance>,
}

impl LiveInstance {
    /// May the proxy send requests to it?
    pub fn routable(&self) -> bool {
        self.up.load(Ordering::Acquire) && self.healthy.as_ref().is_some_and(|h| *h.borrow())
    }
}

impl LiveRelease {
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        self.instances
            .iter()
            .filter_map(|i| i.backend.clone())
            .collect()
    }
}

/// The serving release of every app, and the proxy it is published to.
#[derive(Debug)]
pub(crate) struct Routes {
    proxy: Arc<Proxy>,
    serving: Mutex<BTreeMap<String, Arc<LiveRelease>>>,
}

impl Routes {
    pub fn new(proxy: Arc<Proxy>) -> Routes {
        Routes {
            proxy,
            serving: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<LiveRelease>>> {
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The serving release of `app`.
    pub fn serving(&self, app: &str) -> Option<Arc<LiveRelease>> {
        self.lock().get(app).cloned()
    }

    pub fn all(&self) -> Vec<Arc<LiveRelease>> {
        self.lock().values().cloned().collect()
    }

    /// Makes `release` the serving one of `app` and publishes the table;
    /// returns the release it replaced.
    pub fn switch(&self, app: &str, release: Arc<LiveRelease>) -> Option<Arc<LiveRelease>> {
        let mut serving = self.lock();
        let old = serving.insert(app.to_owned(), release);
        self.proxy.swap(build_table(&serving));
        old
    }

    /// Takes `app` out of the table entirely (shutdown).
    pub fn remove(&self, app: &str) -> Option<Arc<LiveRelease>> {
        let mut serving = self.lock();
        let old = serving.remove(app);
        self.proxy.swap(build_table(&serving));
        old
    }

    /// The serving instance `id`, if any, with the config of its release.
    pub fn find(&self, id: &str) -> Option<(Arc<LiveRelease>, usize)> {
        self.lock().values().find_map(|r| {
            let i = r.instances.iter().position(|i| i.spec.id == id)?;
            Some((r.clone(), i))
        })
    }

    /// Rebuilds and swaps the table (after a health change).
    pub fn publish(&self) {
        let serving = self.lock();
        self.proxy.swap(build_table(&serving));
    }
}

/// Derives the routing table: one route per `http` process of each serving
/// release, with the instances that are healthy right now.
fn build_table(serving: &BTreeMap<String, Arc<LiveRelease>>) -> RoutingTable {
    let mut routes = Vec::new();
    for (app, release) in serving {
        for process in release.config.http_processes() {
            let Some(http) = &process.http else { continue };
            let backends = release
                .instances
                .iter()
                .filter(|i| i.spec.process == process.name)
                .filter(|i| i.routable())
                .filter_map(|i| i.backend.clone())
                .collect();
            routes.push(Route {
                app: app.clone(),
                process: process.name.clone(),
                host: http.host.clone(),
                path_prefix: http.path_prefix.clone(),
                backends: BackendSet::single(release.number as u64, backends),
            });
        }
    }
    RoutingTable::new(routes)
}
