//! The queue's rules as pure functions over a snapshot, so the store's
//! transaction reads the snapshot, calls these and writes what they say:
//!
//! - [`decide_enqueue`]: per app, one job runs and the others wait in
//!   order; a newer deploy or rollback supersedes the one waiting (only
//!   the newest wish to move the app counts); a full queue is refused, never
//!   dropped in silence.
//! - [`decide_cancel`]: a job that never started is cancelled at once; one
//!   that started (running, or queued to resume after a crash) is asked to
//!   stop, so its runner can abort cleanly.
//! - leases: [`lease_live`], [`lease_expiry`], [`heartbeat_every`].
//!
//! State transitions are [`JobState::can_become`](crate::JobState::can_become).

use std::time::Duration;

use serde::Serialize;

use crate::{JobId, JobKind, JobState};

/// Caps on waiting (`queued`) jobs. A running job does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Waiting jobs of one app.
    pub per_app: u32,
    /// Waiting jobs of all apps together.
    pub total: u32,
}

impl Default for QueueLimits {
    /// 25 per app (Coolify's `deployment_queue_limit` default) and 250 in
    /// all.
    fn default() -> Self {
        QueueLimits {
            per_app: 25,
            total: 250,
        }
    }
}

/// A waiting job of the app a new job is for, as the policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    pub id: JobId,
    pub kind: JobKind,
    /// It ran before and is queued to resume (its runner went away): it is
    /// never superseded, since the work it started must be finished or
    /// cleaned up.
    pub resuming: bool,
}

/// What [`decide_enqueue`] reads.
#[derive(Debug, Clone, Copy)]
pub struct QueueSnapshot<'a> {
    /// The app's waiting jobs.
    pub waiting: &'a [Waiting],
    /// Waiting jobs of all apps (including this app's).
    pub total_waiting: u32,
}

/// What to do with a new job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnqueueDecision {
    /// Queue it, after marking these waiting jobs `superseded` by it.
    Accept { supersede: Vec<JobId> },
    /// Refuse it: nothing changes (the API answers 429).
    Full(QueueFull),
}

/// Which cap a refused job hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueScope {
    App,
    All,
}

/// A refused job: the queue it would join is full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{}", self.message())]
pub struct QueueFull {
    /// The app the job was for.
    pub app: String,
    pub scope: QueueScope,
    /// The cap that was reached.
    pub limit: u32,
}

impl QueueFull {
    fn message(&self) -> String {
        let what = match self.scope {
            QueueScope::App => format!(
                "the job queue of {} is full ({} jobs waiting), so this job was not queued",
                self.app, self.limit
            ),
            QueueScope::All => format!(
                "the server's job queue is full ({} jobs waiting across all apps), so this job for {} was not queued",
                self.limit, self.app
            ),
        };
        format!(
            "{what}; try again when some have run, or cancel waiting ones with `wharf job cancel ID`"
        )
    }
}

/// Decides on a new job of `kind` for `app`, given that app's waiting jobs.
///
/// A coalescing kind ([`JobKind::coalesces`]) supersedes every waiting job
/// it [`JobKind::supersedes`] that is not resuming (by the policy there is
/// at most one). The caps are checked after that, so a deploy that replaces
/// the waiting one is accepted even when the queue is at its cap.
pub fn decide_enqueue(
    app: &str,
    kind: JobKind,
    snapshot: QueueSnapshot<'_>,
    limits: QueueLimits,
) -> EnqueueDecision {
    let supersede: Vec<JobId> = if kind.coalesces() {
        snapshot
            .waiting
            .iter()
            .filter(|w| kind.supersedes(w.kind) && !w.resuming)
            .map(|w| w.id)
            .collect()
    } else {
        Vec::new()
    };
    let removed = supersede.len() as u64;
    let app_after = (snapshot.waiting.len() as u64).saturating_sub(removed) + 1;
    let total_after = u64::from(snapshot.total_waiting).saturating_sub(removed) + 1;
    let full = |scope, limit| {
        EnqueueDecision::Full(QueueFull {
            app: app.to_string(),
            scope,
            limit,
        })
    };
    if app_after > u64::from(limits.per_app) {
        return full(QueueScope::App, limits.per_app);
    }
    if total_after > u64::from(limits.total) {
        return full(QueueScope::All, limits.total);
    }
    EnqueueDecision::Accept { supersede }
}

/// What a cancel request does to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "state")]
pub enum CancelAction {
    /// It never started: it becomes `cancelled` now.
    CancelNow,
    /// It started (running, or queued to resume): its cancel flag is set
    /// and its runner aborts cleanly at the next step or heartbeat.
    RequestStop,
    /// It has already ended in this state; nothing changes.
    AlreadyEnded(JobState),
}

/// Decides on a cancel request for a job in `state`; `started` is whether
/// any runner ever took it (its attempt count is above zero).
pub fn decide_cancel(state: JobState, started: bool) -> CancelAction {
    match state {
        JobState::Queued if !started => CancelAction::CancelNow,
        JobState::Queued | JobState::Running => CancelAction::RequestStop,
        ended => CancelAction::AlreadyEnded(ended),
    }
}

/// The lease a runner takes by default; it renews it every third of that.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// Whether a lease that expires at `expires_ms` still holds at `now_ms`.
/// A lease is dead from its expiry instant on.
pub fn lease_live(expires_ms: Option<i64>, now_ms: i64) -> bool {
    matches!(expires_ms, Some(e) if e > now_ms)
}

/// When a lease of length `lease` taken at `now_ms` expires.
pub fn lease_expiry(now_ms: i64, lease: Duration) -> i64 {
    let ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_add(ms)
}

/// How often a runner should renew a lease of length `lease`: three
/// heartbeats fit in one lease, so one late beat does not lose it.
pub fn heartbeat_every(lease: Duration) -> Duration {
    lease / 3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: JobId, kind: JobKind) -> Waiting {
        Waiting {
            id,
            kind,
            resuming: false,
        }
    }

    fn decide(
        kind: JobKind,
        waiting: &[Waiting],
        total: u32,
        limits: QueueLimits,
    ) -> EnqueueDecision {
        decide_enqueue(
            "shop",
            kind,
            QueueSnapshot {
                waiting,
                total_waiting: total,
            },
            limits,
        )
    }

    fn accept(ids: &[JobId]) -> EnqueueDecision {
        EnqueueDecision::Accept {
            supersede: ids.to_vec(),
        }
    }

    #[test]
    fn enqueue_table() {
        use JobKind::*;
        let big = QueueLimits::default();
        let resuming = Waiting {
            id: 1,
            kind: Deploy,
            resuming: true,
        };
        // (what is waiting, new kind, expected)
        let cases: Vec<(&str, Vec<Waiting>, JobKind, EnqueueDecision)> = vec![
            ("empty queue", vec![], Deploy, accept(&[])),
            (
                "deploy supersedes a waiting deploy",
                vec![w(1, Deploy)],
                Deploy,
                accept(&[1]),
            ),
            (
                "rollback supersedes a waiting deploy",
                vec![w(1, Deploy)],
                Rollback,
                accept(&[1]),
            ),
            (
                "deploy supersedes a waiting rollback",
                vec![w(1, Rollback)],
                Deploy,
                accept(&[1]),
            ),
            (
                "a run waits beside a deploy",
                vec![w(1, Deploy)],
                Run,
                accept(&[]),
            ),
            (
                "a deploy leaves runs and cron runs alone",
                vec![w(1, Run), w(2, Cron), w(3, Deploy)],
                Deploy,
                accept(&[3]),
            ),
            (
                "a restore is never superseded",
                vec![w(1, Restore)],
                Deploy,
                accept(&[]),
            ),
            (
                "a restore supersedes nothing",
                vec![w(1, Deploy)],
                Restore,
                accept(&[]),
            ),
            (
                "a push supersedes the waiting push",
                vec![w(1, Pipeline)],
                Pipeline,
                accept(&[1]),
            ),
            (
                "a push leaves a waiting deploy alone",
                vec![w(1, Deploy), w(2, Pipeline)],
                Pipeline,
                accept(&[2]),
            ),
            (
                "a deploy leaves a waiting push alone",
                vec![w(1, Pipeline), w(2, Deploy)],
                Deploy,
                accept(&[2]),
            ),
            (
                "a resuming deploy is never superseded",
                vec![resuming, w(2, Deploy)],
                Deploy,
                accept(&[2]),
            ),
            (
                "two waiting deploys (older data) are both superseded",
                vec![w(1, Deploy), w(2, Deploy)],
                Deploy,
                accept(&[1, 2]),
            ),
        ];
        for (name, waiting, kind, expected) in cases {
            assert_eq!(
                decide(kind, &waiting, waiting.len() as u32, big),
                expected,
                "{name}"
            );
        }
    }

    #[test]
    fn caps_refuse_with_the_cap_that_was_hit() {
        use JobKind::*;
        let limits = QueueLimits {
            per_app: 2,
            total: 3,
        };
        let two = [w(1, Run), w(2, Run)];
        let EnqueueDecision::Full(full) = decide(Run, &two, 2, limits) else {
            panic!("a third waiting run of one app must be refused");
        };
        assert_eq!(full.scope, QueueScope::App);
        assert_eq!(full.limit, 2);
        assert_eq!(
            full.to_string(),
            "the job queue of shop is full (2 jobs waiting), so this job was not queued; try again when some have run, or cancel waiting ones with `wharf job cancel ID`"
        );

        let one = [w(1, Run)];
        let EnqueueDecision::Full(full) = decide(Run, &one, 3, limits) else {
            panic!("the fourth waiting job of the server must be refused");
        };
        assert_eq!(full.scope, QueueScope::All);
        assert!(full.to_string().contains("across all apps"), "{full}");

        // Replacing the waiting deploy does not grow the queue: accepted at the cap.
        let at_cap = [w(1, Run), w(2, Deploy)];
        assert_eq!(decide(Deploy, &at_cap, 3, limits), accept(&[2]));
        // A zero cap refuses everything.
        let none = QueueLimits {
            per_app: 0,
            total: 10,
        };
        assert!(matches!(
            decide(Deploy, &[], 0, none),
            EnqueueDecision::Full(_)
        ));
    }

    #[test]
    fn cancel_table() {
        use JobState::*;
        let cases = [
            (Queued, false, CancelAction::CancelNow),
            (Queued, true, CancelAction::RequestStop),
            (Running, true, CancelAction::RequestStop),
            (Running, false, CancelAction::RequestStop),
            (Succeeded, true, CancelAction::AlreadyEnded(Succeeded)),
            (Failed, true, CancelAction::AlreadyEnded(Failed)),
            (Cancelled, false, CancelAction::AlreadyEnded(Cancelled)),
            (Superseded, false, CancelAction::AlreadyEnded(Superseded)),
            (Skipped, false, CancelAction::AlreadyEnded(Skipped)),
        ];
        for (state, started, expected) in cases {
            assert_eq!(
                decide_cancel(state, started),
                expected,
                "{state} started={started}"
            );
        }
    }

    #[test]
    fn leases_die_at_their_expiry() {
        assert!(lease_live(Some(1_001), 1_000));
        assert!(!lease_live(Some(1_000), 1_000));
        assert!(!lease_live(None, 0));
        assert_eq!(lease_expiry(1_000, Duration::from_secs(30)), 31_000);
        assert_eq!(
            lease_expiry(i64::MAX - 1, Duration::from_secs(30)),
            i64::MAX
        );
        assert_eq!(heartbeat_every(DEFAULT_LEASE), Duration::from_secs(10));
    }
}
