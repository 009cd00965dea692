//! `wharf jobs [APP]` and `wharf job show|logs|cancel ID`: the durable
//! queue's deploys and rollbacks, what they did and how they ended.

use anyhow::Result;
use wharf_server::client::Client;

use crate::Exit;
use crate::cli::{JobCommand, JobsArgs};
use crate::output;

pub async fn list(client: &Client, args: JobsArgs) -> Result<()> {
    let jobs = client.jobs(args.app.as_deref(), args.limit).await?;
    if args.json {
        output::json(&jobs);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            let took = j
                .duration_ms()
                .map(|ms| format!("{:.1}s", ms as f64 / 1000.0))
                .unwrap_or_default();
            let note = match (&j.superseded_by, &j.error) {
                (Some(by), _) => format!("superseded by job {by}"),
                (None, Some(e)) => first_line(e),
                _ => String::new(),
            };
            vec![
                j.id.to_string(),
                j.app.clone(),
                j.kind.to_string(),
                j.state.to_string(),
                output::ago(j.created_ms),
                took,
                note,
            ]
        })
        .collect();
    output::data(&output::table(
        &["JOB", "APP", "KIND", "STATE", "QUEUED", "TOOK", "NOTE"],
        &rows,
    ));
    Ok(())
}

pub async fn run(client: &Client, command: JobCommand) -> Result<()> {
    match command {
        JobCommand::Show { id, json } => {
            let view = client.job(id).await?;
            if json {
                output::json(&view);
                return Ok(());
            }
            let j = &view.job;
            let mut lines = vec![
                format!("job {} — {} of {}: {}", j.id, j.kind, j.app, j.state),
                format!("queued {}", output::ago(j.created_ms)),
            ];
            if let Some(ms) = j.duration_ms() {
                lines.push(format!("took {:.1}s", ms as f64 / 1000.0));
            }
            if j.attempts > 1 {
                lines.push(format!(
                    "attempts: {} (resumed after a restart)",
                    j.attempts
                ));
            }
            if let Some(by) = j.superseded_by {
                lines.push(format!("superseded by job {by}"));
            }
            if let Some(e) = &j.error {
                lines.push(format!("note: {e}"));
            }
            for s in &view.steps {
                lines.push(format!(
                    "  step {} ({}){}",
                    s.name,
                    s.state,
                    s.detail
                        .as_deref()
                        .map(|d| format!(": {}", first_line(d)))
                        .unwrap_or_default()
                ));
            }
            output::data(&lines.join("\n"));
        }
        JobCommand::Logs { id, follow } => {
            let mut lines = client.job_logs(id, follow).await?;
            while let Some(line) = lines.next().await {
                let line = line?;
                output::data(&format!("{} {}", line.stream, line.line));
            }
        }
        JobCommand::Cancel { id } => {
            let done = client.cancel_job(id).await.map_err(|e| match e {
                wharf_server::client::ClientError::Api {
                    status: 409,
                    message,
                } => anyhow::Error::from(Exit::Failed(message)),
                e => e.into(),
            })?;
            output::note(&done.message);
        }
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}
