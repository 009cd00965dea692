//! Row types, as the rest of wharf sees them.

use serde::Serialize;

use crate::StoreError;

/// Defines a string-backed enum stored as TEXT.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Result<Self, StoreError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!(
                        concat!("unknown ", stringify!($name), " {:?}"), other
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// Where a release is in its life.
    ReleaseStatus {
        Pending = "pending",
        Ready = "ready",
        Failed = "failed",
        Pruned = "pruned",
    }
);

text_enum!(
    /// `restore` is what a restarted server records when it brings back the serving release.
    DeployKind { Deploy = "deploy", Rollback = "rollback", Restore = "restore" }
);

text_enum!(DeployOutcome {
    Succeeded = "succeeded",
    Failed = "failed",
    Interrupted = "interrupted",
});

text_enum!(
    /// An instance as the server records it.
    InstanceState {
        Starting = "starting",
        Healthy = "healthy",
        Unhealthy = "unhealthy",
        Restarting = "restarting",
        Stopping = "stopping",
        Stopped = "stopped",
        Failed = "failed",
    }
);

text_enum!(EventLevel { Info = "info", Warn = "warn", Error = "error" });

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppRow {
    pub id: i64,
    pub name: String,
    pub source_dir: String,
    /// The serving release, if any.
    pub current_release: Option<i64>,
    pub created_ms: i64,
    /// Maintenance mode: `None` off, else on with this message (empty for
    /// the default page).
    pub maintenance: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReleaseRow {
    pub app_id: i64,
    pub number: i64,
    /// Source revision (git commit, with `-dirty` when the tree had changes).
    pub revision: Option<String>,
    /// The resolved config the release was made with (JSON).
    #[serde(skip)]
    pub config_json: String,
    /// The prepared release directory.
    pub dir: Option<String>,
    pub status: ReleaseStatus,
    pub created_ms: i64,
    /// A hash of the source tree it was made from (see
    /// `wharf_deploy::source_hash`); `None` for older releases.
    pub source_hash: Option<String>,
    /// Where its source came from: `upload sha256:…`, `git URL COMMIT` or
    /// `dir PATH`; `None` for older releases.
    pub source: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployRow {
    pub id: i64,
    pub app_id: i64,
    pub kind: DeployKind,
    pub from_release: Option<i64>,
    pub to_release: Option<i64>,
    /// The last recorded state (see `wharf_deploy::Step`).
    pub state: String,
    /// `None` while the deploy runs.
    pub outcome: Option<DeployOutcome>,
    pub error: Option<String>,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// `blue-green` or `canary`.
    pub strategy: String,
    /// Traffic share (0-100) of the new release while it is analysed.
    pub weight: Option<i64>,
    /// The last analysis decision, as JSON.
    pub verdict: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransitionRow {
    pub deploy_id: i64,
    pub seq: i64,
    pub state: String,
    pub at_ms: i64,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceRow {
    pub id: String,
    pub app_id: i64,
    pub release: i64,
    pub process: String,
    pub idx: i64,
    pub port: u16,
    pub pid: Option<u32>,
    pub state: InstanceState,
    pub started_ms: i64,
    pub updated_ms: i64,
}

/// What [`crate::Store::insert_instance`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInstance<'a> {
    pub id: &'a str,
    pub app_id: i64,
    pub release: i64,
    pub process: &'a str,
    pub idx: i64,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub app_id: Option<i64>,
    pub deploy_id: Option<i64>,
    pub at_ms: i64,
    pub level: EventLevel,
    pub message: String,
}

/// Requests of one release in one 10 s bucket.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReleaseMetricsRow {
    pub release: i64,
    pub bucket_ms: i64,
    pub requests: i64,
    pub errors: i64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}
