//! Deploy metrics: outcomes and durations, and instance states.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct DeployLabels {
    pub app: String,
    pub kind: String,
    pub outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct InstanceLabels {
    pub app: String,
    pub state: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct KindLabels {
    pub app: String,
    pub kind: String,
}

#[derive(Debug)]
pub(crate) struct DeployMetrics {
    pub deploys: Family<DeployLabels, Counter>,
    pub duration: Family<KindLabels, Histogram>,
    pub instances: Family<InstanceLabels, Gauge>,
}

impl DeployMetrics {
    pub fn new(registry: &mut Registry) -> DeployMetrics {
        let m = DeployMetrics {
            deploys: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.1, 2.0, 12))
            }),
            instances: Family::default(),
        };
        registry.register(
            "wharf_deploys",
            "Deploys and rollbacks by outcome",
            m.deploys.clone(),
        );
        registry.register(
            "wharf_deploy_duration_seconds",
            "Time from deploy start to its outcome",
            m.duration.clone(),
        );
        registry.register("wharf_instances", "Instances by state", m.instances.clone());
        m
    }
}
