//! HTTP health checks of instances.
//!
//! A probe is one fresh connection and one `GET`: health checks must see what
//! a new client would see, so they never reuse the proxy's pooled
//! connections. Error strings are short and meant for humans ("connection
//! refused", "timed out after 2s", "status 500"); they end up in deploy
//! output.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::time::{Instant, timeout};

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
    match timeout(spec.timeout, probe_once(addr, &spec.path)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timed out after {}", fmt_duration(spec.timeout))),
    }
}

async fn probe_once(addr: SocketAddr, path: &str) -> Result<(), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| io_error_text(&e))?;
    let _ = stream.set_nodelay(true);
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake failed: {e}"))?;
    // The connection task ends when `tx` is dropped at the end of the probe.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let path = if path.starts_with('/') {
        path.to_owned()
    } else {
        format!("/{path}")
    };
    let req = Request::get(path)
        .header(http::header::HOST, "127.0.0.1")
        .header(http::header::USER_AGENT, "wharf-health")
        .body(Empty::new())
        .map_err(|e| format!("invalid health path: {e}"))?;
    let resp = tx.send_request(req).await.map_err(|e| {
        if e.is_incomplete_message() {
            "connection closed before a response".to_owned()
        } else {
            format!("{e}")
        }
    })?;
    let status = resp.status();
    // Read the body so the instance sees a complete exchange (and so a
    // broken body counts as a failure).
    resp.into_body()
        .collect()
        .await
        .map_err(|e| format!("reading body: {e}"))?;
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(format!("status {}", status.as_u16()))
    }
}

fn io_error_text(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        _ => e.to_string(),
    }
}

/// `2s`, `1500ms`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 && d.as_secs() > 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The first delay between probes of a starting instance.
pub const FAST_PROBE: Duration = Duration::from_millis(100);

/// Probes until `threshold` consecutive passes or until `deadline` elapses.
///
/// A starting instance is probed faster than `interval`, so a deploy
/// switches as soon as the instance is healthy: the first probe at once,
/// the next after [`FAST_PROBE`] (or `interval`, when shorter), the delay
/// doubling after every failed probe up to `interval`. An instance that
/// keeps failing is therefore probed every `interval`, as its settings say,
/// not ten times a second for the whole health timeout. Passes keep the
/// current delay, so `threshold` passes in a row take no longer than needed.
pub async fn wait_healthy(
    addr: SocketAddr,
    spec: &HealthSpec,
    deadline: Duration,
) -> Result<(), HealthError> {
    probe_until_healthy(addr, spec, deadline, spec.interval.min(FAST_PROBE)).await
}

/// [`wait_healthy`] at the configured `interval` from the first probe on:
/// for an instance that failed before (a crashed instance being readmitted
/// after an unsuccessful wait), which must not get a fast burst again.
pub async fn wait_healthy_at_interval(
    addr: SocketAddr,
    spec: &HealthSpec,
    deadline: Duration,
) -> Result<(), HealthError> {
    probe_until_healthy(addr, spec, deadline, spec.interval).await
}

/// The delay before the next probe after one that passed or failed.
pub fn next_delay(current: Duration, passed: bool, interval: Duration) -> Duration {
    if passed {
        current
    } else {
        current.saturating_mul(2).min(interval)
    }
}

async fn probe_until_healthy(
    addr: SocketAddr,
    spec: &HealthSpec,
    deadline: Duration,
    first_delay: Duration,
) -> Result<(), HealthError> {
    let end = Instant::now() + deadline;
    let need = spec.threshold.max(1);
    let interval = spec.interval.max(Duration::from_millis(1));
    let mut every = first_delay.max(Duration::from_millis(1)).min(interval);
    let mut attempts = 0u32;
    let mut passes = 0u32;
    let mut last_error = String::from("no probe ran before the deadline");
    loop {
        let started = Instant::now();
        // A probe never outlives the deadline.
        let left = end.saturating_duration_since(started);
        let (result, cut) = match timeout(left, probe(addr, spec)).await {
            Ok(r) => (r, false),
            Err(_) => (
                Err(format!(
                    "timed out after {}",
                    fmt_duration(spec.timeout.min(left))
                )),
                true,
            ),
        };
        attempts += 1;
        let passed = result.is_ok();
        match result {
            Ok(()) => {
                passes += 1;
                if passes >= need {
                    return Ok(());
                }
            }
            Err(e) => {
                passes = 0;
                // A last probe cut short by the deadline says nothing about
                // the instance ("timed out after 0ms"); an earlier failure
                // ("status 503") does.
                if !cut || attempts == 1 {
                    last_error = e;
                }
            }
        }
        let next = started + every;
        if next >= end {
            return Err(HealthError {
                addr,
                path: spec.path.clone(),
                attempts,
                last_error,
            });
        }
        every = next_delay(every, passed, interval);
        tokio::time::sleep_until(next).await;
    }
}

/// Keeps probing a live instance every `interval`; the value flips to
/// `false` after `threshold` consecutive failures and back to `true` after
/// `threshold` consecutive passes. Starts `true` (the caller only monitors
/// instances that already passed [`wait_healthy`]). The probing task ends
/// when every receiver is dropped.
///
/// Must be called inside a Tokio runtime.
pub fn monitor(addr: SocketAddr, spec: HealthSpec) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(true);
    tokio::spawn(async move {
        let need = spec.threshold.max(1);
        let mut streak = 0u32; // consecutive results disagreeing with the current state
        let mut ticker = tokio::time::interval(spec.interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate; the instance just passed
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = ticker.tick() => {}
            }
            let ok = tokio::select! {
                _ = tx.closed() => return,
                r = probe(addr, &spec) => r.is_ok(),
            };
            let healthy = *tx.borrow();
            if ok == healthy {
                streak = 0;
                continue;
            }
            streak += 1;
            if streak >= need {
                streak = 0;
                if tx.send(ok).is_err() {
                    return;
                }
                if ok {
                    tracing::info!(%addr, "instance healthy again");
                } else {
                    tracing::warn!(%addr, "instance unhealthy");
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_delays_double_up_to_the_interval_on_failures() {
        let ms = Duration::from_millis;
        let interval = ms(5000);
        let mut d = ms(100);
        let mut seen = Vec::new();
        for _ in 0..9 {
            d = next_delay(d, false, interval);
            seen.push(d.as_millis());
        }
        assert_eq!(seen, [200, 400, 800, 1600, 3200, 5000, 5000, 5000, 5000]);
        // A pass keeps the pace; a short interval caps at once.
        assert_eq!(next_delay(ms(400), true, interval), ms(400));
        assert_eq!(next_delay(ms(50), false, ms(50)), ms(50));
        assert_eq!(next_delay(ms(50), false, ms(80)), ms(80));
    }
}
