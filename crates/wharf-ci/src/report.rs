//! The outcome of a run: one [`StepReport`] per step, in the order of
//! `[ci] steps`, and whether the run passed. This is the JSON that `wharf
//! ci --json` prints and that scripts may rely on:
//!
//! ```json
//! {
//!   "ok": false,
//!   "interrupted": false,
//!   "duration_ms": 1530,
//!   "steps": [
//!     { "name": "Setup", "group": null, "run": "bin/setup", "status": "passed",
//!       "ok": true, "exit_code": 0, "signal": null, "error": null, "duration_ms": 520 },
//!     { "name": "Audit", "group": "Checks", "run": "bin/audit", "status": "failed",
//!       "ok": false, "exit_code": 1, "signal": null, "error": null, "duration_ms": 400 }
//!   ]
//! }
//! ```

use serde::{Deserialize, Serialize};

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// It exited 0.
    Passed,
    /// It exited non-zero, was killed by a signal, or could not start.
    Failed,
    /// `--fail-fast`: it was running beside a step that failed, and was
    /// stopped.
    Stopped,
    /// The run was cancelled (Ctrl-C, a newer push) while it ran.
    Interrupted,
    /// It never started: an earlier step failed with `--fail-fast`, or the
    /// run was cancelled first.
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Stopped => "stopped",
            Status::Interrupted => "interrupted",
            Status::Skipped => "skipped",
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepReport {
    pub name: String,
    /// The group it is in, if any.
    pub group: Option<String>,
    /// Its command, as in `run`.
    pub run: String,
    pub status: Status,
    /// Exactly when `status` is `passed`.
    pub ok: bool,
    /// The shell's exit code; `None` when it was killed by a signal or did
    /// not run.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// Why it could not start, if it could not.
    pub error: Option<String>,
    /// From its start to its end; 0 when it did not run.
    pub duration_ms: u64,
}

impl StepReport {
    /// A step that never started.
    pub fn skipped(name: &str, group: Option<&str>, run: &str) -> StepReport {
        StepReport {
            name: name.to_string(),
            group: group.map(str::to_string),
            run: run.to_string(),
            status: Status::Skipped,
            ok: false,
            exit_code: None,
            signal: None,
            error: None,
            duration_ms: 0,
        }
    }
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Every step passed.
    pub ok: bool,
    /// The run was cancelled before it ended.
    pub interrupted: bool,
    pub duration_ms: u64,
    /// Every step selected, in order, including those that did not run.
    pub steps: Vec<StepReport>,
}

impl Report {
    /// Builds the report of `steps`: `ok` when there is at least one and
    /// all passed.
    pub fn new(steps: Vec<StepReport>, interrupted: bool, duration_ms: u64) -> Report {
        Report {
            ok: !interrupted && !steps.is_empty() && steps.iter().all(|s| s.ok),
            interrupted,
            duration_ms,
            steps,
        }
    }

    /// The steps with `status`, in order.
    pub fn with_status(&self, status: Status) -> impl Iterator<Item = &StepReport> {
        self.steps.iter().filter(move |s| s.status == status)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn json_shape() {
        let report = Report::new(
            vec![
                StepReport {
                    name: "Setup".into(),
                    group: None,
                    run: "bin/setup".into(),
                    status: Status::Passed,
                    ok: true,
                    exit_code: Some(0),
                    signal: None,
                    error: None,
                    duration_ms: 520,
                },
                StepReport::skipped("Tests", Some("Checks"), "bin/test"),
            ],
            false,
            1530,
        );
        assert!(!report.ok);
        insta::assert_json_snapshot!(report);
        let back: Report = serde_json::from_value(serde_json::to_value(&report).unwrap()).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn ok_needs_steps_and_no_interruption() {
        assert!(!Report::new(Vec::new(), false, 0).ok);
        let passed = StepReport {
            status: Status::Passed,
            ok: true,
            exit_code: Some(0),
            ..StepReport::skipped("A", None, "true")
        };
        assert!(Report::new(vec![passed.clone()], false, 0).ok);
        assert!(!Report::new(vec![passed], true, 0).ok);
    }
}
