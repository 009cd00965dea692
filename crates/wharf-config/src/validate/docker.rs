//! Validation of what containers add to `wharf.toml`: `runtime = "docker"`,
//! the image (`image` or a `[build]` table), secrets, limits, restart
//! policies and `[accessories.*]`.
//!
//! Keys that only mean something to the docker runtime are errors under the
//! process runtime (at the key, saying to set `runtime = "docker"`), rather
//! than being silently ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{DurationRule, ENV_KEY_HINT, check_name, duration, env_key_problem, int_in};
use crate::error::Sink;
use crate::raw::{
    self, RawAccessory, RawAccessoryHealth, RawBuild, RawSecret, RawSecretSource, Sp, Span,
};
use crate::{
    AccessoryConfig, AccessoryHealthCheck, DockerSettings, ImageBuild, PortSpec, ProcessConfig,
    Restart, RuntimeKind, SecretSource, VolumeSpec,
};

/// Defaults of the docker keys.
pub(crate) mod defaults {
    use std::time::Duration;

    pub const ACCESSORY_HEALTH_INTERVAL: Duration = Duration::from_secs(2);
    pub const ACCESSORY_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
    pub const ACCESSORY_HEALTH_RETRIES: u32 = 5;
    pub const ACCESSORY_START_TIMEOUT: Duration = Duration::from_secs(60);
}

/// The engine refuses memory limits below 6 MiB.
const MIN_MEMORY: u64 = 6 * 1024 * 1024;
const MAX_CPUS: f64 = 1024.0;
const DOCKER_HINT: &str = "set runtime = \"docker\" at the top of the file to run containers";

/// Reports a docker-only key used under the process runtime.
pub(super) fn needs_docker(span: &Span, what: &str, sink: &mut Sink<'_>) {
    sink.error_hint(
        span,
        format!("{what} needs runtime = \"docker\""),
        DOCKER_HINT,
    );
}

/// `build` and `image` → (host build command, docker settings).
pub(super) fn resolve_build(
    runtime: RuntimeKind,
    image: Option<Sp<String>>,
    build: Option<RawBuild>,
    sink: &mut Sink<'_>,
) -> (Option<String>, Option<DockerSettings>) {
    if runtime == RuntimeKind::Process {
        if let Some(image) = &image {
            needs_docker(&image.span, "`image`", sink);
        }
        return match build {
            Some(RawBuild::Command(c)) => (Some(c.value), None),
            Some(RawBuild::Table(t)) => {
                sink.error_hint(
                    &t.span,
                    "a [build] table needs runtime = \"docker\"",
                    "under the process runtime, write build = \"sh build.sh\" (a command run before the release is prepared)",
                );
                (t.command.map(|c| c.value), None)
            }
            None => (None, None),
        };
    }
    let mut settings = DockerSettings::default();
    if let Some(image) = image {
        if image.value.trim().is_empty() || image.value.chars().any(char::is_whitespace) {
            sink.error_hint(
                &image.span,
                format!("`image` must be an image reference, found {:?}", image.value),
                "write image = \"registry.example.com/shop:1.2\", or leave it out to build from the Dockerfile",
            );
        }
        settings.image = Some(image.value);
    }
    let command = match build {
        None => None,
        Some(RawBuild::Command(c)) => {
            sink.error_hint(
                &c.span,
                "under runtime = \"docker\", `build` is a table",
                format!(
                    "write [build] with command = {:?} (run before the image is built) and, if needed, dockerfile = \"Dockerfile\"",
                    c.value
                ),
            );
            None
        }
        Some(RawBuild::Table(t)) => {
            if settings.image.is_some()
                && (t.dockerfile.is_some()
                    || t.context.is_some()
                    || t.target.is_some()
                    || !t.args.is_empty())
            {
                sink.error_hint(
                    &t.span,
                    "[build] says how to build an image, but `image` names a prebuilt one",
                    "keep `image` to deploy that image, or remove it to build from the Dockerfile",
                );
            }
            let command = t.command.clone().map(|c| c.value);
            settings.build = resolve_image_build(t, "[build]", sink);
            command
        }
    };
    (command, Some(settings))
}

/// The image keys of a build table (`ctx`: `[build]` or an accessory's).
pub(super) fn resolve_image_build(
    t: raw::RawBuildTable,
    ctx: &str,
    sink: &mut Sink<'_>,
) -> ImageBuild {
    let mut image = ImageBuild::default();
    for (key, field) in [("dockerfile", &t.dockerfile), ("context", &t.context)] {
        if let Some(f) = field {
            check_relative(f, &raw::subject(key, ctx), sink);
        }
    }
    if let Some(dockerfile) = t.dockerfile {
        image.dockerfile = dockerfile.value;
    }
    if let Some(context) = t.context {
        image.context = context.value;
    }
    if let Some(target) = &t.target
        && target.value.trim().is_empty()
    {
        sink.error(&target.span, format!("`target` in {ctx} must not be empty"));
    }
    image.target = t.target.map(|t| t.value);
    let args_ctx = format!("{}.args]", ctx.trim_end_matches(']'));
    image.args = super::resolve_env(t.args, &args_ctx, sink);
    image
}

/// A path inside the app's directory: relative, without `..`.
fn check_relative(field: &Sp<String>, what: &str, sink: &mut Sink<'_>) {
    let path = std::path::Path::new(&field.value);
    let bad = field.value.trim().is_empty()
        || path.is_absolute()
        || path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir));
    if bad {
        sink.error_hint(
            &field.span,
            format!(
                "{what} must be a path inside the app's directory, found {:?}",
                field.value
            ),
            "write it relative to the directory of wharf.toml, without `..`",
        );
    }
}

/// `[secrets]` or an accessory's `secrets`; `env` is the plain env beside
/// them (a key in both is ambiguous).
pub(super) fn resolve_secrets(
    raw: Vec<RawSecret>,
    ctx: &str,
    env: &BTreeMap<String, String>,
    sink: &mut Sink<'_>,
) -> BTreeMap<String, SecretSource> {
    let mut secrets = BTreeMap::new();
    for secret in raw {
        let key = &secret.key;
        if let Some(problem) = env_key_problem(&key.value) {
            sink.error_hint(
                &key.span,
                format!("invalid secret name `{}` in {ctx}: {problem}", key.value),
                ENV_KEY_HINT,
            );
        }
        if env.contains_key(&key.value) {
            sink.error_hint(
                &key.span,
                format!("`{}` is both a secret and a plain env var", key.value),
                "keep one of them",
            );
        }
        let source = match secret.source {
            Some(RawSecretSource::Env(name)) => {
                if let Some(problem) = env_key_problem(&name.value) {
                    sink.error_hint(
                        &name.span,
                        format!(
                            "`env` of secret `{}` must name an environment variable: {problem}",
                            key.value
                        ),
                        ENV_KEY_HINT,
                    );
                }
                SecretSource::Env(name.value)
            }
            Some(RawSecretSource::File(path)) => {
                if !path.value.starts_with('/') {
                    sink.error_hint(
                        &path.span,
                        format!(
                            "`file` of secret `{}` must be an absolute path, found {:?}",
                            key.value, path.value
                        ),
                        "the server reads it when deploying; write e.g. file = \"/etc/wharf/secrets/db-password\"",
                    );
                }
                SecretSource::File(PathBuf::from(path.value))
            }
            None => continue,
        };
        secrets.insert(secret.key.value, source);
    }
    secrets
}

/// `memory` and `cpus` → (bytes, cpus).
pub(super) fn resolve_limits(
    memory: Option<Sp<String>>,
    cpus: Option<Sp<f64>>,
    ctx: &str,
    sink: &mut Sink<'_>,
) -> (Option<u64>, Option<f64>) {
    let memory = memory.and_then(|m| match parse_size(&m.value) {
        Some(bytes) if bytes >= MIN_MEMORY => Some(bytes),
        Some(_) => {
            sink.error(
                &m.span,
                format!(
                    "{} must be at least 6MiB, found {:?}",
                    raw::subject("memory", ctx),
                    m.value
                ),
            );
            None
        }
        None => {
            sink.error_hint(
                &m.span,
                format!(
                    "{} must be a size, found {:?}",
                    raw::subject("memory", ctx),
                    m.value
                ),
                "write e.g. \"512MiB\" or \"1GiB\" (also KiB, k, m, g, or a number of bytes)",
            );
            None
        }
    });
    let cpus = cpus.and_then(|c| {
        if c.value > 0.0 && c.value <= MAX_CPUS {
            Some(c.value)
        } else {
            sink.error(
                &c.span,
                format!(
                    "{} must be more than 0 and at most {MAX_CPUS}, found {}",
                    raw::subject("cpus", ctx),
                    sink.text(&c.span)
                ),
            );
            None
        }
    });
    (memory, cpus)
}

/// "512MiB", "1GiB", "512m", "1g", "100MB", "1048576" → bytes.
pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    let bytes = number * multiplier as f64;
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

pub(super) fn resolve_restart(raw: Option<Sp<String>>, ctx: &str, sink: &mut Sink<'_>) -> Restart {
    let Some(raw) = raw else {
        return Restart::default();
    };
    match raw.value.as_str() {
        "always" => Restart::Always,
        "on-failure" => Restart::OnFailure,
        "never" => Restart::Never,
        other => {
            sink.error_hint(
                &raw.span,
                format!(
                    "{} must be \"always\", \"on-failure\" or \"never\", found {other:?}",
                    raw::subject("restart", ctx)
                ),
                "\"always\" (the default) restarts after any exit; \"on-failure\" after a non-zero exit",
            );
            Restart::default()
        }
    }
}

pub(super) fn resolve_accessories(
    runtime: RuntimeKind,
    raw: Vec<RawAccessory>,
    processes: &BTreeMap<String, ProcessConfig>,
    sink: &mut Sink<'_>,
) -> BTreeMap<String, AccessoryConfig> {
    let mut out = BTreeMap::new();
    // Every name on the app's network: processes, accessories, aliases.
    let mut names: std::collections::BTreeSet<String> = processes
        .keys()
        .chain(raw.iter().map(|a| &a.name.value))
        .cloned()
        .collect();
    for a in raw {
        let ctx = format!("[accessories.{}]", a.name.value);
        if runtime == RuntimeKind::Process {
            needs_docker(&a.name.span, &format!("accessory `{}`", a.name.value), sink);
        }
        check_name(&a.name, "accessory name", sink);
        if processes.contains_key(&a.name.value) {
            sink.error_hint(
                &a.name.span,
                format!("accessory `{}` has the name of a process", a.name.value),
                "both are reached by name on the app's network; rename one",
            );
        }
        if let (Some(image), Some(build)) = (&a.image, &a.build) {
            sink.error_hint(
                &build.span,
                format!("{ctx} has both `image` and `build`"),
                format!(
                    "keep image = {:?} to run that image, or `build` to build one from the app's directory",
                    image.value
                ),
            );
        }
        let image = match a.image {
            Some(image) if image.value.trim().is_empty() => {
                sink.error(&image.span, format!("`image` in {ctx} must not be empty"));
                String::new()
            }
            Some(image) => image.value,
            None => String::new(),
        };
        let build = a.build.map(|b| {
            resolve_image_build(b, &format!("[accessories.{}.build]", a.name.value), sink)
        });
        let env = super::resolve_env(a.env, &format!("[accessories.{}.env]", a.name.value), sink);
        let secrets = resolve_secrets(a.secrets, &ctx, &env, sink);
        let ports = resolve_ports(&a.ports, &ctx, sink);
        let volumes = resolve_volumes(&a.volumes, &ctx, RuntimeKind::Docker, sink);
        let aliases = resolve_aliases(&a.aliases, &ctx, processes, &mut names, sink);
        let (memory, cpus) = resolve_limits(a.memory, a.cpus, &ctx, sink);
        let health = a
            .health
            .map(|h| resolve_accessory_health(h, &a.name.value, sink));
        if let Some(command) = &a.command
            && command.value.trim().is_empty()
        {
            sink.error_hint(
                &command.span,
                format!("`command` in {ctx} must not be empty"),
                "leave it out to run the image's CMD",
            );
        }
        out.insert(
            a.name.value.clone(),
            AccessoryConfig {
                name: a.name.value,
                image,
                build,
                command: a.command.map(|c| c.value),
                env,
                secrets,
                ports,
                volumes,
                aliases,
                memory,
                cpus,
                health,
            },
        );
    }
    out
}

/// An accessory's `aliases`: DNS names (letters, digits, `_.-`), none
/// taken by a process, an accessory or another alias.
fn resolve_aliases(
    aliases: &[Sp<String>],
    ctx: &str,
    processes: &BTreeMap<String, ProcessConfig>,
    names: &mut std::collections::BTreeSet<String>,
    sink: &mut Sink<'_>,
) -> Vec<String> {
    let mut out = Vec::new();
    for alias in aliases {
        let name = &alias.value;
        let mut chars = name.chars();
        let valid = name.len() <= 63
            && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid {
            sink.error_hint(
                &alias.span,
                format!("alias {name:?} in {ctx} is not a network name"),
                "use letters, digits, `_`, `.` and `-` (at most 63), starting with a letter or digit",
            );
        } else if !names.insert(name.clone()) {
            let what = if processes.contains_key(name) {
                "a process"
            } else {
                "another accessory or alias"
            };
            sink.error_hint(
                &alias.span,
                format!("alias {name:?} in {ctx} is already the name of {what}"),
                "each name on the app's network reaches one thing; remove or rename it",
            );
        } else {
            out.push(name.clone());
        }
    }
    out
}

fn resolve_accessory_health(
    raw: RawAccessoryHealth,
    accessory: &str,
    sink: &mut Sink<'_>,
) -> AccessoryHealthCheck {
    let ctx = format!("[accessories.{accessory}.health]");
    let what = |key: &str| raw::subject(key, &ctx);
    if let Some(command) = &raw.command
        && command.value.trim().is_empty()
    {
        sink.error(
            &command.span,
            format!("{} must not be empty", what("command")),
        );
    }
    AccessoryHealthCheck {
        command: raw.command.map(|c| c.value).unwrap_or_default(),
        interval: duration(
            raw.interval.as_ref(),
            &what("interval"),
            DurationRule::POSITIVE,
            defaults::ACCESSORY_HEALTH_INTERVAL,
            sink,
        ),
        timeout: duration(
            raw.timeout.as_ref(),
            &what("timeout"),
            DurationRule::POSITIVE,
            defaults::ACCESSORY_HEALTH_TIMEOUT,
            sink,
        ),
        retries: int_in(
            raw.retries,
            &ctx,
            "retries",
            1..=100,
            defaults::ACCESSORY_HEALTH_RETRIES,
            sink,
        ),
        start_timeout: duration(
            raw.start_timeout.as_ref(),
            &what("start_timeout"),
            DurationRule::POSITIVE,
            defaults::ACCESSORY_START_TIMEOUT,
            sink,
        ),
    }
}

/// `[HOST_IP:]HOST_PORT:CONTAINER_PORT[/PROTO]`, or a bare port used on
/// both sides. IPv6 host addresses go in brackets.
/// `ports` of an accessory or a process.
pub(super) fn resolve_ports(ports: &[Sp<String>], ctx: &str, sink: &mut Sink<'_>) -> Vec<PortSpec> {
    ports
        .iter()
        .filter_map(|p| match parse_port(&p.value) {
            Ok(port) => Some(port),
            Err(why) => {
                sink.error_hint(
                    &p.span,
                    format!("port {:?} in {ctx} {why}", p.value),
                    "write \"[HOST_IP:]HOST_PORT:CONTAINER_PORT[/udp]\", e.g. \"127.0.0.1:5432:5432\"",
                );
                None
            }
        })
        .collect()
}

/// `volumes` of an accessory or a process. Under the process runtime a
/// target is a path inside the release directory (relative, no `..`).
pub(super) fn resolve_volumes(
    volumes: &[Sp<String>],
    ctx: &str,
    runtime: RuntimeKind,
    sink: &mut Sink<'_>,
) -> Vec<VolumeSpec> {
    volumes
        .iter()
        .filter_map(|v| {
            let parsed = match runtime {
                RuntimeKind::Docker => parse_volume(&v.value),
                RuntimeKind::Process => parse_release_volume(&v.value),
            };
            match parsed {
                Ok(volume) => Some(volume),
                Err(why) => {
                    let hint = match runtime {
                        RuntimeKind::Docker => "write \"NAME:/path/in/container\" (a named volume), \"/host/path:/path/in/container[:ro]\" or \"./path/in/app:/path/in/container[:ro]\"",
                        RuntimeKind::Process => "write \"NAME:path/in/the/release\" (a named volume) or \"/host/path:path/in/the/release\"",
                    };
                    sink.error_hint(&v.span, format!("volume {:?} in {ctx} {why}", v.value), hint);
                    None
                }
            }
        })
        .collect()
}

/// A process-runtime volume: like [`parse_volume`], its target a path
/// relative to the release directory.
pub(crate) fn parse_release_volume(text: &str) -> Result<VolumeSpec, String> {
    let (first, rest) = text
        .split_once(':')
        .ok_or("must be SOURCE:TARGET or SOURCE:TARGET:ro")?;
    let (target, mode) = match rest.split_once(':') {
        Some((t, m)) => (t, Some(m)),
        None => (rest, None),
    };
    let target = target.trim_end_matches('/');
    let bad = target.is_empty()
        || target.starts_with('/')
        || target
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(format!(
            "has target `{target}`: under the process runtime it is a path inside the release directory, such as `storage` or `public/uploads`"
        ));
    }
    if mode == Some("ro") {
        return Err(
            "is read-only (`:ro`), which the process runtime cannot enforce on a linked directory; drop `:ro` or use runtime = \"docker\"".to_string(),
        );
    }
    let mut spec = parse_volume(&format!(
        "{first}:/{target}{}",
        mode.map(|m| format!(":{m}")).unwrap_or_default()
    ))?;
    spec.target = target.to_owned();
    Ok(spec)
}

pub(crate) fn parse_port(text: &str) -> Result<PortSpec, String> {
    let (rest, protocol) = match text.rsplit_once('/') {
        Some((rest, proto)) if proto == "tcp" || proto == "udp" => (rest, proto),
        Some((_, proto)) => return Err(format!("has protocol `{proto}`: only tcp and udp exist")),
        None => (text, "tcp"),
    };
    let port = |p: &str| -> Result<u16, String> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("has `{p}` where a port (1 to 65535) belongs"))
    };
    let (host_ip, ports) = if let Some(v6) = rest.strip_prefix('[') {
        let (ip, after) = v6
            .split_once("]:")
            .ok_or_else(|| "has an unclosed `[`".to_string())?;
        (ip.to_string(), after)
    } else {
        match rest.matches(':').count() {
            0 | 1 => ("127.0.0.1".to_string(), rest),
            2 => {
                let (ip, after) = rest.split_once(':').unwrap_or(("", rest));
                (ip.to_string(), after)
            }
            _ => return Err("has too many `:`".to_string()),
        }
    };
    if host_ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("has `{host_ip}` where an IP address belongs"));
    }
    let (host_port, container_port) = match ports.split_once(':') {
        Some((h, c)) => (port(h)?, port(c)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    Ok(PortSpec {
        host_ip,
        host_port,
        container_port,
        protocol: protocol.to_string(),
    })
}

/// `NAME:/target[:ro|:rw]` or `/host:/target[:ro|:rw]`.
pub(crate) fn parse_volume(text: &str) -> Result<VolumeSpec, String> {
    let parts: Vec<&str> = text.split(':').collect();
    let (source, target, mode) = match parts.as_slice() {
        [s, t] => (*s, *t, None),
        [s, t, m] => (*s, *t, Some(*m)),
        _ => return Err("must be SOURCE:TARGET or SOURCE:TARGET:ro".to_string()),
    };
    let read_only = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
        Some(other) => return Err(format!("has mode `{other}`: only ro and rw exist")),
    };
    if !target.starts_with('/') {
        return Err(format!(
            "has target `{target}`: it must be an absolute path"
        ));
    }
    let named = |s: &str| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    if let Some(rest) = source.strip_prefix("./") {
        if rest.is_empty() || rest.split('/').any(|c| c == "..") {
            return Err(format!(
                "has source `{source}`: a relative source is a path inside the app's directory, without `..`"
            ));
        }
    } else if !source.starts_with('/') && !named(source) {
        return Err(format!(
            "has source `{source}`: write a volume name (letters, digits, `_.-`), an absolute host path, or ./path in the app's directory"
        ));
    }
    Ok(VolumeSpec {
        source: source.to_string(),
        target: target.to_string(),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        let check =
            |text: &str, expect: Option<u64>| assert_eq!(parse_size(text), expect, "{text}");
        check("512MiB", Some(512 << 20));
        check("1GiB", Some(1 << 30));
        check("512m", Some(512 << 20));
        check("1g", Some(1 << 30));
        check("1.5g", Some(3 << 29));
        check("100MB", Some(100_000_000));
        check("1048576", Some(1 << 20));
        check("12 parsecs", None);
        check("", None);
        check("-1m", None);
    }

    #[test]
    fn ports() {
        let check = |text: &str, expect: Result<&str, &str>| {
            let got = parse_port(text).map(|p| p.to_string());
            assert_eq!(got.as_deref().map_err(String::as_str), expect, "{text}");
        };
        check("5432", Ok("127.0.0.1:5432:5432"));
        check("8080:80", Ok("127.0.0.1:8080:80"));
        check("0.0.0.0:8080:80", Ok("0.0.0.0:8080:80"));
        check("[::1]:8080:80/udp", Ok("[::1]:8080:80/udp"));
        check("53:53/udp", Ok("127.0.0.1:53:53/udp"));
        check(
            "8080:80/sctp",
            Err("has protocol `sctp`: only tcp and udp exist"),
        );
        check("x:80", Err("has `x` where a port (1 to 65535) belongs"));
        check(
            "localhost:80:80",
            Err("has `localhost` where an IP address belongs"),
        );
        check("0:80", Err("has `0` where a port (1 to 65535) belongs"));
    }

    #[test]
    fn volumes() {
        let check = |text: &str, expect: Result<&str, &str>| {
            let got = parse_volume(text).map(|v| v.to_string());
            assert_eq!(got.as_deref().map_err(String::as_str), expect, "{text}");
        };
        check(
            "db-data:/var/lib/postgresql/data",
            Ok("db-data:/var/lib/postgresql/data"),
        );
        check("/srv/conf:/etc/conf:ro", Ok("/srv/conf:/etc/conf:ro"));
        check("/srv/conf:/etc/conf:rw", Ok("/srv/conf:/etc/conf"));
        check("data", Err("must be SOURCE:TARGET or SOURCE:TARGET:ro"));
        check(
            "data:relative",
            Err("has target `relative`: it must be an absolute path"),
        );
        check("./data:/data", Ok("./data:/data"));
        check(
            "./../data:/data",
            Err(
                "has source `./../data`: a relative source is a path inside the app's directory, without `..`",
            ),
        );
        check(
            "data/x:/data",
            Err(
                "has source `data/x`: write a volume name (letters, digits, `_.-`), an absolute host path, or ./path in the app's directory",
            ),
        );
        check("data:/data:z", Err("has mode `z`: only ro and rw exist"));
    }

    #[test]
    fn release_volumes() {
        let check = |text: &str, expect: Result<&str, &str>| {
            let got = parse_release_volume(text).map(|v| v.to_string());
            assert_eq!(got.as_deref().map_err(String::as_str), expect, "{text}");
        };
        check("storage:storage", Ok("storage:storage"));
        check("uploads:public/uploads/", Ok("uploads:public/uploads"));
        check("/srv/media:media", Ok("/srv/media:media"));
        check(
            "storage:../up",
            Err(
                "has target `../up`: under the process runtime it is a path inside the release directory, such as `storage` or `public/uploads`",
            ),
        );
        check(
            "storage:storage:ro",
            Err(
                "is read-only (`:ro`), which the process runtime cannot enforce on a linked directory; drop `:ro` or use runtime = \"docker\"",
            ),
        );
    }
}
