//! One service as a process (the app, a worker running the app's image, or
//! a process with an image of its own) or as an accessory, and the keys
//! every service may have: `build`, `command`/`entrypoint`, `deploy`,
//! `restart`, and those wharf has no counterpart for.

use std::collections::HashSet;

use crate::common::{Values, is_alias, join_key, shell_join, show, tidy_relative, unique_name};
use crate::model::{Accessory, Build, Http, Process, Secret, Tls, set};
use crate::yaml::{Entry, Node, Pos};

use super::Ctx;
use super::env::{EnvValue, add_secret};
use super::ports::Route;
use super::services::Service;

/// What a process is in the app.
#[derive(Debug)]
pub enum Part {
    /// The service that publishes HTTP: routed by the proxy.
    App(Route),
    /// Another service: a worker, or a process with its own image.
    Other(Route),
}

/// A process and the plain env it was given (shared env moves to [env]).
#[derive(Debug)]
pub struct Imported {
    pub process: Process,
    pub env: Vec<(String, String)>,
}

impl Ctx {
    /// `command`/`entrypoint`: a string (kept as written: compose splits it
    /// with shell quoting, as wharf does) or a list (joined with quoting).
    pub(super) fn command(&mut self, key: &str, node: &Node) -> Option<String> {
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
    pub(super) fn build(&mut self, key: &str, node: &Node) -> Result<Build, String> {
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
                    context = self
                        .lit(&e.value, &k)
                        .ok_or("its build context is not a plain path")?;
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
                    "wharf builds with the engine's own layer cache; not carried over, so the first build may take longer",
                ),
                "secrets" | "ssh" => self.w.add(
                    e.key_pos,
                    k,
                    "build secrets and SSH forwarding are not supported by wharf builds yet; not carried over, so a Dockerfile step that needs them fails",
                ),
                "platforms" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf builds for the engine's own platform only; not carried over, so no image is made for the others",
                ),
                "tags" | "labels" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf tags and labels the images it builds itself (wharf/<app>:<version>); not carried over, so nothing is tagged or pushed under these names",
                ),
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "not supported by wharf builds; the image is built without it",
                ),
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
            let text = match &v {
                Some(v) => v.as_str().map(str::to_owned),
                None => Some(format!("${{{k}}}")),
            };
            let Some(text) = text else { continue };
            let r = super::interp::resolve(&text, &self.vars);
            match r.text {
                Some(value)
                    if super::env::looks_secret(&k, &value)
                        && r.uses
                            .iter()
                            .any(|u| u.source == super::interp::Source::DotEnv) =>
                {
                    self.w.add(
                        kpos,
                        item_key,
                        "compose takes it from .env and it looks like a secret, so it was not written to wharf.toml; the image is built without it: add it to [build] `args` by hand if the build needs it",
                    );
                }
                _ => {
                    let node = v.unwrap_or(Node {
                        pos: kpos,
                        kind: crate::yaml::Kind::Scalar { text, quoted: true },
                    });
                    if let Some(value) = self.lit(&node, &item_key) {
                        set(&mut out, &k, value);
                    }
                }
            }
        }
        out
    }

    /// A service as a process.
    pub(super) fn process(
        &mut self,
        s: &Service,
        part: Part,
        used: &mut HashSet<String>,
        secrets: &mut Vec<(String, Secret)>,
    ) -> Imported {
        let svc = format!("services.{}", s.key);
        let name = unique_name(&s.key, "web", |n| used.contains(n));
        used.insert(name.clone());
        let mut p = Process {
            renamed_from: (name != s.key).then(|| svc.clone()),
            name,
            ..Process::default()
        };
        if p.name != s.key {
            self.renamed_processes.push((s.key.clone(), p.name.clone()));
        }
        let mut limits = Limits::default();
        let mut env = Vec::new();
        let mut ports = Vec::new();
        let mut exposed = Vec::new();
        let mut healthcheck = None;
        // Environment first: `secrets` may rewrite `X_FILE` variables.
        if let Some(env_node) = s.get("environment") {
            env = self.environment(&format!("{svc}.environment"), env_node, "");
        }
        let route = match &part {
            Part::App(r) | Part::Other(r) => r,
        };
        for f in s.entries() {
            let k = join_key(&svc, &f.key);
            let v = &f.value;
            match f.key.as_str() {
                "build" | "image" | "environment" | "profiles" | "extends" => {}
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
                "entrypoint" => {
                    p.entrypoint = match v.as_seq() {
                        Some([]) => Some(String::new()),
                        _ => self.command(&k, v),
                    };
                }
                "env_file" => p.env_file = self.env_files(&k, v),
                "volumes" => p.volumes = self.volumes(&k, v, "process's container"),
                "ports" => ports = self.ports(&k, v),
                "expose" => exposed = self.expose(&k, v),
                "labels" => self.labels_warning(f, &k, route),
                "healthcheck" => healthcheck = Some(f),
                "deploy" => self.deploy(&k, v, &mut limits),
                "scale" => {
                    limits.instances = self.int(v, &k, 1, 64).map(|n| (n as u32, v.pos, k.clone()));
                }
                "mem_limit" => limits.memory = self.memory(v, &k),
                "cpus" => limits.cpus = self.cpus(v, &k),
                "restart" => limits.restart = self.restart(v, &k),
                "stop_grace_period" => p.stop_timeout = self.duration(v, &k),
                "secrets" => self.service_secrets(&k, v, &mut env),
                "container_name" | "hostname" => {
                    if let Some(host) = v.as_str()
                        && host != p.name
                    {
                        self.renamed_processes
                            .push((host.to_owned(), p.name.clone()));
                    }
                    self.w.add(
                        f.key_pos,
                        k,
                        format!("wharf names containers itself; on the app's network this process is `{}`, so other services must use that name", p.name),
                    );
                }
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

        let routed = match &part {
            Part::App(_) => true,
            Part::Other(r) => !r.hosts.is_empty() || r.path.is_some(),
        };
        if routed {
            self.route_process(
                &mut p,
                &svc,
                s.key_pos,
                route,
                &ports,
                &exposed,
                healthcheck,
            );
        } else {
            self.publish(&mut p, &svc, &ports);
            if let Some(h) = healthcheck {
                self.w.add(
                    h.key_pos,
                    format!("{svc}.healthcheck"),
                    "wharf health-checks only processes it routes HTTP to; this one counts as ready once it stays up, so the check does not run and a stuck process is not restarted",
                );
            }
        }

        let mut plain = Vec::new();
        for (k, v) in env {
            match v {
                EnvValue::Plain(v) => plain.push((k, v)),
                EnvValue::Secret(sec) => add_secret(&mut self.w, secrets, &k, sec, s.key_pos, &svc),
            }
        }
        Imported {
            process: p,
            env: plain,
        }
    }

    /// `http`, `port` and `health` of a routed process.
    #[allow(clippy::too_many_arguments)]
    fn route_process(
        &mut self,
        p: &mut Process,
        svc: &str,
        svc_pos: Pos,
        route: &Route,
        ports: &[(usize, Pos, crate::common::PortMap)],
        exposed: &[u16],
        healthcheck: Option<&Entry>,
    ) {
        let chosen = route
            .port
            .or_else(|| {
                ports
                    .iter()
                    .find(|(_, _, p)| !p.udp)
                    .map(|(_, _, p)| p.container_port)
            })
            .or_else(|| exposed.first().copied());
        p.port = chosen;
        for (i, pos, port) in ports {
            let k = format!("{svc}.ports[{i}]");
            if port.udp {
                self.w.add(
                    *pos,
                    k,
                    "wharf routes HTTP (TCP) only; this UDP port is not carried over, so nothing answers on it",
                );
            } else if Some(port.container_port) != chosen {
                self.w.add(
                    *pos,
                    k,
                    format!("wharf routes HTTP to one port per process ({}); port {} is not published, so clients of it get no answer: serve it from another process", chosen.unwrap_or_default(), port.container_port),
                );
            } else if let Some(host) = port.host_port {
                self.w.add(
                    *pos,
                    k,
                    format!(
                        "compose published it on host port {host}; wharf's proxy serves it on its own HTTP listener instead (`http`), so http://SERVER:{host}/ no longer answers: point clients and any proxy in front at wharf's listener"
                    ),
                );
            }
        }
        if p.port.is_none() {
            self.w.add(
                svc_pos,
                svc,
                "publishes no port, so wharf picks one and sets PORT: if the app listens on a fixed port instead, set `port`, or no instance ever becomes healthy",
            );
        }
        let mut hosts = Vec::new();
        for h in &route.hosts {
            if is_host(h) {
                hosts.push(h.clone());
            } else {
                self.w.add(
                    svc_pos,
                    format!("{svc}.labels"),
                    format!("`{h}` is not a hostname wharf can route (lowercase labels, no wildcard or port); requests for it will get 404 from wharf's proxy"),
                );
            }
        }
        let tls = (route.tls && !hosts.is_empty()).then_some(Tls::Acme);
        p.http = Some(Http {
            hosts,
            path: route.path.clone().unwrap_or_else(|| "/".into()),
            tls,
            ..Http::default()
        });
        p.health = Some(self.process_health(svc, svc_pos, p.port, healthcheck));
    }

    /// `ports` of a process wharf does not route: published as they were.
    fn publish(
        &mut self,
        p: &mut Process,
        svc: &str,
        ports: &[(usize, Pos, crate::common::PortMap)],
    ) {
        for (i, pos, port) in ports {
            let k = format!("{svc}.ports[{i}]");
            if port.host_port.is_none() {
                self.w.add(
                    *pos,
                    k,
                    format!("compose published it on a random host port; not carried over, so only the app's network reaches it, as `{}:{}`", p.name, port.container_port),
                );
                continue;
            }
            if p.instances.is_some_and(|n| n > 1) {
                self.w.add(
                    *pos,
                    k,
                    format!("a host port takes one instance, and this process runs {}; not published, so clients outside the app's network get no answer", p.instances.unwrap_or(1)),
                );
                continue;
            }
            if port.binds_all() {
                self.w.add(
                    *pos,
                    k,
                    format!("compose bound it on every interface; wharf binds it to 127.0.0.1 ({}), so other machines can no longer reach it: add a host IP to expose it further", port.render()),
                );
            }
            p.ports.push(port.render());
        }
    }

    fn labels_warning(&mut self, f: &Entry, k: &str, route: &Route) {
        let rest: Vec<String> = super::services::labels_of(&f.value)
            .into_iter()
            .map(|(k, _)| k)
            .filter(|l| !route.used.contains(l))
            .collect();
        let routed = !route.used.is_empty();
        let msg = match (routed, rest.is_empty()) {
            (true, true) => "the router's labels were carried over as `http` (hosts, path, TLS, port); wharf's proxy routes it now, so the router in front no longer needs to".to_owned(),
            (true, false) => format!("the router's labels were carried over as `http`; the others ({}) are not set, as wharf labels its containers itself, so what read them (router middlewares, monitoring) no longer sees this service", rest.join(", ")),
            _ => "wharf labels its containers itself; not carried over, so what read these labels (a router, monitoring) no longer sees this service".to_owned(),
        };
        self.w.add(f.key_pos, k, msg);
    }

    /// A service as an accessory.
    pub(super) fn accessory(
        &mut self,
        s: &Service,
        image: Option<String>,
        build: Option<Build>,
        used: &mut HashSet<String>,
    ) -> Accessory {
        let svc = format!("services.{}", s.key);
        let name = unique_name(&s.key, "accessory", |n| used.contains(n));
        used.insert(name.clone());
        let mut a = Accessory {
            renamed_from: (name != s.key).then(|| svc.clone()),
            name,
            image: image.unwrap_or_default(),
            build,
            ..Accessory::default()
        };
        // The name the app knows it by stays: a network alias.
        let mut aliases = vec![s.key.clone()];
        let mut env = Vec::new();
        if let Some(env_node) = s.get("environment") {
            let table = format!("accessories.{}.", crate::model::key(&a.name));
            env = self.environment(&format!("{svc}.environment"), env_node, &table);
        }
        let mut limits = Limits::default();
        for f in s.entries() {
            let k = join_key(&svc, &f.key);
            let v = &f.value;
            match f.key.as_str() {
                "environment" | "image" | "build" | "profiles" | "extends" => {}
                "command" => a.command = self.command(&k, v),
                "ports" => {
                    for (i, pos, port) in self.ports(&k, v) {
                        let pk = format!("{k}[{i}]");
                        if port.host_port.is_none() {
                            self.w.add(
                                pos,
                                pk,
                                format!(
                                    "compose published it on a random host port; not carried over, so only the app's network reaches it, as `{}:{}`",
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
                                    "compose bound it on every interface; wharf binds it to 127.0.0.1 ({}), so other machines can no longer reach it: add a host IP to expose it further",
                                    port.render()
                                ),
                            );
                        }
                        a.ports.push(port.render());
                    }
                }
                "volumes" => a.volumes = self.volumes(&k, v, "accessory"),
                "healthcheck" => a.health = self.accessory_health(&k, v),
                "deploy" => self.deploy(&k, v, &mut limits),
                "mem_limit" => limits.memory = self.memory(v, &k),
                "cpus" => limits.cpus = self.cpus(v, &k),
                "restart" => limits.restart = self.restart(v, &k),
                "secrets" => self.service_secrets(&k, v, &mut env),
                "container_name" | "hostname" => match v.as_str() {
                    Some(host) if is_alias(host) => aliases.push(host.to_owned()),
                    _ => self.service_key(f, &k, false),
                },
                "networks" => {
                    for net in v.as_map().unwrap_or_default() {
                        for alias in net
                            .value
                            .get("aliases")
                            .and_then(Node::as_seq)
                            .unwrap_or_default()
                        {
                            aliases.extend(alias.as_str().filter(|a| is_alias(a)).map(str::to_owned));
                        }
                    }
                    self.service_key(f, &k, false);
                }
                "entrypoint" => self.w.add(
                    f.key_pos,
                    k,
                    "wharf keeps an accessory image's ENTRYPOINT and replaces only its CMD (`command`); not carried over, so the image's own entrypoint runs: build an image with this ENTRYPOINT, or fold it into `command` if the image has none",
                ),
                "scale" => {
                    limits.instances = self
                        .int(v, &k, 1, 64)
                        .map(|n| (n as u32, v.pos, k.clone()));
                }
                _ => self.service_key(f, &k, false),
            }
        }
        for alias in aliases {
            if alias != a.name && is_alias(&alias) && !a.aliases.contains(&alias) {
                a.aliases.push(alias);
            }
        }
        if let Some((n, pos, key)) = limits.instances
            && n != 1
        {
            self.w.add(
                pos,
                key,
                format!("wharf runs one container per accessory; not carried over, so {n} copies become one"),
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
                EnvValue::Secret(sec) => set(&mut a.secrets, &k, sec),
            }
        }
        a
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
                                "wharf sets limits, not reservations; not carried over, so nothing is set aside for it on a busy server",
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
                                    "not supported by wharf; not carried over, so this limit does not apply",
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
                                    self.w.add(r.value.pos, rk, format!("{} is not `none`, `on-failure` or `any`; not carried over, so wharf's default (`always`) applies", show(&r.value)));
                                    None
                                }
                            };
                        } else {
                            self.w.add(
                                r.key_pos,
                                rk,
                                "wharf restarts with its own backoff (100ms up to 10s) and no limit, so a process that keeps failing is restarted beyond this many attempts",
                            );
                        }
                    }
                }
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "a swarm setting wharf has no equivalent for; not carried over, so it has no effect",
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
                    format!("`{text}` is not `no`, `always`, `on-failure` or `unless-stopped`; not carried over, so wharf's default (`always`) applies"),
                );
                return None;
            }
        };
        if let Some(n) = extra {
            self.w.add(
                node.pos,
                key,
                format!("wharf restarts with backoff and no retry limit, so a process that keeps failing is restarted beyond the {n} restarts compose allowed"),
            );
        }
        Some(RestartSetting {
            policy: mapped,
            written: policy,
            pos: node.pos,
            key: key.to_owned(),
        })
    }

    /// Service keys with no counterpart in wharf: one warning each, saying
    /// what changes.
    pub(super) fn service_key(&mut self, f: &Entry, key: &str, process: bool) {
        let msg = match f.key.as_str() {
            "depends_on" => {
                "nothing to change: wharf boots accessories before the app, runs the release command, then starts the processes of a release together"
            }
            "networks" | "network_mode" | "links" | "external_links" => {
                "wharf puts the app and its accessories on one network of its own, where each is reachable by its name; not carried over, so other networks (and services on them outside this file) are not reachable"
            }
            "container_name" | "hostname" => {
                "wharf names containers itself; not carried over, so this name does not resolve on the app's network"
            }
            "labels" => {
                "wharf labels its containers itself; not carried over, so what read these labels (a router, monitoring) no longer sees this service"
            }
            "logging" => {
                "wharf collects container output into its own logs (`wharf logs`); not carried over, so this log driver and its rotation no longer apply"
            }
            "configs" => {
                "wharf has no configs; not carried over, so the file is missing in the container: copy it into the image, or mount it with `volumes`"
            }
            "user" | "working_dir" if process => {
                "not carried over, so the image's USER / WORKDIR apply: set them in the Dockerfile"
            }
            "stop_grace_period" => {
                "accessories are stopped with the engine's default timeout (10s); not carried over, so a slower shutdown is cut short"
            }
            "stop_signal" => {
                "wharf stops containers with SIGTERM, then SIGKILL; not carried over, so an app that expects this signal to shut down cleanly gets SIGTERM"
            }
            "pull_policy" => {
                "wharf builds the app's image and pulls accessory images when missing; not carried over, so a newer image of the same tag is not pulled"
            }
            "privileged" | "cap_add" | "cap_drop" | "devices" | "security_opt" => {
                "not supported by wharf; not carried over, so the container runs without these privileges and what needs them fails"
            }
            "extra_hosts" | "dns" | "dns_search" => {
                "not supported by wharf; not carried over, so these names do not resolve in the container"
            }
            k if k.starts_with("x-") => "extension field; ignored, which changes nothing",
            _ => "not supported by wharf; not carried over, so the container runs without it",
        };
        self.w.add(f.key_pos, key, msg);
    }
}

/// A hostname wharf can route.
fn is_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        })
}

/// Resource settings found in several places of a service (`deploy`,
/// `mem_limit`, `scale`…); the last one written wins, as in compose.
#[derive(Debug, Default)]
struct Limits {
    /// With where and under which key it was set.
    instances: Option<(u32, Pos, String)>,
    memory: Option<String>,
    cpus: Option<f64>,
    restart: Option<RestartSetting>,
}

/// A service's `restart` or `deploy.restart_policy.condition`, as read.
#[derive(Debug)]
struct RestartSetting {
    /// wharf's policy: `always`, `on-failure` or `never`.
    policy: &'static str,
    /// The compose policy as written, without a `:N` retry limit.
    written: String,
    pos: Pos,
    /// The dotted key it was read from.
    key: String,
}
