//! Prometheus metrics of the edge.
//!
//! Label sets are resolved once per backend ([`Metrics::handles`]) and the
//! resulting handles (cheap `Arc`ed atomics) are stored in the backend, so a
//! request updates metrics without building label strings or taking the
//! family's lock. The request-duration histogram is our own lock-free one:
//! prometheus-client's `Histogram` takes a mutex on every observation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the duration histogram: 1 ms to 10 s.
const BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    app: String,
    release: String,
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppRelease {
    app: String,
    release: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AppLabel {
    app: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    app: String,
    release: String,
    kind: &'static str,
}

/// Kinds of upstream errors, the `kind` label of `wharf_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UpstreamErrorKind {
    Connect = 0,
    ConnectTimeout = 1,
    Timeout = 2,
    Io = 3,
}

impl UpstreamErrorKind {
    const ALL: [UpstreamErrorKind; 4] =
        [Self::Connect, Self::ConnectTimeout, Self::Timeout, Self::Io];
    fn label(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::ConnectTimeout => "connect_timeout",
            Self::Timeout => "timeout",
            Self::Io => "io",
        }
    }
}

/// The metric families, registered once per proxy.
#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    requests: Family<RequestLabels, Counter>,
    duration: Family<AppRelease, AtomicHistogram>,
    in_flight: Family<AppLabel, Gauge>,
    upstream_errors: Family<ErrorLabels, Counter>,
    tunnels: Family<AppRelease, Gauge>,
}

/// Pre-resolved metric handles for one (app, release).
#[derive(Debug, Clone)]
pub(crate) struct Handles {
    /// Requests by status class, index `status / 100 - 1` (1xx..5xx).
    classes: [Counter; 5],
    duration: AtomicHistogram,
    pub(crate) in_flight: Gauge,
    errors: [Counter; 4],
    /// Upgrade tunnels (WebSockets…) open now.
    pub(crate) tunnels: Gauge,
}

impl Metrics {
    pub(crate) fn new(registry: &mut Registry) -> Metrics {
        let m = Metrics {
            requests: Family::default(),
            duration: Family::default(),
            in_flight: Family::default(),
            upstream_errors: Family::default(),
            tunnels: Family::default(),
        };
        // prometheus-client appends `_total` to counters.
        registry.register(
            "wharf_http_requests",
            "HTTP requests answered by the edge, by status class",
            m.requests.clone(),
        );
        registry.register(
            "wharf_http_request_duration_seconds",
            "Time from receiving a request head to the end of the response body",
            m.duration.clone(),
        );
        registry.register(
            "wharf_http_requests_in_flight",
            "Requests being proxied now",
            m.in_flight.clone(),
        );
        registry.register(
            "wharf_upstream_errors",
            "Failures talking to instances (connect, connect_timeout, timeout, io)",
            m.upstream_errors.clone(),
        );
        registry.register(
            "wharf_tunnels_open",
            "Upgraded connections (WebSockets and other upgrades) spliced to instances now",
            m.tunnels.clone(),
        );
        m
    }

    pub(crate) fn handles(&self, app: &str, release: &str) -> Handles {
        let class = |c: &'static str| {
            self.requests
                .get_or_create(&RequestLabels {
                    app: app.to_owned(),
                    release: release.to_owned(),
                    class: c,
                })
                .clone()
        };
        let error = |k: UpstreamErrorKind| {
            self.upstream_errors
                .get_or_create(&ErrorLabels {
                    app: app.to_owned(),
                    release: release.to_owned(),
                    kind: k.label(),
                })
                .clone()
        };
        Handles {
            classes: [
                class("1xx"),
                class("2xx"),
                class("3xx"),
                class("4xx"),
                class("5xx"),
            ],
            duration: self
                .duration
                .get_or_create(&AppRelease {
                    app: app.to_owned(),
                    release: release.to_owned(),
                })
                .clone(),
            in_flight: self
                .in_flight
                .get_or_create(&AppLabel {
                    app: app.to_owned(),
                })
                .clone(),
            errors: UpstreamErrorKind::ALL.map(error),
            tunnels: self
                .tunnels
                .get_or_create(&AppRelease {
                    app: app.to_owned(),
                    release: release.to_owned(),
                })
                .clone(),
        }
    }
}

impl Handles {
    pub(crate) fn record(&self, status: u16, elapsed: Duration) {
        let idx = usize::from((status / 100).clamp(1, 5)) - 1;
        self.classes[idx].inc();
        self.duration.observe(elapsed);
    }

    pub(crate) fn upstream_error(&self, kind: UpstreamErrorKind) {
        self.errors[kind as usize].inc();
    }
}

/// A histogram with fixed buckets ([`BUCKETS`]) made of atomics.
#[derive(Debug, Clone, Default)]
pub(crate) struct AtomicHistogram {
    inner: Arc<HistogramInner>,
}

#[derive(Debug, Default)]
struct HistogramInner {
    /// Non-cumulative counts; the last one is `+Inf`.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl AtomicHistogram {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let idx = BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS.len());
        self.inner.counts[idx].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.inner.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl TypedMetric for AtomicHistogram {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for AtomicHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        let mut buckets = [(0.0, 0u64); BUCKETS.len() + 1];
        let mut count = 0;
        for (i, slot) in buckets.iter_mut().enumerate() {
            let n = self.inner.counts[i].load(Ordering::Relaxed);
            count += n;
            *slot = (BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), n);
        }
        let sum = self.inner.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        encoder.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_encodes_cumulative_buckets() {
        let mut registry = Registry::default();
        let m = Metrics::new(&mut registry);
        let h = m.handles("web", "3");
        h.record(200, Duration::from_micros(500));
        h.record(503, Duration::from_secs(20));
        h.upstream_error(UpstreamErrorKind::Connect);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).unwrap();
        assert!(
            out.contains(r#"wharf_http_requests_total{app="web",release="3",class="2xx"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"wharf_http_requests_total{app="web",release="3",class="5xx"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(
                r#"wharf_http_request_duration_seconds_bucket{le="0.001",app="web",release="3"} 1"#
            ),
            "{out}"
        );
        assert!(
            out.contains(
                r#"wharf_http_request_duration_seconds_bucket{le="+Inf",app="web",release="3"} 2"#
            ),
            "{out}"
        );
        assert!(
            out.contains(r#"wharf_http_request_duration_seconds_count{app="web",release="3"} 2"#),
            "{out}"
        );
        assert!(
            out.contains(r#"wharf_upstream_errors_total{app="web",release="3",kind="connect"} 1"#),
            "{out}"
        );
        assert!(
            out.contains(r#"wharf_http_requests_in_flight{app="web"} 0"#),
            "{out}"
        );
    }
}
