//! `wharf ci runs [APP]` and `wharf ci logs RUN [STEP]`: the server's
//! pipelines (pushes to a watched branch: fetch, CI steps, deploy), each a
//! job of the queue, and the log of one of its steps.

use anyhow::Result;
use clap::Subcommand;
use wharf_server::client::Client;

use crate::{Exit, output};

#[derive(Debug, Subcommand)]
pub enum CiCommand {
    /// The server's pipelines, newest first: commit, branch, how each ended.
    Runs {
        /// Only this app's.
        app: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// A pipeline's log, or one step's (a CI step's name, or `fetch`,
    /// `build`, `health checks`…).
    Logs {
        /// The pipeline's job id (`wharf ci runs`).
        run: i64,
        step: Option<String>,
        /// Keep following until the pipeline ends (whole log only).
        #[arg(long, short)]
        follow: bool,
    },
}

pub async fn run(client: &Client, command: CiCommand) -> Result<()> {
    match command {
        CiCommand::Runs { app, limit, json } => {
            // Pipelines are among the app's other jobs: ask for enough.
            let jobs = client
                .jobs(app.as_deref(), limit.saturating_mul(5).max(50))
                .await?;
            let runs: Vec<_> = jobs
                .into_iter()
                .filter(|j| j.kind == wharf_jobs::JobKind::Pipeline)
                .take(limit as usize)
                .collect();
            if json {
                output::json(&runs);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|j| {
                    let args: serde_json::Value = serde_json::from_str(&j.args).unwrap_or_default();
                    let text = |k: &str| args[k].as_str().unwrap_or_default().to_owned();
                    let took = j
                        .duration_ms()
                        .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                        .unwrap_or_default();
                    vec![
                        j.id.to_string(),
                        j.app.clone(),
                        text("commit").chars().take(12).collect(),
                        text("branch"),
                        j.state.to_string(),
                        output::ago(j.created_ms),
                        took,
                        j.error
                            .as_deref()
                            .and_then(|e| e.lines().next())
                            .unwrap_or_default()
                            .to_owned(),
                    ]
                })
                .collect();
            output::data(&output::table(
                &[
                    "RUN", "APP", "COMMIT", "BRANCH", "STATE", "QUEUED", "TOOK", "NOTE",
                ],
                &rows,
            ));
        }
        CiCommand::Logs { run, step, follow } => {
            let view = client.job(run).await?;
            let seq = match &step {
                None => None,
                Some(name) => {
                    let found = view.steps.iter().find(|s| {
                        s.name == *name
                            || s.name == format!("ci {name}")
                            || s.name
                                .rsplit_once('/')
                                .is_some_and(|(g, n)| g.starts_with("ci ") && n == name)
                    });
                    match found {
                        Some(s) => Some(s.seq),
                        None => {
                            let names: Vec<&str> = view
                                .steps
                                .iter()
                                .map(|s| s.name.strip_prefix("ci ").unwrap_or(&s.name))
                                .collect();
                            return Err(Exit::Usage(format!(
                                "run {run} has no step {name:?}; its steps: {}",
                                names.join(", ")
                            ))
                            .into());
                        }
                    }
                }
            };
            let mut lines = client.job_logs(run, follow && seq.is_none()).await?;
            while let Some(line) = lines.next().await {
                let line = line?;
                if seq.is_none() || line.step == seq {
                    output::data(&line.line);
                }
            }
        }
    }
    Ok(())
}
