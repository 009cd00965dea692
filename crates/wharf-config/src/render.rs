//! `wharf config show`: the resolved config written back as TOML.
//!
//! Written by hand rather than through serde so the layout is fixed and
//! readable: every default spelled out, durations as "10s", processes in name
//! order with `[processes.NAME.*]` sub-tables. Parsing the output gives back
//! an equal [`AppConfig`] (tested), so it doubles as a canonical form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::{
    AccessoryConfig, AnalysisSettings, AppConfig, CanaryStep, CiConfig, CiImage, CiRun, CiStep,
    CronEntry, DeploySettings, DockerSettings, HealthCheck, HttpRoute, ImageBuild, ProcessConfig,
    ProcessImage, SecretSource, Strategy, TlsSource,
};

/// First line of the output. Holds nothing that varies (path, time) so that
/// the output of two identical configs is identical.
const HEADER: &str = "# resolved wharf.toml: every default spelled out";

pub(crate) fn to_toml(config: &AppConfig) -> String {
    let mut out = String::new();
    line(&mut out, HEADER);
    kv(&mut out, "name", &string(&config.name));
    kv(&mut out, "runtime", &string(config.runtime.as_str()));
    if let Some(image) = config.docker.as_ref().and_then(|d| d.image.as_ref()) {
        kv(&mut out, "image", &string(image));
    }
    if let (None, Some(build)) = (&config.docker, &config.build) {
        kv(&mut out, "build", &string(build));
    }
    match config.release_command.as_slice() {
        [] => {}
        [one] => kv(&mut out, "release_command", &string(one)),
        many => kv(&mut out, "release_command", &list(many.to_vec())),
    }
    if let Some(path) = &config.asset_path {
        kv(&mut out, "asset_path", &string(path));
    }
    if !config.env_files.is_empty() {
        kv(&mut out, "env_file", &list(config.env_files.clone()));
    }
    if let Some(docker) = &config.docker
        && (docker.image.is_none() || config.build.is_some())
    {
        build_table(&mut out, config.build.as_deref(), docker);
    }
    // Always written, even empty, so the reader sees there is no app env.
    env_table(&mut out, "env", &config.env);
    if !config.secrets.is_empty() || !config.secret_env_files.is_empty() {
        secrets_table(&mut out, "secrets", &config.secrets);
        if !config.secret_env_files.is_empty() {
            kv(&mut out, "env_file", &list(config.secret_env_files.clone()));
        }
    }
    for process in config.processes.values() {
        process_tables(&mut out, process);
    }
    for entry in config.cron.values() {
        cron_table(&mut out, entry);
    }
    if let Some(ci) = &config.ci {
        ci_table(&mut out, ci);
    }
    for accessory in config.accessories.values() {
        accessory_tables(&mut out, accessory);
    }
    deploy_table(&mut out, &config.deploy);
    out
}

fn build_table(out: &mut String, command: Option<&str>, d: &DockerSettings) {
    header(out, "build");
    if let Some(command) = command {
        kv(out, "command", &string(command));
    }
    if d.image.is_some() {
        // Only the host command applies to a prebuilt image.
        return;
    }
    let b = &d.build;
    kv(out, "dockerfile", &string(&b.dockerfile));
    kv(out, "context", &string(&b.context));
    if let Some(target) = &b.target {
        kv(out, "target", &string(target));
    }
    if !b.args.is_empty() {
        env_table(out, "build.args", &b.args);
    }
}

/// Where each secret comes from, never a value (wharf does not know it
/// until a deploy reads it, and does not keep it then).
fn secrets_table(out: &mut String, table: &str, secrets: &BTreeMap<String, SecretSource>) {
    header(out, table);
    for (key, source) in secrets {
        let from = match source {
            SecretSource::Env(name) => format!("{{ env = {} }}", string(name)),
            SecretSource::File(path) => {
                format!("{{ file = {} }}", string(&path.to_string_lossy()))
            }
            // Only a deployed release has these (read from `env_file`).
            SecretSource::EnvFile { path, .. } => {
                line(
                    out,
                    &format!("# {key} from env_file {} [secret]", path.display()),
                );
                continue;
            }
        };
        line(out, &format!("{} = {from} # [secret]", bare_or_quoted(key)));
    }
}

fn accessory_tables(out: &mut String, a: &AccessoryConfig) {
    let table = format!("accessories.{}", bare_or_quoted(&a.name));
    header(out, &table);
    match &a.build {
        Some(b) => kv(out, "build", &inline_build(b)),
        None => kv(out, "image", &string(&a.image)),
    }
    if let Some(command) = &a.command {
        kv(out, "command", &string(command));
    }
    if !a.aliases.is_empty() {
        kv(out, "aliases", &list(a.aliases.clone()));
    }
    kv(
        out,
        "ports",
        &list(a.ports.iter().map(ToString::to_string).collect()),
    );
    kv(
        out,
        "volumes",
        &list(a.volumes.iter().map(ToString::to_string).collect()),
    );
    limits(out, a.memory, a.cpus);
    if !a.env.is_empty() {
        env_table(out, &format!("{table}.env"), &a.env);
    }
    if !a.secrets.is_empty() {
        secrets_table(out, &format!("{table}.secrets"), &a.secrets);
    }
    if let Some(h) = &a.health {
        header(out, &format!("{table}.health"));
        kv(out, "command", &string(&h.command));
        kv(out, "interval", &duration(h.interval));
        kv(out, "timeout", &duration(h.timeout));
        kv(out, "retries", &h.retries.to_string());
        kv(out, "start_timeout", &duration(h.start_timeout));
    }
}

/// An image build as an inline table (an accessory's or a process's).
fn inline_build(b: &ImageBuild) -> String {
    let mut fields = vec![
        format!("dockerfile = {}", string(&b.dockerfile)),
        format!("context = {}", string(&b.context)),
    ];
    if let Some(target) = &b.target {
        fields.push(format!("target = {}", string(target)));
    }
    if !b.args.is_empty() {
        let args: Vec<String> = b
            .args
            .iter()
            .map(|(k, v)| format!("{} = {}", bare_or_quoted(k), string(v)))
            .collect();
        fields.push(format!("args = {{ {} }}", args.join(", ")));
    }
    format!("{{ {} }}", fields.join(", "))
}

fn limits(out: &mut String, memory: Option<u64>, cpus: Option<f64>) {
    if let Some(memory) = memory {
        kv(out, "memory", &string(&size(memory)));
    }
    if let Some(cpus) = cpus {
        kv(out, "cpus", &float(cpus));
    }
}

/// Bytes in the largest binary unit that divides them ("512MiB").
fn size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

fn process_tables(out: &mut String, p: &ProcessConfig) {
    let table = format!("processes.{}", bare_or_quoted(&p.name));
    header(out, &table);
    kv(out, "command", &string(&p.command));
    match &p.image {
        Some(ProcessImage::Image(image)) => kv(out, "image", &string(image)),
        Some(ProcessImage::Build(b)) => kv(out, "build", &inline_build(b)),
        None => {}
    }
    if let Some(entrypoint) = &p.entrypoint {
        kv(out, "entrypoint", &string(entrypoint));
    }
    kv(out, "instances", &p.instances.to_string());
    kv(out, "stop_timeout", &duration(p.stop_timeout));
    kv(out, "restart", &string(p.restart.as_str()));
    if let Some(port) = p.port {
        kv(out, "port", &port.to_string());
    }
    limits(out, p.memory, p.cpus);
    if !p.env_files.is_empty() {
        kv(out, "env_file", &list(p.env_files.clone()));
    }
    if !p.volumes.is_empty() {
        kv(
            out,
            "volumes",
            &list(p.volumes.iter().map(ToString::to_string).collect()),
        );
    }
    if !p.ports.is_empty() {
        kv(
            out,
            "ports",
            &list(p.ports.iter().map(ToString::to_string).collect()),
        );
    }
    if !p.env.is_empty() {
        env_table(out, &format!("{table}.env"), &p.env);
    }
    if let Some(http) = &p.http {
        http_table(out, &table, http);
    }
    if let Some(health) = &p.health {
        health_table(out, &table, health);
    }
}

fn http_table(out: &mut String, process_table: &str, http: &HttpRoute) {
    header(out, &format!("{process_table}.http"));
    match http.hosts.as_slice() {
        [] => {}
        [one] => kv(out, "host", &string(one)),
        many => kv(out, "hosts", &list(many.to_vec())),
    }
    kv(out, "path", &string(&http.path_prefix));
    match &http.tls {
        None => {}
        Some(TlsSource::Acme) => kv(out, "tls", "true"),
        Some(TlsSource::Files { cert, key }) => kv(
            out,
            "tls",
            &format!("{{ cert = {}, key = {} }}", string(cert), string(key)),
        ),
    }
    if http.hsts {
        kv(out, "hsts", "true");
    }
    kv(out, "max_body", &string(&size(http.max_body)));
    kv(out, "timeout", &duration(http.timeout));
}

fn health_table(out: &mut String, process_table: &str, health: &HealthCheck) {
    header(out, &format!("{process_table}.health"));
    kv(out, "path", &string(&health.path));
    kv(out, "interval", &duration(health.interval));
    kv(out, "timeout", &duration(health.timeout));
    kv(out, "threshold", &health.threshold.to_string());
}

fn cron_table(out: &mut String, c: &CronEntry) {
    header(out, &format!("cron.{}", bare_or_quoted(&c.name)));
    kv(out, "schedule", &string(c.schedule.expr()));
    kv(out, "time_zone", &string(c.schedule.time_zone().name()));
    kv(out, "command", &string(&c.command));
    kv(out, "process", &string(&c.process));
    kv(out, "catch_up", &c.catch_up.to_string());
    kv(out, "timeout", &duration(c.timeout));
}

/// `[ci]` with one item per line, a group's steps indented under it.
fn ci_table(out: &mut String, ci: &CiConfig) {
    header(out, "ci");
    match ci.image {
        Some(CiImage::Build) => kv(out, "image", &string("build")),
        None => {}
    }
    line(out, "steps = [");
    let run = |r: &CiRun| format!("{{ name = {}, run = {} }}", string(&r.name), string(&r.run));
    for step in &ci.steps {
        match step {
            CiStep::Run(r) => line(out, &format!("  {},", run(r))),
            CiStep::Group(g) => {
                line(
                    out,
                    &format!(
                        "  {{ group = {}, parallel = {}, steps = [",
                        string(&g.name),
                        g.parallel
                    ),
                );
                for r in &g.steps {
                    line(out, &format!("    {},", run(r)));
                }
                line(out, "  ] },");
            }
        }
    }
    line(out, "]");
}

fn deploy_table(out: &mut String, deploy: &DeploySettings) {
    header(out, "deploy");
    if let Some(branch) = &deploy.branch {
        kv(out, "branch", &string(branch));
    }
    kv(out, "health_timeout", &duration(deploy.health_timeout));
    kv(out, "drain_timeout", &duration(deploy.drain_timeout));
    kv(out, "retain", &deploy.retain.to_string());
    match &deploy.strategy {
        Strategy::BlueGreen { bake } => {
            kv(out, "strategy", &string("blue-green"));
            kv(out, "bake", &duration(*bake));
        }
        Strategy::Canary { steps } => {
            kv(out, "strategy", &string("canary"));
            let steps: Vec<String> = steps.iter().map(step).collect();
            kv(out, "steps", &format!("[{}]", steps.join(", ")));
        }
    }
    if let Some(notify) = &deploy.notify {
        kv(out, "notify", &string(notify));
    }
    analysis_table(out, &deploy.analysis);
}

/// `{ weight = 10, pause = "30s" }`, without `pause` when there is none.
fn step(step: &CanaryStep) -> String {
    match step.pause {
        Some(pause) => format!(
            "{{ weight = {}, pause = {} }}",
            step.weight,
            duration(pause)
        ),
        None => format!("{{ weight = {} }}", step.weight),
    }
}

fn analysis_table(out: &mut String, a: &AnalysisSettings) {
    header(out, "deploy.analysis");
    kv(out, "interval", &duration(a.interval));
    kv(out, "window", &duration(a.window));
    kv(out, "min_requests", &a.min_requests.to_string());
    kv(out, "min_errors", &a.min_errors.to_string());
    kv(out, "max_error_rate", &float(a.max_error_rate));
    kv(
        out,
        "max_error_rate_increase",
        &float(a.max_error_rate_increase),
    );
    kv(out, "max_p99_ratio", &float(a.max_p99_ratio));
    kv(out, "p99_floor", &duration(a.p99_floor));
    kv(out, "failures_tolerated", &a.failures_tolerated.to_string());
}

fn env_table(out: &mut String, table: &str, env: &BTreeMap<String, String>) {
    header(out, table);
    for (key, value) in env {
        kv(out, &bare_or_quoted(key), &string(value));
    }
}

/// A TOML array of strings.
fn list(items: Vec<String>) -> String {
    let items: Vec<String> = items.iter().map(|i| string(i)).collect();
    format!("[{}]", items.join(", "))
}

fn header(out: &mut String, table: &str) {
    out.push('\n');
    line(out, &format!("[{table}]"));
}

fn kv(out: &mut String, key: &str, value: &str) {
    line(out, &format!("{key} = {value}"));
}

fn line(out: &mut String, text: &str) {
    // Writing to a String cannot fail.
    let _ = writeln!(out, "{text}");
}

/// A TOML string literal, escaped by the toml crate.
fn string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Validated names and env keys are always bare keys, but configs built in
/// code are not validated, so quote anything else rather than emit bad TOML.
fn bare_or_quoted(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { key.to_string() } else { string(key) }
}

/// A TOML float that reads back as the same `f64` ("0.02", "2.0").
fn float(x: f64) -> String {
    toml::Value::Float(x).to_string()
}

fn duration(d: Duration) -> String {
    string(&humantime::format_duration(d).to_string())
}
