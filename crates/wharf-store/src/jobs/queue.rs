//! The queue's moves: enqueue (with the per-app policy), claim under a
//! lease, heartbeat, rescue after a runner went away, finish, cancel.

use std::time::Duration;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use wharf_jobs::policy::{self, QueueSnapshot, Waiting};
use wharf_jobs::{
    CancelAction, EnqueueDecision, JobEnd, JobId, JobKind, JobState, QueueLimits, StepState,
};

use super::{Enqueued, JobRow, NewJob, existing_job, job_in, system_line};
use crate::{Store, StoreError};

/// What a heartbeat found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseStatus {
    /// The runner still holds the job; its lease is renewed.
    Held {
        /// A cancel was asked for: abort cleanly and finish as cancelled.
        cancel_requested: bool,
    },
    /// The job is no longer the runner's (rescued, or ended): stop at once
    /// without acting outside the process.
    Lost,
}

impl Store {
    /// Queues a job, applying the per-app policy in the same transaction
    /// (see [`wharf_jobs::policy::decide_enqueue`]): a duplicate dedup key
    /// or cron slot, or a full queue, changes nothing; a newer deploy or
    /// rollback supersedes the one waiting.
    pub fn enqueue(
        &self,
        new: &NewJob<'_>,
        limits: QueueLimits,
        now_ms: i64,
    ) -> Result<Enqueued, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let enqueued = enqueue_in(&tx, new, limits, now_ms)?;
        // A duplicate or a full queue changed nothing: nothing to commit.
        if let Enqueued::Queued { .. } = enqueued {
            tx.commit()?;
        }
        Ok(enqueued)
    }

    /// Takes the next job for runner `owner` under a lease of `lease`:
    /// first rescues jobs whose lease expired, then picks the oldest queued
    /// job (resumed ones first, then restores, which bring back what an
    /// app served before anything else changes it) of an app that has no
    /// running job, and
    /// marks it running with a new attempt.
    pub fn claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<Option<JobRow>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        rescue(&tx, now_ms, true)?;
        let next: Option<JobId> = tx
            .query_row(
                "SELECT id FROM jobs j
                 WHERE state = 'queued'
                   AND (j.kind IN ('run', 'cron') OR NOT EXISTS (
                       SELECT 1 FROM jobs r WHERE r.app = j.app AND r.state = 'running'
                           AND r.kind NOT IN ('run', 'cron')))
                 ORDER BY attempts > 0 DESC, kind = 'restore' DESC, id
                 LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = next else {
            return Ok(None);
        };
        tx.execute(
            "UPDATE jobs SET state = 'running', lease_owner = ?2, lease_expires_ms = ?3,
                 heartbeat_ms = ?4, attempts = attempts + 1, started_ms = COALESCE(started_ms, ?4)
             WHERE id = ?1",
            params![id, owner, policy::lease_expiry(now_ms, lease), now_ms],
        )?;
        let job = existing_job(&tx, id)?;
        let line = if job.attempts > 1 {
            format!("resumed by runner {owner} (attempt {})", job.attempts)
        } else {
            format!("started by runner {owner}")
        };
        system_line(&tx, id, now_ms, &line)?;
        tx.commit()?;
        Ok(Some(job))
    }

    /// Renews `owner`'s lease on job `id`, and says whether a cancel was
    /// asked for. [`LeaseStatus::Lost`] when the job is no longer running
    /// under `owner`.
    pub fn heartbeat(
        &self,
        id: JobId,
        owner: &str,
        now_ms: i64,
        lease: Duration,
    ) -> Result<LeaseStatus, StoreError> {
        let conn = self.conn();
        let cancel_requested: Option<bool> = conn
            .query_row(
                "UPDATE jobs SET lease_expires_ms = ?3, heartbeat_ms = ?4
                 WHERE id = ?1 AND state = 'running' AND lease_owner = ?2
                 RETURNING cancel_requested",
                params![id, owner, policy::lease_expiry(now_ms, lease), now_ms],
                |r| r.get(0),
            )
            .optional()?;
        Ok(match cancel_requested {
            Some(cancel_requested) => LeaseStatus::Held { cancel_requested },
            None => LeaseStatus::Lost,
        })
    }

    /// Puts running jobs whose lease expired by `now_ms` back in the queue,
    /// to be resumed by the next claim (a new attempt); their open steps
    /// are marked interrupted. Returns their ids, oldest first.
    pub fn rescue_expired(&self, now_ms: i64) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids = rescue(&tx, now_ms, true)?;
        tx.commit()?;
        Ok(ids)
    }

    /// Like [`Store::rescue_expired`] for every running job, live lease or
    /// not: for a server's start, when it is the store's only runner and so
    /// every running job's runner is gone (waiting out the leases would
    /// only delay the resume).
    pub fn rescue_all(&self, now_ms: i64) -> Result<Vec<JobId>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids = rescue(&tx, now_ms, false)?;
        tx.commit()?;
        Ok(ids)
    }

    /// Ends job `id`, which `owner` holds, with `end`; steps left open are
    /// marked interrupted. [`StoreError::LeaseLost`] (nothing recorded)
    /// when `owner` no longer holds it.
    pub fn finish(
        &self,
        id: JobId,
        owner: &str,
        end: &JobEnd,
        now_ms: i64,
    ) -> Result<JobRow, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        held(&tx, id, owner)?;
        let state = end.outcome.state();
        tx.execute(
            "UPDATE jobs SET state = ?2, exit_code = ?3, error = ?4, finished_ms = ?5,
                 lease_expires_ms = NULL
             WHERE id = ?1",
            params![id, state.as_str(), end.exit_code, end.error, now_ms],
        )?;
        interrupt_open_steps(&tx, id, now_ms)?;
        let line = match &end.error {
            Some(error) => format!("{state}: {error}"),
            None => state.to_string(),
        };
        system_line(&tx, id, now_ms, &line)?;
        let job = existing_job(&tx, id)?;
        tx.commit()?;
        Ok(job)
    }

    /// Asks to cancel job `id` (see [`wharf_jobs::policy::decide_cancel`]):
    /// a job that never started is cancelled now; a started one gets its
    /// flag set for its runner; an ended one is left as it is.
    pub fn request_cancel(&self, id: JobId, now_ms: i64) -> Result<CancelAction, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let job = existing_job(&tx, id)?;
        let action = policy::decide_cancel(job.state, job.attempts > 0);
        match action {
            CancelAction::CancelNow => {
                tx.execute(
                    "UPDATE jobs SET state = 'cancelled', cancel_requested = 1, finished_ms = ?2,
                         error = 'cancelled before it started'
                     WHERE id = ?1",
                    params![id, now_ms],
                )?;
                system_line(&tx, id, now_ms, "cancelled before it started")?;
            }
            CancelAction::RequestStop => {
                tx.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?1", [id])?;
                system_line(
                    &tx,
                    id,
                    now_ms,
                    "cancel requested; stopping at the next step",
                )?;
            }
            CancelAction::AlreadyEnded(_) => {}
        }
        tx.commit()?;
        Ok(action)
    }

    /// Whether a cancel was asked for job `id`.
    pub fn cancel_requested(&self, id: JobId) -> Result<bool, StoreError> {
        self.conn()
            .query_row(
                "SELECT cancel_requested FROM jobs WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(StoreError::NoSuchJob(id))
    }
}

/// [`Store::enqueue`] inside a transaction the caller commits (a webhook
/// delivery is recorded in the same one as its job): decides and writes,
/// never commits. On [`Enqueued::Duplicate`] and [`Enqueued::Full`] it has
/// written nothing.
pub(crate) fn enqueue_in(
    tx: &Transaction<'_>,
    new: &NewJob<'_>,
    limits: QueueLimits,
    now_ms: i64,
) -> Result<Enqueued, StoreError> {
    let cron_key = new
        .cron
        .map(|(entry, at)| wharf_jobs::cron::dedup_key(new.app, entry, at));
    let dedup_key = new.dedup_key.or(cron_key.as_deref());
    if let Some(existing_id) = duplicate_of(tx, new, dedup_key)? {
        return Ok(Enqueued::Duplicate { existing_id });
    }
    let waiting = waiting_jobs(tx, new.app)?;
    let total_waiting: u32 = tx.query_row(
        "SELECT COUNT(*) FROM jobs WHERE state = 'queued'",
        [],
        |r| r.get(0),
    )?;
    let snapshot = QueueSnapshot {
        waiting: &waiting,
        total_waiting,
    };
    let supersede = match policy::decide_enqueue(new.app, new.kind, snapshot, limits) {
        EnqueueDecision::Full(full) => return Ok(Enqueued::Full(full)),
        EnqueueDecision::Accept { supersede } => supersede,
    };
    let (entry, scheduled_ms) = new.cron.unzip();
    tx.execute(
        "INSERT INTO jobs (app, kind, args, state, dedup_key, cron_entry, scheduled_ms, created_ms)
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7)",
        params![
            new.app,
            new.kind.as_str(),
            new.args_json,
            dedup_key,
            entry,
            scheduled_ms,
            now_ms
        ],
    )?;
    let id = tx.last_insert_rowid();
    for old in &supersede {
        tx.execute(
            "UPDATE jobs SET state = 'superseded', superseded_by = ?2, finished_ms = ?3
                 WHERE id = ?1 AND state = 'queued'",
            params![old, id, now_ms],
        )?;
        system_line(
            tx,
            *old,
            now_ms,
            &format!(
                "superseded by job {id}, a newer {} of {}",
                new.kind, new.app
            ),
        )?;
    }
    let behind: Option<JobId> = tx
        .query_row(
            "SELECT id FROM jobs WHERE app = ?1 AND state = 'running'
                     AND kind NOT IN ('run', 'cron') AND ?2",
            params![new.app, new.kind.exclusive()],
            |r| r.get(0),
        )
        .optional()?;
    let job = existing_job(tx, id)?;
    Ok(Enqueued::Queued {
        job: Box::new(job),
        superseded: supersede,
        behind,
    })
}

/// The job a dedup key or cron slot was already enqueued as.
fn duplicate_of(
    tx: &Transaction<'_>,
    new: &NewJob<'_>,
    dedup_key: Option<&str>,
) -> Result<Option<JobId>, StoreError> {
    if let Some(key) = dedup_key {
        let found = tx
            .query_row("SELECT id FROM jobs WHERE dedup_key = ?1", [key], |r| {
                r.get(0)
            })
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    if let Some((entry, at)) = new.cron {
        return Ok(tx
            .query_row(
                "SELECT id FROM jobs WHERE app = ?1 AND cron_entry = ?2 AND scheduled_ms = ?3",
                params![new.app, entry, at],
                |r| r.get(0),
            )
            .optional()?);
    }
    Ok(None)
}

/// The app's waiting jobs, oldest first, as the policy sees them.
fn waiting_jobs(tx: &Transaction<'_>, app: &str) -> Result<Vec<Waiting>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, kind, attempts FROM jobs WHERE app = ?1 AND state = 'queued' ORDER BY id",
    )?;
    let rows = stmt
        .query_map([app], |r| {
            let kind: String = r.get(1)?;
            let attempts: i64 = r.get(2)?;
            Ok((r.get::<_, JobId>(0)?, kind, attempts))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, kind, attempts)| {
            let kind: JobKind = kind
                .parse()
                .map_err(|e| StoreError::Corrupt(format!("job {id}: {e}")))?;
            Ok(Waiting {
                id,
                kind,
                resuming: attempts > 0,
            })
        })
        .collect()
}

/// Checks that `owner` holds running job `id`.
pub(super) fn held(tx: &Transaction<'_>, id: JobId, owner: &str) -> Result<JobRow, StoreError> {
    let job = job_in(tx, id)?.ok_or(StoreError::NoSuchJob(id))?;
    if job.state != JobState::Running || job.lease_owner.as_deref() != Some(owner) {
        return Err(StoreError::LeaseLost {
            job: id,
            owner: owner.to_string(),
        });
    }
    Ok(job)
}

/// Requeues running jobs (only those whose lease expired by `now_ms` when
/// `only_expired`), oldest first.
fn rescue(tx: &Transaction<'_>, now_ms: i64, only_expired: bool) -> Result<Vec<JobId>, StoreError> {
    let orphans: Vec<(JobId, Option<String>)> = {
        let mut stmt = tx.prepare_cached(
            "SELECT id, lease_owner FROM jobs
             WHERE state = 'running'
               AND (?2 = 0 OR lease_expires_ms IS NULL OR lease_expires_ms <= ?1)
             ORDER BY id",
        )?;
        stmt.query_map(params![now_ms, only_expired], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?
    };
    debug_assert!(JobState::Running.can_become(JobState::Queued));
    for (id, owner) in &orphans {
        tx.execute(
            "UPDATE jobs SET state = 'queued', lease_expires_ms = NULL WHERE id = ?1",
            [id],
        )?;
        interrupt_open_steps(tx, *id, now_ms)?;
        let owner = owner.as_deref().unwrap_or("(none)");
        system_line(
            tx,
            *id,
            now_ms,
            &format!("runner {owner} went away (its lease expired); queued to resume"),
        )?;
    }
    Ok(orphans.into_iter().map(|(id, _)| id).collect())
}

/// Marks job `id`'s steps still running as interrupted.
fn interrupt_open_steps(tx: &Transaction<'_>, id: JobId, now_ms: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE job_steps SET state = ?3, finished_ms = ?2 WHERE job_id = ?1 AND state = 'running'",
        params![id, now_ms, StepState::Interrupted.as_str()],
    )?;
    Ok(())
}
