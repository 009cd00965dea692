//! Deploys and rollbacks as jobs of the durable queue (`wharf-store`'s
//! `jobs`, rules in `wharf-jobs`).
//!
//! [`Engine::submit`] enqueues: per app one job runs and at most one deploy
//! or rollback waits; a newer one supersedes the waiting one, whose
//! followers are told so at once. A full queue is [`DeployError::QueueFull`]
//! (the API answers 429). The caller gets the job's progress stream: a
//! `queued` line when it waits behind another job, then the deploy's own
//! progress, ending with `finished`.
//!
//! [`Engine::run_jobs`] is the one runner of a server: it claims the next
//! job whose app has none running, runs it with a lease renewed by a
//! heartbeat, records its steps and progress lines in the store, and
//! finishes it. A cancel asked for a running job stops it at its next step
//! boundary before the switch (the release that served before keeps
//! serving; the commit point is never undone). After a crash, the server's
//! start hands running jobs back to the queue ([`Engine::resume_jobs`]),
//! and the runner takes each over once recovery has converged its app: a
//! deploy whose release was switched to before the crash ends as
//! succeeded; any other ends as failed, "interrupted", never run a second
//! time (the restore already brought back what served; a deploy that
//! crashed the server is not retried into another crash). The jobs that
//! waited behind it run after.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};
use wharf_jobs::{JobEnd, JobId, JobKind, LogStream, QueueLimits, StepState};
use wharf_store::{Enqueued, JobRow, LeaseStatus, NewJob, StepEnd, now_ms};

use crate::{DeployError, DeployRequest, Engine, Progress, ProgressTx};

/// How long a runner's claim on a job lasts without a heartbeat.
pub const LEASE: Duration = wharf_jobs::policy::DEFAULT_LEASE;

/// What a deploy or rollback job does, as stored (no secret values: `env`
/// holds the `--env` overrides, which are plain config).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobArgs {
    Deploy {
        source_dir: PathBuf,
        #[serde(default)]
        env: BTreeMap<String, String>,
        #[serde(default)]
        pause: bool,
        #[serde(default)]
        version: Option<String>,
        #[serde(default)]
        image: Option<String>,
        /// Where the source came from (recorded with the release).
        #[serde(default)]
        source: Option<String>,
    },
    Rollback {
        #[serde(default)]
        release: Option<i64>,
    },
    /// A run of a cron entry (scheduled, or asked for with `wharf cron run`).
    Cron {
        entry: String,
        command: String,
        process: String,
        timeout_ms: u64,
    },
}

impl JobArgs {
    fn kind(&self) -> JobKind {
        match self {
            JobArgs::Deploy { .. } => JobKind::Deploy,
            JobArgs::Rollback { .. } => JobKind::Rollback,
            JobArgs::Cron { .. } => JobKind::Cron,
        }
    }
}

/// A job just queued, and its progress.
#[derive(Debug)]
pub struct Submitted {
    pub job: JobId,
    /// The waiting jobs it replaced.
    pub superseded: Vec<JobId>,
    /// The running job it waits for, if any.
    pub behind: Option<JobId>,
    pub progress: mpsc::UnboundedReceiver<Progress>,
}

/// Who follows which job, and the runner's wake-up call.
#[derive(Debug)]
pub(crate) struct Hub {
    /// Set once recovery has brought every app back: until then the
    /// runner takes no job (a deploy racing a restore would be undone by
    /// it).
    ready: watch::Sender<bool>,
    followers: Mutex<HashMap<JobId, Vec<ProgressTx>>>,
    /// The running jobs of this runner, to stop at once on a cancel (the
    /// heartbeat carries a cancel asked elsewhere).
    cancels: Mutex<HashMap<JobId, watch::Sender<bool>>>,
    wake: Notify,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            ready: watch::Sender::new(false),
            followers: Mutex::default(),
            cancels: Mutex::default(),
            wake: Notify::new(),
        }
    }
}

impl Hub {
    /// Recovery is over: the runner may start.
    pub(crate) fn set_ready(&self) {
        self.ready.send_replace(true);
    }

    /// A job of this runner ended: nothing to stop any more.
    fn forget_cancel(&self, id: JobId) {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
    }

    /// Asks the runner to look for work now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    fn followers(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Vec<ProgressTx>>> {
        self.followers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn send(&self, job: JobId, p: &Progress) {
        if let Some(list) = self.followers().get_mut(&job) {
            list.retain(|tx| tx.send(p.clone()).is_ok());
        }
    }

    fn end(&self, job: JobId, last: Option<Progress>) {
        if let Some(list) = self.followers().remove(&job)
            && let Some(p) = last
        {
            for tx in list {
                let _ = tx.send(p.clone());
            }
        }
    }
}

impl Engine {
    /// Queues a deploy or rollback of `app` (see the module doc).
    pub fn submit(&self, app: &str, args: JobArgs) -> Result<Submitted, DeployError> {
        let kind = args.kind();
        let json =
            serde_json::to_string(&args).map_err(|e| DeployError::Internal(e.to_string()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        // Held across the enqueue, so the runner cannot send this job's
        // first progress before its follower is registered.
        let mut followers = self.jobs.followers();
        let queued = self.store.enqueue(
            &NewJob::new(app, kind, &json),
            QueueLimits::default(),
            now_ms(),
        )?;
        let (job, superseded, behind) = match queued {
            Enqueued::Queued {
                job,
                superseded,
                behind,
            } => (job, superseded, behind),
            Enqueued::Full(full) => return Err(DeployError::QueueFull(full.to_string())),
            Enqueued::Duplicate { existing_id } => {
                return Err(DeployError::Internal(format!(
                    "job {existing_id} was queued with the same key"
                )));
            }
        };
        followers.entry(job.id).or_default().push(tx.clone());
        for old in &superseded {
            if let Some(list) = followers.remove(old) {
                let message = format!(
                    "job {old} was superseded by job {} (a newer {kind} of {app}), which runs instead; nothing of job {old} was done",
                    job.id
                );
                for f in list {
                    let _ = f.send(Progress::Finished {
                        ok: false,
                        message: message.clone(),
                        report: None,
                    });
                }
            }
        }
        let _ = tx.send(Progress::Queued {
            job: job.id,
            behind,
        });
        drop(followers);
        tracing::info!(app, job = job.id, %kind, ?superseded, ?behind, "job queued");
        self.jobs.wake.notify_one();
        Ok(Submitted {
            job: job.id,
            superseded,
            behind,
            progress: rx,
        })
    }

    /// At a server's start: every job a dead runner held goes back to the
    /// queue, to be resumed by [`Engine::run_jobs`].
    pub fn resume_jobs(&self) -> Result<Vec<JobId>, DeployError> {
        let ids = self.store.rescue_all(now_ms())?;
        if !ids.is_empty() {
            tracing::info!(?ids, "jobs of an earlier server queued again");
        }
        Ok(ids)
    }

    /// Asks job `id` to stop: a queued job is cancelled at once, a running
    /// one at its next step before the switch.
    pub fn cancel_job(&self, id: JobId) -> Result<wharf_jobs::CancelAction, DeployError> {
        let action = self.store.request_cancel(id, now_ms())?;
        if matches!(action, wharf_jobs::CancelAction::RequestStop)
            && let Some(tx) = self
                .jobs
                .cancels
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&id)
        {
            let _ = tx.send(true);
        }
        if matches!(action, wharf_jobs::CancelAction::CancelNow) {
            self.jobs.end(
                id,
                Some(Progress::Finished {
                    ok: false,
                    message: format!("job {id} was cancelled before it started"),
                    report: None,
                }),
            );
        }
        self.jobs.wake.notify_one();
        Ok(action)
    }

    /// The runner: until `shutdown`, claims and runs jobs (see the module doc).
    pub async fn run_jobs(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let owner = format!("server-{}", std::process::id());
        let mut ready = self.jobs.ready.subscribe();
        tokio::select! {
            _ = ready.wait_for(|r| *r) => {}
            _ = shutdown.changed() => return,
        }
        loop {
            loop {
                match self.store.claim(&owner, now_ms(), LEASE) {
                    Ok(Some(job)) => {
                        tokio::spawn(self.clone().run_job(owner.clone(), job));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "could not claim a job");
                        break;
                    }
                }
            }
            tokio::select! {
                () = self.jobs.wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn run_job(self: Arc<Self>, owner: String, job: JobRow) {
        let id = job.id;
        let args: JobArgs = match serde_json::from_str(&job.args) {
            Ok(a) => a,
            Err(e) => {
                let end = JobEnd::failed(format!("the job's arguments do not parse: {e}"));
                self.end_job(&owner, id, &end);
                return;
            }
        };
        if job.attempts > 1
            && let Some(end) = self.already_done(&job)
        {
            self.end_job(&owner, id, &end);
            return;
        }
        if job.attempts > 1 {
            // Recovery has already converged the app (the release that
            // served before, or the new one past its switch); running the
            // job again could crash the server again, or deploy twice.
            let end = JobEnd::failed(match args {
                JobArgs::Cron { .. } => "interrupted by a server restart while it ran; not run again (a cron run runs at most once per scheduled time)".to_owned(),
                _ => format!(
                    "interrupted by a server restart before it switched; the restart brought back the release that served before (`wharf status`); send the {} again",
                    job.kind
                ),
            });
            self.end_job(&owner, id, &end);
            return;
        }
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.jobs
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, cancel_tx.clone());
        let heartbeat = tokio::spawn({
            let (engine, owner) = (self.clone(), owner.clone());
            async move {
                loop {
                    tokio::time::sleep(wharf_jobs::policy::heartbeat_every(LEASE)).await;
                    match engine.store.heartbeat(id, &owner, now_ms(), LEASE) {
                        Ok(LeaseStatus::Held { cancel_requested }) => {
                            if cancel_requested {
                                let _ = cancel_tx.send(true);
                            }
                        }
                        Ok(LeaseStatus::Lost) => {
                            tracing::warn!(
                                job = id,
                                "lost the lease of a running job; stopping it"
                            );
                            let _ = cancel_tx.send(true);
                            return;
                        }
                        Err(e) => tracing::warn!(job = id, error = %e, "heartbeat failed"),
                    }
                }
            }
        });
        let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
        let fan_out = tokio::spawn({
            let (engine, owner) = (self.clone(), owner.clone());
            async move {
                let mut step: Option<i64> = None;
                while let Some(p) = prx.recv().await {
                    engine.record_progress(&owner, id, &p, &mut step);
                    if matches!(p, Progress::Finished { .. }) {
                        engine.jobs.end(id, Some(p));
                    } else {
                        engine.jobs.send(id, &p);
                    }
                }
            }
        });
        let cancelled = |result: Result<crate::DeployReport, DeployError>| match result {
            Ok(_) => JobEnd::succeeded(),
            Err(DeployError::Cancelled { .. }) => JobEnd::cancelled(Some(
                "cancelled on request; the release that served before keeps serving".into(),
            )),
            Err(e) => JobEnd::failed(e.to_string()),
        };
        let end = match args {
            JobArgs::Deploy {
                source_dir,
                env,
                pause,
                version,
                image,
                source,
            } => {
                let req = DeployRequest {
                    source_dir,
                    env,
                    wait: true,
                    pause,
                    version,
                    image,
                    source,
                };
                cancelled(self.deploy_job(req, ptx, cancel_rx).await)
            }
            JobArgs::Rollback { release } => {
                cancelled(self.rollback_job(&job.app, release, ptx, cancel_rx).await)
            }
            JobArgs::Cron {
                entry,
                command,
                process,
                timeout_ms,
            } => {
                let timeout = Duration::from_millis(timeout_ms.max(1));
                let ran = self
                    .cron_task(&job.app, (&entry, &command, &process), timeout, &ptx)
                    .await;
                let what = format!("cron {entry} of {}", job.app);
                let (ok, message, end) = match ran {
                    Ok(0) => (
                        true,
                        format!("{what} exited 0"),
                        JobEnd::succeeded().with_exit_code(0),
                    ),
                    Ok(code) => (
                        false,
                        format!("{what} exited {code}"),
                        JobEnd::failed(format!("exited with {code}"))
                            .with_exit_code(i32::try_from(code).unwrap_or(i32::MAX)),
                    ),
                    Err(e) => (
                        false,
                        format!("{what} could not run: {e}"),
                        JobEnd::failed(e.to_string()),
                    ),
                };
                let _ = ptx.send(Progress::Finished {
                    ok,
                    message,
                    report: None,
                });
                // The last line: the fan-out ends once this sender goes.
                drop(ptx);
                end
            }
        };
        heartbeat.abort();
        self.jobs.forget_cancel(id);
        let _ = fan_out.await;
        self.end_job(&owner, id, &end);
    }

    fn end_job(&self, owner: &str, id: JobId, end: &JobEnd) {
        if let Err(e) = self.store.finish(id, owner, end, now_ms()) {
            tracing::warn!(job = id, error = %e, "could not record the end of a job");
        }
        self.jobs.end(id, None);
        tracing::info!(job = id, outcome = ?end.outcome, "job ended");
        self.jobs.wake.notify_one();
    }

    /// A resumed job whose deploy already passed its commit point (its
    /// release serves): done, not to be run twice.
    fn already_done(&self, job: &JobRow) -> Option<JobEnd> {
        let steps = self.store.steps(job.id).ok()?;
        let deploy: i64 = steps
            .iter()
            .rev()
            .find_map(|s| s.name.strip_prefix("deploy ")?.parse().ok())?;
        let row = self.store.deploy(deploy).ok()??;
        let app = self.store.app(&job.app).ok()?;
        (row.to_release.is_some() && row.to_release == app.current_release).then(|| {
            let mut end = JobEnd::succeeded();
            end.error = Some(format!(
                "deploy {deploy} had switched to release {} before the server stopped; not run again",
                row.to_release.unwrap_or_default()
            ));
            end
        })
    }

    /// Keeps what a job's progress says in the store: its deploy as a
    /// step, and every line as a log line.
    fn record_progress(&self, owner: &str, id: JobId, p: &Progress, step: &mut Option<i64>) {
        let now = now_ms();
        let (stream, line) = match p {
            Progress::Started {
                deploy,
                release,
                kind,
                ..
            } => {
                if let Ok(seq) =
                    self.store
                        .record_step_start(id, owner, &format!("deploy {deploy}"), now)
                {
                    *step = Some(seq);
                }
                (
                    LogStream::System,
                    format!("{kind} {deploy} of release {release} started"),
                )
            }
            Progress::Step { step, detail } => (
                LogStream::System,
                match detail {
                    Some(d) => format!("{}: {d}", step.label()),
                    None => step.label().to_owned(),
                },
            ),
            Progress::Output { line } => (LogStream::Stdout, line.clone()),
            Progress::Queued { .. } => return,
            Progress::Finished { ok, message, .. } => {
                if let Some(seq) = step.take() {
                    let state = if *ok {
                        StepState::Succeeded
                    } else {
                        StepState::Failed
                    };
                    let _ = self.store.record_step_finish(
                        id,
                        owner,
                        seq,
                        &StepEnd {
                            state,
                            detail: Some(message),
                            data: None,
                        },
                        now,
                    );
                }
                (LogStream::System, message.clone())
            }
        };
        let _ = self.store.append_log(id, stream, &[line.as_str()], now);
    }
}
