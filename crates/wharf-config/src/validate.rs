//! Parse → validate → resolve.
//!
//! [`parse`] runs the TOML parser, lets `raw` check the shape, then checks what
//! every value means (names, ranges, durations, hosts, paths, route clashes)
//! while building the resolved [`AppConfig`] with defaults filled in. Invalid
//! values are reported and replaced by their default so that checking goes on
//! and the user sees every problem in one go.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use toml::de::DeTable;

use crate::error::{ConfigErrors, Sink};

mod ci;
mod cron;
mod docker;
use crate::raw::{
    self, RawAnalysis, RawConfig, RawDeploy, RawEnvVar, RawHealth, RawHttp, RawProcess, RawSteps,
    Sp,
};
use crate::{
    AnalysisSettings, AppConfig, CanaryStep, DeploySettings, HealthCheck, HttpRoute, ProcessConfig,
    ProcessImage, RuntimeKind, Strategy, TlsSource,
};

pub(crate) const DURATION_HINT: &str = "write a duration such as \"500ms\" or \"30s\"";

/// Longest app or process name: one DNS label, so names fit in hostnames.
const MAX_NAME_LEN: usize = 63;
const MAX_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// Most canary steps; more is a typo or a deploy that never ends.
const MAX_STEPS: usize = 20;
/// Most requests or errors an analysis can ask for in one window.
const MAX_ANALYSIS_COUNT: u64 = 1_000_000;

/// Defaults, in one place so `to_toml` and the docs agree with the code.
pub mod defaults {
    use std::time::Duration;

    pub const INSTANCES: u32 = 1;
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    pub const HTTP_PATH: &str = "/";
    pub const HEALTH_PATH: &str = "/up";
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
    pub const HEALTH_THRESHOLD: u32 = 2;
    pub const DEPLOY_HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
    pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
    pub const RETAIN: u32 = 5;
    /// Ordinary file uploads fit.
    pub const MAX_BODY: u64 = 100 * 1024 * 1024;
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    /// How long a cron run may take before it is stopped: runs of an app
    /// queue behind one another (and its deploys behind them), so a hung
    /// run must not hold the queue for ever.
    pub const CRON_TIMEOUT: Duration = Duration::from_secs(60 * 60);
    pub const CRON_CATCH_UP: bool = true;

    /// For serde: releases stored before these keys existed.
    pub fn max_body() -> u64 {
        MAX_BODY
    }
    pub fn request_timeout() -> Duration {
        REQUEST_TIMEOUT
    }
    // The [deploy.analysis] defaults are `AnalysisSettings::default()`, and
    // the strategy's is `Strategy::default()`.
}

pub(crate) fn parse(path: &Path, source: &str) -> Result<AppConfig, ConfigErrors> {
    let mut sink = Sink::new(path, source);
    let root = match DeTable::parse(source) {
        Ok(root) => root,
        Err(error) => {
            syntax_error(&mut sink, &error);
            return Err(sink.into_errors());
        }
    };
    let raw = raw::read(root.get_ref(), &mut sink);
    let config = resolve(raw, &mut sink);
    sink.finish(config)
}

/// A TOML syntax error stops everything: nothing after it can be trusted.
fn syntax_error(sink: &mut Sink<'_>, error: &toml::de::Error) {
    let span = error.span().unwrap_or(0..0);
    let mut message = format!("invalid TOML: {}", error.message());
    // The parser does not say which key is duplicated; the span does.
    if error.message() == "duplicate key" {
        message = format!("invalid TOML: duplicate key `{}`", sink.text(&span));
    }
    sink.error(&span, message);
}

pub(crate) fn with_env_overrides(
    config: &AppConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<AppConfig, ConfigErrors> {
    let mut sink = Sink::new(Path::new("--env"), "");
    for key in overrides.keys() {
        if let Some(problem) = env_key_problem(key) {
            sink.error_unlocated(
                format!("invalid env key `{key}`: {problem}"),
                Some(ENV_KEY_HINT.to_string()),
            );
        }
    }
    let mut out = config.clone();
    for (key, value) in overrides {
        out.env.insert(key.clone(), value.clone());
        // The command line wins over the file everywhere, including over a
        // process's own env, or `--env LOG=debug` would silently not apply.
        for process in out.processes.values_mut() {
            if let Some(v) = process.env.get_mut(key) {
                v.clone_from(value);
            }
        }
    }
    sink.finish(out)
}

fn resolve(raw: RawConfig, sink: &mut Sink<'_>) -> AppConfig {
    let name = resolve_name(raw.name, sink);
    let runtime = resolve_runtime(raw.runtime, sink);
    // `raw.processes` is in file order: a cron entry's default process.
    let first_process = raw.processes.first().map(|p| p.name.value.clone());
    let processes = resolve_processes(raw.processes, runtime, sink);
    let cron = cron::resolve_cron(raw.cron, first_process.as_deref(), &processes, sink);
    let prebuilt = raw.image.as_ref().map(|i| i.value.clone());
    let ci = ci::resolve_ci(raw.ci, runtime, prebuilt.as_deref(), sink);
    let env = resolve_env(raw.env, "[env]", sink);
    let env_files = resolve_env_files(&raw.env_file, "`env_file`", sink);
    let secret_env_files =
        resolve_env_files(&raw.secret_env_files, "`env_file` in [secrets]", sink);
    let release_command = raw
        .release_command
        .into_iter()
        .filter(|c| {
            let empty = c.value.trim().is_empty();
            if empty {
                sink.error_hint(
                    &c.span,
                    "`release_command` must not be empty",
                    "give the command that migrates, e.g. release_command = \"bin/rails db:migrate\", or a list of them",
                );
            }
            !empty
        })
        .map(|c| c.value)
        .collect();
    let secrets = docker::resolve_secrets(raw.secrets, "[secrets]", &env, sink);
    let (build, docker) = docker::resolve_build(runtime, raw.image, raw.build, sink);
    let accessories = docker::resolve_accessories(runtime, raw.accessories, &processes, sink);
    let asset_path = resolve_asset_path(raw.asset_path, runtime, &processes, sink);
    AppConfig {
        name,
        runtime,
        env,
        env_files,
        secret_env_files,
        secrets,
        build,
        docker,
        accessories,
        release_command,
        asset_path,
        processes,
        cron,
        ci,
        deploy: resolve_deploy(raw.deploy, sink),
    }
}

fn resolve_name(name: Option<Sp<String>>, sink: &mut Sink<'_>) -> String {
    let Some(name) = name else {
        return String::new();
    };
    check_name(&name, "`name`", sink);
    name.value
}

fn resolve_runtime(runtime: Option<Sp<String>>, sink: &mut Sink<'_>) -> RuntimeKind {
    let Some(runtime) = runtime else {
        return RuntimeKind::Process;
    };
    match runtime.value.as_str() {
        "process" => RuntimeKind::Process,
        "docker" => RuntimeKind::Docker,
        other => {
            sink.error_hint(
                &runtime.span,
                format!("unknown runtime `{other}`"),
                "valid values: `process` (the default) and `docker`",
            );
            RuntimeKind::Process
        }
    }
}

/// App and process names: one lowercase DNS label.
pub(crate) fn check_name(name: &Sp<String>, what: &str, sink: &mut Sink<'_>) {
    let value = &name.value;
    if value.is_empty() {
        sink.error(&name.span, format!("{what} must not be empty"));
    } else if value.len() > MAX_NAME_LEN {
        sink.error(
            &name.span,
            format!(
                "{what} must be at most {MAX_NAME_LEN} characters, found {}",
                value.chars().count()
            ),
        );
    } else if !is_valid_name(value) {
        let message = format!(
            "{what} must be lowercase letters, digits and `-`, not starting with `-`; found {value:?}"
        );
        match suggest_name(value) {
            Some(fixed) => sink.error_hint(&name.span, message, format!("try {fixed:?}")),
            None => sink.error(&name.span, message),
        }
    }
}

/// Checks an app name given outside a `wharf.toml` (a CLI flag, an API
/// body): `Err` says what is wrong.
pub fn validate_app_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || !is_valid_name(name) {
        return Err(format!(
            "`{name}` is not an app name: use lowercase letters, digits and `-`, not starting with `-`, at most {MAX_NAME_LEN} characters"
        ));
    }
    Ok(())
}

fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A valid name close to `name`, e.g. "Hello_World" -> "hello-world".
fn suggest_name(name: &str) -> Option<String> {
    let mapped: String = name
        .chars()
        .map(|c| c.to_ascii_lowercase())
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let fixed: String = mapped
        .trim_start_matches('-')
        .chars()
        .take(MAX_NAME_LEN)
        .collect();
    (is_valid_name(&fixed) && fixed != name).then_some(fixed)
}

pub(crate) const ENV_KEY_HINT: &str =
    "env keys must match [A-Za-z_][A-Za-z0-9_]*, e.g. `LOG_LEVEL`";

/// Why `key` cannot be an environment variable name, if it cannot.
pub(crate) fn env_key_problem(key: &str) -> Option<&'static str> {
    match key.chars().next() {
        None => Some("it is empty"),
        Some(c) if c.is_ascii_digit() => Some("it starts with a digit"),
        _ if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => None,
        _ => Some("only ASCII letters, digits and `_` are allowed"),
    }
}

/// `env_file`s: paths relative to the app's directory (or absolute), never
/// escaping it with `..`.
fn resolve_env_files(files: &[Sp<String>], what: &str, sink: &mut Sink<'_>) -> Vec<String> {
    files
        .iter()
        .filter(|f| {
            let v = f.value.trim();
            let bad = v.is_empty() || v.split('/').any(|c| c == "..");
            if bad {
                sink.error_hint(
                    &f.span,
                    format!("{what} must name a file in the app's directory, found {:?}", f.value),
                    "write e.g. env_file = [\".env\", \".env.production\"] (read at deploy, later files win)",
                );
            }
            !bad
        })
        .map(|f| f.value.trim().to_owned())
        .collect()
}

fn resolve_env(vars: Vec<RawEnvVar>, ctx: &str, sink: &mut Sink<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for var in vars {
        if let Some(problem) = env_key_problem(&var.key.value) {
            sink.error_hint(
                &var.key.span,
                format!("invalid env key `{}` in {ctx}: {problem}", var.key.value),
                ENV_KEY_HINT,
            );
        }
        env.insert(var.key.value, var.value);
    }
    env
}

fn resolve_processes(
    raw: Vec<RawProcess>,
    runtime: RuntimeKind,
    sink: &mut Sink<'_>,
) -> BTreeMap<String, ProcessConfig> {
    // `raw` is in source order, so a clash is reported at the second route.
    let mut routes: Routes = Routes::new();
    let mut processes = BTreeMap::new();
    for raw_process in raw {
        let http_span = raw_process.http.as_ref().map(|h| h.span.clone());
        let process = resolve_process(raw_process, runtime, sink);
        if let (Some(route), Some(span)) = (&process.http, http_span) {
            check_route_clash(route, &process.name, &span, &mut routes, sink);
        }
        processes.insert(process.name.clone(), process);
    }
    processes
}

/// (host, path prefix) -> the process that claimed it first.
type Routes = BTreeMap<(Option<String>, String), String>;

fn check_route_clash(
    route: &HttpRoute,
    name: &str,
    span: &raw::Span,
    routes: &mut Routes,
    sink: &mut Sink<'_>,
) {
    let hosts: Vec<Option<String>> = if route.hosts.is_empty() {
        vec![None]
    } else {
        route.hosts.iter().cloned().map(Some).collect()
    };
    for host in hosts {
        let key = (host.clone(), route.path_prefix.clone());
        if let Some(first) = routes.get(&key) {
            let host = match &host {
                Some(host) => format!("host `{host}`"),
                None => "any host".to_string(),
            };
            sink.error_hint(
                span,
                format!(
                    "[processes.{name}] has the same http route as [processes.{first}] ({host}, path `{}`)",
                    route.path_prefix
                ),
                "give one of them a different `host` or `path`",
            );
        } else {
            routes.insert(key, name.to_string());
        }
    }
}

fn resolve_process(raw: RawProcess, runtime: RuntimeKind, sink: &mut Sink<'_>) -> ProcessConfig {
    let ctx = format!("[processes.{}]", raw.name.value);
    check_name(&raw.name, "process name", sink);
    if let Some(span) = &raw.command_missing
        && runtime == RuntimeKind::Process
    {
        sink.error_hint(
            span,
            format!("missing required key `command` in {ctx}"),
            format!("add command = \"...\" to {ctx}: the shell command that starts it"),
        );
    }
    if runtime == RuntimeKind::Process {
        for (key, span) in &raw.docker_keys {
            docker::needs_docker(span, &raw::subject(key, &ctx), sink);
        }
    }
    let docker_limits = docker::resolve_limits(raw.memory, raw.cpus, &ctx, sink);
    let restart = docker::resolve_restart(raw.restart, &ctx, sink);
    let port = raw
        .port
        .map(|p| int_in(Some(p), &ctx, "port", 1..=65535u16, 1, sink));
    if let Some(command) = &raw.command
        && command.value.trim().is_empty()
        && runtime == RuntimeKind::Process
    {
        sink.error_hint(
            &command.span,
            format!("`command` in {ctx} must not be empty"),
            "give the shell command that starts this process, e.g. command = \"bin/server\"",
        );
    }
    if let Some(health) = &raw.health
        && !raw.http_written
    {
        sink.error_hint(
            &health.span,
            format!("{ctx} has `health` but no `http`"),
            "health checks need `http`; add http = { path = \"/\" } or remove health",
        );
    }
    let env_files = resolve_env_files(&raw.env_file, &raw::subject("env_file", &ctx), sink);
    let volumes = docker::resolve_volumes(&raw.volumes, &ctx, runtime, sink);
    let ports = docker::resolve_ports(&raw.ports, &ctx, sink);
    if let (Some(first), Some(_)) = (raw.ports.first(), &raw.http) {
        sink.error_hint(
            &first.span,
            format!("{ctx} has both `ports` and `http`"),
            "the proxy reaches an http process itself; `ports` publishes a process without `http` (a database, an SMTP server)",
        );
    }
    if let (Some(first), Some(n)) = (raw.ports.first(), raw.instances.as_ref())
        && n.value > 1
    {
        sink.error_hint(
            &first.span,
            format!("{ctx} publishes `ports` with instances = {}", n.value),
            "a host port takes one instance: set instances = 1",
        );
    }
    let image = resolve_process_image(raw.image, raw.build, &ctx, sink);
    let http = raw.http.map(|h| resolve_http(h, &raw.name.value, sink));
    // Every HTTP process is health-checked; defaults apply when not written.
    let health = if http.is_some() {
        Some(resolve_health(raw.health, &raw.name.value, sink))
    } else {
        None
    };
    ProcessConfig {
        command: raw.command.map(|c| c.value).unwrap_or_default(),
        image,
        entrypoint: raw.entrypoint.map(|e| e.value),
        instances: int_in(
            raw.instances,
            &ctx,
            "instances",
            1..=64,
            defaults::INSTANCES,
            sink,
        ),
        env: resolve_env(
            raw.env,
            &format!("[processes.{}.env]", raw.name.value),
            sink,
        ),
        env_files,
        volumes,
        ports,
        http,
        health,
        stop_timeout: duration(
            raw.stop_timeout.as_ref(),
            &raw::subject("stop_timeout", &ctx),
            DurationRule::ANY,
            defaults::STOP_TIMEOUT,
            sink,
        ),
        port,
        memory: docker_limits.0,
        cpus: docker_limits.1,
        restart,
        name: raw.name.value,
    }
}

/// A process's own `image` or `build` (docker; the runtime check is done
/// with the other docker-only keys).
fn resolve_process_image(
    image: Option<Sp<String>>,
    build: Option<raw::RawBuildTable>,
    ctx: &str,
    sink: &mut Sink<'_>,
) -> Option<ProcessImage> {
    if let (Some(image), Some(build)) = (&image, &build) {
        sink.error_hint(
            &build.span,
            format!("{ctx} has both `image` and `build`"),
            format!(
                "keep image = {:?} to run that image, or `build` to build one from the app's directory",
                image.value
            ),
        );
    }
    if let Some(image) = image {
        if image.value.trim().is_empty() || image.value.chars().any(char::is_whitespace) {
            sink.error_hint(
                &image.span,
                format!(
                    "`image` in {ctx} must be an image reference, found {:?}",
                    image.value
                ),
                "write image = \"registry.example.com/frontend:1.2\", or leave it out to run the app's image",
            );
        }
        return Some(ProcessImage::Image(image.value));
    }
    let bctx = format!("{}.build]", ctx.trim_end_matches(']'));
    build.map(|b| ProcessImage::Build(docker::resolve_image_build(b, &bctx, sink)))
}

/// `asset_path`: where the http processes keep fingerprinted assets; an
/// absolute path in the image (docker) or a path in the release directory.
fn resolve_asset_path(
    raw: Option<Sp<String>>,
    runtime: RuntimeKind,
    processes: &BTreeMap<String, ProcessConfig>,
    sink: &mut Sink<'_>,
) -> Option<String> {
    let path = raw?;
    let value = path.value.trim_end_matches('/');
    let bad = match runtime {
        RuntimeKind::Docker => !value.starts_with('/') || value.split('/').any(|c| c == ".."),
        RuntimeKind::Process => {
            value.is_empty()
                || value.starts_with('/')
                || value
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
        }
    };
    if bad {
        let hint = match runtime {
            RuntimeKind::Docker => {
                "write the absolute path in the image, e.g. asset_path = \"/rails/public/assets\""
            }
            RuntimeKind::Process => {
                "write a path inside the release directory, e.g. asset_path = \"public/assets\""
            }
        };
        sink.error_hint(
            &path.span,
            format!("`asset_path` {:?} is not a usable directory", path.value),
            hint,
        );
        return None;
    }
    if !processes.values().any(|p| p.http.is_some()) {
        sink.error_hint(
            &path.span,
            "`asset_path` is set but no process has `http`",
            "assets are bridged for the processes the proxy routes to; add http to one, or remove asset_path",
        );
    }
    Some(value.to_owned())
}

fn resolve_http(raw: RawHttp, process: &str, sink: &mut Sink<'_>) -> HttpRoute {
    let ctx = format!("[processes.{process}.http]");
    if let (Some(host), Some(_)) = (&raw.host, &raw.hosts_span) {
        sink.error_hint(
            &host.span,
            format!("{ctx} has both `host` and `hosts`"),
            "keep `hosts` and put this host in it",
        );
    }
    let mut hosts: Vec<String> = Vec::new();
    for host in raw.host.into_iter().chain(raw.hosts) {
        let key = if hosts.is_empty() && raw.hosts_span.is_none() {
            "host"
        } else {
            "hosts"
        };
        // A bad host is reported and still kept, so it does not also
        // read as "any host" in the route checks.
        if let Some((why, hint)) = host_problem(&host.value) {
            sink.error_hint(
                &host.span,
                format!("`{key}` in {ctx} {why}, found {:?}", host.value),
                hint,
            );
        }
        if hosts.contains(&host.value) {
            sink.error(
                &host.span,
                format!("`hosts` in {ctx} names {:?} twice", host.value),
            );
        } else {
            hosts.push(host.value);
        }
    }
    if let Some(span) = &raw.hosts_span
        && hosts.is_empty()
    {
        sink.error_hint(
            span,
            format!("`hosts` in {ctx} is empty"),
            "name at least one host, or leave `hosts` out to match any host",
        );
    }
    let path_prefix = match raw.path {
        Some(path) => {
            check_path(&path, &raw::subject("path", &ctx), sink);
            trim_trailing_slash(&path.value)
        }
        None => defaults::HTTP_PATH.to_string(),
    };
    let tls = resolve_tls(raw.tls, !hosts.is_empty(), &ctx, sink);
    let hsts = match raw.hsts {
        Some(hsts) if hsts.value && tls.is_none() => {
            sink.error_hint(
                &hsts.span,
                format!("`hsts` in {ctx} needs `tls`"),
                "HSTS tells browsers to use HTTPS only; add tls = true",
            );
            false
        }
        Some(hsts) => hsts.value,
        None => false,
    };
    let max_body = match raw.max_body {
        None => defaults::MAX_BODY,
        Some(m) => match docker::parse_size(&m.value) {
            Some(bytes) if bytes > 0 => bytes,
            _ => {
                sink.error_hint(
                    &m.span,
                    format!(
                        "{} must be a size of more than 0, found {:?}",
                        raw::subject("max_body", &ctx),
                        m.value
                    ),
                    "write e.g. \"100MiB\" or \"2GiB\" (also KiB, or a number of bytes)",
                );
                defaults::MAX_BODY
            }
        },
    };
    let timeout = duration(
        raw.timeout.as_ref(),
        &raw::subject("timeout", &ctx),
        DurationRule::POSITIVE,
        defaults::REQUEST_TIMEOUT,
        sink,
    );
    HttpRoute {
        hosts,
        path_prefix,
        tls,
        hsts,
        max_body,
        timeout,
    }
}

/// `tls = true` → ACME; `tls = { cert, key }` → files; `tls = false` → none.
fn resolve_tls(
    raw: Option<raw::RawTls>,
    has_host: bool,
    ctx: &str,
    sink: &mut Sink<'_>,
) -> Option<TlsSource> {
    let (span, source) = match raw? {
        raw::RawTls::Acme(on) if !on.value => return None,
        raw::RawTls::Acme(on) => (on.span, Some(TlsSource::Acme)),
        raw::RawTls::Files { span, cert, key } => {
            let files_ctx = ctx.replace(".http]", ".http.tls]");
            let mut need = |field: Option<Sp<String>>, name: &str| match field {
                Some(f) if !f.value.trim().is_empty() => Some(f.value),
                Some(f) => {
                    sink.error(
                        &f.span,
                        format!("{} must not be empty", raw::subject(name, &files_ctx)),
                    );
                    None
                }
                None => {
                    sink.error_hint(
                        &span,
                        format!("{} is missing", raw::subject(name, &files_ctx)),
                        "write tls = { cert = \"certs/site.pem\", key = \"certs/site.key\" } (paths relative to the app's directory)",
                    );
                    None
                }
            };
            let (cert, key) = (need(cert, "cert"), need(key, "key"));
            let source = match (cert, key) {
                (Some(cert), Some(key)) => Some(TlsSource::Files { cert, key }),
                _ => None,
            };
            (span, source)
        }
    };
    if !has_host {
        sink.error_hint(
            &span,
            format!("`tls` in {ctx} needs `host`"),
            "a certificate is for a host name: add host = \"shop.example.com\"",
        );
        return None;
    }
    source
}

/// "/api/" and "/api" are the same prefix; keep one spelling so routes compare.
fn trim_trailing_slash(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

fn check_path(path: &Sp<String>, what: &str, sink: &mut Sink<'_>) {
    let value = &path.value;
    if !value.starts_with('/') {
        sink.error_hint(
            &path.span,
            format!("{what} must start with `/`, found {value:?}"),
            format!("write \"/{value}\""),
        );
    } else if value.contains(['?', '#']) || value.chars().any(char::is_whitespace) {
        sink.error_hint(
            &path.span,
            format!("{what} must be a plain path, found {value:?}"),
            "leave out query strings, fragments and spaces",
        );
    }
}

/// Why `host` is not a bare lowercase hostname, and how to fix it.
fn host_problem(host: &str) -> Option<(&'static str, String)> {
    if host.is_empty() {
        return Some((
            "must not be empty",
            "leave out `host` to match any host".into(),
        ));
    }
    if let Some((_, rest)) = host.split_once("://") {
        return Some((
            "must be a bare hostname",
            format!("leave out the scheme: {rest:?}"),
        ));
    }
    if let Some((name, _)) = host.split_once(':') {
        return Some((
            "must be a bare hostname",
            format!("leave out the port: {name:?}"),
        ));
    }
    if host.contains('/') {
        return Some(("must be a bare hostname", "put the path in `path`".into()));
    }
    if host.chars().any(|c| c.is_ascii_uppercase()) {
        return Some((
            "must be lowercase",
            format!("write {:?}", host.to_ascii_lowercase()),
        ));
    }
    if host.len() > 253 || !host.split('.').all(is_valid_label) {
        return Some((
            "is not a valid hostname",
            "use dot-separated labels of lowercase letters, digits and `-`, e.g. \"app.example.com\"".into(),
        ));
    }
    None
}

fn is_valid_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= 63
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn resolve_health(raw: Option<RawHealth>, process: &str, sink: &mut Sink<'_>) -> HealthCheck {
    let ctx = format!("[processes.{process}.health]");
    let Some(raw) = raw else {
        return default_health();
    };
    let path = match raw.path {
        Some(path) => {
            check_path(&path, &raw::subject("path", &ctx), sink);
            path.value
        }
        None => defaults::HEALTH_PATH.to_string(),
    };
    HealthCheck {
        path,
        interval: duration(
            raw.interval.as_ref(),
            &raw::subject("interval", &ctx),
            DurationRule::POSITIVE,
            defaults::HEALTH_INTERVAL,
            sink,
        ),
        timeout: duration(
            raw.timeout.as_ref(),
            &raw::subject("timeout", &ctx),
            DurationRule {
                positive: true,
                max: Some(MAX_HEALTH_TIMEOUT),
            },
            defaults::HEALTH_TIMEOUT,
            sink,
        ),
        threshold: int_in(
            raw.threshold,
            &ctx,
            "threshold",
            1..=10,
            defaults::HEALTH_THRESHOLD,
            sink,
        ),
    }
}

pub(crate) fn default_health() -> HealthCheck {
    HealthCheck {
        path: defaults::HEALTH_PATH.to_string(),
        interval: defaults::HEALTH_INTERVAL,
        timeout: defaults::HEALTH_TIMEOUT,
        threshold: defaults::HEALTH_THRESHOLD,
    }
}

fn resolve_deploy(raw: RawDeploy, sink: &mut Sink<'_>) -> DeploySettings {
    let ctx = "[deploy]";
    let strategy = resolve_strategy(&raw, sink);
    DeploySettings {
        branch: raw.branch.and_then(|b| ci::resolve_branch(b, sink)),
        health_timeout: duration(
            raw.health_timeout.as_ref(),
            &raw::subject("health_timeout", ctx),
            DurationRule::POSITIVE,
            defaults::DEPLOY_HEALTH_TIMEOUT,
            sink,
        ),
        drain_timeout: duration(
            raw.drain_timeout.as_ref(),
            &raw::subject("drain_timeout", ctx),
            DurationRule::ANY,
            defaults::DRAIN_TIMEOUT,
            sink,
        ),
        retain: int_in(raw.retain, ctx, "retain", 1..=100, defaults::RETAIN, sink),
        strategy,
        notify: raw.notify.map(|notify| {
            if let Some((why, hint)) = url_problem(&notify.value) {
                sink.error_hint(
                    &notify.span,
                    format!("`notify` in {ctx} {why}, found {:?}", notify.value),
                    hint,
                );
            }
            notify.value
        }),
        analysis: raw
            .analysis
            .map(|a| resolve_analysis(a, sink))
            .unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum StrategyKind {
    BlueGreen,
    Canary,
    /// Reported; `bake` and `steps` are still checked on their own.
    Unknown,
}

const STRATEGY_VALUES: &str = "valid values: `blue-green` (the default), `canary`";

fn resolve_strategy(raw: &RawDeploy, sink: &mut Sink<'_>) -> Strategy {
    let ctx = "[deploy]";
    let kind = match &raw.strategy {
        // Written with a wrong type (reported): no telling what was meant.
        None if raw.strategy_written => StrategyKind::Unknown,
        None => StrategyKind::BlueGreen,
        Some(s) if s.value == "blue-green" => StrategyKind::BlueGreen,
        Some(s) if s.value == "canary" => StrategyKind::Canary,
        Some(s) => {
            let hint = match raw::closest(&s.value, &["blue-green", "canary"]) {
                Some(close) => format!("did you mean `{close}`? {STRATEGY_VALUES}"),
                None => STRATEGY_VALUES.to_string(),
            };
            sink.error_hint(
                &s.span,
                format!("unknown strategy `{}` in {ctx}", s.value),
                hint,
            );
            StrategyKind::Unknown
        }
    };
    let bake = duration(
        raw.bake.as_ref(),
        &raw::subject("bake", ctx),
        DurationRule::ANY,
        Duration::ZERO,
        sink,
    );
    let steps = raw
        .steps
        .as_ref()
        .map(|s| resolve_steps(s, sink))
        .unwrap_or_default();
    match kind {
        StrategyKind::BlueGreen => {
            if let Some(key) = &raw.steps_key {
                sink.error_hint(
                    key,
                    format!("`steps` in {ctx} only applies to strategy = \"canary\""),
                    "set strategy = \"canary\" or remove `steps`",
                );
            }
        }
        StrategyKind::Canary => {
            if let Some(key) = &raw.bake_key {
                sink.error_hint(
                    key,
                    format!("`bake` in {ctx} only applies to strategy = \"blue-green\""),
                    "remove `bake` (a canary is analysed during its steps) or set strategy = \"blue-green\"",
                );
            }
            if raw.steps_missing
                && let Some(strategy) = &raw.strategy
            {
                sink.error_hint(
                    &strategy.span,
                    format!("strategy = \"canary\" needs `steps` in {ctx}"),
                    format!(
                        "add the new release's traffic share per step, e.g. {}",
                        raw::STEPS_EXAMPLE
                    ),
                );
            }
        }
        StrategyKind::Unknown => {}
    }
    match kind {
        StrategyKind::Canary => Strategy::Canary { steps },
        StrategyKind::BlueGreen | StrategyKind::Unknown => Strategy::BlueGreen { bake },
    }
}

fn resolve_steps(raw: &RawSteps, sink: &mut Sink<'_>) -> Vec<CanaryStep> {
    let what = raw::subject("steps", "[deploy]");
    if raw.len == 0 {
        sink.error_hint(
            &raw.span,
            format!("{what} must not be empty"),
            format!("add at least one step, e.g. {}", raw::STEPS_EXAMPLE),
        );
    } else if raw.len > MAX_STEPS {
        sink.error_hint(
            &raw.span,
            format!(
                "{what} must have at most {MAX_STEPS} steps, found {}",
                raw.len
            ),
            "use fewer, bigger steps",
        );
    }
    // (step number, weight) of the last valid weight, for "must increase".
    let mut previous: Option<(usize, u32)> = None;
    let mut steps = Vec::new();
    for step in &raw.steps {
        let ctx = raw::step_ctx(step.number);
        let weight = step.weight.as_ref().and_then(|w| {
            let weight = u32::try_from(w.value).ok().filter(|n| (1..=99).contains(n));
            let Some(weight) = weight else {
                let message = format!(
                    "{} must be between 1 and 99, found {}",
                    raw::subject("weight", &ctx),
                    sink.text(&w.span)
                );
                if w.value == 100 {
                    sink.error_hint(
                        &w.span,
                        message,
                        "the new release gets 100% after the last step by itself; remove this step",
                    );
                } else {
                    sink.error(&w.span, message);
                }
                return None;
            };
            if let Some((number, before)) = previous
                && weight <= before
            {
                sink.error_hint(
                    &w.span,
                    format!(
                        "{} must be greater than the weight of step {number} ({before}), found {weight}",
                        raw::subject("weight", &ctx)
                    ),
                    "weights must increase from step to step",
                );
            }
            previous = Some((step.number, weight));
            Some(weight)
        });
        let pause = step.pause.as_ref().and_then(|pause| {
            let what = raw::subject("pause", &ctx);
            if humantime::parse_duration(pause.value.trim()).is_ok_and(|d| d.is_zero()) {
                sink.error_hint(
                    &pause.span,
                    format!("{what} must be greater than 0"),
                    "leave out `pause` to wait for `wharf promote`, or write a duration such as \"30s\"",
                );
                return None;
            }
            checked_duration(pause, &what, DurationRule::POSITIVE, sink)
        });
        steps.push(CanaryStep {
            weight: weight.unwrap_or_default(),
            pause,
        });
    }
    steps
}

/// Why `url` is not an `http://` or `https://` URL with a host, and how to
/// fix it. Deliberately simple: scheme, host, optional port, anything after.
fn url_problem(url: &str) -> Option<(String, String)> {
    const EXAMPLE: &str = "write a URL such as \"http://127.0.0.1:9000/hooks/wharf\"";
    let problem = |why: &str, hint: &str| Some((why.to_string(), hint.to_string()));
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return problem("must not contain spaces", "percent-encode them, e.g. %20");
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return problem("must be an http:// or https:// URL", EXAMPLE);
    };
    if scheme != "http" && scheme != "https" {
        return problem("must be an http:// or https:// URL", EXAMPLE);
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // user:password@ is allowed (basic auth); the host comes after it.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        match v6.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, after)) => match after.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return problem("must have a valid host", EXAMPLE),
            },
            None => return problem("must have a valid host", EXAMPLE),
        }
    } else {
        match host_port.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return problem("must have a host", EXAMPLE);
    }
    let host_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':');
    if !host.chars().all(host_char) {
        return problem("must have a valid host", EXAMPLE);
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return problem(
            "must have a port between 1 and 65535",
            "leave out the port for the scheme's default",
        );
    }
    None
}

fn resolve_analysis(raw: RawAnalysis, sink: &mut Sink<'_>) -> AnalysisSettings {
    let ctx = "[deploy.analysis]";
    let d = AnalysisSettings::default();
    let what = |key: &str| raw::subject(key, ctx);
    // `None` when invalid (reported) or absent.
    let interval = raw
        .interval
        .as_ref()
        .and_then(|i| checked_duration(i, &what("interval"), DurationRule::POSITIVE, sink));
    let window = raw
        .window
        .as_ref()
        .and_then(|w| checked_duration(w, &what("window"), DurationRule::ANY, sink));
    // Compare only values that are valid or defaults, never a replacement
    // for an invalid one.
    let interval_ok = raw.interval.is_none() || interval.is_some();
    let window_ok = raw.window.is_none() || window.is_some();
    let interval = interval.unwrap_or(d.interval);
    let window = window.unwrap_or(d.window);
    if interval_ok && window_ok && window < interval {
        let show = |d: Duration| humantime::format_duration(d).to_string();
        if let Some(w) = &raw.window {
            sink.error_hint(
                &w.span,
                format!(
                    "{} must be at least `interval` ({}), found {:?}",
                    what("window"),
                    show(interval),
                    w.value
                ),
                "each check looks back over `window`, so it cannot be shorter than the time between checks",
            );
        } else if let Some(i) = &raw.interval {
            sink.error_hint(
                &i.span,
                format!(
                    "{} must be at most `window` ({}, the default), found {:?}",
                    what("interval"),
                    show(window),
                    i.value
                ),
                format!("shorten `interval` or set window = {:?} or more", i.value),
            );
        }
    }
    AnalysisSettings {
        interval,
        window,
        min_requests: int_in(
            raw.min_requests,
            ctx,
            "min_requests",
            0..=MAX_ANALYSIS_COUNT,
            d.min_requests,
            sink,
        ),
        min_errors: int_in(
            raw.min_errors,
            ctx,
            "min_errors",
            0..=MAX_ANALYSIS_COUNT,
            d.min_errors,
            sink,
        ),
        max_error_rate: fraction(
            raw.max_error_rate,
            ctx,
            "max_error_rate",
            d.max_error_rate,
            sink,
        ),
        max_error_rate_increase: fraction(
            raw.max_error_rate_increase,
            ctx,
            "max_error_rate_increase",
            d.max_error_rate_increase,
            sink,
        ),
        max_p99_ratio: ratio(
            raw.max_p99_ratio,
            ctx,
            "max_p99_ratio",
            d.max_p99_ratio,
            sink,
        ),
        p99_floor: duration(
            raw.p99_floor.as_ref(),
            &what("p99_floor"),
            DurationRule::ANY,
            d.p99_floor,
            sink,
        ),
        failures_tolerated: int_in(
            raw.failures_tolerated,
            ctx,
            "failures_tolerated",
            0..=10,
            d.failures_tolerated,
            sink,
        ),
    }
}

/// A rate: a fraction in 0..=1.
fn fraction(
    field: Option<Sp<f64>>,
    ctx: &str,
    key: &str,
    default: f64,
    sink: &mut Sink<'_>,
) -> f64 {
    let Some(field) = field else {
        return default;
    };
    if (0.0..=1.0).contains(&field.value) {
        return field.value;
    }
    sink.error_hint(
        &field.span,
        format!(
            "{} must be between 0 and 1, found {}",
            raw::subject(key, ctx),
            sink.text(&field.span)
        ),
        "rates are fractions: 0.02 is 2%",
    );
    default
}

/// A limit on a ratio of latencies: finite and at least 1.
fn ratio(field: Option<Sp<f64>>, ctx: &str, key: &str, default: f64, sink: &mut Sink<'_>) -> f64 {
    let Some(field) = field else {
        return default;
    };
    if field.value.is_finite() && field.value >= 1.0 {
        return field.value;
    }
    let what = raw::subject(key, ctx);
    let found = sink.text(&field.span);
    if field.value.is_infinite() && field.value > 0.0 {
        sink.error(
            &field.span,
            format!("{what} must be a finite number, found {found}"),
        );
    } else {
        sink.error_hint(
            &field.span,
            format!("{what} must be at least 1.0, found {found}"),
            "it limits new p99 / stable p99: 2.0 fails a release more than twice as slow as the stable one",
        );
    }
    default
}

/// What a duration field accepts beyond being a duration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DurationRule {
    /// Zero makes no sense for intervals and timeouts (it would spin or fail
    /// at once); it does for stop/drain timeouts ("don't wait").
    pub(crate) positive: bool,
    pub(crate) max: Option<Duration>,
}

impl DurationRule {
    pub(crate) const ANY: Self = DurationRule {
        positive: false,
        max: None,
    };
    pub(crate) const POSITIVE: Self = DurationRule {
        positive: true,
        max: None,
    };
}

/// The duration in `field`, `default` if absent or invalid (reported).
pub(crate) fn duration(
    field: Option<&Sp<String>>,
    what: &str,
    rule: DurationRule,
    default: Duration,
    sink: &mut Sink<'_>,
) -> Duration {
    field
        .and_then(|field| checked_duration(field, what, rule, sink))
        .unwrap_or(default)
}

/// The duration in `field`, or `None` after reporting why it is not valid.
fn checked_duration(
    field: &Sp<String>,
    what: &str,
    rule: DurationRule,
    sink: &mut Sink<'_>,
) -> Option<Duration> {
    let Ok(parsed) = humantime::parse_duration(field.value.trim()) else {
        sink.error_hint(
            &field.span,
            format!("{what} must be a duration, found {:?}", field.value),
            DURATION_HINT,
        );
        return None;
    };
    if rule.positive && parsed.is_zero() {
        sink.error_hint(
            &field.span,
            format!("{what} must be greater than 0"),
            DURATION_HINT,
        );
        return None;
    }
    if let Some(max) = rule.max
        && parsed > max
    {
        sink.error(
            &field.span,
            format!(
                "{what} must be at most {}s, found {:?}",
                max.as_secs(),
                field.value
            ),
        );
        return None;
    }
    Some(parsed)
}

pub(crate) fn int_in<T>(
    field: Option<Sp<i128>>,
    ctx: &str,
    key: &str,
    range: std::ops::RangeInclusive<T>,
    default: T,
    sink: &mut Sink<'_>,
) -> T
where
    T: TryFrom<i128> + PartialOrd + std::fmt::Display + Copy,
{
    let Some(field) = field else {
        return default;
    };
    match T::try_from(field.value) {
        Ok(n) if range.contains(&n) => n,
        _ => {
            sink.error(
                &field.span,
                format!(
                    "{} must be between {} and {}, found {}",
                    raw::subject(key, ctx),
                    range.start(),
                    range.end(),
                    // As written, since huge literals were clamped.
                    sink.text(&field.span)
                ),
            );
            default
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "0", "hello-world", "a-", "web2"] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", "é"] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        assert_eq!(suggest_name("Hello_World").as_deref(), Some("hello-world"));
        assert_eq!(suggest_name("--x").as_deref(), Some("x"));
        assert_eq!(suggest_name("___"), None);
    }

    #[test]
    fn env_keys() {
        for ok in ["A", "_", "a_1", "PATH"] {
            assert_eq!(env_key_problem(ok), None, "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(env_key_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn hosts() {
        for ok in ["localhost", "a.b.c", "x-1.example.com", "127.0.0.1"] {
            assert_eq!(host_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "A.com",
            "http://a.com",
            "a.com:80",
            "a.com/x",
            "a..com",
            "a.com.",
            "-a.com",
            "a_b.com",
            "*.a.com",
        ] {
            assert!(host_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn notify_urls() {
        for ok in [
            "http://127.0.0.1:9000/hooks/wharf",
            "https://hooks.example.com",
            "https://hooks.example.com/",
            "http://localhost:1/x?y=z#f",
            "https://user:pw@example.com/x",
            "http://[::1]:9000/hooks",
            "http://[::1]",
            "http://Example.COM/x",
        ] {
            assert_eq!(url_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "example.com",
            "ftp://example.com",
            "HTTP://example.com",
            "http://",
            "http:///x",
            "http://:80/x",
            "http://user@/x",
            "http://a b",
            "http://a:0",
            "http://a:65536",
            "http://a:x",
            "http://a:",
            "http://[::1",
            "http://[::1]x",
            "http://é.com",
            "http://a,b",
        ] {
            assert!(url_problem(bad).is_some(), "{bad}");
        }
    }

    #[test]
    fn trailing_slash() {
        assert_eq!(trim_trailing_slash("/"), "/");
        assert_eq!(trim_trailing_slash("///"), "/");
        assert_eq!(trim_trailing_slash("/a/"), "/a");
    }
}
