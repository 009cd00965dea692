//! Kamal's `config/deploy.yml` → `wharf.toml`.
//!
//! Kamal deploys one image to the hosts of each role; wharf deploys an app
//! to the machine it runs on. So roles become processes (the primary role,
//! `web` unless `primary_role` says otherwise, is routed by the proxy like
//! kamal-proxy routes it), host lists become a warning, `proxy` becomes
//! `port`/`http`/`health`, `env.clear`/`env.secret` become `[env]` and
//! `[secrets]` (read from the server's environment instead of
//! `.kamal/secrets`), and accessories stay accessories. Kamal evaluates ERB
//! (`<%= … %>`) before reading the file; the import cannot, so such values
//! are warned about.

use std::path::Path;

use crate::common::{
    PortMap, Values, Warnings, abs_dir, dir_name, is_env_key, join_key, parse_port, sanitize_name,
    shell_join, show, tidy_relative, unique_name,
};
use crate::model::{Accessory, App, Build, Health, Http, Process, Secret, set};
use crate::yaml::{Entry, Node, Pos};
use crate::{Import, ImportError, app_name, header, parse_root};

pub fn import(path: &Path, source: &str, name: Option<&str>) -> Result<Import, ImportError> {
    let file = path.display().to_string();
    let mut c = Ctx {
        w: Warnings::new(&file),
    };
    let source = c.erb_lines(source);
    let root = parse_root(&file, &source, "kamal", "Kamal config (config/deploy.yml)")?;

    // `config/deploy.yml` lives in the app's `config/` directory.
    let dir = abs_dir(path);
    let app_dir = if dir.file_name().is_some_and(|n| n == "config") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    };
    let service = root.get("service").and_then(|n| c.lit(n, "service"));
    let name = app_name(name, &[service, dir_name(&app_dir)], &file)?;
    let mut app = App {
        name,
        ..App::default()
    };

    let primary = root
        .get("primary_role")
        .and_then(|n| c.lit(n, "primary_role"))
        .unwrap_or_else(|| "web".into());
    let mut proxy = None;
    let mut stop_timeout = None;
    let mut kamal1_health = None;
    for e in root.as_map().unwrap_or_default() {
        let k = e.key.as_str();
        let v = &e.value;
        match k {
            "service" | "servers" | "primary_role" => {}
            "image" => c.w.add(
                e.key_pos,
                k,
                "wharf builds the image on this machine and tags it wharf/<app>:<version>; the registry name is not used",
            ),
            "proxy" => proxy = Some(c.proxy(k, v)),
            "env" => {
                let (env, secrets) = c.env(k, v);
                app.env = env;
                for (key, s) in secrets {
                    set(&mut app.secrets, &key, s);
                }
            }
            "builder" => app.build = c.builder(k, v),
            "accessories" => app.accessories = c.accessories(k, v, &app.name),
            "volumes" => c.w.add(
                e.key_pos,
                k,
                "app processes have no volumes in wharf (their containers are replaced on every deploy); not carried over: keep state in an accessory (with `volumes`) or an external store",
            ),
            "registry" => c.w.add(
                e.key_pos,
                k,
                "wharf builds the image on the machine it deploys to and never pushes or pulls it; not carried over",
            ),
            "ssh" | "sshkit" => c.w.add(
                e.key_pos,
                k,
                "wharf deploys to the machine it runs on, without SSH; not carried over",
            ),
            "boot" => c.w.add(
                e.key_pos,
                k,
                "wharf replaces instances on one machine with zero downtime; rollout batches are not carried over",
            ),
            "aliases" => c.w.add(
                e.key_pos,
                k,
                "wharf has no command aliases; use `wharf run -- CMD` or `wharf exec PROCESS -- CMD`",
            ),
            "logging" => c.w.add(
                e.key_pos,
                k,
                "wharf collects container output into its own logs (`wharf logs`); not carried over",
            ),
            "labels" => c.w.add(e.key_pos, k, "wharf labels its containers itself; not carried over"),
            "retain_containers" => {
                // Kamal keeps N old containers besides the running one;
                // wharf's `retain` counts the live release too.
                app.deploy.retain = c.int(v, k, 1, 99).map(|n| n as u32 + 1);
            }
            "deploy_timeout" => app.deploy.health_timeout = c.duration(v, k),
            "drain_timeout" => app.deploy.drain_timeout = c.duration(v, k),
            "stop_wait_time" => stop_timeout = c.duration(v, k),
            "readiness_delay" => c.w.add(
                e.key_pos,
                k,
                "wharf counts a process without `http` as ready once it has stayed up for a short grace period; not carried over",
            ),
            "asset_path" => c.w.add(
                e.key_pos,
                k,
                "wharf does not carry assets over from the previous release; not carried over: serve fingerprinted assets from a CDN or keep old ones in the image",
            ),
            "healthcheck" => kamal1_health = Some(e),
            "traefik" => c.w.add(
                e.key_pos,
                k,
                "Kamal 1's Traefik settings: wharf has its own proxy (see `http` and `health` of the web process); not carried over",
            ),
            "hooks_path" => c.w.add(
                e.key_pos,
                k,
                "wharf runs no Kamal hooks; a pre-deploy hook that migrates belongs in `release_command`, a build step in [build] `command`",
            ),
            "error_pages_path" => c.w.add(
                e.key_pos,
                k,
                "wharf's proxy serves its own error pages; not carried over",
            ),
            "require_destination" | "minimum_version" | "allow_empty_roles" | "run_directory"
            | "secrets_path" => c.w.add(e.key_pos, k, "Kamal's own setting; not needed by wharf"),
            _ if k.starts_with("x-") => c.w.add(e.key_pos, k, "extension field, not carried over"),
            _ => c.w.add(e.key_pos, k, "not a Kamal key wharf knows; not carried over"),
        }
    }

    // Roles, each a process. Without `servers`, Kamal has nothing to
    // deploy; wharf still needs one process, so a web one is assumed.
    let roles = match root.get("servers") {
        Some(servers) => c.roles(servers),
        None => {
            c.w.add(
                root.pos,
                "servers",
                "no `servers`: imported as one `web` process; check it",
            );
            vec![Role {
                name: primary.clone(),
                key: "servers.web".into(),
                pos: root.pos,
                node: None,
            }]
        }
    };
    let kamal1 = root.get("traefik").is_some() || kamal1_health.is_some();
    let mut routes: Vec<(Option<String>, String, String)> = Vec::new();
    let mut used = std::collections::HashSet::new();
    for role in roles {
        let mut p = c.role(&role, &primary, proxy.as_ref(), &mut app.secrets);
        let name = unique_name(&role.name, "web", |n| used.contains(n));
        used.insert(name.clone());
        if name != role.name {
            p.renamed_from = Some(role.key.clone());
        }
        p.name = name;
        if p.stop_timeout.is_none() {
            p.stop_timeout.clone_from(&stop_timeout);
        }
        if let Some(http) = &p.http {
            if let Some((_, _, other)) = routes
                .iter()
                .find(|(h, path, _)| *h == http.host && *path == http.path)
            {
                c.w.add(
                    role.pos,
                    &role.key,
                    format!(
                        "`{other}` is already routed at the same host and path; this role is not routed by wharf's proxy: give it its own `proxy.host`"
                    ),
                );
                p.http = None;
                p.health = None;
            } else {
                routes.push((http.host.clone(), http.path.clone(), p.name.clone()));
            }
        }
        // Kamal 1 (Traefik, top-level `healthcheck`) expected the app on
        // port 3000; Kamal 2's proxy on port 80.
        if kamal1 && proxy.is_none() && p.port == Some(80) {
            p.port = Some(3000);
        }
        if let (Some(h), Some(health)) = (kamal1_health, p.health.as_mut()) {
            c.kamal1_healthcheck(h, health, &mut p.port);
        }
        app.processes.push(p);
    }
    if let Some(h) = kamal1_health
        && !app.processes.iter().any(|p| p.health.is_some())
    {
        c.w.add(
            h.key_pos,
            "healthcheck",
            "no process is routed by the proxy, so there is nothing to health-check; not carried over",
        );
    }

    let warnings = c.w.len();
    let toml = app.render(&header(&file, "kamal", warnings));
    Ok(Import {
        toml,
        warnings: c.w.into_sorted(),
    })
}

/// What a `proxy` section says; a role's own `proxy` is laid over the
/// app-wide one.
#[derive(Debug, Default)]
struct ProxySettings {
    host: Option<String>,
    port: Option<u16>,
    path: Option<String>,
    health_path: Option<String>,
    interval: Option<String>,
    timeout: Option<String>,
}

impl ProxySettings {
    fn apply(&self, p: &mut Process) {
        if let Some(port) = self.port {
            p.port = Some(port);
        }
        if let Some(http) = p.http.as_mut() {
            if self.host.is_some() {
                http.host.clone_from(&self.host);
            }
            if let Some(path) = &self.path {
                http.path.clone_from(path);
            }
        }
        if let Some(health) = p.health.as_mut() {
            if let Some(path) = &self.health_path {
                health.path.clone_from(path);
            }
            if self.interval.is_some() {
                health.interval.clone_from(&self.interval);
            }
            if self.timeout.is_some() {
                health.timeout.clone_from(&self.timeout);
            }
        }
    }
}

struct Role<'a> {
    name: String,
    /// `servers.NAME`, or `servers` for the list form.
    key: String,
    pos: Pos,
    /// The role's mapping, when it is one (not a list of hosts).
    node: Option<&'a Node>,
}

/// `[secrets]`-style pairs: env var name and where its value comes from.
type Secrets = Vec<(String, Secret)>;

struct Ctx {
    w: Warnings,
}

impl Values for Ctx {
    /// Kamal durations are seconds (`30`); a unit (`30s`) is accepted too.
    const DURATION: &'static str = "a number of seconds";

    fn warnings(&mut self) -> &mut Warnings {
        &mut self.w
    }

    /// A scalar's text, unless it holds ERB the import cannot evaluate.
    fn lit(&mut self, node: &Node, key: &str) -> Option<String> {
        let text = self.w.scalar(node, key)?;
        if text.contains("<%") {
            self.w.add(
                node.pos,
                key,
                format!("`{text}` is ERB, which Kamal evaluates before reading the file and the import cannot; not carried over: write the value it gives"),
            );
            return None;
        }
        Some(text.to_owned())
    }
}

impl Ctx {
    /// Lines that are only ERB code (`<% if … %>`, `<%# … %>`) are not
    /// YAML; Kamal runs them before parsing. They are blanked (keeping
    /// every other position as it is) and warned about.
    fn erb_lines(&mut self, source: &str) -> String {
        let mut out = String::with_capacity(source.len());
        for (i, line) in source.split_inclusive('\n').enumerate() {
            let body = line.trim_end_matches(['\n', '\r']);
            let code = body.trim();
            if code.starts_with("<%") && !code.starts_with("<%=") && code.ends_with("%>") {
                let col = body.len() - body.trim_start().len() + 1;
                self.w.add(
                    Pos { line: i + 1, col },
                    "<% … %>",
                    format!("`{code}` is ERB code, which Kamal runs before reading the file and the import cannot; ignored: check what it would change"),
                );
                out.push_str(&" ".repeat(body.chars().count()));
                out.push_str(&line[body.len()..]);
            } else {
                out.push_str(line);
            }
        }
        out
    }

    /// `env`: `clear` and `secret` (and `tags`), or a plain mapping, which
    /// Kamal takes as `clear`.
    fn env(&mut self, key: &str, node: &Node) -> (Vec<(String, String)>, Secrets) {
        let mut clear = Vec::new();
        let mut secrets = Vec::new();
        let map = self.w.map(node, key);
        if map.is_empty() {
            return (clear, secrets);
        }
        let structured = map
            .iter()
            .any(|e| matches!(e.key.as_str(), "clear" | "secret" | "tags"));
        if !structured {
            self.clear(key, node, &mut clear);
            return (clear, secrets);
        }
        for e in map {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "clear" => self.clear(&k, &e.value, &mut clear),
                "secret" => self.secrets(&k, &e.value, &mut secrets),
                "tags" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf has no host tags (it deploys to one machine); not carried over: move the values into [env] or a process's `env`",
                ),
                _ => self.w.add(e.key_pos, k, "not `clear`, `secret` or `tags`; not carried over"),
            }
        }
        (clear, secrets)
    }

    fn clear(&mut self, key: &str, node: &Node, out: &mut Vec<(String, String)>) {
        for e in self.w.map(node, key) {
            let k = join_key(key, &e.key);
            if !self.w.env_key(e.key_pos, &k, &e.key) {
                continue;
            }
            if e.value.is_null() {
                set(out, &e.key, String::new());
                continue;
            }
            if let Some(v) = self.lit(&e.value, &k) {
                set(out, &e.key, v);
            }
        }
    }

    /// `secret: [KEY, KEY:ALIAS]` → `KEY = { env = "ALIAS" }`, with one
    /// warning for the list: the values now come from elsewhere.
    fn secrets(&mut self, key: &str, node: &Node, out: &mut Vec<(String, Secret)>) {
        let Some(items) = node.as_seq() else {
            if !node.is_null() {
                self.w.add(
                    node.pos,
                    key,
                    format!(
                        "expected a list of names, found {}; not carried over",
                        node.describe()
                    ),
                );
            }
            return;
        };
        let mut names = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Some(text) = self.lit(item, &format!("{key}[{i}]")) else {
                continue;
            };
            let (var, from) = match text.split_once(':') {
                Some((v, f)) => (v.to_owned(), f.to_owned()),
                None => (text.clone(), text.clone()),
            };
            if !is_env_key(&var) || !is_env_key(&from) {
                self.w.add(
                    item.pos,
                    format!("{key}[{i}]"),
                    format!("`{text}` is not `KEY` or `KEY:SECRET_NAME`; not carried over"),
                );
                continue;
            }
            names.push(format!("`{from}`"));
            set(out, &var, Secret::Env(from));
        }
        if !names.is_empty() {
            self.w.add(
                node.pos,
                key,
                format!(
                    "Kamal reads these from .kamal/secrets; wharf reads them from the wharf server's environment when it deploys: export {} there (or change them to {{ file = \"/path\" }})",
                    names.join(", ")
                ),
            );
        }
    }

    fn builder(&mut self, key: &str, node: &Node) -> Build {
        let mut b = Build::default();
        for e in self.w.map(node, key) {
            let k = join_key(key, &e.key);
            let v = &e.value;
            match e.key.as_str() {
                "dockerfile" | "context" => {
                    let Some(path) = self.lit(v, &k) else { continue };
                    // Kamal passes both to `docker build` run from the app
                    // directory, so they already are what wharf wants.
                    match tidy_relative(&path) {
                        Some(p) if e.key == "dockerfile" => b.dockerfile = Some(p),
                        Some(p) => b.context = Some(p),
                        None => self.w.add(
                            v.pos,
                            k,
                            format!("`{path}` is outside the app directory; wharf takes paths inside it. Not carried over"),
                        ),
                    }
                }
                "target" => b.target = self.lit(v, &k),
                "args" => {
                    for a in self.w.map(v, &k) {
                        let ak = join_key(&k, &a.key);
                        if a.value.is_null() {
                            self.w.add(a.key_pos, ak, "has no value; not carried over");
                        } else if let Some(val) = self.lit(&a.value, &ak) {
                            set(&mut b.args, &a.key, val);
                        }
                    }
                }
                "arch" | "multiarch" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf builds for the machine it deploys to; not carried over",
                ),
                "remote" | "local" | "driver" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf builds with the local Docker engine; not carried over",
                ),
                "cache" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf builds with the engine's default layer cache; not carried over",
                ),
                "secrets" | "ssh" => self.w.add(
                    e.key_pos,
                    k,
                    "build secrets and SSH forwarding are not supported by wharf builds yet; not carried over",
                ),
                _ => self.w.add(e.key_pos, k, "not supported by wharf builds; not carried over"),
            }
        }
        b
    }

    /// `servers`: a list of hosts (the primary role) or a mapping of roles.
    fn roles<'a>(&mut self, node: &'a Node) -> Vec<Role<'a>> {
        if let Some(hosts) = node.as_seq() {
            self.hosts_warning("servers", node.pos, hosts.len());
            return vec![Role {
                name: "web".into(),
                key: "servers".into(),
                pos: node.pos,
                node: None,
            }];
        }
        let Some(map) = node.as_map() else {
            self.w.add(
                node.pos,
                "servers",
                "expected a list of hosts or a mapping of roles; imported as one `web` process",
            );
            return vec![Role {
                name: "web".into(),
                key: "servers".into(),
                pos: node.pos,
                node: None,
            }];
        };
        map.iter()
            .map(|e| Role {
                name: e.key.clone(),
                key: format!("servers.{}", e.key),
                pos: e.key_pos,
                node: Some(&e.value),
            })
            .collect()
    }

    fn hosts_warning(&mut self, key: &str, pos: Pos, count: usize) {
        let s = if count == 1 { "" } else { "s" };
        self.w.add(
            pos,
            key,
            format!("Kamal deployed this to {count} host{s}; wharf deploys to the machine it runs on (several machines come later). Set `instances` to run more copies here"),
        );
    }

    fn role(
        &mut self,
        role: &Role<'_>,
        primary: &str,
        proxy: Option<&ProxySettings>,
        secrets: &mut Vec<(String, Secret)>,
    ) -> Process {
        let mut p = Process::default();
        // The primary role is behind kamal-proxy unless it says
        // `proxy: false`; other roles only when they say `proxy:`.
        let mut role_proxy: Option<Option<&Node>> = (role.name == primary).then_some(None);
        match role.node {
            Some(node) if node.as_seq().is_some() => {
                self.hosts_warning(&role.key, role.pos, node.as_seq().map_or(0, <[Node]>::len));
            }
            Some(node) if node.as_map().is_some() => {
                for e in node.as_map().unwrap_or_default() {
                    let k = join_key(&role.key, &e.key);
                    let v = &e.value;
                    match e.key.as_str() {
                        "hosts" => {
                            let n = v.as_seq().map_or(1, <[Node]>::len);
                            self.hosts_warning(&k, e.key_pos, n);
                        }
                        "cmd" => {
                            p.command = self.command(&k, v);
                            if p.command.is_none() {
                                self.w.add(
                                    e.key_pos,
                                    k,
                                    "imported without `command`, so this process runs the image's CMD until you set one",
                                );
                            }
                        }
                        "env" => {
                            let (env, s) = self.env(&k, v);
                            p.env = env;
                            for (key, secret) in s {
                                set(secrets, &key, secret);
                            }
                        }
                        "options" => {
                            let (memory, cpus) = self.options(&k, v);
                            p.memory = memory;
                            p.cpus = cpus;
                        }
                        "proxy" => {
                            role_proxy = match v.as_bool() {
                                Some(true) => Some(None),
                                Some(false) => None,
                                None => Some(Some(v)),
                            };
                        }
                        "labels" => self.w.add(e.key_pos, k, "wharf labels its containers itself; not carried over"),
                        "logging" => self.w.add(
                            e.key_pos,
                            k,
                            "wharf collects container output into its own logs (`wharf logs`); not carried over",
                        ),
                        "asset_path" => self.w.add(
                            e.key_pos,
                            k,
                            "wharf does not carry assets over from the previous release; not carried over",
                        ),
                        _ => self.w.add(e.key_pos, k, "not supported by wharf; not carried over"),
                    }
                }
            }
            Some(node) if !node.is_null() => self.w.add(
                node.pos,
                &role.key,
                format!(
                    "expected a list of hosts or a mapping, found {}; imported with defaults",
                    node.describe()
                ),
            ),
            _ => {}
        }
        if let Some(role_settings) = role_proxy {
            // The app-wide `proxy`, then the role's own settings over it.
            p.port = Some(80);
            p.http = Some(Http {
                host: None,
                path: "/".into(),
            });
            p.health = Some(Health {
                path: "/up".into(),
                ..Health::default()
            });
            if let Some(settings) = proxy {
                settings.apply(&mut p);
            }
            if let Some(node) = role_settings {
                self.proxy(&format!("{}.proxy", role.key), node)
                    .apply(&mut p);
            }
        }
        p
    }

    fn command(&mut self, key: &str, node: &Node) -> Option<String> {
        match node.as_seq() {
            Some(items) => self.argv(key, items).map(|argv| shell_join(&argv)),
            None => self.lit(node, key),
        }
    }

    /// `options` (extra `docker run` flags): memory and cpus map, the rest
    /// is warned about.
    fn options(&mut self, key: &str, node: &Node) -> (Option<String>, Option<f64>) {
        let (mut memory, mut cpus) = (None, None);
        for e in self.w.map(node, key) {
            let k = join_key(key, &e.key);
            match e.key.as_str() {
                "memory" | "m" => {
                    if let Some(m) = self.memory(&e.value, &k) {
                        memory = Some(m);
                    }
                }
                "cpus" => cpus = self.cpus(&e.value, &k),
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "a `docker run` option wharf does not set; not carried over",
                ),
            }
        }
        (memory, cpus)
    }

    /// kamal-proxy settings, read (and warned about) once.
    fn proxy(&mut self, key: &str, node: &Node) -> ProxySettings {
        let mut s = ProxySettings::default();
        let Some(map) = node.as_map() else {
            self.w.add(
                node.pos,
                key,
                format!(
                    "expected a mapping, found {}; not carried over",
                    node.describe()
                ),
            );
            return s;
        };
        for e in map {
            let k = join_key(key, &e.key);
            let v = &e.value;
            match e.key.as_str() {
                "host" => {
                    if let Some(h) = self.lit(v, &k) {
                        let hosts = h.split(',').map(str::trim).map(str::to_owned).collect();
                        s.host = self.first_host(&k, v.pos, hosts);
                    }
                }
                "hosts" => {
                    let hosts: Vec<String> = self.w.seq(v, &k).iter().filter_map(|h| self.lit(h, &k))
                        .collect();
                    s.host = self.first_host(&k, v.pos, hosts);
                }
                "app_port" => s.port = self.int(v, &k, 1, 65535).map(|n| n as u16),
                "path_prefix" => {
                    s.path = self
                        .lit(v, &k)
                        .map(|p| if p.starts_with('/') { p } else { format!("/{p}") });
                }
                "healthcheck" => {
                    for h in self.w.map(v, &k) {
                        let hk = join_key(&k, &h.key);
                        match h.key.as_str() {
                            "path" => s.health_path = self.lit(&h.value, &hk),
                            "interval" => s.interval = self.duration(&h.value, &hk),
                            "timeout" => s.timeout = self.duration(&h.value, &hk),
                            _ => self.w.add(h.key_pos, hk, "not supported by wharf; not carried over"),
                        }
                    }
                }
                "ssl" | "ssl_redirect" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf's proxy serves plain HTTP; not carried over: terminate TLS in front of it (a load balancer, Caddy, or a CDN)",
                ),
                "forward_headers" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf's proxy always sets X-Forwarded-For/-Proto/-Host; not carried over",
                ),
                "response_timeout" | "buffering" | "strip_path_prefix" | "logging" | "run" => {
                    self.w.add(e.key_pos, k, "a kamal-proxy setting wharf's proxy has no equivalent for; not carried over")
                }
                _ => self.w.add(e.key_pos, k, "not supported by wharf's proxy; not carried over"),
            }
        }
        s
    }

    fn first_host(&mut self, key: &str, pos: Pos, hosts: Vec<String>) -> Option<String> {
        let mut hosts = hosts.into_iter().filter(|h| !h.is_empty());
        let first = hosts.next()?;
        let rest: Vec<String> = hosts.map(|h| format!("`{h}`")).collect();
        if !rest.is_empty() {
            self.w.add(
                pos,
                key,
                format!(
                    "wharf routes one host per process; `{first}` was kept, {} not carried over",
                    rest.join(", ")
                ),
            );
        }
        Some(first.to_ascii_lowercase())
    }

    /// Kamal 1's top-level `healthcheck` (path, port) onto the routed
    /// process.
    fn kamal1_healthcheck(&mut self, e: &Entry, health: &mut Health, port: &mut Option<u16>) {
        for h in self.w.map(&e.value, "healthcheck") {
            let k = join_key("healthcheck", &h.key);
            match h.key.as_str() {
                "path" => {
                    if let Some(path) = self.lit(&h.value, &k) {
                        health.path = path;
                    }
                }
                "port" => {
                    if let Some(n) = self.int(&h.value, &k, 1, 65535) {
                        *port = Some(n as u16);
                    }
                }
                "interval" => health.interval = self.duration(&h.value, &k),
                _ => self
                    .w
                    .add(h.key_pos, k, "not supported by wharf; not carried over"),
            }
        }
    }

    /// `accessories`; `service` is the app's, which Kamal prefixes to
    /// accessory directories.
    fn accessories(&mut self, key: &str, node: &Node, service: &str) -> Vec<Accessory> {
        let mut out: Vec<Accessory> = Vec::new();
        for e in node.as_map().unwrap_or_default() {
            let k = join_key(key, &e.key);
            if e.value.as_map().is_none() {
                self.w.add(
                    e.value.pos,
                    k,
                    format!(
                        "expected a mapping, found {}; not imported",
                        e.value.describe()
                    ),
                );
                continue;
            }
            let name = unique_name(&e.key, "accessory", |n| out.iter().any(|a| a.name == n));
            let mut a = Accessory {
                renamed_from: (name != e.key).then(|| k.clone()),
                name,
                ..Accessory::default()
            };
            for f in e.value.as_map().unwrap_or_default() {
                let fk = join_key(&k, &f.key);
                let v = &f.value;
                match f.key.as_str() {
                    "image" => a.image = self.lit(v, &fk).unwrap_or_default(),
                    "cmd" => a.command = self.command(&fk, v),
                    "port" => {
                        if let Some(port) = self.accessory_port(&fk, v) {
                            a.ports.push(port.render());
                        }
                    }
                    "env" => {
                        let (env, secrets) = self.env(&fk, v);
                        a.env = env;
                        a.secrets = secrets;
                    }
                    "volumes" => {
                        for (i, item) in self.w.seq(v, &fk).iter().enumerate() {
                            let ik = format!("{fk}[{i}]");
                            if let Some(vol) = self.lit(item, &ik) {
                                if vol.starts_with('.') || vol.starts_with('~') {
                                    self.w.add(item.pos, ik, format!("`{vol}`: wharf needs a volume name or an absolute host path; not carried over"));
                                } else {
                                    a.volumes.push(vol);
                                }
                            }
                        }
                    }
                    "directories" => {
                        for (i, item) in self.w.seq(v, &fk).iter().enumerate() {
                            let ik = format!("{fk}[{i}]");
                            let Some(dir) = self.lit(item, &ik) else { continue };
                            match dir.split_once(':') {
                                Some((src, target)) if !src.starts_with('/') => {
                                    // Kamal makes a host directory per
                                    // accessory; a named volume keeps the
                                    // data the same way.
                                    let volume = format!("{}-{}", a.name, sanitize_name(src));
                                    self.w.add(
                                        item.pos,
                                        ik,
                                        format!("Kamal kept this in the host directory ~/{service}-{}/{src}; wharf keeps it in the named volume `{volume}`: copy existing data into it", e.key),
                                    );
                                    a.volumes.push(format!("{volume}:{target}"));
                                }
                                Some(_) => a.volumes.push(dir),
                                None => self.w.add(item.pos, ik, format!("`{dir}` is not `SOURCE:TARGET`; not carried over")),
                            }
                        }
                    }
                    "files" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf does not upload files; not carried over: copy them to the server and mount them with absolute host paths in `volumes`",
                    ),
                    "options" => {
                        let (memory, cpus) = self.options(&fk, v);
                        a.memory = memory;
                        a.cpus = cpus;
                    }
                    "host" | "hosts" | "role" | "roles" | "tag" | "tags" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf runs accessories on the machine it deploys to (several machines come later); not carried over",
                    ),
                    "labels" => self.w.add(f.key_pos, fk, "wharf labels its containers itself; not carried over"),
                    "service" => self.w.add(f.key_pos, fk, "wharf names accessory containers itself; not carried over"),
                    "registry" => self.w.add(f.key_pos, fk, "wharf pulls accessory images anonymously; not carried over"),
                    "proxy" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf's proxy routes to the app's processes, not to accessories; not carried over",
                    ),
                    "network" => self.w.add(
                        f.key_pos,
                        fk,
                        "wharf puts accessories on the app's network; not carried over",
                    ),
                    _ => self.w.add(f.key_pos, fk, "not supported by wharf; not carried over"),
                }
            }
            if a.image.is_empty() {
                self.w.add(
                    e.key_pos,
                    k,
                    "not imported: it has no `image` wharf can use",
                );
                continue;
            }
            out.push(a);
        }
        if node.as_map().is_none() && !node.is_null() {
            self.w.add(
                node.pos,
                key,
                format!(
                    "expected a mapping of accessories, found {}; not carried over",
                    node.describe()
                ),
            );
        }
        out
    }

    /// Kamal's accessory `port`: `5432`, `"5432:5432"` or
    /// `"127.0.0.1:5432:5432"`. Without a host IP Kamal (docker) binds every
    /// interface; wharf binds 127.0.0.1, which is said.
    fn accessory_port(&mut self, key: &str, node: &Node) -> Option<PortMap> {
        let text = self.lit(node, key)?;
        let mut port = match parse_port(&text) {
            Ok(p) => p,
            Err(why) => {
                self.w
                    .add(node.pos, key, format!("{why}; not carried over"));
                return None;
            }
        };
        if port.host_port.is_none() {
            port.host_port = Some(port.container_port);
        }
        if port.binds_all() {
            self.w.add(
                node.pos,
                key,
                format!(
                    "{} was published on every interface; wharf binds it to 127.0.0.1 ({}): add a host IP to expose it further",
                    show(node),
                    port.render()
                ),
            );
        }
        Some(port)
    }
}
