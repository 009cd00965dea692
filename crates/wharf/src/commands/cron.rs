//! `wharf cron list|runs|run`: the app's cron entries and their runs (each
//! a job of the queue; its output is `wharf job logs JOB`).

use anyhow::Result;
use wharf_server::client::Client;

use crate::cli::CronCommand;
use crate::output;

pub async fn run(client: &Client, command: CronCommand) -> Result<()> {
    match command {
        CronCommand::List { app, json } => {
            let app = super::resolve_app(client, app).await?;
            let entries = client.cron(&app).await?;
            if json {
                output::json(&entries);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = entries
                .iter()
                .map(|e| {
                    vec![
                        e.name.clone(),
                        format!("{} ({})", e.schedule, e.time_zone),
                        e.next_ms
                            .map(output::rfc3339)
                            .unwrap_or_else(|| "never".into()),
                        e.last
                            .as_ref()
                            .map(|j| format!("job {} {}", j.id, j.state))
                            .unwrap_or_else(|| "-".into()),
                        e.process.clone(),
                        e.command.clone(),
                    ]
                })
                .collect();
            output::data(&output::table(
                &["ENTRY", "SCHEDULE", "NEXT", "LAST", "PROCESS", "COMMAND"],
                &rows,
            ));
        }
        CronCommand::Runs {
            name,
            app,
            limit,
            json,
        } => {
            let app = super::resolve_app(client, app).await?;
            let runs = client.cron_runs(&app, &name, limit).await?;
            if json {
                output::json(&runs);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = runs
                .iter()
                .map(|j| {
                    vec![
                        j.id.to_string(),
                        j.scheduled_ms.map(output::rfc3339).unwrap_or_default(),
                        j.state.to_string(),
                        j.exit_code.map(|c| c.to_string()).unwrap_or_default(),
                        j.duration_ms()
                            .map(|ms| format!("{:.2}s", ms as f64 / 1000.0))
                            .unwrap_or_default(),
                        j.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            output::data(&output::table(
                &["JOB", "SCHEDULED", "STATE", "EXIT", "TOOK", "NOTE"],
                &rows,
            ));
        }
        CronCommand::Run { name, app } => {
            let app = super::resolve_app(client, app).await?;
            let queued = client.cron_run(&app, &name).await?;
            output::note(&format!(
                "queued {name} of {app} as job {}; its output: `wharf job logs -f {}`",
                queued.job, queued.job
            ));
        }
    }
    Ok(())
}
