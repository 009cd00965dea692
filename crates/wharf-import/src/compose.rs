//! `docker-compose.yml` → `wharf.toml`.
//!
//! Services with `build:` become processes of one app (they must build the
//! same image: wharf builds one per app); image-only services become
//! accessories. A build service that others wait for with
//! `condition: service_completed_successfully` (the usual migration job)
//! becomes the `release_command`. Compose interpolates `${VAR}` from the
//! environment it runs in; wharf does not, so a value that is exactly
//! `${VAR}` becomes a secret read from the server's environment, a
//! `${VAR:-default}` takes its default, and anything else is warned about.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::common::{
    PortMap, Values, Warnings, abs_dir, dir_name, join_key, parse_duration, parse_port, resolve,
    shell_join, show, tidy_relative, unique_name,
};
use crate::model::{Accessory, AccessoryHealth, App, Build, Health, Http, Process, Secret, set};
use crate::yaml::{Entry, Node, Pos};
use crate::{Import, ImportError, app_name, header, parse_root};

pub fn import(path: &Path, source: &str, name: Option<&str>) -> Result<Import, ImportError> {
    let file = path.display().to_string();
    let root = parse_root(&file, source, "compose", "compose file")?;
    let base = abs_dir(path);
    let mut c = Ctx {
        w: Warnings::new(&file),
        base: base.clone(),
        top_secrets: Vec::new(),
    };

    let Some(services) = root.get("services") else {
        return Err(ImportError::NoServices { file });
    };
    let Some(services) = services.as_map() else {
        return Err(wrong_type(
            &c.w,
            services.pos,
            "services",
            "a mapping of services",
            services,
        ));
    };

    let mut project_name = None;
    for e in root.as_map().unwrap_or_default() {
        let k = e.key.as_str();
        match k {
            "services" => {}
            "name" => project_name = c.lit(&e.value, "name"),
            "version" => c.w.add(
                e.key_pos,
                k,
                "obsolete in compose and not needed by wharf; ignored",
            ),
            "volumes" => c.top_volumes(&e.value),
            "secrets" => c.top_secrets(&e.value),
            "networks" => c.w.add(
                e.key_pos,
                k,
                "not carried over: wharf puts the app and its accessories on one network of its own, where each is reachable by its name",
            ),
            "configs" => c.w.add(
                e.key_pos,
                k,
                "not carried over: wharf has no configs; copy the files into the image, or mount them into an accessory with an absolute host path in `volumes`",
            ),
            "include" => c.w.add(
                e.key_pos,
                k,
                "included files are not read; import each of them, or merge them into this file first (`docker compose config`)",
            ),
            _ if k.starts_with("x-") => c.w.add(
                e.key_pos,
                k,
                "extension field, not carried over (anchors defined in it and merged into services were)",
            ),
            _ => c.w.add(e.key_pos, k, "not a compose key wharf knows; not carried over"),
        }
    }

    let name = app_name(name, &[project_name, dir_name(&base)], &file)?;

    // Each service once, in file order, checked to be a mapping.
    let mut all = Vec::new();
    for e in services {
        if e.value.as_map().is_none() {
            return Err(wrong_type(
                &c.w,
                e.value.pos,
                &format!("services.{}", e.key),
                "a mapping of keys",
                &e.value,
            ));
        }
        all.push(e);
    }

    let completed = waited_to_complete(&all);
    let mut builds = Vec::new();
    let mut images = Vec::new();
    let mut unbuildable = Vec::new();
    for e in &all {
        if let Some(b) = e.value.get("build") {
            match c.build(&format!("services.{}.build", e.key), b) {
                Ok(build) => builds.push((*e, build)),
                Err(reason) => {
                    c.w.add(
                        b.pos,
                        format!("services.{}.build", e.key),
                        format!("service not imported: {reason}"),
                    );
                    unbuildable.push(format!("`{}`: {reason}", e.key));
                }
            }
        } else if e.value.get("image").is_some() {
            images.push(*e);
        } else {
            c.w.add(
                e.key_pos,
                format!("services.{}", e.key),
                "has neither `build` nor `image`; not imported",
            );
        }
    }
    if builds.is_empty() {
        if !unbuildable.is_empty() {
            return Err(ImportError::Unbuildable {
                file,
                reasons: unbuildable.join("; "),
            });
        }
        let names: Vec<&str> = images.iter().map(|e| e.key.as_str()).collect();
        return Err(ImportError::NoBuildService {
            file,
            images: if names.is_empty() {
                String::new()
            } else {
                format!(" (only images: {})", names.join(", "))
            },
        });
    }

    // The app's image is the first build that is not a one-off job.
    let main = builds
        .iter()
        .find(|(e, _)| !completed.contains(e.key.as_str()))
        .unwrap_or(&builds[0])
        .1
        .clone();
    let mut app = App {
        name,
        build: main.clone(),
        ..App::default()
    };

    let mut process_env = Vec::new();
    let mut process_entries: Vec<&Entry> = Vec::new();
    let mut release = None;
    let mut used_names = HashSet::new();
    for (e, build) in &builds {
        let key = format!("services.{}", e.key);
        if *build != main {
            c.w.add(
                e.key_pos,
                &key,
                format!(
                    "not imported: it builds a different image ({}) than the app's ({}); wharf builds one image per app, so deploy it as an app of its own with its own wharf.toml",
                    describe_build(build),
                    describe_build(&main)
                ),
            );
            continue;
        }
        if completed.contains(e.key.as_str())
            && release.is_none()
            && let Some(cmd) = e.value.get("command")
            && let Some(cmd) = c.command(&format!("{key}.command"), cmd)
        {
            release = Some((*e, cmd));
            continue;
        }
        let (process, env) = c.process(e, &mut used_names, &mut app.secrets);
        app.processes.push(process);
        process_entries.push(*e);
        process_env.push(env);
    }

    // Compose has no hosts: every process with a port would be routed at
    // any host, path `/`, which wharf refuses for more than one.
    let mut routed: Option<String> = None;
    for (p, e) in app.processes.iter_mut().zip(&process_entries) {
        if p.http.is_none() {
            continue;
        }
        match &routed {
            None => routed = Some(p.name.clone()),
            Some(first) => {
                let pos = e
                    .value
                    .as_map()
                    .and_then(|m| m.iter().find(|f| f.key == "ports"))
                    .map_or(e.key_pos, |f| f.key_pos);
                c.w.add(
                    pos,
                    format!("services.{}.ports", e.key),
                    format!(
                        "`{first}` is already routed at every host, path `/`; this process keeps its port but is neither routed by wharf's proxy nor health-checked: give one of them `http.host` or `http.path`, and `health`"
                    ),
                );
                p.http = None;
                p.health = None;
            }
        }
    }

    // Env every process shares goes to [env] (the release command gets it
    // too); the rest stays with its process.
    let shared: Vec<(String, String)> = match process_env.split_first() {
        Some((first, rest)) => first
            .iter()
            .filter(|kv| rest.iter().all(|env| env.contains(kv)))
            .cloned()
            .collect(),
        None => Vec::new(),
    };
    for (p, env) in app.processes.iter_mut().zip(process_env) {
        p.env = env.into_iter().filter(|kv| !shared.contains(kv)).collect();
    }
    app.env = shared;

    if let Some((e, cmd)) = release {
        c.release(e, cmd, &mut app);
    }

    let mut accessory_names = HashSet::new();
    for e in images {
        if let Some(a) = c.accessory(e, &mut accessory_names) {
            app.accessories.push(a);
        }
    }

    let warnings = c.w.len();
    let toml = app.render(&header(&file, "compose", warnings));
    Ok(Import {
        toml,
        warnings: c.w.into_sorted(),
    })
}

fn wrong_type(
    w: &Warnings,
    pos: Pos,
    key: &str,
    expected: &'static str,
    found: &Node,
) -> ImportError {
    ImportError::WrongType {
        location: w.location(pos),
        key: key.to_owned(),
        expected,
        found: found.describe().to_owned(),
    }
}

/// Services some other service waits for with
/// `condition: service_completed_successfully`: one-off jobs.
fn waited_to_complete<'a>(services: &[&'a Entry]) -> HashSet<&'a str> {
    let mut out = HashSet::new();
    for e in services {
        let Some(deps) = e.value.get("depends_on").and_then(Node::as_map) else {
            continue;
        };
        for d in deps {
            if d.value.get("condition").and_then(Node::as_str)
                == Some("service_completed_successfully")
            {
                out.insert(d.key.as_str());
            }
        }
    }
    // Only names of services that exist count (a typo is compose's problem).
    services
        .iter()
        .map(|e| e.key.as_str())
        .filter(|k| out.contains(k))
        .collect()
}

fn describe_build(b: &Build) -> String {
    let mut s = format!(
        "context `{}`, dockerfile `{}`",
        b.context.as_deref().unwrap_or("."),
        b.dockerfile.as_deref().unwrap_or("Dockerfile")
    );
    if let Some(t) = &b.target {
        s.push_str(&format!(", target `{t}`"));
    }
    if !b.args.is_empty() {
        s.push_str(", with build args");
    }
    s
}

/// A value after compose's `${VAR}` interpolation, as far as it can be
/// known without the environment compose would run in.
#[derive(Debug, PartialEq)]
enum Interp {
    /// No variable (`$$` unescaped to `$`).
    Literal(String),
    /// Exactly one `${VAR}`, `$VAR`, `${VAR:?msg}` or `${VAR:-default}`.
    Var {
        name: String,
        default: Option<String>,
    },
    /// Variables mixed with text, or forms wharf cannot express; with the
    /// text the defaults give when every variable has one.
    Mixed {
        vars: Vec<String>,
        defaulted: Option<String>,
    },
}

fn interpolate(s: &str) -> Interp {
    enum Seg {
        Lit(String),
        Var(String, Option<String>, bool),
    }
    let mut segs: Vec<Seg> = Vec::new();
    let mut lit = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '$' {
            lit.push(c);
            i += 1;
            continue;
        }
        match chars.get(i + 1) {
            Some('$') => {
                lit.push('$');
                i += 2;
            }
            Some('{') => {
                // Find the matching `}` (defaults may nest `${…}`).
                let mut depth = 0;
                let mut end = None;
                for (j, ch) in chars.iter().enumerate().skip(i + 1) {
                    match ch {
                        '{' => depth += 1,
                        '}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = Some(j);
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    lit.extend(&chars[i..]);
                    break;
                };
                let inner: String = chars[i + 2..end].iter().collect();
                let name_len = inner
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(inner.len());
                let (name, op) = inner.split_at(name_len);
                let (default, complex) =
                    if op.is_empty() || op.starts_with(":?") || op.starts_with('?') {
                        (None, false)
                    } else if let Some(d) = op.strip_prefix(":-").or_else(|| op.strip_prefix('-')) {
                        (Some(d.to_owned()), d.contains('$'))
                    } else {
                        (None, true)
                    };
                if !lit.is_empty() {
                    segs.push(Seg::Lit(std::mem::take(&mut lit)));
                }
                segs.push(Seg::Var(
                    name.to_owned(),
                    default,
                    complex || name.is_empty(),
                ));
                i = end + 1;
            }
            Some(n) if n.is_ascii_alphabetic() || *n == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                if !lit.is_empty() {
                    segs.push(Seg::Lit(std::mem::take(&mut lit)));
                }
                segs.push(Seg::Var(chars[i + 1..j].iter().collect(), None, false));
                i = j;
            }
            _ => {
                lit.push('$');
                i += 1;
            }
        }
    }
    if !lit.is_empty() {
        segs.push(Seg::Lit(lit));
    }
    let vars: Vec<String> = segs
        .iter()
        .filter_map(|s| match s {
            Seg::Var(n, _, _) => Some(n.clone()),
            Seg::Lit(_) => None,
        })
        .collect();
    match segs.as_slice() {
        [Seg::Var(name, default, false)] => Interp::Var {
            name: name.clone(),
            default: default.clone(),
        },
        _ if vars.is_empty() => Interp::Literal(
            segs.into_iter()
                .map(|s| match s {
                    Seg::Lit(l) => l,
                    Seg::Var(..) => String::new(),
                })
                .collect(),
        ),
        _ => {
            let mut defaulted = Some(String::new());
            for seg in &segs {
                match (seg, defaulted.as_mut()) {
                    (Seg::Lit(l), Some(out)) => out.push_str(l),
                    (Seg::Var(_, Some(d), false), Some(out)) => out.push_str(d),
                    _ => defaulted = None,
                }
            }
            Interp::Mixed { vars, defaulted }
        }
    }
}

/// An environment entry of a service, once read.
enum EnvValue {
    Plain(String),
    Secret(Secret),
}

struct Ctx {
    w: Warnings,
    /// The compose file's directory, absolute: relative host paths are
    /// relative to it.
    base: PathBuf,
    /// Top-level `secrets`: name → where its value comes from.
    top_secrets: Vec<(String, Option<Secret>)>,
}

impl Values for Ctx {
    const DURATION: &'static str = "a duration (like `30s` or `1m30s`)";

    fn warnings(&mut self) -> &mut Warnings {
        &mut self.w
    }

    /// A scalar's text after interpolation, or a warning and `None`.
    fn lit(&mut self, node: &Node, key: &str) -> Option<String> {
        let text = self.w.scalar(node, key)?;
        match interpolate(text) {
            Interp::Literal(s) => Some(s),
            Interp::Var {
                name,
                default: Some(d),
            } => {
                self.w.add(
                    node.pos,
                    key,
                    format!(
                        "`{text}`: wharf does not read `{name}` from the environment like compose; its default `{d}` was written instead"
                    ),
                );
                Some(d)
            }
            Interp::Var { name, .. } => {
                self.w.add(
                    node.pos,
                    key,
                    format!(
                        "`{text}` is read from the environment compose runs in, which wharf does not do; not carried over: write the value of `{name}` here"
                    ),
                );
                None
            }
            Interp::Mixed {
                vars,
                defaulted: Some(d),
            } => {
                self.w.add(
                    node.pos,
                    key,
                    format!(
                        "`{text}`: wharf does not read {} from the environment like compose; the defaults were written instead: `{d}`",
                        vars.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
                Some(d)
            }
            Interp::Mixed { vars, .. } => {
                self.w.add(
                    node.pos,
                    key,
                    format!(
                        "`{text}` interpolates {} from the environment compose runs in, which wharf does not do; not carried over: write the final value here",
                        vars.iter().map(|v| format!("`{v}`")).collect::<Vec<_>>().join(", ")
                    ),
                );
                None
            }
        }
    }
}

impl Ctx {
    /// `command`/`entrypoint`: a string (kept as written: compose splits it
    /// with shell quoting, as wharf does) or a list (joined with quoting).
    fn command(&mut self, key: &str, node: &Node) -> Option<String> {
        if let Some(items) = node.as_seq() {
            return self.argv(key, items).map(|argv| shell_join(&argv));
        }
        if node.is_null() {
            return None;
        }
        self.lit(node, key)
    }

    /// `build:`, in wharf's terms: paths relative to the app directory
    /// (the compose file's), the Dockerfile no longer relative to the
    /// context. `Err` says why it cannot be built by wharf.
    fn build(&mut self, key: &str, node: &Node) -> Result<Build, String> {
        let mut context = ".".to_owned();
        let mut dockerfile = "Dockerfile".to_owned();
        let mut build = Build::default();
        if node.as_map().is_none() {
            context = self
                .lit(node, key)
                .ok_or("its build context is not a plain path")?;
        }
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "context" => {
                    context = self.lit(&e.value, &k).ok_or("its build context is not a plain path")?;
                }
                "dockerfile" => {
                    dockerfile = self
                        .lit(&e.value, &k)
                        .ok_or("its dockerfile is not a plain path")?;
                }
                "target" => build.target = self.lit(&e.value, &k),
                "args" => build.args = self.build_args(&k, &e.value),
                "dockerfile_inline" => {
                    return Err(
                        "`dockerfile_inline` is not supported; write the Dockerfile to a file and set `dockerfile`"
                            .into(),
                    );
                }
                "cache_from" | "cache_to" | "no_cache" | "pull" => self.w.add(
                    e.key_pos,
                    k,
                    "build cache settings are not carried over; wharf builds with the engine's default cache",
                ),
                "secrets" | "ssh" => self.w.add(
                    e.key_pos,
                    k,
                    "build secrets and SSH forwarding are not supported by wharf builds yet; not carried over",
                ),
                "platforms" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf builds for the engine's own platform; not carried over",
                ),
                "tags" | "labels" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf tags and labels the images it builds itself (wharf/<app>:<version>); not carried over",
                ),
                _ => self.w.add(e.key_pos, k, "not supported by wharf builds; not carried over"),
            }
        }
        if context.contains("://") || context.starts_with("git@") {
            return Err(format!(
                "its context `{context}` is a remote URL; wharf builds from a directory next to wharf.toml"
            ));
        }
        let tidy_context = tidy_relative(&context).ok_or_else(|| {
            format!(
                "its context `{context}` is outside the compose file's directory; wharf builds from a directory inside the app's"
            )
        })?;
        // Compose takes `dockerfile` relative to the context; wharf relative
        // to the app directory.
        let tidy_dockerfile = tidy_relative(&format!("{tidy_context}/{dockerfile}"))
            .ok_or_else(|| {
                format!(
                    "its dockerfile `{dockerfile}` is outside the compose file's directory; move it into the app"
                )
            })?;
        build.context = Some(tidy_context);
        build.dockerfile = Some(tidy_dockerfile);
        Ok(build)
    }

    fn build_args(&mut self, key: &str, node: &Node) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (k, kpos, v) in self.pairs(key, node) {
            let item_key = join_key(key, &k);
            match v {
                Some(v) => {
                    if let Some(v) = self.lit(&v, &item_key) {
                        set(&mut out, &k, v);
                    }
                }
                None => self.w.add(
                    kpos,
                    item_key,
                    "takes its value from the environment compose runs in, which wharf does not do; not carried over: give it a value",
                ),
            }
        }
        out
    }

    /// A mapping (`KEY: value`) or a list (`- KEY=value`, `- KEY`) as
    /// key/value pairs; `None` for a key without a value.
    fn pairs(&mut self, key: &str, node: &Node) -> Vec<(String, Pos, Option<Node>)> {
        let mut out = Vec::new();
        if let Some(map) = node.as_map() {
            for e in map {
                let v = (!e.value.is_null()).then(|| e.value.clone());
                out.push((e.key.clone(), e.key_pos, v));
            }
        } else if let Some(items) = node.as_seq() {
            for item in items {
                let Some(text) = item.as_str() else {
                    self.w.add(
                        item.pos,
                        key,
                        format!(
                            "expected `KEY=value`, found {}; not carried over",
                            item.describe()
                        ),
                    );
                    continue;
                };
                match text.split_once('=') {
                    Some((k, v)) => out.push((
                        k.to_owned(),
                        item.pos,
                        Some(Node {
                            pos: item.pos,
                            kind: crate::yaml::Kind::Scalar {
                                text: v.to_owned(),
                                quoted: true,
                            },
                        }),
                    )),
                    None => out.push((text.to_owned(), item.pos, None)),
                }
            }
        } else if !node.is_null() {
            self.w.add(
                node.pos,
                key,
                format!(
                    "expected a mapping or a list, found {}; not carried over",
                    node.describe()
                ),
            );
        }
        out
    }

    /// `environment:` of a service. `table` prefixes `env` and `secrets` in
    /// wharf.toml: empty for the app's, `accessories.NAME.` for an
    /// accessory's.
    fn environment(&mut self, key: &str, node: &Node, table: &str) -> Vec<(String, EnvValue)> {
        let mut out = Vec::new();
        for (k, kpos, v) in self.pairs(key, node) {
            let item_key = join_key(key, &k);
            if !self.w.env_key(kpos, &item_key, &k) {
                continue;
            }
            let Some(v) = v else {
                self.w.add(
                    kpos,
                    &item_key,
                    format!(
                        "compose passes `{k}` through from the environment it runs in; wharf reads it from the wharf server's environment at deploy time: added as [secrets] {k} = {{ env = \"{k}\" }}, export it there"
                    ),
                );
                set(&mut out, &k, EnvValue::Secret(Secret::Env(k.clone())));
                continue;
            };
            let Some(text) = self.w.scalar(&v, &item_key) else {
                continue;
            };
            match interpolate(text) {
                Interp::Var {
                    name,
                    default: None,
                } => {
                    self.w.add(
                        v.pos,
                        &item_key,
                        format!(
                            "compose reads `{text}` from the environment it runs in; wharf reads it from the wharf server's environment at deploy time: added as [secrets] {k} = {{ env = \"{name}\" }}, export `{name}` there"
                        ),
                    );
                    set(&mut out, &k, EnvValue::Secret(Secret::Env(name)));
                }
                // The value is never repeated in the warning.
                Interp::Literal(value) if looks_secret(&k, &value) => {
                    self.w.add(
                        v.pos,
                        &item_key,
                        format!(
                            "`{k}` looks like a secret, so its value was not written to wharf.toml: added as [{table}secrets] {k} = {{ env = \"{k}\" }}; export `{k}` in the wharf server's environment, set to the value written here (a deploy fails until it is), or move it to [{table}env] if it is not a secret"
                        ),
                    );
                    set(&mut out, &k, EnvValue::Secret(Secret::Env(k.clone())));
                }
                _ => {
                    if let Some(value) = self.lit(&v, &item_key) {
                        set(&mut out, &k, EnvValue::Plain(value));
                    }
                }
            }
        }
        out
    }

    /// Service `secrets:` (files mounted at `/run/secrets/NAME`) as wharf
    /// secrets, which are env vars. A `X_FILE=/run/secrets/NAME` variable
    /// (the convention of the official images) becomes `X` itself.
    fn service_secrets(&mut self, key: &str, node: &Node, env: &mut Vec<(String, EnvValue)>) {
        let Some(items) = node.as_seq() else {
            self.w.add(
                node.pos,
                key,
                format!(
                    "expected a list of secret names, found {}; not carried over",
                    node.describe()
                ),
            );
            return;
        };
        for (i, item) in items.iter().enumerate() {
            let item_key = format!("{key}[{i}]");
            let (source, target) = match (item.as_str(), item.get("source").and_then(Node::as_str))
            {
                (Some(s), _) => (s.to_owned(), s.to_owned()),
                (None, Some(s)) => {
                    let target = item
                        .get("target")
                        .and_then(Node::as_str)
                        .unwrap_or(s)
                        .to_owned();
                    (s.to_owned(), target)
                }
                (None, None) => {
                    self.w.add(
                        item.pos,
                        item_key,
                        "expected a secret name; not carried over",
                    );
                    continue;
                }
            };
            let Some(secret) = self
                .top_secrets
                .iter()
                .find(|(n, _)| *n == source)
                .map(|(_, s)| s.clone())
            else {
                self.w.add(
                    item.pos,
                    item_key,
                    format!("no top-level secret `{source}` is defined; not carried over"),
                );
                continue;
            };
            let Some(secret) = secret else {
                self.w.add(
                    item.pos,
                    item_key,
                    format!("the top-level secret `{source}` could not be carried over (see its warning)"),
                );
                continue;
            };
            let mount = if target.starts_with('/') {
                target.clone()
            } else {
                format!("/run/secrets/{target}")
            };
            let via_file_var = env.iter().position(|(k, v)| {
                k.ends_with("_FILE") && matches!(v, EnvValue::Plain(p) if *p == mount)
            });
            let var = match via_file_var {
                Some(idx) => {
                    let (file_key, _) = env.remove(idx);
                    file_key.trim_end_matches("_FILE").to_owned()
                }
                None => secret_var_name(&source),
            };
            let from = match &secret {
                Secret::Env(v) => format!("the server's environment variable `{v}`"),
                Secret::File(f) => format!("the file {f} on the server"),
            };
            let how = match via_file_var {
                Some(_) => format!(
                    "compose mounted it as {mount} for `{var}_FILE`; wharf passes its value directly as `{var}`, from {from}"
                ),
                None => format!(
                    "compose mounted it as the file {mount}; wharf passes its value as the env var `{var}` instead, from {from}: make the app read the variable"
                ),
            };
            self.w.add(item.pos, item_key, how);
            set(env, &var, EnvValue::Secret(secret));
        }
    }

    fn top_secrets(&mut self, node: &Node) {
        let Some(map) = node.as_map() else {
            self.w.add(
                node.pos,
                "secrets",
                "expected a mapping of secrets; not carried over",
            );
            return;
        };
        for e in map {
            let key = format!("secrets.{}", e.key);
            let mut source = None;
            for f in e.value.as_map().unwrap_or_default() {
                let k = join_key(&key, &f.key);
                match f.key.as_str() {
                    "file" => {
                        if let Some(p) = self.lit(&f.value, &k) {
                            let abs = if p.starts_with('/') {
                                p.clone()
                            } else {
                                let abs = resolve(&self.base, &p);
                                self.w.add(
                                    f.value.pos,
                                    &k,
                                    format!(
                                        "`{p}` resolved to {abs}: wharf reads secret files by absolute path on the server at deploy time; make sure it is there"
                                    ),
                                );
                                abs
                            };
                            source = Some(Secret::File(abs));
                        }
                    }
                    "environment" => {
                        source = self.lit(&f.value, &k).map(Secret::Env);
                    }
                    "external" => self.w.add(
                        f.key_pos,
                        k,
                        "external secrets (swarm) are not supported; use `file` or `environment`",
                    ),
                    _ => self
                        .w
                        .add(f.key_pos, k, "not supported by wharf; not carried over"),
                }
            }
            if e.value.as_map().is_none() {
                self.w.add(
                    e.value.pos,
                    &key,
                    "expected `file:` or `environment:`; not carried over",
                );
            }
            self.top_secrets.push((e.key.clone(), source));
        }
    }

    fn top_volumes(&mut self, node: &Node) {
        let Some(map) = node.as_map() else {
            if !node.is_null() {
                self.w.add(
                    node.pos,
                    "volumes",
                    "expected a mapping of volumes; not carried over",
                );
            }
            return;
        };
        for e in map {
            for f in self.w.map(&e.value, &format!("volumes.{}", e.key)) {
                let k = format!("volumes.{}.{}", e.key, f.key);
                let msg = match f.key.as_str() {
                    "external" => format!(
                        "wharf creates the named volume `{}` when an accessory first needs it; an existing volume is used only if it has that name",
                        e.key
                    ),
                    "name" => format!(
                        "wharf names the volume after its key, `{}`; data in a volume of another name is not moved",
                        e.key
                    ),
                    _ => "volume drivers and options are not supported by wharf; not carried over"
                        .into(),
                };
                self.w.add(f.key_pos, k, msg);
            }
        }
    }

    /// The ports that could be read, each with its index and position.
    fn ports(&mut self, key: &str, node: &Node) -> Vec<(usize, Pos, PortMap)> {
        let mut out = Vec::new();
        for (i, item) in self.w.list(node, key).iter().enumerate() {
            let k = format!("{key}[{i}]");
            let parsed = if item.as_map().is_some() {
                self.long_port(&k, item)
            } else {
                self.lit(item, &k).map(|t| parse_port(&t))
            };
            match parsed {
                Some(Ok(p)) => out.push((i, item.pos, p)),
                Some(Err(why)) => self.w.add(item.pos, k, format!("{why}; not carried over")),
                None => {}
            }
        }
        out
    }

    fn long_port(&mut self, key: &str, node: &Node) -> Option<Result<PortMap, String>> {
        let mut target = None;
        let mut published = None;
        let mut host_ip = None;
        let mut protocol = "tcp".to_owned();
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "target" => target = Some(self.lit(&e.value, &k)?),
                "published" => published = Some(self.lit(&e.value, &k)?),
                "host_ip" => host_ip = Some(self.lit(&e.value, &k)?),
                "protocol" => protocol = self.lit(&e.value, &k)?,
                _ => self
                    .w
                    .add(e.key_pos, k, "not supported by wharf; not carried over"),
            }
        }
        let Some(target) = target else {
            return Some(Err("no `target` port".into()));
        };
        let mut spec = String::new();
        if let Some(ip) = &host_ip {
            if ip.contains(':') {
                spec.push_str(&format!("[{ip}]:"));
            } else {
                spec.push_str(&format!("{ip}:"));
            }
        }
        if let Some(p) = &published {
            spec.push_str(&format!("{p}:"));
        } else if host_ip.is_some() {
            spec.push(':');
        }
        spec.push_str(&format!("{target}/{protocol}"));
        Some(parse_port(&spec))
    }

    /// `volumes:` of an accessory, in wharf's `SOURCE:TARGET[:ro]` form.
    fn volumes(&mut self, key: &str, node: &Node) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self.w.list(node, key).iter().enumerate() {
            let k = format!("{key}[{i}]");
            let parsed = if item.as_map().is_some() {
                self.long_volume(&k, item)
            } else {
                self.lit(item, &k)
                    .and_then(|t| self.short_volume(&k, item.pos, &t))
            };
            let Some((source, target, read_only)) = parsed else {
                continue;
            };
            let Some(source) = source else {
                self.w.add(
                    item.pos,
                    k,
                    format!(
                        "an anonymous volume loses its data when the accessory is recreated; not carried over: name it, e.g. `data:{target}`"
                    ),
                );
                continue;
            };
            let source = if source.starts_with('/') || !looks_like_path(&source) {
                source
            } else if source.starts_with('~') {
                self.w.add(
                    item.pos,
                    k,
                    format!("`{source}`: wharf needs an absolute host path; not carried over: write the full path"),
                );
                continue;
            } else {
                let abs = resolve(&self.base, &source);
                self.w.add(
                    item.pos,
                    &k,
                    format!(
                        "relative host path `{source}` resolved to {abs} (wharf takes absolute host paths); check that it is right on the server"
                    ),
                );
                abs
            };
            let ro = if read_only { ":ro" } else { "" };
            out.push(format!("{source}:{target}{ro}"));
        }
        out
    }

    /// `[SOURCE:]TARGET[:MODE]` → (source, target, read-only).
    fn short_volume(
        &mut self,
        key: &str,
        pos: Pos,
        text: &str,
    ) -> Option<(Option<String>, String, bool)> {
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [t] => (None, *t, None),
            [s, t] => (Some(*s), *t, None),
            [s, t, m] => (Some(*s), *t, Some(*m)),
            _ => {
                self.w.add(
                    pos,
                    key,
                    format!("`{text}` is not `SOURCE:TARGET[:MODE]`; not carried over"),
                );
                return None;
            }
        };
        let mut read_only = false;
        for m in mode.unwrap_or("").split(',').filter(|m| !m.is_empty()) {
            match m {
                "ro" => read_only = true,
                "rw" => {}
                other => self.w.add(
                    pos,
                    key,
                    format!("volume option `{other}` is not supported by wharf; not carried over"),
                ),
            }
        }
        Some((source.map(str::to_owned), target.to_owned(), read_only))
    }

    fn long_volume(&mut self, key: &str, node: &Node) -> Option<(Option<String>, String, bool)> {
        let mut kind = "volume".to_owned();
        let mut source = None;
        let mut target = None;
        let mut read_only = false;
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "type" => kind = self.lit(&e.value, &k)?,
                "source" => source = self.lit(&e.value, &k),
                "target" => target = self.lit(&e.value, &k),
                "read_only" => read_only = e.value.as_bool().unwrap_or(false),
                _ => self
                    .w
                    .add(e.key_pos, k, "not supported by wharf; not carried over"),
            }
        }
        if kind != "volume" && kind != "bind" {
            self.w.add(
                node.pos,
                key,
                format!("`type: {kind}` is not supported by wharf (named volumes and host paths are); not carried over"),
            );
            return None;
        }
        let Some(target) = target else {
            self.w.add(node.pos, key, "no `target`; not carried over");
            return None;
        };
        Some((source, target, read_only))
    }

    /// A compose `healthcheck` as an accessory's health command.
    fn accessory_health(&mut self, key: &str, node: &Node) -> Option<AccessoryHealth> {
        let mut health = AccessoryHealth::default();
        let mut command = None;
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "test" => command = self.health_test(&k, &e.value),
                "interval" => health.interval = self.duration(&e.value, &k),
                "timeout" => health.timeout = self.duration(&e.value, &k),
                "start_period" => health.start_timeout = self.duration(&e.value, &k),
                "retries" => health.retries = self.int(&e.value, &k, 1, 100).map(|n| n as u32),
                "disable" => {
                    if e.value.as_bool() == Some(true) {
                        return None;
                    }
                }
                _ => self
                    .w
                    .add(e.key_pos, k, "not supported by wharf; not carried over"),
            }
        }
        if node.as_map().is_none() {
            self.w
                .add(node.pos, key, "expected a mapping; not carried over");
            return None;
        }
        if node.get("test").is_none() {
            self.w.add(
                node.pos,
                key,
                "no `test`: compose used the image's own HEALTHCHECK, which wharf does not read; not carried over: write the command as `health.command`",
            );
        }
        health.command = command?;
        Some(health)
    }

    /// `test:` as an argv string: `CMD` args are joined with quoting,
    /// `CMD-SHELL` and a plain string need a shell, so `sh -c '…'`.
    fn health_test(&mut self, key: &str, node: &Node) -> Option<String> {
        if let Some(items) = node.as_seq() {
            let argv = self.argv(key, items)?;
            return match argv.split_first() {
                Some((first, rest)) if first == "CMD" && !rest.is_empty() => Some(shell_join(rest)),
                Some((first, rest)) if first == "CMD-SHELL" && !rest.is_empty() => {
                    Some(shell_join(&["sh".into(), "-c".into(), rest.join(" ")]))
                }
                Some((first, _)) if first == "NONE" => None,
                _ => {
                    self.w.add(
                        node.pos,
                        key,
                        "expected `[\"CMD\", …]` or `[\"CMD-SHELL\", \"…\"]`; not carried over",
                    );
                    None
                }
            };
        }
        let text = self.lit(node, key)?;
        Some(shell_join(&["sh".into(), "-c".into(), text]))
    }

    /// `deploy:` → instances, memory, cpus, restart; warns about the rest.
    fn deploy(&mut self, key: &str, node: &Node, p: &mut Limits) {
        for e in self.w.map(node, key) {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "replicas" => {
                    p.instances = self
                        .int(&e.value, &k, 1, 64)
                        .map(|n| (n as u32, e.value.pos, k.clone()));
                }
                "resources" => {
                    for r in self.w.map(&e.value, &k) {
                        let rk = join_key(&k, &r.key);
                        if r.key != "limits" {
                            self.w.add(
                                r.key_pos,
                                rk,
                                "wharf sets limits, not reservations; not carried over",
                            );
                            continue;
                        }
                        for l in self.w.map(&r.value, &rk) {
                            let lk = join_key(&rk, &l.key);
                            match l.key.as_str() {
                                "memory" => p.memory = self.memory(&l.value, &lk),
                                "cpus" => p.cpus = self.cpus(&l.value, &lk),
                                _ => self.w.add(
                                    l.key_pos,
                                    lk,
                                    "not supported by wharf; not carried over",
                                ),
                            }
                        }
                    }
                }
                "restart_policy" => {
                    for r in self.w.map(&e.value, &k) {
                        let rk = join_key(&k, &r.key);
                        if r.key == "condition" {
                            let policy = match r.value.as_str() {
                                Some("none") => Some("never"),
                                Some("on-failure") => Some("on-failure"),
                                Some("any") => Some("always"),
                                _ => None,
                            };
                            p.restart = match (policy, r.value.as_str()) {
                                (Some(policy), Some(written)) => Some(RestartSetting {
                                    policy,
                                    written: written.to_owned(),
                                    pos: r.value.pos,
                                    key: rk,
                                }),
                                _ => {
                                    self.w.add(r.value.pos, rk, format!("{} is not `none`, `on-failure` or `any`; not carried over", show(&r.value)));
                                    None
                                }
                            };
                        } else {
                            self.w.add(
                                r.key_pos,
                                rk,
                                "wharf restarts with its own backoff; not carried over",
                            );
                        }
                    }
                }
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "a swarm setting wharf has no equivalent for; not carried over",
                ),
            }
        }
    }

    fn restart(&mut self, node: &Node, key: &str) -> Option<RestartSetting> {
        let text = self.lit(node, key)?;
        let (policy, extra) = match text.split_once(':') {
            Some((p, n)) => (p.to_owned(), Some(n.to_owned())),
            None => (text.clone(), None),
        };
        let mapped = match policy.as_str() {
            "no" => "never",
            "always" | "unless-stopped" => "always",
            "on-failure" => "on-failure",
            _ => {
                self.w.add(
                    node.pos,
                    key,
                    format!("`{text}` is not `no`, `always`, `on-failure` or `unless-stopped`; not carried over"),
                );
                return None;
            }
        };
        if let Some(n) = extra {
            self.w.add(
                node.pos,
                key,
                format!("wharf restarts with backoff and no retry limit; the limit of {n} restarts is not carried over"),
            );
        }
        Some(RestartSetting {
            policy: mapped,
            written: policy,
            pos: node.pos,
            key: key.to_owned(),
        })
    }

    fn process(
        &mut self,
        e: &Entry,
        used: &mut HashSet<String>,
        secrets: &mut Vec<(String, Secret)>,
    ) -> (Process, Vec<(String, String)>) {
        let svc = format!("services.{}", e.key);
        let name = unique_name(&e.key, "web", |n| used.contains(n));
        used.insert(name.clone());
        let mut p = Process {
            renamed_from: (name != e.key).then(|| svc.clone()),
            name,
            ..Process::default()
        };
        let mut limits = Limits::default();
        let mut env = Vec::new();
        let mut ports = Vec::new();
        let mut healthcheck = None;
        let map = e.value.as_map().unwrap_or_default();
        // Environment first: `secrets` may rewrite `X_FILE` variables.
        if let Some(env_node) = e.value.get("environment") {
            env = self.environment(&format!("{svc}.environment"), env_node, "");
        }
        for f in map {
            let k = join_key(&svc, &f.key);
            let v = &f.value;
            match f.key.as_str() {
                "build" | "environment" => {}
                "command" => {
                    p.command = self.command(&k, v);
                    if p.command.is_none() && !v.is_null() {
                        self.w.add(
                            f.key_pos,
                            k,
                            "imported without `command`, so this process runs the image's CMD until you set one",
                        );
                    }
                }
                "ports" => ports = self.ports(&k, v),
                "healthcheck" => healthcheck = Some(f),
                "deploy" => self.deploy(&k, v, &mut limits),
                "scale" => limits.instances = self.int(v, &k, 1, 64).map(|n| (n as u32, v.pos, k.clone())),
                "mem_limit" => limits.memory = self.memory(v, &k),
                "cpus" => limits.cpus = self.cpus(v, &k),
                "restart" => limits.restart = self.restart(v, &k),
                "stop_grace_period" => p.stop_timeout = self.duration(v, &k),
                "secrets" => self.service_secrets(&k, v, &mut env),
                "image" => self.w.add(
                    f.key_pos,
                    k,
                    "wharf tags the image it builds as wharf/<app>:<version>; this name is not used",
                ),
                "entrypoint" => self.w.add(
                    f.key_pos,
                    k,
                    "wharf keeps the image's ENTRYPOINT; not carried over: set it in the Dockerfile",
                ),
                "volumes" => self.w.add(
                    f.key_pos,
                    k,
                    "app processes have no volumes in wharf (their containers are replaced on every deploy); not carried over: keep state in an accessory or an external store",
                ),
                "expose" => self.w.add(
                    f.key_pos,
                    k,
                    "not needed: processes and accessories reach each other on the app's network; `ports` says which port the proxy routes to",
                ),
                _ => self.service_key(f, &k, true),
            }
        }
        if let Some((n, _, _)) = limits.instances {
            p.instances = Some(n);
        }
        p.memory = limits.memory;
        p.cpus = limits.cpus;
        if let Some(r) = &limits.restart
            && r.written == "unless-stopped"
        {
            self.w.add(
                r.pos,
                &r.key,
                "`unless-stopped` was written as `restart = \"always\"`, which means the same under wharf: an instance that exits on its own is started again after a backoff, whatever its exit code, and only a deploy, a rollback or the server's shutdown stops it; nothing to change (`on-failure` would restart it only after a non-zero exit)",
            );
        }
        p.restart = limits.restart.map(|r| r.policy);

        // The first TCP port is where the proxy sends HTTP.
        for (i, pos, port) in &ports {
            let k = format!("{svc}.ports[{i}]");
            if port.udp {
                self.w.add(
                    *pos,
                    k,
                    "wharf routes HTTP (TCP) only; this UDP port is not carried over",
                );
                continue;
            }
            if p.port.is_some() {
                self.w.add(
                    *pos,
                    k,
                    format!("wharf routes HTTP to one port per process ({}); port {} is not carried over", p.port.unwrap_or_default(), port.container_port),
                );
                continue;
            }
            p.port = Some(port.container_port);
            if let Some(host) = port.host_port {
                self.w.add(
                    *pos,
                    k,
                    format!(
                        "compose published it on host port {host}; wharf's proxy routes HTTP to container port {} instead (`http`), the host port is not used",
                        port.container_port
                    ),
                );
            }
        }
        if let Some(port) = p.port {
            p.http = Some(Http {
                host: None,
                path: "/".into(),
            });
            p.health = Some(self.process_health(&svc, e.key_pos, port, healthcheck));
        } else if let Some(h) = healthcheck {
            self.w.add(
                h.key_pos,
                format!("{svc}.healthcheck"),
                "wharf health-checks only processes that serve HTTP (with `ports`); a worker counts as ready once it stays up. Not carried over",
            );
        }

        let mut plain = Vec::new();
        for (k, v) in env {
            match v {
                EnvValue::Plain(v) => plain.push((k, v)),
                EnvValue::Secret(s) => add_secret(&mut self.w, secrets, &k, s, e.key_pos, &svc),
            }
        }
        (p, plain)
    }

    /// The health check of an HTTP process: the path of an `http://` URL in
    /// the compose test, else wharf's default `/up`.
    fn process_health(&mut self, svc: &str, svc_pos: Pos, port: u16, hc: Option<&Entry>) -> Health {
        let mut health = Health {
            path: "/up".into(),
            ..Health::default()
        };
        let Some(hc) = hc else {
            self.w.add(
                svc_pos,
                svc,
                format!("has no `healthcheck`: wharf sends traffic to a new instance once GET /up on port {port} answers 2xx or 3xx; make the app answer there, or set `health.path`"),
            );
            return health;
        };
        let key = format!("{svc}.healthcheck");
        for f in self.w.map(&hc.value, &key) {
            let k = join_key(&key, &f.key);
            match f.key.as_str() {
                "test" => {
                    let text = match (f.value.as_seq(), f.value.as_str()) {
                        (Some(items), _) => items.iter().filter_map(Node::as_str).collect::<Vec<_>>().join(" "),
                        (None, Some(s)) => s.to_owned(),
                        _ => String::new(),
                    };
                    match url_path(&text) {
                        Some(path) => health.path = path,
                        None => self.w.add(
                            f.value.pos,
                            k,
                            format!("wharf checks HTTP processes with GET requests, not commands; `{text}` was not carried over, and GET /up on port {port} is probed instead: make the app answer there, or set `health.path`"),
                        ),
                    }
                }
                "interval" => health.interval = self.duration(&f.value, &k),
                "timeout" => {
                    health.timeout = self.duration(&f.value, &k);
                    if health.timeout.as_deref().and_then(parse_duration).is_some_and(|ms| ms > 60_000) {
                        self.w.add(f.value.pos, k, "wharf allows a probe at most 60s; `60s` was written instead");
                        health.timeout = Some("1m".into());
                    }
                }
                "retries" => {
                    health.threshold = self.int(&f.value, &k, 1, 10).map(|n| n as u32);
                }
                "disable" => self.w.add(
                    f.key_pos,
                    k,
                    "wharf always health-checks HTTP processes before sending them traffic; not carried over",
                ),
                "start_period" | "start_interval" => self.w.add(
                    f.key_pos,
                    k,
                    "wharf waits up to `deploy.health_timeout` (60s by default) for new instances to become healthy; not carried over",
                ),
                _ => self.w.add(f.key_pos, k, "not supported by wharf; not carried over"),
            }
        }
        health
    }

    fn release(&mut self, e: &Entry, cmd: String, app: &mut App) {
        let svc = format!("services.{}", e.key);
        app.release_command = Some(cmd);
        for f in e.value.as_map().unwrap_or_default() {
            let k = join_key(&svc, &f.key);
            match f.key.as_str() {
                "build" | "command" => {}
                "environment" => {
                    for (key, v) in self.environment(&k, &f.value, "") {
                        match v {
                            EnvValue::Secret(s) => {
                                add_secret(&mut self.w, &mut app.secrets, &key, s, f.key_pos, &svc);
                            }
                            EnvValue::Plain(v) => {
                                if !app.env.contains(&(key.clone(), v.clone())) {
                                    self.w.add(
                                        f.key_pos,
                                        join_key(&k, &key),
                                        "the release command gets the app's [env]; a value only this service had is not carried over: add it to [env] if the app may have it too",
                                    );
                                }
                            }
                        }
                    }
                }
                _ => self.w.add(
                    f.key_pos,
                    k,
                    format!("`{}` runs before each release as `release_command` (other services wait for it to complete); this key is not carried over", e.key),
                ),
            }
        }
    }

    fn accessory(&mut self, e: &Entry, used: &mut HashSet<String>) -> Option<Accessory> {
        let svc = format!("services.{}", e.key);
        let name = unique_name(&e.key, "accessory", |n| used.contains(n));
        used.insert(name.clone());
        let mut a = Accessory {
            renamed_from: (name != e.key).then(|| svc.clone()),
            name,
            ..Accessory::default()
        };
        let mut env = Vec::new();
        if let Some(env_node) = e.value.get("environment") {
            let table = format!("accessories.{}.", crate::model::key(&a.name));
            env = self.environment(&format!("{svc}.environment"), env_node, &table);
        }
        let mut limits = Limits::default();
        for f in e.value.as_map().unwrap_or_default() {
            let k = join_key(&svc, &f.key);
            let v = &f.value;
            match f.key.as_str() {
                "environment" => {}
                "image" => a.image = self.lit(v, &k).unwrap_or_default(),
                "command" => a.command = self.command(&k, v),
                "ports" => {
                    for (i, pos, port) in self.ports(&k, v) {
                        let pk = format!("{k}[{i}]");
                        if port.host_port.is_none() {
                            self.w.add(
                                pos,
                                pk,
                                format!(
                                    "compose published it on a random host port; not carried over: the app reaches it as `{}:{}` on the app's network",
                                    a.name, port.container_port
                                ),
                            );
                            continue;
                        }
                        if port.binds_all() {
                            self.w.add(
                                pos,
                                pk,
                                format!(
                                    "compose bound it on every interface; wharf binds it to 127.0.0.1 ({}): add a host IP to expose it further",
                                    port.render()
                                ),
                            );
                        }
                        a.ports.push(port.render());
                    }
                }
                "volumes" => a.volumes = self.volumes(&k, v),
                "healthcheck" => a.health = self.accessory_health(&k, v),
                "deploy" => self.deploy(&k, v, &mut limits),
                "mem_limit" => limits.memory = self.memory(v, &k),
                "cpus" => limits.cpus = self.cpus(v, &k),
                "restart" => limits.restart = self.restart(v, &k),
                "secrets" => self.service_secrets(&k, v, &mut env),
                "entrypoint" => self.w.add(
                    f.key_pos,
                    k,
                    "wharf keeps the image's ENTRYPOINT and replaces only its CMD (`command`); not carried over: build an image with this ENTRYPOINT, or fold it into `command` if the image has none",
                ),
                "scale" => limits.instances = self.int(v, &k, 1, 64).map(|n| (n as u32, v.pos, k.clone())),
                _ => self.service_key(f, &k, false),
            }
        }
        if let Some((n, pos, key)) = limits.instances
            && n != 1
        {
            self.w.add(
                pos,
                key,
                "wharf runs one container per accessory; not carried over",
            );
        }
        if let Some(r) = limits.restart
            && r.policy != "always"
        {
            self.w.add(
                r.pos,
                r.key,
                format!(
                    "wharf always restarts accessories: it runs them with the engine's restart policy `unless-stopped`, so one that exits is started again until `wharf accessory stop`; `{}` is not carried over",
                    r.written
                ),
            );
        }
        a.memory = limits.memory;
        a.cpus = limits.cpus;
        for (k, v) in env {
            match v {
                EnvValue::Plain(v) => set(&mut a.env, &k, v),
                EnvValue::Secret(s) => set(&mut a.secrets, &k, s),
            }
        }
        if a.image.is_empty() {
            self.w.add(
                e.key_pos,
                svc,
                "not imported: it has no image wharf can use (see the warning on `image`)",
            );
            return None;
        }
        Some(a)
    }

    /// Service keys with no counterpart in wharf: one warning each, saying
    /// what wharf does instead when there is something to say.
    fn service_key(&mut self, f: &Entry, key: &str, process: bool) {
        let msg = match f.key.as_str() {
            "depends_on" => {
                "not needed: wharf boots accessories before the app, runs the release command, then starts the processes of a release together"
            }
            "networks" | "network_mode" | "links" | "external_links" => {
                "wharf puts the app and its accessories on one network of its own, where each is reachable by its name; not carried over"
            }
            "container_name" | "hostname" => {
                "wharf names containers itself (app, release, process, instance); not carried over"
            }
            "labels" => "wharf labels its containers itself; not carried over",
            "profiles" => {
                "wharf imports every service whatever its profiles; remove the ones you do not want deployed"
            }
            "logging" => {
                "wharf collects container output into its own logs (`wharf logs`); not carried over"
            }
            "env_file" => {
                "env files are not read by the import; move their variables into [env], and credentials into [secrets]"
            }
            "extends" => {
                "not followed; copy the keys of the extended service into this one and import again"
            }
            "configs" => {
                "wharf has no configs; copy the file into the image, or mount it into an accessory with an absolute host path in `volumes`"
            }
            "user" | "working_dir" if process => {
                "not carried over: set USER / WORKDIR in the Dockerfile"
            }
            "stop_grace_period" => {
                "accessories are stopped with the engine's default timeout; not carried over"
            }
            "stop_signal" => "wharf stops containers with SIGTERM, then SIGKILL; not carried over",
            "pull_policy" => {
                "wharf builds the app's image and pulls accessory images when missing; not carried over"
            }
            k if k.starts_with("x-") => "extension field, not carried over",
            _ => "not supported by wharf; not carried over",
        };
        self.w.add(f.key_pos, key, msg);
    }
}

/// Resource settings found in several places of a service (`deploy`,
/// `mem_limit`, `scale`…); the last one written wins, as in compose.
#[derive(Default)]
struct Limits {
    /// With where and under which key it was set.
    instances: Option<(u32, Pos, String)>,
    memory: Option<String>,
    cpus: Option<f64>,
    restart: Option<RestartSetting>,
}

/// A service's `restart` or `deploy.restart_policy.condition`, as read.
struct RestartSetting {
    /// wharf's policy: `always`, `on-failure` or `never`.
    policy: &'static str,
    /// The compose policy as written, without a `:N` retry limit.
    written: String,
    pos: Pos,
    /// The dotted key it was read from.
    key: String,
}

fn add_secret(
    w: &mut Warnings,
    secrets: &mut Vec<(String, Secret)>,
    key: &str,
    secret: Secret,
    pos: Pos,
    svc: &str,
) {
    match secrets.iter().find(|(k, _)| k == key) {
        Some((_, existing)) if *existing != secret => w.add(
            pos,
            format!("{svc}.environment.{key}"),
            "another service takes this secret from elsewhere, and wharf's [secrets] are shared by all processes; the first one was kept",
        ),
        Some(_) => {}
        None => secrets.push((key.to_owned(), secret)),
    }
}

/// Whether a literal env value is a credential by the look of its key:
/// the key names a password, secret, token or key (`DB_PASSWORD`,
/// `AWS_SECRET_ACCESS_KEY`, `GITHUB_TOKEN`, `STRIPE_API_KEY`, `SMTP_PASS`,
/// `CREDENTIALS`…) rather than something about one (`…_FILE`, `…_URL`,
/// `…_USER`, `…_KEY_ID`, `…_PUBLIC_KEY`, `…_TTL`…). A value that is a flag
/// (`MYSQL_RANDOM_ROOT_PASSWORD=yes`, `SECRET_KEY_BASE_DUMMY=1`) or an
/// absolute path (`GOOGLE_APPLICATION_CREDENTIALS=/run/gcp.json`) is not one.
fn looks_secret(key: &str, value: &str) -> bool {
    const MARKERS: &[&str] = &[
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "SECRET",
        "TOKEN",
        "APIKEY",
        "API_KEY",
        "PRIVATE_KEY",
        "ACCESS_KEY",
        "CREDENTIAL",
    ];
    /// A last word that makes the key a secret on its own (`SMTP_PASS`).
    const SECRET_LAST: &[&str] = &["KEY", "PASS", "PWD"];
    /// A last word that says something about a secret rather than being it.
    const ABOUT_LAST: &[&str] = &[
        "FILE",
        "PATH",
        "DIR",
        "URL",
        "URI",
        "ENDPOINT",
        "HOST",
        "PORT",
        "USER",
        "USERNAME",
        "NAME",
        "ID",
        "TTL",
        "EXPIRY",
        "EXPIRATION",
        "LIFETIME",
        "TIMEOUT",
        "LENGTH",
        "HEADER",
        "TYPE",
        "ALGORITHM",
        "METHOD",
        "POLICY",
        "ENABLED",
        "DISABLED",
        "REQUIRED",
        "DUMMY",
    ];
    /// `…_KEY`s that are not secret: public halves, lookup keys.
    const PUBLIC_KEYS: &[&str] = &[
        "PUBLIC",
        "PUBLISHABLE",
        "SITE",
        "CACHE",
        "SORT",
        "PARTITION",
        "PRIMARY",
        "ROUTING",
    ];
    const FLAGS: &[&str] = &["true", "false", "yes", "no", "on", "off", "0", "1"];

    let value = value.trim();
    if value.is_empty()
        || FLAGS.iter().any(|f| value.eq_ignore_ascii_case(f))
        || (value.starts_with('/') && !value.contains(char::is_whitespace))
    {
        return false;
    }
    let key = key.to_ascii_uppercase();
    let words: Vec<&str> = key.split('_').filter(|w| !w.is_empty()).collect();
    let (last, before) = match words.as_slice() {
        [.., before, last] => (*last, Some(*before)),
        [last] => (*last, None),
        [] => return false,
    };
    if ABOUT_LAST.contains(&last)
        || key.ends_with("_EXPIRES_IN")
        || (last == "KEY" && before.is_some_and(|b| PUBLIC_KEYS.contains(&b)))
    {
        return false;
    }
    MARKERS.iter().any(|m| key.contains(m)) || (before.is_some() && SECRET_LAST.contains(&last))
}

/// A secret's env var name: `db_password` → `DB_PASSWORD`.
fn secret_var_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.chars().next().is_none_or(|c| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A host path rather than a volume name (compose's rule: it starts with
/// `.`, `/` or `~`).
fn looks_like_path(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/') || source.starts_with('~')
}

/// The path of the first `http(s)://` URL in a health test.
fn url_path(text: &str) -> Option<String> {
    let start = text.find("http://").or_else(|| text.find("https://"))?;
    let url = &text[start..];
    let url = url
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '|' || c == ';')
        .next()
        .unwrap_or(url);
    let after_scheme = &url[url.find("://").map_or(0, |i| i + 3)..];
    Some(match after_scheme.find('/') {
        Some(i) => after_scheme[i..].to_owned(),
        None => "/".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolation() {
        assert_eq!(interpolate("plain"), Interp::Literal("plain".into()));
        assert_eq!(interpolate("a$$b"), Interp::Literal("a$b".into()));
        assert_eq!(
            interpolate("${DB_PASSWORD}"),
            Interp::Var {
                name: "DB_PASSWORD".into(),
                default: None
            }
        );
        assert_eq!(
            interpolate("$TOKEN"),
            Interp::Var {
                name: "TOKEN".into(),
                default: None
            }
        );
        assert_eq!(
            interpolate("${RAILS_ENV:-production}"),
            Interp::Var {
                name: "RAILS_ENV".into(),
                default: Some("production".into())
            }
        );
        assert_eq!(
            interpolate("${KEY:?set KEY}"),
            Interp::Var {
                name: "KEY".into(),
                default: None
            }
        );
        assert_eq!(
            interpolate("postgres://u:${PW}@db/x"),
            Interp::Mixed {
                vars: vec!["PW".into()],
                defaulted: None
            }
        );
        assert_eq!(
            interpolate("${PORT:-80}:80"),
            Interp::Mixed {
                vars: vec!["PORT".into()],
                defaulted: Some("80:80".into())
            }
        );
        assert_eq!(
            interpolate("${A:+x}"),
            Interp::Mixed {
                vars: vec!["A".into()],
                defaulted: None
            }
        );
        assert_eq!(interpolate("${OPEN"), Interp::Literal("${OPEN".into()));
        assert_eq!(interpolate("cost: 5$"), Interp::Literal("cost: 5$".into()));
    }

    #[test]
    fn url_paths() {
        assert_eq!(
            url_path("curl -f http://localhost:3000/up || exit 1").as_deref(),
            Some("/up")
        );
        assert_eq!(
            url_path("wget -qO- http://127.0.0.1:8080").as_deref(),
            Some("/")
        );
        assert_eq!(url_path("pg_isready"), None);
    }

    #[test]
    fn secret_looking_keys() {
        let table: &[(&str, &str, bool)] = &[
            // Secrets by their key.
            ("POSTGRES_PASSWORD", "hunter2", true),
            ("PGPASSWORD", "hunter2", true),
            ("db_password", "hunter2", true),
            ("LDAP_BIND_PASSWD", "x", true),
            ("SSH_KEY_PASSPHRASE", "x", true),
            ("SECRET_KEY_BASE", "abc", true),
            ("OAUTH_CLIENT_SECRET", "abc", true),
            ("AWS_SECRET_ACCESS_KEY", "abc", true),
            ("GITHUB_TOKEN", "ghp_x", true),
            ("STRIPE_API_KEY", "sk_live_x", true),
            ("SENDGRID_APIKEY", "SG.x", true),
            ("JWT_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----", true),
            ("MINIO_ACCESS_KEY", "x", true),
            ("SMTP_CREDENTIALS", "u:p", true),
            ("ENCRYPTION_KEY", "x", true),
            ("SMTP_PASS", "x", true),
            ("DB_PWD", "x", true),
            ("POSTGRES_PASSWORD", "12345", true),
            // About a secret, not one.
            ("POSTGRES_PASSWORD_FILE", "/run/secrets/db", false),
            ("SECRETS_DIR", "secrets", false),
            ("AWS_ACCESS_KEY_ID", "AKIA", false),
            ("JWT_PUBLIC_KEY", "-----BEGIN PUBLIC KEY-----", false),
            ("STRIPE_PUBLISHABLE_KEY", "pk_live_x", false),
            ("RECAPTCHA_SITE_KEY", "x", false),
            ("CACHE_KEY", "v2", false),
            ("OAUTH_TOKEN_URL", "https://example.com/token", false),
            ("SECRET_HOST", "vault", false),
            ("SMTP_PASSWORD_PORT", "25", false),
            ("DB_PASSWORD_USER", "app", false),
            ("TOKEN_NAME", "x", false),
            ("ACCESS_TOKEN_TTL", "3600", false),
            ("ACCESS_TOKEN_EXPIRES_IN", "15m", false),
            ("PASSWORD_MIN_LENGTH", "8", false),
            ("SECRET_KEY_BASE_DUMMY", "x", false),
            // Flags, paths and empty values.
            ("SECRET_KEY_BASE_DUMMY", "1", false),
            ("MYSQL_RANDOM_ROOT_PASSWORD", "yes", false),
            ("MYSQL_ALLOW_EMPTY_PASSWORD", "TRUE", false),
            ("TOKENIZERS_PARALLELISM", "false", false),
            (
                "GOOGLE_APPLICATION_CREDENTIALS",
                "/run/secrets/gcp.json",
                false,
            ),
            ("POSTGRES_PASSWORD", "", false),
            ("POSTGRES_PASSWORD", "  ", false),
            // Neither.
            ("KEY", "x", false),
            ("PWD", "srv", false),
            ("PASS", "x", false),
            ("BYPASS", "x", false),
            ("DATABASE_URL", "postgres://u:p@db/x", false),
            ("POSTGRES_USER", "shop", false),
            ("RAILS_ENV", "production", false),
        ];
        for (key, value, expected) in table {
            assert_eq!(
                looks_secret(key, value),
                *expected,
                "looks_secret({key:?}, {value:?})"
            );
        }
    }

    #[test]
    fn secret_names() {
        assert_eq!(secret_var_name("db_password"), "DB_PASSWORD");
        assert_eq!(secret_var_name("1key"), "_1KEY");
    }
}
