//! Kamal's `config/deploy.yml` → `wharf.toml`.
//!
//! Kamal deploys one image to the hosts of each role; wharf deploys an app
//! to the machine it runs on. So roles become processes (the primary role,
//! `web` unless `primary_role` says otherwise, is routed by the proxy like
//! kamal-proxy routes it, and wins a route another role also claims), host
//! lists become a warning, `proxy` becomes `port`/`http`/`health`, the
//! app's `volumes` go to every process, `env.clear`/`env.secret` become
//! `[env]` and `[secrets]` (read from the server's environment instead of
//! `.kamal/secrets`), and accessories stay accessories, reachable as
//! `<service>-<name>` as on Kamal's network. Kamal evaluates ERB
//! (`<%= … %>`) before reading the file; the import cannot, so such values
//! are warned about. A host still holding the placeholder `kamal init`
//! writes is an error: the app would be routed at a host nobody reaches.

use std::path::Path;

use crate::common::{Values, Warnings, abs_dir, dir_name, join_key, tidy_relative, volume_copy};
use crate::model::{App, Build, set};
use crate::yaml::{Node, Pos};
use crate::{Import, ImportError, app_name, header, parse_root};

mod accessories;
mod env;
mod placeholders;
mod proxy;
mod roles;

use roles::Role;

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
                format!("`{text}` is ERB, which Kamal evaluates before reading the file and the import cannot; not carried over, as if this key were not there: write the value it gives"),
            );
            return None;
        }
        Some(text.to_owned())
    }
}

pub fn import(path: &Path, source: &str, name: Option<&str>) -> Result<Import, ImportError> {
    let file = path.display().to_string();
    let mut c = Ctx {
        w: Warnings::new(&file),
    };
    let source = c.erb_lines(source);
    let root = parse_root(&file, &source, "kamal", "Kamal config (config/deploy.yml)")?;
    placeholders::check(&c.w, &root)?;

    // `config/deploy.yml` lives in the app's `config/` directory.
    let dir = abs_dir(path);
    let app_dir = if dir.file_name().is_some_and(|n| n == "config") {
        dir.parent().map(Path::to_path_buf).unwrap_or(dir)
    } else {
        dir
    };
    let service = root.get("service").and_then(|n| c.lit(n, "service"));
    let name = app_name(name, &[service.clone(), dir_name(&app_dir)], &file)?;
    // What Kamal prefixes container and directory names with.
    let service = service.unwrap_or_else(|| name.clone());
    let mut app = App {
        name,
        build: Some(Build::default()),
        ..App::default()
    };

    let primary = root
        .get("primary_role")
        .and_then(|n| c.lit(n, "primary_role"))
        .unwrap_or_else(|| "web".into());
    let mut proxy = None;
    let mut stop_timeout = None;
    let mut kamal1_health = None;
    let mut volumes = Vec::new();
    for e in root.as_map().unwrap_or_default() {
        let k = e.key.as_str();
        let v = &e.value;
        match k {
            "service" | "servers" | "primary_role" => {}
            "image" => c.w.add(
                e.key_pos,
                k,
                "wharf builds the image on this machine and tags it wharf/<app>:<version>, so nothing is pushed to or pulled from this repository any more",
            ),
            "proxy" => proxy = Some(c.proxy(k, v)),
            "env" => {
                let (env, secrets) = c.env(k, v);
                app.env = env;
                for (key, s) in secrets {
                    set(&mut app.secrets, &key, s);
                }
            }
            "builder" => app.build = Some(c.builder(k, v)),
            "accessories" => app.accessories = c.accessories(k, v, &service, &app.name),
            "volumes" => volumes = c.app_volumes(k, v, &app.name),
            "asset_path" => app.asset_path = c.lit(v, k),
            "registry" => c.w.add(
                e.key_pos,
                k,
                "wharf builds the image on the machine it deploys to and never pushes or pulls it, so the registry and its credentials are not needed",
            ),
            "ssh" | "sshkit" => c.w.add(
                e.key_pos,
                k,
                "wharf deploys to the machine it runs on, without SSH, so these settings are not needed",
            ),
            "boot" => c.w.add(
                e.key_pos,
                k,
                "wharf replaces instances on one machine with zero downtime, so there are no rollout batches to size",
            ),
            "aliases" => c.w.add(
                e.key_pos,
                k,
                "wharf has no command aliases, so these commands are gone: use `wharf run -- CMD` or `wharf exec PROCESS -- CMD`",
            ),
            "logging" => c.w.add(
                e.key_pos,
                k,
                "wharf collects container output into its own logs (`wharf logs`); not carried over, so this log driver and its options no longer apply",
            ),
            "labels" => c.w.add(
                e.key_pos,
                k,
                "wharf labels its containers itself; not carried over, so what read these labels (monitoring, log shippers) no longer sees them",
            ),
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
                "wharf counts a process without `http` as ready once it has stayed up for a short grace period (not this long), so a deploy may go on before a slow worker is up",
            ),
            "healthcheck" => kamal1_health = Some(e),
            "traefik" => c.w.add(
                e.key_pos,
                k,
                "Kamal 1's Traefik settings: wharf has its own proxy (see `http` and `health` of the web process), so Traefik options and middlewares no longer apply",
            ),
            "hooks_path" => c.w.add(
                e.key_pos,
                k,
                "wharf runs no Kamal hooks, so what they did around a deploy no longer happens: a pre-deploy hook that migrates belongs in `release_command`, a build step in [build] `command`",
            ),
            "error_pages_path" => c.w.add(
                e.key_pos,
                k,
                "wharf's proxy serves its own error pages, so these pages are not shown",
            ),
            "require_destination" | "minimum_version" | "allow_empty_roles" | "run_directory"
            | "secrets_path" => c.w.add(
                e.key_pos,
                k,
                "Kamal's own setting; not needed by wharf, which changes nothing",
            ),
            _ if k.starts_with("x-") => c.w.add(
                e.key_pos,
                k,
                "extension field; ignored, which changes nothing",
            ),
            _ => c.w.add(
                e.key_pos,
                k,
                "not a Kamal key wharf knows; ignored, so whatever it was meant to do does not happen",
            ),
        }
    }

    // Roles, each a process. Without `servers`, Kamal has nothing to
    // deploy; wharf still needs one process, so a web one is assumed.
    let mut roles = match root.get("servers") {
        Some(servers) => c.roles(servers, &primary),
        None => {
            c.w.add(
                root.pos,
                "servers",
                format!("no `servers`: imported as one `{primary}` process running the image's CMD, which Kamal would not have deployed; check it"),
            );
            vec![Role {
                name: primary.clone(),
                key: "servers".into(),
                pos: root.pos,
                node: None,
            }]
        }
    };
    if !roles.iter().any(|r| r.name == primary)
        && let Some(n) = root.get("primary_role")
    {
        c.w.add(
            n.pos,
            "primary_role",
            format!("there is no role `{primary}`, so no role is routed by wharf's proxy unless it has its own `proxy`: requests to the app's hosts will get 404"),
        );
    }
    // The primary role first: it keeps a route another role also claims.
    roles.sort_by_key(|r| r.name != primary);
    let kamal1 = root.get("traefik").is_some() || kamal1_health.is_some();
    let mut used = std::collections::HashSet::new();
    for role in roles {
        let mut p = c.role(
            &role,
            &primary,
            proxy.as_ref(),
            &mut app.secrets,
            &mut app.asset_path,
        );
        let name = crate::common::unique_name(&role.name, "web", |n| used.contains(n));
        used.insert(name.clone());
        if name != role.name {
            p.renamed_from = Some(role.key.clone());
        }
        p.name = name;
        if p.stop_timeout.is_none() {
            p.stop_timeout.clone_from(&stop_timeout);
        }
        p.volumes.clone_from(&volumes);
        if let Some(http) = &p.http {
            let clash = app.processes.iter().find(|o| {
                o.http.as_ref().is_some_and(|h| {
                    h.path == http.path
                        && (h.hosts.is_empty() && http.hosts.is_empty()
                            || h.hosts.iter().any(|x| http.hosts.contains(x)))
                })
            });
            if let Some(other) = clash {
                c.w.add(
                    role.pos,
                    &role.key,
                    format!(
                        "`{}` is already routed at the same host and path, so this role is not routed by wharf's proxy and gets no requests: give it its own `proxy.host`",
                        other.name
                    ),
                );
                p.http = None;
                p.health = None;
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
            "no process is routed by the proxy, so there is nothing to health-check; ignored, which changes nothing",
        );
    }

    let warnings = c.w.len();
    let toml = app.render(&header(&file, "kamal", warnings));
    Ok(Import {
        toml,
        warnings: c.w.into_sorted(),
    })
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
                    format!("`{code}` is ERB code, which Kamal runs before reading the file and the import cannot; ignored, so whatever it changes in the file (or loads into the environment) is not there: check what it would change"),
                );
                out.push_str(&" ".repeat(body.chars().count()));
                out.push_str(&line[body.len()..]);
            } else {
                out.push_str(line);
            }
        }
        out
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
                            format!("`{path}` is outside the app directory; wharf takes paths inside it, so the default (`Dockerfile`, `.`) is used instead: move it into the app"),
                        ),
                    }
                }
                "target" => b.target = self.lit(v, &k),
                "args" => {
                    for a in self.w.map(v, &k) {
                        let ak = join_key(&k, &a.key);
                        if a.value.is_null() {
                            self.w.add(
                                a.key_pos,
                                ak,
                                "has no value; not carried over, so the Dockerfile's default for it is used",
                            );
                        } else if let Some(val) = self.lit(&a.value, &ak) {
                            set(&mut b.args, &a.key, val);
                        }
                    }
                }
                "arch" | "multiarch" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf builds for the machine it deploys to, so there is no architecture to choose",
                ),
                "remote" | "local" | "driver" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf builds with the Docker engine of the machine it deploys to, so no remote builder is used",
                ),
                "cache" => self.w.add(
                    e.key_pos,
                    k,
                    "wharf builds with the engine's own layer cache; not carried over, so the first build may take longer",
                ),
                "secrets" | "ssh" => self.w.add(
                    e.key_pos,
                    k,
                    "build secrets and SSH forwarding are not supported by wharf builds yet; not carried over, so a Dockerfile step that needs them fails",
                ),
                _ => self.w.add(
                    e.key_pos,
                    k,
                    "not supported by wharf builds; the image is built without it",
                ),
            }
        }
        b
    }

    /// The app's `volumes`, mounted into every role's containers: named
    /// volumes (which Kamal names as written, wharf `wharf-<app>-<name>`)
    /// and host paths.
    fn app_volumes(&mut self, key: &str, node: &Node, app: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, item) in self.w.seq(node, key).iter().enumerate() {
            let ik = format!("{key}[{i}]");
            let Some(vol) = self.lit(item, &ik) else {
                continue;
            };
            if let Some(volume) = self.volume(&ik, item.pos, &vol, app, "every process") {
                out.push(volume);
            }
        }
        out
    }

    /// One `SOURCE:TARGET[:MODE]` volume: kept when wharf takes it as is,
    /// with a warning on a named volume about where Kamal's data is.
    fn volume(&mut self, key: &str, pos: Pos, vol: &str, app: &str, of: &str) -> Option<String> {
        let source = vol.split(':').next().unwrap_or_default();
        if vol.split(':').count() < 2 {
            self.w.add(
                pos,
                key,
                format!("`{vol}` is not `SOURCE:TARGET`: an anonymous volume, whose data is lost whenever the container is replaced; not carried over: name it to keep the data"),
            );
            return None;
        }
        if source.starts_with('.') || source.starts_with('~') {
            self.w.add(
                pos,
                key,
                format!("`{source}` is a path docker would not take from Kamal either; not carried over, so nothing is mounted for {of}: write the absolute host path"),
            );
            return None;
        }
        if !source.starts_with('/') {
            let to = format!("wharf-{app}-{source}");
            self.w.add(
                pos,
                key,
                format!("Kamal keeps this data in the docker volume `{source}`; wharf mounts `{to}` instead, which starts empty, so what is stored there now (a SQLite database, uploads) will not be seen by {of}: before the first deploy, stop the Kamal containers and copy it with `{}`", volume_copy(source, &to)),
            );
        }
        Some(vol.to_owned())
    }
}
