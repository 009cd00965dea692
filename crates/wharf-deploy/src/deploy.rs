//! The deploy and rollback flows.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use wharf_config::AppConfig;
use wharf_proxy::health::{self, HealthSpec};
use wharf_runtime::{InstanceSpec, ReleaseSource, RestartPolicy, Runtime, RuntimeEvent, TaskSpec};
use wharf_store::{
    AppRow, DeployKind, DeployOutcome, EventLevel, InstanceState, NewInstance, ReleaseStatus,
    StoreError,
};

use crate::containers::{self, app_env};
use crate::live::{LiveInstance, LiveRelease};
use crate::progress::{DeployReport, Progress};
use crate::step::{Step, failpoint};
use crate::{DeployError, DeployRequest, Engine, ProgressTx};

/// How long the build may run.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long the release command may run.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A process without a health check is ready once it has stayed up this long.
pub(crate) const READY_GRACE: Duration = Duration::from_millis(1000);
/// A starting instance that exits this many times fails the deploy at once
/// instead of waiting out the health timeout.
const CRASHES_BEFORE_GIVING_UP: u32 = 3;
/// Log lines shown under a failed health check.
const TAIL_LINES: usize = 15;

/// One running deploy: its row, and where its progress goes.
pub(crate) struct Run {
    pub(crate) app: AppRow,
    pub(crate) deploy: i64,
    kind: DeployKind,
    pub(crate) release: Option<i64>,
    pub(crate) previous: Option<i64>,
    started: Instant,
    tx: Option<ProgressTx>,
    pub(crate) switched: bool,
    /// Canary: wait for `promote` at the first step.
    pub(crate) pause: bool,
    /// Where to POST a notice of an automatic rollback.
    pub(crate) notify: Option<String>,
}

impl Run {
    pub(crate) fn send(&self, p: Progress) {
        if let Some(tx) = &self.tx {
            // The client may have gone away; the deploy goes on regardless.
            let _ = tx.send(p);
        }
    }

    /// Records `step` in the store, then reports it. Architecture Invariant
    /// 3: nothing outside the process happens for a step before this returns.
    pub(crate) async fn step(
        &self,
        engine: &Engine,
        step: Step,
        detail: Option<String>,
    ) -> Result<(), DeployError> {
        engine
            .store
            .transition(self.deploy, step.as_str(), detail.as_deref())?;
        tracing::info!(app = %self.app.name, deploy = self.deploy, step = step.as_str(), detail = detail.as_deref().unwrap_or(""), "deploy step");
        self.send(Progress::Step { step, detail });
        failpoint(step, self.release).await;
        Ok(())
    }

    fn serving(&self) -> String {
        self.previous
            .map_or_else(|| "none".to_owned(), |n| n.to_string())
    }
}

impl Engine {
    /// Deploys the app in `req.source_dir` as a new release.
    pub async fn deploy(
        self: &Arc<Self>,
        req: DeployRequest,
        tx: Option<ProgressTx>,
    ) -> Result<DeployReport, DeployError> {
        let result = self.deploy_inner(req, tx.clone()).await;
        finished(tx.as_ref(), &result);
        result
    }

    async fn deploy_inner(
        self: &Arc<Self>,
        req: DeployRequest,
        tx: Option<ProgressTx>,
    ) -> Result<DeployReport, DeployError> {
        let config = AppConfig::load(&req.source_dir)?;
        let config = if req.env.is_empty() {
            config
        } else {
            config
                .with_env_overrides(&req.env)
                .map_err(DeployError::EnvOverride)?
        };
        let source =
            std::fs::canonicalize(&req.source_dir).unwrap_or_else(|_| req.source_dir.clone());
        let app = self
            .store
            .upsert_app(&config.name, &source.to_string_lossy())?;
        let lock = self.app_lock(&app.name);
        let _guard = self.acquire(&lock, &app, req.wait).await?;
        let app = self.store.app(&app.name)?;
        let mut run = self.begin(app, DeployKind::Deploy, None, tx)?;
        run.pause = req.pause;
        run.notify = config.deploy.notify.clone();
        let (version, image) = (req.version, req.image);
        self.run(run, |engine, run| {
            Box::pin(engine.deploy_steps(run, config, source, version, image))
        })
        .await
    }

    /// Rolls `app` back to release `target` (default: the newest retained
    /// release before the serving one).
    pub async fn rollback(
        self: &Arc<Self>,
        app: &str,
        target: Option<i64>,
        wait: bool,
        tx: Option<ProgressTx>,
    ) -> Result<DeployReport, DeployError> {
        let result = self.rollback_inner(app, target, wait, tx.clone()).await;
        finished(tx.as_ref(), &result);
        result
    }

    async fn rollback_inner(
        self: &Arc<Self>,
        app: &str,
        target: Option<i64>,
        wait: bool,
        tx: Option<ProgressTx>,
    ) -> Result<DeployReport, DeployError> {
        let app = self.store.app(app)?;
        let lock = self.app_lock(&app.name);
        let _guard = self.acquire(&lock, &app, wait).await?;
        let app = self.store.app(&app.name)?;
        let target = self.rollback_target(&app, target)?;
        let run = self.begin(app, DeployKind::Rollback, Some(target), tx)?;
        self.run(run, |engine, run| {
            Box::pin(engine.activate_steps(run, target))
        })
        .await
    }

    async fn acquire<'a>(
        &self,
        lock: &'a tokio::sync::Mutex<()>,
        app: &AppRow,
        wait: bool,
    ) -> Result<tokio::sync::MutexGuard<'a, ()>, DeployError> {
        if wait {
            return Ok(lock.lock().await);
        }
        lock.try_lock().map_err(|_| {
            let running = self
                .store
                .unfinished_deploys()
                .ok()
                .and_then(|d| d.into_iter().find(|d| d.app_id == app.id));
            DeployError::InProgress {
                app: app.name.clone(),
                deploy: running.as_ref().map_or(0, |d| d.id),
                state: running.map_or_else(|| "starting".to_owned(), |d| d.state),
            }
        })
    }

    pub(crate) fn begin(
        &self,
        app: AppRow,
        kind: DeployKind,
        release: Option<i64>,
        tx: Option<ProgressTx>,
    ) -> Result<Run, DeployError> {
        let row = self
            .store
            .begin_deploy(&app, kind, app.current_release, release)
            .map_err(|e| match e {
                StoreError::DeployInProgress {
                    app, deploy, state, ..
                } => DeployError::InProgress { app, deploy, state },
                e => e.into(),
            })?;
        Ok(Run {
            previous: app.current_release,
            app,
            deploy: row.id,
            kind,
            release,
            started: Instant::now(),
            tx,
            switched: false,
            pause: false,
            notify: None,
        })
    }

    /// Runs the steps and records the outcome, whatever it is.
    pub(crate) async fn run<F>(
        self: &Arc<Self>,
        mut run: Run,
        steps: F,
    ) -> Result<DeployReport, DeployError>
    where
        F: for<'a> FnOnce(
            &'a Arc<Engine>,
            &'a mut Run,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<usize, DeployError>> + Send + 'a>,
        >,
    {
        let result = steps(self, &mut run).await;
        let outcome = match &result {
            Ok(_) => DeployOutcome::Succeeded,
            Err(_) => DeployOutcome::Failed,
        };
        let error = result.as_ref().err().map(|e| e.to_string());
        self.store
            .finish_deploy(run.deploy, outcome, error.as_deref())?;
        let elapsed = run.started.elapsed();
        self.metrics
            .deploys
            .get_or_create(&crate::metrics::DeployLabels {
                app: run.app.name.clone(),
                kind: run.kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.metrics
            .duration
            .get_or_create(&crate::metrics::KindLabels {
                app: run.app.name.clone(),
                kind: run.kind.to_string(),
            })
            .observe(elapsed.as_secs_f64());
        match result {
            Ok(abandoned) => {
                let report = DeployReport {
                    deploy: run.deploy,
                    app: run.app.name.clone(),
                    kind: run.kind.to_string(),
                    release: run.release.unwrap_or_default(),
                    previous: run.previous,
                    duration_ms: elapsed.as_millis() as u64,
                    abandoned_requests: abandoned,
                };
                self.store.add_event(
                    Some(run.app.id),
                    Some(run.deploy),
                    EventLevel::Info,
                    &report.summary(),
                )?;
                Ok(report)
            }
            Err(e) => {
                if let (Some(n), false, DeployKind::Deploy) = (run.release, run.switched, run.kind)
                {
                    // A release that never served is kept as a record but its
                    // files are removed.
                    self.store
                        .set_release_status(run.app.id, n, ReleaseStatus::Failed, None)?;
                    if let Err(err) = self.runtime.remove_release(&run.app.name, n as u64).await {
                        tracing::warn!(%err, "could not remove the files of a failed release");
                    }
                }
                let message = format!(
                    "{} {} of {} failed: {e}",
                    run.kind, run.deploy, run.app.name
                );
                self.store.add_event(
                    Some(run.app.id),
                    Some(run.deploy),
                    EventLevel::Error,
                    &message,
                )?;
                Err(e)
            }
        }
    }

    async fn deploy_steps(
        self: &Arc<Self>,
        run: &mut Run,
        config: AppConfig,
        source: PathBuf,
        version: Option<String>,
        image: Option<String>,
    ) -> Result<usize, DeployError> {
        let config_json =
            serde_json::to_string(&config).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let revision = match version {
            Some(v) => Some(v),
            None => git_revision(&source).await,
        };
        let release = self
            .store
            .create_release(run.app.id, revision.as_deref(), &config_json)?;
        let number = release.number;
        self.store.set_deploy_target(run.deploy, number)?;
        run.release = Some(number);
        run.send(Progress::Started {
            deploy: run.deploy,
            app: run.app.name.clone(),
            release: number,
            kind: "deploy".into(),
        });

        // Before anything runs: the runtime (an unreachable Docker engine
        // fails here) and every secret.
        let runtime = self.runtime_for(&config).await?;
        let env = app_env(&config)?;
        if let Some(build) = &config.build {
            run.step(self, Step::Building, Some(build.clone())).await?;
            // A host command, in the source directory, whatever the runtime.
            let host: Arc<dyn Runtime> = self.runtime.process();
            let outcome = self
                .task(run, &host, "build", build, &source, &env, BUILD_TIMEOUT)
                .await?;
            if !outcome.success() {
                return Err(DeployError::Build {
                    app: run.app.name.clone(),
                    release: number,
                    how: how(&outcome),
                    tail: outcome.tail,
                });
            }
        }

        let version = revision.unwrap_or_else(|| format!("r{number}"));
        let image = image.or_else(|| config.docker.as_ref().and_then(|d| d.image.clone()));
        let detail = match (&config.docker, &image) {
            (None, _) => format!("snapshot of the source as release {number}"),
            (Some(_), Some(image)) => format!("image {image} as release {number} ({version})"),
            (Some(_), None) => format!("build image of release {number} ({version})"),
        };
        run.step(self, Step::Preparing, Some(detail)).await?;
        let build = config
            .docker
            .as_ref()
            .map(|d| containers::docker_build(&d.build))
            .unwrap_or_default();
        let prepare = ReleaseSource {
            app: run.app.name.clone(),
            release: number as u64,
            dir: source.clone(),
            version,
            build,
            image,
        };
        // Image build output streams as progress, like the build command's.
        let forward = self.forward_output(run, &runtime, "build");
        let prepared = runtime.prepare_release(&prepare).await;
        finish_forwarding(forward).await;
        let dir = prepared?;
        self.store.set_release_status(
            run.app.id,
            number,
            ReleaseStatus::Pending,
            Some(&dir.to_string_lossy()),
        )?;

        if !config.accessories.is_empty() {
            let names: Vec<&str> = config.accessories.keys().map(String::as_str).collect();
            run.step(self, Step::Accessories, Some(names.join(", ")))
                .await?;
            // An accessory image built here streams as progress too (an
            // accessory's build output is logged as release 0's).
            let forward = forward_progress(run, &runtime, Some(0), "build");
            let booted = self.boot_accessories(&config, &source).await;
            finish_forwarding(forward).await;
            booted?;
        }

        if let Some(command) = &config.release_command {
            run.step(self, Step::Releasing, Some(command.clone()))
                .await?;
            let outcome = self
                .task(
                    run,
                    &runtime,
                    "release",
                    command,
                    &dir,
                    &env,
                    RELEASE_TIMEOUT,
                )
                .await?;
            if !outcome.success() {
                return Err(DeployError::ReleaseCommand {
                    app: run.app.name.clone(),
                    release: number,
                    serving: run.serving(),
                    how: how(&outcome),
                    tail: outcome.tail,
                });
            }
        }

        let live = self.start_release(run, number, config, &dir).await?;
        self.store
            .set_release_status(run.app.id, number, ReleaseStatus::Ready, None)?;
        let abandoned = self.go_live(run, live).await?;
        self.retain(&run.app).await?;
        Ok(abandoned)
    }

    /// Brings a retained release back: start, health, switch (rollback and
    /// restore after a restart).
    pub(crate) async fn activate_steps(
        self: &Arc<Self>,
        run: &mut Run,
        target: i64,
    ) -> Result<usize, DeployError> {
        let (config, dir) = self.stored_release(&run.app, target)?;
        run.send(Progress::Started {
            deploy: run.deploy,
            app: run.app.name.clone(),
            release: target,
            kind: run.kind.to_string(),
        });
        let live = self.start_release(run, target, config, &dir).await?;
        self.switch_and_retire(run, live).await
    }

    /// The config a release was deployed with.
    pub(crate) fn stored_config(
        &self,
        app: &AppRow,
        number: i64,
    ) -> Result<AppConfig, DeployError> {
        let release = self.store.release(app, number)?;
        serde_json::from_str(&release.config_json).map_err(|e| DeployError::BadRelease {
            app: app.name.clone(),
            release: number,
            why: format!("its stored config is unreadable ({e})"),
        })
    }

    /// A retained release, ready to start again: its config and its
    /// prepared directory (snapshot, or the image reference under docker).
    pub(crate) fn stored_release(
        &self,
        app: &AppRow,
        number: i64,
    ) -> Result<(AppConfig, PathBuf), DeployError> {
        let config = self.stored_config(app, number)?;
        let bad = |why: String| DeployError::BadRelease {
            app: app.name.clone(),
            release: number,
            why,
        };
        let dir = self
            .store
            .release(app, number)?
            .dir
            .map(PathBuf::from)
            .ok_or_else(|| bad("it was never prepared".into()))?;
        if !dir.is_dir() {
            return Err(bad(format!("its directory {} is gone", dir.display())));
        }
        Ok((config, dir))
    }

    fn rollback_target(&self, app: &AppRow, target: Option<i64>) -> Result<i64, DeployError> {
        let none = |why: &str| DeployError::NoRollbackTarget {
            app: app.name.clone(),
            why: why.to_owned(),
        };
        let current = app.current_release;
        if let Some(n) = target {
            if Some(n) == current {
                return Err(none(&format!("release {n} is already serving")));
            }
            let r = self.store.release(app, n)?;
            if r.status != ReleaseStatus::Ready {
                return Err(none(&format!(
                    "release {n} is {} and cannot serve; see `wharf releases`",
                    r.status
                )));
            }
            return Ok(n);
        }
        let current = current.ok_or_else(|| none("nothing has been deployed yet"))?;
        self.store
            .releases(app.id)?
            .into_iter()
            .find(|r| r.number < current && r.status == ReleaseStatus::Ready)
            .map(|r| r.number)
            .ok_or_else(|| {
                none(&format!(
                    "no retained release before release {current}; see `wharf releases`"
                ))
            })
    }

    /// Sends the output of `process` (a task or the image build) of the
    /// run's release to its progress, until [`finish_forwarding`].
    fn forward_output(
        &self,
        run: &Run,
        runtime: &Arc<dyn Runtime>,
        process: &str,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let release = run.release.unwrap_or_default() as u64;
        forward_progress(run, runtime, Some(release), process)
    }

    /// Runs the build or release command, streaming its output as progress.
    #[allow(clippy::too_many_arguments)]
    async fn task(
        &self,
        run: &Run,
        runtime: &Arc<dyn Runtime>,
        name: &str,
        command: &str,
        workdir: &Path,
        env: &std::collections::BTreeMap<String, String>,
        timeout: Duration,
    ) -> Result<wharf_runtime::TaskOutcome, DeployError> {
        let release = run.release.unwrap_or_default() as u64;
        let forward = self.forward_output(run, runtime, name);
        let mut env = env.clone();
        env.insert("WHARF_RELEASE".into(), release.to_string());
        let outcome = runtime
            .run_task(TaskSpec {
                app: run.app.name.clone(),
                release,
                name: name.to_owned(),
                command: command.to_owned(),
                workdir: workdir.to_path_buf(),
                env,
                timeout,
            })
            .await;
        finish_forwarding(forward).await;
        Ok(outcome?)
    }

    /// Starts every instance of a release and waits until all are healthy.
    /// On failure the started instances are stopped again.
    pub(crate) async fn start_release(
        self: &Arc<Self>,
        run: &Run,
        number: i64,
        config: AppConfig,
        dir: &Path,
    ) -> Result<Arc<LiveRelease>, DeployError> {
        let total: u32 = config.processes.values().map(|p| p.instances).sum();
        run.step(
            self,
            Step::Starting,
            Some(format!(
                "{total} instance{} of release {number}",
                if total == 1 { "" } else { "s" }
            )),
        )
        .await?;
        let mut instances = Vec::new();
        self.runtime_for(&config).await?;
        let env = app_env(&config)?;
        // Subscribed before the first spawn, so no early crash is missed.
        let events = self.runtime.events();
        let started = self
            .spawn_instances(run, number, &config, &env, dir, &mut instances)
            .await;
        if let Err(e) = started {
            self.stop_instances(&instances).await;
            return Err(e);
        }
        let deadline = config.deploy.health_timeout;
        run.step(
            self,
            Step::HealthChecking,
            Some(format!("health timeout {}", humantime_fmt(deadline))),
        )
        .await?;
        let checks = join_all(instances.iter().map(|spec| {
            let health = config.processes[&spec.process]
                .health
                .as_ref()
                .map(health_spec);
            async move {
                let result = match &health {
                    Some(h) => health::wait_healthy(spec.addr(), h, deadline)
                        .await
                        .map_err(|e| e.to_string()),
                    None => {
                        tokio::time::sleep(READY_GRACE).await;
                        Ok(())
                    }
                };
                (spec.id.clone(), result)
            }
        }));
        let failed: Option<(String, String)> = tokio::select! {
            results = checks => results.into_iter().find_map(|(id, r)| r.err().map(|why| (id, why))),
            crashed = crash_loop(events, instances.iter().map(|s| s.id.clone()).collect()) => Some(crashed),
        };
        if let Some((id, reason)) = failed {
            let tail = match instances.iter().find(|s| s.id == id) {
                Some(spec) => self.instance_tail(&run.app.name, spec).await,
                None => Vec::new(),
            };
            let err = DeployError::Unhealthy(Box::new(crate::error::Unhealthy {
                app: run.app.name.clone(),
                release: number,
                instance: id,
                timeout: humantime_fmt(deadline),
                reason,
                serving: run.serving(),
                tail,
            }));
            self.stop_instances(&instances).await;
            for spec in &instances {
                self.store
                    .set_instance_state(&spec.id, InstanceState::Failed)?;
            }
            return Err(err);
        }
        let mut live = Vec::new();
        for spec in instances {
            let process = &config.processes[&spec.process];
            let (backend, healthy) = match (&process.http, &process.health) {
                (Some(_), Some(h)) => {
                    let backend =
                        self.proxy()
                            .backend(&spec.id, spec.addr(), &run.app.name, number as u64);
                    (
                        Some(backend),
                        Some(health::monitor(spec.addr(), health_spec(h))),
                    )
                }
                _ => (None, None),
            };
            self.store
                .set_instance_state(&spec.id, InstanceState::Healthy)?;
            live.push(LiveInstance {
                spec,
                backend,
                healthy,
                up: Arc::new(AtomicBool::new(true)),
                watcher: None,
            });
        }
        let mut release = LiveRelease {
            number,
            config,
            instances: live,
        };
        self.watch_health(&mut release);
        self.refresh_instance_gauge(&run.app);
        Ok(Arc::new(release))
    }

    async fn spawn_instances(
        &self,
        run: &Run,
        number: i64,
        config: &AppConfig,
        app_env: &std::collections::BTreeMap<String, String>,
        dir: &Path,
        out: &mut Vec<InstanceSpec>,
    ) -> Result<(), DeployError> {
        for process in config.processes.values() {
            for index in 1..=process.instances {
                let id = format!("{}-r{number}-{}-{index}", run.app.name, process.name);
                let mut env = app_env.clone();
                env.extend(process.env.clone());
                // After a server restart, an instance of the serving release
                // that is still running is taken over where it stands.
                let adoptable = self.take_adoptable(&id);
                let port = match adoptable {
                    Some(port) => port,
                    None => free_port().map_err(DeployError::Port)?,
                };
                let mut spec = InstanceSpec {
                    id: id.clone(),
                    app: run.app.name.clone(),
                    release: number as u64,
                    process: process.name.clone(),
                    index,
                    command: process.command.clone(),
                    workdir: dir.to_path_buf(),
                    env,
                    port,
                    container_port: process.port,
                    stop_timeout: process.stop_timeout,
                    limits: containers::limits(process.memory, process.cpus),
                    restart: match process.restart {
                        wharf_config::Restart::Always => RestartPolicy::Always,
                        wharf_config::Restart::OnFailure => RestartPolicy::OnFailure,
                        wharf_config::Restart::Never => RestartPolicy::Never,
                    },
                };
                if adoptable.is_some() {
                    match self.runtime.adopt(spec.clone()).await {
                        Ok(Some(pid)) => {
                            self.store.set_instance_pid(&id, Some(pid))?;
                            self.store
                                .set_instance_state(&id, InstanceState::Starting)?;
                            tracing::info!(instance = %id, pid, "adopted a running instance");
                            out.push(spec);
                            continue;
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(instance = %id, error = %e, "could not adopt; starting it again")
                        }
                    }
                    spec.port = free_port().map_err(DeployError::Port)?;
                }
                let port = spec.port;
                // Recorded before it exists, so a crash right after the
                // spawn still knows what to look for.
                self.store.insert_instance(&NewInstance {
                    id: &id,
                    app_id: run.app.id,
                    release: number,
                    process: &process.name,
                    idx: index as i64,
                    port,
                })?;
                out.push(spec.clone());
                let pid = self.runtime.start(spec).await?;
                self.store.set_instance_pid(&id, Some(pid))?;
            }
        }
        Ok(())
    }

    /// The commit point, then the old release's retirement.
    pub(crate) async fn switch_and_retire(
        self: &Arc<Self>,
        run: &mut Run,
        new: Arc<LiveRelease>,
    ) -> Result<usize, DeployError> {
        let number = new.number;
        // Store first (Invariant 3), then the table swap (Invariant 2).
        self.store.switch(run.deploy, run.app.id, number)?;
        run.switched = true;
        let old = self.routes.switch(&run.app.name, new);
        run.send(Progress::Step {
            step: Step::Switched,
            detail: Some(format!("release {number} is serving")),
        });
        failpoint(Step::Switched, run.release).await;
        // The old release may be only in the store (after a restart) or
        // its instances may be live in this process.
        let Some(old) = old else { return Ok(0) };
        self.retire(run, old).await
    }

    /// Drains the old release (already out of the table) and stops it.
    pub(crate) async fn retire(
        self: &Arc<Self>,
        run: &mut Run,
        old: Arc<LiveRelease>,
    ) -> Result<usize, DeployError> {
        let drain_timeout = old.config.deploy.drain_timeout;
        run.step(
            self,
            Step::Draining,
            Some(format!(
                "release {}, up to {}",
                old.number,
                humantime_fmt(drain_timeout)
            )),
        )
        .await?;
        let report = wharf_proxy::drain(&old.backends(), drain_timeout).await;
        if !report.completed {
            let msg = format!(
                "drain of release {} timed out after {}: {} requests cut off",
                old.number,
                humantime_fmt(drain_timeout),
                report.abandoned
            );
            self.store
                .add_event(Some(run.app.id), Some(run.deploy), EventLevel::Warn, &msg)?;
        }
        run.step(
            self,
            Step::StoppingOld,
            Some(format!("release {}", old.number)),
        )
        .await?;
        let specs: Vec<InstanceSpec> = old.instances.iter().map(|i| i.spec.clone()).collect();
        drop(old);
        self.stop_instances(&specs).await;
        self.refresh_instance_gauge(&run.app);
        Ok(report.abandoned)
    }

    /// Stops instances concurrently and records them stopped.
    pub(crate) async fn stop_instances(&self, specs: &[InstanceSpec]) {
        for s in specs {
            let _ = self
                .store
                .set_instance_state(&s.id, InstanceState::Stopping);
        }
        let stops = specs.iter().map(|s| async move {
            if let Err(e) = self.runtime.stop(&s.id).await {
                tracing::warn!(instance = %s.id, error = %e, "stop failed");
            }
            let _ = self.store.set_instance_state(&s.id, InstanceState::Stopped);
        });
        join_all(stops).await;
    }

    /// Republishes the table whenever a live instance's health changes.
    fn watch_health(self: &Arc<Self>, release: &mut LiveRelease) {
        for inst in &mut release.instances {
            let Some(mut rx) = inst.healthy.clone() else {
                continue;
            };
            let engine = Arc::downgrade(self);
            let id = inst.spec.id.clone();
            inst.watcher = Some(tokio::spawn(async move {
                while rx.changed().await.is_ok() {
                    let Some(engine) = engine.upgrade() else {
                        return;
                    };
                    let healthy = *rx.borrow_and_update();
                    let state = if healthy {
                        InstanceState::Healthy
                    } else {
                        InstanceState::Unhealthy
                    };
                    tracing::warn!(instance = %id, healthy, "instance health changed");
                    let _ = engine.store.set_instance_state(&id, state);
                    engine.routes.publish();
                }
            }));
        }
    }

    /// Prunes releases beyond the app's `retain` count (never the serving one).
    async fn retain(&self, app: &AppRow) -> Result<(), DeployError> {
        let app = self.store.app(&app.name)?;
        let Some(serving) = self.routes.serving(&app.name) else {
            return Ok(());
        };
        let keep = serving.config.deploy.retain as usize;
        let ready: Vec<_> = self
            .store
            .releases(app.id)?
            .into_iter()
            .filter(|r| r.status == ReleaseStatus::Ready && Some(r.number) != app.current_release)
            .collect();
        for r in ready.into_iter().skip(keep.saturating_sub(1)) {
            self.runtime
                .remove_release(&app.name, r.number as u64)
                .await?;
            self.store
                .set_release_status(app.id, r.number, ReleaseStatus::Pruned, None)?;
            tracing::info!(app = %app.name, release = r.number, "pruned release");
        }
        Ok(())
    }

    async fn instance_tail(&self, app: &str, spec: &InstanceSpec) -> Vec<String> {
        let lines = self
            .runtime
            .tail_logs(app, Some(&spec.process), 500)
            .await
            .unwrap_or_default();
        let mine: Vec<String> = lines
            .into_iter()
            .filter(|l| l.instance == spec.id)
            .map(|l| l.line)
            .collect();
        mine[mine.len().saturating_sub(TAIL_LINES)..].to_vec()
    }

    pub(crate) fn refresh_instance_gauge(&self, app: &AppRow) {
        let Ok(rows) = self.store.live_instances(Some(app.id)) else {
            return;
        };
        for state in [
            InstanceState::Starting,
            InstanceState::Healthy,
            InstanceState::Unhealthy,
            InstanceState::Restarting,
            InstanceState::Stopping,
        ] {
            let n = rows.iter().filter(|r| r.state == state).count();
            self.metrics
                .instances
                .get_or_create(&crate::metrics::InstanceLabels {
                    app: app.name.clone(),
                    state: state.to_string(),
                })
                .set(n as i64);
        }
    }
}

/// Ends a progress stream with the outcome.
fn finished(tx: Option<&ProgressTx>, result: &Result<DeployReport, DeployError>) {
    let Some(tx) = tx else { return };
    let p = match result {
        Ok(report) => Progress::Finished {
            ok: true,
            message: report.summary(),
            report: Some(report.clone()),
        },
        Err(e) => Progress::Finished {
            ok: false,
            message: e.to_string(),
            report: None,
        },
    };
    let _ = tx.send(p);
}

/// Resolves with the instance and a reason once one of `ids` has exited
/// [`CRASHES_BEFORE_GIVING_UP`] times.
async fn crash_loop(
    mut events: tokio::sync::broadcast::Receiver<RuntimeEvent>,
    ids: Vec<String>,
) -> (String, String) {
    let mut exits = std::collections::HashMap::<String, u32>::new();
    loop {
        match events.recv().await {
            Ok(RuntimeEvent::Exited {
                id, code, signal, ..
            }) if ids.contains(&id) => {
                let n = exits.entry(id.clone()).or_default();
                *n += 1;
                if *n >= CRASHES_BEFORE_GIVING_UP {
                    let how = match (code, signal) {
                        (Some(c), _) => format!("exit code {c}"),
                        (None, Some(s)) => format!("signal {s}"),
                        _ => "unknown status".into(),
                    };
                    return (
                        id,
                        format!("it exited {n} times while starting (last: {how})"),
                    );
                }
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                return std::future::pending().await;
            }
        }
    }
}

pub(crate) fn health_spec(h: &wharf_config::HealthCheck) -> HealthSpec {
    HealthSpec {
        path: h.path.clone(),
        interval: h.interval,
        timeout: h.timeout,
        threshold: h.threshold,
    }
}

pub(crate) fn humantime_fmt(d: Duration) -> String {
    // "30s", "1m 30s": the same spelling as in wharf.toml.
    let secs = d.as_secs();
    let ms = d.subsec_millis();
    match (secs, ms) {
        (0, ms) => format!("{ms}ms"),
        (s, 0) if s % 60 == 0 => format!("{}m", s / 60),
        (s, 0) => format!("{s}s"),
        (s, ms) => format!("{s}.{ms:03}s"),
    }
}

fn how(outcome: &wharf_runtime::TaskOutcome) -> String {
    match (outcome.timed_out, outcome.code, outcome.signal) {
        (true, _, _) => "timed out".into(),
        (_, Some(c), _) => format!("exit code {c}"),
        (_, None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    }
}

/// Calls `send` with every live output line of `process` of `app` (of
/// release `release`, if given) until the returned task is aborted or `send`
/// answers `false`. Subscribe before starting what produces the lines.
pub(crate) fn forward_lines<F, Fut>(
    runtime: &Arc<dyn Runtime>,
    app: &str,
    release: Option<u64>,
    process: &str,
    mut send: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(wharf_runtime::LogLine) -> Fut + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let mut lines = runtime.log_lines();
    let (app, process) = (app.to_owned(), process.to_owned());
    tokio::spawn(async move {
        while let Ok(l) = lines.recv().await {
            let ours =
                l.app == app && l.process == process && release.is_none_or(|r| l.release == r);
            if ours && !send(l).await {
                break;
            }
        }
    })
}

/// Forwards `process` output lines of `run`'s app (of `release`, if given)
/// to its client as progress, when it has one.
fn forward_progress(
    run: &Run,
    runtime: &Arc<dyn Runtime>,
    release: Option<u64>,
    process: &str,
) -> Option<tokio::task::JoinHandle<()>> {
    run.tx.clone().map(|tx| {
        forward_lines(runtime, &run.app.name, release, process, move |l| {
            let sent = tx.send(Progress::Output { line: l.line }).is_ok();
            async move { sent }
        })
    })
}

/// Stops a [`forward_lines`] task once the last lines of a finished task
/// have had a moment to get through.
pub(crate) async fn finish_forwarding(forward: Option<tokio::task::JoinHandle<()>>) {
    if let Some(f) = forward {
        tokio::time::sleep(Duration::from_millis(50)).await;
        f.abort();
    }
}

/// A port the kernel says is free right now on 127.0.0.1.
pub(crate) fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The git revision of `dir`, `-dirty` when its tree has changes; `None`
/// outside a git checkout or without git.
async fn git_revision(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new("git");
        cmd.arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null());
        async move {
            cmd.output()
                .await
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        }
    };
    let rev = git(&["rev-parse", "--short=12", "HEAD"]).await?;
    let dirty = git(&["status", "--porcelain", "--", "."])
        .await
        .is_some_and(|s| !s.is_empty());
    Some(if dirty { format!("{rev}-dirty") } else { rev })
}
