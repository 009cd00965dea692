//! What a deploy reports while it runs, and when it ends. These are also
//! the API's wire types (newline-delimited JSON).

use serde::{Deserialize, Serialize};

use crate::Step;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Progress {
    /// The job is queued (as `job`); `behind`: the app's running job it
    /// waits for.
    Queued { job: i64, behind: Option<i64> },
    /// The deploy has a number and a target release.
    Started {
        deploy: i64,
        app: String,
        release: i64,
        kind: String,
    },
    /// A step began.
    Step { step: Step, detail: Option<String> },
    /// A line of output of the build, the release command or a one-off
    /// run (`stderr`: it came on the command's stderr).
    Output {
        line: String,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        stderr: bool,
    },
    /// A pipeline's stage began: `fetch`, `ci` (a deploy's own steps
    /// follow `Started`).
    Stage {
        name: String,
        detail: Option<String>,
    },
    /// A CI step of a pipeline began (`group`: the parallel group it runs in).
    CiStep {
        name: String,
        group: Option<String>,
        run: String,
    },
    /// A line of a CI step's output (stdout and stderr as written, masked).
    CiOutput { step: String, line: String },
    /// A CI step ended: its pass or fail line.
    CiStepEnd {
        name: String,
        ok: bool,
        /// `passed`, `failed`, `stopped`, `interrupted`, `skipped`.
        status: String,
        line: String,
    },
    /// The deploy ended; the last message of a stream.
    Finished {
        ok: bool,
        message: String,
        report: Option<DeployReport>,
        /// A one-off or cron run's exit code (128 + signal when killed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i64>,
    },
}

impl Progress {
    /// A line of output on stdout.
    pub fn output(line: impl Into<String>) -> Self {
        Progress::Output {
            line: line.into(),
            stderr: false,
        }
    }

    /// The last message of a stream with no report.
    pub fn finished(ok: bool, message: impl Into<String>) -> Self {
        Progress::Finished {
            ok,
            message: message.into(),
            report: None,
            exit_code: None,
        }
    }
}

/// A successful deploy or rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployReport {
    pub deploy: i64,
    pub app: String,
    /// `deploy`, `rollback` or `restore`.
    pub kind: String,
    pub release: i64,
    pub previous: Option<i64>,
    pub duration_ms: u64,
    /// Requests still in flight on the old release when the drain timed out.
    pub abandoned_requests: usize,
}

impl DeployReport {
    /// One line: "hello deployed release 3 in 2.1s".
    pub fn summary(&self) -> String {
        let verb = match self.kind.as_str() {
            "rollback" => "rolled back to",
            "restore" => "restored",
            _ => "deployed",
        };
        format!(
            "{} {verb} release {} in {:.1}s",
            self.app,
            self.release,
            self.duration_ms as f64 / 1000.0
        )
    }
}
