//! Request handling: accept loop, routing, forwarding, error pages.
//!
//! One request is: load the table once, resolve the route, choose a release
//! group and a backend in it (counted in flight from here; see below), take
//! a pooled connection or connect (a
//! failed connect of a bodyless request is retried once on another backend
//! of the same release group), rewrite headers in place, send, and hand the
//! upstream body to hyper inside a [`ProxyBody`] that keeps the backend
//! counted until the last byte is sent or the body is dropped. Everything
//! that must happen "at the end" (metrics, access log, returning the
//! connection to the pool, in-flight decrement, the release's live stats)
//! is in `Exchange::drop`, so it also happens when the client goes away
//! mid-request.
//!
//! Choosing the group, right after the route is resolved (`choose`):
//!
//! 1. **Override**: with an override token configured, a request whose
//!    `X-Wharf-Token` matches it (constant-time [`ct_eq`]) and that names a
//!    release in `X-Wharf-Release` goes to that release's group, even at
//!    weight 0; 503 when the route has no such release. No cookie is read
//!    or set.
//! 2. **Sticky**: on a route with two or more groups of weight > 0, a
//!    `wharf_<app>` cookie naming one of them (weight > 0, with backends)
//!    keeps the client there; otherwise the weighted pick assigns it and
//!    the upstream response carries `Set-Cookie` (not the proxy's own
//!    error pages: a request that was never served assigns nothing).
//! 3. Otherwise, the weighted pick.
//!
//! Inside the group, round robin. `X-Wharf-Release` and `X-Wharf-Token` are
//! removed from every forwarded request.
//!
//! The module's parts: `select` (the choice above), `headers` (request and
//! forwarding headers), `exchange` (what ends with a request), `pages`
//! (the proxy's own answers), `error` (where an error came from).

mod error;
mod exchange;
mod headers;
mod pages;
mod select;
mod serve;
mod tunnel;

pub(crate) use serve::{serve, tls_acceptor};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::Limited;
use hyper::body::Incoming;

use crate::pool::{Pool, Sender};
use crate::{Backend, Proxy};

use error::{ErrorKind, ErrorSource, ProxyError};
use exchange::{Exchange, Kind, LogCtx, ProxyBody};
pub(crate) use headers::{X_REQUEST_ID, request_id};
use headers::{content_length, prepare_request, request_host, strip_hop_by_hop};
use pages::{Page, html_page, page, plain, redirect, respond, unavailable};
use select::{Choice, choose};

/// Per client connection.
pub(crate) struct ConnCtx {
    proxy: Arc<Proxy>,
    client: IpAddr,
    /// The client's IP as a header value, made once per connection.
    client_hv: HeaderValue,
    /// Came over TLS (`X-Forwarded-Proto: https`, HSTS, no redirect).
    tls: bool,
    /// The peer is a trusted proxy: its `X-Forwarded-*` are believed.
    trusted: bool,
}

/// What a request chose from the table, taken out while the table is loaded.
struct Selected {
    pooled: Option<Sender>,
    fallback: Option<Arc<Backend>>,
}

/// The route's settings a request keeps after the table is let go.
#[derive(Debug, Clone, Copy)]
struct Limits {
    max_body: u64,
    timeout: Duration,
    hsts: bool,
}

/// `Strict-Transport-Security` of HTTPS answers on routes that ask for it.
static HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");

/// Where ACME HTTP-01 challenges are asked for.
const ACME_CHALLENGE: &str = "/.well-known/acme-challenge/";

impl ConnCtx {
    pub(crate) fn new(proxy: Arc<Proxy>, client: IpAddr, tls: bool) -> ConnCtx {
        let client_hv = HeaderValue::from_str(&client.to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        let trusted = proxy
            .config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&client));
        ConnCtx {
            proxy,
            client,
            client_hv,
            tls,
            trusted,
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ProxyBody> {
        let start = Instant::now();
        let proxy = &*self.proxy;
        let cfg = &proxy.config;
        let (mut parts, body) = req.into_parts();
        let rid = request_id(&parts.headers);
        let mut ex = Exchange::new(start);
        if cfg.access_log {
            ex.log = Some(Box::new(LogCtx {
                request_id: rid.clone(),
                app: String::new(),
                process: String::new(),
                method: parts.method.clone(),
                host: request_host(&parts).map(str::to_owned),
                uri: parts.uri.clone(),
                client: self.client,
            }));
        }

        // ACME's HTTP-01 validation, on plain HTTP, whatever the routes say.
        if !self.tls
            && let Some(token) = parts.uri.path().strip_prefix(ACME_CHALLENGE)
            && let Some(answer) = cfg.certs.as_ref().and_then(|c| c.challenge(token))
        {
            ex.fixed = Some(proxy.unrouted.clone());
            return plain(StatusCode::OK, answer, rid, ex);
        }
        let bodyless = body.is_end_stream();
        let client_version = parts.version;
        let upgrade = if tunnel::is_upgrade(parts.version, &parts.headers) {
            parts.headers.get(header::UPGRADE).cloned()
        } else {
            None
        };

        // The one table load of this request.
        let (selected, set_cookie, limits) = {
            let table = proxy.table.load();
            let host = request_host(&parts);
            let Some(idx) = table.resolve_index(host, parts.uri.path()) else {
                ex.fixed = Some(proxy.unrouted.clone());
                return page(Page::NotFound, rid, ex);
            };
            let route = &table.routes()[idx];
            if let Some(log) = ex.log.as_mut() {
                log.app.clone_from(&route.app);
                log.process.clone_from(&route.process);
            }
            if let Some(down) = &route.unavailable {
                ex.fixed = Some(Arc::new(proxy.metrics.handles(&route.app, "none")));
                return unavailable(down, rid, ex);
            }
            // A TLS host, asked over plain HTTP once its certificate is
            // there: to HTTPS (before, it serves on HTTP).
            if !self.tls
                && route.options.tls
                && let (Some(port), Some(certs), Some(host)) =
                    (cfg.https_port, cfg.certs.as_ref(), route.host.as_deref())
                && certs.has(host)
            {
                ex.fixed = Some(Arc::new(proxy.metrics.handles(&route.app, "none")));
                let authority = if port == 443 {
                    host.to_owned()
                } else {
                    format!("{host}:{port}")
                };
                let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                return redirect(&format!("https://{authority}{pq}"), rid, ex);
            }
            let limits = Limits {
                max_body: route.options.max_body.unwrap_or(cfg.max_body_bytes),
                timeout: route.options.timeout.unwrap_or(cfg.upstream_timeout),
                hsts: self.tls && route.options.hsts,
            };
            if content_length(&parts.headers).is_some_and(|n| n > limits.max_body) {
                ex.fixed = Some(Arc::new(proxy.metrics.handles(&route.app, "none")));
                return page(Page::TooLarge, rid, ex);
            }
            let token = cfg.override_token.as_deref();
            match choose(&table, idx, &parts.headers, token) {
                Choice::NoBackend => {
                    ex.fixed = Some(Arc::new(proxy.metrics.handles(&route.app, "none")));
                    return page(Page::NoBackend, rid, ex);
                }
                Choice::NotServing(release) => {
                    ex.fixed = Some(Arc::new(proxy.metrics.handles(&route.app, "none")));
                    let msg = format!("Release {release} is not serving this route.");
                    let body = html_page(StatusCode::SERVICE_UNAVAILABLE, &msg);
                    return respond(StatusCode::SERVICE_UNAVAILABLE, body, false, rid, ex);
                }
                Choice::BadRelease => {
                    ex.fixed = Some(Arc::new(proxy.metrics.handles(&route.app, "none")));
                    let msg = "X-Wharf-Release must be a release number.";
                    let body = html_page(StatusCode::BAD_REQUEST, msg);
                    return respond(StatusCode::BAD_REQUEST, body, false, rid, ex);
                }
                Choice::Picked {
                    group,
                    backend,
                    set_cookie,
                } => {
                    ex.set_backend(backend.clone());
                    // An upgrade gets a connection of its own.
                    let pooled = if upgrade.is_some() {
                        None
                    } else {
                        backend.pool.take()
                    };
                    // Only a request that may need a new connection needs a
                    // retry candidate; pick it now, from this same table.
                    let fallback = match pooled {
                        None if bodyless => table.pick_other(idx, group, backend).cloned(),
                        _ => None,
                    };
                    (Selected { pooled, fallback }, set_cookie, limits)
                }
            }
        };

        // hyper keeps the client's side of an upgrade in the extensions.
        let client_upgrade = upgrade
            .as_ref()
            .and_then(|_| parts.extensions.remove::<hyper::upgrade::OnUpgrade>());
        prepare_request(&mut parts, &rid, &self.client_hv, self.tls, self.trusted);
        if let Some(value) = &upgrade {
            tunnel::keep_upgrade(&mut parts.headers, value.clone());
        }
        let sent = forward(&mut ex, selected, parts, body, bodyless, limits).await;
        match sent {
            Ok(mut resp) => {
                ex.status = resp.status().as_u16();
                ex.upstream_ms = Some(ms(start.elapsed()));
                if let (StatusCode::SWITCHING_PROTOCOLS, Some(client), Some(backend)) =
                    (resp.status(), client_upgrade, ex.backend.clone())
                {
                    return self.switch_protocols(&mut resp, client, backend, rid, ex);
                }
                let (mut rp, rbody) = resp.into_parts();
                strip_hop_by_hop(&mut rp.headers);
                rp.headers.insert(X_REQUEST_ID.clone(), rid);
                if let Some(cookie) = set_cookie {
                    rp.headers.append(header::SET_COOKIE, cookie);
                }
                if limits.hsts {
                    rp.headers
                        .insert(header::STRICT_TRANSPORT_SECURITY, HSTS.clone());
                }
                rp.version = client_version;
                Response::from_parts(
                    rp,
                    ProxyBody {
                        kind: Kind::Upstream(rbody),
                        done: false,
                        ex: Some(ex),
                    },
                )
            }
            Err(e) => {
                if let (Some(kind), Some(b)) = (e.metric(), ex.backend.as_ref()) {
                    b.metrics.upstream_error(kind);
                }
                tracing::debug!(error = %e, cause = ?e.cause, "proxy error");
                page(e.page(), rid, ex)
            }
        }
    }

    /// The instance answered an upgrade with 101: the client gets it, and
    /// both connections are spliced once upgraded (see [`tunnel`]). The
    /// exchange ends now (the handshake is the request for metrics and
    /// analysis); the tunnel writes its own access-log line at its end.
    fn switch_protocols(
        &self,
        resp: &mut Response<Incoming>,
        client: hyper::upgrade::OnUpgrade,
        backend: Arc<Backend>,
        rid: HeaderValue,
        mut ex: Exchange,
    ) -> Response<ProxyBody> {
        let upstream = hyper::upgrade::on(&mut *resp);
        // The conn is the tunnel's now, never the pool's.
        ex.conn = None;
        let log = ex.log.take().map(|l| tunnel::TunnelLog {
            request_id: l.request_id.to_str().unwrap_or("").to_owned(),
            app: l.app,
            process: l.process,
            method: l.method,
            host: l.host.unwrap_or_default(),
            uri: l.uri,
            client: l.client,
        });
        tunnel::spawn(
            client,
            upstream,
            backend,
            self.proxy.config.tunnel_idle_timeout,
            log,
        );
        let mut out = Response::new(ProxyBody {
            kind: Kind::Page(None),
            done: true,
            ex: Some(ex),
        });
        *out.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let upgrade = resp.headers().get(header::UPGRADE).cloned();
        let mut h = std::mem::take(resp.headers_mut());
        strip_hop_by_hop(&mut h);
        if let Some(upgrade) = upgrade {
            tunnel::keep_upgrade(&mut h, upgrade);
        }
        h.insert(X_REQUEST_ID.clone(), rid);
        *out.headers_mut() = h;
        out
    }
}

/// Gets a connection (retrying a failed connect once elsewhere when allowed)
/// and sends the request; returns the upstream response head.
async fn forward(
    ex: &mut Exchange,
    selected: Selected,
    parts: http::request::Parts,
    body: Incoming,
    bodyless: bool,
    limits: Limits,
) -> Result<Response<Incoming>, ProxyError> {
    let Selected {
        pooled,
        mut fallback,
    } = selected;
    let mut tx = match pooled {
        Some(tx) => Pool::ready(tx).await,
        None => None,
    };
    let mut req = Request::from_parts(
        parts,
        Limited::new(body, usize::try_from(limits.max_body).unwrap_or(usize::MAX)),
    );
    let mut reconnected = false;
    loop {
        let mut conn = match tx.take() {
            Some(c) => c,
            None => match connect(ex, &mut fallback, bodyless).await {
                Ok(c) => c,
                Err(e) => return Err(e),
            },
        };
        if req.headers().get(header::HOST).is_none()
            && let Some(b) = ex.backend.as_ref()
        {
            req.headers_mut().insert(header::HOST, b.host.clone());
        }
        match tokio::time::timeout(limits.timeout, conn.try_send_request(req)).await {
            Err(_) => {
                return Err(ProxyError {
                    kind: ErrorKind::ResponseTimeout,
                    source_side: ErrorSource::Upstream,
                    retry: false,
                    cause: None,
                });
            }
            Ok(Ok(resp)) => {
                ex.conn = Some(conn);
                return Ok(resp);
            }
            Ok(Err(mut e)) => match e.take_message() {
                // Not written at all: the pooled connection was closing
                // under us. Safe to send again on a fresh connection.
                Some(back) if !reconnected => {
                    reconnected = true;
                    req = back;
                }
                _ => return Err(ProxyError::from_send(e.into_error())),
            },
        }
    }
}

/// Connects to the exchange's backend; on failure, moves the exchange to
/// `fallback` (once) and tries there.
async fn connect(
    ex: &mut Exchange,
    fallback: &mut Option<Arc<Backend>>,
    bodyless: bool,
) -> Result<Sender, ProxyError> {
    loop {
        let Some(backend) = ex.backend.clone() else {
            return Err(ProxyError {
                kind: ErrorKind::Internal,
                source_side: ErrorSource::Internal,
                retry: false,
                cause: None,
            });
        };
        match backend.pool.connect().await {
            Ok(tx) => return Ok(tx),
            Err(e) => {
                let err = ProxyError::from_connect(e, bodyless);
                match fallback.take() {
                    Some(next) if err.retry => {
                        if let Some(kind) = err.metric() {
                            backend.metrics.upstream_error(kind);
                        }
                        tracing::debug!(instance = %backend.id, error = %err, "connect failed, retrying on another instance");
                        ex.set_backend(next.clone());
                        if let Some(pooled) = next.pool.take()
                            && let Some(tx) = Pool::ready(pooled).await
                        {
                            return Ok(tx);
                        }
                    }
                    _ => return Err(err),
                }
            }
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests;
