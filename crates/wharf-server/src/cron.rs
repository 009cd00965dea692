//! The cron endpoints: `GET /v1/apps/{app}/cron` (the serving release's
//! entries, their next time and last run), `GET
//! /v1/apps/{app}/cron/{name}/runs?limit=N` (its runs, newest first, skipped
//! ones included) and `POST /v1/apps/{app}/cron/{name}/run` (a run now,
//! through the queue).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use wharf_store::JobRow;

use crate::api::{CronQueued, CronView};
use crate::http::{AppState, Failure, engine_failure};

pub(crate) async fn list(
    State(s): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<CronView>>, Failure> {
    let (config, _) = s.engine.app_config(&app).map_err(engine_failure)?;
    let now = wharf_store::now_ms();
    let runs = s.engine.store().jobs(Some(&app), 1000)?;
    let views = config
        .cron
        .values()
        .map(|e| CronView {
            name: e.name.clone(),
            schedule: e.schedule.expr().to_owned(),
            time_zone: e.schedule.time_zone().name().to_owned(),
            command: e.command.clone(),
            process: e.process.clone(),
            catch_up: e.catch_up,
            next_ms: e.schedule.next_after(now),
            last: runs
                .iter()
                .find(|j| j.cron_entry.as_deref() == Some(e.name.as_str()))
                .cloned(),
        })
        .collect();
    Ok(Json(views))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunsQuery {
    limit: Option<usize>,
}

pub(crate) async fn runs(
    State(s): State<AppState>,
    Path((app, name)): Path<(String, String)>,
    Query(q): Query<RunsQuery>,
) -> Result<Json<Vec<JobRow>>, Failure> {
    s.engine.store().app(&app)?;
    let limit = q.limit.unwrap_or(20).min(1000);
    let runs: Vec<JobRow> = s
        .engine
        .store()
        .jobs(Some(&app), 5000)?
        .into_iter()
        .filter(|j| j.cron_entry.as_deref() == Some(name.as_str()))
        .take(limit)
        .collect();
    Ok(Json(runs))
}

pub(crate) async fn run(
    State(s): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> Result<Json<CronQueued>, Failure> {
    let job = s.engine.run_cron_now(&app, &name).map_err(|e| match e {
        wharf_deploy::DeployError::NoCronEntry { .. } => {
            Failure(StatusCode::NOT_FOUND, e.to_string())
        }
        e => engine_failure(e),
    })?;
    Ok(Json(CronQueued { job }))
}
