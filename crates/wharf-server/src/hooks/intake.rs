//! `POST /hooks/{app}`: one webhook delivery, judged and answered at once.
//!
//! In order, each step answering when it ends the delivery:
//! 1. the raw body (at most [`super::MAX_BODY`], else 413) and headers;
//! 2. which forge sent it ([`wharf_forge::detect`]; none: 400);
//! 3. the app's secret (none set, or empty: 401);
//! 4. the signature over the raw body, in constant time
//!    ([`wharf_forge::verify`]; any failure: 401). A refused delivery is
//!    only counted, per app and forge ([`wharf_store::Store::record_refusal`]);
//! 5. what it is ([`wharf_forge::classify`]) and, for a push, which ref it
//!    updates, against the branch the app watches (`[deploy] branch` of
//!    the config it runs with) — [`judge`];
//! 6. recorded, with a pipeline job for a push to the watched branch, in
//!    one store transaction that also refuses a duplicate key or body
//!    ([`wharf_deploy::Engine::accept_delivery`]).
//!
//! Nothing but that store work happens before the answer: the pipeline
//! (fetch, CI, deploy) is the job runner's. The secret is never logged
//! and never part of an answer.

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use wharf_deploy::{JobArgs, PipelineArgs};
use wharf_forge::{Event, Forge, Push, VerifyOptions};
use wharf_store::{DeliveryOutcome, HookOutcome, NewDelivery};

use super::{HookAnswer, MAX_BODY, secrets};
use crate::http::{AppState, Failure, engine_failure};

/// What to do with a verified delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Judgement {
    pub outcome: HookOutcome,
    /// For the record and the answer.
    pub detail: String,
    /// The ref to record: the one acted on, else the first updated.
    pub push: Option<Push>,
}

/// Judges a verified delivery of `app` (pure): `event` as classified,
/// `pushes` as parsed (for a push), `watched` the app's branch.
pub(crate) fn judge(
    app: &str,
    forge: Forge,
    event: &Event,
    event_name: &str,
    pushes: Option<Result<Vec<Push>, wharf_forge::PushError>>,
    watched: Result<Option<&str>, String>,
) -> Judgement {
    let plain = |outcome, detail: String| Judgement {
        outcome,
        detail,
        push: None,
    };
    match event {
        Event::Ping => {
            return plain(
                HookOutcome::Ping,
                format!("{forge} can reach {app}'s webhook and signs with its secret"),
            );
        }
        Event::Other(name) if name.is_empty() => {
            return plain(
                HookOutcome::IgnoredEvent,
                format!("the delivery names no event; only pushes deploy {app}"),
            );
        }
        Event::Other(name) => {
            return plain(
                HookOutcome::IgnoredEvent,
                format!("`{name}` events are not acted on; only pushes deploy {app}"),
            );
        }
        Event::Push => {}
    }
    let pushes = match pushes {
        Some(Ok(pushes)) => pushes,
        Some(Err(e)) => return plain(HookOutcome::Invalid, e.to_string()),
        None => {
            return plain(
                HookOutcome::Invalid,
                format!("the `{event_name}` delivery carried no push to read"),
            );
        }
    };
    let first = pushes.first().cloned();
    let watched = match watched {
        Ok(Some(branch)) => branch,
        Ok(None) => {
            return Judgement {
                outcome: HookOutcome::IgnoredBranch,
                detail: format!(
                    "{app} watches no branch; set `[deploy] branch = \"main\"` in its wharf.toml and deploy it to deploy its pushes"
                ),
                push: first,
            };
        }
        Err(why) => {
            return Judgement {
                outcome: HookOutcome::IgnoredBranch,
                detail: why,
                push: first,
            };
        }
    };
    // Bitbucket sends several refs in one delivery: the watched branch's
    // update is the one that counts (the last, should it appear twice).
    if let Some(push) = pushes
        .iter()
        .rev()
        .find(|p| p.branch.as_deref() == Some(watched))
    {
        return match (&push.commit, push.deleted) {
            (Some(_), false) => Judgement {
                outcome: HookOutcome::Queued,
                detail: String::new(),
                push: Some(push.clone()),
            },
            _ => Judgement {
                outcome: HookOutcome::IgnoredDeleted,
                detail: format!(
                    "the push deleted `{watched}`, the branch {app} deploys; nothing to deploy"
                ),
                push: Some(push.clone()),
            },
        };
    }
    let detail = match &first {
        None => "the push updated no ref".to_owned(),
        Some(p) => {
            let what = match (&p.branch, &p.tag) {
                (Some(branch), _) => format!("a push to `{branch}`"),
                (None, Some(tag)) => format!("a push of the tag `{tag}`"),
                (None, None) => format!("a push to `{}`", p.ref_name),
            };
            format!("{what}; {app} deploys pushes to `{watched}`")
        }
    };
    Judgement {
        outcome: HookOutcome::IgnoredBranch,
        detail,
        push: first,
    }
}

fn failure(status: StatusCode, message: String) -> Response {
    Failure(status, message).into_response()
}

/// The handler (see the module doc).
pub(crate) async fn receive(
    State(s): State<AppState>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "the delivery to {app} is larger than the {} MiB a webhook may send; nothing was recorded",
                    MAX_BODY / (1024 * 1024)
                ),
            );
        }
        Err(rejection) => {
            return failure(
                rejection.status(),
                format!("could not read the delivery's body: {rejection}; nothing was recorded"),
            );
        }
    };
    let Some(forge) = wharf_forge::detect(&headers) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "could not tell which forge sent this delivery: it has none of the headers `X-GitHub-Event`, `X-Gitlab-Event`, `X-Gitea-Event`, `X-Forgejo-Event`, `X-Event-Key`; point a GitHub, GitLab, Gitea, Forgejo or Bitbucket Cloud webhook here".into(),
        );
    };
    if let Err(message) = wharf_config::validate_app_name(&app) {
        return failure(StatusCode::NOT_FOUND, message);
    }
    let store = s.engine.store();
    // Refusals are counted only for an app that exists, so requests to
    // made-up names leave nothing behind.
    let known = store.app(&app).is_ok();
    let refuse = |reason: String, message: String| {
        if known && let Err(e) = store.record_refusal(&app, forge.slug(), &reason, now()) {
            tracing::error!(app, error = %e, "could not count a refused webhook delivery");
        }
        tracing::warn!(
            app,
            forge = forge.slug(),
            reason,
            "webhook delivery refused"
        );
        let mut resp = failure(StatusCode::UNAUTHORIZED, message);
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Signature realm=\"wharf hooks\""),
        );
        resp
    };

    let secret = match secrets::read(&s.info.data_dir, &app, secrets::Kind::Secret) {
        Ok(secret) => secret,
        Err(e) => {
            tracing::error!(app, error = %e, "could not read the webhook secret");
            return failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
        }
    };
    let Some(secret) = secret else {
        let message = format!("no hook secret is set for {app}: run `wharf hooks secret {app}`");
        return refuse("no hook secret is set".into(), message);
    };
    let options = VerifyOptions::at(now() / 1000);
    if let Err(e) = wharf_forge::verify(forge, &headers, &body, Some(&secret), options) {
        return refuse(e.to_string(), format!("{e}; nothing was recorded"));
    }
    drop(secret);

    // Verified: from here on every delivery is recorded (but for an app
    // removed since its secret was set). A forge always names its event;
    // one that does not is an event not acted on.
    let event =
        wharf_forge::classify(forge, &headers).unwrap_or_else(|| Event::Other(String::new()));
    let event_name = event_header(forge, &headers);
    record(&s, &app, forge, &headers, &body, &event_name, event)
}

fn now() -> i64 {
    wharf_store::now_ms()
}

/// The event's name as the forge sent it.
fn event_header(forge: Forge, headers: &HeaderMap) -> String {
    let read = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_owned())
    };
    read(forge.event_header())
        .or_else(|| {
            (forge == Forge::Forgejo)
                .then(|| read("X-Gitea-Event"))
                .flatten()
        })
        .unwrap_or_default()
}

/// Judges, records and answers a verified delivery.
fn record(
    s: &AppState,
    app: &str,
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    event_name: &str,
    event: Event,
) -> Response {
    let watched = match s.engine.app_config(app) {
        Ok((config, _)) => Ok(config.deploy.branch),
        Err(wharf_deploy::DeployError::NotServing { .. }) => Err(format!(
            "{app} has no release yet, so its watched branch is not known; deploy it once with `[deploy] branch` set"
        )),
        Err(e @ wharf_deploy::DeployError::Store(wharf_store::StoreError::NoSuchApp(_))) => {
            return engine_failure(e).into_response();
        }
        Err(e) => {
            tracing::error!(app, error = %e, "could not read the app's config for a webhook");
            return engine_failure(e).into_response();
        }
    };
    let pushes = matches!(event, Event::Push).then(|| wharf_forge::parse_push(forge, body));
    let judgement = judge(
        app,
        forge,
        &event,
        event_name,
        pushes,
        watched.as_ref().map(|b| b.as_deref()).map_err(Clone::clone),
    );
    let key = wharf_forge::delivery_key(forge, headers, body);
    let event_text = match (&event, event_name) {
        (_, name) if !name.is_empty() => name.to_owned(),
        (Event::Ping, _) => "ping".into(),
        (Event::Push, _) => "push".into(),
        (Event::Other(_), _) => "(none)".into(),
    };
    let push = judgement.push.as_ref();
    let pipeline = match (&judgement.outcome, push) {
        (HookOutcome::Queued, Some(p)) => match (&p.branch, &p.commit) {
            (Some(branch), Some(commit)) => Some(JobArgs::Pipeline(PipelineArgs {
                forge: forge.slug().to_owned(),
                repo: p.repo.clone(),
                clone_url: p.clone_url.clone(),
                branch: branch.clone(),
                commit: commit.clone(),
                delivery: key.id.clone(),
            })),
            _ => None,
        },
        _ => None,
    };
    let new = NewDelivery {
        app,
        forge: forge.slug(),
        delivery_key: &key.id,
        body_sha256: &key.body_sha256,
        event: &event_text,
        ref_name: push.map(|p| p.ref_name.as_str()),
        commit: push.and_then(|p| p.commit.as_deref()),
        repo: push.map(|p| p.repo.as_str()),
        outcome: judgement.outcome,
        detail: (!judgement.detail.is_empty()).then_some(judgement.detail.as_str()),
    };
    let outcome = match s.engine.accept_delivery(&new, pipeline.as_ref()) {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(app, error = %e, "could not record a webhook delivery");
            return engine_failure(e).into_response();
        }
    };
    match outcome {
        DeliveryOutcome::Recorded { delivery, .. } => {
            let (status, message) = match (delivery.outcome, delivery.job_id) {
                (HookOutcome::Queued, Some(job)) => (
                    StatusCode::ACCEPTED,
                    format!(
                        "queued pipeline job {job} for {} of `{}`",
                        short(delivery.commit.as_deref().unwrap_or_default()),
                        push.and_then(|p| p.branch.as_deref()).unwrap_or_default()
                    ),
                ),
                (HookOutcome::Invalid, _) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, judgement.detail.clone())
                }
                _ => (StatusCode::OK, judgement.detail.clone()),
            };
            tracing::info!(
                app,
                forge = forge.slug(),
                delivery = delivery.id,
                outcome = %delivery.outcome,
                job = ?delivery.job_id,
                "webhook delivery recorded"
            );
            answer(
                status,
                HookAnswer {
                    delivery: delivery.id,
                    outcome: delivery.outcome.to_string(),
                    job: delivery.job_id,
                    message,
                },
            )
        }
        DeliveryOutcome::Duplicate { first } => {
            tracing::info!(
                app,
                forge = forge.slug(),
                first = first.id,
                "webhook delivery was a duplicate; nothing changed"
            );
            let job = first
                .job_id
                .map(|j| format!(", which queued job {j}"))
                .unwrap_or_default();
            answer(
                StatusCode::OK,
                HookAnswer {
                    delivery: first.id,
                    outcome: "duplicate".into(),
                    job: first.job_id,
                    message: format!(
                        "this delivery was received before (delivery {}, {}{job}); nothing changed",
                        first.id, first.outcome
                    ),
                },
            )
        }
        DeliveryOutcome::Full(full) => {
            let mut resp = failure(
                StatusCode::TOO_MANY_REQUESTS,
                format!(
                    "{full}; the delivery was not recorded, so redeliver it from {forge} once the queue has room"
                ),
            );
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            resp
        }
    }
}

fn answer(status: StatusCode, body: HookAnswer) -> Response {
    (status, Json(body)).into_response()
}

/// A commit's first 12 hex digits.
fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(ref_name: &str, deleted: bool) -> Push {
        let branch = ref_name.strip_prefix("refs/heads/").map(str::to_owned);
        let tag = ref_name.strip_prefix("refs/tags/").map(str::to_owned);
        Push {
            ref_name: ref_name.into(),
            branch,
            tag,
            commit: (!deleted).then(|| "a".repeat(40)),
            deleted,
            repo: "acme/shop".into(),
            clone_url: "https://example.invalid/acme/shop.git".into(),
            ssh_url: None,
            pusher: None,
        }
    }

    fn judged(event: Event, pushes: Vec<Push>, watched: Result<Option<&str>, String>) -> Judgement {
        judge(
            "shop",
            Forge::GitHub,
            &event,
            "push",
            Some(Ok(pushes)),
            watched,
        )
    }

    #[test]
    fn each_delivery_gets_its_outcome() {
        let main = Ok(Some("main"));
        let cases: Vec<(&str, Judgement, HookOutcome, &str)> = vec![
            (
                "a push to the watched branch",
                judged(
                    Event::Push,
                    vec![push("refs/heads/main", false)],
                    main.clone(),
                ),
                HookOutcome::Queued,
                "",
            ),
            (
                "another branch",
                judged(
                    Event::Push,
                    vec![push("refs/heads/dev", false)],
                    main.clone(),
                ),
                HookOutcome::IgnoredBranch,
                "a push to `dev`; shop deploys pushes to `main`",
            ),
            (
                "a tag",
                judged(Event::Push, vec![push("refs/tags/v1", false)], main.clone()),
                HookOutcome::IgnoredBranch,
                "a push of the tag `v1`",
            ),
            (
                "the watched branch deleted",
                judged(
                    Event::Push,
                    vec![push("refs/heads/main", true)],
                    main.clone(),
                ),
                HookOutcome::IgnoredDeleted,
                "deleted `main`",
            ),
            (
                "no watched branch",
                judged(Event::Push, vec![push("refs/heads/main", false)], Ok(None)),
                HookOutcome::IgnoredBranch,
                "watches no branch",
            ),
            (
                "no release yet",
                judged(
                    Event::Push,
                    vec![push("refs/heads/main", false)],
                    Err("no release yet".into()),
                ),
                HookOutcome::IgnoredBranch,
                "no release yet",
            ),
            (
                "Bitbucket: several refs, one of them watched",
                judged(
                    Event::Push,
                    vec![
                        push("refs/heads/dev", false),
                        push("refs/heads/main", false),
                    ],
                    main.clone(),
                ),
                HookOutcome::Queued,
                "",
            ),
            (
                "a push of no ref",
                judged(Event::Push, vec![], main.clone()),
                HookOutcome::IgnoredBranch,
                "updated no ref",
            ),
            (
                "a ping",
                judged(Event::Ping, vec![], main.clone()),
                HookOutcome::Ping,
                "can reach",
            ),
            (
                "another event",
                judged(Event::Other("issues".into()), vec![], main.clone()),
                HookOutcome::IgnoredEvent,
                "`issues` events are not acted on",
            ),
        ];
        for (name, j, outcome, detail) in cases {
            assert_eq!(j.outcome, outcome, "{name}");
            assert!(j.detail.contains(detail), "{name}: {}", j.detail);
        }
        let queued = judged(
            Event::Push,
            vec![
                push("refs/heads/dev", false),
                push("refs/heads/main", false),
            ],
            Ok(Some("main")),
        );
        assert_eq!(
            queued.push.map(|p| p.ref_name).as_deref(),
            Some("refs/heads/main")
        );
    }

    #[test]
    fn an_unreadable_push_is_invalid() {
        let err = wharf_forge::parse_push(Forge::GitHub, b"payload=%7B%7D").unwrap_err();
        let j = judge(
            "shop",
            Forge::GitHub,
            &Event::Push,
            "push",
            Some(Err(err)),
            Ok(Some("main")),
        );
        assert_eq!(j.outcome, HookOutcome::Invalid);
        assert!(j.detail.contains("JSON"), "{}", j.detail);
    }
}
