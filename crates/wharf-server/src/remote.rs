//! The API over `https://` for clients on other machines (`wharf server
//! --api ADDR`): the same router as the unix socket, behind TLS with the
//! API's own certificate ([`wharf_tls::ApiIdentity`]) and a bearer token on
//! every request.
//!
//! Authentication, in order, before any handler runs:
//! 1. a peer that failed too often lately gets 429 ([`wharf_auth::Throttle`]);
//! 2. no token, a malformed one, an unknown, revoked or expired one, or a
//!    wrong secret: 401, counted as a failure of that peer;
//! 3. a token whose scope or app does not cover the endpoint
//!    ([`wharf_auth::required`]): 403.
//!
//! The exception is a forge's webhook delivery (`POST /hooks/{app}`),
//! which no token comes with: its handler checks its signature instead.
//!
//! A request that passes carries a [`Caller::Remote`] extension with the
//! token's grant; requests on the unix socket carry none and are the local
//! user's ([`Caller::Local`]), who may do anything. Handlers use the
//! caller to refuse what only a local user may ask, such as a deploy that
//! names a directory on the server.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tower::ServiceExt as _;
use wharf_auth::{Grant, Presented, Scope, Throttle};
use wharf_store::Store;

use crate::http::Failure;

/// Failed authentications a peer may make per window.
const FAILURES_PER_WINDOW: usize = 10;
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// On the unix socket: the server's own user.
    Local,
    /// Over https, with a token granting this.
    Remote { token: String, grant: Grant },
}

impl Caller {
    /// The caller of a request (local unless the auth layer said otherwise).
    pub(crate) fn of(req: &axum::http::request::Parts) -> Caller {
        req.extensions
            .get::<Caller>()
            .cloned()
            .unwrap_or(Caller::Local)
    }

    /// Whether this caller may act on `app` (for endpoints that name it in
    /// their body).
    pub(crate) fn may_use_app(&self, app: &str) -> Result<(), Failure> {
        match self {
            Caller::Local => Ok(()),
            Caller::Remote { grant, .. } => grant
                .allows_app(app)
                .map_err(|m| Failure(StatusCode::FORBIDDEN, m)),
        }
    }

    /// Refuses a path on the server's disk from a remote caller.
    pub(crate) fn may_name_server_paths(&self) -> Result<(), Failure> {
        match self {
            Caller::Local => Ok(()),
            Caller::Remote { .. } => Err(Failure(
                StatusCode::BAD_REQUEST,
                "a remote client cannot name a directory on the server: the server never reads a client's path; upload the source instead (`wharf deploy DIR` does)".into(),
            )),
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Caller::of(parts))
    }
}

/// The peer of a TLS connection, put on each of its requests.
#[derive(Debug, Clone, Copy)]
struct Peer(SocketAddr);

/// What the auth layer needs.
#[derive(Debug)]
pub(crate) struct Auth {
    store: Arc<Store>,
    throttle: Mutex<Throttle>,
}

impl Auth {
    pub(crate) fn new(store: Arc<Store>) -> Arc<Auth> {
        Arc::new(Auth {
            store,
            throttle: Mutex::new(Throttle::new(FAILURES_PER_WINDOW, FAILURE_WINDOW)),
        })
    }

    fn throttle(&self) -> std::sync::MutexGuard<'_, Throttle> {
        self.throttle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The grant of the token in `authorization`, or the answer to give.
    fn authenticate(&self, authorization: Option<&str>) -> Result<(String, Grant), Failure> {
        let unauthorized = |message: &str| Failure(StatusCode::UNAUTHORIZED, message.to_owned());
        let Some(presented) = authorization.and_then(Presented::from_header) else {
            return Err(unauthorized(
                "this API needs a token: pass `Authorization: Bearer wharf_…` (the CLI sends WHARF_TOKEN or the remote's token); an admin makes one with `wharf token create`",
            ));
        };
        let row = self
            .store
            .token_for_auth(presented.id)
            .map_err(|e| Failure(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let refused = "this token is unknown, revoked or expired; ask an admin for a new one (`wharf token create`)";
        let Some((token, hash)) = row else {
            return Err(unauthorized(refused));
        };
        // The hash is compared even for a revoked token, so the time taken
        // does not tell which case it is.
        let matches = presented.matches(&hash);
        let now = wharf_store::now_ms();
        let live = token.revoked_ms.is_none() && token.expires_ms.is_none_or(|e| e > now);
        if !matches || !live {
            return Err(unauthorized(refused));
        }
        let scope: Scope = token
            .scope
            .parse()
            .map_err(|m: String| Failure(StatusCode::INTERNAL_SERVER_ERROR, m))?;
        let _ = self.store.token_used(&token.id);
        Ok((
            token.id,
            Grant {
                scope,
                app: token.app,
            },
        ))
    }
}

/// The auth layer of the https listener (see the module doc).
pub(crate) async fn require_token(
    State(auth): State<Arc<Auth>>,
    mut req: Request,
    next: Next,
) -> Response {
    // A webhook delivery carries no token: its signature, checked by its
    // handler against the app's secret, authenticates it (`crate::hooks`).
    if crate::hooks::is_hook_request(req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let peer = req
        .extensions()
        .get::<Peer>()
        .map(|p| p.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    if let Err(wait) = auth.throttle().check(peer, Instant::now()) {
        let mut resp = Failure(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "too many failed authentications from {peer}; try again in {}s with a valid token",
                wait.as_secs()
            ),
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let (token, grant) = match auth.authenticate(authorization) {
        Ok(ok) => ok,
        Err(failure) => {
            let mut resp = failure.into_response();
            if resp.status() == StatusCode::UNAUTHORIZED {
                auth.throttle().failed(peer, Instant::now());
                tracing::warn!(%peer, "API authentication failed");
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"wharf\""),
                );
            }
            return resp;
        }
    };
    let needs = wharf_auth::required(req.method().as_str(), req.uri().path());
    if let Err(message) = grant.allows(&needs) {
        return Failure(StatusCode::FORBIDDEN, message).into_response();
    }
    req.extensions_mut().insert(Caller::Remote { token, grant });
    next.run(req).await
}

/// Serves `router` (already wrapped in [`require_token`]) over TLS on
/// `listener` until `shutdown`, then lets open connections finish.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "API accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "API TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let service = hyper::service::service_fn(
                move |mut req: hyper::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(Peer(peer));
                    router.clone().oneshot(req.map(axum::body::Body::new))
                },
            );
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "API connection ended");
            }
        });
    }
    // Long follows (`logs -f`) would hold this forever: give them a while.
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}
