//! What an import produces, and its rendering as `wharf.toml`.
//!
//! The TOML is written by hand rather than serialized so that keys come in
//! the order of `wharf.reference.toml`, short tables stay inline and long
//! ones get their own header; every string and key goes through the `toml`
//! crate's escaping, and the tests parse every rendered file back.

use std::fmt::Write as _;

#[derive(Debug, Default)]
pub struct App {
    pub name: String,
    /// A prebuilt image for every process without its own.
    pub image: Option<String>,
    /// `[build]`; `None` with `image`, or when every process has its own.
    pub build: Option<Build>,
    /// Run in order before each release.
    pub release_command: Vec<String>,
    pub env_file: Vec<String>,
    pub asset_path: Option<String>,
    pub env: Vec<(String, String)>,
    pub secrets: Vec<(String, Secret)>,
    pub processes: Vec<Process>,
    pub accessories: Vec<Accessory>,
    pub deploy: Deploy,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Build {
    pub dockerfile: Option<String>,
    pub context: Option<String>,
    pub target: Option<String>,
    pub args: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    Env(String),
    File(String),
}

#[derive(Debug, Default)]
pub struct Process {
    pub name: String,
    /// Where it came from, when the name had to change.
    pub renamed_from: Option<String>,
    /// Its own prebuilt image, or its own build (not the app's).
    pub image: Option<String>,
    pub build: Option<Build>,
    pub entrypoint: Option<String>,
    pub command: Option<String>,
    pub instances: Option<u32>,
    pub port: Option<u16>,
    /// Published TCP/UDP ports (a process without `http`).
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    pub env_file: Vec<String>,
    pub stop_timeout: Option<String>,
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub restart: Option<&'static str>,
    pub env: Vec<(String, String)>,
    pub http: Option<Http>,
    pub health: Option<Health>,
}

#[derive(Debug, Default)]
pub struct Http {
    /// Empty: any host.
    pub hosts: Vec<String>,
    pub path: String,
    pub tls: Option<Tls>,
    pub max_body: Option<String>,
    pub timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// A certificate by ACME.
    Acme,
}

#[derive(Debug, Default)]
pub struct Health {
    pub path: String,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub threshold: Option<u32>,
}

#[derive(Debug, Default)]
pub struct Accessory {
    pub name: String,
    pub renamed_from: Option<String>,
    /// Extra names on the app's network (the ones the app uses).
    pub aliases: Vec<String>,
    /// Empty when it is built (`build`).
    pub image: String,
    pub build: Option<Build>,
    pub command: Option<String>,
    pub env: Vec<(String, String)>,
    pub secrets: Vec<(String, Secret)>,
    pub ports: Vec<String>,
    pub volumes: Vec<String>,
    pub memory: Option<String>,
    pub cpus: Option<f64>,
    pub health: Option<AccessoryHealth>,
}

#[derive(Debug, Default)]
pub struct AccessoryHealth {
    pub command: String,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub retries: Option<u32>,
    pub start_timeout: Option<String>,
}

#[derive(Debug, Default)]
pub struct Deploy {
    pub health_timeout: Option<String>,
    pub drain_timeout: Option<String>,
    pub retain: Option<u32>,
}

/// Sets `key` in an ordered list of pairs, replacing an earlier value.
pub fn set<V>(list: &mut Vec<(String, V)>, key: &str, value: V) {
    match list.iter_mut().find(|(k, _)| k == key) {
        Some(slot) => slot.1 = value,
        None => list.push((key.to_owned(), value)),
    }
}

/// A TOML string literal.
pub fn string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A TOML key: bare when it can be, quoted otherwise.
pub fn key(k: &str) -> String {
    if !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        k.to_owned()
    } else {
        string(k)
    }
}

fn float(f: f64) -> String {
    // `2` rather than `2.0`: both are accepted, and this is how people
    // write a whole number of CPUs.
    if f.fract() == 0.0 && f.abs() < 1e9 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// `{ a = "x", b = 2 }` from already-rendered values.
fn inline(pairs: &[(&str, String)]) -> String {
    if pairs.is_empty() {
        return "{}".into();
    }
    let body: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{} = {v}", key(k)))
        .collect();
    format!("{{ {} }}", body.join(", "))
}

fn secret_value(s: &Secret) -> String {
    match s {
        Secret::Env(v) => inline(&[("env", string(v))]),
        Secret::File(p) => inline(&[("file", string(p))]),
    }
}

fn array(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| string(s)).collect();
    let one_line = format!("[{}]", items.join(", "));
    if one_line.len() <= 80 {
        return one_line;
    }
    let mut out = String::from("[\n");
    for item in items {
        let _ = writeln!(out, "  {item},");
    }
    out.push(']');
    out
}

/// A table of string values: inline when short, else under its own header
/// (returned separately, as it must come after the parent's plain keys).
fn string_table(pairs: &[(String, String)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.clone(), string(v))).collect()
}

fn secret_table(pairs: &[(String, Secret)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.clone(), secret_value(v)))
        .collect()
}

/// Writes `name = { ... }` when it fits on a line, else defers it to a
/// `[header]` section.
struct Section {
    header: String,
    lines: Vec<String>,
    deferred: Vec<(String, Vec<(String, String)>)>,
}

impl Section {
    fn new(header: &str) -> Section {
        Section {
            header: header.to_owned(),
            lines: Vec::new(),
            deferred: Vec::new(),
        }
    }

    fn comment(&mut self, text: &str) {
        self.lines.push(format!("# {text}"));
    }

    fn kv(&mut self, k: &str, v: String) {
        self.lines.push(format!("{} = {v}", key(k)));
    }

    fn opt_str(&mut self, k: &str, v: &Option<String>) {
        if let Some(v) = v {
            self.kv(k, string(v));
        }
    }

    fn table(&mut self, k: &str, pairs: Vec<(String, String)>) {
        if pairs.is_empty() {
            return;
        }
        let refs: Vec<(&str, String)> =
            pairs.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let line = format!("{} = {}", key(k), inline(&refs));
        if line.len() <= 80 && pairs.len() <= 3 {
            self.lines.push(line);
        } else {
            self.deferred.push((k.to_owned(), pairs));
        }
    }

    fn write(self, out: &mut String) {
        if !self.header.is_empty() {
            let _ = writeln!(out, "\n[{}]", self.header);
        }
        for line in &self.lines {
            let _ = writeln!(out, "{line}");
        }
        for (k, pairs) in self.deferred {
            let header = if self.header.is_empty() {
                key(&k)
            } else {
                format!("{}.{}", self.header, key(&k))
            };
            let _ = writeln!(out, "\n[{header}]");
            for (k, v) in pairs {
                let _ = writeln!(out, "{} = {v}", key(&k));
            }
        }
    }
}

fn build_pairs(b: &Build) -> Vec<(String, String)> {
    let mut pairs = vec![
        (
            "dockerfile".to_owned(),
            string(b.dockerfile.as_deref().unwrap_or("Dockerfile")),
        ),
        (
            "context".to_owned(),
            string(b.context.as_deref().unwrap_or(".")),
        ),
    ];
    if let Some(t) = &b.target {
        pairs.push(("target".into(), string(t)));
    }
    if !b.args.is_empty() {
        let refs: Vec<(&str, String)> = b
            .args
            .iter()
            .map(|(k, v)| (k.as_str(), string(v)))
            .collect();
        pairs.push(("args".into(), inline(&refs)));
    }
    pairs
}

impl Http {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        match self.hosts.as_slice() {
            [] => {}
            [one] => pairs.push(("host".to_owned(), string(one))),
            many => pairs.push(("hosts".to_owned(), array(many))),
        }
        pairs.push(("path".to_owned(), string(&self.path)));
        if let Some(Tls::Acme) = self.tls {
            pairs.push(("tls".into(), "true".into()));
        }
        if let Some(m) = &self.max_body {
            pairs.push(("max_body".into(), string(m)));
        }
        if let Some(t) = &self.timeout {
            pairs.push(("timeout".into(), string(t)));
        }
        pairs
    }
}

impl App {
    /// The `wharf.toml` text, `header` first as comment lines.
    pub fn render(&self, header: &[String]) -> String {
        let mut out = String::new();
        for line in header {
            if line.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {line}");
            }
        }
        out.push('\n');
        let mut top = Section::new("");
        top.kv("name", string(&self.name));
        top.kv("runtime", string("docker"));
        top.opt_str("image", &self.image);
        match self.release_command.as_slice() {
            [] => {}
            [one] => top.kv("release_command", string(one)),
            many => top.kv("release_command", array(many)),
        }
        if !self.env_file.is_empty() {
            top.kv("env_file", array(&self.env_file));
        }
        top.opt_str("asset_path", &self.asset_path);
        top.write(&mut out);

        if let Some(b) = &self.build {
            let mut build = Section::new("build");
            for (k, v) in build_pairs(b) {
                if k == "args" {
                    build.table("args", string_table(&b.args));
                } else {
                    build.kv(&k, v);
                }
            }
            build.write(&mut out);
        }

        if !self.env.is_empty() {
            let mut env = Section::new("env");
            for (k, v) in &self.env {
                env.kv(k, string(v));
            }
            env.write(&mut out);
        }
        if !self.secrets.is_empty() {
            let mut secrets = Section::new("secrets");
            for (k, v) in &self.secrets {
                secrets.kv(k, secret_value(v));
            }
            secrets.write(&mut out);
        }
        for p in &self.processes {
            let mut s = Section::new(&format!("processes.{}", key(&p.name)));
            if let Some(from) = &p.renamed_from {
                s.comment(&format!("from `{from}`"));
            }
            s.opt_str("image", &p.image);
            if let Some(b) = &p.build {
                s.table("build", build_pairs(b));
            }
            s.opt_str("entrypoint", &p.entrypoint);
            s.opt_str("command", &p.command);
            if let Some(n) = p.instances {
                s.kv("instances", n.to_string());
            }
            if let Some(port) = p.port {
                s.kv("port", port.to_string());
            }
            if !p.ports.is_empty() {
                s.kv("ports", array(&p.ports));
            }
            if !p.volumes.is_empty() {
                s.kv("volumes", array(&p.volumes));
            }
            if !p.env_file.is_empty() {
                s.kv("env_file", array(&p.env_file));
            }
            s.opt_str("stop_timeout", &p.stop_timeout);
            s.opt_str("memory", &p.memory);
            if let Some(c) = p.cpus {
                s.kv("cpus", float(c));
            }
            if let Some(r) = p.restart {
                s.kv("restart", string(r));
            }
            s.table("env", string_table(&p.env));
            if let Some(h) = &p.http {
                s.table("http", h.pairs());
            }
            if let Some(h) = &p.health {
                let mut pairs = vec![("path".to_owned(), string(&h.path))];
                if let Some(i) = &h.interval {
                    pairs.push(("interval".into(), string(i)));
                }
                if let Some(t) = &h.timeout {
                    pairs.push(("timeout".into(), string(t)));
                }
                if let Some(t) = h.threshold {
                    pairs.push(("threshold".into(), t.to_string()));
                }
                s.table("health", pairs);
            }
            s.write(&mut out);
        }
        for a in &self.accessories {
            let mut s = Section::new(&format!("accessories.{}", key(&a.name)));
            if let Some(from) = &a.renamed_from {
                s.comment(&format!("from `{from}`"));
            }
            if !a.image.is_empty() {
                s.kv("image", string(&a.image));
            }
            if let Some(b) = &a.build {
                s.table("build", build_pairs(b));
            }
            if !a.aliases.is_empty() {
                s.kv("aliases", array(&a.aliases));
            }
            s.opt_str("command", &a.command);
            if !a.ports.is_empty() {
                s.kv("ports", array(&a.ports));
            }
            if !a.volumes.is_empty() {
                s.kv("volumes", array(&a.volumes));
            }
            s.opt_str("memory", &a.memory);
            if let Some(c) = a.cpus {
                s.kv("cpus", float(c));
            }
            s.table("env", string_table(&a.env));
            s.table("secrets", secret_table(&a.secrets));
            if let Some(h) = &a.health {
                let mut pairs = vec![("command".to_owned(), string(&h.command))];
                if let Some(i) = &h.interval {
                    pairs.push(("interval".into(), string(i)));
                }
                if let Some(t) = &h.timeout {
                    pairs.push(("timeout".into(), string(t)));
                }
                if let Some(r) = h.retries {
                    pairs.push(("retries".into(), r.to_string()));
                }
                if let Some(t) = &h.start_timeout {
                    pairs.push(("start_timeout".into(), string(t)));
                }
                s.table("health", pairs);
            }
            s.write(&mut out);
        }
        let d = &self.deploy;
        if d.health_timeout.is_some() || d.drain_timeout.is_some() || d.retain.is_some() {
            let mut s = Section::new("deploy");
            s.opt_str("health_timeout", &d.health_timeout);
            s.opt_str("drain_timeout", &d.drain_timeout);
            if let Some(r) = d.retain {
                s.kv("retain", r.to_string());
            }
            s.write(&mut out);
        }
        out
    }
}
