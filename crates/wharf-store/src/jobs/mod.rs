//! The durable job queue: jobs, their recorded steps and their log lines
//! (migration 5).
//!
//! The rules live in `wharf-jobs` as pure functions; each method here is
//! one SQLite transaction that reads what a rule needs, calls it and writes
//! what it decided, so two callers (or two servers on one store) cannot
//! race past a rule. Writes take the database's write lock at once
//! (`BEGIN IMMEDIATE`), so a read-then-write never fails half way.
//!
//! - [`queue`](self::queue): enqueue with the per-app policy, claim, heartbeat,
//!   rescue, finish, cancel;
//! - [`records`](self::records): steps, log lines, cron bookkeeping,
//!   listings and retention.
//!
//! Every method takes `now_ms` from the caller, so tests drive time.
//!
//! Log lines live in the `job_logs` table rather than in files: they are
//! written in the same transactions as the job's state (a cancel or a
//! rescue leaves its line beside the state change), follow a job with one
//! query (`after_seq`), and go with the job when it is pruned. They are
//! capped per job ([`MAX_LOG_LINES`], oldest dropped first, lines cut at
//! [`MAX_LINE_BYTES`]); instance logs, which are unbounded streams, stay
//! in files (`wharf-runtime`).

mod queue;
mod records;

use rusqlite::types::Type;
use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};
use wharf_jobs::{JobId, JobKind, JobState, LogStream, ParseError, QueueFull, StepState};

use crate::StoreError;

pub use queue::LeaseStatus;
pub(crate) use queue::enqueue_in;

/// Log lines kept per job; older ones are dropped as new ones come.
pub const MAX_LOG_LINES: i64 = 10_000;
/// A longer log line is cut to this many bytes (and marked with `…`).
pub const MAX_LINE_BYTES: usize = 8 * 1024;

/// A job as the store records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRow {
    pub id: JobId,
    pub app: String,
    pub kind: JobKind,
    /// The job's input, JSON text (no secrets).
    pub args: String,
    pub state: JobState,
    pub dedup_key: Option<String>,
    /// Cron runs: the entry's name.
    pub cron_entry: Option<String>,
    /// Cron runs: the scheduled time this run is for.
    pub scheduled_ms: Option<i64>,
    pub created_ms: i64,
    /// When a runner first took it (kept across resumed attempts).
    pub started_ms: Option<i64>,
    pub finished_ms: Option<i64>,
    /// The runner holding it (or that last held it).
    pub lease_owner: Option<String>,
    pub lease_expires_ms: Option<i64>,
    pub heartbeat_ms: Option<i64>,
    /// How many times a runner took it; above 1 it was resumed after its
    /// runner went away.
    pub attempts: i64,
    pub exit_code: Option<i32>,
    /// Why it failed, was cancelled or skipped.
    pub error: Option<String>,
    /// The job that replaced it while it waited.
    pub superseded_by: Option<JobId>,
    /// A cancel was asked for; its runner aborts cleanly.
    pub cancel_requested: bool,
    /// The last log line's `seq` (0: none yet).
    pub log_seq: i64,
}

impl JobRow {
    /// How long it ran, once it ended after starting.
    pub fn duration_ms(&self) -> Option<i64> {
        Some(self.finished_ms? - self.started_ms?)
    }
}

/// What [`crate::Store::enqueue`] needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob<'a> {
    pub app: &'a str,
    pub kind: JobKind,
    /// JSON text; never a secret value.
    pub args_json: &'a str,
    pub dedup_key: Option<&'a str>,
    /// Cron runs: (entry, scheduled time).
    pub cron: Option<(&'a str, i64)>,
}

impl<'a> NewJob<'a> {
    pub fn new(app: &'a str, kind: JobKind, args_json: &'a str) -> NewJob<'a> {
        NewJob {
            app,
            kind,
            args_json,
            dedup_key: None,
            cron: None,
        }
    }

    /// Makes the enqueue idempotent on `key` (e.g. a webhook delivery id).
    pub fn with_dedup_key(mut self, key: &'a str) -> NewJob<'a> {
        self.dedup_key = Some(key);
        self
    }

    /// A run of cron entry `entry` for `scheduled_ms`. Its dedup key is
    /// [`wharf_jobs::cron::dedup_key`], filled in by the store.
    pub fn cron(app: &'a str, entry: &'a str, scheduled_ms: i64, args_json: &'a str) -> NewJob<'a> {
        NewJob {
            app,
            kind: JobKind::Cron,
            args_json,
            dedup_key: None,
            cron: Some((entry, scheduled_ms)),
        }
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum Enqueued {
    /// Queued. `superseded` are the waiting jobs it replaced (their
    /// clients see `superseded` with `superseded_by` = this job);
    /// `behind` is the app's running job it waits for, if any.
    Queued {
        job: Box<JobRow>,
        superseded: Vec<JobId>,
        behind: Option<JobId>,
    },
    /// The same dedup key (or cron slot) was enqueued before, as this job;
    /// nothing changed.
    Duplicate { existing_id: JobId },
    /// The queue is full; nothing changed (the API answers 429 with its
    /// message).
    Full(QueueFull),
}

/// A recorded step of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobStepRow {
    pub job_id: JobId,
    pub seq: i64,
    /// The job attempt that ran it.
    pub attempt: i64,
    pub name: String,
    pub state: StepState,
    pub started_ms: i64,
    pub finished_ms: Option<i64>,
    /// For people (no secrets).
    pub detail: Option<String>,
    /// For the runner: JSON progress a resumed attempt reads.
    pub data: Option<String>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepEnd<'a> {
    pub state: StepState,
    pub detail: Option<&'a str>,
    pub data: Option<&'a str>,
}

impl<'a> StepEnd<'a> {
    pub fn succeeded() -> StepEnd<'a> {
        StepEnd {
            state: StepState::Succeeded,
            detail: None,
            data: None,
        }
    }

    pub fn failed(detail: &'a str) -> StepEnd<'a> {
        StepEnd {
            state: StepState::Failed,
            detail: Some(detail),
            data: None,
        }
    }

    pub fn with_detail(mut self, detail: &'a str) -> StepEnd<'a> {
        self.detail = Some(detail);
        self
    }

    pub fn with_data(mut self, data_json: &'a str) -> StepEnd<'a> {
        self.data = Some(data_json);
        self
    }
}

/// A log line of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobLogRow {
    pub job_id: JobId,
    pub seq: i64,
    pub ts_ms: i64,
    pub stream: LogStream,
    pub line: String,
    /// The job step it came in (`JobStepRow::seq`), if any.
    #[serde(default)]
    pub step: Option<i64>,
}

const JOB_COLS: &str = "id, app, kind, args, state, dedup_key, cron_entry, scheduled_ms, created_ms, started_ms, finished_ms, lease_owner, lease_expires_ms, heartbeat_ms, attempts, exit_code, error, superseded_by, cancel_requested, log_seq";

/// Reads a TEXT enum column, turning an unknown value into a conversion
/// error that names the column.
fn parsed<T: std::str::FromStr<Err = ParseError>>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    s.parse().map_err(|e: ParseError| {
        rusqlite::Error::FromSqlConversionFailure(i, Type::Text, Box::new(e))
    })
}

fn job_row(r: &Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: r.get(0)?,
        app: r.get(1)?,
        kind: parsed(r, 2)?,
        args: r.get(3)?,
        state: parsed(r, 4)?,
        dedup_key: r.get(5)?,
        cron_entry: r.get(6)?,
        scheduled_ms: r.get(7)?,
        created_ms: r.get(8)?,
        started_ms: r.get(9)?,
        finished_ms: r.get(10)?,
        lease_owner: r.get(11)?,
        lease_expires_ms: r.get(12)?,
        heartbeat_ms: r.get(13)?,
        attempts: r.get(14)?,
        exit_code: r.get(15)?,
        error: r.get(16)?,
        superseded_by: r.get(17)?,
        cancel_requested: r.get(18)?,
        log_seq: r.get(19)?,
    })
}

fn step_row(r: &Row<'_>) -> rusqlite::Result<JobStepRow> {
    Ok(JobStepRow {
        job_id: r.get(0)?,
        seq: r.get(1)?,
        attempt: r.get(2)?,
        name: r.get(3)?,
        state: parsed(r, 4)?,
        started_ms: r.get(5)?,
        finished_ms: r.get(6)?,
        detail: r.get(7)?,
        data: r.get(8)?,
    })
}

fn log_row(r: &Row<'_>) -> rusqlite::Result<JobLogRow> {
    Ok(JobLogRow {
        job_id: r.get(0)?,
        seq: r.get(1)?,
        ts_ms: r.get(2)?,
        stream: parsed(r, 3)?,
        line: r.get(4)?,
        step: r.get(5)?,
    })
}

/// Job `id`, inside a transaction.
fn job_in(tx: &Transaction<'_>, id: JobId) -> Result<Option<JobRow>, StoreError> {
    Ok(tx
        .query_row(
            &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
            [id],
            job_row,
        )
        .optional()?)
}

/// Job `id`, or [`StoreError::NoSuchJob`].
fn existing_job(tx: &Transaction<'_>, id: JobId) -> Result<JobRow, StoreError> {
    job_in(tx, id)?.ok_or(StoreError::NoSuchJob(id))
}

/// `line` cut to [`MAX_LINE_BYTES`] at a character boundary.
fn capped(line: &str) -> std::borrow::Cow<'_, str> {
    if line.len() <= MAX_LINE_BYTES {
        return line.into();
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end]).into()
}

/// Appends lines to job `id`'s log inside a transaction, dropping the
/// oldest beyond [`MAX_LOG_LINES`]; returns the last `seq`.
fn append_log_in(
    tx: &Transaction<'_>,
    id: JobId,
    now_ms: i64,
    (stream, step): (LogStream, Option<i64>),
    lines: &[&str],
) -> Result<i64, StoreError> {
    let first: Option<i64> = tx
        .query_row("SELECT log_seq FROM jobs WHERE id = ?1", [id], |r| r.get(0))
        .optional()?;
    let Some(mut seq) = first else {
        return Err(StoreError::NoSuchJob(id));
    };
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO job_logs (job_id, seq, ts_ms, stream, line, step)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        for line in lines {
            seq += 1;
            insert.execute(params![
                id,
                seq,
                now_ms,
                stream.as_str(),
                capped(line),
                step
            ])?;
        }
    }
    tx.execute(
        "UPDATE jobs SET log_seq = ?2 WHERE id = ?1",
        params![id, seq],
    )?;
    tx.execute(
        "DELETE FROM job_logs WHERE job_id = ?1 AND seq <= ?2",
        params![id, seq - MAX_LOG_LINES],
    )?;
    Ok(seq)
}

/// One of wharf's own lines about job `id`.
fn system_line(tx: &Transaction<'_>, id: JobId, now_ms: i64, line: &str) -> Result<(), StoreError> {
    append_log_in(tx, id, now_ms, (LogStream::System, None), &[line])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_at_a_character_boundary() {
        let short = "ok";
        assert_eq!(capped(short), "ok");
        let long = "é".repeat(MAX_LINE_BYTES); // two bytes each
        let cut = capped(&long);
        assert!(cut.len() <= MAX_LINE_BYTES + "…".len());
        assert!(cut.ends_with('…'));
    }
}
