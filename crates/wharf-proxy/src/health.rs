//! HTTP health checks of instances.

use std::net::SocketAddr;
use std::time::Duration;

/// What to probe and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive passes to become healthy / failures to become unhealthy.
    pub threshold: u32,
}

/// Why an instance did not become healthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{last_error} (after {attempts} probes of {path} on {addr})")]
pub struct HealthError {
    pub addr: SocketAddr,
    pub path: String,
    pub attempts: u32,
    /// What the last probe saw, e.g. "connection refused" or "status 500".
    pub last_error: String,
}

/// One `GET path` with the spec's timeout; 2xx and 3xx pass.
pub async fn probe(addr: SocketAddr, spec: &HealthSpec) -> Result<(), String> {
    let _ = (addr, spec);
    unimplemented!()
}

/// Probes until `threshold` consecutive passes (probing every
/// `min(interval, 100ms)` while waiting, so a fast app goes live fast) or
/// until `deadline` elapses.
pub async fn wait_healthy(addr: SocketAddr, spec: &HealthSpec, deadline: Duration) -> Result<(), HealthError> {
    let _ = (addr, spec, deadline);
    unimplemented!()
}

/// Keeps probing a live instance every `interval`; the value flips to
/// `false` after `threshold` consecutive failures and back to `true` after
/// `threshold` consecutive passes. Starts `true` (the caller only monitors
/// instances that already passed [`wait_healthy`]). The probing task ends
/// when every receiver is dropped.
pub fn monitor(addr: SocketAddr, spec: HealthSpec) -> tokio::sync::watch::Receiver<bool> {
    let _ = (addr, spec);
    unimplemented!()
}
