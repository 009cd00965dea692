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
use wharf_config::AppConfig;
use wharf_deploy::{DeployError, Engine, JobArgs};
use wharf_runtime::Runtime;
use wharf_store::{ReleaseStatus, StoreError};

use crate::api::*;
use crate::remote::Caller;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub engine: Arc<Engine>,
    pub info: ServerInfo,
    /// Bytes of file content an uploaded source may hold.
    pub upload_limit: u64,
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
        .route("/v1/apps/{app}/accessories", get(accessories))
        .route(
            "/v1/apps/{app}/accessories/{name}/logs",
            get(accessory_logs),
        )
        .route(
            "/v1/apps/{app}/accessories/{name}/{action}",
            post(crate::tasks::accessory),
        )
        .route("/v1/apps/{app}/run", post(crate::tasks::run))
        .route("/v1/apps/{app}/maintenance", post(maintenance))
        .route("/v1/apps/{app}/exec", post(exec))
        .route("/v1/prune", post(prune))
        .route("/v1/certs", get(certs))
        .route("/v1/apps/{app}", axum::routing::delete(remove_app))
        .route(
            "/v1/sources/{sha256}",
            get(crate::sources::get)
                .put(crate::sources::put)
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/v1/apps/{app}/cron", get(crate::cron::list))
        .route("/v1/apps/{app}/cron/{name}/runs", get(crate::cron::runs))
        .route("/v1/apps/{app}/cron/{name}/run", post(crate::cron::run))
        .route("/v1/jobs", get(crate::jobs::list))
        .route("/v1/jobs/{id}", get(crate::jobs::show))
        .route("/v1/jobs/{id}/logs", get(crate::jobs::logs))
        .route("/v1/jobs/{id}/cancel", post(crate::jobs::cancel))
        .route("/v1/tokens", get(tokens).post(create_token))
        .route("/v1/tokens/{id}", axum::routing::delete(revoke_token))
        .route("/v1/apps/{app}/volumes", get(volumes))
        .route(
            "/v1/apps/{app}/volumes/{name}",
            axum::routing::delete(remove_volume),
        )
        .merge(crate::hooks::routes())
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
pub(crate) struct Failure(pub(crate) StatusCode, pub(crate) String);

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

async fn deploy(
    State(s): State<AppState>,
    caller: Caller,
    Json(body): Json<DeployBody>,
) -> Response {
    let mut version = body.version;
    let mut label = None;
    let source_dir = match (&body.source_dir, &body.upload, &body.git) {
        (None, None, Some(git)) => {
            let local = matches!(caller, Caller::Local);
            let sources = s.info.data_dir.join(crate::sources::SOURCES_DIR);
            match wharf_source::git::fetch(&sources, &git.url, &git.reference, local).await {
                Ok((dir, commit)) => {
                    version.get_or_insert_with(|| commit.chars().take(12).collect());
                    label = Some(format!("git {} {commit}", git.url));
                    dir
                }
                Err(e) => {
                    let status = if e.is_callers() {
                        StatusCode::BAD_REQUEST
                    } else {
                        StatusCode::INTERNAL_SERVER_ERROR
                    };
                    return Failure(status, e.to_string()).into_response();
                }
            }
        }
        (Some(dir), None, None) => {
            if let Err(f) = caller.may_name_server_paths() {
                return f.into_response();
            }
            if !dir.is_absolute() {
                return Failure(
                    StatusCode::BAD_REQUEST,
                    format!("source_dir must be an absolute path, got {}", dir.display()),
                )
                .into_response();
            }
            dir.clone()
        }
        (None, Some(sha256), None) => match crate::sources::source_dir(&s.info.data_dir, sha256) {
            Ok(dir) if dir.is_dir() => {
                label = Some(format!("upload sha256:{}", sha256.to_ascii_lowercase()));
                dir
            }
            Ok(_) => {
                return Failure(
                    StatusCode::NOT_FOUND,
                    format!("no source {sha256} was uploaded; PUT /v1/sources/{sha256} first"),
                )
                .into_response();
            }
            Err(f) => return f.into_response(),
        },
        _ => {
            return Failure(
                StatusCode::BAD_REQUEST,
                "a deploy names its source: `source_dir` (local callers), `upload` (the hash of an uploaded source) or `git` (a repository and ref the server fetches), one of them".into(),
            )
            .into_response();
        }
    };
    // The app it is: an app-limited token deploys only its app.
    let app = match AppConfig::load(&source_dir) {
        Ok(config) => config.name,
        Err(e) => return Failure(StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    if let Err(f) = caller.may_use_app(&app) {
        return f.into_response();
    }
    let args = JobArgs::Deploy {
        source_dir,
        env: body.env,
        pause: body.pause,
        version,
        image: body.image,
        source: label,
    };
    match s.engine.submit(&app, args) {
        Ok(submitted) => ndjson(submitted.progress),
        Err(e) => engine_failure(e).into_response(),
    }
}

async fn rollback(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<RollbackBody>,
) -> Response {
    if let Err(e) = s.engine.check_rollback(&app, body.release) {
        return engine_failure(e).into_response();
    }
    match s.engine.submit(
        &app,
        JobArgs::Rollback {
            release: body.release,
        },
    ) {
        Ok(submitted) => ndjson(submitted.progress),
        Err(e) => engine_failure(e).into_response(),
    }
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

pub(crate) fn ndjson<T: Serialize + Send + 'static>(rx: mpsc::UnboundedReceiver<T>) -> Response {
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
    let routed = s.engine.routed_release(&app.name);
    let out = store
        .releases(app.id)?
        .into_iter()
        .map(|r| ReleaseInfo {
            status: match r.status {
                _ if Some(r.number) == routed => "live".into(),
                // The store's serving release, not routed: being restored,
                // or its restore failed (`wharf status` says which).
                _ if Some(r.number) == app.current_release => "not serving".into(),
                ReleaseStatus::Ready => "retained".into(),
                other => other.to_string(),
            },
            number: r.number,
            revision: r.revision,
            created_ms: r.created_ms,
            source: r.source,
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

/// Engine errors the client caused (unknown names, nothing serving) are
/// 4xx; the rest (engine unreachable, store) 5xx.
pub(crate) fn engine_failure(e: DeployError) -> Failure {
    let status = match &e {
        DeployError::NoAccessory { .. }
        | DeployError::NoProcess { .. }
        | DeployError::NoVolume { .. }
        | DeployError::NotServing { .. } => StatusCode::NOT_FOUND,
        DeployError::VolumeInUse { .. } => StatusCode::CONFLICT,
        DeployError::Config(_) | DeployError::Secret { .. } => StatusCode::BAD_REQUEST,
        DeployError::InProgress { .. } => StatusCode::CONFLICT,
        DeployError::QueueFull(_) => StatusCode::TOO_MANY_REQUESTS,
        DeployError::NoRollbackTarget { .. } => StatusCode::CONFLICT,
        DeployError::Store(StoreError::NoSuchApp(_)) => StatusCode::NOT_FOUND,
        DeployError::Runtime(wharf_runtime::RuntimeError::Unsupported { .. }) => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure(status, e.to_string())
}

/// The app's config: from the `wharf.toml` in `source_dir` if given, else
/// the one its serving (or newest) release was made with.
fn app_config(
    s: &AppState,
    caller: &Caller,
    app: &str,
    source_dir: Option<&std::path::Path>,
) -> Result<AppConfig, Failure> {
    app_source(s, caller, app, source_dir).map(|(config, _)| config)
}

/// [`app_config`], and the directory it was read from.
pub(crate) fn app_source(
    s: &AppState,
    caller: &Caller,
    app: &str,
    source_dir: Option<&std::path::Path>,
) -> Result<(AppConfig, std::path::PathBuf), Failure> {
    let dir = match source_dir {
        Some(dir) => {
            caller.may_name_server_paths()?;
            dir.to_path_buf()
        }
        None => return s.engine.app_config(app).map_err(engine_failure),
    };
    let config = AppConfig::load(&dir)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.to_string()))?
        .with_volume_paths(&dir);
    if config.name != app {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!(
                "{} describes app {:?}, not {app:?}",
                dir.join(wharf_config::FILE_NAME).display(),
                config.name
            ),
        ));
    }
    Ok((config, dir))
}

#[derive(Debug, Deserialize)]
struct SourceQuery {
    source_dir: Option<std::path::PathBuf>,
}

async fn accessories(
    State(s): State<AppState>,
    caller: Caller,
    Path(app): Path<String>,
    Query(q): Query<SourceQuery>,
) -> Result<Json<Vec<AccessoryStatus>>, Failure> {
    let config = app_config(&s, &caller, &app, q.source_dir.as_deref())?;
    Ok(Json(
        s.engine
            .accessories(&config)
            .await
            .map_err(engine_failure)?,
    ))
}

#[derive(Debug, Deserialize)]
struct AccessoryLogsQuery {
    source_dir: Option<std::path::PathBuf>,
    tail: Option<usize>,
    #[serde(default)]
    follow: bool,
}

async fn accessory_logs(
    State(s): State<AppState>,
    caller: Caller,
    Path((app, name)): Path<(String, String)>,
    Query(q): Query<AccessoryLogsQuery>,
) -> Result<Response, Failure> {
    let config = app_config(&s, &caller, &app, q.source_dir.as_deref())?;
    let (tx, mut rx) = mpsc::channel::<wharf_runtime::LogLine>(256);
    let engine = s.engine.clone();
    let tail = q.tail.unwrap_or(100).min(100_000);
    // Errors before the first line (no such accessory, no container) are
    // answered as errors; the stream follows once it has started.
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let result = engine
            .accessory_logs(&config, &name, tail, q.follow, tx)
            .await;
        let _ = first_tx.send(result);
    });
    let (out_tx, out_rx) = mpsc::unbounded_channel::<LogLineOut>();
    let first = tokio::select! {
        line = rx.recv() => line,
        result = first_rx => {
            if let Ok(Err(e)) = result {
                return Err(engine_failure(e));
            }
            rx.recv().await
        }
    };
    tokio::spawn(async move {
        let mut next = first;
        while let Some(line) = next {
            if out_tx.send(line.into()).is_err() {
                return;
            }
            next = rx.recv().await;
        }
    });
    Ok(ndjson(out_rx))
}

/// Streams a command's output lines, then its exit code (or error).
fn command_stream<F, Fut>(f: F) -> Response
where
    F: FnOnce(mpsc::Sender<wharf_runtime::LogLine>) -> Fut,
    Fut: Future<Output = Result<i64, DeployError>> + Send + 'static,
{
    let (line_tx, mut line_rx) = mpsc::channel::<wharf_runtime::LogLine>(256);
    let (tx, rx) = mpsc::unbounded_channel::<CommandOutput>();
    let fut = f(line_tx);
    tokio::spawn(async move {
        let forward = {
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Some(line) = line_rx.recv().await {
                    let _ = tx.send(CommandOutput::Line(line.into()));
                }
            })
        };
        let result = fut.await;
        // The sender side is gone once `fut` is done: drain what is left.
        let _ = forward.await;
        let _ = tx.send(match result {
            Ok(code) => CommandOutput::Exit(code),
            Err(e) => CommandOutput::Error(e.to_string()),
        });
    });
    ndjson(rx)
}

/// `run`/`exec` need a known app and a command.
pub(crate) fn check_command(s: &AppState, app: &str, argv: &[String]) -> Result<(), Failure> {
    s.engine.store().app(app)?;
    if argv.is_empty() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "nothing to run: give a command after `--`".into(),
        ));
    }
    Ok(())
}

async fn exec(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<ExecBody>,
) -> Result<Response, Failure> {
    check_command(&s, &app, &body.argv)?;
    Ok(command_stream(move |tx| async move {
        s.engine
            .exec(&app, &body.process, body.index, body.argv, tx)
            .await
    }))
}

#[derive(Debug, Deserialize)]
struct RemoveQuery {
    #[serde(default)]
    volumes: bool,
}

async fn remove_app(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> Result<Json<RemovedApp>, Failure> {
    s.engine.store().app(&app)?;
    let removed = s
        .engine
        .remove_app(&app, q.volumes)
        .await
        .map_err(engine_failure)?;
    if let Err(e) = crate::hooks::secrets::forget(&s.info.data_dir, &app) {
        tracing::warn!(app, error = %e, "could not remove the app's hook secret and forge token");
    }
    Ok(Json(removed))
}

async fn volumes(
    State(s): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<Vec<VolumeView>>, Failure> {
    s.engine.store().app(&app)?;
    Ok(Json(s.engine.volumes(&app).await.map_err(engine_failure)?))
}

async fn remove_volume(
    State(s): State<AppState>,
    Path((app, name)): Path<(String, String)>,
) -> Result<StatusCode, Failure> {
    s.engine.store().app(&app)?;
    s.engine
        .remove_volume(&app, &name)
        .await
        .map_err(engine_failure)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn maintenance(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<MaintenanceBody>,
) -> Result<StatusCode, Failure> {
    s.engine.store().app(&app)?;
    s.engine
        .set_maintenance(&app, body.on, body.message.as_deref())
        .map_err(engine_failure)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn certs(State(s): State<AppState>) -> Result<Json<Vec<CertView>>, Failure> {
    let Some(certs) = s.engine.certificates() else {
        return Ok(Json(Vec::new()));
    };
    let list = certs
        .manager
        .certs()
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(Json(
        list.into_iter()
            .map(|c| CertView {
                ordering: certs.manager.is_ordering(&c.host),
                source: match c.source {
                    wharf_tls::CertSource::Acme => "acme".into(),
                    wharf_tls::CertSource::Files => "files".into(),
                },
                host: c.host,
                issuer: c.issuer,
                not_after: c.not_after,
                last_error: c.last_error,
                next_attempt: c.next_attempt,
            })
            .collect(),
    ))
}

async fn prune(State(s): State<AppState>) -> Result<Json<PruneReport>, Failure> {
    let mut report = s.engine.prune().await.map_err(engine_failure)?;
    let keep: Vec<std::path::PathBuf> = s
        .engine
        .store()
        .apps()?
        .into_iter()
        .map(|a| std::path::PathBuf::from(a.source_dir))
        .collect();
    let (sources, bytes) = crate::sources::prune(&s.info.data_dir, &keep).await;
    report.sources = sources;
    report.reclaimed_bytes += bytes;
    Ok(Json(report))
}

async fn tokens(State(s): State<AppState>) -> Result<Json<Vec<TokenInfo>>, Failure> {
    Ok(Json(s.engine.store().tokens()?))
}

async fn create_token(
    State(s): State<AppState>,
    Json(body): Json<TokenBody>,
) -> Result<Json<TokenCreated>, Failure> {
    let scope: wharf_auth::Scope = body
        .scope
        .parse()
        .map_err(|m| Failure(StatusCode::BAD_REQUEST, m))?;
    if let Some(app) = &body.app {
        wharf_config::validate_app_name(app).map_err(|m| Failure(StatusCode::BAD_REQUEST, m))?;
    }
    let made = wharf_auth::token::generate()
        .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let expires_ms = body
        .expires_in_secs
        .map(|secs| wharf_store::now_ms().saturating_add(secs.saturating_mul(1000) as i64));
    let row = s.engine.store().create_token(&wharf_store::NewToken {
        id: &made.id,
        secret_hash: &made.secret_hash,
        name: &body.name,
        scope: scope.as_str(),
        app: body.app.as_deref(),
        expires_ms,
    })?;
    tracing::info!(token = %row.id, scope = %row.scope, app = ?row.app, "API token created");
    Ok(Json(TokenCreated {
        token: row,
        secret: made.plain,
    }))
}

async fn revoke_token(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, Failure> {
    if s.engine.store().revoke_token(&id)? {
        tracing::info!(token = %id, "API token revoked");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no token `{id}`; `wharf token list` shows them"),
        ))
    }
}
