//! The HTTP edge of wharf.
//!
//! * [`RoutingTable`]: immutable; `host + path prefix → BackendSet`. Traffic
//!   moves only by [`Proxy::swap`]ping a whole new table (Architecture
//!   Invariant 2): a request sees either the old table or the new one.
//! * [`BackendSet`]: release groups with weights (blue-green is 0/100, a
//!   canary is e.g. 90/10); selection is a value type.
//! * [`Backend`]: one instance's address and its own upstream connection pool;
//!   shared by `Arc` across successive tables so pools survive swaps. It
//!   counts the requests using it (from selection until the response body
//!   is sent or dropped); [`drain`] waits on that count.
//! * [`health`]: HTTP probes with thresholds. Only instances that passed are
//!   put in a table by the caller (Architecture Invariant 1).
//! * [`stats`]: per-release sliding windows of requests, 5xx and latency.
//!   The proxy feeds one per (app, release) with every proxied response
//!   (its own 502/503/504 for a release's backend included); the deploy
//!   engine reads them with [`Proxy::release_stats`] to judge a canary.
//! * Sticky assignment: on a route that splits traffic between releases
//!   (two or more groups of weight > 0), a client is assigned a release by
//!   weight once and kept there by a session cookie `wharf_<app>=<release>`.
//! * [`Unavailable`]: a route can be marked down (an app being restored
//!   after a restart, or whose restore failed); the proxy then answers its
//!   requests itself with 503 and `Retry-After` instead of a 404 that would
//!   tell clients and crawlers the app is gone.
//! * Override for testing: with [`ProxyConfig::override_token`] set, a
//!   request carrying `X-Wharf-Release: <n>` and the token in
//!   `X-Wharf-Token` goes to release n of its route, even at weight 0. Both
//!   headers are always removed before forwarding.
//!
//! This crate knows nothing of config files or the store.
//!
//! Request handling (including the sticky and override decisions) lives in
//! `proxy` (private), upstream connections in `pool`, metrics in `metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use prometheus_client::registry::Registry;

pub mod health;
mod metrics;
mod pool;
mod proxy;
pub mod stats;
mod table;

pub use table::{
    BackendSet, ReleaseGroup, Route, RouteOptions, RoutingTable, Unavailable, WeightedPick,
};

/// The largest request body a route takes unless it says otherwise
/// (uploads of ordinary files fit).
pub const DEFAULT_MAX_BODY: u64 = 100 * 1024 * 1024;

/// Limits and timeouts of the edge.
#[derive(Clone)]
pub struct ProxyConfig {
    /// Largest request head (request line + headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Largest request body unless the route says otherwise; larger gets 413.
    pub max_body_bytes: u64,
    /// Time a client has to send a request head, which also closes idle
    /// keep-alive connections (slow clients, slowloris).
    pub header_read_timeout: Duration,
    /// Time to connect to an instance; then 502.
    pub upstream_connect_timeout: Duration,
    /// Time for an instance to send its response head; then 504.
    pub upstream_timeout: Duration,
    /// Idle upstream connections are closed after this.
    pub upstream_idle_timeout: Duration,
    /// Write one JSON access-log line per request (tracing target `wharf::access`).
    pub access_log: bool,
    /// Secret that lets a request pick its release: with `X-Wharf-Token`
    /// equal to it (compared in constant time), `X-Wharf-Release: <n>`
    /// sends the request to release n of its route, even at weight 0 (503
    /// if the route has no release n). `None` (the default) or an empty
    /// string disables overrides; the two headers are then ignored. They
    /// are never forwarded to instances. Redacted from `Debug`.
    pub override_token: Option<String>,
    /// Peers whose `X-Forwarded-For`, `-Proto` and `-Host` are believed
    /// (a load balancer in front): their `X-Forwarded-For` is extended with
    /// the peer's address. From anyone else the three are replaced with
    /// what the proxy saw.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// An upgrade tunnel (WebSocket) with nothing moving either way for
    /// this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// The port of the HTTPS listener, for redirects of TLS hosts from
    /// plain HTTP (`None`: no HTTPS listener, no redirects; 443 is left
    /// out of the URL).
    pub https_port: Option<u16>,
    /// Certificates and ACME challenges (TLS listener, redirects,
    /// `/.well-known/acme-challenge/`).
    pub certs: Option<Arc<dyn Certs>>,
}

/// What the proxy needs of the server's certificates.
pub trait Certs: Send + Sync + std::fmt::Debug {
    /// Picks the certificate of a TLS handshake by its SNI name.
    fn resolver(&self) -> Arc<dyn rustls::server::ResolvesServerCert>;
    /// Whether `host` has a certificate now: a TLS route's plain HTTP is
    /// redirected to HTTPS only then (before, the app serves on HTTP).
    fn has(&self, host: &str) -> bool;
    /// The key authorization answering ACME HTTP-01 challenge `token`, if
    /// one is in flight.
    fn challenge(&self, token: &str) -> Option<String>;
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("max_header_bytes", &self.max_header_bytes)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("upstream_connect_timeout", &self.upstream_connect_timeout)
            .field("upstream_timeout", &self.upstream_timeout)
            .field("upstream_idle_timeout", &self.upstream_idle_timeout)
            .field("access_log", &self.access_log)
            .field(
                "override_token",
                &self.override_token.as_ref().map(|_| "<redacted>"),
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .field("tunnel_idle_timeout", &self.tunnel_idle_timeout)
            .field("https_port", &self.https_port)
            .field("certs", &self.certs.is_some())
            .finish()
    }
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_header_bytes: 32 * 1024,
            max_body_bytes: DEFAULT_MAX_BODY,
            header_read_timeout: Duration::from_secs(30),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(60),
            access_log: true,
            override_token: None,
            trusted_proxies: Vec::new(),
            tunnel_idle_timeout: Duration::from_secs(300),
            https_port: None,
            certs: None,
        }
    }
}

/// One instance the proxy can send requests to.
#[derive(Debug)]
pub struct Backend {
    id: String,
    addr: SocketAddr,
    app: String,
    release: u64,
    /// `Host` for requests that came without one (HTTP/1.0).
    host: HeaderValue,
    pool: pool::Pool,
    in_flight: AtomicUsize,
    /// Bumped by [`drain`] once its timeout passed: open tunnels of the
    /// backend end.
    tunnels_closed: tokio::sync::watch::Sender<u64>,
    metrics: metrics::Handles,
    /// The live window of (app, release), shared with the release's other
    /// backends.
    window: Arc<stats::LiveWindow>,
}

impl Backend {
    pub fn id(&self) -> &str {
        &self.id
    }
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    pub fn release(&self) -> u64 {
        self.release
    }
    /// The app this backend serves (as given to [`Proxy::backend`]).
    pub fn app(&self) -> &str {
        &self.app
    }
    /// Requests currently using this backend (selected and not yet finished
    /// sending the response body).
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
    /// Upstream connections to this backend kept open for reuse.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }

    fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.metrics.in_flight.inc();
    }

    fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.metrics.in_flight.dec();
    }

    /// The drain generation a new tunnel belongs to.
    fn tunnel_generation(&self) -> u64 {
        *self.tunnels_closed.borrow()
    }

    /// Resolves once a drain closed the tunnels of generation `generation`.
    fn tunnel_closed(&self, generation: u64) -> impl Future<Output = ()> + use<> {
        let mut rx = self.tunnels_closed.subscribe();
        async move {
            let _ = rx.wait_for(|g| *g > generation).await;
        }
    }

    fn close_tunnels(&self) {
        self.tunnels_closed.send_modify(|g| *g += 1);
    }
}

/// Outcome of [`drain`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// True when every in-flight request finished before the timeout.
    pub completed: bool,
    /// Requests still in flight when the timeout hit.
    pub abandoned: usize,
    pub waited: Duration,
}

/// Waits until no request or tunnel uses any of `backends` (they must
/// already be out of the live table), or `timeout`; then closes their idle
/// upstream connections and the tunnels still open (counted as abandoned).
pub async fn drain(backends: &[Arc<Backend>], timeout: Duration) -> DrainReport {
    let start = Instant::now();
    let busy = || backends.iter().map(|b| b.in_flight()).sum::<usize>();
    let mut left = busy();
    while left > 0 && start.elapsed() < timeout {
        let nap = Duration::from_millis(5).min(timeout.saturating_sub(start.elapsed()));
        tokio::time::sleep(nap).await;
        left = busy();
    }
    for b in backends {
        b.pool.close();
        b.close_tunnels();
    }
    DrainReport {
        completed: left == 0,
        abandoned: left,
        waited: start.elapsed(),
    }
}

/// The reverse proxy.
#[derive(Debug)]
pub struct Proxy {
    table: ArcSwap<RoutingTable>,
    config: ProxyConfig,
    metrics: metrics::Metrics,
    /// Handles for responses that match no route (app and release "none").
    unrouted: Arc<metrics::Handles>,
    /// Live stats per (app, release); time counts from the proxy's creation.
    windows: stats::LiveWindows,
}

impl Proxy {
    /// Creates a proxy with an empty table, registering its metrics in `registry`.
    pub fn new(config: ProxyConfig, registry: &mut Registry) -> Arc<Proxy> {
        let metrics = metrics::Metrics::new(registry);
        let unrouted = Arc::new(metrics.handles("none", "none"));
        Arc::new(Proxy {
            table: ArcSwap::from_pointee(RoutingTable::default()),
            config,
            metrics,
            unrouted,
            windows: stats::LiveWindows::new(),
        })
    }

    /// Creates a backend bound to this proxy's metrics and live stats for
    /// (`app`, `release`).
    pub fn backend(&self, id: &str, addr: SocketAddr, app: &str, release: u64) -> Arc<Backend> {
        let host = HeaderValue::from_str(&addr.to_string())
            .unwrap_or(HeaderValue::from_static("localhost"));
        Arc::new(Backend {
            id: id.to_owned(),
            addr,
            app: app.to_owned(),
            release,
            host,
            pool: pool::Pool::new(
                addr,
                self.config.upstream_connect_timeout,
                self.config.upstream_idle_timeout,
            ),
            in_flight: AtomicUsize::new(0),
            tunnels_closed: tokio::sync::watch::channel(0).0,
            metrics: self.metrics.handles(app, &release.to_string()),
            window: self.windows.get_or_create(app, release),
        })
    }

    /// What release `release` of `app` did over the last `window` (rounded
    /// up to whole seconds, at most two minutes): every response proxied
    /// for one of its backends, whatever its route or process, the proxy's
    /// own 502/503/504 for its backends included. Empty stats when the
    /// proxy knows nothing of that release.
    pub fn release_stats(&self, app: &str, release: u64, window: Duration) -> stats::WindowStats {
        self.windows.snapshot_last(app, release, window)
    }

    /// Atomically replaces the routing table; returns the previous one.
    pub fn swap(&self, table: RoutingTable) -> Arc<RoutingTable> {
        self.table.swap(Arc::new(table))
    }

    /// The current table.
    pub fn table(&self) -> Arc<RoutingTable> {
        self.table.load_full()
    }

    /// The configuration this proxy was created with.
    pub fn config(&self) -> &ProxyConfig {
        &self.config
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then stops
    /// accepting, lets in-flight requests finish (connections are told to
    /// close after their current request) and returns.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        proxy::serve(self, listener, shutdown, Duration::from_secs(30), None).await
    }

    /// Serves HTTPS on `listener` — TLS with the certificate picked by SNI
    /// ([`ProxyConfig::certs`]), then HTTP/2 or HTTP/1.1 as ALPN decides —
    /// until `shutdown`, like [`Proxy::serve`]. Fails at once without
    /// [`ProxyConfig::certs`].
    pub async fn serve_tls(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Some(certs) = self.config.certs.clone() else {
            return Err(std::io::Error::other(
                "the HTTPS listener needs certificates (ProxyConfig::certs)",
            ));
        };
        let acceptor = proxy::tls_acceptor(certs.resolver());
        proxy::serve(
            self,
            listener,
            shutdown,
            Duration::from_secs(30),
            Some(acceptor),
        )
        .await
    }
}
