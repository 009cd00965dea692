//! `servers`: each role a process, with its command, env (kept on the
//! process), `docker run` options and proxy settings; host lists become a
//! warning, as wharf deploys to the machine it runs on.

use crate::common::{Values, join_key, shell_join};
use crate::model::{Health, Process, Secret, set};
use crate::yaml::{Entry, Node, Pos};

use super::Ctx;
use super::proxy::{ProxySettings, proxied};

#[derive(Debug)]
pub struct Role<'a> {
    pub name: String,
    /// `servers.NAME`, or `servers` for the list form.
    pub key: String,
    pub pos: Pos,
    /// The role's mapping, when it is one (not a list of hosts).
    pub node: Option<&'a Node>,
}

impl Ctx {
    /// `servers`: a list of hosts (the primary role) or a mapping of roles.
    pub(super) fn roles<'a>(&mut self, node: &'a Node, primary: &str) -> Vec<Role<'a>> {
        let single = |pos| {
            vec![Role {
                name: primary.to_owned(),
                key: "servers".into(),
                pos,
                node: None,
            }]
        };
        if let Some(hosts) = node.as_seq() {
            self.hosts_warning("servers", node.pos, hosts.len());
            return single(node.pos);
        }
        let Some(map) = node.as_map() else {
            self.w.add(
                node.pos,
                "servers",
                format!("expected a list of hosts or a mapping of roles; imported as one `{primary}` process, so any other role is missing"),
            );
            return single(node.pos);
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
            format!("Kamal deployed this to {count} host{s}; wharf deploys to the machine it runs on (several machines come later), so the other hosts get nothing: set `instances` to run more copies here"),
        );
    }

    pub(super) fn role(
        &mut self,
        role: &Role<'_>,
        primary: &str,
        proxy: Option<&ProxySettings>,
        secrets: &mut Vec<(String, Secret)>,
        asset_path: &mut Option<String>,
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
                        "env" => self.role_env(&k, e, &role.name, &mut p, secrets),
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
                        "asset_path" => match (asset_path.as_ref(), self.lit(v, &k)) {
                            (None, Some(path)) => *asset_path = Some(path),
                            (Some(top), Some(path)) if *top != path => self.w.add(
                                e.key_pos,
                                k,
                                format!("wharf bridges the assets of one path per app, `{top}`; not carried over, so assets under {path} of the previous release 404 during a deploy"),
                            ),
                            _ => {}
                        },
                        "labels" => self.w.add(
                            e.key_pos,
                            k,
                            "wharf labels its containers itself; not carried over, so what read these labels (monitoring, log shippers) no longer sees them",
                        ),
                        "logging" => self.w.add(
                            e.key_pos,
                            k,
                            "wharf collects container output into its own logs (`wharf logs`); not carried over, so this log driver and its options no longer apply",
                        ),
                        _ => self.w.add(
                            e.key_pos,
                            k,
                            "not supported by wharf; the process runs without it",
                        ),
                    }
                }
            }
            Some(node) if !node.is_null() => self.w.add(
                node.pos,
                &role.key,
                format!(
                    "expected a list of hosts or a mapping, found {}; imported with defaults, so it runs the image's CMD",
                    node.describe()
                ),
            ),
            _ => {}
        }
        if let Some(role_settings) = role_proxy {
            // The app-wide `proxy`, then the role's own settings over it.
            proxied(&mut p);
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

    /// A role's `env`: clear values stay on its process; secrets go to
    /// [secrets], which every process gets.
    fn role_env(
        &mut self,
        key: &str,
        e: &Entry,
        role: &str,
        p: &mut Process,
        secrets: &mut Vec<(String, Secret)>,
    ) {
        let (env, s) = self.env(key, &e.value);
        p.env = env;
        let mut names = Vec::new();
        for (k, secret) in s {
            names.push(format!("`{k}`"));
            set(secrets, &k, secret);
        }
        if !names.is_empty() {
            self.w.add(
                e.key_pos,
                key,
                format!("wharf's [secrets] are the app's, not a process's: {} went there, so every process gets them, not only `{role}`", names.join(", ")),
            );
        }
    }

    pub(super) fn command(&mut self, key: &str, node: &Node) -> Option<String> {
        match node.as_seq() {
            Some(items) => self.argv(key, items).map(|argv| shell_join(&argv)),
            None => self.lit(node, key),
        }
    }

    /// `options` (extra `docker run` flags): memory and cpus map, the rest
    /// is warned about.
    pub(super) fn options(&mut self, key: &str, node: &Node) -> (Option<String>, Option<f64>) {
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
                    "a `docker run` option wharf does not set; not carried over, so the container runs without it",
                ),
            }
        }
        (memory, cpus)
    }

    /// Kamal 1's top-level `healthcheck` (path, port) onto the routed
    /// process.
    pub(super) fn kamal1_healthcheck(
        &mut self,
        e: &Entry,
        health: &mut Health,
        port: &mut Option<u16>,
    ) {
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
                _ => self.w.add(
                    h.key_pos,
                    k,
                    "not supported by wharf's health checks; they run without it",
                ),
            }
        }
    }
}
