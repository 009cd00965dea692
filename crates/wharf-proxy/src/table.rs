//! Immutable routing tables and weighted backend sets.

use std::sync::Arc;

use crate::Backend;

/// `host + path prefix → backends` for every routed process of every app.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {/* routes sorted most specific first */}

impl RoutingTable {
    /// Builds a table; routes are ordered most specific first (exact host
    /// before any host, longer prefix before shorter).
    pub fn new(routes: Vec<Route>) -> RoutingTable {
        let _ = routes;
        unimplemented!()
    }
    pub fn routes(&self) -> &[Route] {
        unimplemented!()
    }
    /// The route for a request's host (port stripped, any case) and path.
    /// Prefix `/api` matches `/api` and `/api/x`, not `/apix`.
    pub fn resolve(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let _ = (host, path);
        unimplemented!()
    }
}

#[derive(Debug, Clone)]
pub struct Route {
    pub app: String,
    /// Process name, for logs and metrics.
    pub process: String,
    pub host: Option<String>,
    pub path_prefix: String,
    pub backends: BackendSet,
}

/// The releases a route sends to, with weights.
#[derive(Debug, Clone, Default)]
pub struct BackendSet {
    pub groups: Vec<ReleaseGroup>,
}

/// The healthy instances of one release of a process, and its share of traffic.
#[derive(Debug, Clone)]
pub struct ReleaseGroup {
    pub release: u64,
    /// Relative weight; 0 takes no new traffic.
    pub weight: u32,
    pub backends: Vec<Arc<Backend>>,
}

impl BackendSet {
    /// A set sending everything to one release.
    pub fn single(release: u64, backends: Vec<Arc<Backend>>) -> BackendSet {
        BackendSet { groups: vec![ReleaseGroup { release, weight: 100, backends }] }
    }
    /// Every backend of every group.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.groups.iter().flat_map(|g| g.backends.iter())
    }
}
