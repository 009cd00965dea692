//! The HTTP edge of wharf.
//!
//! * [`RoutingTable`]: immutable; `host + path prefix → BackendSet`. Traffic
//!   moves only by [`Proxy::swap`]ping a whole new table (Architecture
//!   Invariant 2): a request sees either the old table or the new one.
//! * [`BackendSet`]: release groups with weights (blue-green is 0/100, a
//!   canary is e.g. 90/10); selection is a value type.
//! * [`Backend`]: one instance's address and its own upstream connection pool;
//!   shared by `Arc` across successive tables so pools survive swaps. Its
//!   strong count doubles as the in-flight gauge used by [`drain`].
//! * [`health`]: HTTP probes with thresholds. Only instances that passed are
//!   put in a table by the caller (Architecture Invariant 1).
//!
//! This crate knows nothing of config files or the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;

pub mod health;
mod table;

pub use table::{BackendSet, ReleaseGroup, Route, RoutingTable};

/// Limits and timeouts of the edge.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Largest request head (request line + headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Largest request body; larger gets 413.
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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            max_header_bytes: 32 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            header_read_timeout: Duration::from_secs(30),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(60),
            access_log: true,
        }
    }
}

/// One instance the proxy can send requests to.
#[derive(Debug)]
pub struct Backend {/* id, addr, app, release, pool, metric handles */}

impl Backend {
    pub fn id(&self) -> &str {
        unimplemented!()
    }
    pub fn addr(&self) -> SocketAddr {
        unimplemented!()
    }
    pub fn release(&self) -> u64 {
        unimplemented!()
    }
    /// Requests currently using this backend (selected and not yet finished
    /// sending the response body).
    pub fn in_flight(&self) -> usize {
        unimplemented!()
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

/// Waits until no request uses any of `backends` (they must already be out
/// of the live table), or `timeout`; then closes their idle upstream
/// connections.
pub async fn drain(backends: &[Arc<Backend>], timeout: Duration) -> DrainReport {
    let _ = (backends, timeout);
    unimplemented!()
}

/// The reverse proxy.
#[derive(Debug)]
pub struct Proxy {/* ArcSwap<RoutingTable>, config, metric families */}

impl Proxy {
    /// Creates a proxy with an empty table, registering its metrics in `registry`.
    pub fn new(config: ProxyConfig, registry: &mut Registry) -> Arc<Proxy> {
        let _ = (config, registry);
        unimplemented!()
    }

    /// Creates a backend bound to this proxy's metrics for (`app`, `release`).
    pub fn backend(&self, id: &str, addr: SocketAddr, app: &str, release: u64) -> Arc<Backend> {
        let _ = (id, addr, app, release);
        unimplemented!()
    }

    /// Atomically replaces the routing table; returns the previous one.
    pub fn swap(&self, table: RoutingTable) -> Arc<RoutingTable> {
        let _ = table;
        unimplemented!()
    }

    /// The current table.
    pub fn table(&self) -> Arc<RoutingTable> {
        unimplemented!()
    }

    /// Serves HTTP/1.1 on `listener` until `shutdown` resolves, then stops
    /// accepting, lets in-flight requests finish (connections are told to
    /// close after their current request) and returns.
    pub async fn serve(
        self: Arc<Self>,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let _ = (listener, shutdown);
        unimplemented!()
    }
}
