//! `docker-compose.yml` → `wharf.toml`.
//!
//! The app is the service that publishes HTTP (or the one named with
//! `--service`, [`services::choose_app`]); it may be built or a prebuilt
//! image. Every other service running the same image or build is a process
//! of the app; a one-shot job others wait for with
//! `service_completed_successfully` is a `release_command`; a service built
//! from another directory is a process with its own `build` (or an
//! accessory when it is a database); an image-only service is an
//! accessory, reachable under its compose name. Values are interpolated as
//! compose would ([`interp`]) with the `.env` next to the file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::common::{Values, Warnings, abs_dir, dir_name};
use crate::model::{App, Build, Secret};
use crate::yaml::{Node, Pos};
use crate::{ComposeOptions, Import, ImportError, app_name, header, parse_root};

mod env;
mod health;
mod interp;
mod ports;
mod process;
mod services;
mod volumes;

use env::{EnvValue, add_secret, mentions};
use interp::{Vars, describe, parse_dotenv, quoted, resolve};
use process::{Imported, Part};
use services::{Candidate, Service, Why, choose_app, is_datastore, is_proxy};
use volumes::{NamedVolumes, project_name};

struct Ctx {
    w: Warnings,
    /// The compose file's directory, absolute: relative host paths are
    /// relative to it.
    base: PathBuf,
    /// `.env` next to the compose file.
    vars: Vars,
    /// Top-level `secrets`: name → where its value comes from.
    top_secrets: Vec<(String, Option<Secret>)>,
    volumes: NamedVolumes,
    /// Compose's project name, which prefixes its volumes.
    project: String,
    /// The app's name in wharf.
    app: String,
    /// Hostnames of processes (compose name, container name) that are not
    /// their wharf name, with that name.
    renamed_processes: Vec<(String, String)>,
}

impl Values for Ctx {
    const DURATION: &'static str = "a duration (like `30s` or `1m30s`)";

    fn warnings(&mut self) -> &mut Warnings {
        &mut self.w
    }

    /// A scalar's text after interpolation, or a warning and `None`.
    fn lit(&mut self, node: &Node, key: &str) -> Option<String> {
        let text = self.w.scalar(node, key)?.to_owned();
        let r = resolve(&text, &self.vars);
        match r.text.clone() {
            Some(value) if r.uses.is_empty() => Some(value),
            Some(value) => {
                let mut names = r.names(&interp::Source::Default);
                names.extend(r.names(&interp::Source::DotEnv));
                self.w.add(
                    node.pos,
                    key,
                    format!(
                        "`{text}` was written as `{value}` ({}): wharf does not interpolate, so setting {} on the server will no longer change it",
                        describe(&r.uses),
                        quoted(&names)
                    ),
                );
                Some(value)
            }
            None => {
                self.w.add(
                    node.pos,
                    key,
                    format!(
                        "`{text}` needs {} from the environment compose runs in, which is not in .env; not carried over, as if this key were not there: write the value it should have",
                        quoted(&r.names(&interp::Source::Unset))
                    ),
                );
                None
            }
        }
    }
}

impl Ctx {
    /// `text` interpolated, or as written when a variable is unknown; for
    /// reading what a value says without warning about it twice.
    fn resolve_quiet(&self, text: &str) -> String {
        resolve(text, &self.vars)
            .text
            .unwrap_or_else(|| text.to_owned())
    }
}

/// What is known of a service before deciding what it becomes.
#[derive(Debug)]
struct Info {
    service: Service,
    build: Option<Build>,
    image: Option<String>,
}

pub fn import(path: &Path, source: &str, opts: &ComposeOptions<'_>) -> Result<Import, ImportError> {
    let file = path.display().to_string();
    let root = parse_root(&file, source, "compose", "compose file")?;
    let base = abs_dir(path);
    let mut c = Ctx {
        w: Warnings::new(&file),
        base: base.clone(),
        vars: Vars::default(),
        top_secrets: Vec::new(),
        volumes: NamedVolumes::default(),
        project: String::new(),
        app: String::new(),
        renamed_processes: Vec::new(),
    };
    if let Some(text) = opts.dotenv {
        let (vars, problems) = parse_dotenv(text);
        c.vars = vars;
        let dotenv = path.with_file_name(".env").display().to_string();
        for p in problems {
            c.w.add_in(
                &dotenv,
                p.line,
                ".env",
                format!("{}; `docker compose` refuses this file too, and what the line would set is unknown here, so values using it were imported as if it were unset", p.message),
            );
        }
    }

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

    let declared = root.get("name").and_then(|n| c.lit(n, "name"));
    let project = declared
        .clone()
        .or_else(|| c.vars.get("COMPOSE_PROJECT_NAME").map(str::to_owned))
        .or_else(|| dir_name(&base));
    c.project = project_name(project.as_deref().unwrap_or("app"));
    let name = app_name(opts.name, &[project, dir_name(&base)], &file)?;
    c.app = name.clone();
    top_level(&mut c, &root);

    // Each service once, in file order, checked to be a mapping.
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
    }
    let names = || {
        services
            .iter()
            .map(|e| format!("`{}`", e.key))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(asked) = opts.service
        && !services.iter().any(|e| e.key == asked)
    {
        return Err(ImportError::UnknownService {
            file,
            name: asked.to_owned(),
            services: names(),
        });
    }

    let prepared = services::prepare(&mut c.w, services, opts.service);
    let jobs = services::jobs(&prepared);
    let mut infos: Vec<Info> = Vec::new();
    let mut unbuildable = Vec::new();
    for s in prepared {
        let key = format!("services.{}", s.key);
        let build = match s.get("build") {
            Some(b) => match c.build(&format!("{key}.build"), b) {
                Ok(build) => Some(build),
                Err(reason) => {
                    c.w.add(
                        b.pos,
                        format!("{key}.build"),
                        format!("service not imported, so it will not run: {reason}"),
                    );
                    unbuildable.push(format!("`{}`: {reason}", s.key));
                    continue;
                }
            },
            None => None,
        };
        let image = s
            .get("image")
            .and_then(|n| c.lit(n, &format!("{key}.image")));
        if build.is_none() && image.is_none() {
            let why = if s.get("image").is_some() {
                "its image is not known (see the warning on `image`)"
            } else {
                "it has neither `build` nor `image`"
            };
            c.w.add(
                s.key_pos,
                key,
                format!("not imported, so it will not run: {why}"),
            );
            continue;
        }
        infos.push(Info {
            service: s,
            build,
            image,
        });
    }

    let mut cands: Vec<Candidate> = infos
        .iter()
        .map(|i| {
            let mut cand = Candidate::of(&i.service, &c.vars, &jobs);
            cand.image.clone_from(&i.image);
            cand.builds = i.build.is_some();
            cand
        })
        .collect();
    for i in &infos {
        if is_proxy(&i.service.key, i.image.as_deref()) {
            for dep in depends_on(&i.service) {
                if let Some(cand) = cands.iter_mut().find(|c| c.name == dep) {
                    cand.proxied = true;
                }
            }
        }
    }
    let Ok((app_idx, why)) = choose_app(&cands, opts.service) else {
        if infos.is_empty() && !unbuildable.is_empty() {
            return Err(ImportError::Unbuildable {
                file,
                reasons: unbuildable.join("; "),
            });
        }
        let considered: Vec<String> = infos
            .iter()
            .map(|i| format!("`{}`", i.service.key))
            .collect();
        let left_out: Vec<String> = services
            .iter()
            .filter(|e| !infos.iter().any(|i| i.service.key == e.key))
            .map(|e| format!("`{}`", e.key))
            .collect();
        let mut services = considered.join(", ");
        if !left_out.is_empty() {
            services.push_str(&format!(
                "; not imported, see the warnings: {}",
                left_out.join(", ")
            ));
        }
        return Err(ImportError::NoApp { file, services });
    };

    let app_build = infos[app_idx].build.clone();
    let app_image = infos[app_idx].image.clone();
    let mut app = App {
        name,
        image: if app_build.is_none() {
            app_image.clone()
        } else {
            None
        },
        build: app_build.clone(),
        ..App::default()
    };

    let mut imported: Vec<(usize, Imported)> = Vec::new();
    let mut release_jobs: Vec<usize> = Vec::new();
    let mut accessories: Vec<usize> = Vec::new();
    let mut used = HashSet::new();
    for (idx, info) in infos.iter().enumerate() {
        let s = &info.service;
        let same = idx == app_idx
            || (info.build.is_some() && info.build == app_build)
            || (info.build.is_none() && info.image.is_some() && info.image == app_image);
        if idx != app_idx && jobs.contains(&s.key) {
            if same && s.get("command").is_some() {
                release_jobs.push(idx);
            } else {
                job_not_imported(&mut c, info, same);
            }
            continue;
        }
        if !same && info.build.is_none() {
            accessories.push(idx);
            continue;
        }
        if !same && is_datastore(&s.key, info.image.as_deref()) {
            accessories.push(idx);
            continue;
        }
        if let (Some(tag), Some(_)) = (&info.image, &info.build)
            && let Some(node) = s.get("image")
        {
            c.w.add(
                node.pos,
                format!("services.{}.image", s.key),
                format!("compose tagged the image it built as `{tag}`; wharf tags it wharf/<app>:<version>, so nothing is pushed or pulled as `{tag}` any more"),
            );
        }
        let route = c.route(s);
        let part = if idx == app_idx {
            Part::App(route)
        } else {
            Part::Other(route)
        };
        let mut one = c.process(s, part, &mut used, &mut app.secrets);
        if !same {
            one.process.build.clone_from(&info.build);
        }
        imported.push((idx, one));
    }

    share_env(&mut app, &mut imported);
    app.processes = imported.into_iter().map(|(_, i)| i.process).collect();
    for idx in release_jobs {
        release(&mut c, &infos[idx].service, &mut app);
    }
    let mut accessory_names = HashSet::new();
    for idx in accessories {
        let info = &infos[idx];
        let a = c.accessory(
            &info.service,
            info.image.clone(),
            info.build.clone(),
            &mut accessory_names,
        );
        app.accessories.push(a);
    }
    host_warnings(&mut c, &infos);
    c.volume_warnings();

    let warnings = c.w.len();
    let mut lines = header(&file, "compose", warnings);
    let reason = match why {
        Why::Asked => "named with `--service`",
        Why::Routed => "its labels route HTTP to it",
        Why::Http => "it publishes HTTP",
        Why::Proxied => "the reverse proxy in front sends to it",
        Why::Built => "it is built from this directory",
        Why::Only => "it is the only one that is not a database or a proxy",
    };
    lines.insert(
        1,
        format!(
            "The app is the service `{}` ({reason}); choose another with `--service NAME`.",
            infos[app_idx].service.key
        ),
    );
    let toml = app.render(&lines);
    Ok(Import {
        toml,
        warnings: c.w.into_sorted(),
    })
}

fn top_level(c: &mut Ctx, root: &Node) {
    for e in root.as_map().unwrap_or_default() {
        let k = e.key.as_str();
        match k {
            "services" | "name" => {}
            "version" => c.w.add(
                e.key_pos,
                k,
                "obsolete in compose and not needed by wharf; ignored, which changes nothing",
            ),
            "volumes" => c.top_volumes(&e.value),
            "secrets" => c.top_secrets(&e.value),
            "networks" => c.w.add(
                e.key_pos,
                k,
                "not carried over: wharf puts the app and its accessories on one network of its own, where each is reachable by its name, so services outside this file on these networks are not reachable",
            ),
            "configs" => c.w.add(
                e.key_pos,
                k,
                "wharf has no configs; not carried over, so services using them miss these files: copy them into the image, or mount them with `volumes`",
            ),
            "include" => c.w.add(
                e.key_pos,
                k,
                "included files are not read, so their services are not imported and will not run: import each of them, or import the output of `docker compose config`",
            ),
            _ if k.starts_with("x-") => c.w.add(
                e.key_pos,
                k,
                "extension field; ignored, which changes nothing (anchors defined in it and merged into services were carried over with them)",
            ),
            _ => c.w.add(
                e.key_pos,
                k,
                "not a compose key wharf knows; ignored, so whatever it was meant to do does not happen",
            ),
        }
    }
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

fn depends_on(s: &Service) -> Vec<String> {
    match s.get("depends_on") {
        Some(n) if n.as_map().is_some() => n
            .as_map()
            .unwrap_or_default()
            .iter()
            .map(|e| e.key.clone())
            .collect(),
        Some(n) => n
            .as_seq()
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.as_str().map(str::to_owned))
            .collect(),
        None => Vec::new(),
    }
}

/// Env every process shares goes to [env] (the release command gets it
/// too); the rest stays with its process. Only when their `env_file`s are
/// the same, which then go to the top: a process's `env_file` is read over
/// [env], so moving its `environment` there would let the file win.
fn share_env(app: &mut App, imported: &mut [(usize, Imported)]) {
    let Some(((_, first), rest)) = imported.split_first() else {
        return;
    };
    if rest
        .iter()
        .any(|(_, i)| i.process.env_file != first.process.env_file)
    {
        for (_, i) in imported.iter_mut() {
            i.process.env = std::mem::take(&mut i.env);
        }
        return;
    }
    app.env_file = first.process.env_file.clone();
    let shared: Vec<(String, String)> = first
        .env
        .iter()
        .filter(|kv| rest.iter().all(|(_, i)| i.env.contains(kv)))
        .cloned()
        .collect();
    for (_, i) in imported.iter_mut() {
        i.process.env_file.clear();
        i.process.env = std::mem::take(&mut i.env)
            .into_iter()
            .filter(|kv| !shared.contains(kv))
            .collect();
    }
    app.env = shared;
}

/// A one-shot job of the app's image: a `release_command`, with the app's
/// env only.
fn release(c: &mut Ctx, s: &Service, app: &mut App) {
    let svc = format!("services.{}", s.key);
    let Some(cmd) = s
        .get("command")
        .and_then(|n| c.command(&format!("{svc}.command"), n))
    else {
        return;
    };
    app.release_command.push(cmd);
    for f in s.entries() {
        let k = format!("{svc}.{}", f.key);
        match f.key.as_str() {
            "build" | "command" | "image" | "depends_on" | "profiles" | "extends" => {}
            "environment" => {
                for (key, v) in c.environment(&k, &f.value, "") {
                    match v {
                        EnvValue::Secret(sec) => {
                            add_secret(&mut c.w, &mut app.secrets, &key, sec, f.key_pos, &svc);
                        }
                        EnvValue::Plain(v) => {
                            if !app.env.contains(&(key.clone(), v.clone())) {
                                c.w.add(
                                    f.key_pos,
                                    format!("{k}.{key}"),
                                    "the release command gets the app's [env] only, so it runs without this value: add it to [env] if the app may have it too",
                                );
                            }
                        }
                    }
                }
            }
            "env_file" => {
                let files = c.env_files(&k, &f.value);
                if files != app.env_file {
                    c.w.add(
                        f.key_pos,
                        k,
                        "the release command gets the app's `env_file`s only, so it runs without these: add them to the top-level `env_file` if the app may have them too",
                    );
                }
            }
            "entrypoint" => c.w.add(
                f.key_pos,
                k,
                "the release command runs with the image's own ENTRYPOINT, so this one does not run before the command: fold it into the command",
            ),
            _ => c.w.add(
                f.key_pos,
                k,
                format!("`{}` runs before each release as one of the `release_command`s, which take the app's image and environment only; this key has no effect there", s.key),
            ),
        }
    }
}

fn job_not_imported(c: &mut Ctx, info: &Info, same: bool) {
    let s = &info.service;
    let what = match (&info.image, same) {
        (_, true) => "it has no `command`, and a `release_command` needs one".to_owned(),
        (Some(image), false) => format!("it runs `{image}`, not the app's image, and a `release_command` runs in the app's image"),
        (None, false) => "it is built from another directory than the app, and a `release_command` runs in the app's image".to_owned(),
    };
    c.w.add(
        s.key_pos,
        format!("services.{}", s.key),
        format!("not imported: the other services wait for this one-shot job, but {what}, so what it did before they started will not happen: run it once by hand, or add an equivalent step to `release_command`"),
    );
}

/// Whether an env key's value is a host or an address (`DB_HOST`,
/// `REDIS_ADDR`, `SMTP_SERVER`, `API_URL`).
fn names_a_host(key: &str) -> bool {
    let key = key.to_ascii_uppercase();
    ["HOST", "ADDR", "SERVER", "URL", "URI", "ENDPOINT", "DSN"]
        .iter()
        .any(|w| key.contains(w))
}

/// A warning on each env value naming a process by a hostname wharf's
/// network does not have.
fn host_warnings(c: &mut Ctx, infos: &[Info]) {
    if c.renamed_processes.is_empty() {
        return;
    }
    let renamed = c.renamed_processes.clone();
    for info in infos {
        let Some(env) = info.service.get("environment") else {
            continue;
        };
        let pairs: Vec<(String, Pos, String)> = match (env.as_map(), env.as_seq()) {
            (Some(m), _) => m
                .iter()
                .filter_map(|e| Some((e.key.clone(), e.value.pos, e.value.as_str()?.to_owned())))
                .collect(),
            (_, Some(items)) => items
                .iter()
                .filter_map(|i| {
                    let (k, v) = i.as_str()?.split_once('=')?;
                    Some((k.to_owned(), i.pos, v.to_owned()))
                })
                .collect(),
            _ => Vec::new(),
        };
        for (k, pos, value) in pairs {
            let value = c.resolve_quiet(&value);
            for (old, new) in &renamed {
                // A value that is the bare name is a host only under a key
                // that says so (`DB_HOST=db`), not `POSTGRES_USER=gitea`.
                if mentions(&value, old) && (value.trim() != old || names_a_host(&k)) {
                    c.w.add(
                        pos,
                        format!("services.{}.environment.{k}", info.service.key),
                        format!("mentions `{old}`, which compose resolves to a service that wharf runs as the process `{new}`; on the app's network it is only `{new}`, so connections to `{old}` will fail: write `{new}` here"),
                    );
                }
            }
        }
    }
}
