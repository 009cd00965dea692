//! The deploy and rollback flows.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wharf_config::AppConfig;
use wharf_runtime::{InstanceSpec, ReleaseSource, Runtime, TaskSpec};
use wharf_store::{AppRow, DeployKind, DeployOutcome, EventLevel, ReleaseStatus, StoreError};

use crate::containers::{self, app_env};
use crate::live::LiveRelease;
use crate::progress::{DeployReport, Progress};
use crate::step::{Step, failpoint};
use crate::{DeployError, DeployRequest, Engine, ProgressTx};

/// How long the build may run.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// How long the release command may run.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
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
    /// Set when the job running this asks it to stop.
    pub(crate) cancel: Option<tokio::sync::watch::Receiver<bool>>,
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
        self.check_cancel()?;
        engine
            .store
            .transition(self.deploy, step.as_str(), detail.as_deref())?;
        tracing::info!(app = %self.app.name, deploy = self.deploy, step = step.as_str(), detail = detail.as_deref().unwrap_or(""), "deploy step");
        self.send(Progress::Step { step, detail });
        failpoint(step, self.release).await;
        Ok(())
    }

    /// A cancel stops the run at a step boundary (and just before the
    /// switch), before the commit point only: after the switch, it finishes.
    pub(crate) fn check_cancel(&self) -> Result<(), DeployError> {
        if !self.switched
            && let Some(cancel) = &self.cancel
            && *cancel.borrow()
        {
            return Err(DeployError::Cancelled {
                app: self.app.name.clone(),
                kind: self.kind.to_string(),
            });
        }
        Ok(())
    }

    /// Resolves once a cancel is asked for, before the commit point (never
    /// for a run that cannot be cancelled): a long wait selects on it.
    pub(crate) async fn cancel_requested(&self) {
        if let (Some(cancel), false) = (&self.cancel, self.switched)
            && cancel.clone().wait_for(|c| *c).await.is_ok()
        {
            return;
        }
        std::future::pending::<()>().await;
    }

    /// The release the proxy serves for the app right now (what a failure
    /// leaves serving), from the routing state, not from the store.
    pub(crate) fn serving(&self, engine: &Engine) -> Option<i64> {
        engine.routes.serving(&self.app.name).map(|r| r.number)
    }
}

impl Engine {
    /// Deploys the app in `req.source_dir` as a new release, as the job
    /// runner runs it (the one way a deploy happens): stopped at its next
    /// step before the switch once `cancel` says so.
    pub(crate) async fn deploy_job(
        self: &Arc<Self>,
        req: DeployRequest,
        tx: ProgressTx,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<DeployReport, DeployError> {
        let result = self.deploy_inner(req, Some(tx.clone()), Some(cancel)).await;
        finished(Some(&tx), &result);
        result
    }

    async fn deploy_inner(
        self: &Arc<Self>,
        req: DeployRequest,
        tx: Option<ProgressTx>,
        cancel: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Result<DeployReport, DeployError> {
        let config = request_config(&req.source_dir, &req.env)?;
        let source =
            std::fs::canonicalize(&req.source_dir).unwrap_or_else(|_| req.source_dir.clone());
        let app = self
            .store
            .upsert_app(&config.name, &source.to_string_lossy())?;
        let lock = self.app_lock(&app.name);
        let _guard = self.acquire(&lock, &app, req.wait).await?;
        let app = self.store.app(&app.name)?;
        let mut run = self.begin(app, DeployKind::Deploy, None, tx)?;
        run.cancel = cancel;
        run.pause = req.pause;
        run.notify = config.deploy.notify.clone();
        let (version, image) = (req.version, req.image);
        let label = req
            .source
            .unwrap_or_else(|| format!("dir {}", source.display()));
        self.run(run, |engine, run| {
            Box::pin(engine.deploy_steps(run, config, (source, label), version, image))
        })
        .await
    }

    /// Rolls `app` back to release `target` (default: the newest retained
    /// release before the serving one), as the job runner runs it (see
    /// [`Engine::deploy_job`]).
    pub(crate) async fn rollback_job(
        self: &Arc<Self>,
        app: &str,
        target: Option<i64>,
        tx: ProgressTx,
        cancel: tokio::sync::watch::Receiver<bool>,
    ) -> Result<DeployReport, DeployError> {
        let result = self
            .rollback_inner(app, target, true, Some(tx.clone()), Some(cancel))
            .await;
        finished(Some(&tx), &result);
        result
    }

    async fn rollback_inner(
        self: &Arc<Self>,
        app: &str,
        target: Option<i64>,
        wait: bool,
        tx: Option<ProgressTx>,
        cancel: Option<tokio::sync::watch::Receiver<bool>>,
    ) -> Result<DeployReport, DeployError> {
        let app = self.store.app(app)?;
        let lock = self.app_lock(&app.name);
        let _guard = self.acquire(&lock, &app, wait).await?;
        let app = self.store.app(&app.name)?;
        let target = self.rollback_target(&app, target)?;
        let mut run = self.begin(app, DeployKind::Rollback, Some(target), tx)?;
        run.cancel = cancel;
        self.run(run, |engine, run| {
            Box::pin(engine.activate_steps(run, target))
        })
        .await
    }

    pub(crate) async fn acquire<'a>(
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
                kind: running
                    .as_ref()
                    .map_or_else(|| "deploy".to_owned(), |d| d.kind.to_string()),
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
                    app,
                    deploy,
                    kind,
                    state,
                } => DeployError::InProgress {
                    app,
                    kind,
                    deploy,
                    state,
                },
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
            cancel: None,
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
        (source, label): (PathBuf, String),
        version: Option<String>,
        image: Option<String>,
    ) -> Result<usize, DeployError> {
        let config_json = config_json(&config)?;
        let revision = match version {
            Some(v) => Some(v),
            None => git_revision(&source).await,
        };
        // Before the build, which may write into the tree.
        let source_hash = match crate::source::source_hash(&source).await {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(app = %run.app.name, error = %e, "could not hash the source tree");
                None
            }
        };
        let release = self.store.create_release(
            run.app.id,
            revision.as_deref(),
            &config_json,
            source_hash.as_deref(),
        )?;
        let number = release.number;
        self.store.set_release_source(run.app.id, number, &label)?;
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
                .task(
                    run,
                    &host,
                    ("build", build),
                    &source,
                    &env,
                    Vec::new(),
                    BUILD_TIMEOUT,
                )
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
            app_image: config.uses_app_image(),
            processes: containers::process_images(&config),
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

        self.bridge_assets(run, &config, number, &dir).await?;
        self.accessories_step(run, &config, &source).await?;

        let tasks = config.release_command.len();
        for (n, command) in config.release_command.iter().enumerate() {
            let detail = if tasks == 1 {
                command.clone()
            } else {
                format!("{} of {tasks}: {command}", n + 1)
            };
            run.step(self, Step::Releasing, Some(detail)).await?;
            let outcome = self
                .task(
                    run,
                    &runtime,
                    ("release", command),
                    &dir,
                    &env,
                    containers::task_volumes(&config),
                    RELEASE_TIMEOUT,
                )
                .await?;
            if !outcome.success() {
                return Err(DeployError::ReleaseCommand {
                    app: run.app.name.clone(),
                    release: number,
                    serving: run.serving(self),
                    how: how(&outcome),
                    tail: outcome.tail,
                });
            }
        }

        self.certificates_step(run, &config, &source, true).await?;
        let live = self.start_release(run, number, config, &dir).await?;
        self.store
            .set_release_status(run.app.id, number, ReleaseStatus::Ready, None)?;
        let abandoned = self.go_live(run, live).await?;
        self.retain(&run.app).await?;
        Ok(abandoned)
    }

    /// Brings a retained release back: accessories, start, health, switch
    /// (rollback, and restore after a restart).
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
        // What the release needs before it starts: after a restart of
        // `wharf up` its accessories are stopped, and instances that cannot
        // reach their database would only fail their health checks.
        let source = PathBuf::from(&run.app.source_dir);
        self.bridge_assets(run, &config, target, &dir).await?;
        self.accessories_step(run, &config, &source).await?;
        self.certificates_step(run, &config, &source, false).await?;
        let live = self.start_release(run, target, config, &dir).await?;
        self.switch_and_retire(run, live).await
    }

    /// Boots (or starts) every accessory of `config` that is not running
    /// and waits for its health check, as a step of `run`; an accessory
    /// image built here streams as progress. Nothing when it has none.
    async fn accessories_step(
        &self,
        run: &Run,
        config: &AppConfig,
        source: &Path,
    ) -> Result<(), DeployError> {
        if config.accessories.is_empty() {
            return Ok(());
        }
        let runtime = self.runtime_for(config).await?;
        let names: Vec<&str> = config.accessories.keys().map(String::as_str).collect();
        run.step(self, Step::Accessories, Some(names.join(", ")))
            .await?;
        // An accessory's build output is logged as release 0's.
        let forward = forward_progress(run, &runtime, Some(0), "build");
        let booted = self.boot_accessories(config, source).await;
        finish_forwarding(forward).await;
        booted
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

    /// The release a rollback of `app` to `target` would go to, or why
    /// there is none (checked before such a job is queued).
    pub fn check_rollback(&self, app: &str, target: Option<i64>) -> Result<i64, DeployError> {
        let app = self.store.app(app)?;
        self.rollback_target(&app, target)
    }

    fn rollback_target(&self, app: &AppRow, target: Option<i64>) -> Result<i64, DeployError> {
        let none = |why: &str| DeployError::NoRollbackTarget {
            app: app.name.clone(),
            why: why.to_owned(),
        };
        let current = app.current_release;
        if let Some(n) = target {
            // The store's serving release may not be routed (its restore
            // failed): then bringing it back is exactly what is asked.
            let routed = self.routes.serving(&app.name).map(|r| r.number);
            if Some(n) == routed {
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

    /// Runs the build or release command (`(name, command)`), streaming
    /// its output as progress.
    #[allow(clippy::too_many_arguments)]
    async fn task(
        &self,
        run: &Run,
        runtime: &Arc<dyn Runtime>,
        (name, command): (&str, &str),
        workdir: &Path,
        env: &std::collections::BTreeMap<String, String>,
        volumes: Vec<wharf_runtime::VolumeMount>,
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
                volumes,
                timeout,
            })
            .await;
        finish_forwarding(forward).await;
        Ok(outcome?)
    }

    /// The commit point, then the old release's retirement.
    pub(crate) async fn switch_and_retire(
        self: &Arc<Self>,
        run: &mut Run,
        new: Arc<LiveRelease>,
    ) -> Result<usize, DeployError> {
        let number = new.number;
        // The last moment a cancel can take effect: the new release's
        // instances go, and the old one keeps serving.
        if let Err(cancelled) = run.check_cancel() {
            let specs: Vec<_> = new.instances.iter().map(|i| i.spec.clone()).collect();
            self.stop_instances(&specs).await;
            return Err(cancelled);
        }
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
}

/// The config a deploy of `dir` with `env` overrides makes a release of:
/// its `env_file`s read now (their values are the release's), the
/// overrides on top, `./relative` volume sources made absolute.
pub(crate) fn request_config(
    dir: &Path,
    env: &std::collections::BTreeMap<String, String>,
) -> Result<AppConfig, DeployError> {
    let config = AppConfig::load(dir)?
        .with_env_files(dir)
        .map_err(DeployError::EnvFiles)?
        .with_volume_paths(dir);
    if env.is_empty() {
        return Ok(config);
    }
    config
        .with_env_overrides(env)
        .map_err(DeployError::EnvOverride)
}

/// How a release's config is kept in the store.
fn config_json(config: &AppConfig) -> Result<String, DeployError> {
    Ok(serde_json::to_string(config).map_err(|e| StoreError::Corrupt(e.to_string()))?)
}

impl Engine {
    /// Why deploying `dir` (with `env` overrides) would make something else
    /// than release `number` of its app: its source tree or its config
    /// differs (see [`crate::source`]); `None` when it would not.
    pub async fn source_differs(
        &self,
        dir: &Path,
        env: &std::collections::BTreeMap<String, String>,
        number: i64,
    ) -> Result<Option<String>, DeployError> {
        let config = request_config(dir, env)?;
        let app = self.store.app(&config.name)?;
        let release = self.store.release(&app, number)?;
        let hash = crate::source::source_hash(dir)
            .await
            .map_err(|e| DeployError::Source {
                dir: dir.to_path_buf(),
                source: e,
            })?;
        Ok(crate::source::differs(
            &release,
            &hash,
            &config_json(&config)?,
        ))
    }
}

/// Ends a progress stream with the outcome.
pub(crate) fn finished(tx: Option<&ProgressTx>, result: &Result<DeployReport, DeployError>) {
    let Some(tx) = tx else { return };
    let p = match result {
        Ok(report) => Progress::Finished {
            ok: true,
            message: report.summary(),
            report: Some(report.clone()),
            exit_code: None,
        },
        Err(e) => Progress::finished(false, e.to_string()),
    };
    let _ = tx.send(p);
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
            let sent = tx.send(Progress::output(l.line)).is_ok();
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

/// The git revision of `dir`, `-dirty` when its tree has changes; `None`
/// outside a git checkout or without git.
pub async fn git_revision(dir: &Path) -> Option<String> {
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
