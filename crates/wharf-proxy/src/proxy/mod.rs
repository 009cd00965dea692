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

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::Body;
use http_body_util::Limited;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;

use crate::pool::{Pool, Sender};
use crate::{Backend, Proxy, ProxyConfig};

use error::{ErrorKind, ErrorSource, ProxyError};
use exchange::{Exchange, Kind, LogCtx, ProxyBody};
pub(crate) use headers::{X_REQUEST_ID, request_id};
use headers::{content_length, prepare_request, request_host, strip_hop_by_hop};
use pages::{Page, html_page, page, respond, unavailable};
use select::{Choice, choose};

/// Accepts connections until `shutdown`, then drains them (bounded by `grace`).
pub(crate) async fn serve(
    proxy: Arc<Proxy>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let cfg = &proxy.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(cfg.header_read_timeout)
        // hyper refuses buffers under 8 KiB; heads over `max_header_bytes`
        // get 431 from hyper itself.
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .max_header_size(cfg.max_header_bytes);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let ctx = Arc::new(ConnCtx::new(proxy.clone(), peer.ip()));
        let svc = service_fn(move |req| {
            let ctx = ctx.clone();
            async move { Ok::<_, Infallible>(ctx.handle(req).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!("graceful shutdown timed out; closing remaining connections");
        }
    }
    Ok(())
}

/// Per client connection.
struct ConnCtx {
    proxy: Arc<Proxy>,
    client: IpAddr,
    /// The client's IP as a header value, made once per connection.
    client_hv: HeaderValue,
}

/// What a request chose from the table, taken out while the table is loaded.
struct Selected {
    pooled: Option<Sender>,
    fallback: Option<Arc<Backend>>,
}

impl ConnCtx {
    fn new(proxy: Arc<Proxy>, client: IpAddr) -> ConnCtx {
        let client_hv = HeaderValue::from_str(&client.to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
        ConnCtx {
            proxy,
            client,
            client_hv,
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

        if content_length(&parts.headers).is_some_and(|n| n > cfg.max_body_bytes) {
            ex.fixed = Some(proxy.unrouted.clone());
            return page(Page::TooLarge, rid, ex);
        }
        let bodyless = body.is_end_stream();

        // The one table load of this request.
        let (selected, set_cookie) = {
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
                    let pooled = backend.pool.take();
                    // Only a request that may need a new connection needs a
                    // retry candidate; pick it now, from this same table.
                    let fallback = match pooled {
                        None if bodyless => table.pick_other(idx, group, backend).cloned(),
                        _ => None,
                    };
                    (Selected { pooled, fallback }, set_cookie)
                }
            }
        };

        prepare_request(&mut parts, &rid, &self.client_hv);
        match forward(cfg, &mut ex, selected, parts, body, bodyless).await {
            Ok(resp) => {
                let (mut rp, rbody) = resp.into_parts();
                strip_hop_by_hop(&mut rp.headers);
                rp.headers.insert(X_REQUEST_ID.clone(), rid);
                if let Some(cookie) = set_cookie {
                    rp.headers.append(header::SET_COOKIE, cookie);
                }
                rp.version = Version::HTTP_11;
                ex.status = rp.status.as_u16();
                ex.upstream_ms = Some(ms(start.elapsed()));
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
}

/// Gets a connection (retrying a failed connect once elsewhere when allowed)
/// and sends the request; returns the upstream response head.
async fn forward(
    cfg: &ProxyConfig,
    ex: &mut Exchange,
    selected: Selected,
    parts: http::request::Parts,
    body: Incoming,
    bodyless: bool,
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
        Limited::new(
            body,
            usize::try_from(cfg.max_body_bytes).unwrap_or(usize::MAX),
        ),
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
        match tokio::time::timeout(cfg.upstream_timeout, conn.try_send_request(req)).await {
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
