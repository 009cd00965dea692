//! The `wharf.toml` model.
//!
//! Three layers, as in uv and cargo:
//! 1. `raw` — structs that mirror the file, every value carrying its span,
//!    read from the spanned tree of [`toml::de::DeTable`] so that unknown keys
//!    (with "did you mean") and wrong types are collected, not fatal;
//! 2. `validate` — walks the raw structs, collects *every* problem (bad names,
//!    ranges, durations, hosts, conflicting routes…) with `file:line:col`, a
//!    message and a hint;
//! 3. the resolved types below — defaults filled in, durations parsed, names
//!    checked. Nothing downstream ever sees a raw value.
//!
//! This crate reads files and nothing else; it knows no runtime, store or proxy.
//!
//! # The `wharf.toml` format
//!
//! Only `name` and one process with a `command` are required. Durations are
//! strings such as `"500ms"`, `"30s"`, `"1m"` or `"1h 30m"`. Every key, with
//! its default and its rules (this is `wharf.reference.toml`, which the tests
//! parse):
//!
//! ```toml
#![doc = include_str!("../wharf.reference.toml")]
//! ```
//!
//! Errors look like this, all of a file's problems at once, in file order:
//!
//! ```text
//! wharf.toml:4:1: unknown key `comand` in [processes.web]
//!   = hint: did you mean `command`?
//! wharf.toml:5:13: `instances` in [processes.web] must be between 1 and 64, found 0
//! 2 errors in wharf.toml
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod dotenv;
mod error;
mod raw;
mod render;
mod validate;

pub use error::{ConfigError, ConfigErrors, LoadError};
pub use validate::validate_app_name;

/// File name of the app description at an app's root.
pub const FILE_NAME: &str = "wharf.toml";

/// A fully resolved app description. Serialisable so that a release can keep
/// the exact config it was deployed with (the store keeps it as JSON).
///
/// Not `Eq`: [`AnalysisSettings`] holds `f64` limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppConfig {
    /// App name: `[a-z0-9][a-z0-9-]*`, at most 63 characters.
    pub name: String,
    pub runtime: RuntimeKind,
    /// Environment given to every process, release command and build: the
    /// `env_file`s' values (read at deploy), then `[env]` over them.
    pub env: BTreeMap<String, String>,
    /// Dotenv files read at deploy time, relative to the app's directory, in
    /// order (a later file's value wins; `[env]` wins over all of them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<String>,
    /// `[secrets] env_file`: dotenv files whose every value is a secret
    /// (read when a release starts, never stored).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_env_files: Vec<String>,
    /// Env vars whose values are read when a release is deployed, from the
    /// server's environment or a file. Only where each comes from is kept
    /// (in the store too); the values never are.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, SecretSource>,
    /// Command run in the app's source directory before the release is
    /// prepared (e.g. compile a binary into the tree). `build = "..."` under
    /// the process runtime, `[build] command = "..."` under docker.
    pub build: Option<String>,
    /// How the image of a release is made; `Some` exactly when `runtime` is
    /// docker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<DockerSettings>,
    /// Long-lived services next to the app (docker only), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub accessories: BTreeMap<String, AccessoryConfig>,
    /// Commands run once per release, in order, in the release directory,
    /// before any instance of it starts (migrations, then seeds…). A
    /// non-zero exit aborts the deploy.
    #[serde(default, deserialize_with = "one_or_many::deserialize")]
    pub release_command: Vec<String>,
    /// Where the `http` processes keep their fingerprinted assets (Kamal's
    /// `asset_path`): an absolute path in the image under docker, a path in
    /// the release directory under the process runtime. During a switch
    /// the old and new releases each serve the other's files there too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset_path: Option<String>,
    pub processes: BTreeMap<String, ProcessConfig>,
    /// Commands run on a schedule (`[cron.NAME]`), by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cron: BTreeMap<String, CronEntry>,
    /// The app's CI steps (`[ci]`), run by `wharf ci` and by pipelines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<CiConfig>,
    pub deploy: DeploySettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// Child processes of the server (the default; needs nothing installed).
    Process,
    /// Containers, through the Docker Engine API.
    Docker,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Process => "process",
            RuntimeKind::Docker => "docker",
        }
    }
}

/// Where the value of a secret comes from when a release is deployed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable of the wharf server.
    Env(String),
    /// A file on the server (absolute path); one trailing newline is dropped.
    File(PathBuf),
    /// The value of `key` in a dotenv file on the server (`[secrets]
    /// env_file`, made absolute at deploy).
    EnvFile { path: PathBuf, key: String },
}

/// How a docker app's release image is made.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DockerSettings {
    /// A prebuilt image deployed instead of building one (top-level `image`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// How to build it otherwise (the image keys of `[build]`).
    #[serde(flatten)]
    pub build: ImageBuild,
}

/// What happens when an instance exits without being asked to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Start it again after any exit (with backoff). The default.
    #[default]
    Always,
    /// Only after a non-zero exit.
    OnFailure,
    /// Never.
    Never,
}

impl Restart {
    pub fn as_str(self) -> &'static str {
        match self {
            Restart::Always => "always",
            Restart::OnFailure => "on-failure",
            Restart::Never => "never",
        }
    }
}

/// A service next to the app (`[accessories.NAME]`), e.g. a database:
/// booted once, kept across deploys, reachable from the app as `NAME`.
/// Not `Eq`: `cpus` is an `f64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessoryConfig {
    pub name: String,
    /// The image to run; empty when `build` makes it.
    pub image: String,
    /// Built from the app's directory instead of naming an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<ImageBuild>,
    /// Replaces the image's CMD (an argv, split with shell quoting rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSource>,
    #[serde(default)]
    pub ports: Vec<PortSpec>,
    #[serde(default)]
    pub volumes: Vec<VolumeSpec>,
    /// More names the app reaches it by on its network (a compose service
    /// name with `_`, Kamal's `<service>-<name>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<AccessoryHealthCheck>,
}

/// How an image is built from the app's directory: the image keys of
/// `[build]`, or an accessory's `build`. Paths are relative to the app's
/// directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBuild {
    /// Default `Dockerfile`.
    pub dockerfile: String,
    /// Default `.`.
    pub context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, String>,
}

impl Default for ImageBuild {
    fn default() -> Self {
        ImageBuild {
            dockerfile: "Dockerfile".into(),
            context: ".".into(),
            target: None,
            args: BTreeMap::new(),
        }
    }
}

/// `[host_ip:]host_port:container_port[/udp]`; host_ip defaults to 127.0.0.1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortSpec {
    pub host_ip: String,
    pub host_port: u16,
    pub container_port: u16,
    /// "tcp" or "udp".
    pub protocol: String,
}

impl std::fmt::Display for PortSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host_ip = if self.host_ip.contains(':') {
            format!("[{}]", self.host_ip)
        } else {
            self.host_ip.clone()
        };
        write!(f, "{host_ip}:{}:{}", self.host_port, self.container_port)?;
        if self.protocol != "tcp" {
            write!(f, "/{}", self.protocol)?;
        }
        Ok(())
    }
}

/// `SOURCE:TARGET[:ro]`: SOURCE is a volume name, an absolute host path,
/// or `./path` in the app's directory (made absolute at deploy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

impl VolumeSpec {
    /// A host path rather than a named volume.
    pub fn is_bind(&self) -> bool {
        self.source.starts_with('/') || self.is_relative()
    }

    /// A path in the app's directory (`./config/my.cnf`).
    pub fn is_relative(&self) -> bool {
        self.source.starts_with("./")
    }
}

impl std::fmt::Display for VolumeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.source, self.target)?;
        if self.read_only {
            write!(f, ":ro")?;
        }
        Ok(())
    }
}

/// An accessory's health check, run by the engine inside its container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessoryHealthCheck {
    /// Exit 0 is healthy; an argv, split with shell quoting rules.
    pub command: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    pub retries: u32,
    /// How long booting waits for the first healthy answer.
    #[serde(with = "humantime_serde")]
    pub start_timeout: Duration,
}

/// Not `Eq`: `cpus` is an `f64`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessConfig {
    pub name: String,
    /// `process`: a shell command (run by `/bin/sh -c`). `docker`: an argv
    /// replacing the image's CMD; empty keeps the CMD. `$PORT` is set for
    /// every instance.
    pub command: String,
    /// Docker: the process's own image (a frontend beside a backend);
    /// `None` runs the app's image. A release holds all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ProcessImage>,
    /// Docker: an argv replacing the image's ENTRYPOINT (split with shell
    /// quoting rules); `Some("")` clears it, `None` keeps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    pub instances: u32,
    /// Process-specific environment, layered over the app's `env`: its
    /// `env_file`s' values (read at deploy), then its `[env]`.
    pub env: BTreeMap<String, String>,
    /// The process's dotenv files, as `AppConfig::env_files`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<String>,
    /// Volumes mounted into every instance, kept across releases: named
    /// (`wharf-<app>-<name>` under docker, `<data>/apps/<app>/volumes/<name>`
    /// linked into each release under the process runtime) or host paths.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeSpec>,
    /// Docker, without `http`: ports published on the host (a database, an
    /// SMTP server…).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortSpec>,
    /// Present when the proxy routes HTTP to this process.
    pub http: Option<HttpRoute>,
    /// Health check. Always present for `http` processes (defaults apply);
    /// `None` for others, which count as ready once they have stayed up for
    /// a short grace period.
    pub health: Option<HealthCheck>,
    #[serde(with = "humantime_serde")]
    pub stop_timeout: Duration,
    /// Docker: the port the app listens on inside its container (`PORT` is
    /// set to it). `None`: wharf picks one and sets `PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Docker: memory limit in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    /// Docker: CPU limit (1.5 = one and a half cores).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default)]
    pub restart: Restart,
}

/// A command run on a schedule (`[cron.NAME]`), as a one-off run of a
/// process: with its env, volumes, limits and image, not its `http`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CronEntry {
    pub name: String,
    /// When it runs, in its time zone (UTC unless `time_zone` is given).
    pub schedule: wharf_jobs::Schedule,
    /// Run like a process's `command`: by `/bin/sh -c` under the process
    /// runtime, as an argv (split with shell quoting rules) under docker.
    /// Never empty.
    pub command: String,
    /// The process it runs as; default the first one in the file.
    pub process: String,
    /// After downtime, run the latest missed time once (true, the default),
    /// or record it as skipped.
    pub catch_up: bool,
    /// A run still going after this long is stopped and failed. Default 1h.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

/// The app's CI steps (`[ci]`): run in order by `wharf ci` in a checkout,
/// and by the server's pipeline in a clean checkout of a pushed commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiConfig {
    /// Where the server runs the steps; `None`: on the host, in a worktree.
    /// `wharf ci` always runs them on the machine it runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<CiImage>,
    /// In order; never empty. Names are unique across steps and groups.
    pub steps: Vec<CiStep>,
}

impl CiConfig {
    /// Every step, in order, with the group it is in.
    pub fn runs(&self) -> impl Iterator<Item = (Option<&CiGroup>, &CiRun)> {
        self.steps.iter().flat_map(|step| match step {
            CiStep::Run(run) => vec![(None, run)],
            CiStep::Group(group) => group.steps.iter().map(|run| (Some(group), run)).collect(),
        })
    }
}

/// `[ci] image`: what the server runs the steps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CiImage {
    /// A container of the app's build image (docker runtime only).
    Build,
}

/// One item of `[ci] steps`: a step, or a group of steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum CiStep {
    Run(CiRun),
    Group(CiGroup),
}

impl CiStep {
    /// The step's or the group's name.
    pub fn name(&self) -> &str {
        match self {
            CiStep::Run(run) => &run.name,
            CiStep::Group(group) => &group.name,
        }
    }
}

/// A step: a shell command (`/bin/sh -c`) run in the checkout; it passes
/// when it exits 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiRun {
    /// Non-empty, one line.
    pub name: String,
    /// Non-empty.
    pub run: String,
}

/// Steps run together: up to `parallel` at once (each one's output shown
/// whole when it ends), or one after the other when `parallel` is 1. A
/// group holds steps only, never another group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CiGroup {
    pub name: String,
    /// 1 to 64; default 1.
    pub parallel: u32,
    /// Never empty.
    pub steps: Vec<CiRun>,
}

/// Where a process's own image comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcessImage {
    /// A prebuilt image reference.
    Image(String),
    /// Built from the app's directory.
    Build(ImageBuild),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRoute {
    /// Exact hosts (lowercase, no port); empty for any host. Stored
    /// releases from before several hosts were allowed have `host`.
    #[serde(default, alias = "host", deserialize_with = "one_or_many::deserialize")]
    pub hosts: Vec<String>,
    /// Path prefix, starting and (unless it is "/") not ending with '/'.
    pub path_prefix: String,
    /// Served over HTTPS, with a certificate from ACME or from files.
    /// Needs `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSource>,
    /// Send `Strict-Transport-Security` on HTTPS answers. Needs `tls`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hsts: bool,
    /// Largest request body, in bytes.
    #[serde(default = "validate::defaults::max_body")]
    pub max_body: u64,
    /// Time an instance has to send its response head (a streamed body
    /// may take longer).
    #[serde(
        default = "validate::defaults::request_timeout",
        with = "humantime_serde"
    )]
    pub timeout: Duration,
}

/// Where a TLS host's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "source")]
pub enum TlsSource {
    /// Ordered by ACME (HTTP-01 on the proxy), renewed in the background.
    Acme,
    /// PEM files (chain, key), relative to the app's directory unless
    /// absolute; copied into the server's data dir at deploy.
    Files { cert: String, key: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// Absolute path probed with `GET`; 2xx/3xx passes.
    pub path: String,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Consecutive passes to become healthy, and consecutive failures to
    /// become unhealthy again.
    pub threshold: u32,
}

/// Not `Eq`: [`AnalysisSettings`] holds `f64` limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploySettings {
    /// The branch whose pushes are deployed (a forge's push webhook names
    /// it); `None`: pushes deploy nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// How long new instances may take to pass their health check.
    #[serde(with = "humantime_serde")]
    pub health_timeout: Duration,
    /// How long in-flight requests to the old release may take to finish.
    #[serde(with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// Releases kept (live one included) for instant rollback.
    pub retain: u32,
    /// How traffic moves from the old release to the new one.
    /// Defaults (also when absent from stored JSON) to blue-green, no bake.
    #[serde(default)]
    pub strategy: Strategy,
    /// Where to `POST` a JSON notice when wharf rolls a release back by
    /// itself: an `http://` or `https://` URL with a host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// How the new release is judged while it takes traffic (canary steps,
    /// blue-green bake).
    #[serde(default)]
    pub analysis: AnalysisSettings,
}

/// How a deploy moves traffic to the new release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Strategy {
    /// Start the new release, switch all traffic to it once healthy, drain
    /// the old one.
    BlueGreen {
        /// After the switch, keep the old release's instances running this
        /// long while the new release is analysed; a failure switches back.
        /// Zero: no bake, the old release is stopped right after the drain.
        #[serde(default, with = "humantime_serde")]
        bake: Duration,
    },
    /// Shift traffic to the new release step by step, analysing it at each
    /// step; after the last step it gets 100%.
    Canary {
        /// 1 to 20 steps, weights strictly increasing.
        steps: Vec<CanaryStep>,
    },
}

impl Default for Strategy {
    /// Blue-green without a bake.
    fn default() -> Strategy {
        Strategy::BlueGreen {
            bake: Duration::ZERO,
        }
    }
}

/// One step of a canary deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryStep {
    /// Share of traffic sent to the new release during this step, in
    /// percent: 1 to 99 (100 comes by itself after the last step).
    pub weight: u32,
    /// How long to stay at this step (analysis passing) before moving on.
    /// `None`: wait for `wharf promote`. Never zero.
    #[serde(
        default,
        with = "humantime_serde_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub pause: Option<Duration>,
}

/// When a new release counts as failing. The defaults are those of
/// [`AnalysisSettings::default`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AnalysisSettings {
    /// How often the new release is checked; more than 0. Default 1s.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How far back each check looks; at least `interval`. Default 30s.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Requests the new release must serve in the window before it is
    /// judged. Default 100.
    pub min_requests: u64,
    /// 5xx responses (in the window) before the error-rate rules fire.
    /// Default 5.
    pub min_errors: u64,
    /// Absolute limit on the new release's 5xx rate, a fraction in 0..=1.
    /// Default 0.02.
    pub max_error_rate: f64,
    /// Limit on (new rate - stable rate), a fraction in 0..=1. Default 0.01.
    pub max_error_rate_increase: f64,
    /// Limit on new p99 / stable p99; at least 1.0. Default 2.0.
    pub max_p99_ratio: f64,
    /// A p99 below this never fails the latency rule. Default 50ms.
    #[serde(with = "humantime_serde")]
    pub p99_floor: Duration,
    /// Consecutive failed checks tolerated; the next one rolls back.
    /// 0 to 10. Default 1.
    pub failures_tolerated: u32,
}

impl Default for AnalysisSettings {
    fn default() -> AnalysisSettings {
        AnalysisSettings {
            interval: Duration::from_secs(1),
            window: Duration::from_secs(30),
            min_requests: 50,
            min_errors: 5,
            max_error_rate: 0.02,
            max_error_rate_increase: 0.01,
            max_p99_ratio: 2.0,
            p99_floor: Duration::from_millis(50),
            failures_tolerated: 1,
        }
    }
}

impl AppConfig {
    /// Reads and resolves `<dir>/wharf.toml`.
    pub fn load(dir: &Path) -> Result<AppConfig, LoadError> {
        let path = dir.join(FILE_NAME);
        let source = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(Self::parse(&path, &source)?)
    }

    /// Parses and resolves `source`; `path` is only used in messages.
    pub fn parse(path: &Path, source: &str) -> Result<AppConfig, ConfigErrors> {
        validate::parse(path, source)
    }

    /// The resolved config as TOML, every default spelled out (`wharf config show`).
    pub fn to_toml(&self) -> String {
        render::to_toml(self)
    }

    /// Returns a copy with `KEY=VALUE` overrides layered over `env`
    /// (`wharf deploy --env`). Keys are checked like those in the file.
    pub fn with_env_overrides(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<AppConfig, ConfigErrors> {
        validate::with_env_overrides(self, overrides)
    }

    /// Names of every secret the app uses: its own and its accessories'.
    pub fn secret_sources(&self) -> impl Iterator<Item = (&String, &SecretSource)> {
        self.secrets
            .iter()
            .chain(self.accessories.values().flat_map(|a| a.secrets.iter()))
    }

    /// The config with its `env_file`s read from `dir` (the app's directory):
    /// their values under `[env]` (app and process), and `[secrets]
    /// env_file` keys as secrets read from those files (absolute paths) when
    /// a release starts. Every problem of every file is reported at once.
    pub fn with_env_files(mut self, dir: &Path) -> Result<AppConfig, EnvFileErrors> {
        let mut problems = Vec::new();
        let mut read = |files: &[String], known: &mut BTreeMap<String, String>| {
            let mut out = BTreeMap::new();
            for file in files {
                let path = dir.join(file);
                let text = match std::fs::read_to_string(&path) {
                    Ok(t) => t,
                    Err(e) => {
                        problems.push(format!(
                            "could not read env_file {}: {e}; create it or take it out of `env_file`",
                            path.display()
                        ));
                        continue;
                    }
                };
                match dotenv::parse(&text, known) {
                    Ok(pairs) => {
                        for (k, v) in pairs {
                            known.insert(k.clone(), v.clone());
                            out.insert(k, v);
                        }
                    }
                    Err(errors) => problems.extend(
                        errors
                            .into_iter()
                            .map(|e| format!("{}:{}: {}", path.display(), e.line, e.message)),
                    ),
                }
            }
            out
        };
        let mut known = BTreeMap::new();
        let mut app_env = read(&self.env_files, &mut known);
        app_env.extend(std::mem::take(&mut self.env));
        self.env = app_env;
        for process in self.processes.values_mut() {
            let mut process_known = self.env.clone();
            let mut env = read(&process.env_files, &mut process_known);
            env.extend(std::mem::take(&mut process.env));
            process.env = env;
        }
        let mut secret_known = BTreeMap::new();
        for file in self.secret_env_files.clone() {
            let path = dir.join(&file);
            let path = std::fs::canonicalize(&path).unwrap_or(path);
            for key in read(std::slice::from_ref(&file), &mut secret_known).into_keys() {
                self.env.remove(&key);
                self.secrets.insert(
                    key.clone(),
                    SecretSource::EnvFile {
                        path: path.clone(),
                        key,
                    },
                );
            }
        }
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(EnvFileErrors { problems })
        }
    }

    /// The config with its `./relative` volume sources (processes and
    /// accessories) made absolute from `dir`, the app's directory.
    pub fn with_volume_paths(mut self, dir: &Path) -> AppConfig {
        let absolute = |v: &mut VolumeSpec| {
            if let Some(rest) = v.source.strip_prefix("./") {
                v.source = dir.join(rest).to_string_lossy().into_owned();
            }
        };
        for p in self.processes.values_mut() {
            p.volumes.iter_mut().for_each(absolute);
        }
        for a in self.accessories.values_mut() {
            a.volumes.iter_mut().for_each(absolute);
        }
        self
    }

    /// Docker: whether a release needs the app's own image (top-level
    /// `image` or `[build]`): some process runs it, or a release command
    /// does. False when every process names its own.
    pub fn uses_app_image(&self) -> bool {
        self.docker.is_some()
            && (!self.release_command.is_empty()
                || self.processes.values().any(|p| p.image.is_none()))
    }

    /// The process that receives HTTP for `self`, if any, in name order.
    pub fn http_processes(&self) -> impl Iterator<Item = &ProcessConfig> {
        self.processes.values().filter(|p| p.http.is_some())
    }
}

/// What was wrong with an app's env files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("\n"))]
pub struct EnvFileErrors {
    pub problems: Vec<String>,
}

/// A list that may be stored as one string, `null` or a list (fields that
/// were a single value in older releases' stored configs).
pub mod one_or_many {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Option::<OneOrMany>::deserialize(d)? {
            None => Vec::new(),
            Some(OneOrMany::One(s)) => vec![s],
            Some(OneOrMany::Many(v)) => v,
        })
    }
}

/// `Duration` <-> "500ms"/"30s" strings in serde, so stored and rendered
/// configs read like the file.
pub mod humantime_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

/// `Option<Duration>` <-> "30s" or nothing, like [`humantime_serde`]; pair
/// with `#[serde(default)]` so a missing field reads as `None`.
pub mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&humantime::format_duration(*d).to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(s) => humantime::parse_duration(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

/// Where a located error points. `line` and `col` are 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
}
