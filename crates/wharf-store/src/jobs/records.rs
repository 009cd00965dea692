//! What a job leaves behind: its steps, its log lines, cron bookkeeping,
//! and the listings and retention of jobs.

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use wharf_jobs::{CronHistory, JobId, LogStream, SkipReason, StepState};

use super::queue::held;
use super::{
    JOB_COLS, JobLogRow, JobRow, JobStepRow, StepEnd, append_log_in, job_row, log_row, step_row,
};
use crate::{Store, StoreError};

impl Store {
    /// Records that `owner`, holding job `id`, starts step `name`, and
    /// returns its `seq`; `data` is JSON a resumed attempt reads (no
    /// secrets). Commits before it returns, so the runner acts
    /// only after the step is on record; [`StoreError::LeaseLost`] when
    /// the job is no longer `owner`'s, and then the runner must not act.
    pub fn record_step_start(
        &self,
        id: JobId,
        owner: &str,
        name: &str,
        data: Option<&str>,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let job = held(&tx, id, owner)?;
        let seq: i64 = tx.query_row(
            "SELECT COALESCE(MAX(seq), 0) + 1 FROM job_steps WHERE job_id = ?1",
            [id],
            |r| r.get(0),
        )?;
        tx.execute(
            "INSERT INTO job_steps (job_id, seq, attempt, name, state, started_ms, data)
             VALUES (?1, ?2, ?3, ?4, 'running', ?5, ?6)",
            params![id, seq, job.attempts, name, now_ms, data],
        )?;
        tx.commit()?;
        Ok(seq)
    }

    /// Records how step `seq` of job `id` ended (fenced like
    /// [`Store::record_step_start`]).
    pub fn record_step_finish(
        &self,
        id: JobId,
        owner: &str,
        seq: i64,
        end: &StepEnd<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        held(&tx, id, owner)?;
        let state = if end.state == StepState::Running {
            StepState::Interrupted
        } else {
            end.state
        };
        let changed = tx.execute(
            "UPDATE job_steps SET state = ?3, finished_ms = ?4, detail = COALESCE(?5, detail),
                 data = COALESCE(?6, data)
             WHERE job_id = ?1 AND seq = ?2 AND state = 'running'",
            params![id, seq, state.as_str(), now_ms, end.detail, end.data],
        )?;
        if changed == 0 {
            return Err(StoreError::Corrupt(format!(
                "job {id} has no running step {seq}"
            )));
        }
        tx.commit()?;
        Ok(())
    }

    /// Job `id`'s steps in order, over all its attempts: a resumed runner
    /// skips those that succeeded.
    pub fn steps(&self, id: JobId) -> Result<Vec<JobStepRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT job_id, seq, attempt, name, state, started_ms, finished_ms, detail, data
             FROM job_steps WHERE job_id = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([id], step_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Appends log lines to job `id` (callers mask secrets first) and
    /// returns the last line's `seq`. Beyond [`super::MAX_LOG_LINES`] the
    /// oldest lines are dropped.
    pub fn append_log(
        &self,
        id: JobId,
        stream: LogStream,
        lines: &[&str],
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        self.append_step_log(id, None, stream, lines, now_ms)
    }

    /// [`Store::append_log`], the lines belonging to job step `step`.
    pub fn append_step_log(
        &self,
        id: JobId,
        step: Option<i64>,
        stream: LogStream,
        lines: &[&str],
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let seq = append_log_in(&tx, id, now_ms, (stream, step), lines)?;
        tx.commit()?;
        Ok(seq)
    }

    /// Up to `limit` log lines of job `id` after `after_seq` (0: from the
    /// first kept line), in order. Following a job: pass the last `seq`
    /// seen.
    pub fn logs(
        &self,
        id: JobId,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<JobLogRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT job_id, seq, ts_ms, stream, line, step FROM job_logs
             WHERE job_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
        )?;
        let rows = stmt
            .query_map(params![id, after_seq, limit], log_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// The kept log lines of step `step` of job `id`, in order.
    pub fn step_logs(&self, id: JobId, step: i64) -> Result<Vec<JobLogRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT job_id, seq, ts_ms, stream, line, step FROM job_logs
             WHERE job_id = ?1 AND step = ?2 ORDER BY seq",
        )?;
        let rows = stmt
            .query_map(params![id, step], log_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    pub fn job(&self, id: JobId) -> Result<Option<JobRow>, StoreError> {
        Ok(self
            .conn()
            .query_row(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
                [id],
                job_row,
            )
            .optional()?)
    }

    /// The newest `limit` jobs, of one app or all, newest first.
    pub fn jobs(&self, app: Option<&str>, limit: u32) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLS} FROM jobs WHERE ?1 IS NULL OR app = ?1 ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt
            .query_map(params![app, limit], job_row)?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// Running and waiting jobs, of one app or all, in the order they run:
    /// running first, then resumed ones, then the oldest.
    pub fn active_jobs(&self, app: Option<&str>) -> Result<Vec<JobRow>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {JOB_COLS} FROM jobs
             WHERE state IN ('queued', 'running') AND (?1 IS NULL OR app = ?1)
             ORDER BY state = 'running' DESC, attempts > 0 DESC, id"
        ))?;
        let rows = stmt.query_map([app], job_row)?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    /// What the cron decision needs of entry `entry` of `app`: the latest
    /// scheduled time recorded (run or skipped) and a run still queued or
    /// running. `since_ms` is left for the caller, who knows since when
    /// the entry has this schedule.
    pub fn cron_history(&self, app: &str, entry: &str) -> Result<CronHistory, StoreError> {
        let conn = self.conn();
        let last_scheduled_ms: Option<i64> = conn.query_row(
            "SELECT MAX(scheduled_ms) FROM jobs WHERE app = ?1 AND cron_entry = ?2",
            params![app, entry],
            |r| r.get(0),
        )?;
        let active: Option<JobId> = conn
            .query_row(
                "SELECT id FROM jobs
                 WHERE app = ?1 AND cron_entry = ?2 AND state IN ('queued', 'running')
                 ORDER BY id LIMIT 1",
                params![app, entry],
                |r| r.get(0),
            )
            .optional()?;
        Ok(CronHistory {
            last_scheduled_ms,
            active,
            since_ms: None,
        })
    }

    /// Records the run of cron entry `entry` scheduled at `scheduled_ms` as
    /// skipped (a `skipped` job with the reason as its error), so it shows
    /// in `wharf jobs` and is never decided again. `None` when that run
    /// was already recorded (nothing changes).
    pub fn record_cron_skip(
        &self,
        app: &str,
        entry: &str,
        scheduled_ms: i64,
        reason: &SkipReason,
        args_json: &str,
        now_ms: i64,
    ) -> Result<Option<JobId>, StoreError> {
        let key = wharf_jobs::cron::dedup_key(app, entry, scheduled_ms);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let exists: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM jobs WHERE dedup_key = ?1
                 OR (app = ?2 AND cron_entry = ?3 AND scheduled_ms = ?4))",
            params![key, app, entry, scheduled_ms],
            |r| r.get(0),
        )?;
        if exists {
            return Ok(None);
        }
        tx.execute(
            "INSERT INTO jobs (app, kind, args, state, dedup_key, cron_entry, scheduled_ms,
                 created_ms, finished_ms, error)
             VALUES (?1, 'cron', ?2, 'skipped', ?3, ?4, ?5, ?6, ?6, ?7)",
            params![
                app,
                args_json,
                key,
                entry,
                scheduled_ms,
                now_ms,
                reason.to_string()
            ],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Some(id))
    }

    /// Deletes jobs that ended before `finished_before_ms`, with their
    /// steps and log lines, except each cron entry's latest record (which
    /// keeps it from running a past time again). Returns how many went.
    pub fn prune_jobs(&self, finished_before_ms: i64) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let doomed: Vec<JobId> = {
            let mut stmt = tx.prepare(
                "SELECT id FROM jobs j
                 WHERE state NOT IN ('queued', 'running') AND finished_ms < ?1
                   AND NOT (cron_entry IS NOT NULL AND scheduled_ms = (
                       SELECT MAX(scheduled_ms) FROM jobs c
                       WHERE c.app = j.app AND c.cron_entry = j.cron_entry))",
            )?;
            stmt.query_map([finished_before_ms], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        delete_jobs(&tx, &doomed)?;
        tx.commit()?;
        Ok(doomed.len())
    }

    /// Forgets every job of `app` with its steps and log lines (when the
    /// app is removed; the caller stops what runs first). Returns how many
    /// went.
    pub fn forget_app_jobs(&self, app: &str) -> Result<usize, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let doomed: Vec<JobId> = {
            let mut stmt = tx.prepare("SELECT id FROM jobs WHERE app = ?1")?;
            stmt.query_map([app], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        delete_jobs(&tx, &doomed)?;
        tx.commit()?;
        Ok(doomed.len())
    }
}

fn delete_jobs(tx: &rusqlite::Transaction<'_>, ids: &[JobId]) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM job_logs WHERE job_id = ?1",
        "DELETE FROM job_steps WHERE job_id = ?1",
        "DELETE FROM jobs WHERE id = ?1",
    ] {
        let mut stmt = tx.prepare_cached(sql)?;
        for id in ids {
            stmt.execute([id])?;
        }
    }
    Ok(())
}
