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

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;

use crate::metrics::{Handles, UpstreamErrorKind};
use crate::pool::{ConnectError, Pool, Sender};
use crate::{Backend, Proxy, ProxyConfig, RoutingTable};

pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static X_WHARF_RELEASE: HeaderName = HeaderName::from_static("x-wharf-release");
static X_WHARF_TOKEN: HeaderName = HeaderName::from_static("x-wharf-token");

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

/// Where an error came from (pingora-style), which decides the status code
/// and whether the request may be retried elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorSource {
    /// The client: bad or too large body.
    Downstream,
    /// The instance: refused, timed out, broke the connection.
    Upstream,
    /// The proxy itself.
    Internal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorKind {
    ConnectRefused,
    ConnectTimeout,
    ConnectFailed,
    ResponseTimeout,
    UpstreamBroken,
    BodyTooLarge,
    BadRequestBody,
    Internal,
}

/// A failed exchange: what, where from, whether a retry is allowed.
#[derive(Debug, thiserror::Error)]
#[error("{source_side:?} error {kind:?}")]
pub(crate) struct ProxyError {
    pub(crate) kind: ErrorKind,
    pub(crate) source_side: ErrorSource,
    /// True when nothing of the request was sent, so it may go elsewhere.
    pub(crate) retry: bool,
    #[source]
    pub(crate) cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProxyError {
    fn from_connect(e: ConnectError, bodyless: bool) -> ProxyError {
        let kind = match e {
            ConnectError::Refused => ErrorKind::ConnectRefused,
            ConnectError::Timeout(_) => ErrorKind::ConnectTimeout,
            ConnectError::Io(_) | ConnectError::Handshake(_) => ErrorKind::ConnectFailed,
        };
        ProxyError {
            kind,
            source_side: ErrorSource::Upstream,
            retry: bodyless,
            cause: Some(Box::new(e)),
        }
    }

    fn from_send(e: hyper::Error) -> ProxyError {
        let mut src: Option<&(dyn std::error::Error + 'static)> = Some(&e);
        let mut too_large = false;
        while let Some(s) = src {
            if s.is::<LengthLimitError>() {
                too_large = true;
                break;
            }
            src = s.source();
        }
        let (kind, side) = if too_large {
            (ErrorKind::BodyTooLarge, ErrorSource::Downstream)
        } else if e.is_user() {
            // Polling the request body failed: the client's body is broken.
            (ErrorKind::BadRequestBody, ErrorSource::Downstream)
        } else {
            (ErrorKind::UpstreamBroken, ErrorSource::Upstream)
        };
        ProxyError {
            kind,
            source_side: side,
            retry: false,
            cause: Some(Box::new(e)),
        }
    }

    fn metric(&self) -> Option<UpstreamErrorKind> {
        match self.kind {
            ErrorKind::ConnectRefused | ErrorKind::ConnectFailed => {
                Some(UpstreamErrorKind::Connect)
            }
            ErrorKind::ConnectTimeout => Some(UpstreamErrorKind::ConnectTimeout),
            ErrorKind::ResponseTimeout => Some(UpstreamErrorKind::Timeout),
            ErrorKind::UpstreamBroken => Some(UpstreamErrorKind::Io),
            _ => None,
        }
    }

    fn page(&self) -> Page {
        match self.kind {
            ErrorKind::ConnectRefused | ErrorKind::ConnectTimeout | ErrorKind::ConnectFailed => {
                Page::Unreachable
            }
            ErrorKind::ResponseTimeout => Page::Timeout,
            ErrorKind::UpstreamBroken => Page::BadGateway,
            ErrorKind::BodyTooLarge => Page::TooLarge,
            ErrorKind::BadRequestBody => Page::BadRequest,
            ErrorKind::Internal => Page::Internal,
        }
    }
}

/// The proxy's own responses: small static HTML pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    NotFound,
    NoBackend,
    Unreachable,
    BadGateway,
    Timeout,
    TooLarge,
    BadRequest,
    Internal,
}

macro_rules! html {
    ($code:literal, $title:literal, $msg:literal) => {
        concat!(
            "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>",
            $code,
            " ",
            $title,
            "</title></head>\n<body><h1>",
            $code,
            " ",
            $title,
            "</h1>\n<p>",
            $msg,
            "</p>\n<hr><p>wharf</p></body></html>\n"
        )
    };
}

impl Page {
    fn status(self) -> StatusCode {
        match self {
            Page::NotFound => StatusCode::NOT_FOUND,
            Page::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            Page::Unreachable | Page::BadGateway => StatusCode::BAD_GATEWAY,
            Page::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Page::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Page::BadRequest => StatusCode::BAD_REQUEST,
            Page::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(self) -> &'static str {
        match self {
            Page::NotFound => html!(
                "404",
                "Not Found",
                "No app is routed for this host and path."
            ),
            Page::NoBackend => html!(
                "503",
                "Service Unavailable",
                "The app has no healthy instance right now. Please try again shortly."
            ),
            Page::Unreachable => {
                html!(
                    "502",
                    "Bad Gateway",
                    "The app could not be reached: its instance refused or did not accept the connection."
                )
            }
            Page::BadGateway => {
                html!(
                    "502",
                    "Bad Gateway",
                    "The app closed the connection or sent an invalid response."
                )
            }
            Page::Timeout => html!("504", "Gateway Timeout", "The app did not respond in time."),
            Page::TooLarge => html!(
                "413",
                "Content Too Large",
                "The request body is larger than this server accepts."
            ),
            Page::BadRequest => html!("400", "Bad Request", "The request body could not be read."),
            Page::Internal => html!(
                "500",
                "Internal Server Error",
                "The proxy failed to handle the request."
            ),
        }
    }

    /// Pages sent before the request body was read end the connection, so
    /// the unread body is never parsed as a next request.
    fn closes(self) -> bool {
        matches!(self, Page::TooLarge | Page::BadRequest)
    }
}

/// What a request chose from the table, taken out while the table is loaded.
struct Selected {
    pooled: Option<Sender>,
    fallback: Option<Arc<Backend>>,
}

/// The release group (and backend) a request goes to, or why none.
enum Choice<'t> {
    Picked {
        group: usize,
        backend: &'t Arc<Backend>,
        /// `Set-Cookie` for the response: a new or changed sticky assignment.
        set_cookie: Option<HeaderValue>,
    },
    /// Nothing can take the request (503 "no healthy instance").
    NoBackend,
    /// An override names a release the route doesn't have.
    NotServing(u64),
    /// An override with a valid token and an unreadable release number.
    BadRelease,
}

/// A release asked for explicitly (see [`ProxyConfig::override_token`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Override {
    Release(u64),
    Invalid,
}

/// The override a request asks for, if it carries the right token.
fn requested_override(token: Option<&str>, h: &HeaderMap) -> Option<Override> {
    let token = token.filter(|t| !t.is_empty())?;
    let release = h.get(&X_WHARF_RELEASE)?;
    let given = h.get(&X_WHARF_TOKEN)?;
    if !ct_eq(given.as_bytes(), token.as_bytes()) {
        return None;
    }
    Some(parse_release(release.as_bytes()).map_or(Override::Invalid, Override::Release))
}

/// Whether `a == b`, in time that depends on the lengths only: every byte
/// is compared, the first difference doesn't end the loop.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// A release number: ASCII digits, optionally in double quotes (as cookie
/// values may be) and surrounded by spaces.
fn parse_release(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    let v = v
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v);
    if v.is_empty() || v.len() > 20 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// The values of every cookie called `name` in the request's `Cookie`
/// headers, in order. Any bytes are tolerated: several headers, spaces,
/// empty or `=`-less pairs, non-UTF-8.
fn cookie_values<'a>(h: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
    h.get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
        .filter_map(move |pair| {
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (k, v) = pair.split_at(eq);
            let v = v.get(1..).unwrap_or_default();
            (k.trim_ascii() == name.as_bytes()).then(|| v.trim_ascii())
        })
}

/// Chooses the release group and backend of route `idx` for a request with
/// headers `h` (see the module docs for the order of the rules).
fn choose<'t>(
    table: &'t RoutingTable,
    idx: usize,
    h: &HeaderMap,
    token: Option<&str>,
) -> Choice<'t> {
    match requested_override(token, h) {
        Some(Override::Release(release)) => {
            return match table.release_group(idx, release) {
                None => Choice::NotServing(release),
                Some(group) => match table.pick_in(idx, group) {
                    Some(backend) => Choice::Picked {
                        group,
                        backend,
                        set_cookie: None,
                    },
                    None => Choice::NoBackend,
                },
            };
        }
        Some(Override::Invalid) => return Choice::BadRelease,
        None => {}
    }
    let sticky = table.sticky(idx);
    if let Some(st) = sticky {
        let kept = cookie_values(h, st.cookie())
            .filter_map(parse_release)
            .find_map(|r| table.sticky_group(idx, r));
        if let Some(group) = kept
            && let Some(backend) = table.pick_in(idx, group)
        {
            return Choice::Picked {
                group,
                backend,
                set_cookie: None,
            };
        }
    }
    match table.pick(idx) {
        Some((group, backend)) => Choice::Picked {
            group,
            backend,
            set_cookie: sticky.and_then(|st| st.set_cookie(group)),
        },
        None => Choice::NoBackend,
    }
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

/// The host a request is for: the absolute-form URI's, else the Host header.
fn request_host(parts: &http::request::Parts) -> Option<&str> {
    match parts.uri.authority() {
        Some(a) => Some(a.as_str().rsplit('@').next().unwrap_or(a.as_str())),
        None => parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok()),
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The client's `X-Request-Id` if it is 1..=128 of `[A-Za-z0-9._-]`, else a
/// fresh random 16-byte hex id.
pub(crate) fn request_id(h: &HeaderMap) -> HeaderValue {
    if let Some(v) = h.get(&X_REQUEST_ID) {
        let b = v.as_bytes();
        if (1..=128).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
        {
            return v.clone();
        }
    }
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut buf = [0u8; 32];
    for slot in buf.iter_mut().rev() {
        *slot = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&buf).unwrap_or(HeaderValue::from_static("0"))
}

/// Removes hop-by-hop headers: those listed in `Connection`, and the
/// standard ones. Used in both directions.
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    if h.contains_key(header::CONNECTION) {
        let listed: Vec<HeaderValue> = h.get_all(header::CONNECTION).iter().cloned().collect();
        h.remove(header::CONNECTION);
        for v in &listed {
            let Ok(s) = v.to_str() else { continue };
            for token in s.split(',') {
                let token = token.trim();
                // Never let a client strip headers the proxy itself relies on.
                if !token.is_empty() && !token.eq_ignore_ascii_case("host") {
                    h.remove(token);
                }
            }
        }
    }
    for name in [
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
    ] {
        if h.contains_key(name) {
            h.remove(name);
        }
    }
}

/// Rewrites the client's request head, in place, for the instance.
fn prepare_request(parts: &mut http::request::Parts, rid: &HeaderValue, client_hv: &HeaderValue) {
    let h = &mut parts.headers;
    strip_hop_by_hop(h);
    // Override headers are the proxy's business only, valid token or not.
    if h.contains_key(&X_WHARF_RELEASE) {
        h.remove(&X_WHARF_RELEASE);
    }
    if h.contains_key(&X_WHARF_TOKEN) {
        h.remove(&X_WHARF_TOKEN);
    }
    if let Some(host) = h.get(header::HOST).cloned() {
        h.insert(X_FORWARDED_HOST.clone(), host);
    } else if let Some(a) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(a.as_str())
    {
        h.insert(header::HOST, v.clone());
        h.insert(X_FORWARDED_HOST.clone(), v);
    }
    let xff = if h.contains_key(&X_FORWARDED_FOR) {
        let mut s = String::new();
        for v in h.get_all(&X_FORWARDED_FOR) {
            if let Ok(v) = v.to_str() {
                s.push_str(v);
                s.push_str(", ");
            }
        }
        s.push_str(client_hv.to_str().unwrap_or(""));
        HeaderValue::from_str(&s).unwrap_or_else(|_| client_hv.clone())
    } else {
        client_hv.clone()
    };
    h.insert(X_FORWARDED_FOR.clone(), xff);
    h.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("http"));
    h.insert(X_REQUEST_ID.clone(), rid.clone());
    parts.version = Version::HTTP_11;
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        // absolute-form from the client → origin-form for the instance
        let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::try_from(pq).unwrap_or_else(|_| Uri::from_static("/"));
    }
}

fn page(p: Page, rid: HeaderValue, ex: Exchange) -> Response<ProxyBody> {
    let body = Bytes::from_static(p.body().as_bytes());
    respond(p.status(), body, p.closes(), rid, ex)
}

/// 503 with `Retry-After` for a route marked [`crate::Unavailable`].
fn unavailable(down: &crate::Unavailable, rid: HeaderValue, ex: Exchange) -> Response<ProxyBody> {
    let body = html_page(StatusCode::SERVICE_UNAVAILABLE, &down.message);
    let mut resp = respond(StatusCode::SERVICE_UNAVAILABLE, body, false, rid, ex);
    let secs = down.retry_after.as_secs().max(1);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// A page like [`Page`]'s with a message made at run time (HTML-escaped).
fn html_page(status: StatusCode, msg: &str) -> Bytes {
    let code = status.as_str();
    let title = status.canonical_reason().unwrap_or("");
    let mut escaped = String::with_capacity(msg.len());
    for c in msg.chars() {
        match c {
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '&' => escaped.push_str("&amp;"),
            '"' => escaped.push_str("&quot;"),
            c => escaped.push(c),
        }
    }
    Bytes::from(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head>\n\
         <body><h1>{code} {title}</h1>\n<p>{escaped}</p>\n<hr><p>wharf</p></body></html>\n"
    ))
}

/// One of the proxy's own HTML responses.
fn respond(
    status: StatusCode,
    body: Bytes,
    closes: bool,
    rid: HeaderValue,
    mut ex: Exchange,
) -> Response<ProxyBody> {
    ex.status = status.as_u16();
    let mut resp = Response::new(ProxyBody {
        kind: Kind::Page(Some(body)),
        done: false,
        ex: Some(ex),
    });
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_REQUEST_ID.clone(), rid);
    if closes {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Everything about one request that is settled when it ends.
struct Exchange {
    start: Instant,
    /// Counted in flight while set (see `set_backend`).
    backend: Option<Arc<Backend>>,
    /// Metric handles when no backend was selected.
    fixed: Option<Arc<Handles>>,
    /// The upstream connection, back to the pool if the body completed.
    conn: Option<Sender>,
    complete: bool,
    /// 0 until a response head exists (client gone before: logged as 499).
    status: u16,
    bytes: u64,
    upstream_ms: Option<f64>,
    log: Option<Box<LogCtx>>,
}

struct LogCtx {
    request_id: HeaderValue,
    app: String,
    process: String,
    method: Method,
    host: Option<String>,
    uri: Uri,
    client: IpAddr,
}

impl Exchange {
    fn new(start: Instant) -> Exchange {
        Exchange {
            start,
            backend: None,
            fixed: None,
            conn: None,
            complete: false,
            status: 0,
            bytes: 0,
            upstream_ms: None,
            log: None,
        }
    }

    fn set_backend(&mut self, b: Arc<Backend>) {
        b.begin();
        if let Some(old) = self.backend.replace(b) {
            old.end();
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        if self.status != 0 {
            let handles = match (&self.backend, &self.fixed) {
                (Some(b), _) => Some(&b.metrics),
                (None, Some(h)) => Some(&**h),
                (None, None) => None,
            };
            if let Some(h) = handles {
                h.record(self.status, elapsed);
            }
            if let Some(b) = &self.backend {
                b.window.record(self.status, elapsed);
            }
        }
        if let Some(b) = &self.backend {
            if let Some(conn) = self.conn.take()
                && self.complete
            {
                b.pool.put(conn);
            }
            b.end();
        }
        if let Some(l) = self.log.take() {
            let status = if self.status == 0 { 499 } else { self.status };
            let duration_ms = ms(elapsed);
            let host = l.host.as_deref().unwrap_or("");
            let request_id = l.request_id.to_str().unwrap_or("");
            match &self.backend {
                Some(b) => tracing::info!(
                    target: "wharf::access",
                    request_id,
                    app = %l.app,
                    process = %l.process,
                    release = b.release,
                    instance = %b.id,
                    method = %l.method,
                    host,
                    path = l.uri.path(),
                    status,
                    duration_ms,
                    bytes = self.bytes,
                    upstream_ms = self.upstream_ms.unwrap_or(duration_ms),
                    client = %l.client,
                ),
                None => tracing::info!(
                    target: "wharf::access",
                    request_id,
                    app = %l.app,
                    process = %l.process,
                    release = "none",
                    instance = "",
                    method = %l.method,
                    host,
                    path = l.uri.path(),
                    status,
                    duration_ms,
                    bytes = self.bytes,
                    client = %l.client,
                ),
            }
        }
    }
}

/// The response body the proxy hands to hyper: an upstream body or one of
/// our pages, plus the exchange that ends when the body does.
pub(crate) struct ProxyBody {
    kind: Kind,
    done: bool,
    ex: Option<Exchange>,
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBody")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

enum Kind {
    Page(Option<Bytes>),
    Upstream(Incoming),
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        let frame = match &mut this.kind {
            Kind::Page(b) => b.take().map(|b| Ok(Frame::data(b))),
            Kind::Upstream(inc) => {
                let f = ready!(Pin::new(&mut *inc).poll_frame(cx));
                if f.is_none() || inc.is_end_stream() {
                    this.done = true;
                }
                f
            }
        };
        if let (Some(Ok(f)), Some(ex)) = (&frame, this.ex.as_mut())
            && let Some(d) = f.data_ref()
        {
            ex.bytes += d.len() as u64;
        }
        if frame.is_none() {
            this.done = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Page(b) => b.is_none(),
            Kind::Upstream(inc) => self.done || inc.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Page(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Upstream(inc) => inc.size_hint(),
        }
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        let complete = self.done || self.is_end_stream();
        if let Some(ex) = self.ex.as_mut() {
            ex.complete = complete;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_id_kept_or_generated() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123_x.y"));
        assert_eq!(request_id(&h), "abc-123_x.y");
        for bad in ["", "has space", "ünï", &"a".repeat(129)] {
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(bad) {
                h.insert(&X_REQUEST_ID, v);
            }
            let id = request_id(&h);
            assert_eq!(id.len(), 32, "{bad:?}");
            assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        }
        assert_ne!(request_id(&HeaderMap::new()), request_id(&HeaderMap::new()));
    }

    #[test]
    fn hop_by_hop_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, X-Secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-connection", HeaderValue::from_static("keep-alive"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::TRAILER, HeaderValue::from_static("x"));
        h.insert("x-keep", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn constant_time_eq() {
        assert!(ct_eq(b"", b""));
        assert!(ct_eq(b"s3cret", b"s3cret"));
        assert!(!ct_eq(b"s3cret", b"s3creT"));
        assert!(!ct_eq(b"s3cret", b"X3cret"));
        assert!(!ct_eq(b"s3cret", b"s3cre"));
        assert!(!ct_eq(b"", b"x"));
    }

    #[test]
    fn release_numbers() {
        for (v, want) in [
            (&b"12"[..], Some(12)),
            (b" 7 ", Some(7)),
            (b"\"3\"", Some(3)),
            (b"0", Some(0)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"", None),
            (b"\"\"", None),
            (b"-1", None),
            (b"+1", None),
            (b"1.0", None),
            (b"abc", None),
            (b"\xff\xfe", None),
            (b"99999999999999999999999", None),
        ] {
            assert_eq!(parse_release(v), want, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn cookies_parsed_robustly() {
        let mut h = HeaderMap::new();
        let values = |h: &HeaderMap| -> Vec<String> {
            cookie_values(h, "wharf_shop")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .collect()
        };
        assert!(values(&h).is_empty());
        for v in [
            &b"a=1; wharf_shop=2;b=3"[..],
            b"garbage;;; =;=x; wharf_shop; wharf_shopx=9; xwharf_shop=8",
            b"  wharf_shop = 4 ;WHARF_SHOP=5",
            b"wharf_shop=\"6\"; wharf_shop=a=b",
            b"\xff\xfe=\x80; wharf_shop=\xff",
        ] {
            h.append(header::COOKIE, HeaderValue::from_bytes(v).unwrap());
        }
        assert_eq!(values(&h), ["2", "4", "\"6\"", "a=b", "\u{fffd}"]);
        let releases: Vec<u64> = cookie_values(&h, "wharf_shop")
            .filter_map(parse_release)
            .collect();
        assert_eq!(releases, [2, 4, 6]);
    }

    #[test]
    fn override_needs_the_token() {
        let mut h = HeaderMap::new();
        h.insert(&X_WHARF_RELEASE, HeaderValue::from_static("7"));
        assert_eq!(requested_override(Some("tok"), &h), None, "no token header");
        h.insert(&X_WHARF_TOKEN, HeaderValue::from_static("tok"));
        assert_eq!(requested_override(None, &h), None, "not configured");
        assert_eq!(requested_override(Some(""), &h), None, "empty disables");
        assert_eq!(requested_override(Some("tok2"), &h), None);
        assert_eq!(
            requested_override(Some("tok"), &h),
            Some(Override::Release(7))
        );
        h.insert(&X_WHARF_RELEASE, HeaderValue::from_static("seven"));
        assert_eq!(requested_override(Some("tok"), &h), Some(Override::Invalid));
        h.remove(&X_WHARF_RELEASE);
        assert_eq!(requested_override(Some("tok"), &h), None);
    }

    #[test]
    fn dynamic_pages_are_escaped() {
        let body = html_page(StatusCode::SERVICE_UNAVAILABLE, "release <1> & \"2\"");
        let body = std::str::from_utf8(&body).unwrap();
        assert!(
            body.contains("<title>503 Service Unavailable</title>"),
            "{body}"
        );
        assert!(
            body.contains("<p>release &lt;1&gt; &amp; &quot;2&quot;</p>"),
            "{body}"
        );
    }

    #[test]
    fn error_maps_to_page() {
        let e = ProxyError::from_connect(ConnectError::Refused, true);
        assert_eq!(e.page(), Page::Unreachable);
        assert!(e.retry);
        assert_eq!(e.source_side, ErrorSource::Upstream);
        assert_eq!(Page::Timeout.status(), 504);
        assert!(Page::NotFound.body().contains("404 Not Found"));
    }
}
