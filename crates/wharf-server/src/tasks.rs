//! One-off runs (`POST /v1/apps/{app}/run`) and accessory actions
//! (`POST /v1/apps/{app}/accessories/{name}/{boot|stop|remove}`), as jobs
//! of the queue like every change to an app.
//!
//! A run is a job that runs beside the app's deploys; its output and exit
//! code are streamed as the `run` command's NDJSON lines
//! ([`CommandOutput`]), and kept with the job (`wharf job logs`). An
//! accessory action waits for the app's running job, then answers the
//! accessory's status.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use tokio::sync::mpsc;
use wharf_deploy::{AccessoryAction, DeployError, JobArgs, Progress};
use wharf_runtime::AccessoryStatus;

use crate::api::{AccessoryBody, CommandOutput, LogLineOut, RunBody};
use crate::http::{AppState, Failure, app_source, check_command, engine_failure, ndjson};
use crate::remote::Caller;

pub(crate) async fn run(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<RunBody>,
) -> Result<Response, Failure> {
    check_command(&s, &app, &body.argv)?;
    if let Some(process) = &body.process {
        let (config, _) = s.engine.app_config(&app).map_err(engine_failure)?;
        if !config.processes.contains_key(process) {
            return Err(Failure(
                StatusCode::BAD_REQUEST,
                format!(
                    "{app} has no process {process:?}: its processes are {}",
                    config
                        .processes
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
    }
    let args = JobArgs::run(&body.argv, body.process);
    let mut submitted = s.engine.submit(&app, args).map_err(engine_failure)?;
    let (tx, rx) = mpsc::unbounded_channel::<CommandOutput>();
    let job = submitted.job;
    tokio::spawn(async move {
        while let Some(p) = submitted.progress.recv().await {
            let out = match p {
                Progress::Output { line, stderr } => CommandOutput::Line(LogLineOut {
                    at_ms: wharf_store::now_ms().max(0) as u64,
                    release: 0,
                    process: "run".into(),
                    instance: format!("job {job}"),
                    stream: if stderr { "stderr" } else { "stdout" }.into(),
                    line,
                }),
                Progress::Finished {
                    exit_code: Some(code),
                    ..
                } => CommandOutput::Exit(code),
                Progress::Finished { message, .. } => CommandOutput::Error(message),
                Progress::Queued { .. }
                | Progress::Started { .. }
                | Progress::Step { .. }
                | Progress::Stage { .. }
                | Progress::CiStep { .. }
                | Progress::CiOutput { .. }
                | Progress::CiStepEnd { .. } => continue,
            };
            let last = !matches!(out, CommandOutput::Line(_));
            if tx.send(out).is_err() || last {
                return;
            }
        }
    });
    Ok(ndjson(rx))
}

pub(crate) async fn accessory(
    State(s): State<AppState>,
    caller: Caller,
    Path((app, name, action)): Path<(String, String, String)>,
    Json(body): Json<AccessoryBody>,
) -> Result<Json<AccessoryStatus>, Failure> {
    let action = match action.as_str() {
        "boot" => AccessoryAction::Boot,
        "stop" => AccessoryAction::Stop,
        "remove" => AccessoryAction::Remove {
            volumes: body.volumes,
        },
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no accessory action {other:?}: use boot, stop or remove"),
            ));
        }
    };
    let (config, dir) = app_source(&s, &caller, &app, body.source_dir.as_deref())?;
    if !config.accessories.contains_key(&name) {
        return Err(engine_failure(DeployError::NoAccessory {
            app: app.clone(),
            name,
            known: config.accessories.keys().cloned().collect(),
        }));
    }
    let args = JobArgs::Accessory {
        name: name.clone(),
        action,
        source_dir: dir,
    };
    let mut submitted = s.engine.submit(&app, args).map_err(engine_failure)?;
    let mut outcome = None;
    while let Some(p) = submitted.progress.recv().await {
        if let Progress::Finished { ok, message, .. } = p {
            outcome = Some((ok, message));
            break;
        }
    }
    match outcome {
        Some((true, _)) => {
            let statuses = s
                .engine
                .accessories(&config)
                .await
                .map_err(engine_failure)?;
            statuses
                .into_iter()
                .find(|a| a.name == name)
                .map(Json)
                .ok_or_else(|| {
                    Failure(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("accessory {name} of {app} has no status after the action"),
                    )
                })
        }
        Some((false, message)) => Err(Failure(StatusCode::CONFLICT, message)),
        None => Err(Failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "job {} of {app} ended without an outcome: see `wharf job show {}`",
                submitted.job, submitted.job
            ),
        )),
    }
}
