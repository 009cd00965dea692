//! The durable job queue (`wharf-store`'s `jobs`, rules in `wharf-jobs`):
//! the one way work that changes an app happens. Deploys, rollbacks,
//! restores, accessory actions, one-off runs (`wharf run`) and cron runs
//! are jobs.
//!
//! [`Engine::submit`] enqueues: per app one job that changes it runs and
//! at most one deploy or rollback waits; a newer one supersedes the
//! waiting one, whose followers are told so at once. A full queue is
//! [`DeployError::QueueFull`] (the API answers 429). The caller gets the
//! job's progress stream: a `queued` line when it waits behind another
//! job, then the job's own progress, ending with `finished`.
//!
//! [`Engine::run_jobs`] is the one runner of a server (see [`runner`]): it
//! claims the next job whose app has none running, runs it with a lease
//! renewed by a heartbeat, records its steps and progress lines in the
//! store, and finishes it. A cancel asked for a running job stops it at its
//! next step boundary before the switch (the release that served before
//! keeps serving; the commit point is never undone).
//!
//! Recovery is resuming jobs: at a server's start the jobs a dead runner
//! held go back to the queue ([`Engine::prepare_recovery`]) ahead of
//! every other, and each app to bring back gets a restore job unless a resumed
//! job of it carries the restore ([`Engine::recover`]). A resumed deploy
//! or rollback first restores what its app served (the store's serving
//! release, which is the new one if the job had switched), then ends: as
//! succeeded when its release was switched to before the crash, else as
//! failed, "interrupted", never run a second time (a deploy that crashed
//! the server is not retried into another crash). The jobs that waited
//! behind it run after.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, watch};
use wharf_jobs::{JobId, JobKind, QueueLimits};
use wharf_store::{Enqueued, NewJob, now_ms};

use crate::{AccessoryAction, DeployError, Engine, Progress, ProgressTx};

mod record;
mod runner;

/// How long a runner's claim on a job lasts without a heartbeat.
pub const LEASE: Duration = wharf_jobs::policy::DEFAULT_LEASE;

/// What a job does, as stored (no secret values: `env` holds the `--env`
/// overrides, which are plain config).
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
    /// A one-off command in the serving release (`wharf run`).
    Run {
        command: String,
        #[serde(default)]
        process: Option<String>,
        timeout_ms: u64,
    },
    /// Bringing back the serving release after a server start.
    Restore,
    /// A push to the app's watched branch: fetch `commit` from
    /// `clone_url`, run the app's CI steps, deploy it if they pass.
    Pipeline(crate::PipelineArgs),
    /// An accessory action (`wharf accessory boot|stop|remove`), with the
    /// config of `source_dir` (the serving release's, or the server-side
    /// directory a local caller named).
    Accessory {
        name: String,
        action: AccessoryAction,
        source_dir: PathBuf,
    },
}

impl JobArgs {
    /// `wharf run -- ARGV`, with the env of `process` if given.
    pub fn run(argv: &[String], process: Option<String>) -> JobArgs {
        JobArgs::Run {
            command: shell_words::join(argv),
            process,
            timeout_ms: 0,
        }
    }

    fn kind(&self) -> JobKind {
        match self {
            JobArgs::Deploy { .. } => JobKind::Deploy,
            JobArgs::Rollback { .. } => JobKind::Rollback,
            JobArgs::Cron { .. } => JobKind::Cron,
            JobArgs::Run { .. } => JobKind::Run,
            JobArgs::Restore => JobKind::Restore,
            JobArgs::Pipeline(_) => JobKind::Pipeline,
            JobArgs::Accessory { .. } => JobKind::Accessory,
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
    /// Queues a job of `app` (see the module doc).
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
                    let _ = f.send(Progress::finished(false, message.clone()));
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
                Some(Progress::finished(
                    false,
                    format!("job {id} was cancelled before it started"),
                )),
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
}
