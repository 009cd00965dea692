//! The local API's handlers (axum), and the admin listener's `/metrics`.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use futures_util::stream;
use serde::Deserialize;
use serde::Serialize;
use tokio::sync::mpsc;
use wharf_deploy::{DeployError, DeployRequest, Engine, Progress};
use wharf_store::{ReleaseStatus, StoreError};

use crate::api::*;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub engine: Arc<Engine>,
    pub info: ServerInfo,
}

pub(crate) fn api_router(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/v1/status", get(status))
        .route("/v1/deploys", post(deploy))
        .route("/v1/apps/{app}/rollback", post(rollback))
        .route(
            "/v1/apps/{app}/promote",
            post(|s: State<AppState>, a: Path<String>| control(s, a, Control::Promote)),
        )
        .route(
            "/v1/apps/{app}/abort",
            post(|s: State<AppState>, a: Path<String>| control(s, a, Control::Abort)),
        )
        .route("/v1/apps/{app}/releases", get(releases))
        .route("/v1/apps/{app}/events", get(events))
        .route("/v1/apps/{app}/logs", get(logs))
        .with_state(state)
}

pub(crate) fn admin_router(registry: Arc<prometheus_client::registry::Registry>) -> axum::Router {
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    let mut text = String::new();
                    match prometheus_client::encoding::text::encode(&mut text, &registry) {
                        Ok(()) => (
                            [(
                                header::CONTENT_TYPE,
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            )],
                            text,
                        )
                            .into_response(),
                        Err(e) => {
                            (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
                        }
                    }
                }
            }),
        )
        .route("/healthz", get(|| async { "ok" }))
}

/// An API error: status and a message that says what to do.
pub(crate) struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(ApiError { error: self.1 })).into_response()
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::NoSuchApp(_) | StoreError::NoSuchRelease { .. } => StatusCode::NOT_FOUND,
            StoreError::DeployInProgress { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Failure(status, e.to_string())
    }
}

async fn status(State(s): State<AppState>) -> Result<Json<StatusResponse>, Failure> {
    Ok(Json(StatusResponse {
        server: s.info.clone(),
        apps: s.engine.status()?,
    }))
}

async fn deploy(State(s): State<AppState>, Json(body): Json<DeployBody>) -> Response {
    if !body.source_dir.is_absolute() {
        return Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "source_dir must be an absolute path, got {}",
                body.source_dir.display()
            ),
        )
        .into_response();
    }
    let req = DeployRequest {
        source_dir: body.source_dir,
        env: body.env,
        wait: body.wait,
        pause: body.pause,
    };
    progress_stream(move |tx| async move { s.engine.deploy(req, Some(tx)).await })
}

async fn rollback(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<RollbackBody>,
) -> Response {
    progress_stream(move |tx| async move {
        s.engine
            .rollback(&app, body.release, body.wait, Some(tx))
            .await
    })
}

async fn control(
    State(s): State<AppState>,
    Path(app): Path<String>,
    control: Control,
) -> Result<StatusCode, Failure> {
    s.engine.store().app(&app)?;
    s.engine
        .control(&app, control)
        .map_err(|e| Failure(StatusCode::CONFLICT, e.to_string()))?;
    Ok(StatusCode::NO_CONTENT)
}

/// Runs a deploy in its own task (a client that goes away does not stop
/// it) and streams its progress as NDJSON.
fn progress_stream<F, Fut>(f: F) -> Response
where
    F: FnOnce(wharf_deploy::ProgressTx) -> Fut,
    Fut: Future<Output = Result<wharf_deploy::DeployReport, DeployError>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel::<Progress>();
    tokio::spawn(f(tx));
    ndjson(rx)
}

fn ndjson<T: Serialize + Send + 'static>(rx: mpsc::UnboundedReceiver<T>) -> Response {
    let body = stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?;
        let mut line = serde_json::to_vec(&item).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Bytes::from(line)), rx))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(body),
    )
        .into_response()
}

async fn releases(
    State(s): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<ReleaseInfo>>, Failure> {
    let store = s.engine.store();
    let app = store.app(&app)?;
    let out = store
        .releases(app.id)?
        .into_iter()
        .map(|r| ReleaseInfo {
            status: match r.status {
                _ if Some(r.number) == app.current_release => "live".into(),
                ReleaseStatus::Ready => "retained".into(),
                other => other.to_string(),
            },
            number: r.number,
            revision: r.revision,
            created_ms: r.created_ms,
        })
        .collect();
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    limit: Option<u32>,
}

async fn events(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<EventInfo>>, Failure> {
    let store = s.engine.store();
    let app = store.app(&app)?;
    let out = store
        .events(Some(app.id), q.limit.unwrap_or(50).min(10_000))?
        .into_iter()
        .map(|e| EventInfo {
            at_ms: e.at_ms,
            level: e.level.to_string(),
            deploy: e.deploy_id,
            message: e.message,
        })
        .collect();
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
struct LogsQuery {
    process: Option<String>,
    tail: Option<usize>,
    #[serde(default)]
    follow: bool,
}

async fn logs(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, Failure> {
    let app = s.engine.store().app(&app)?.name;
    let runtime = s.engine.runtime().clone();
    // Subscribe before reading the tail so no line falls in between.
    let live = runtime.log_lines();
    let tail = runtime
        .tail_logs(
            &app,
            q.process.as_deref(),
            q.tail.unwrap_or(100).min(100_000),
        )
        .await
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (tx, rx) = mpsc::unbounded_channel::<LogLineOut>();
    let last_at = tail.last().map(|l| l.at_ms);
    for line in tail {
        let _ = tx.send(line.into());
    }
    if q.follow {
        tokio::spawn(async move {
            let mut live = live;
            loop {
                match live.recv().await {
                    Ok(l) if l.app == app && q.process.as_ref().is_none_or(|p| *p == l.process) => {
                        // Lines already sent in the tail are older than its last one.
                        if last_at.is_some_and(|t| l.at_ms < t) {
                            continue;
                        }
                        if tx.send(l.into()).is_err() {
                            return;
                        }
                    }
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
    } else {
        drop(tx);
    }
    Ok(ndjson(rx))
}
