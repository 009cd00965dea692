//! The words of the queue: what a job is ([`JobKind`]), where it is in its
//! life ([`JobState`]), its recorded steps ([`StepState`]), its log lines
//! ([`LogStream`]) and how it ends ([`JobEnd`]).
//!
//! Each enum is stored as TEXT: `as_str` is the stored spelling and
//! `FromStr` reads it back, failing with a [`ParseError`] that names what it
//! could not read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A job's id: the store's row id.
pub type JobId = i64;

/// A stored value that is not one of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`; expected one of {expected}")]
pub struct ParseError {
    /// What was being read, e.g. "job kind".
    pub what: &'static str,
    /// The text that was found.
    pub value: String,
    /// The accepted spellings, quoted and comma separated.
    pub expected: String,
}

/// Defines a string-backed enum with `as_str`, `Display` and `FromStr`.
macro_rules! text_enum {
    ($(#[$m:meta])* $name:ident ($what:literal) { $($(#[$vm:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and displayed) spelling.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl FromStr for $name {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(ParseError {
                        what: $what,
                        value: other.to_string(),
                        expected: Self::ALL
                            .iter()
                            .map(|v| format!("`{v}`"))
                            .collect::<Vec<_>>()
                            .join(", "),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// What a job does. The store keeps it as TEXT without a CHECK
    /// constraint, so a later kind needs no table rebuild; this enum is the
    /// check.
    JobKind ("job kind") {
        /// A deploy of a new release.
        Deploy = "deploy",
        /// A deploy back to a retained release.
        Rollback = "rollback",
        /// A restarted server bringing back an app's serving release.
        Restore = "restore",
        /// Booting (or rebooting) an accessory.
        Accessory = "accessory",
        /// A one-off command in the live release (`wharf run`).
        Run = "run",
        /// One run of a `[cron.NAME]` entry.
        Cron = "cron",
        /// The app's CI steps.
        Pipeline = "pipeline",
    }
);

impl JobKind {
    /// Whether jobs of this kind coalesce per app: a newer one supersedes
    /// the one waiting ("newest waiting deploy wins"; who supersedes whom
    /// is [`JobKind::supersedes`]). Deploys and rollbacks do: both move the
    /// app to a release, and only the latest wish matters; so do pipelines
    /// (the newest push wins). A restore does not (it brings back what
    /// served and must not be dropped), nor do runs, cron runs or accessory
    /// actions (each of them is its own piece of work).
    pub fn coalesces(self) -> bool {
        matches!(
            self,
            JobKind::Deploy | JobKind::Rollback | JobKind::Pipeline
        )
    }

    /// Whether a new job of this kind supersedes a waiting one of
    /// `waiting`'s: deploys and rollbacks each other (both move the app
    /// to a release), pipelines each other (the newest push wins; a
    /// waiting manual deploy is not a push's to drop).
    pub fn supersedes(self, waiting: JobKind) -> bool {
        use JobKind::{Deploy, Pipeline, Rollback};
        matches!(
            (self, waiting),
            (Deploy | Rollback, Deploy | Rollback) | (Pipeline, Pipeline)
        )
    }

    /// Whether it changes the app, so runs alone among the app's jobs that
    /// do (one deploy, rollback, restore, accessory boot or pipeline at a
    /// time). One-off and cron runs only use the serving release: they run
    /// beside those and beside each other (a cron entry's own overlap is
    /// the skip rule's).
    pub fn exclusive(self) -> bool {
        !matches!(self, JobKind::Run | JobKind::Cron)
    }
}

text_enum!(
    /// Where a job is in its life:
    /// `queued → running → succeeded | failed | cancelled`, or
    /// `queued → cancelled | superseded`; `skipped` is a record made in
    /// that state (a cron run that did not run). See
    /// [`JobState::can_become`] for the full table.
    JobState ("job state") {
        /// Waiting for its app's turn (or, after a crash, to be resumed).
        Queued = "queued",
        /// Held by a runner with a live lease.
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Cancelled by a user: before it started, or aborted cleanly.
        Cancelled = "cancelled",
        /// Replaced while waiting by a newer job of a coalescing kind.
        Superseded = "superseded",
        /// A cron run recorded as not run (previous run still active,
        /// missed while the server was down, queue full).
        Skipped = "skipped",
    }
);

impl JobState {
    /// Whether the job has ended (nothing will change it any more).
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }

    /// Whether a job may move from `self` to `next`:
    ///
    /// | from      | to                                    | by             |
    /// |-----------|---------------------------------------|----------------|
    /// | `queued`  | `running`                             | a claim        |
    /// | `queued`  | `cancelled`                           | a cancel       |
    /// | `queued`  | `superseded`                          | a newer deploy |
    /// | `running` | `succeeded`, `failed`, `cancelled`    | its runner     |
    /// | `running` | `queued`                              | a rescue, once its lease expired |
    ///
    /// Nothing leaves a terminal state; `skipped` is only ever created.
    pub fn can_become(self, next: JobState) -> bool {
        use JobState::*;
        matches!(
            (self, next),
            (Queued, Running | Cancelled | Superseded)
                | (Running, Succeeded | Failed | Cancelled | Queued)
        )
    }
}

text_enum!(
    /// A recorded step of a job.
    StepState ("step state") {
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        /// Not needed on this run (e.g. already done by an earlier attempt).
        Skipped = "skipped",
        /// Its runner went away mid-step (lease expired, or the job ended
        /// with the step still open); a resumed runner starts it again.
        Interrupted = "interrupted",
    }
);

impl StepState {
    /// Whether the step has ended.
    pub fn is_terminal(self) -> bool {
        self != StepState::Running
    }
}

text_enum!(
    /// Where a log line of a job came from.
    LogStream ("log stream") {
        /// The command's standard output.
        Stdout = "stdout",
        /// The command's standard error.
        Stderr = "stderr",
        /// wharf's own progress lines about the job.
        System = "system",
    }
);

/// How a runner ends a job it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded,
    Failed,
    Cancelled,
}

impl Outcome {
    /// The state the job ends in.
    pub fn state(self) -> JobState {
        match self {
            Outcome::Succeeded => JobState::Succeeded,
            Outcome::Failed => JobState::Failed,
            Outcome::Cancelled => JobState::Cancelled,
        }
    }
}

/// The end of a job, as its runner records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEnd {
    pub outcome: Outcome,
    /// The exit code of the job's command, when it ran one.
    pub exit_code: Option<i32>,
    /// What went wrong (STYLE.md wording; never a secret).
    pub error: Option<String>,
}

impl JobEnd {
    pub fn succeeded() -> JobEnd {
        JobEnd {
            outcome: Outcome::Succeeded,
            exit_code: None,
            error: None,
        }
    }

    pub fn failed(error: impl Into<String>) -> JobEnd {
        JobEnd {
            outcome: Outcome::Failed,
            exit_code: None,
            error: Some(error.into()),
        }
    }

    /// Cancelled on request; `note` says what is still true, e.g.
    /// "release 3 keeps serving".
    pub fn cancelled(note: Option<String>) -> JobEnd {
        JobEnd {
            outcome: Outcome::Cancelled,
            exit_code: None,
            error: note,
        }
    }

    /// A note on a succeeded job (kept where a failure's error goes).
    pub fn with_detail(mut self, detail: impl Into<String>) -> JobEnd {
        self.error = Some(detail.into());
        self
    }

    pub fn with_exit_code(mut self, code: i32) -> JobEnd {
        self.exit_code = Some(code);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_reads_back() {
        for k in JobKind::ALL {
            assert_eq!(k.as_str().parse::<JobKind>(), Ok(*k));
        }
        for s in JobState::ALL {
            assert_eq!(s.as_str().parse::<JobState>(), Ok(*s));
        }
        for s in StepState::ALL {
            assert_eq!(s.as_str().parse::<StepState>(), Ok(*s));
        }
        for s in LogStream::ALL {
            assert_eq!(s.as_str().parse::<LogStream>(), Ok(*s));
        }
    }

    #[test]
    fn an_unknown_spelling_says_what_would_do() {
        let err = "deploy!".parse::<JobKind>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown job kind `deploy!`; expected one of `deploy`, `rollback`, `restore`, `accessory`, `run`, `cron`, `pipeline`"
        );
    }

    #[test]
    fn state_transitions_follow_the_table() {
        use JobState::*;
        // (from, to, allowed)
        let allowed = [
            (Queued, Running),
            (Queued, Cancelled),
            (Queued, Superseded),
            (Running, Succeeded),
            (Running, Failed),
            (Running, Cancelled),
            (Running, Queued),
        ];
        for from in JobState::ALL {
            for to in JobState::ALL {
                let expected = allowed.contains(&(*from, *to));
                assert_eq!(
                    from.can_become(*to),
                    expected,
                    "{from} -> {to} should be {}",
                    if expected { "allowed" } else { "refused" }
                );
            }
        }
        for s in JobState::ALL {
            assert_eq!(s.is_terminal(), !matches!(s, Queued | Running), "{s}");
        }
    }

    #[test]
    fn deploys_rollbacks_and_pipelines_coalesce() {
        let coalescing: Vec<_> = JobKind::ALL.iter().filter(|k| k.coalesces()).collect();
        assert_eq!(
            coalescing,
            [&JobKind::Deploy, &JobKind::Rollback, &JobKind::Pipeline]
        );
        for a in JobKind::ALL {
            for b in JobKind::ALL {
                if a.supersedes(*b) {
                    assert!(a.coalesces() && b.coalesces(), "{a} {b}");
                }
            }
        }
    }

    #[test]
    fn outcomes_end_in_terminal_states_a_running_job_may_reach() {
        for o in [Outcome::Succeeded, Outcome::Failed, Outcome::Cancelled] {
            assert!(JobState::Running.can_become(o.state()));
            assert!(o.state().is_terminal());
        }
        let end = JobEnd::failed("boom").with_exit_code(3);
        assert_eq!(end.exit_code, Some(3));
        assert_eq!(end.outcome, Outcome::Failed);
    }
}
