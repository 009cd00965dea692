//! One job in the runner's hands: its lease kept by a heartbeat, its
//! progress fanned out to its followers and recorded ([`super::record`]),
//! its work done by kind, its end recorded.
//!
//! A job claimed for a second time (its runner died) is resumed, not run
//! again from the start (see the module doc of [`super`]): a deploy,
//! rollback or accessory action first restores what its app served, then
//! ends; a restore runs again (it converges, whatever it finds); a one-off
//! or cron run ends as interrupted, since a command runs at most once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use wharf_jobs::{JobEnd, JobId};
use wharf_store::{JobRow, LeaseStatus, now_ms};

use super::record::{Recorder, first_deploy};
use super::{JobArgs, LEASE};
use crate::containers::OneOff;
use crate::{DeployError, DeployReport, DeployRequest, Engine, Progress, ProgressTx};

/// How long `wharf run` may take.
const RUN_TIMEOUT: Duration = Duration::from_secs(6 * 60 * 60);

impl Engine {
    pub(super) async fn run_job(self: Arc<Self>, owner: String, job: JobRow) {
        let id = job.id;
        let args: JobArgs = match serde_json::from_str(&job.args) {
            Ok(a) => a,
            Err(e) => {
                if job.attempts > 1 {
                    // A resumed job carries its app's restore, whatever it was.
                    let (tx, _rx) = mpsc::unbounded_channel();
                    let _ = self.restore_app(&job.app, &tx).await;
                }
                let end = JobEnd::failed(format!("the job's arguments do not parse: {e}"));
                self.end_job(&owner, id, &end);
                return;
            }
        };
        let (cancel_tx, cancel_rx) = watch::channel(false);
        self.jobs
            .cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, cancel_tx.clone());
        let heartbeat = tokio::spawn(self.clone().heartbeat(owner.clone(), id, cancel_tx));
        let (ptx, mut prx) = mpsc::unbounded_channel::<Progress>();
        let fan_out = tokio::spawn({
            let (engine, owner) = (self.clone(), owner.clone());
            async move {
                let mut recorder = Recorder::default();
                while let Some(p) = prx.recv().await {
                    engine.record_progress(&owner, id, &p, &mut recorder);
                    if matches!(p, Progress::Finished { .. }) {
                        engine.jobs.end(id, Some(p));
                    } else {
                        engine.jobs.send(id, &p);
                    }
                }
            }
        });
        // `ptx` moves into the work: once it is done, the fan-out ends.
        let end = if job.attempts > 1 {
            self.resume(&job, args, ptx, cancel_rx).await
        } else {
            self.work(&job, args, ptx, cancel_rx).await
        };
        heartbeat.abort();
        self.jobs.forget_cancel(id);
        let _ = fan_out.await;
        self.end_job(&owner, id, &end);
    }

    /// Renews job `id`'s lease until aborted; a cancel asked elsewhere, or
    /// a lost lease, stops the job through `cancel`.
    async fn heartbeat(self: Arc<Self>, owner: String, id: JobId, cancel: watch::Sender<bool>) {
        loop {
            tokio::time::sleep(wharf_jobs::policy::heartbeat_every(LEASE)).await;
            match self.store.heartbeat(id, &owner, now_ms(), LEASE) {
                Ok(LeaseStatus::Held { cancel_requested }) => {
                    if cancel_requested {
                        let _ = cancel.send(true);
                    }
                }
                Ok(LeaseStatus::Lost) => {
                    tracing::warn!(job = id, "lost the lease of a running job; stopping it");
                    let _ = cancel.send(true);
                    return;
                }
                Err(e) => tracing::warn!(job = id, error = %e, "heartbeat failed"),
            }
        }
    }

    /// A job's first attempt.
    async fn work(
        self: &Arc<Self>,
        job: &JobRow,
        args: JobArgs,
        ptx: ProgressTx,
        cancel: watch::Receiver<bool>,
    ) -> JobEnd {
        let app = job.app.as_str();
        match args {
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
                moved(self.deploy_job(req, ptx, cancel).await)
            }
            JobArgs::Rollback { release } => {
                moved(self.rollback_job(app, release, ptx, cancel).await)
            }
            JobArgs::Restore => match self.restore_app(app, &ptx).await {
                Some(Err(why)) => JobEnd::failed(why),
                Some(Ok(_)) => JobEnd::succeeded(),
                None => {
                    let _ = ptx.send(Progress::finished(
                        true,
                        format!("{app} had no release to restore"),
                    ));
                    JobEnd::succeeded()
                }
            },
            JobArgs::Accessory {
                name,
                action,
                source_dir,
            } => {
                self.accessory_job(app, &name, action, &source_dir, &ptx)
                    .await
            }
            JobArgs::Pipeline(args) => self.pipeline_job((job.id, app), args, ptx, cancel).await,
            JobArgs::Run {
                command,
                process,
                timeout_ms,
            } => {
                let what = format!("`{command}` in {app}");
                let task = OneOff {
                    name: "run",
                    command,
                    process: process.as_deref(),
                    extra_env: Vec::new(),
                    timeout: timeout(timeout_ms, RUN_TIMEOUT),
                };
                self.one_off_job(app, task, &what, &ptx).await
            }
            JobArgs::Cron {
                entry,
                command,
                process,
                timeout_ms,
            } => {
                let (name, what) = (format!("cron-{entry}"), format!("cron {entry} of {app}"));
                let task = OneOff {
                    name: &name,
                    command,
                    process: Some(&process),
                    extra_env: vec![("WHARF_CRON".into(), entry.clone())],
                    timeout: timeout(timeout_ms, Duration::from_secs(3600)),
                };
                self.one_off_job(app, task, &what, &ptx).await
            }
        }
    }

    /// A job taken over from a runner that died (see the module doc).
    async fn resume(
        self: &Arc<Self>,
        job: &JobRow,
        args: JobArgs,
        ptx: ProgressTx,
        cancel: watch::Receiver<bool>,
    ) -> JobEnd {
        let kind = job.kind;
        // The deploy its earlier attempt started, if it got that far.
        let started = self
            .store
            .steps(job.id)
            .ok()
            .and_then(|steps| first_deploy(&steps))
            .map(|d| d.deploy);
        match args {
            JobArgs::Cron { .. } => JobEnd::failed(
                "interrupted by a server restart while it ran; not run again (a cron run runs at most once per scheduled time)",
            ),
            JobArgs::Run { command, .. } => JobEnd::failed(format!(
                "interrupted by a server restart while it ran; not run again (a one-off command runs at most once): run `{command}` again if it should"
            )),
            JobArgs::Restore => self.work(job, args, ptx, cancel).await,
            JobArgs::Pipeline(_) if started.is_none() => {
                // Interrupted while it fetched or ran CI: nothing of it
                // changed the app. The restore first, then it runs again.
                let _ = self.restore_app(&job.app, &ptx).await;
                self.work(job, args, ptx, cancel).await
            }
            JobArgs::Deploy { .. }
            | JobArgs::Rollback { .. }
            | JobArgs::Accessory { .. }
            | JobArgs::Pipeline(_) => {
                // Whether it had passed its commit point (the steps were
                // read before the restore records its own).
                let switched = started.and_then(|deploy| self.switched_to(job, deploy));
                let restored = self.restore_app(&job.app, &ptx).await;
                let now = match &restored {
                    Some(Ok(n)) => format!("release {n} was restored and serves"),
                    Some(Err(why)) => format!("the restore failed: {why}"),
                    None => "no release served before".to_owned(),
                };
                let (ok, end) = match switched {
                    Some(release) => (
                        true,
                        JobEnd::succeeded().with_detail(format!(
                            "it had switched to release {release} before the server stopped; not run again; {now}"
                        )),
                    ),
                    None => (
                        false,
                        JobEnd::failed(format!(
                            "interrupted by a server restart before it switched; {now}; send the {kind} again"
                        )),
                    ),
                };
                let message = end.error.clone().unwrap_or_default();
                let _ = ptx.send(Progress::finished(ok, message));
                end
            }
        }
    }

    /// The release `deploy` of a resumed job had switched to, if it had
    /// passed its commit point (it is the one the store says serves).
    fn switched_to(&self, job: &JobRow, deploy: i64) -> Option<i64> {
        let row = self.store.deploy(deploy).ok()??;
        let app = self.store.app(&job.app).ok()?;
        (row.to_release.is_some() && row.to_release == app.current_release)
            .then_some(row.to_release)
            .flatten()
    }

    /// Runs a one-off task of `app`'s serving release, its output as the
    /// job's; ends with its exit code.
    async fn one_off_job(
        &self,
        app: &str,
        task: OneOff<'_>,
        what: &str,
        ptx: &ProgressTx,
    ) -> JobEnd {
        let (lines_tx, mut lines_rx) = mpsc::channel::<wharf_runtime::LogLine>(256);
        let relay = tokio::spawn({
            let ptx = ptx.clone();
            async move {
                while let Some(l) = lines_rx.recv().await {
                    let stderr = l.stream == wharf_runtime::LogStream::Stderr;
                    let _ = ptx.send(Progress::Output {
                        line: l.line,
                        stderr,
                    });
                }
            }
        });
        let ran = self.run_one_off(app, task, lines_tx).await;
        let _ = relay.await;
        let (ok, message, exit_code, end) = match ran {
            Ok(0) => (
                true,
                format!("{what} exited 0"),
                Some(0),
                JobEnd::succeeded().with_exit_code(0),
            ),
            Ok(code) => (
                false,
                format!("{what} exited {code}"),
                Some(code),
                JobEnd::failed(format!("exited with {code}"))
                    .with_exit_code(i32::try_from(code).unwrap_or(i32::MAX)),
            ),
            Err(e) => (
                false,
                format!("{what} could not run: {e}"),
                None,
                JobEnd::failed(e.to_string()),
            ),
        };
        let _ = ptx.send(Progress::Finished {
            ok,
            message,
            report: None,
            exit_code,
        });
        end
    }

    /// An accessory action, with the config of `source_dir`.
    async fn accessory_job(
        &self,
        app: &str,
        name: &str,
        action: crate::AccessoryAction,
        source_dir: &std::path::Path,
        ptx: &ProgressTx,
    ) -> JobEnd {
        let result = async {
            let config = crate::deploy::request_config(source_dir, &Default::default())?
                .with_volume_paths(source_dir);
            if config.name != app {
                return Err(DeployError::Internal(format!(
                    "{} describes app {:?}, not {app:?}",
                    source_dir.join(wharf_config::FILE_NAME).display(),
                    config.name
                )));
            }
            self.accessory(&config, source_dir, name, action).await
        }
        .await;
        let (ok, message, end) = match result {
            Ok(status) => (
                true,
                format!("accessory {name} of {app}: {}", status.state),
                JobEnd::succeeded(),
            ),
            Err(e) => (false, e.to_string(), JobEnd::failed(e.to_string())),
        };
        let _ = ptx.send(Progress::finished(ok, message));
        end
    }

    pub(super) fn end_job(&self, owner: &str, id: JobId, end: &JobEnd) {
        if let Err(e) = self.store.finish(id, owner, end, now_ms()) {
            tracing::warn!(job = id, error = %e, "could not record the end of a job");
        }
        self.jobs.end(id, None);
        tracing::info!(job = id, outcome = ?end.outcome, "job ended");
        self.jobs.wake();
    }
}

/// A deploy's or rollback's outcome as the job's.
fn moved(result: Result<DeployReport, DeployError>) -> JobEnd {
    match result {
        Ok(_) => JobEnd::succeeded(),
        Err(DeployError::Cancelled { .. }) => JobEnd::cancelled(Some(
            "cancelled on request; the release that served before keeps serving".into(),
        )),
        Err(e) => JobEnd::failed(e.to_string()),
    }
}

fn timeout(ms: u64, default: Duration) -> Duration {
    if ms == 0 {
        default
    } else {
        Duration::from_millis(ms)
    }
}
