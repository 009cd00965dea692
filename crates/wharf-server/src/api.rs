//! The local API's wire types, shared by the server and the CLI's client.
//!
//! Endpoints (HTTP/1.1 over the unix socket `<data>/wharf.sock`):
//!
//! | method & path | body | answer |
//! |---|---|---|
//! | `GET /v1/status` | | [`StatusResponse`] |
//! | `POST /v1/deploys` | [`DeployBody`] | NDJSON stream of [`Progress`], ending with `finished` |
//! | `POST /v1/apps/{app}/rollback` | [`RollbackBody`] | NDJSON stream of [`Progress`] |
//! | `POST /v1/apps/{app}/promote` | | 204; 409 when no canary waits |
//! | `POST /v1/apps/{app}/abort` | | 204; 409 when no canary runs |
//! | `GET /v1/apps/{app}/releases` | | `[`[`ReleaseInfo`]`]` |
//! | `GET /v1/apps/{app}/events?limit=N` | | `[`[`EventInfo`]`]` |
//! | `GET /v1/apps/{app}/logs?process=P&tail=N&follow=true` | | NDJSON stream of [`LogLineOut`] |
//! | `GET /v1/apps/{app}/accessories?source_dir=D` | | `[`[`AccessoryStatus`]`]` |
//! | `POST /v1/apps/{app}/accessories/{name}/{boot,stop,remove}` | [`AccessoryBody`] | [`AccessoryStatus`] |
//! | `GET /v1/apps/{app}/accessories/{name}/logs?source_dir=D&tail=N&follow=true` | | NDJSON stream of [`LogLineOut`] |
//! | `POST /v1/apps/{app}/run` | [`RunBody`] | NDJSON stream of [`CommandOutput`] |
//! | `POST /v1/apps/{app}/exec` | [`ExecBody`] | NDJSON stream of [`CommandOutput`] |
//! | `POST /v1/prune` | | [`PruneReport`] |
//! | `GET /v1/certs` | | `[`[`CertView`]`]` |
//! | `POST /v1/apps/{app}/maintenance` | [`MaintenanceBody`] | 204 |
//! | `DELETE /v1/apps/{app}?volumes=B` | | [`RemovedApp`]; 409 while a deploy of it runs |
//! | `GET /v1/apps/{app}/volumes` | | `[`[`VolumeView`]`]` |
//! | `DELETE /v1/apps/{app}/volumes/{name}` | | 204; 409 while the running config mounts it |
//!
//! Accessory endpoints read the app's `wharf.toml` from `source_dir` when
//! given (so accessories can boot before the first deploy, or with an
//! edited config), else use the config of the app's serving (or newest)
//! release.
//!
//! Errors answer 4xx/5xx with [`ApiError`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
pub use wharf_deploy::{
    AppStatus, Control, DeployReport, InstanceStatus, Progress, ProgressiveStatus, ReleaseTraffic,
    RouteStatus, Step, VolumeView,
};
pub use wharf_runtime::{AccessoryStatus, PruneReport, RemovedApp};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub pid: u32,
    pub version: String,
    pub data_dir: PathBuf,
    /// Where the proxy listens.
    pub proxy: SocketAddr,
    /// Where the proxy listens for HTTPS, if it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub https: Option<SocketAddr>,
    /// Where `/metrics` is served.
    pub admin: SocketAddr,
    pub socket: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub server: ServerInfo,
    pub apps: Vec<AppStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployBody {
    /// Absolute path of the app's source directory, on the server's machine.
    pub source_dir: PathBuf,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub wait: bool,
    /// Canary: stop at the first step until `promote`.
    #[serde(default)]
    pub pause: bool,
    /// The release's version (docker image tag) instead of the git revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Docker: deploy this prebuilt image instead of building one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessoryBody {
    /// Where the app's `wharf.toml` is (absolute); default: where it was
    /// last deployed from.
    #[serde(default)]
    pub source_dir: Option<PathBuf>,
    /// `remove`: delete the accessory's named volumes too.
    #[serde(default)]
    pub volumes: bool,
}

/// `wharf maintenance on|off`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintenanceBody {
    pub on: bool,
    /// Shown on the 503 page; default: a generic one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunBody {
    pub argv: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecBody {
    pub process: String,
    /// Which instance (1-based); default 1.
    #[serde(default)]
    pub index: Option<u32>,
    pub argv: Vec<String>,
}

/// One item of the output of `run`/`exec`: output lines, then exactly one
/// `exit` or `error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandOutput {
    Line(LogLineOut),
    Exit(i64),
    Error(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackBody {
    pub release: Option<i64>,
    #[serde(default)]
    pub wait: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    pub number: i64,
    pub revision: Option<String>,
    /// `live`, `not serving` (the release to serve, not routed: being
    /// restored or its restore failed), `retained`, `failed`, `pruned` or
    /// `pending`.
    pub status: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventInfo {
    pub at_ms: i64,
    pub level: String,
    pub deploy: Option<i64>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLineOut {
    pub at_ms: u64,
    pub release: u64,
    pub process: String,
    pub instance: String,
    pub stream: String,
    pub line: String,
}

impl From<wharf_runtime::LogLine> for LogLineOut {
    fn from(l: wharf_runtime::LogLine) -> Self {
        LogLineOut {
            at_ms: l.at_ms,
            release: l.release,
            process: l.process,
            instance: l.instance,
            stream: match l.stream {
                wharf_runtime::LogStream::Stdout => "stdout".into(),
                wharf_runtime::LogStream::Stderr => "stderr".into(),
            },
            line: l.line,
        }
    }
}

/// One host's certificate, for `wharf certs` (no key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertView {
    pub host: String,
    /// `acme` or `files`.
    pub source: String,
    pub issuer: Option<String>,
    /// Expiry, Unix seconds; `None` while there is no certificate yet.
    pub not_after: Option<i64>,
    /// Why the last order failed (or why the stored files are unusable).
    pub last_error: Option<String>,
    /// When a failed order is tried again, Unix seconds.
    pub next_attempt: Option<i64>,
    /// An order is running now.
    pub ordering: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}
