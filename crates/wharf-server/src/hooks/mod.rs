//! Push to deploy: forge webhooks at `POST /hooks/{app}`, and the API that
//! sets an app's hook secret and forge token and lists what came.
//!
//! | method & path | body | answer |
//! |---|---|---|
//! | `POST /hooks/{app}` | a forge's delivery, raw (at most [`MAX_BODY`]) | [`HookAnswer`]: 202 a pipeline was queued; 200 a ping, an ignored event or ref, a duplicate; 422 a push that cannot be read (recorded); else [`ApiError`](crate::api::ApiError): 400 no forge recognised, 401 no secret or a bad signature, 404 no such app, 413 too big, 429 queue full |
//! | `POST /v1/apps/{app}/hooks/secret` | | [`HookSecretCreated`], the only time the secret is shown (admin) |
//! | `PUT /v1/apps/{app}/hooks/forge-token` | [`ForgeTokenBody`] | [`HooksView`] (admin) |
//! | `GET /v1/apps/{app}/hooks` | | [`HooksView`] |
//! | `GET /v1/apps/{app}/hooks/deliveries?limit=N` | | [`DeliveriesView`], newest first |
//!
//! `POST /hooks/{app}` is the one endpoint of the https listener that
//! needs no bearer token: the delivery's signature authenticates it
//! ([`is_hook_request`], used by `remote::require_token`). How a delivery
//! is judged is in [`intake`]; where the secrets live in [`secrets`].

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::routing::{get, post, put};
use serde::{Deserialize, Serialize};
use wharf_forge::{Forge, Scheme};

use crate::http::{AppState, Failure};

mod intake;
pub(crate) mod secrets;

pub use wharf_store::{DeliveryRow as DeliveryInfo, HookOutcome, RefusalRow as RefusalInfo};

/// The largest delivery accepted: 5 MiB, room for a push of a couple of
/// thousand commits (GitHub's own cap is 25 MB, reached only by huge
/// multi-ref pushes); a larger one is answered 413 and not recorded.
pub const MAX_BODY: usize = 5 * 1024 * 1024;

/// Deliveries listed when no limit is given.
const DEFAULT_LIMIT: u32 = 50;

/// Where a forge takes the secret, and the header it proves it with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeHeader {
    /// `github`, `gitlab`, `gitea`, `forgejo`, `bitbucket`.
    pub forge: String,
    /// The forge's name for people.
    pub name: String,
    /// The webhook form's field to paste the secret into.
    pub field: String,
    /// The header each delivery carries its proof in.
    pub header: String,
    /// Another way this forge takes the same secret, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Every forge's field and header, in [`Forge::ALL`]'s order.
pub fn forge_headers() -> Vec<ForgeHeader> {
    Forge::ALL
        .into_iter()
        .map(|forge| {
            let (field, header) = match forge {
                Forge::GitHub => ("Secret", Scheme::HubSignature256),
                Forge::GitLab => ("Secret token", Scheme::GitLabToken),
                Forge::Gitea => ("Secret", Scheme::GiteaSignature),
                Forge::Forgejo => ("Secret", Scheme::ForgejoSignature),
                Forge::Bitbucket => ("Secret", Scheme::BitbucketSignature),
            };
            let note = (forge == Forge::GitLab).then(|| {
                format!(
                    "or paste it as the Signing token (GitLab 19): deliveries then carry `{}`",
                    Scheme::GitLabSigningToken.header()
                )
            });
            ForgeHeader {
                forge: forge.slug().to_owned(),
                name: forge.name().to_owned(),
                field: field.to_owned(),
                header: header.header().to_owned(),
                note,
            }
        })
        .collect()
}

/// `POST /v1/apps/{app}/hooks/secret`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookSecretCreated {
    pub app: String,
    /// The new secret; shown this once, kept only in the server's data dir.
    pub secret: String,
    /// Whether it replaced a secret (which no longer works).
    pub replaced: bool,
    /// The webhook's path on the https API: `/hooks/{app}`.
    pub path: String,
    /// Where the server's https API listens, if it does (`--api`).
    pub api: Option<SocketAddr>,
    /// Where each forge takes the secret.
    pub forges: Vec<ForgeHeader>,
}

/// `PUT /v1/apps/{app}/hooks/forge-token`: the forge API token commit
/// statuses are posted with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForgeTokenBody {
    pub token: String,
}

/// `GET /v1/apps/{app}/hooks`: what is set (never a value).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HooksView {
    pub app: String,
    pub path: String,
    pub secret_set: bool,
    pub forge_token_set: bool,
    /// Refused deliveries, per forge.
    pub refusals: Vec<RefusalInfo>,
}

/// `GET /v1/apps/{app}/hooks/deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveriesView {
    pub app: String,
    /// Newest first.
    pub deliveries: Vec<DeliveryInfo>,
    /// Refused deliveries (not recorded one by one), per forge.
    pub refusals: Vec<RefusalInfo>,
}

/// The answer to a delivery that passed its signature check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookAnswer {
    /// The delivery's record; for a duplicate, the first delivery's.
    pub delivery: i64,
    /// What was done: `queued`, `ping`, `ignored_event`, `ignored_branch`,
    /// `ignored_deleted`, `invalid`, or `duplicate`.
    pub outcome: String,
    /// The pipeline job queued (for a duplicate, the first delivery's).
    pub job: Option<i64>,
    /// For people.
    pub message: String,
}

/// The webhook path of `app`.
pub fn hook_path(app: &str) -> String {
    format!("/hooks/{app}")
}

/// Whether a request is a webhook delivery (`POST /hooks/{one segment}`),
/// which the https listener lets through without a bearer token.
pub(crate) fn is_hook_request(method: &Method, path: &str) -> bool {
    *method == Method::POST
        && path
            .strip_prefix("/hooks/")
            .is_some_and(|app| !app.is_empty() && !app.contains('/'))
}

/// The routes of this module, merged into the API router.
pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/hooks/{app}",
            post(intake::receive).layer(DefaultBodyLimit::max(MAX_BODY)),
        )
        .route("/v1/apps/{app}/hooks", get(view))
        .route("/v1/apps/{app}/hooks/secret", post(create_secret))
        .route("/v1/apps/{app}/hooks/forge-token", put(set_forge_token))
        .route("/v1/apps/{app}/hooks/deliveries", get(deliveries))
}

fn secret_failure(e: secrets::SecretError) -> Failure {
    let status = match e {
        secrets::SecretError::BadApp(_)
        | secrets::SecretError::Empty { .. }
        | secrets::SecretError::TooLong { .. } => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure(status, e.to_string())
}

async fn create_secret(
    State(s): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<HookSecretCreated>, Failure> {
    s.engine.store().app(&app)?;
    let secret = secrets::generate().map_err(secret_failure)?;
    let replaced = secrets::write(&s.info.data_dir, &app, secrets::Kind::Secret, &secret)
        .map_err(secret_failure)?;
    tracing::info!(app, replaced, "webhook secret set");
    Ok(Json(HookSecretCreated {
        path: hook_path(&app),
        app,
        secret,
        replaced,
        api: s.info.api,
        forges: forge_headers(),
    }))
}

async fn set_forge_token(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Json(body): Json<ForgeTokenBody>,
) -> Result<Json<HooksView>, Failure> {
    s.engine.store().app(&app)?;
    let replaced = secrets::write(
        &s.info.data_dir,
        &app,
        secrets::Kind::ForgeToken,
        &body.token,
    )
    .map_err(secret_failure)?;
    tracing::info!(app, replaced, "forge token set");
    hooks_view(&s, app)
}

async fn view(
    State(s): State<AppState>,
    Path(app): Path<String>,
) -> Result<Json<HooksView>, Failure> {
    s.engine.store().app(&app)?;
    hooks_view(&s, app)
}

fn hooks_view(s: &AppState, app: String) -> Result<Json<HooksView>, Failure> {
    let data = &s.info.data_dir;
    let set = |kind| {
        secrets::read(data, &app, kind)
            .map(|v| v.is_some())
            .map_err(secret_failure)
    };
    Ok(Json(HooksView {
        path: hook_path(&app),
        secret_set: set(secrets::Kind::Secret)?,
        forge_token_set: set(secrets::Kind::ForgeToken)?,
        refusals: s.engine.store().refusals(&app)?,
        app,
    }))
}

#[derive(Debug, Deserialize)]
struct DeliveriesQuery {
    limit: Option<u32>,
}

async fn deliveries(
    State(s): State<AppState>,
    Path(app): Path<String>,
    Query(q): Query<DeliveriesQuery>,
) -> Result<Json<DeliveriesView>, Failure> {
    let store = s.engine.store();
    store.app(&app)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(10_000);
    Ok(Json(DeliveriesView {
        deliveries: store.deliveries(&app, limit)?,
        refusals: store.refusals(&app)?,
        app,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_post_to_one_hook_path_skips_the_token() {
        let post = Method::POST;
        assert!(is_hook_request(&post, "/hooks/shop"));
        for path in [
            "/hooks/",
            "/hooks",
            "/hooks/shop/x",
            "/hooks/../v1/tokens",
            "/v1/hooks/shop",
            "/v1/tokens",
            "//hooks/shop",
        ] {
            assert!(!is_hook_request(&post, path), "{path}");
        }
        assert!(!is_hook_request(&Method::GET, "/hooks/shop"));
        assert!(!is_hook_request(&Method::PUT, "/hooks/shop"));
    }

    #[test]
    fn every_forge_has_its_header() {
        let table = forge_headers();
        assert_eq!(table.len(), Forge::ALL.len());
        let github = &table[0];
        assert_eq!(
            (github.forge.as_str(), github.header.as_str()),
            ("github", "X-Hub-Signature-256")
        );
        assert!(table.iter().all(|f| !f.header.is_empty()));
    }
}
