//! The local API's wire types, shared by the server and the CLI's client.
//!
//! Endpoints (HTTP/1.1 over the unix socket `<data>/wharf.sock`):
//!
//! | method & path | body | answer |
//! |---|---|---|
//! | `GET /v1/status` | | [`StatusResponse`] |
//! | `POST /v1/deploys` | [`DeployBody`] | NDJSON stream of [`Progress`]: `queued` (the job), then the deploy's, ending with `finished`; 429 when the queue is full |
//! | `POST /v1/apps/{app}/rollback` | [`RollbackBody`] | NDJSON stream of [`Progress`], as a deploy's |
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
//! | `GET /v1/sources/{sha256}` | | [`SourceUploaded`]; 404 when not uploaded |
//! | `PUT /v1/sources/{sha256}` | the app directory as a tar archive (see `wharf-source`) | [`SourceUploaded`]; 400 for a bad archive, 413 over the limit |
//! | `GET /v1/jobs?app=A&limit=N` | | `[`[`JobInfo`]`]`, newest first |
//! | `GET /v1/jobs/{id}` | | [`JobView`] |
//! | `GET /v1/jobs/{id}/logs?after=SEQ&follow=B` | | NDJSON stream of [`JobLogLine`] |
//! | `POST /v1/jobs/{id}/cancel` | | [`JobCancelled`]; 409 when it already ended |
//! | `GET /v1/apps/{app}/cron` | | `[`[`CronView`]`]` |
//! | `GET /v1/apps/{app}/cron/{name}/runs?limit=N` | | `[`[`JobInfo`]`]`, newest first |
//! | `POST /v1/apps/{app}/cron/{name}/run` | | [`CronQueued`] |
//! | `GET /v1/tokens` | | `[`[`TokenInfo`]`]` (never a secret) |
//! | `POST /v1/tokens` | [`TokenBody`] | [`TokenCreated`], the only time the secret is shown |
//! | `DELETE /v1/tokens/{id}` | | 204; 404 when there is no such token |
//!
//! Over `https://` (`wharf server --api ADDR`) every request needs
//! `Authorization: Bearer <token>`: 401 for no, an unknown, revoked or
//! expired token, 403 when its scope or app does not cover the endpoint,
//! 429 after too many failures from one address. A remote caller cannot
//! name a directory on the server (`source_dir`).
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
pub use wharf_store::TokenRow as TokenInfo;

pub use wharf_store::{JobLogRow as JobLogLine, JobRow as JobInfo, JobStepRow as JobStep};

/// `GET /v1/jobs/{id}`: the job and its recorded steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobView {
    pub job: JobInfo,
    pub steps: Vec<JobStep>,
}

/// A cron entry of an app's serving release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronView {
    pub name: String,
    pub schedule: String,
    pub time_zone: String,
    pub command: String,
    pub process: String,
    pub catch_up: bool,
    /// When it runs next (ms since the epoch).
    pub next_ms: Option<i64>,
    /// Its latest run (or skip).
    pub last: Option<JobInfo>,
}

/// `POST /v1/apps/{app}/cron/{name}/run`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronQueued {
    pub job: i64,
}

/// `POST /v1/jobs/{id}/cancel`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobCancelled {
    pub job: i64,
    pub message: String,
}

/// `wharf deploy --git URL --ref REF`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitSource {
    pub url: String,
    #[serde(rename = "ref")]
    pub reference: String,
}

/// An uploaded source, kept by the server under its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceUploaded {
    pub sha256: String,
    /// Files and bytes unpacked (`None` when it was already there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBody {
    /// What the token is for (shown by `token list`).
    #[serde(default)]
    pub name: String,
    /// `read`, `deploy` or `admin`.
    pub scope: String,
    /// Limit it to one app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Expire it this many seconds from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
}

/// A token just made: its row, and the secret to show once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    pub token: TokenInfo,
    pub secret: String,
}

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
    /// Where the API is served over https (`--api`), if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<SocketAddr>,
    /// The SHA-256 fingerprint of the https API's certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_fingerprint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub server: ServerInfo,
    pub apps: Vec<AppStatus>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployBody {
    /// Absolute path of the app's source directory, on the server's machine
    /// (local callers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_dir: Option<PathBuf>,
    /// Or: the SHA-256 of a source uploaded with `PUT /v1/sources/{sha256}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<String>,
    /// Or: a git repository the server fetches (`ref` a branch, tag or
    /// commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitSource>,
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
    /// The process whose env the command gets on top of the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<String>,
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
    /// Where its source came from: `upload sha256:…`, `git URL COMMIT`,
    /// `dir PATH`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
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
