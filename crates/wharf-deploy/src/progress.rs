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
    /// A line of output of the build or release command.
    Output { line: String },
    /// The deploy ended; the last message of a stream.
    Finished {
        ok: bool,
        message: String,
        report: Option<DeployReport>,
    },
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
