//! What is running and routed right now, per app, and how the routing
//! table is derived from it.
//!
//! The proxy's table is never edited: every change rebuilds it from
//! the live state of every app and swaps it in whole (Architecture
//! Invariant 2). Only instances whose health monitor currently says healthy
//! are put in it (Invariant 1): an instance gets a monitor only after it
//! passed `wait_healthy` for this deploy.
//!
//! An app that has a serving release in the store but nothing in the table
//! (being restored after a restart, or whose restore failed) is marked
//! [`Down`]: its routes stay in the table without backends and answer 503
//! with `Retry-After`, and `wharf status` says why. The mark goes with the
//! next switch.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use wharf_config::AppConfig;
use wharf_proxy::{Backend, BackendSet, Proxy, ReleaseGroup, Route, RoutingTable, Unavailable};
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

/// Why an app with a serving release in the store has none in the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DownReason {
    /// A restarted server is bringing it back.
    Restoring,
    /// The restore failed with this error; a deploy or rollback fixes it.
    RestoreFailed(String),
}

/// An app that should serve `release` but does not: its routes answer 503
/// with `Retry-After` (not 404, which says the app is gone).
#[derive(Debug, Clone)]
pub(crate) struct Down {
    pub release: i64,
    /// The release's config, for its routes.
    pub config: AppConfig,
    pub reason: DownReason,
}

impl Down {
    /// The 503 the proxy answers for it: public, so no internal detail.
    fn unavailable(&self) -> Arc<Unavailable> {
        Arc::new(match self.reason {
            DownReason::Restoring => Unavailable {
                message: "The app is starting up after a restart of its server. Please try again in a few seconds.".into(),
                retry_after: std::time::Duration::from_secs(5),
            },
            DownReason::RestoreFailed(_) => Unavailable {
                message: "The app is unavailable right now. Please try again later.".into(),
                retry_after: std::time::Duration::from_secs(30),
            },
        })
    }
}

#[derive(Debug, Default)]
struct State {
    serving: BTreeMap<String, Serving>,
    /// Apps not in `serving` that should be.
    down: BTreeMap<String, Down>,
    /// Apps in maintenance mode: every route answers 503 with this.
    maintenance: BTreeMap<String, Arc<Unavailable>>,
}

/// How long clients are told to wait during maintenance.
const MAINTENANCE_RETRY: std::time::Duration = std::time::Duration::from_secs(60);

/// The page of an app in maintenance: `message`, or a default one.
fn maintenance_page(message: &str) -> Arc<Unavailable> {
    let message = if message.trim().is_empty() {
        "The app is down for maintenance. Please try again shortly.".to_owned()
    } else {
        message.to_owned()
    };
    Arc::new(Unavailable {
        message,
        retry_after: MAINTENANCE_RETRY,
    })
}

/// The serving releases of every app, and the proxy they are published to.
#[derive(Debug)]
pub(crate) struct Routes {
    proxy: Arc<Proxy>,
    state: Mutex<State>,
}

impl Routes {
    pub fn new(proxy: Arc<Proxy>) -> Routes {
        Routes {
            proxy,
            state: Mutex::new(State::default()),
        }
    }

    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn publish_locked(&self, state: &State) {
        self.proxy.swap(build_table(state));
    }

    /// The stable release of `app`.
    pub fn serving(&self, app: &str) -> Option<Arc<LiveRelease>> {
        self.lock().serving.get(app).map(|s| s.stable.clone())
    }

    /// Why `app` does not serve, when it should.
    pub fn down(&self, app: &str) -> Option<Down> {
        self.lock().down.get(app).cloned()
    }

    /// Marks `app` down (when nothing of it is routed): its routes answer 503.
    pub fn mark_down(&self, app: &str, down: Down) {
        let mut state = self.lock();
        if state.serving.contains_key(app) {
            return;
        }
        state.down.insert(app.to_owned(), down);
        self.publish_locked(&state);
    }

    /// Puts `app` in maintenance (`Some(message)`, empty for the default
    /// page) or takes it out (`None`); one table swap. Instances keep
    /// running and being health-checked.
    pub fn set_maintenance(&self, app: &str, message: Option<&str>) {
        let mut state = self.lock();
        match message {
            Some(m) => {
                state
                    .maintenance
                    .insert(app.to_owned(), maintenance_page(m));
            }
            None => {
                state.maintenance.remove(app);
            }
        }
        self.publish_locked(&state);
    }

    /// Every live release (stable and canary) of every app.
    pub fn all(&self) -> Vec<Arc<LiveRelease>> {
        self.lock()
            .serving
            .values()
            .flat_map(|s| {
                std::iter::once(s.stable.clone()).chain(s.canary.as_ref().map(|c| c.0.clone()))
            })
            .collect()
    }

    /// The releases routed for `app` right now, stable first.
    pub fn routed(&self, app: &str) -> Vec<(i64, u32)> {
        match self.lock().serving.get(app) {
            None => Vec::new(),
            Some(s) => {
                let w = s.canary.as_ref().map_or(0, |c| c.1);
                let mut out = vec![(s.stable.number, 100 - w)];
                out.extend(s.canary.as_ref().map(|c| (c.0.number, c.1)));
                out
            }
        }
    }

    /// Makes `release` the stable one of `app` (any canary ends, a down
    /// mark goes) and publishes the table; returns the stable release it
    /// replaced.
    pub fn switch(&self, app: &str, release: Arc<LiveRelease>) -> Option<Arc<LiveRelease>> {
        let mut state = self.lock();
        state.down.remove(app);
        let old = state.serving.insert(
            app.to_owned(),
            Serving {
                stable: release,
                canary: None,
            },
        );
        self.publish_locked(&state);
        old.map(|s| s.stable)
    }

    /// Sends `weight` percent of `app`'s traffic to `canary` (one table swap).
    pub fn set_canary(&self, app: &str, canary: Arc<LiveRelease>, weight: u32) {
        let mut state = self.lock();
        if let Some(s) = state.serving.get_mut(app) {
            s.canary = Some((canary, weight.min(100)));
        }
        self.publish_locked(&state);
    }

    /// Takes the canary of `app` out of the table in one swap; returns it.
    pub fn clear_canary(&self, app: &str) -> Option<Arc<LiveRelease>> {
        let mut state = self.lock();
        let canary = state.serving.get_mut(app).and_then(|s| s.canary.take());
        self.publish_locked(&state);
        canary.map(|c| c.0)
    }

    /// Takes `app` out of the table entirely (shutdown, removal).
    pub fn remove(&self, app: &str) -> Option<Arc<LiveRelease>> {
        let mut state = self.lock();
        let old = state.serving.remove(app);
        state.down.remove(app);
        state.maintenance.remove(app);
        self.publish_locked(&state);
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
        let state = self.lock();
        self.publish_locked(&state);
    }
}

/// Derives the routing table: one route per `http` process of each app's
/// stable release, holding the stable group and, during a canary, the
/// canary's group with its weight — only instances healthy right now —
/// and, for each app marked down, its routes answering 503.
fn build_table(state: &State) -> RoutingTable {
    let mut routes = Vec::new();
    for (app, s) in &state.serving {
        let canary_weight = s.canary.as_ref().map_or(0, |c| c.1);
        for process in s.stable.config.http_processes() {
            let Some(http) = &process.http else { continue };
            let mut groups = vec![group(&s.stable, &process.name, 100 - canary_weight)];
            if let Some((canary, weight)) = &s.canary {
                groups.push(group(canary, &process.name, *weight));
            }
            for host in route_hosts(http) {
                routes.push(Route {
                    app: app.clone(),
                    process: process.name.clone(),
                    host,
                    path_prefix: http.path_prefix.clone(),
                    backends: BackendSet {
                        groups: groups.clone(),
                    },
                    unavailable: state.maintenance.get(app).cloned(),
                    options: route_options(http),
                });
            }
        }
    }
    for (app, down) in &state.down {
        if state.serving.contains_key(app) {
            continue;
        }
        let unavailable = state
            .maintenance
            .get(app)
            .cloned()
            .unwrap_or_else(|| down.unavailable());
        for process in down.config.http_processes() {
            let Some(http) = &process.http else { continue };
            for host in route_hosts(http) {
                routes.push(Route {
                    app: app.clone(),
                    process: process.name.clone(),
                    host,
                    path_prefix: http.path_prefix.clone(),
                    backends: BackendSet::default(),
                    unavailable: Some(unavailable.clone()),
                    options: route_options(http),
                });
            }
        }
    }
    RoutingTable::new(routes)
}

/// The hosts a route answers for: each of its hosts, or any host.
fn route_hosts(http: &wharf_config::HttpRoute) -> Vec<Option<String>> {
    if http.hosts.is_empty() {
        vec![None]
    } else {
        http.hosts.iter().cloned().map(Some).collect()
    }
}

/// The edge's view of a route's settings.
fn route_options(http: &wharf_config::HttpRoute) -> wharf_proxy::RouteOptions {
    wharf_proxy::RouteOptions {
        max_body: Some(http.max_body),
        timeout: Some(http.timeout),
        tls: http.tls.is_some(),
        hsts: http.hsts,
    }
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
