//! Immutable routing tables and weighted backend sets.
//!
//! A [`RoutingTable`] is built once by the deploy engine and then only read:
//! the proxy swaps whole tables, it never edits one. Everything a request
//! needs to pick a backend (sorted routes, lower-cased hosts, cumulative
//! weights) is therefore computed in [`RoutingTable::new`], so the hot path
//! is a linear scan over a few routes plus two cheap counters.
//!
//! That includes what sticky assignment needs: whether a route splits its
//! traffic between releases (two or more groups of weight > 0), the name of
//! its cookie (`wharf_<app>`) and the ready-made `Set-Cookie` value of each
//! group. The proxy decides; the table only answers "which group serves
//! release n" and picks round robin inside a group.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::HeaderValue;

use crate::Backend;

/// `host + path prefix → backends` for every routed process of every app.
#[derive(Debug, Clone, Default)]
pub struct RoutingTable {
    /// Sorted most specific first; `resolve` takes the first match.
    routes: Vec<Route>,
    /// Per-route selection state, same index as `routes`. Lives here (and
    /// not in `Route`/`BackendSet`) because those are plain public structs
    /// the caller builds with literals.
    picks: Vec<RoutePick>,
}

impl RoutingTable {
    /// Builds a table; routes are ordered most specific first (exact host
    /// before any host, longer prefix before shorter).
    pub fn new(routes: Vec<Route>) -> RoutingTable {
        let mut routes: Vec<Route> = routes
            .into_iter()
            .map(|mut r| {
                r.host = r
                    .host
                    .as_deref()
                    .map(normalize_host)
                    .filter(|h| !h.is_empty());
                r.path_prefix = normalize_prefix(&r.path_prefix);
                r
            })
            .collect();
        // Stable sort: among equally specific routes the caller's order wins.
        routes.sort_by_key(|r| (r.host.is_none(), std::cmp::Reverse(r.path_prefix.len())));
        let picks = routes.iter().map(RoutePick::new).collect();
        RoutingTable { routes, picks }
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a request's host (port stripped, any case) and path.
    /// Prefix `/api` matches `/api` and `/api/x`, not `/apix`.
    pub fn resolve(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.resolve_index(host, path).map(|i| &self.routes[i])
    }

    pub(crate) fn resolve_index(&self, host: Option<&str>, path: &str) -> Option<usize> {
        let host = host.map(strip_port);
        self.routes.iter().position(|r| {
            let host_ok = match (&r.host, host) {
                (None, _) => true,
                (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
                (Some(_), None) => false,
            };
            host_ok && prefix_matches(&r.path_prefix, path)
        })
    }

    /// Picks a backend of route `idx`: a release group by weight, then round
    /// robin inside the group. Returns the group index too (for retries).
    pub(crate) fn pick(&self, idx: usize) -> Option<(usize, &Arc<Backend>)> {
        let route = self.routes.get(idx)?;
        let pick = self.picks.get(idx)?;
        let group = pick
            .weights
            .pick(fastrand::u32(..pick.weights.total.max(1)))?;
        let backends = &route.backends.groups[group].backends;
        let n = pick.rr[group].fetch_add(1, Ordering::Relaxed);
        Some((group, &backends[n % backends.len()]))
    }

    /// Round robin inside group `group` of route `idx`, whatever its
    /// weight; `None` when the group has no backend.
    pub(crate) fn pick_in(&self, idx: usize, group: usize) -> Option<&Arc<Backend>> {
        let backends = &self.routes.get(idx)?.backends.groups.get(group)?.backends;
        if backends.is_empty() {
            return None;
        }
        let n = self
            .picks
            .get(idx)?
            .rr
            .get(group)?
            .fetch_add(1, Ordering::Relaxed);
        Some(&backends[n % backends.len()])
    }

    /// Sticky assignment of route `idx`, when it splits its traffic.
    pub(crate) fn sticky(&self, idx: usize) -> Option<&Sticky> {
        self.picks.get(idx)?.sticky.as_ref()
    }

    /// The group of route `idx` a client assigned to `release` stays in:
    /// the first of that release with weight > 0 and a backend.
    pub(crate) fn sticky_group(&self, idx: usize, release: u64) -> Option<usize> {
        self.routes
            .get(idx)?
            .backends
            .groups
            .iter()
            .position(|g| g.release == release && g.weight > 0 && !g.backends.is_empty())
    }

    /// The group of route `idx` serving `release` at any weight, for an
    /// explicit override: the first of that release with a backend, else
    /// the first of that release (which then has none).
    pub(crate) fn release_group(&self, idx: usize, release: u64) -> Option<usize> {
        let groups = &self.routes.get(idx)?.backends.groups;
        groups
            .iter()
            .position(|g| g.release == release && !g.backends.is_empty())
            .or_else(|| groups.iter().position(|g| g.release == release))
    }

    /// Another backend of the same group than `not`, for a retry.
    pub(crate) fn pick_other(
        &self,
        idx: usize,
        group: usize,
        not: &Arc<Backend>,
    ) -> Option<&Arc<Backend>> {
        let route = self.routes.get(idx)?;
        let backends = &route.backends.groups.get(group)?.backends;
        // Read, don't advance: the round robin stays even for other requests.
        let start = self.picks[idx].rr[group].load(Ordering::Relaxed);
        (0..backends.len())
            .map(|i| &backends[(start + i) % backends.len()])
            .find(|b| !Arc::ptr_eq(b, not))
    }
}

/// Selection state of one route.
#[derive(Debug)]
struct RoutePick {
    weights: WeightedPick,
    /// Round-robin counter per release group.
    rr: Vec<AtomicUsize>,
    /// Set when two or more groups have weight > 0.
    sticky: Option<Sticky>,
}

impl RoutePick {
    fn new(route: &Route) -> RoutePick {
        let set = &route.backends;
        RoutePick {
            weights: WeightedPick::new(set),
            rr: set.groups.iter().map(|_| AtomicUsize::new(0)).collect(),
            sticky: Sticky::new(route),
        }
    }
}

/// Sticky assignment of a route that splits its traffic between releases:
/// the cookie that remembers a client's release, computed once per table.
#[derive(Debug, Clone)]
pub(crate) struct Sticky {
    /// `wharf_<app>`.
    cookie: String,
    /// `Set-Cookie` value assigning a client to each group, same index as
    /// the groups; `None` for groups of weight 0.
    set_cookie: Vec<Option<HeaderValue>>,
}

impl Sticky {
    /// `None` unless two or more groups have weight > 0, or when the app
    /// name can't be a cookie name (app names are `[a-z0-9-]`, so only a
    /// hand-made route would do that).
    fn new(route: &Route) -> Option<Sticky> {
        let groups = &route.backends.groups;
        if groups.iter().filter(|g| g.weight > 0).count() < 2 {
            return None;
        }
        let cookie = format!("wharf_{}", route.app);
        if !cookie
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return None;
        }
        let set_cookie = groups
            .iter()
            .map(|g| {
                (g.weight > 0).then(|| {
                    let v = format!("{cookie}={}; Path=/; HttpOnly; SameSite=Lax", g.release);
                    HeaderValue::from_str(&v).ok()
                })?
            })
            .collect();
        Some(Sticky { cookie, set_cookie })
    }

    /// The cookie's name, `wharf_<app>`.
    pub(crate) fn cookie(&self) -> &str {
        &self.cookie
    }

    /// The `Set-Cookie` value assigning a client to group `group`.
    pub(crate) fn set_cookie(&self, group: usize) -> Option<HeaderValue> {
        self.set_cookie.get(group)?.clone()
    }
}

impl Clone for RoutePick {
    fn clone(&self) -> Self {
        RoutePick {
            weights: self.weights.clone(),
            rr: self
                .rr
                .iter()
                .map(|c| AtomicUsize::new(c.load(Ordering::Relaxed)))
                .collect(),
            sticky: self.sticky.clone(),
        }
    }
}

/// Weighted choice between release groups, as a value: cumulative weights of
/// the groups that can take traffic (weight > 0 and at least one backend).
/// `pick(r)` with `r` uniform in `0..total` returns a group index; a group of
/// weight 0 is never returned, whatever `r` is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WeightedPick {
    /// (exclusive cumulative upper bound, group index)
    bounds: Vec<(u32, usize)>,
    total: u32,
}

impl WeightedPick {
    pub fn new(set: &BackendSet) -> WeightedPick {
        let mut total = 0u32;
        let mut bounds = Vec::new();
        for (i, g) in set.groups.iter().enumerate() {
            if g.weight == 0 || g.backends.is_empty() {
                continue;
            }
            total = total.saturating_add(g.weight);
            bounds.push((total, i));
        }
        WeightedPick { bounds, total }
    }

    /// Sum of the weights of the groups that can take traffic; 0 means the
    /// route has no healthy backend (503).
    pub fn total(&self) -> u32 {
        self.total
    }

    /// The group for `r` (taken modulo the total).
    pub fn pick(&self, r: u32) -> Option<usize> {
        if self.total == 0 {
            return None;
        }
        let r = r % self.total;
        self.bounds
            .iter()
            .find(|(upper, _)| r < *upper)
            .map(|&(_, i)| i)
    }
}

/// `Example.COM:8080` → `example.com`, `[::1]:80` → `[::1]`, trailing dot removed.
fn normalize_host(h: &str) -> String {
    strip_port(h.trim()).to_ascii_lowercase()
}

fn strip_port(h: &str) -> &str {
    let h = if h.starts_with('[') {
        // IPv6 literal: the port, if any, follows the closing bracket.
        match h.find(']') {
            Some(end) => &h[..=end],
            None => h,
        }
    } else {
        match h.rfind(':') {
            Some(i) => &h[..i],
            None => h,
        }
    };
    h.strip_suffix('.').unwrap_or(h)
}

/// `""` and `"/"` → `"/"`; `"api/"` → `"/api"` (no trailing slash, so the
/// segment-boundary check is one comparison).
fn normalize_prefix(p: &str) -> String {
    let p = p.trim().trim_end_matches('/');
    if p.is_empty() {
        "/".to_owned()
    } else if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'),
        None => false,
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
    /// When set, the proxy answers every request of this route itself with
    /// 503, `Retry-After` and this reason, and forwards nothing (an app
    /// being restored after a restart, or whose restore failed, or in
    /// maintenance).
    pub unavailable: Option<Arc<Unavailable>>,
    /// Limits and TLS of the route.
    pub options: RouteOptions,
}

/// What a route asks of the edge besides its backends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteOptions {
    /// Largest request body; `None`: [`crate::ProxyConfig::max_body_bytes`].
    pub max_body: Option<u64>,
    /// Time for an instance to send its response head; `None`:
    /// [`crate::ProxyConfig::upstream_timeout`]. A streamed body is not
    /// bounded by it.
    pub timeout: Option<std::time::Duration>,
    /// The host is served over HTTPS: plain HTTP is redirected to it once
    /// a certificate for the host is there.
    pub tls: bool,
    /// Send `Strict-Transport-Security` on HTTPS answers.
    pub hsts: bool,
}

/// Why a route answers 503 by itself, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unavailable {
    /// One sentence for the page's reader (plain text; HTML-escaped when shown).
    pub message: String,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    pub retry_after: std::time::Duration,
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
        BackendSet {
            groups: vec![ReleaseGroup {
                release,
                weight: 100,
                backends,
            }],
        }
    }
    /// Every backend of every group.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.groups.iter().flat_map(|g| g.backends.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_port_cases() {
        assert_eq!(strip_port("example.com:8080"), "example.com");
        assert_eq!(strip_port("example.com"), "example.com");
        assert_eq!(strip_port("example.com."), "example.com");
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("[::1]"), "[::1]");
        assert_eq!(normalize_host("EXAMPLE.com:1"), "example.com");
    }

    #[test]
    fn prefix_cases() {
        for (prefix, path, want) in [
            ("/", "/", true),
            ("/", "/x", true),
            ("/api", "/api", true),
            ("/api", "/api/", true),
            ("/api", "/api/x", true),
            ("/api", "/apix", false),
            ("/api", "/ap", false),
            ("/api/v1", "/api/v1/users", true),
            ("/api/v1", "/api/v12", false),
        ] {
            assert_eq!(prefix_matches(prefix, path), want, "{prefix} vs {path}");
        }
        assert_eq!(normalize_prefix(""), "/");
        assert_eq!(normalize_prefix("/api/"), "/api");
        assert_eq!(normalize_prefix("api"), "/api");
    }

    #[test]
    fn weighted_pick_is_exact_over_one_period() {
        let w = WeightedPick {
            bounds: vec![(90, 0), (100, 2)],
            total: 100,
        };
        let mut counts = [0u32; 3];
        for r in 0..1000 {
            counts[w.pick(r).unwrap()] += 1;
        }
        assert_eq!(counts, [900, 0, 100]);
        assert_eq!(WeightedPick::default().pick(3), None);
    }
}
