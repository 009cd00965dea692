//! Convergence after a crash or a restart, and the record of what the
//! runtime does.
//!
//! A server killed at any point leaves: instance processes (its children,
//! now orphans) or containers, maybe a deploy with no outcome, and a store
//! whose `apps.current_release` says which release was serving at the last
//! commit point. Recovery has two halves:
//!
//! 1. [`Engine::prepare_recovery`], before the server answers anything and
//!    without waiting on anything but the store: hands the jobs a dead
//!    runner held back to the queue (to be resumed first), closes open
//!    deploys as `interrupted`, marks releases that never served failed,
//!    notes the instances that may still run (containers outlive the
//!    server), and marks every app that should serve as restoring — its
//!    routes answer 503 with `Retry-After` at once, not 404.
//! 2. [`Engine::recover`], while the API and proxy already answer: the
//!    restores are jobs of the queue, like every change to an app. An app
//!    whose interrupted job is resumed gets its restore from that job;
//!    every other app to bring back gets a `restore` job, which the runner
//!    takes before any other job of the app. Apps restore at once, each in
//!    its own job (no app waits for another). A restore brings back the
//!    serving release through the same path as a rollback — boot the
//!    accessories and wait for their health, start the release's instances
//!    (adopting those still running), health, switch — and then removes
//!    whatever of that app the runtimes find that this server did not start
//!    or adopt. A restore that fails leaves the app marked down with its
//!    error (`wharf status`: "not serving: restore of release N failed: …"),
//!    its routes still answering 503; a deploy or rollback clears it.
//!
//! The result: exactly one release serves per app, or the app says it
//! does not; nothing is orphaned.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, oneshot};
use wharf_config::AppConfig;
use wharf_jobs::{JobKind, QueueLimits};
use wharf_runtime::{Runtime, RuntimeEvent};
use wharf_store::{
    AppRow, DeployKind, DeployOutcome, Enqueued, EventLevel, InstanceState, JobRow, NewJob,
    ReleaseStatus, now_ms,
};

use crate::live::{Down, DownReason};
use crate::{DeployError, Engine, Progress, ProgressTx};

/// How long leftovers get between SIGTERM and SIGKILL.
const LEFTOVER_GRACE: Duration = Duration::from_secs(5);

/// Where restores report their progress, per app (`wharf up` shows its
/// app's; `wharf server` logs every step anyway).
pub type RecoveryTx = mpsc::UnboundedSender<(String, Progress)>;

/// What [`Engine::recover`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryReport {
    /// Leftover processes killed.
    pub killed: usize,
    /// Deploys closed as interrupted.
    pub interrupted: Vec<i64>,
    /// (app, release) brought back.
    pub restored: Vec<(String, i64)>,
    /// (app, why) that could not be brought back.
    pub failed: Vec<(String, String)>,
}

/// What the first half of recovery found and the second half will do.
#[derive(Debug, Default)]
pub struct RecoveryPlan {
    apps: Vec<AppPlan>,
    interrupted: Vec<i64>,
    /// The jobs a dead runner held, queued again to be resumed.
    resumed: Vec<JobRow>,
}

/// An app's restore, waiting for the job that carries it.
#[derive(Debug)]
pub(crate) struct PendingRestore {
    plan: AppPlan,
    progress: Option<RecoveryTx>,
    /// (the restore's outcome, leftovers killed), for the report.
    done: oneshot::Sender<(Option<Result<i64, String>>, usize)>,
}

#[derive(Debug)]
struct AppPlan {
    name: String,
    /// The release to restore (the store's serving release).
    restore: Option<i64>,
    /// Releases of interrupted deploys that never served: their files go.
    dead: Vec<i64>,
    /// The config that says which runtime the app uses (its serving
    /// release's, else its newest release's).
    config: Option<AppConfig>,
}

impl RecoveryPlan {
    /// The (app, release) pairs that will be restored.
    pub fn restores(&self) -> Vec<(String, i64)> {
        self.apps
            .iter()
            .filter_map(|a| Some((a.name.clone(), a.restore?)))
            .collect()
    }

    /// The jobs of an earlier server that will be resumed.
    pub fn resumed(&self) -> Vec<i64> {
        self.resumed.iter().map(|j| j.id).collect()
    }
}

impl Engine {
    /// The first half of recovery (see the module docs). Store work only:
    /// run it before the server answers anything.
    pub fn prepare_recovery(self: &Arc<Self>) -> Result<RecoveryPlan, DeployError> {
        let apps = self.store.apps()?;
        let name_of = |id: i64| apps.iter().find(|a| a.id == id).map(|a| a.name.clone());
        // What the store expected to run. Containers outlive the server, so
        // the serving release's may still be up: those are adopted by the
        // restore instead of being started again.
        {
            let mut adoptable = self.adoptable.lock().unwrap_or_else(|e| e.into_inner());
            for row in self.store.live_instances(None)? {
                if let Some(app) = name_of(row.app_id) {
                    adoptable.insert(row.id.clone(), (app, row.port));
                }
                self.store
                    .set_instance_state(&row.id, InstanceState::Stopped)?;
            }
        }
        let mut plan = RecoveryPlan::default();
        // Jobs a dead runner held go back to the queue, resumed first.
        for id in self.store.rescue_all(now_ms())? {
            if let Some(job) = self.store.job(id)? {
                plan.resumed.push(job);
            }
        }
        if !plan.resumed.is_empty() {
            tracing::info!(jobs = ?plan.resumed(), "jobs of an earlier server queued again, to be resumed");
        }
        let mut dead: Vec<(i64, i64)> = Vec::new();
        for d in self.store.unfinished_deploys()? {
            let serving = apps
                .iter()
                .find(|a| a.id == d.app_id)
                .and_then(|a| a.current_release);
            let msg = match serving {
                Some(n) => format!(
                    "the server stopped during `{}`; release {n} was serving and is restored",
                    d.state
                ),
                None => format!(
                    "the server stopped during `{}`; no release was serving",
                    d.state
                ),
            };
            self.store
                .finish_deploy(d.id, DeployOutcome::Interrupted, Some(&msg))?;
            self.store.add_event(
                Some(d.app_id),
                Some(d.id),
                EventLevel::Warn,
                &format!("{} {} interrupted: {msg}", d.kind, d.id),
            )?;
            plan.interrupted.push(d.id);
            // A new release that never became the serving one is dead.
            if let (DeployKind::Deploy, Some(to)) = (d.kind, d.to_release)
                && Some(to) != serving
            {
                self.store
                    .set_release_status(d.app_id, to, ReleaseStatus::Failed, None)?;
                dead.push((d.app_id, to));
            }
        }
        for app in &apps {
            if let Some(message) = &app.maintenance {
                self.routes.set_maintenance(&app.name, Some(message));
            }
            let config = self.runtime_config(app);
            if let (Some(number), Some(config)) = (app.current_release, &config) {
                self.routes.mark_down(
                    &app.name,
                    Down {
                        release: number,
                        config: config.clone(),
                        reason: DownReason::Restoring,
                    },
                );
            }
            plan.apps.push(AppPlan {
                name: app.name.clone(),
                restore: app.current_release,
                dead: dead
                    .iter()
                    .filter(|(id, _)| *id == app.id)
                    .map(|(_, n)| *n)
                    .collect(),
                config,
            });
        }
        Ok(plan)
    }

    /// The config that tells which runtime `app` uses: its serving
    /// release's, else its newest release's.
    fn runtime_config(&self, app: &AppRow) -> Option<AppConfig> {
        let number = match app.current_release {
            Some(n) => n,
            None => self.store.releases(app.id).ok()?.first()?.number,
        };
        self.stored_config(app, number).ok()
    }

    /// The second half of recovery (see the module docs): queues the
    /// restores (or leaves them to the resumed jobs that carry them), lets
    /// the job runner start, and returns once every app is back. Progress
    /// of each restore goes to `progress` too, tagged with its app.
    pub async fn recover(
        self: &Arc<Self>,
        plan: RecoveryPlan,
        progress: Option<RecoveryTx>,
    ) -> RecoveryReport {
        let mut report = RecoveryReport {
            interrupted: plan.interrupted,
            ..RecoveryReport::default()
        };
        // A resumed job that changes its app carries the app's restore.
        let carried: HashSet<&str> = plan
            .resumed
            .iter()
            .filter(|j| j.kind.exclusive())
            .map(|j| j.app.as_str())
            .collect();
        let mut waits = Vec::new();
        let mut inline = Vec::new();
        for app in plan.apps {
            let carried = carried.contains(app.name.as_str());
            if !carried && app.restore.is_none() && app.dead.is_empty() {
                // Nothing served: only leftovers to remove, before any job
                // of the app may start instances.
                inline.push(app);
                continue;
            }
            let name = app.name.clone();
            let (done, wait) = oneshot::channel();
            self.pending_restores().insert(
                name.clone(),
                PendingRestore {
                    plan: app,
                    progress: progress.clone(),
                    done,
                },
            );
            if !carried && let Err(why) = self.queue_restore(&name) {
                // Never dropped: restored here, before the runner starts.
                tracing::warn!(app = %name, error = %why, "could not queue the restore; restoring outside the queue");
                if let Some(pending) = self.pending_restores().remove(&name) {
                    inline.push(pending.plan);
                }
                continue;
            }
            waits.push((name, wait));
        }
        for app in inline {
            let tx = progress
                .as_ref()
                .map(|out| tee(None, Some(out.clone()), &app.name));
            let (name, restored, killed) = self.recover_app(app, tx).await;
            report.add(name, restored, killed);
        }
        // The runner may start: resumed jobs first, then the restores.
        self.jobs.set_ready();
        self.jobs.wake();
        for (name, wait) in waits {
            match wait.await {
                Ok((restored, killed)) => report.add(name, restored, killed),
                Err(_) => report.failed.push((
                    name,
                    "its restore job ended before it restored (see `wharf jobs`)".into(),
                )),
            }
        }
        report
    }

    fn pending_restores(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, PendingRestore>> {
        self.pending_restores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Queues a restore job of `app`.
    fn queue_restore(&self, app: &str) -> Result<(), String> {
        let args =
            serde_json::to_string(&crate::jobs::JobArgs::Restore).map_err(|e| e.to_string())?;
        match self
            .store
            .enqueue(
                &NewJob::new(app, JobKind::Restore, &args),
                QueueLimits::default(),
                now_ms(),
            )
            .map_err(|e| e.to_string())?
        {
            Enqueued::Queued { job, .. } => {
                tracing::info!(app, job = job.id, "restore queued");
                Ok(())
            }
            Enqueued::Full(full) => Err(full.to_string()),
            Enqueued::Duplicate { existing_id } => {
                Err(format!("job {existing_id} has the same key"))
            }
        }
    }

    /// The restore of `app`, as a job runs it: the one waiting for it
    /// since the server started, else (a restore job queued by an earlier
    /// server and never run) the serving release's if nothing serves it.
    /// Its progress goes to `ptx`. `None`: nothing to restore.
    pub(crate) async fn restore_app(
        self: &Arc<Self>,
        app: &str,
        ptx: &ProgressTx,
    ) -> Option<Result<i64, String>> {
        let pending = self.pending_restores().remove(app);
        let (plan, progress, done) = match pending {
            Some(p) => (p.plan, p.progress, Some(p.done)),
            None => {
                if self.routes.serving(app).is_some() {
                    return None;
                }
                let row = self.store.app(app).ok()?;
                let plan = AppPlan {
                    name: row.name.clone(),
                    restore: row.current_release,
                    dead: Vec::new(),
                    config: self.runtime_config(&row),
                };
                (plan, None, None)
            }
        };
        let tx = tee(Some(ptx.clone()), progress, app);
        let (_, restored, killed) = self.recover_app(plan, Some(tx)).await;
        if let Some(done) = done {
            let _ = done.send((restored.clone(), killed));
        }
        restored
    }

    /// Restores one app (under its deploy lock), then removes its
    /// leftovers. Returns (app, the restore's outcome, leftovers killed).
    async fn recover_app(
        self: &Arc<Self>,
        app: AppPlan,
        progress: Option<ProgressTx>,
    ) -> (String, Option<Result<i64, String>>, usize) {
        let lock = self.app_lock(&app.name);
        let _guard = lock.lock().await;
        // The app's runtime first: a docker app connects the docker runtime
        // here, so its leftovers are seen even when nothing is restored.
        if let Some(config) = &app.config
            && let Err(e) = self.runtime_for(config).await
        {
            tracing::error!(app = %app.name, error = %e, "the app's runtime is not available");
        }
        let restored = match app.restore {
            None => None,
            Some(number) => {
                tracing::info!(app = %app.name, release = number, "restoring the serving release");
                let result = self.restore(&app.name, number, progress).await;
                Some(match result {
                    Ok(_) => {
                        tracing::info!(app = %app.name, release = number, "restored");
                        Ok(number)
                    }
                    Err(e) => {
                        let why = e.to_string();
                        tracing::error!(app = %app.name, release = number, error = %why, "could not restore the serving release");
                        self.mark_restore_failed(&app.name, number, app.config.clone(), &why);
                        Err(why)
                    }
                })
            }
        };
        self.forget_adoptable(&app.name);
        // Everything of this app the runtimes run now and did not adopt or
        // start is a leftover (an interrupted deploy's instances, older
        // releases', a process runtime's orphans).
        let killed = match self
            .runtime
            .kill_leftovers(Some(&app.name), LEFTOVER_GRACE)
            .await
        {
            Ok(found) => {
                if !found.is_empty() {
                    tracing::warn!(app = %app.name, count = found.len(), "removed instances left by an earlier server");
                }
                found.len()
            }
            Err(e) => {
                tracing::error!(app = %app.name, error = %e, "could not remove the instances left by an earlier server");
                0
            }
        };
        for release in app.dead {
            let _ = self.runtime.remove_release(&app.name, release as u64).await;
        }
        (app.name, restored, killed)
    }

    /// Marks `app` down after its restore of `release` failed: its routes
    /// answer 503, `wharf status` names the error.
    fn mark_restore_failed(&self, app: &str, release: i64, config: Option<AppConfig>, why: &str) {
        let config = config.or_else(|| {
            let row = self.store.app(app).ok()?;
            self.stored_config(&row, release).ok()
        });
        if let Some(config) = config {
            self.routes.mark_down(
                app,
                Down {
                    release,
                    config,
                    reason: DownReason::RestoreFailed(why.to_owned()),
                },
            );
        }
    }

    fn forget_adoptable(&self, app: &str) {
        self.adoptable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (a, _)| a != app);
    }

    /// Starts the serving release of `app` again and routes to it.
    async fn restore(
        self: &Arc<Self>,
        app: &str,
        number: i64,
        tx: Option<ProgressTx>,
    ) -> Result<crate::DeployReport, DeployError> {
        let result = async {
            let app = self.store.app(app)?;
            let run = self.begin(app, DeployKind::Restore, Some(number), tx.clone())?;
            // The same path as a rollback: accessories, start the retained
            // release, health, switch.
            self.run(run, move |engine, run| {
                Box::pin(engine.activate_steps(run, number))
            })
            .await
        }
        .await;
        crate::deploy::finished(tx.as_ref(), &result);
        result
    }
}

impl RecoveryReport {
    fn add(&mut self, app: String, restored: Option<Result<i64, String>>, killed: usize) {
        self.killed += killed;
        match restored {
            Some(Ok(n)) => self.restored.push((app, n)),
            Some(Err(e)) => self.failed.push((app, e)),
            None => {}
        }
    }
}

/// One progress stream sent to a job (`job`) and to recovery's watcher
/// (`out`, tagged with `app`).
fn tee(job: Option<ProgressTx>, out: Option<RecoveryTx>, app: &str) -> ProgressTx {
    let (tx, mut rx) = mpsc::unbounded_channel::<Progress>();
    let app = app.to_owned();
    tokio::spawn(async move {
        while let Some(p) = rx.recv().await {
            if let Some(out) = &out {
                let _ = out.send((app.clone(), p.clone()));
            }
            if let Some(job) = &job {
                let _ = job.send(p);
            }
        }
    });
    tx
}

/// Follows the runtime's events: records pids and exits, and keeps a
/// crashed serving instance out of the routing table until its restarted
/// process has passed its health check again.
pub(crate) async fn record_runtime_events(engine: Weak<Engine>) {
    let mut events = match engine.upgrade() {
        Some(e) => e.runtime.events(),
        None => return,
    };
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                tracing::warn!(missed = n, "runtime events were missed");
                continue;
            }
            Err(RecvError::Closed) => return,
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        if let Err(e) = engine.on_runtime_event(&event) {
            tracing::error!(error = %e, "could not record a runtime event");
        }
    }
}

impl Engine {
    fn on_runtime_event(
        self: &Arc<Self>,
        event: &RuntimeEvent,
    ) -> Result<(), wharf_store::StoreError> {
        let store = &self.store;
        match event {
            RuntimeEvent::Started { id, pid, .. } => {
                store.set_instance_pid(id, Some(*pid))?;
                if let Some((release, i)) = self.routes.find(id)
                    && !release.instances[i].up.load(Ordering::Acquire)
                {
                    tokio::spawn(readmit(Arc::downgrade(self), release, i));
                }
            }
            RuntimeEvent::Exited {
                id,
                code,
                signal,
                restart_in,
            } => {
                if let Some((release, i)) = self.routes.find(id) {
                    release.instances[i].up.store(false, Ordering::Release);
                    self.routes.publish();
                }
                let app = store.instance(id)?.map(|r| r.app_id);
                let how = match (code, signal) {
                    (Some(c), _) => format!("with code {c}"),
                    (None, Some(s)) => format!("on signal {s}"),
                    _ => String::new(),
                };
                let next = restart_in.map_or_else(String::new, |d| {
                    format!("; restarting in {}", crate::deploy::humantime_fmt(d))
                });
                tracing::warn!(instance = %id, code, signal, "instance exited");
                store.add_event(
                    app,
                    None,
                    EventLevel::Warn,
                    &format!("instance {id} exited {how}{next}"),
                )?;
                if restart_in.is_some() {
                    store.set_instance_state(id, InstanceState::Restarting)?;
                }
            }
            RuntimeEvent::Stopped { .. } => {}
        }
        Ok(())
    }
}

/// Puts a restarted instance back in the table once it passes its health
/// check (Architecture Invariant 1 holds across restarts too). Gives up when
/// the instance is no longer serving (stopped, or its release replaced).
async fn readmit(engine: Weak<Engine>, release: Arc<crate::live::LiveRelease>, i: usize) {
    let inst = &release.instances[i];
    let health = release
        .config
        .processes
        .get(&inst.spec.process)
        .and_then(|p| p.health.as_ref())
        .map(crate::start::health_spec);
    let timeout = release.config.deploy.health_timeout;
    let mut first = true;
    loop {
        // Fast probes once, as for any starting instance; an instance that
        // stayed unhealthy through a whole health timeout is then probed
        // at its interval, never in a fast burst again.
        let passed = match &health {
            Some(h) if first => wharf_proxy::health::wait_healthy(inst.spec.addr(), h, timeout)
                .await
                .is_ok(),
            Some(h) => wharf_proxy::health::wait_healthy_at_interval(inst.spec.addr(), h, timeout)
                .await
                .is_ok(),
            None => {
                tokio::time::sleep(crate::start::READY_GRACE).await;
                true
            }
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let still_serving = engine
            .routes
            .find(&inst.spec.id)
            .is_some_and(|(r, _)| Arc::ptr_eq(&r, &release));
        if !still_serving {
            return;
        }
        if passed {
            inst.up.store(true, Ordering::Release);
            let _ = engine
                .store
                .set_instance_state(&inst.spec.id, InstanceState::Healthy);
            engine.routes.publish();
            tracing::info!(instance = %inst.spec.id, "restarted instance is healthy again");
            return;
        }
        let _ = engine
            .store
            .set_instance_state(&inst.spec.id, InstanceState::Unhealthy);
        first = false;
    }
}
