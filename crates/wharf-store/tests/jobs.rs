//! The job queue on a real SQLite file: the per-app policy, dedup, leases
//! and rescue after a crash, cancel, full queues, steps, logs and cron
//! bookkeeping. Time is injected (`now_ms`), never slept.

#![allow(clippy::unwrap_used)] // a failure here is a test failure

use std::time::Duration;

use wharf_jobs::{
    CancelAction, JobEnd, JobKind, JobState, LogStream, QueueLimits, QueueScope, SkipReason,
    StepState,
};
use wharf_store::*;

const LEASE: Duration = Duration::from_secs(30);
const T0: i64 = 1_700_000_000_000;

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("wharf.db")).unwrap();
    (dir, store)
}

fn limits() -> QueueLimits {
    QueueLimits::default()
}

/// Enqueues and expects it queued; returns (job, superseded, behind).
fn queued(s: &Store, new: NewJob<'_>, now: i64) -> (JobRow, Vec<i64>, Option<i64>) {
    match s.enqueue(&new, limits(), now).unwrap() {
        Enqueued::Queued {
            job,
            superseded,
            behind,
        } => (*job, superseded, behind),
        other => panic!("expected queued, got {other:?}"),
    }
}

fn deploy(app: &str) -> NewJob<'_> {
    NewJob::new(app, JobKind::Deploy, r#"{"source":"upload"}"#)
}

fn state(s: &Store, id: i64) -> JobState {
    s.job(id).unwrap().unwrap().state
}

fn log_lines(s: &Store, id: i64) -> Vec<String> {
    s.logs(id, 0, 1000)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect()
}

#[test]
fn first_runs_second_waits_third_supersedes_the_second() {
    let (_d, s) = store();
    let (first, sup, behind) = queued(&s, deploy("shop"), T0);
    assert_eq!((sup.as_slice(), behind), (&[][..], None));
    assert_eq!(first.state, JobState::Queued);
    assert_eq!(first.args, r#"{"source":"upload"}"#);

    let running = s.claim("runner-a", T0 + 1, LEASE).unwrap().unwrap();
    assert_eq!(running.id, first.id);
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.attempts, 1);
    assert_eq!(running.lease_owner.as_deref(), Some("runner-a"));
    assert_eq!(running.lease_expires_ms, Some(T0 + 1 + 30_000));
    assert_eq!(running.started_ms, Some(T0 + 1));

    let (second, sup, behind) = queued(&s, deploy("shop"), T0 + 2);
    assert_eq!((sup.as_slice(), behind), (&[][..], Some(first.id)));
    // The app is busy: nothing to claim.
    assert_eq!(s.claim("runner-b", T0 + 3, LEASE).unwrap(), None);

    let (third, sup, behind) = queued(&s, deploy("shop"), T0 + 4);
    assert_eq!(
        sup,
        [second.id],
        "the newer deploy says which one it replaced"
    );
    assert_eq!(behind, Some(first.id));
    let replaced = s.job(second.id).unwrap().unwrap();
    assert_eq!(replaced.state, JobState::Superseded);
    assert_eq!(replaced.superseded_by, Some(third.id));
    assert_eq!(replaced.finished_ms, Some(T0 + 4));
    assert_eq!(
        log_lines(&s, second.id),
        [format!(
            "superseded by job {}, a newer deploy of shop",
            third.id
        )]
    );

    // A one-off run supersedes nothing, and runs beside the deploy (it
    // changes nothing of the app).
    let (run, sup, behind) = queued(&s, NewJob::new("shop", JobKind::Run, "{}"), T0 + 5);
    assert!(sup.is_empty());
    assert_eq!(behind, None);
    assert_eq!(
        s.claim("runner-b", T0 + 5, LEASE).unwrap().unwrap().id,
        run.id
    );
    s.finish(
        run.id,
        "runner-b",
        &JobEnd::succeeded().with_exit_code(0),
        T0 + 5,
    )
    .unwrap();
    // A rollback supersedes the waiting deploy too.
    let (rollback, sup, _) = queued(&s, NewJob::new("shop", JobKind::Rollback, "{}"), T0 + 6);
    assert_eq!(sup, [third.id]);

    // Another app is not blocked.
    let (other, _, behind) = queued(&s, deploy("blog"), T0 + 7);
    assert_eq!(behind, None);
    assert_eq!(
        s.claim("runner-b", T0 + 8, LEASE).unwrap().unwrap().id,
        other.id
    );

    // When the first ends, the app's waiting job runs.
    s.finish(first.id, "runner-a", &JobEnd::succeeded(), T0 + 9)
        .unwrap();
    assert_eq!(
        s.claim("runner-a", T0 + 12, LEASE).unwrap().unwrap().id,
        rollback.id
    );

    let active: Vec<i64> = s
        .active_jobs(Some("shop"))
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(active, [rollback.id]);
    let listed: Vec<i64> = s
        .jobs(Some("shop"), 10)
        .unwrap()
        .iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(listed, [rollback.id, run.id, third.id, second.id, first.id]);
    assert_eq!(s.jobs(None, 2).unwrap().len(), 2);
}

#[test]
fn one_running_job_per_app_is_enforced_by_the_database() {
    let (_d, s) = store();
    let (a, _, _) = queued(&s, deploy("shop"), T0);
    s.claim("r", T0, LEASE).unwrap().unwrap();
    queued(&s, NewJob::new("shop", JobKind::Rollback, "{}"), T0);
    // Even a hand-written second "running" row is refused.
    let dir = _d.path().join("wharf.db");
    let raw = rusqlite::Connection::open(dir).unwrap();
    let err = raw
        .execute(
            "UPDATE jobs SET state = 'running' WHERE app = 'shop' AND id != ?1",
            [a.id],
        )
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
}

#[test]
fn a_dedup_key_enqueues_once_and_changes_nothing_the_second_time() {
    let (_d, s) = store();
    let delivery = deploy("shop").with_dedup_key("github:5f2c");
    let (job, _, _) = queued(&s, delivery.clone(), T0);
    assert_eq!(job.dedup_key.as_deref(), Some("github:5f2c"));
    let again = s.enqueue(&delivery, limits(), T0 + 1).unwrap();
    assert_eq!(
        again,
        Enqueued::Duplicate {
            existing_id: job.id
        }
    );
    // The duplicate did not supersede the waiting deploy it duplicates.
    assert_eq!(state(&s, job.id), JobState::Queued);
    assert_eq!(s.jobs(None, 10).unwrap().len(), 1);

    // A duplicate is answered as such even when the queue is full.
    let tight = QueueLimits {
        per_app: 1,
        total: 1,
    };
    assert_eq!(
        s.enqueue(&delivery, tight, T0 + 2).unwrap(),
        Enqueued::Duplicate {
            existing_id: job.id
        }
    );

    // Cron runs are keyed by (app, entry, scheduled time).
    let slot = NewJob::cron("shop", "cleanup", T0, "{}");
    let (cron, _, _) = queued(&s, slot.clone(), T0);
    assert_eq!(
        cron.dedup_key.as_deref(),
        Some(format!("cron:shop:cleanup:{T0}").as_str())
    );
    assert_eq!(
        (cron.cron_entry.as_deref(), cron.scheduled_ms),
        (Some("cleanup"), Some(T0))
    );
    assert_eq!(
        s.enqueue(&slot, limits(), T0 + 5).unwrap(),
        Enqueued::Duplicate {
            existing_id: cron.id
        }
    );
    // A skip record for the same slot is refused too.
    assert_eq!(
        s.record_cron_skip("shop", "cleanup", T0, &SkipReason::Missed, "{}", T0 + 6)
            .unwrap(),
        None
    );
}

#[test]
fn a_crashed_runner_s_job_is_rescued_and_resumed_with_its_steps() {
    let (_d, s) = store();
    let (job, _, _) = queued(&s, deploy("shop"), T0);

    // Runner A takes it, finishes one step and starts another, then dies.
    s.claim("a", T0 + 10, LEASE).unwrap().unwrap();
    let (waiting, _, _) = queued(&s, deploy("shop"), T0 + 10);
    let build = s
        .record_step_start(job.id, "a", "build", None, T0 + 11)
        .unwrap();
    s.record_step_finish(
        job.id,
        "a",
        build,
        &StepEnd::succeeded().with_data(r#"{"release":4}"#),
        T0 + 12,
    )
    .unwrap();
    let start = s
        .record_step_start(job.id, "a", "start", None, T0 + 13)
        .unwrap();
    assert_eq!(
        s.heartbeat(job.id, "a", T0 + 20_000, LEASE).unwrap(),
        LeaseStatus::Held {
            cancel_requested: false
        }
    );
    // Its lease runs out at T0+20s+30s. Before that nothing is rescued…
    assert!(s.rescue_expired(T0 + 49_999).unwrap().is_empty());
    assert_eq!(s.claim("b", T0 + 49_999, LEASE).unwrap(), None);
    // …from then on it is.
    assert_eq!(s.rescue_expired(T0 + 50_020).unwrap(), [job.id]);
    let rescued = s.job(job.id).unwrap().unwrap();
    assert_eq!(rescued.state, JobState::Queued);
    assert_eq!(rescued.lease_expires_ms, None);

    // The dead runner can no longer touch it.
    assert_eq!(
        s.heartbeat(job.id, "a", T0 + 50_021, LEASE).unwrap(),
        LeaseStatus::Lost
    );
    let err = s
        .record_step_start(job.id, "a", "switch", None, T0 + 50_022)
        .unwrap_err();
    assert!(matches!(err, StoreError::LeaseLost { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!(
            "job {} is no longer held by runner a (its lease expired and it was taken over, or it ended); stop working on it, nothing was recorded",
            job.id
        )
    );
    assert!(matches!(
        s.finish(job.id, "a", &JobEnd::succeeded(), T0 + 50_023),
        Err(StoreError::LeaseLost { .. })
    ));

    // A newer deploy replaces the waiting one, never the one being resumed.
    let (newest, sup, _) = queued(&s, deploy("shop"), T0 + 50_024);
    assert_eq!(sup, [waiting.id]);

    // Runner B resumes it first, as attempt 2, and sees what A did.
    let resumed = s.claim("b", T0 + 50_030, LEASE).unwrap().unwrap();
    assert_eq!(resumed.id, job.id);
    assert_eq!(resumed.attempts, 2);
    assert_eq!(resumed.started_ms, Some(T0 + 10), "the first start is kept");
    let steps = s.steps(job.id).unwrap();
    let seen: Vec<(&str, StepState, i64)> = steps
        .iter()
        .map(|st| (st.name.as_str(), st.state, st.attempt))
        .collect();
    assert_eq!(
        seen,
        [
            ("build", StepState::Succeeded, 1),
            ("start", StepState::Interrupted, 1)
        ]
    );
    assert_eq!(steps[0].data.as_deref(), Some(r#"{"release":4}"#));
    assert_eq!(steps[1].seq, start);
    assert_eq!(steps[1].finished_ms, Some(T0 + 50_020));

    // B redoes the interrupted step and ends the job.
    let again = s
        .record_step_start(job.id, "b", "start", None, T0 + 50_031)
        .unwrap();
    assert_eq!(again, start + 1);
    s.record_step_finish(job.id, "b", again, &StepEnd::succeeded(), T0 + 50_032)
        .unwrap();
    let done = s
        .finish(job.id, "b", &JobEnd::succeeded(), T0 + 50_040)
        .unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.duration_ms(), Some(50_030));
    assert_eq!(s.steps(job.id).unwrap()[2].attempt, 2);
    assert_eq!(
        log_lines(&s, job.id),
        [
            "started by runner a",
            "runner a went away (its lease expired); queued to resume",
            "resumed by runner b (attempt 2)",
            "succeeded",
        ]
    );
    assert_eq!(
        s.claim("b", T0 + 50_041, LEASE).unwrap().unwrap().id,
        newest.id
    );
}

#[test]
fn claim_rescues_expired_leases_itself_and_a_restart_rescues_all() {
    let (_d, s) = store();
    let (a, _, _) = queued(&s, deploy("shop"), T0);
    let (b, _, _) = queued(&s, deploy("blog"), T0);
    s.claim("old", T0, LEASE).unwrap().unwrap();
    s.claim("old", T0, LEASE).unwrap().unwrap();
    // A restarted server need not wait for the leases to run out.
    assert_eq!(s.rescue_all(T0 + 1).unwrap(), [a.id, b.id]);
    assert_eq!(state(&s, a.id), JobState::Queued);

    // And a claim after expiry takes over without a separate rescue.
    s.claim("new", T0 + 2, LEASE).unwrap().unwrap();
    let later = T0 + 2 + 30_000;
    let taken = s.claim("other", later, LEASE).unwrap().unwrap();
    assert_eq!(taken.id, a.id);
    assert_eq!(taken.lease_owner.as_deref(), Some("other"));
    assert_eq!(taken.attempts, 3);
}

#[test]
fn cancel_a_waiting_job_now_and_a_running_one_through_its_runner() {
    let (_d, s) = store();
    let (running, _, _) = queued(&s, deploy("shop"), T0);
    let (waiting, _, _) = queued(&s, NewJob::new("shop", JobKind::Run, "{}"), T0);
    s.claim("r", T0, LEASE).unwrap().unwrap();

    assert_eq!(
        s.request_cancel(waiting.id, T0 + 1).unwrap(),
        CancelAction::CancelNow
    );
    let cancelled = s.job(waiting.id).unwrap().unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    assert_eq!(
        cancelled.error.as_deref(),
        Some("cancelled before it started")
    );
    assert_eq!(cancelled.finished_ms, Some(T0 + 1));

    assert_eq!(
        s.request_cancel(running.id, T0 + 2).unwrap(),
        CancelAction::RequestStop
    );
    assert_eq!(
        state(&s, running.id),
        JobState::Running,
        "the runner decides when"
    );
    assert!(s.cancel_requested(running.id).unwrap());
    assert_eq!(
        s.heartbeat(running.id, "r", T0 + 3, LEASE).unwrap(),
        LeaseStatus::Held {
            cancel_requested: true
        }
    );
    let step = s
        .record_step_start(running.id, "r", "health", None, T0 + 3)
        .unwrap();
    let end = JobEnd::cancelled(Some("release 3 keeps serving".into()));
    let done = s.finish(running.id, "r", &end, T0 + 4).unwrap();
    assert_eq!(done.state, JobState::Cancelled);
    assert_eq!(done.error.as_deref(), Some("release 3 keeps serving"));
    let open = &s.steps(running.id).unwrap()[0];
    assert_eq!((open.seq, open.state), (step, StepState::Interrupted));

    // The queue moved on: nothing left for the app.
    assert_eq!(s.claim("r", T0 + 5, LEASE).unwrap(), None);
    assert_eq!(
        s.request_cancel(running.id, T0 + 6).unwrap(),
        CancelAction::AlreadyEnded(JobState::Cancelled)
    );
    let err = s.request_cancel(9_999, T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no job 9999 in this server's store; list jobs with `wharf jobs`"
    );
}

#[test]
fn cancelling_a_job_queued_to_resume_lets_its_runner_clean_up() {
    let (_d, s) = store();
    let (job, _, _) = queued(&s, deploy("shop"), T0);
    s.claim("a", T0, LEASE).unwrap().unwrap();
    s.rescue_all(T0 + 1).unwrap();
    assert_eq!(
        s.request_cancel(job.id, T0 + 2).unwrap(),
        CancelAction::RequestStop
    );
    assert_eq!(state(&s, job.id), JobState::Queued);
    let resumed = s.claim("b", T0 + 3, LEASE).unwrap().unwrap();
    assert!(resumed.cancel_requested);
}

#[test]
fn a_full_queue_refuses_and_changes_nothing() {
    let (_d, s) = store();
    let tight = QueueLimits {
        per_app: 2,
        total: 3,
    };
    let run = || NewJob::new("shop", JobKind::Run, "{}");
    for _ in 0..2 {
        assert!(matches!(
            s.enqueue(&run(), tight, T0).unwrap(),
            Enqueued::Queued { .. }
        ));
    }
    let Enqueued::Full(full) = s.enqueue(&run(), tight, T0).unwrap() else {
        panic!("a third waiting job of shop must be refused");
    };
    assert_eq!((full.scope, full.limit), (QueueScope::App, 2));
    assert_eq!(
        full.to_string(),
        "the job queue of shop is full (2 jobs waiting), so this job was not queued; try again when some have run, or cancel waiting ones with `wharf job cancel ID`"
    );
    assert_eq!(s.jobs(None, 10).unwrap().len(), 2);

    // A running job does not count.
    s.claim("r", T0, LEASE).unwrap().unwrap();
    assert!(matches!(
        s.enqueue(&run(), tight, T0).unwrap(),
        Enqueued::Queued { .. }
    ));

    // The server-wide cap.
    assert!(matches!(
        s.enqueue(&deploy("blog"), tight, T0).unwrap(),
        Enqueued::Queued { .. }
    ));
    let Enqueued::Full(full) = s.enqueue(&deploy("wiki"), tight, T0).unwrap() else {
        panic!("the fourth waiting job of the server must be refused");
    };
    assert_eq!(full.scope, QueueScope::All);
    // A deploy replacing the waiting one does not grow the queue.
    let Enqueued::Queued { superseded, .. } = s.enqueue(&deploy("blog"), tight, T0).unwrap() else {
        panic!("a superseding deploy is accepted at the cap");
    };
    assert_eq!(superseded.len(), 1);
}

#[test]
fn logs_follow_by_seq_and_keep_the_newest_lines() {
    let (_d, s) = store();
    let (job, _, _) = queued(&s, NewJob::new("shop", JobKind::Run, "{}"), T0);
    let seq = s
        .append_log(job.id, LogStream::Stdout, &["one", "two"], T0 + 1)
        .unwrap();
    assert_eq!(seq, 2);
    s.append_log(job.id, LogStream::Stderr, &["three"], T0 + 2)
        .unwrap();
    let after = s.logs(job.id, 2, 10).unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(
        (
            after[0].seq,
            after[0].stream,
            after[0].line.as_str(),
            after[0].ts_ms
        ),
        (3, LogStream::Stderr, "three", T0 + 2)
    );
    assert_eq!(s.job(job.id).unwrap().unwrap().log_seq, 3);

    let many: Vec<String> = (0..MAX_LOG_LINES + 7)
        .map(|i| format!("line {i}"))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let last = s
        .append_log(job.id, LogStream::Stdout, &refs, T0 + 3)
        .unwrap();
    assert_eq!(last, 3 + MAX_LOG_LINES + 7);
    let kept = s.logs(job.id, 0, u32::MAX).unwrap();
    assert_eq!(kept.len() as i64, MAX_LOG_LINES);
    assert_eq!(kept[0].seq, last - MAX_LOG_LINES + 1);
    assert_eq!(
        kept.last().unwrap().line,
        format!("line {}", MAX_LOG_LINES + 6)
    );

    let long = "x".repeat(MAX_LINE_BYTES * 2);
    let seq = s
        .append_log(job.id, LogStream::Stdout, &[&long], T0 + 4)
        .unwrap();
    let line = &s.logs(job.id, seq - 1, 1).unwrap()[0].line;
    assert!(line.len() < MAX_LINE_BYTES + 4 && line.ends_with('…'));

    assert!(matches!(
        s.append_log(4242, LogStream::System, &["x"], T0),
        Err(StoreError::NoSuchJob(4242))
    ));
}

#[test]
fn cron_bookkeeping_knows_the_last_time_and_a_run_still_going() {
    let (_d, s) = store();
    assert_eq!(
        s.cron_history("shop", "cleanup").unwrap(),
        Default::default()
    );
    let (first, _, _) = queued(&s, NewJob::new("shop", JobKind::Deploy, "{}"), T0);
    let (run, _, _) = queued(&s, NewJob::cron("shop", "cleanup", T0, "{}"), T0);
    let h = s.cron_history("shop", "cleanup").unwrap();
    assert_eq!((h.last_scheduled_ms, h.active), (Some(T0), Some(run.id)));

    // Due again while the first is still waiting behind the deploy: skipped and recorded.
    let reason = SkipReason::PreviousActive { job: run.id };
    let skip = s
        .record_cron_skip("shop", "cleanup", T0 + 60_000, &reason, "{}", T0 + 60_000)
        .unwrap()
        .unwrap();
    let rec = s.job(skip).unwrap().unwrap();
    assert_eq!((rec.kind, rec.state), (JobKind::Cron, JobState::Skipped));
    assert_eq!(
        rec.error.as_deref(),
        Some(
            format!(
                "skipped: the previous run (job {}) was still running",
                run.id
            )
            .as_str()
        )
    );
    assert_eq!(
        s.cron_history("shop", "cleanup").unwrap().last_scheduled_ms,
        Some(T0 + 60_000)
    );
    // Other entries and apps are separate.
    assert_eq!(
        s.cron_history("shop", "report").unwrap(),
        Default::default()
    );
    assert_eq!(
        s.cron_history("blog", "cleanup").unwrap(),
        Default::default()
    );

    // The run, after the deploy, with an exit code and a duration.
    s.claim("r", T0 + 1, LEASE).unwrap().unwrap();
    s.finish(first.id, "r", &JobEnd::succeeded(), T0 + 2)
        .unwrap();
    assert_eq!(s.claim("r", T0 + 3, LEASE).unwrap().unwrap().id, run.id);
    let end = JobEnd::failed("`bin/cleanup` exited with 3").with_exit_code(3);
    let done = s.finish(run.id, "r", &end, T0 + 1_503).unwrap();
    assert_eq!((done.exit_code, done.duration_ms()), (Some(3), Some(1_500)));
    assert_eq!(s.cron_history("shop", "cleanup").unwrap().active, None);
}

#[test]
fn pruning_keeps_active_jobs_and_each_cron_entry_s_latest_record() {
    let (_d, s) = store();
    let (old, _, _) = queued(&s, NewJob::new("shop", JobKind::Run, "{}"), T0);
    s.claim("r", T0, LEASE).unwrap().unwrap();
    s.record_step_start(old.id, "r", "run", None, T0).unwrap();
    s.append_log(old.id, LogStream::Stdout, &["hi"], T0)
        .unwrap();
    s.finish(old.id, "r", &JobEnd::succeeded(), T0 + 1).unwrap();
    let first_skip = s
        .record_cron_skip("shop", "cleanup", T0, &SkipReason::Missed, "{}", T0)
        .unwrap()
        .unwrap();
    let last_skip = s
        .record_cron_skip(
            "shop",
            "cleanup",
            T0 + 60_000,
            &SkipReason::Missed,
            "{}",
            T0 + 2,
        )
        .unwrap()
        .unwrap();
    let (waiting, _, _) = queued(&s, deploy("shop"), T0 + 3);

    assert_eq!(s.prune_jobs(T0 + 100).unwrap(), 2);
    assert_eq!(s.job(old.id).unwrap(), None);
    assert_eq!(s.job(first_skip).unwrap(), None);
    assert!(s.steps(old.id).unwrap().is_empty());
    assert!(s.logs(old.id, 0, 10).unwrap().is_empty());
    assert!(
        s.job(last_skip).unwrap().is_some(),
        "the entry's latest record stays"
    );
    assert!(s.job(waiting.id).unwrap().is_some(), "waiting jobs stay");

    assert_eq!(s.forget_app_jobs("shop").unwrap(), 2);
    assert!(s.jobs(Some("shop"), 10).unwrap().is_empty());
}

#[test]
fn jobs_survive_reopening_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wharf.db");
    let id = {
        let s = Store::open(&path).unwrap();
        let (job, _, _) = queued(&s, deploy("shop"), T0);
        s.claim("a", T0, LEASE).unwrap().unwrap();
        s.record_step_start(job.id, "a", "build", None, T0).unwrap();
        job.id
    };
    let s = Store::open(&path).unwrap();
    assert_eq!(s.rescue_all(T0 + 1).unwrap(), [id]);
    let resumed = s.claim("b", T0 + 2, LEASE).unwrap().unwrap();
    assert_eq!((resumed.id, resumed.attempts), (id, 2));
    assert_eq!(s.steps(id).unwrap()[0].state, StepState::Interrupted);
}

#[test]
fn a_scheduler_on_the_store_runs_each_time_once_across_restarts() {
    use wharf_jobs::Schedule;
    use wharf_jobs::cron::{self, CronOptions, Decision};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wharf.db");
    let every_5 = Schedule::parse("*/5 * * * *", None).unwrap();
    let t = every_5.next_after(T0).unwrap();
    const MIN: i64 = 60_000;
    // One scheduler tick: decide, then write what was decided.
    let tick = |s: &Store, now: i64, options: CronOptions| -> Decision {
        let history = s.cron_history("shop", "cleanup").unwrap();
        let decision = cron::decide(&every_5, now, &history, options);
        match decision {
            Decision::Run { scheduled_ms, .. } => {
                let new = NewJob::cron("shop", "cleanup", scheduled_ms, "{}");
                assert!(matches!(
                    s.enqueue(&new, limits(), now).unwrap(),
                    Enqueued::Queued { .. }
                ));
            }
            Decision::Skip {
                scheduled_ms,
                reason,
            } => {
                s.record_cron_skip("shop", "cleanup", scheduled_ms, &reason, "{}", now)
                    .unwrap()
                    .unwrap();
            }
            Decision::Idle => {}
        }
        decision
    };
    let on = CronOptions::default();

    let s = Store::open(&path).unwrap();
    assert!(
        matches!(tick(&s, t + 200, on), Decision::Run { scheduled_ms, .. } if scheduled_ms == t)
    );
    drop(s);
    // A restarted server decides again at once: nothing new.
    let s = Store::open(&path).unwrap();
    assert_eq!(tick(&s, t + 1_000, on), Decision::Idle);
    // A racing enqueue of the same time is a duplicate.
    assert!(matches!(
        s.enqueue(
            &NewJob::cron("shop", "cleanup", t, "{}"),
            limits(),
            t + 1_001
        )
        .unwrap(),
        Enqueued::Duplicate { .. }
    ));

    // The run is slow: the next time is skipped and recorded.
    let run = s.claim("r", t + 2_000, LEASE).unwrap().unwrap();
    assert!(matches!(
        tick(&s, t + 5 * MIN, on),
        Decision::Skip { reason: SkipReason::PreviousActive { job }, .. } if job == run.id
    ));
    s.finish(
        run.id,
        "r",
        &JobEnd::succeeded().with_exit_code(0),
        t + 6 * MIN,
    )
    .unwrap();

    // Down from t+6m to t+32m: the latest missed time (t+30m) runs once.
    let s = Store::open(&path).unwrap();
    assert_eq!(
        tick(&s, t + 32 * MIN, on),
        Decision::Run {
            scheduled_ms: t + 30 * MIN,
            late_ms: 2 * MIN
        }
    );
    assert_eq!(tick(&s, t + 32 * MIN + 1, on), Decision::Idle);
    let runs: Vec<(JobState, Option<i64>)> = s
        .jobs(Some("shop"), 10)
        .unwrap()
        .iter()
        .map(|j| (j.state, j.scheduled_ms))
        .collect();
    assert_eq!(
        runs,
        [
            (JobState::Queued, Some(t + 30 * MIN)),
            (JobState::Skipped, Some(t + 5 * MIN)),
            (JobState::Succeeded, Some(t)),
        ]
    );
}
