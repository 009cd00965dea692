//! The shape of `wharf.toml`: raw structs that mirror the file, every value
//! carrying its byte span.
//!
//! Rather than serde-deriving these (a serde error aborts at the first wrong
//! type and loses the spans of nested values), we walk the spanned tree that
//! [`toml::de::DeTable`] parses and check the *shape* here: unknown keys,
//! wrong value types and missing required keys. Every problem goes to the
//! [`Sink`] and the offending value is dropped, so the walk always finishes
//! and later checks still run. What the values *mean* (ranges, durations,
//! names) is checked in `validate`.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::Sink;

mod ci;
mod cron;
pub(crate) use ci::{RawCi, RawCiGroup, RawCiItem, RawCiStep, RawCiSteps};
pub(crate) use cron::{CRON_EXAMPLE, RawCron};

/// A byte range in the source.
pub(crate) type Span = Range<usize>;

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sp<T> {
    pub value: T,
    pub span: Span,
}

/// The top level of the file.
#[derive(Debug, Default)]
pub(crate) struct RawConfig {
    pub name: Option<Sp<String>>,
    pub runtime: Option<Sp<String>>,
    pub image: Option<Sp<String>>,
    pub build: Option<RawBuild>,
    /// One command, or a list of them run in order.
    pub release_command: Vec<Sp<String>>,
    /// Where the web processes' fingerprinted assets are (kept servable
    /// across a switch).
    pub asset_path: Option<Sp<String>>,
    pub env: Vec<RawEnvVar>,
    /// `env_file`: dotenv files, in order (later ones win).
    pub env_file: Vec<Sp<String>>,
    pub secrets: Vec<RawSecret>,
    /// `[secrets] env_file = [...]`: files whose every value is a secret.
    pub secret_env_files: Vec<Sp<String>>,
    /// In source order.
    pub accessories: Vec<RawAccessory>,
    /// In source order (the TOML map itself is sorted by name).
    pub processes: Vec<RawProcess>,
    /// `[cron.NAME]` entries, in source order.
    pub cron: Vec<RawCron>,
    /// `[ci]`, when written as a table.
    pub ci: Option<RawCi>,
    pub deploy: RawDeploy,
}

/// `build = "command"` (process runtime) or a `[build]` table (docker).
#[derive(Debug)]
pub(crate) enum RawBuild {
    Command(Sp<String>),
    Table(RawBuildTable),
}

#[derive(Debug)]
pub(crate) struct RawBuildTable {
    /// Where the `build` key is.
    pub span: Span,
    pub command: Option<Sp<String>>,
    pub dockerfile: Option<Sp<String>>,
    pub context: Option<Sp<String>>,
    pub target: Option<Sp<String>>,
    pub args: Vec<RawEnvVar>,
}

/// `KEY = { env = "NAME" }` or `KEY = { file = "/path" }`.
#[derive(Debug)]
pub(crate) struct RawSecret {
    pub key: Sp<String>,
    /// `None` after a reported shape problem.
    pub source: Option<RawSecretSource>,
}

#[derive(Debug)]
pub(crate) enum RawSecretSource {
    Env(Sp<String>),
    File(Sp<String>),
}

#[derive(Debug)]
pub(crate) struct RawAccessory {
    /// The name as written in `[accessories.NAME]`, spanning NAME.
    pub name: Sp<String>,
    pub image: Option<Sp<String>>,
    /// `build = { dockerfile = … }`; its `command` is always `None`.
    pub build: Option<RawBuildTable>,
    pub command: Option<Sp<String>>,
    pub env: Vec<RawEnvVar>,
    pub secrets: Vec<RawSecret>,
    /// Strings, or integers already written as strings.
    pub ports: Vec<Sp<String>>,
    pub volumes: Vec<Sp<String>>,
    /// Extra names on the app's network.
    pub aliases: Vec<Sp<String>>,
    pub memory: Option<Sp<String>>,
    pub cpus: Option<Sp<f64>>,
    pub health: Option<RawAccessoryHealth>,
}

#[derive(Debug)]
pub(crate) struct RawAccessoryHealth {
    pub command: Option<Sp<String>>,
    pub interval: Option<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub retries: Option<Sp<i128>>,
    pub start_timeout: Option<Sp<String>>,
}

/// One `KEY = value` of an env table; scalars already converted to strings.
#[derive(Debug)]
pub(crate) struct RawEnvVar {
    pub key: Sp<String>,
    pub value: String,
}

#[derive(Debug)]
pub(crate) struct RawProcess {
    /// The name as written in `[processes.NAME]`, spanning NAME.
    pub name: Sp<String>,
    pub command: Option<Sp<String>>,
    /// Docker: the process's own prebuilt image.
    pub image: Option<Sp<String>>,
    /// Docker: the process's own image, built from the app's directory.
    pub build: Option<RawBuildTable>,
    /// Docker: replaces the image's ENTRYPOINT.
    pub entrypoint: Option<Sp<String>>,
    pub instances: Option<Sp<i128>>,
    pub stop_timeout: Option<Sp<String>>,
    pub env: Vec<RawEnvVar>,
    pub env_file: Vec<Sp<String>>,
    pub volumes: Vec<Sp<String>>,
    /// Docker: TCP/UDP ports published for a process without `http`.
    pub ports: Vec<Sp<String>>,
    pub http: Option<RawHttp>,
    pub health: Option<RawHealth>,
    /// Whether an `http` key was written at all, even with a wrong type, so a
    /// typo there does not also produce "health needs http".
    pub http_written: bool,
    pub port: Option<Sp<i128>>,
    /// Bytes as an integer, or a size string ("512MiB").
    pub memory: Option<Sp<String>>,
    pub cpus: Option<Sp<f64>>,
    pub restart: Option<Sp<String>>,
    /// Keys written that only the docker runtime understands, with where.
    pub docker_keys: Vec<(&'static str, Span)>,
    /// `command` is absent (and no typo of it was reported): where the
    /// process table is.
    pub command_missing: Option<Span>,
}

#[derive(Debug)]
pub(crate) struct RawHttp {
    /// Where the `http` key is, for errors about the route as a whole.
    pub span: Span,
    pub host: Option<Sp<String>>,
    pub hosts: Vec<Sp<String>>,
    /// Where `hosts` is, for errors about it as a whole.
    pub hosts_span: Option<Span>,
    pub path: Option<Sp<String>>,
    pub tls: Option<RawTls>,
    pub hsts: Option<Sp<bool>>,
    pub max_body: Option<Sp<String>>,
    pub timeout: Option<Sp<String>>,
}

/// `tls = true` (ACME) or `tls = { cert = "…", key = "…" }`.
#[derive(Debug)]
pub(crate) enum RawTls {
    Acme(Sp<bool>),
    Files {
        span: Span,
        cert: Option<Sp<String>>,
        key: Option<Sp<String>>,
    },
}

#[derive(Debug)]
pub(crate) struct RawHealth {
    /// Where the `health` key is.
    pub span: Span,
    pub path: Option<Sp<String>>,
    pub interval: Option<Sp<String>>,
    pub timeout: Option<Sp<String>>,
    pub threshold: Option<Sp<i128>>,
}

#[derive(Debug, Default)]
pub(crate) struct RawDeploy {
    /// The branch whose pushes are deployed.
    pub branch: Option<Sp<String>>,
    pub health_timeout: Option<Sp<String>>,
    pub drain_timeout: Option<Sp<String>>,
    pub retain: Option<Sp<i128>>,
    pub strategy: Option<Sp<String>>,
    /// Whether a `strategy` key was written at all, even with a wrong type,
    /// so a slip there does not also produce "steps only apply to canary".
    pub strategy_written: bool,
    pub bake: Option<Sp<String>>,
    /// Where the `bake` key is, if written at all (even with a wrong type),
    /// for "only applies to blue-green".
    pub bake_key: Option<Span>,
    pub steps: Option<RawSteps>,
    /// Where the `steps` key is, if written at all (even with a wrong type),
    /// for "only applies to canary".
    pub steps_key: Option<Span>,
    /// `steps` is absent and no typo of it was reported, so "canary needs
    /// steps" is worth saying.
    pub steps_missing: bool,
    pub notify: Option<Sp<String>>,
    pub analysis: Option<RawAnalysis>,
}

/// `steps = [...]` or `[[deploy.steps]]`.
#[derive(Debug)]
pub(crate) struct RawSteps {
    /// Where the array is.
    pub span: Span,
    /// How many elements were written, tables or not.
    pub len: usize,
    /// The elements that are tables, in order.
    pub steps: Vec<RawStep>,
}

#[derive(Debug)]
pub(crate) struct RawStep {
    /// 1-based position in `steps`, as messages name it.
    pub number: usize,
    pub weight: Option<Sp<i128>>,
    pub pause: Option<Sp<String>>,
}

#[derive(Debug)]
pub(crate) struct RawAnalysis {
    pub interval: Option<Sp<String>>,
    pub window: Option<Sp<String>>,
    pub min_requests: Option<Sp<i128>>,
    pub min_errors: Option<Sp<i128>>,
    pub max_error_rate: Option<Sp<f64>>,
    pub max_error_rate_increase: Option<Sp<f64>>,
    pub max_p99_ratio: Option<Sp<f64>>,
    pub p99_floor: Option<Sp<String>>,
    pub failures_tolerated: Option<Sp<i128>>,
}

pub(crate) const TOP_KEYS: &[&str] = &[
    "name",
    "runtime",
    "image",
    "build",
    "release_command",
    "asset_path",
    "env",
    "env_file",
    "secrets",
    "processes",
    "accessories",
    "cron",
    "ci",
    "deploy",
];
pub(crate) const PROCESS_KEYS: &[&str] = &[
    "command",
    "image",
    "build",
    "entrypoint",
    "instances",
    "stop_timeout",
    "env",
    "env_file",
    "volumes",
    "ports",
    "http",
    "health",
    "port",
    "memory",
    "cpus",
    "restart",
];
/// Process keys only the docker runtime understands.
pub(crate) const DOCKER_PROCESS_KEYS: &[&str] = &[
    "port",
    "memory",
    "cpus",
    "ports",
    "image",
    "build",
    "entrypoint",
];
pub(crate) const BUILD_KEYS: &[&str] = &["command", "dockerfile", "context", "target", "args"];
pub(crate) const SECRET_KEYS: &[&str] = &["env", "file"];
pub(crate) const ACCESSORY_KEYS: &[&str] = &[
    "image", "build", "command", "env", "secrets", "ports", "volumes", "aliases", "memory", "cpus",
    "health",
];
/// An accessory's `build`: like `[build]`, without the host command.
pub(crate) const ACCESSORY_BUILD_KEYS: &[&str] = &["dockerfile", "context", "target", "args"];
pub(crate) const ACCESSORY_HEALTH_KEYS: &[&str] =
    &["command", "interval", "timeout", "retries", "start_timeout"];
pub(crate) const HTTP_KEYS: &[&str] = &[
    "host", "hosts", "path", "tls", "hsts", "max_body", "timeout",
];
pub(crate) const TLS_KEYS: &[&str] = &["cert", "key"];
pub(crate) const HEALTH_KEYS: &[&str] = &["path", "interval", "timeout", "threshold"];
pub(crate) const DEPLOY_KEYS: &[&str] = &[
    "branch",
    "health_timeout",
    "drain_timeout",
    "retain",
    "strategy",
    "bake",
    "steps",
    "notify",
    "analysis",
];
pub(crate) const STEP_KEYS: &[&str] = &["weight", "pause"];
pub(crate) const ANALYSIS_KEYS: &[&str] = &[
    "interval",
    "window",
    "min_requests",
    "min_errors",
    "max_error_rate",
    "max_error_rate_increase",
    "max_p99_ratio",
    "p99_floor",
    "failures_tolerated",
];

/// How to write `steps`, for hints.
pub(crate) const STEPS_EXAMPLE: &str =
    "steps = [{ weight = 10, pause = \"30s\" }, { weight = 50 }]";

/// Walks the parsed document into a [`RawConfig`], reporting shape problems.
pub(crate) fn read(root: &DeTable<'_>, sink: &mut Sink<'_>) -> RawConfig {
    let top = Table::new(root, "", TOP_KEYS, sink);
    let name = top.string(sink, "name");
    if top.is_missing("name") {
        sink.error_hint(
            &(0..0),
            "missing required key `name`",
            "add a line like name = \"my-app\" at the top of the file",
        );
    }
    RawConfig {
        name,
        runtime: top.string(sink, "runtime"),
        image: top.string(sink, "image"),
        build: read_build(&top, sink),
        release_command: top.string_or_array(sink, "release_command"),
        asset_path: top.string(sink, "asset_path"),
        env_file: top.string_or_array(sink, "env_file"),
        env: top
            .table(sink, "env")
            .map(|env| read_env(env, "[env]", sink))
            .unwrap_or_default(),
        secrets: top
            .table(sink, "secrets")
            .map(|t| read_secrets(t, "[secrets]", sink))
            .unwrap_or_default(),
        secret_env_files: top
            .table(sink, "secrets")
            .map(|t| Table::unchecked(t, "[secrets]").string_or_array(sink, "env_file"))
            .unwrap_or_default(),
        processes: read_processes(&top, sink),
        accessories: read_accessories(&top, sink),
        cron: cron::read_cron(&top, sink),
        ci: ci::read_ci(&top, sink),
        deploy: top
            .table(sink, "deploy")
            .map(|t| read_deploy(t, sink))
            .unwrap_or_default(),
    }
}

fn read_build(top: &Table<'_, '_>, sink: &mut Sink<'_>) -> Option<RawBuild> {
    let value = top.get("build")?;
    match value.get_ref() {
        DeValue::String(s) => Some(RawBuild::Command(Sp {
            value: s.to_string(),
            span: value.span(),
        })),
        DeValue::Table(table) => Some(RawBuild::Table(read_build_table(
            table,
            top.key_span("build").unwrap_or_else(|| value.span()),
            "[build]",
            BUILD_KEYS,
            sink,
        ))),
        _ => {
            top.wrong_type(
                sink,
                "build",
                value,
                "a string or a table",
                Some(
                    "write build = \"sh build.sh\" (a command), or a [build] table for docker images"
                        .into(),
                ),
            );
            None
        }
    }
}

/// A build table: `[build]` (`keys` with `command`) or an accessory's
/// `build` (without). `ctx` names it, `span` is where its key is.
fn read_build_table(
    table: &DeTable<'_>,
    span: Span,
    ctx: &str,
    keys: &'static [&'static str],
    sink: &mut Sink<'_>,
) -> RawBuildTable {
    let t = Table::new(table, ctx, keys, sink);
    RawBuildTable {
        span,
        command: t.string(sink, "command"),
        dockerfile: t.string(sink, "dockerfile"),
        context: t.string(sink, "context"),
        target: t.string(sink, "target"),
        args: t
            .table(sink, "args")
            .map(|args| {
                let args_ctx = format!("{}.args]", ctx.trim_end_matches(']'));
                read_env(args, &args_ctx, sink)
            })
            .unwrap_or_default(),
    }
}

/// `[secrets]` (or an accessory's `secrets`): every value a one-key table.
fn read_secrets(table: &DeTable<'_>, ctx: &str, sink: &mut Sink<'_>) -> Vec<RawSecret> {
    const HINT: &str = "write KEY = { env = \"NAME\" } (from the server's environment) or KEY = { file = \"/path\" }";
    let mut secrets: Vec<RawSecret> = table
        .iter()
        // `[secrets] env_file = [...]`: files of secrets, read on their own.
        .filter(|(key, _)| !(ctx == "[secrets]" && key.get_ref().as_ref() == "env_file"))
        .map(|(key, value)| {
            let key = Sp {
                value: key.get_ref().to_string(),
                span: key.span(),
            };
            let sub = format!("secret `{}` in {ctx}", key.value);
            let source = match value.get_ref() {
                DeValue::Table(t) => {
                    let fields = Table::new(t, &sub, SECRET_KEYS, sink);
                    let env = fields.string(sink, "env");
                    let file = fields.string(sink, "file");
                    match (env, file) {
                        (Some(env), None) => Some(RawSecretSource::Env(env)),
                        (None, Some(file)) => Some(RawSecretSource::File(file)),
                        (Some(_), Some(_)) => {
                            sink.error_hint(
                                &value.span(),
                                format!("{sub} has both `env` and `file`"),
                                "keep one: where the value comes from",
                            );
                            None
                        }
                        (None, None) => {
                            if fields.is_missing("env") && fields.is_missing("file") {
                                sink.error_hint(
                                    &value.span(),
                                    format!("{sub} says neither `env` nor `file`"),
                                    HINT,
                                );
                            }
                            None
                        }
                    }
                }
                other => {
                    sink.error_hint(
                        &value.span(),
                        format!("{sub} must be a table, found {}", describe(other)),
                        HINT,
                    );
                    None
                }
            };
            RawSecret { key, source }
        })
        .collect();
    secrets.sort_by_key(|s| s.key.span.start);
    secrets
}

fn read_accessories(top: &Table<'_, '_>, sink: &mut Sink<'_>) -> Vec<RawAccessory> {
    let Some(table) = top.table(sink, "accessories") else {
        return Vec::new();
    };
    let mut accessories: Vec<RawAccessory> = table
        .iter()
        .filter_map(|(name, value)| {
            let name = Sp {
                value: name.get_ref().to_string(),
                span: name.span(),
            };
            let ctx = format!("[accessories.{}]", name.value);
            let DeValue::Table(table) = value.get_ref() else {
                sink.error_hint(
                    &value.span(),
                    format!(
                        "accessory `{}` must be a table, found {}",
                        name.value,
                        describe(value.get_ref())
                    ),
                    format!("write {ctx} followed by image = \"...\""),
                );
                return None;
            };
            let t = Table::new(table, &ctx, ACCESSORY_KEYS, sink);
            if t.is_missing("image") && t.is_missing("build") {
                sink.error_hint(
                    &value.span(),
                    format!("missing required key `image` in {ctx}"),
                    format!(
                        "add image = \"...\" to {ctx}, e.g. image = \"postgres:16\", or build = {{ dockerfile = \"...\" }} to build it from the app's directory"
                    ),
                );
            }
            let build = t.key_span("build").and_then(|span| {
                let table = t.table(sink, "build")?;
                let bctx = format!("[accessories.{}.build]", name.value);
                Some(read_build_table(table, span, &bctx, ACCESSORY_BUILD_KEYS, sink))
            });
            let health = t.key_span("health").and_then(|span| {
                let table = t.table(sink, "health")?;
                let hctx = format!("[accessories.{}.health]", name.value);
                let h = Table::new(table, &hctx, ACCESSORY_HEALTH_KEYS, sink);
                if h.is_missing("command") {
                    sink.error_hint(
                        &span,
                        format!("missing required key `command` in {hctx}"),
                        "add command = \"...\": run in the container, exit 0 means healthy",
                    );
                }
                Some(RawAccessoryHealth {
                    command: h.string(sink, "command"),
                    interval: h.duration(sink, "interval"),
                    timeout: h.duration(sink, "timeout"),
                    retries: h.integer(sink, "retries"),
                    start_timeout: h.duration(sink, "start_timeout"),
                })
            });
            Some(RawAccessory {
                image: t.string(sink, "image"),
                build,
                command: t.string(sink, "command"),
                env: t
                    .table(sink, "env")
                    .map(|env| read_env(env, &format!("[accessories.{}.env]", name.value), sink))
                    .unwrap_or_default(),
                secrets: t
                    .table(sink, "secrets")
                    .map(|s| read_secrets(s, &ctx, sink))
                    .unwrap_or_default(),
                ports: t.string_array(sink, "ports", true),
                volumes: t.string_array(sink, "volumes", false),
                aliases: t.string_array(sink, "aliases", false),
                memory: t.size(sink, "memory"),
                cpus: t.number(sink, "cpus"),
                health,
                name,
            })
        })
        .collect();
    accessories.sort_by_key(|a| a.name.span.start);
    accessories
}

fn read_processes(top: &Table<'_, '_>, sink: &mut Sink<'_>) -> Vec<RawProcess> {
    let Some(field) = top.get("processes") else {
        sink.error_hint(
            &(0..0),
            "no processes defined",
            "add at least one, e.g. [processes.web] with command = \"bin/server\"",
        );
        return Vec::new();
    };
    let Some(table) = top.table(sink, "processes") else {
        return Vec::new();
    };
    if table.is_empty() {
        sink.error_hint(
            &field.span(),
            "[processes] has no processes",
            "add at least one, e.g. [processes.web] with command = \"bin/server\"",
        );
    }
    let mut processes: Vec<RawProcess> = table
        .iter()
        .filter_map(|(name, value)| read_process(name, value, sink))
        .collect();
    processes.sort_by_key(|p| p.name.span.start);
    processes
}

fn read_process(
    name: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
    sink: &mut Sink<'_>,
) -> Option<RawProcess> {
    let name = Sp {
        value: name.get_ref().to_string(),
        span: name.span(),
    };
    let ctx = format!("[processes.{}]", name.value);
    let DeValue::Table(table) = value.get_ref() else {
        sink.error_hint(
            &value.span(),
            format!(
                "process `{}` must be a table, found {}",
                name.value,
                describe(value.get_ref())
            ),
            format!("write {ctx} followed by command = \"...\""),
        );
        return None;
    };
    let t = Table::new(table, &ctx, PROCESS_KEYS, sink);
    // Whether `command` may be missing depends on the runtime: `validate`
    // says so, at this span.
    let command = t.string(sink, "command");
    let docker_keys = DOCKER_PROCESS_KEYS
        .iter()
        .filter_map(|key| t.key_span(key).map(|span| (*key, span)))
        .collect();
    let build = t.key_span("build").and_then(|span| {
        let table = t.table(sink, "build")?;
        let bctx = format!("[processes.{}.build]", name.value);
        Some(read_build_table(
            table,
            span,
            &bctx,
            ACCESSORY_BUILD_KEYS,
            sink,
        ))
    });
    Some(RawProcess {
        command_missing: t.is_missing("command").then(|| value.span()),
        image: t.string(sink, "image"),
        build,
        entrypoint: t.string(sink, "entrypoint"),
        port: t.integer(sink, "port"),
        memory: t.size(sink, "memory"),
        cpus: t.number(sink, "cpus"),
        restart: t.string(sink, "restart"),
        docker_keys,
        command,
        instances: t.integer(sink, "instances"),
        stop_timeout: t.duration(sink, "stop_timeout"),
        env: t
            .table(sink, "env")
            .map(|env| read_env(env, &format!("[processes.{}.env]", name.value), sink))
            .unwrap_or_default(),
        env_file: t.string_or_array(sink, "env_file"),
        volumes: t.string_array(sink, "volumes", false),
        ports: t.string_array(sink, "ports", true),
        http: read_http(&t, &name.value, sink),
        health: read_health(&t, &name.value, sink),
        http_written: t.get("http").is_some(),
        name,
    })
}

fn read_http(process: &Table<'_, '_>, name: &str, sink: &mut Sink<'_>) -> Option<RawHttp> {
    let span = process.key_span("http")?;
    let table = process.table(sink, "http")?;
    let t = Table::new(table, &format!("[processes.{name}.http]"), HTTP_KEYS, sink);
    let tls = match t.get("tls").map(|v| (v.get_ref(), v.span())) {
        None => None,
        Some((DeValue::Boolean(b), span)) => Some(RawTls::Acme(Sp { value: *b, span })),
        Some((DeValue::Table(table), span)) => {
            let files = Table::new(
                table,
                &format!("[processes.{name}.http.tls]"),
                TLS_KEYS,
                sink,
            );
            Some(RawTls::Files {
                span,
                cert: files.string(sink, "cert"),
                key: files.string(sink, "key"),
            })
        }
        Some(_) => {
            let value = t.get("tls")?;
            t.wrong_type(
                sink,
                "tls",
                value,
                "true or a table",
                Some(
                    "write tls = true (a certificate by ACME) or tls = { cert = \"cert.pem\", key = \"key.pem\" }"
                        .into(),
                ),
            );
            None
        }
    };
    Some(RawHttp {
        span,
        host: t.string(sink, "host"),
        hosts: t.string_array(sink, "hosts", false),
        hosts_span: t.key_span("hosts"),
        path: t.string(sink, "path"),
        tls,
        hsts: t.boolean(sink, "hsts"),
        max_body: t.size(sink, "max_body"),
        timeout: t.duration(sink, "timeout"),
    })
}

fn read_health(process: &Table<'_, '_>, name: &str, sink: &mut Sink<'_>) -> Option<RawHealth> {
    let span = process.key_span("health")?;
    let table = process.table(sink, "health")?;
    let t = Table::new(
        table,
        &format!("[processes.{name}.health]"),
        HEALTH_KEYS,
        sink,
    );
    Some(RawHealth {
        span,
        path: t.string(sink, "path"),
        interval: t.duration(sink, "interval"),
        timeout: t.duration(sink, "timeout"),
        threshold: t.integer(sink, "threshold"),
    })
}

fn read_deploy(table: &DeTable<'_>, sink: &mut Sink<'_>) -> RawDeploy {
    let t = Table::new(table, "[deploy]", DEPLOY_KEYS, sink);
    RawDeploy {
        branch: t.string(sink, "branch"),
        health_timeout: t.duration(sink, "health_timeout"),
        drain_timeout: t.duration(sink, "drain_timeout"),
        retain: t.integer(sink, "retain"),
        strategy: t.string(sink, "strategy"),
        strategy_written: t.get("strategy").is_some(),
        bake: t.duration(sink, "bake"),
        bake_key: t.key_span("bake"),
        steps: read_steps(&t, sink),
        steps_key: t.key_span("steps"),
        steps_missing: t.is_missing("steps"),
        notify: t.string(sink, "notify"),
        analysis: t
            .table(sink, "analysis")
            .map(|table| read_analysis(table, sink)),
    }
}

/// `steps`: an array of inline tables, or `[[deploy.steps]]`.
fn read_steps(deploy: &Table<'_, '_>, sink: &mut Sink<'_>) -> Option<RawSteps> {
    let value = deploy.get("steps")?;
    let DeValue::Array(array) = value.get_ref() else {
        deploy.wrong_type(
            sink,
            "steps",
            value,
            "an array",
            Some(format!("write {STEPS_EXAMPLE}")),
        );
        return None;
    };
    let steps = array
        .iter()
        .enumerate()
        .filter_map(|(i, step)| read_step(i + 1, step, sink))
        .collect();
    Some(RawSteps {
        span: value.span(),
        len: array.len(),
        steps,
    })
}

fn read_step(number: usize, value: &Spanned<DeValue<'_>>, sink: &mut Sink<'_>) -> Option<RawStep> {
    let ctx = step_ctx(number);
    let DeValue::Table(table) = value.get_ref() else {
        sink.error_hint(
            &value.span(),
            format!("{ctx} must be a table, found {}", describe(value.get_ref())),
            format!("write {STEPS_EXAMPLE}"),
        );
        return None;
    };
    let t = Table::new(table, &ctx, STEP_KEYS, sink);
    if t.is_missing("weight") {
        sink.error_hint(
            &value.span(),
            format!("missing required key `weight` in {ctx}"),
            "add weight = N: the new release's share of traffic in percent, 1 to 99",
        );
    }
    Some(RawStep {
        number,
        weight: t.integer(sink, "weight"),
        pause: t.duration(sink, "pause"),
    })
}

/// How messages name step `number` (1-based) of `steps`.
pub(crate) fn step_ctx(number: usize) -> String {
    format!("[deploy] step {number}")
}

fn read_analysis(table: &DeTable<'_>, sink: &mut Sink<'_>) -> RawAnalysis {
    let t = Table::new(table, "[deploy.analysis]", ANALYSIS_KEYS, sink);
    RawAnalysis {
        interval: t.duration(sink, "interval"),
        window: t.duration(sink, "window"),
        min_requests: t.integer(sink, "min_requests"),
        min_errors: t.integer(sink, "min_errors"),
        max_error_rate: t.number(sink, "max_error_rate"),
        max_error_rate_increase: t.number(sink, "max_error_rate_increase"),
        max_p99_ratio: t.number(sink, "max_p99_ratio"),
        p99_floor: t.duration(sink, "p99_floor"),
        failures_tolerated: t.integer(sink, "failures_tolerated"),
    }
}

/// Env tables take any key (checked in `validate`); scalar values become
/// strings because `PORT = 8080` is what people write.
fn read_env(table: &DeTable<'_>, ctx: &str, sink: &mut Sink<'_>) -> Vec<RawEnvVar> {
    let mut vars: Vec<RawEnvVar> = table
        .iter()
        .filter_map(|(key, value)| {
            let value_text = env_value(key.get_ref(), value, ctx, sink)?;
            Some(RawEnvVar {
                key: Sp {
                    value: key.get_ref().to_string(),
                    span: key.span(),
                },
                value: value_text,
            })
        })
        .collect();
    // Report problems with keys in source order.
    vars.sort_by_key(|v| v.key.span.start);
    vars
}

fn env_value(
    key: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &str,
    sink: &mut Sink<'_>,
) -> Option<String> {
    match value.get_ref() {
        DeValue::String(s) => Some(s.to_string()),
        DeValue::Boolean(b) => Some(b.to_string()),
        DeValue::Integer(i) => match int_value(i) {
            Some(n) => Some(n.to_string()),
            None => Some(sink.text(&value.span()).to_string()),
        },
        // Floats are written back as Rust prints them ("1.5", "1000").
        DeValue::Float(f) => match f.as_str().parse::<f64>() {
            Ok(x) => Some(x.to_string()),
            Err(_) => Some(sink.text(&value.span()).to_string()),
        },
        other => {
            sink.error_hint(
                &value.span(),
                format!(
                    "{} must be a string, found {}",
                    subject(key, ctx),
                    describe(other)
                ),
                "env values are strings; numbers and booleans are converted, anything else must be quoted",
            );
            None
        }
    }
}

/// A TOML table being read: reports unknown keys on creation, then hands out
/// typed fields, reporting wrong types as it goes.
struct Table<'a, 'i> {
    table: &'a DeTable<'i>,
    /// How messages name this table: "" for the top level, else "[deploy]"…
    ctx: String,
    /// Known keys offered as "did you mean"; such a key is not also reported
    /// as missing, since the typo error already says what to do.
    suggested: Vec<&'static str>,
}

impl<'a, 'i> Table<'a, 'i> {
    fn new(table: &'a DeTable<'i>, ctx: &str, known: &[&'static str], sink: &mut Sink<'_>) -> Self {
        let suggested = table
            .keys()
            .filter(|key| !known.contains(&key.get_ref().as_ref()))
            .filter_map(|key| unknown_key(sink, key, ctx, known))
            .collect();
        Table {
            table,
            ctx: ctx.to_string(),
            suggested,
        }
    }

    /// A table whose keys are checked elsewhere (the secrets' names).
    fn unchecked(table: &'a DeTable<'i>, ctx: &str) -> Self {
        Table {
            table,
            ctx: ctx.to_string(),
            suggested: Vec::new(),
        }
    }

    /// True if `key` is absent and no typo of it was reported.
    fn is_missing(&self, key: &str) -> bool {
        self.get(key).is_none() && !self.suggested.contains(&key)
    }

    fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.table.get(key)
    }

    fn key_span(&self, key: &str) -> Option<Span> {
        self.table.get_key_value(key).map(|(k, _)| k.span())
    }

    /// "`key`" at the top level, "`key` in [table]" below it.
    fn subject(&self, key: &str) -> String {
        subject(key, &self.ctx)
    }

    fn wrong_type(
        &self,
        sink: &mut Sink<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        want: &str,
        hint: Option<String>,
    ) {
        let message = format!(
            "{} must be {want}, found {}",
            self.subject(key),
            describe(value.get_ref())
        );
        match hint {
            Some(hint) => sink.error_hint(&value.span(), message, hint),
            None => sink.error(&value.span(), message),
        }
    }

    fn boolean(&self, sink: &mut Sink<'_>, key: &str) -> Option<Sp<bool>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Sp {
                value: *b,
                span: value.span(),
            }),
            _ => {
                self.wrong_type(sink, key, value, "true or false", None);
                None
            }
        }
    }

    fn string(&self, sink: &mut Sink<'_>, key: &str) -> Option<Sp<String>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Sp {
                value: s.to_string(),
                span: value.span(),
            }),
            _ => {
                self.wrong_type(sink, key, value, "a string", None);
                None
            }
        }
    }

    /// Durations are strings too, but a bare number gets its own hint.
    fn duration(&self, sink: &mut Sink<'_>, key: &str) -> Option<Sp<String>> {
        let value = self.get(key)?;
        if let DeValue::String(s) = value.get_ref() {
            return Some(Sp {
                value: s.to_string(),
                span: value.span(),
            });
        }
        let hint = match value.get_ref() {
            DeValue::Integer(_) => format!(
                "durations need a unit and quotes, e.g. {key} = \"{}s\"",
                sink.text(&value.span())
            ),
            _ => crate::validate::DURATION_HINT.to_string(),
        };
        self.wrong_type(sink, key, value, "a duration string", Some(hint));
        None
    }

    fn integer(&self, sink: &mut Sink<'_>, key: &str) -> Option<Sp<i128>> {
        let value = self.get(key)?;
        match value.get_ref() {
            // Too big even for i128: clamp, so the range check reports it.
            DeValue::Integer(i) => Some(Sp {
                value: int_value(i).unwrap_or(i128::MAX),
                span: value.span(),
            }),
            // `instances = "2"` is a common slip from env-var habits.
            DeValue::String(s) if s.trim().parse::<i64>().is_ok() => {
                let hint = format!("remove the quotes: {key} = {}", s.trim());
                self.wrong_type(sink, key, value, "an integer", Some(hint));
                None
            }
            _ => {
                self.wrong_type(sink, key, value, "an integer", None);
                None
            }
        }
    }

    /// A float; integers are taken as floats (`max_p99_ratio = 2`).
    fn number(&self, sink: &mut Sink<'_>, key: &str) -> Option<Sp<f64>> {
        let value = self.get(key)?;
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            // Too big for i128: as good as infinite, which the range check reports.
            DeValue::Integer(i) => Some(int_value(i).map_or(f64::INFINITY, |n| n as f64)),
            DeValue::String(s) if s.trim().parse::<f64>().is_ok() => {
                let hint = format!("remove the quotes: {key} = {}", s.trim());
                self.wrong_type(sink, key, value, "a number", Some(hint));
                return None;
            }
            _ => {
                self.wrong_type(sink, key, value, "a number", None);
                return None;
            }
        };
        // The parser only hands out floats Rust can read; be safe anyway.
        Some(Sp {
            value: number.unwrap_or(f64::NAN),
            span: value.span(),
        })
    }

    /// A memory size: an integer (bytes) or a string such as "512MiB".
    fn size(&self, sink: &mut Sink<'_>, key: &str) -> Option<Sp<String>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Sp {
                value: s.to_string(),
                span: value.span(),
            }),
            DeValue::Integer(_) => Some(Sp {
                value: sink.text(&value.span()).to_string(),
                span: value.span(),
            }),
            _ => {
                let hint = format!("write {key} = \"512MiB\" (or KiB, MiB, GiB; or bytes)");
                self.wrong_type(sink, key, value, "a size string", Some(hint));
                None
            }
        }
    }

    /// One string, or an array of them (`release_command`, `env_file`).
    fn string_or_array(&self, sink: &mut Sink<'_>, key: &str) -> Vec<Sp<String>> {
        match self.get(key).map(|v| v.get_ref()) {
            Some(DeValue::String(_)) => self.string(sink, key).into_iter().collect(),
            _ => self.string_array(sink, key, false),
        }
    }

    /// An array of strings (integers too when `ints`, written as strings).
    fn string_array(&self, sink: &mut Sink<'_>, key: &str, ints: bool) -> Vec<Sp<String>> {
        let Some(value) = self.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.wrong_type(sink, key, value, "an array of strings", None);
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| match item.get_ref() {
                DeValue::String(s) => Some(Sp {
                    value: s.to_string(),
                    span: item.span(),
                }),
                DeValue::Integer(_) if ints => Some(Sp {
                    value: sink.text(&item.span()).to_string(),
                    span: item.span(),
                }),
                other => {
                    sink.error(
                        &item.span(),
                        format!(
                            "items of {} must be strings, found {}",
                            self.subject(key),
                            describe(other)
                        ),
                    );
                    None
                }
            })
            .collect()
    }

    fn table(&self, sink: &mut Sink<'_>, key: &str) -> Option<&'a DeTable<'i>> {
        let value = self.get(key)?;
        match value.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.wrong_type(sink, key, value, "a table", table_hint(key, other));
                None
            }
        }
    }
}

/// "`key`" at the top level, "`key` in [table]" below it.
pub(crate) fn subject(key: &str, ctx: &str) -> String {
    if ctx.is_empty() {
        format!("`{key}`")
    } else {
        format!("`{key}` in {ctx}")
    }
}

fn int_value(i: &toml::de::DeInteger<'_>) -> Option<i128> {
    i128::from_str_radix(i.as_str(), i.radix()).ok()
}

/// "a string", "an integer"… for messages.
fn describe(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a datetime",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// How to write the tables people most often get wrong.
fn table_hint(key: &str, found: &DeValue<'_>) -> Option<String> {
    if key == "cron" {
        return Some(format!("write {CRON_EXAMPLE}"));
    }
    let hint = match (key, found) {
        ("processes", DeValue::Array(_)) => {
            "write [processes.NAME] (one table per process), not [[processes]]"
        }
        ("http", _) => "write http = { host = \"example.com\", path = \"/\" }",
        ("health", _) => "write health = { path = \"/up\" }",
        ("secrets", _) => "write [secrets] followed by KEY = { env = \"NAME\" } lines",
        ("accessories", _) => "write [accessories.NAME] followed by image = \"...\"",
        ("analysis", _) => {
            "write [deploy.analysis] followed by its keys, e.g. max_error_rate = 0.02"
        }
        _ => return None,
    };
    Some(hint.to_string())
}

/// Reports an unknown key; returns the known key it suggested, if any.
fn unknown_key(
    sink: &mut Sink<'_>,
    key: &Spanned<std::borrow::Cow<'_, str>>,
    ctx: &str,
    known: &[&'static str],
) -> Option<&'static str> {
    let name = key.get_ref().as_ref();
    let message = if ctx.is_empty() {
        format!("unknown top-level key `{name}`")
    } else {
        format!("unknown key `{name}` in {ctx}")
    };
    let close = closest(name, known);
    let hint = match close {
        Some(close) => format!("did you mean `{close}`?"),
        None => elsewhere(name, ctx).unwrap_or_else(|| valid_keys(ctx, known)),
    };
    sink.error_hint(&key.span(), message, hint);
    close
}

/// The known key most like `name`, if any is close enough to be a typo:
/// similar by Jaro-Winkler, or within two edits of a name long enough that
/// two edits are still a slip ("port" is not a typo of "host").
pub(crate) fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    let is_close = |k: &str, score: f64| {
        score >= 0.8 || (name.chars().count() >= 6 && strsim::levenshtein(name, k) <= 2)
    };
    known
        .iter()
        .map(|k| (*k, strsim::jaro_winkler(name, k)))
        .filter(|(k, score)| is_close(k, *score))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(k, _)| k)
}

/// Process keys written at the top level, and analysis or step keys written
/// in [deploy], are common slips; say where they go.
fn elsewhere(name: &str, ctx: &str) -> Option<String> {
    if ctx == "[deploy]" {
        if ANALYSIS_KEYS.contains(&name) {
            return Some(format!("`{name}` belongs in [deploy.analysis]"));
        }
        if STEP_KEYS.contains(&name) {
            return Some(format!("`{name}` belongs to a step: {STEPS_EXAMPLE}"));
        }
        return None;
    }
    if !ctx.is_empty() {
        return None;
    }
    if PROCESS_KEYS.contains(&name) {
        return Some(format!(
            "`{name}` belongs to a process: move it under [processes.NAME]"
        ));
    }
    if name == "steps" {
        return Some("`steps` belongs in [ci] (CI steps) or in [deploy] (canary steps)".into());
    }
    if DEPLOY_KEYS.contains(&name) {
        return Some(format!("`{name}` belongs in [deploy]"));
    }
    None
}

fn valid_keys(ctx: &str, known: &[&str]) -> String {
    let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
    let place = if ctx.is_empty() {
        "at the top level"
    } else {
        "here"
    };
    format!("valid keys {place} are {}", list.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        assert_eq!(closest("comand", PROCESS_KEYS), Some("command"));
        assert_eq!(closest("instance", PROCESS_KEYS), Some("instances"));
        assert_eq!(closest("stoptimeout", PROCESS_KEYS), Some("stop_timeout"));
        assert_eq!(closest("hots", HTTP_KEYS), Some("host"));
        assert_eq!(closest("port", HTTP_KEYS), None);
        assert_eq!(closest("xyzzy", PROCESS_KEYS), None);
        assert_eq!(closest("process", TOP_KEYS), Some("processes"));
        assert_eq!(closest("step", DEPLOY_KEYS), Some("steps"));
        assert_eq!(closest("stratgy", DEPLOY_KEYS), Some("strategy"));
        assert_eq!(closest("paus", STEP_KEYS), Some("pause"));
        assert_eq!(closest("windw", ANALYSIS_KEYS), Some("window"));
        assert_eq!(closest("max_error", ANALYSIS_KEYS), Some("max_error_rate"));
        assert_eq!(
            closest("failures", ANALYSIS_KEYS),
            Some("failures_tolerated")
        );
        // Analysis keys in [deploy] are not typos of deploy keys; `elsewhere`
        // says where they go.
        for key in ANALYSIS_KEYS.iter().chain(STEP_KEYS) {
            assert_eq!(closest(key, DEPLOY_KEYS), None, "{key}");
        }
    }
}
