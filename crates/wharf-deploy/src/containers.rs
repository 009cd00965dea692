//! What the engine does for containerized apps beyond deploys: secrets,
//! accessories, one-off commands (`wharf run`, `wharf exec`) and pruning.
//!
//! Secrets are read from their sources (the server's environment, files)
//! each time a release starts, and handed to the runtime in the instance's
//! environment; they are never stored, logged or put into progress, events
//! or errors (errors name the secret and its source, never the value).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use wharf_config::{
    AccessoryConfig, AppConfig, ImageBuild, ProcessImage, RuntimeKind, SecretSource,
};
use wharf_runtime::dispatch::Kind;
use wharf_runtime::{
    AccessoryBuild, AccessoryHealth, AccessorySpec, AccessoryStatus, DockerBuild, ImageSource,
    Limits, LogLine, PortMapping, PruneReport, Runtime, TaskSpec, VolumeMount, VolumeSource,
};
use wharf_store::ReleaseStatus;

use crate::deploy::{finish_forwarding, forward_lines};
use crate::{DeployError, Engine};

/// The runtime kind of an app's config.
pub(crate) fn kind(config: &AppConfig) -> Kind {
    match config.runtime {
        RuntimeKind::Process => Kind::Process,
        RuntimeKind::Docker => Kind::Docker,
    }
}

/// Reads every secret in `secrets`; the first that cannot be read fails.
pub(crate) fn read_secrets(
    app: &str,
    secrets: &BTreeMap<String, SecretSource>,
) -> Result<BTreeMap<String, String>, DeployError> {
    let mut out = BTreeMap::new();
    for (key, source) in secrets {
        let value = match source {
            SecretSource::Env(name) => std::env::var(name).map_err(|_| DeployError::Secret {
                app: app.to_owned(),
                key: key.clone(),
                why: format!(
                    "the environment variable {name} is not set (or not UTF-8) in the wharf server's environment; export it where the server starts"
                ),
            })?,
            SecretSource::File(path) => {
                let mut text = std::fs::read_to_string(path).map_err(|e| DeployError::Secret {
                    app: app.to_owned(),
                    key: key.clone(),
                    why: format!(
                        "could not read {}: {e}; create it, readable by the wharf server",
                        path.display()
                    ),
                })?;
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                text
            }
            SecretSource::EnvFile { path, key: name } => {
                let secret = |why: String| DeployError::Secret {
                    app: app.to_owned(),
                    key: key.clone(),
                    why,
                };
                let text = std::fs::read_to_string(path).map_err(|e| {
                    secret(format!(
                        "could not read the env file {}: {e}; it must stay where it was at deploy, readable by the wharf server",
                        path.display()
                    ))
                })?;
                let pairs = wharf_config::dotenv::parse(&text, &BTreeMap::new()).map_err(|errors| {
                    secret(format!(
                        "the env file {} no longer reads ({}:{}: {})",
                        path.display(),
                        path.display(),
                        errors.first().map_or(0, |e| e.line),
                        errors.first().map_or("", |e| e.message.as_str())
                    ))
                })?;
                pairs
                    .into_iter()
                    .rev()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v)
                    .ok_or_else(|| {
                        secret(format!(
                            "{name} is no longer in the env file {}; put it back, or deploy again",
                            path.display()
                        ))
                    })?
            }
        };
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// A one-off task of a serving release (see [`Engine::run_one_off`]).
#[derive(Debug)]
pub(crate) struct OneOff<'a> {
    /// Its name in logs (a timestamp is added).
    pub name: &'a str,
    pub command: String,
    /// The process whose env it gets on top of the app's.
    pub process: Option<&'a str>,
    pub extra_env: Vec<(String, String)>,
    pub timeout: Duration,
}

/// The environment every process and task of `config` gets: `[env]` and
/// the secrets' values.
pub(crate) fn app_env(config: &AppConfig) -> Result<BTreeMap<String, String>, DeployError> {
    let mut env = config.env.clone();
    env.extend(read_secrets(&config.name, &config.secrets)?);
    Ok(env)
}

pub(crate) fn limits(memory: Option<u64>, cpus: Option<f64>) -> Limits {
    Limits {
        memory_bytes: memory,
        cpus,
    }
}

/// The runtime's view of an accessory, with its secrets read. `source` is
/// the app's directory, which a `build` builds from (always when
/// `rebuild`, else only when its image is missing).
pub(crate) fn accessory_spec(
    app: &str,
    a: &AccessoryConfig,
    source: &Path,
    rebuild: bool,
) -> Result<AccessorySpec, DeployError> {
    let mut env = a.env.clone();
    env.extend(read_secrets(app, &a.secrets)?);
    Ok(AccessorySpec {
        app: app.to_owned(),
        name: a.name.clone(),
        image: a.image.clone(),
        build: a.build.as_ref().map(|b| AccessoryBuild {
            dir: source.to_owned(),
            build: docker_build(b),
            rebuild,
        }),
        command: a.command.clone(),
        env,
        ports: a.ports.iter().map(port_mapping).collect(),
        volumes: a.volumes.iter().map(volume_mount).collect(),
        aliases: a.aliases.clone(),
        health: a.health.as_ref().map(|h| AccessoryHealth {
            command: h.command.clone(),
            interval: h.interval,
            timeout: h.timeout,
            retries: h.retries,
            start_timeout: h.start_timeout,
        }),
        limits: limits(a.memory, a.cpus),
    })
}

/// The volumes a one-off task of the app's image gets (release commands,
/// `wharf run`): those of every process that runs the app's image, once
/// per target, so a migration reaches the SQLite database on a volume.
pub(crate) fn task_volumes(config: &AppConfig) -> Vec<VolumeMount> {
    let mut out: Vec<VolumeMount> = Vec::new();
    for p in config.processes.values().filter(|p| p.image.is_none()) {
        for v in &p.volumes {
            if !out.iter().any(|o| o.target == v.target) {
                out.push(volume_mount(v));
            }
        }
    }
    out
}

/// The processes of `config` with their own image, as the runtime builds
/// or pulls them.
pub(crate) fn process_images(config: &AppConfig) -> BTreeMap<String, ImageSource> {
    config
        .processes
        .values()
        .filter_map(|p| {
            let source = match p.image.as_ref()? {
                ProcessImage::Image(image) => ImageSource::Prebuilt(image.clone()),
                ProcessImage::Build(b) => ImageSource::Build(docker_build(b)),
            };
            Some((p.name.clone(), source))
        })
        .collect()
}

/// The runtime's view of a `ports` entry.
pub(crate) fn port_mapping(p: &wharf_config::PortSpec) -> PortMapping {
    PortMapping {
        host_ip: p.host_ip.clone(),
        host_port: p.host_port,
        container_port: p.container_port,
        protocol: p.protocol.clone(),
    }
}

/// The runtime's view of a `volumes` entry.
pub(crate) fn volume_mount(v: &wharf_config::VolumeSpec) -> VolumeMount {
    VolumeMount {
        source: if v.is_bind() {
            VolumeSource::Bind(v.source.clone().into())
        } else {
            VolumeSource::Named(v.source.clone())
        },
        target: v.target.clone(),
        read_only: v.read_only,
    }
}

/// The runtime's build settings from a config's (paths relative to the
/// app's directory).
pub(crate) fn docker_build(b: &ImageBuild) -> DockerBuild {
    DockerBuild {
        dockerfile: b.dockerfile.clone().into(),
        context: b.context.clone().into(),
        target: b.target.clone(),
        args: b.args.clone(),
    }
}

/// What `wharf accessory …` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessoryAction {
    Boot,
    Stop,
    Remove { volumes: bool },
}

impl Engine {
    /// The runtime of `config`'s app (connecting the docker runtime if needed).
    pub(crate) async fn runtime_for(
        &self,
        config: &AppConfig,
    ) -> Result<Arc<dyn Runtime>, DeployError> {
        Ok(self.runtime.select(&config.name, kind(config)).await?)
    }

    fn accessory_config<'c>(
        config: &'c AppConfig,
        name: &str,
    ) -> Result<&'c AccessoryConfig, DeployError> {
        config
            .accessories
            .get(name)
            .ok_or_else(|| DeployError::NoAccessory {
                app: config.name.clone(),
                name: name.to_owned(),
                known: config.accessories.keys().cloned().collect(),
            })
    }

    /// `wharf accessory boot|stop|remove NAME` for the app described by
    /// `config`, whose directory is `source` (an accessory `build` builds
    /// from there). Returns the accessory's state afterwards.
    pub async fn accessory(
        &self,
        config: &AppConfig,
        source: &Path,
        name: &str,
        action: AccessoryAction,
    ) -> Result<AccessoryStatus, DeployError> {
        let a = Self::accessory_config(config, name)?;
        let runtime = self.runtime_for(config).await?;
        let app_id = self.store.app(&config.name).ok().map(|a| a.id);
        let (status, did) = match action {
            AccessoryAction::Boot => {
                let spec = accessory_spec(&config.name, a, source, true)?;
                (runtime.boot_accessory(&spec).await?, "booted")
            }
            AccessoryAction::Stop => {
                runtime.stop_accessory(&config.name, name).await?;
                (
                    runtime.accessory_status(&config.name, name).await?,
                    "stopped",
                )
            }
            AccessoryAction::Remove { volumes } => {
                runtime
                    .remove_accessory(&config.name, name, volumes)
                    .await?;
                let did = if volumes {
                    "removed with its volumes"
                } else {
                    "removed (its volumes are kept)"
                };
                (runtime.accessory_status(&config.name, name).await?, did)
            }
        };
        self.store.add_event(
            app_id,
            None,
            wharf_store::EventLevel::Info,
            &format!("accessory {name} of {} {did}", config.name),
        )?;
        Ok(status)
    }

    /// The state of every accessory of `config`'s app.
    pub async fn accessories(
        &self,
        config: &AppConfig,
    ) -> Result<Vec<AccessoryStatus>, DeployError> {
        if config.accessories.is_empty() {
            return Ok(Vec::new());
        }
        let runtime = self.runtime_for(config).await?;
        let mut out = Vec::new();
        for name in config.accessories.keys() {
            out.push(runtime.accessory_status(&config.name, name).await?);
        }
        Ok(out)
    }

    /// Output of an accessory into `output` (until it is closed, with `follow`).
    pub async fn accessory_logs(
        &self,
        config: &AppConfig,
        name: &str,
        tail: usize,
        follow: bool,
        output: mpsc::Sender<LogLine>,
    ) -> Result<(), DeployError> {
        Self::accessory_config(config, name)?;
        let runtime = self.runtime_for(config).await?;
        Ok(runtime
            .accessory_logs(&config.name, name, tail, follow, output)
            .await?)
    }

    /// Boots every accessory of a release that is not running (deploys
    /// from `source`; an accessory `build` runs only if its image is missing).
    pub(crate) async fn boot_accessories(
        &self,
        config: &AppConfig,
        source: &Path,
    ) -> Result<(), DeployError> {
        let runtime = self.runtime_for(config).await?;
        for a in config.accessories.values() {
            let spec = accessory_spec(&config.name, a, source, false)?;
            runtime.boot_accessory(&spec).await?;
        }
        Ok(())
    }

    /// The config `app` runs with — its serving release's, else its newest
    /// release's — and the directory it was deployed from (an accessory
    /// `build` builds there).
    pub fn app_config(&self, app: &str) -> Result<(AppConfig, std::path::PathBuf), DeployError> {
        let row = self.store.app(app)?;
        let number = match row.current_release {
            Some(n) => n,
            None => self
                .store
                .releases(row.id)?
                .first()
                .map(|r| r.number)
                .ok_or_else(|| DeployError::NotServing {
                    app: app.to_owned(),
                })?,
        };
        let config = self.stored_config(&row, number)?;
        Ok((config, std::path::PathBuf::from(row.source_dir)))
    }

    /// The serving release of `app`: its number, config and directory.
    pub(crate) fn serving_release(
        &self,
        app: &str,
    ) -> Result<(i64, AppConfig, std::path::PathBuf), DeployError> {
        let row = self.store.app(app)?;
        let number = row.current_release.ok_or_else(|| DeployError::NotServing {
            app: app.to_owned(),
        })?;
        let (config, dir) = self.stored_release(&row, number)?;
        Ok((number, config, dir))
    }

    /// A one-off task of `app`'s serving release (`wharf run`, cron runs):
    /// the app's env (and `task.process`'s), its volumes, output to
    /// `output`; the exit code (128 + signal when killed).
    pub(crate) async fn run_one_off(
        &self,
        app: &str,
        task: OneOff<'_>,
        output: mpsc::Sender<LogLine>,
    ) -> Result<i64, DeployError> {
        let (number, config, dir) = self.serving_release(app)?;
        let runtime = self.runtime_for(&config).await?;
        let mut env = app_env(&config)?;
        if let Some(p) = task.process.and_then(|p| config.processes.get(p)) {
            env.extend(p.env.clone());
        }
        env.insert("WHARF_RELEASE".into(), number.to_string());
        env.extend(task.extra_env);
        let name = format!("{}-{}", task.name, wharf_store::now_ms());
        let forward = forward_lines(&runtime, app, None, &name, move |l| {
            let output = output.clone();
            async move { output.send(l).await.is_ok() }
        });
        let outcome = runtime
            .run_task(TaskSpec {
                app: app.to_owned(),
                release: number as u64,
                name,
                command: task.command,
                workdir: dir,
                env,
                volumes: task_volumes(&config),
                timeout: task.timeout,
            })
            .await;
        finish_forwarding(Some(forward)).await;
        Ok(outcome?.exit_code())
    }

    /// `wharf exec PROCESS -- CMD`: `argv` inside a running instance of
    /// `process` of the serving release (`index`, default the first).
    pub async fn exec(
        &self,
        app: &str,
        process: &str,
        index: Option<u32>,
        argv: Vec<String>,
        output: mpsc::Sender<LogLine>,
    ) -> Result<i64, DeployError> {
        let (number, config, _) = self.serving_release(app)?;
        if !config.processes.contains_key(process) {
            return Err(DeployError::NoProcess {
                app: app.to_owned(),
                process: process.to_owned(),
                known: config.processes.keys().cloned().collect(),
            });
        }
        let runtime = self.runtime_for(&config).await?;
        let id = format!("{app}-r{number}-{process}-{}", index.unwrap_or(1));
        Ok(runtime.exec(&id, argv, output).await?)
    }

    /// `wharf prune`: removes what the runtimes keep for releases that are
    /// neither serving nor retained for rollback.
    pub async fn prune(&self) -> Result<PruneReport, DeployError> {
        let mut keep = Vec::new();
        for app in self.store.apps()? {
            for r in self.store.releases(app.id)? {
                let kept = matches!(r.status, ReleaseStatus::Ready | ReleaseStatus::Pending)
                    || Some(r.number) == app.current_release;
                if kept {
                    keep.push((app.name.clone(), r.number as u64));
                }
            }
            // Make sure the docker runtime is connected if any app uses it,
            // so its images are pruned too.
            if let Some(n) = app.current_release
                && let Ok(config) = self.stored_config(&app, n)
            {
                let _ = self.runtime_for(&config).await;
            }
        }
        Ok(self.runtime.prune(&keep).await?)
    }
}
