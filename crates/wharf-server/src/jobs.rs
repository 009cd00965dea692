//! The job endpoints: `GET /v1/jobs?app=A&limit=N`, `GET /v1/jobs/{id}`
//! (the job and its steps), `GET /v1/jobs/{id}/logs?after=SEQ&follow=B`
//! (NDJSON lines; with `follow`, until the job ends) and
//! `POST /v1/jobs/{id}/cancel`. An app-limited token sees and cancels
//! only its app's jobs.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use tokio::sync::mpsc;
use wharf_store::JobRow;

use crate::api::{JobCancelled, JobView};
use crate::http::{AppState, Failure, engine_failure, ndjson};
use crate::remote::Caller;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    app: Option<String>,
    limit: Option<u32>,
}

pub(crate) async fn list(
    State(s): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<JobRow>>, Failure> {
    if let Caller::Remote { grant, .. } = &caller
        && let Some(mine) = &grant.app
        && q.app.as_deref() != Some(mine.as_str())
    {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            format!(
                "this token is limited to the app `{mine}`: ask for its jobs (`wharf jobs {mine}`)"
            ),
        ));
    }
    let limit = q.limit.unwrap_or(50).min(1000);
    Ok(Json(s.engine.store().jobs(q.app.as_deref(), limit)?))
}

/// Job `id`, if the caller may see it.
fn job(s: &AppState, caller: &Caller, id: i64) -> Result<JobRow, Failure> {
    let job = s.engine.store().job(id)?.ok_or_else(|| {
        Failure(
            StatusCode::NOT_FOUND,
            format!("no job {id}; `wharf jobs` lists them"),
        )
    })?;
    caller.may_use_app(&job.app)?;
    Ok(job)
}

pub(crate) async fn show(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<JobView>, Failure> {
    let job = job(&s, &caller, id)?;
    let steps = s.engine.store().steps(id)?;
    Ok(Json(JobView { job, steps }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LogsQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    follow: bool,
}

pub(crate) async fn logs(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, Failure> {
    job(&s, &caller, id)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let store = s.engine.store().clone();
    tokio::spawn(async move {
        let mut after = q.after;
        loop {
            let lines = match store.logs(id, after, 1000) {
                Ok(l) => l,
                Err(_) => return,
            };
            for line in &lines {
                after = line.seq;
                if tx.send(line.clone()).is_err() {
                    return;
                }
            }
            if !lines.is_empty() {
                continue;
            }
            let ended = store
                .job(id)
                .ok()
                .flatten()
                .is_none_or(|j| j.state.is_terminal());
            if !q.follow || ended {
                // One more read: lines written as it ended.
                if let Ok(last) = store.logs(id, after, 1000) {
                    for line in last {
                        let _ = tx.send(line);
                    }
                }
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    Ok(ndjson(rx))
}

pub(crate) async fn cancel(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<i64>,
) -> Result<Json<JobCancelled>, Failure> {
    let job = job(&s, &caller, id)?;
    let action = s.engine.cancel_job(id).map_err(engine_failure)?;
    let said = match action {
        wharf_jobs::CancelAction::CancelNow => format!("job {id} was cancelled before it started"),
        wharf_jobs::CancelAction::RequestStop => format!(
            "job {id} is asked to stop: a {} stops at its next step before the switch, and the release that served before keeps serving",
            job.kind
        ),
        wharf_jobs::CancelAction::AlreadyEnded(state) => {
            return Err(Failure(
                StatusCode::CONFLICT,
                format!("job {id} already ended ({state}); nothing to cancel"),
            ));
        }
    };
    Ok(Json(JobCancelled {
        job: id,
        message: said,
    }))
}
