//! What a running job's progress leaves in the store: every step of its
//! deploy flow (build, start instances, health checks, switch…) as a
//! recorded job step, every line as a log line.
//!
//! Each step row carries, as its `data`, the deploy it belongs to
//! (`{"deploy":N,"release":R,"kind":K}`), written when the step starts: a
//! resumed attempt reads it to know whether the interrupted deploy had
//! passed its commit point ([`first_deploy`]).

use serde::{Deserialize, Serialize};
use wharf_jobs::{JobId, LogStream, StepState};
use wharf_store::{JobStepRow, StepEnd, now_ms};

use crate::{Engine, Progress};

/// The deploy a job step belongs to, as recorded in the step's `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StepData {
    pub deploy: i64,
    pub release: i64,
    pub kind: String,
}

/// The first deploy a job ran, from its recorded steps: the job's own
/// (a resumed attempt's restore comes after it).
pub(super) fn first_deploy(steps: &[JobStepRow]) -> Option<StepData> {
    steps
        .iter()
        .find_map(|s| serde_json::from_str(s.data.as_deref()?).ok())
}

/// Where a job's recording is: its deploy, the step still open, and the
/// CI steps running (several at once in a parallel group).
#[derive(Debug, Default)]
pub(super) struct Recorder {
    deploy: Option<StepData>,
    /// (seq, what to say of it when it succeeds).
    open: Option<(i64, Option<String>)>,
    ci: std::collections::HashMap<String, i64>,
}

impl Engine {
    /// Keeps what progress `p` of job `id` says (see the module doc).
    pub(super) fn record_progress(&self, owner: &str, id: JobId, p: &Progress, rec: &mut Recorder) {
        let now = now_ms();
        let mut log_step = rec.open.as_ref().map(|(seq, _)| *seq);
        let (stream, line) = match p {
            Progress::Stage { name, detail } => {
                self.close_step(owner, id, rec, StepState::Succeeded, None);
                match self.store.record_step_start(id, owner, name, None, now) {
                    Ok(seq) => rec.open = Some((seq, detail.clone())),
                    Err(e) => tracing::warn!(job = id, error = %e, "could not record a job step"),
                }
                log_step = rec.open.as_ref().map(|(seq, _)| *seq);
                (
                    LogStream::System,
                    match detail {
                        Some(d) => format!("{name}: {d}"),
                        None => name.clone(),
                    },
                )
            }
            Progress::CiStep { name, group, run } => {
                let label = match group {
                    Some(g) => format!("ci {g}/{name}"),
                    None => format!("ci {name}"),
                };
                match self.store.record_step_start(id, owner, &label, None, now) {
                    Ok(seq) => {
                        rec.ci.insert(name.clone(), seq);
                        log_step = Some(seq);
                    }
                    Err(e) => tracing::warn!(job = id, error = %e, "could not record a job step"),
                }
                (LogStream::System, format!("{label}: {run}"))
            }
            Progress::CiOutput { step: name, line } => {
                log_step = rec.ci.get(name).copied();
                (LogStream::Stdout, line.clone())
            }
            Progress::CiStepEnd {
                name,
                ok,
                status,
                line,
            } => {
                log_step = rec.ci.remove(name);
                if let Some(seq) = log_step {
                    let state = match (*ok, status.as_str()) {
                        (true, _) => StepState::Succeeded,
                        (false, "skipped") => StepState::Skipped,
                        (false, "interrupted" | "stopped") => StepState::Interrupted,
                        (false, _) => StepState::Failed,
                    };
                    let end = StepEnd {
                        state,
                        detail: Some(line),
                        data: None,
                    };
                    if let Err(e) = self.store.record_step_finish(id, owner, seq, &end, now) {
                        tracing::warn!(job = id, error = %e, "could not record the end of a job step");
                    }
                }
                (LogStream::System, line.clone())
            }
            Progress::Started {
                deploy,
                release,
                kind,
                ..
            } => {
                self.close_step(owner, id, rec, StepState::Succeeded, None);
                let data = StepData {
                    deploy: *deploy,
                    release: *release,
                    kind: kind.clone(),
                };
                let line = format!("{kind} {deploy} of release {release} started");
                self.open_step(owner, id, rec, &format!("{kind} {deploy}"), data);
                log_step = rec.open.as_ref().map(|(seq, _)| *seq);
                (LogStream::System, line)
            }
            Progress::Step { step, detail } => {
                self.close_step(owner, id, rec, StepState::Succeeded, None);
                if let Some(data) = rec.deploy.clone() {
                    self.open_step(owner, id, rec, step.label(), data);
                    if let Some((_, said)) = &mut rec.open {
                        said.clone_from(detail);
                    }
                }
                log_step = rec.open.as_ref().map(|(seq, _)| *seq);
                (
                    LogStream::System,
                    match detail {
                        Some(d) => format!("{}: {d}", step.label()),
                        None => step.label().to_owned(),
                    },
                )
            }
            Progress::Output { line, stderr } => (
                if *stderr {
                    LogStream::Stderr
                } else {
                    LogStream::Stdout
                },
                line.clone(),
            ),
            Progress::Queued { .. } => return,
            Progress::Finished { ok, message, .. } => {
                let state = if *ok {
                    StepState::Succeeded
                } else {
                    StepState::Failed
                };
                self.close_step(owner, id, rec, state, (!*ok).then_some(message.as_str()));
                (LogStream::System, message.clone())
            }
        };
        let _ = self
            .store
            .append_step_log(id, log_step, stream, &[line.as_str()], now);
    }

    fn open_step(&self, owner: &str, id: JobId, rec: &mut Recorder, name: &str, data: StepData) {
        let json = serde_json::to_string(&data).ok();
        match self
            .store
            .record_step_start(id, owner, name, json.as_deref(), now_ms())
        {
            Ok(seq) => rec.open = Some((seq, None)),
            Err(e) => tracing::warn!(job = id, error = %e, "could not record a job step"),
        }
        rec.deploy = Some(data);
    }

    fn close_step(
        &self,
        owner: &str,
        id: JobId,
        rec: &mut Recorder,
        state: StepState,
        failure: Option<&str>,
    ) {
        let Some((seq, said)) = rec.open.take() else {
            return;
        };
        let detail = failure.map(str::to_owned).or(said);
        let end = StepEnd {
            state,
            detail: detail.as_deref(),
            data: None,
        };
        if let Err(e) = self
            .store
            .record_step_finish(id, owner, seq, &end, now_ms())
        {
            tracing::warn!(job = id, error = %e, "could not record the end of a job step");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(seq: i64, data: Option<&str>) -> JobStepRow {
        JobStepRow {
            job_id: 1,
            seq,
            attempt: 1,
            name: format!("step {seq}"),
            state: StepState::Succeeded,
            started_ms: 0,
            finished_ms: None,
            detail: None,
            data: data.map(str::to_owned),
        }
    }

    #[test]
    fn the_first_recorded_deploy_is_the_jobs_own() {
        let own = r#"{"deploy":7,"release":3,"kind":"deploy"}"#;
        let restore = r#"{"deploy":9,"release":2,"kind":"restore"}"#;
        let steps = [step(1, None), step(2, Some(own)), step(3, Some(restore))];
        assert_eq!(
            first_deploy(&steps),
            Some(StepData {
                deploy: 7,
                release: 3,
                kind: "deploy".into()
            })
        );
        assert_eq!(first_deploy(&[step(1, Some("not json"))]), None);
        assert_eq!(first_deploy(&[]), None);
    }
}
