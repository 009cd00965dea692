//! What is running and routed right now, per app, and how the routing
//! table is derived from it.
//!
//! The proxy's table is never edited: every change rebuilds it from
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
use wharf_proxy::{Backend, BackendSet, Proxy, ReleaseGroup, Route, RoutingTable};
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

/// What one app serves: its stable release and, during a canary, the new
/// release with its traffic share.
#[derive(Debug, Clone)]
pub(crate) struct Serving {
    pub stable: Arc<LiveRelease>,
    pub canary: Option<(Arc<LiveRelease>, u32)>,
}

/// The serving releases of every app, and the proxy they are published to.
#[derive(Debug)]
pub(crate) struct Routes {
    proxy: Arc<Proxy>,
    serving: Mutex<BTreeMap<String, Serving>>,
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

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Serving>> {
        self.serving.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The stable release of `app`.
    pub fn serving(&self, app: &str) -> Option<Arc<LiveRelease>> {
        self.lock().get(app).map(|s| s.stable.clone())
    }

    /// Every live release (stable and canary) of every app.
    pub fn all(&self) -> Vec<Arc<LiveRelease>> {
        self.lock()
            .values()
            .flat_map(|s| {
                std::iter::once(s.stable.clone()).chain(s.canary.as_ref().map(|c| c.0.clone()))
            })
            .collect()
    }

    /// The releases routed for `app` right now, stable first.
    pub fn routed(&self, app: &str) -> Vec<(i64, u32)> {
        match self.lock().get(app) {
            None => Vec::new(),
            Some(s) => {
                let w = s.canary.as_ref().map_or(0, |c| c.1);
                let mut out = vec![(s.stable.number, 100 - w)];
                out.extend(s.canary.as_ref().map(|c| (c.0.number, c.1)));
                out
            }
        }
    }

    /// Makes `release` the stable one of `app` (any canary ends) and
    /// publishes the table; returns the stable release it replaced.
    pub fn switch(&self, app: &str, release: Arc<LiveRelease>) -> Option<Arc<LiveRelease>> {
        let mut serving = self.lock();
        let old = serving.insert(
            app.to_owned(),
            Serving {
                stable: release,
                canary: None,
            },
        );
        self.proxy.swap(build_table(&serving));
        old.map(|s| s.stable)
    }

    /// Sends `weight` percent of `app`'s traffic to `canary` (one table swap).
    pub fn set_canary(&self, app: &str, canary: Arc<LiveRelease>, weight: u32) {
        let mut serving = self.lock();
        if let Some(s) = serving.get_mut(app) {
            s.canary = Some((canary, weight.min(100)));
        }
        self.proxy.swap(build_table(&serving));
    }

    /// Takes the canary of `app` out of the table in one swap; returns it.
    pub fn clear_canary(&self, app: &str) -> Option<Arc<LiveRelease>> {
        let mut serving = self.lock();
        let canary = serving.get_mut(app).and_then(|s| s.canary.take());
        self.proxy.swap(build_table(&serving));
        canary.map(|c| c.0)
    }

    /// Takes `app` out of the table entirely (shutdown).
    pub fn remove(&self, app: &str) -> Option<Arc<LiveRelease>> {
        let mut serving = self.lock();
        let old = serving.remove(app);
        self.proxy.swap(build_table(&serving));
        old.map(|s| s.stable)
    }

    /// A live instance `id` (of a stable or canary release), with its release.
    pub fn find(&self, id: &str) -> Option<(Arc<LiveRelease>, usize)> {
        self.all().into_iter().find_map(|r| {
            let i = r.instances.iter().position(|i| i.spec.id == id)?;
            Some((r, i))
        })
    }

    /// Rebuilds and swaps the table (after a health change).
    pub fn publish(&self) {
        let serving = self.lock();
        self.proxy.swap(build_table(&serving));
    }
}

/// Derives the routing table: one route per `http` process of each app's
/// stable release, holding the stable group and, during a canary, the
/// canary's group with its weight — only instances healthy right now.
fn build_table(serving: &BTreeMap<String, Serving>) -> RoutingTable {
    let mut routes = Vec::new();
    for (app, s) in serving {
        let canary_weight = s.canary.as_ref().map_or(0, |c| c.1);
        for process in s.stable.config.http_processes() {
            let Some(http) = &process.http else { continue };
            let mut groups = vec![group(&s.stable, &process.name, 100 - canary_weight)];
            if let Some((canary, weight)) = &s.canary {
                groups.push(group(canary, &process.name, *weight));
            }
            routes.push(Route {
                app: app.clone(),
                process: process.name.clone(),
                host: http.host.clone(),
                path_prefix: http.path_prefix.clone(),
                backends: BackendSet { groups },
            });
        }
    }
    RoutingTable::new(routes)
}

fn group(release: &LiveRelease, process: &str, weight: u32) -> ReleaseGroup {
    ReleaseGroup {
        release: release.number as u64,
        weight,
        backends: release
            .instances
            .iter()
            .filter(|i| i.spec.process == process && i.routable())
            .filter_map(|i| i.backend.clone())
            .collect(),
    }
}
