//! The steps of a deploy, in order, and the test failpoints between them.

use serde::{Deserialize, Serialize};

/// A state of the deploy state machine. Each is recorded in the store
/// *before* the engine acts on it (Architecture Invariant 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Running the app's `build` command in its source directory.
    Building,
    /// Snapshotting the source into the release directory (process), or
    /// building the release's image (docker).
    Preparing,
    /// Copying out the release's assets (`asset_path`) and sharing them
    /// with the serving release's.
    Assets,
    /// Booting the app's accessories that are not running (docker).
    Accessories,
    /// Running the release command (migrations).
    Releasing,
    /// The TLS hosts' certificates: files installed, ACME orders started
    /// (never waited for).
    Certificates,
    /// Starting the new release's instances.
    Starting,
    /// Waiting for every new instance to pass its health check.
    HealthChecking,
    /// A canary step: the new release gets a share of the traffic while it
    /// is analysed against the stable one.
    Canary,
    /// The commit point: the new release serves (store, then routing table).
    Switched,
    /// Blue-green: the old release is kept warm while the new one is analysed.
    Baking,
    /// The new release failed its analysis (or was aborted) and traffic
    /// goes back to the old one.
    RollingBack,
    /// Letting in-flight requests to the old release finish.
    Draining,
    /// Stopping the old release's instances.
    StoppingOld,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Building => "building",
            Step::Preparing => "preparing",
            Step::Assets => "assets",
            Step::Accessories => "accessories",
            Step::Releasing => "releasing",
            Step::Certificates => "certificates",
            Step::Starting => "starting",
            Step::HealthChecking => "health_checking",
            Step::Canary => "canary",
            Step::Switched => "switched",
            Step::Baking => "baking",
            Step::RollingBack => "rolling_back",
            Step::Draining => "draining",
            Step::StoppingOld => "stopping_old",
        }
    }

    /// What the step does, for progress lines.
    pub fn label(self) -> &'static str {
        match self {
            Step::Building => "build",
            Step::Preparing => "prepare release",
            Step::Assets => "bridge assets",
            Step::Accessories => "boot accessories",
            Step::Releasing => "release command",
            Step::Certificates => "certificates",
            Step::Starting => "start instances",
            Step::HealthChecking => "health checks",
            Step::Canary => "canary",
            Step::Switched => "switch traffic",
            Step::Baking => "bake",
            Step::RollingBack => "roll back",
            Step::Draining => "drain old release",
            Step::StoppingOld => "stop old release",
        }
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Test hook for crash tests: when `WHARF_FAILPOINT` is `<step>` or
/// `<step>@<release>`, the engine stops right after recording that step (of
/// that release) — it logs `failpoint reached` and waits forever, so a test
/// can `kill -9` the server at exactly that point. Unset in production; it
/// costs one environment lookup per step.
pub(crate) async fn failpoint(step: Step, release: Option<i64>) {
    let Ok(spec) = std::env::var("WHARF_FAILPOINT") else {
        return;
    };
    let (name, at) = match spec.split_once('@') {
        Some((name, n)) => (name, n.parse::<i64>().ok()),
        None => (spec.as_str(), None),
    };
    if name == step.as_str() && (at.is_none() || at == release) {
        tracing::warn!(step = step.as_str(), release, "failpoint reached");
        std::future::pending::<()>().await;
    }
}
