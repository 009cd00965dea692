//! Cron: [`Engine::run_cron`] turns the `[cron.NAME]` entries of each
//! app's serving release into jobs of the queue, once per scheduled time,
//! and the runner runs each as a one-off task of the serving release (a
//! child process, or a one-off container under docker) with the env of
//! the entry's `process`, its output kept as the job's log and its exit
//! code as the job's.
//!
//! When a run is due is `wharf_jobs::cron::decide`'s (pure): a run still
//! queued or running makes the next one skip (recorded), and after
//! downtime only the latest missed run runs (or none, `catch_up = false`).
//! The store's unique (entry, scheduled time) key makes the enqueue
//! idempotent, so a scheduler restarted mid-tick never runs one twice; a
//! run that was running when the server died is not run again
//! (the runner ends it as failed, "interrupted").

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use wharf_jobs::cron::{CronOptions, Decision};
use wharf_jobs::{JobId, QueueLimits};
use wharf_store::{Enqueued, NewJob, now_ms};

use crate::jobs::JobArgs;
use crate::{DeployError, Engine};

/// The serving releases the scheduler has read: (app, release) → (when
/// the release was made, its config).
type Releases = std::collections::HashMap<(String, i64), (i64, wharf_config::AppConfig)>;

impl Engine {
    /// The scheduler: until `shutdown`, looks at every cron entry a little
    /// after each second.
    pub async fn run_cron(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        // A release's config does not change: read and parse it once.
        let mut releases = Releases::new();
        loop {
            self.cron_tick(now_ms(), &mut releases);
            let into_second = (now_ms().rem_euclid(1000)) as u64;
            let wait = Duration::from_millis(1000 - into_second + 20);
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One look at every entry: enqueue what is due, record what skips.
    fn cron_tick(&self, now: i64, releases: &mut Releases) {
        let apps = match self.store.apps() {
            Ok(apps) => apps,
            Err(e) => {
                tracing::warn!(error = %e, "cron: could not list the apps");
                return;
            }
        };
        for app in apps {
            let Some(number) = app.current_release else {
                continue;
            };
            let key = (app.name.clone(), number);
            if !releases.contains_key(&key) {
                let (Ok(release), Ok(config)) = (
                    self.store.release(&app, number),
                    self.stored_config(&app, number),
                ) else {
                    continue;
                };
                // Only the serving releases are kept.
                releases.retain(|(name, _), _| *name != app.name);
                releases.insert(key.clone(), (release.created_ms, config));
            }
            let Some((created_ms, config)) = releases.get(&key) else {
                continue;
            };
            for entry in config.cron.values() {
                let mut history = match self.store.cron_history(&app.name, &entry.name) {
                    Ok(h) => h,
                    Err(e) => {
                        tracing::warn!(app = %app.name, entry = %entry.name, error = %e, "cron: no history");
                        continue;
                    }
                };
                // Times before this release was made are not this entry's.
                history.since_ms = Some(*created_ms);
                let options = CronOptions {
                    catch_up: entry.catch_up,
                    ..CronOptions::default()
                };
                let args = JobArgs::Cron {
                    entry: entry.name.clone(),
                    command: entry.command.clone(),
                    process: entry.process.clone(),
                    timeout_ms: entry.timeout.as_millis() as u64,
                };
                let Ok(json) = serde_json::to_string(&args) else {
                    continue;
                };
                match wharf_jobs::cron::decide(&entry.schedule, now, &history, options) {
                    Decision::Idle => {}
                    Decision::Run {
                        scheduled_ms,
                        late_ms,
                    } => {
                        let new = NewJob::cron(&app.name, &entry.name, scheduled_ms, &json);
                        match self.store.enqueue(&new, QueueLimits::default(), now) {
                            Ok(Enqueued::Queued { job, .. }) => {
                                tracing::info!(app = %app.name, entry = %entry.name, job = job.id, scheduled_ms, late_ms, "cron run queued");
                                self.jobs.wake();
                            }
                            Ok(Enqueued::Duplicate { .. }) => {}
                            Ok(Enqueued::Full(full)) => {
                                let reason = wharf_jobs::SkipReason::QueueFull;
                                tracing::warn!(app = %app.name, entry = %entry.name, %full, "cron run skipped: the queue is full");
                                let _ = self.store.record_cron_skip(
                                    &app.name,
                                    &entry.name,
                                    scheduled_ms,
                                    &reason,
                                    &json,
                                    now,
                                );
                            }
                            Err(e) => {
                                tracing::warn!(app = %app.name, entry = %entry.name, error = %e, "cron: could not queue a run");
                            }
                        }
                    }
                    Decision::Skip {
                        scheduled_ms,
                        reason,
                    } => {
                        match self.store.record_cron_skip(
                            &app.name,
                            &entry.name,
                            scheduled_ms,
                            &reason,
                            &json,
                            now,
                        ) {
                            Ok(Some(id)) => {
                                tracing::info!(app = %app.name, entry = %entry.name, job = id, scheduled_ms, %reason, "cron run skipped");
                            }
                            Ok(None) => {}
                            Err(e) => {
                                tracing::warn!(app = %app.name, entry = %entry.name, error = %e, "cron: could not record a skip");
                            }
                        }
                    }
                }
            }
        }
    }

    /// `wharf cron run NAME`: a run of entry `name` now, through the queue.
    pub fn run_cron_now(&self, app: &str, name: &str) -> Result<JobId, DeployError> {
        let (config, _) = self.app_config(app)?;
        let entry = config
            .cron
            .get(name)
            .ok_or_else(|| DeployError::NoCronEntry {
                app: app.to_owned(),
                entry: name.to_owned(),
                known: config.cron.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let args = JobArgs::Cron {
            entry: entry.name.clone(),
            command: entry.command.clone(),
            process: entry.process.clone(),
            timeout_ms: entry.timeout.as_millis() as u64,
        };
        let json =
            serde_json::to_string(&args).map_err(|e| DeployError::Internal(e.to_string()))?;
        let now = now_ms();
        match self.store.enqueue(
            &NewJob::cron(app, name, now, &json),
            QueueLimits::default(),
            now,
        )? {
            Enqueued::Queued { job, .. } => {
                self.jobs.wake();
                Ok(job.id)
            }
            Enqueued::Duplicate { existing_id } => Ok(existing_id),
            Enqueued::Full(full) => Err(DeployError::QueueFull(full.to_string())),
        }
    }
}
