//! One exchange (request → response) and the response body that carries
//! it to its end: metrics, live stats, the access log, the in-flight count
//! and the pooled connection's return all happen in `Exchange::drop`, so
//! they also happen when the client goes away mid-response.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::header::HeaderValue;
use http::{Method, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::ms;
use crate::Backend;
use crate::metrics::Handles;
use crate::pool::Sender;

/// Everything about one request that is settled when it ends.
pub(crate) struct Exchange {
    pub(crate) start: Instant,
    /// Counted in flight while set (see `set_backend`).
    pub(crate) backend: Option<Arc<Backend>>,
    /// Metric handles when no backend was selected.
    pub(crate) fixed: Option<Arc<Handles>>,
    /// The upstream connection, back to the pool if the body completed.
    pub(crate) conn: Option<Sender>,
    pub(crate) complete: bool,
    /// 0 until a response head exists (client gone before: logged as 499).
    pub(crate) status: u16,
    pub(crate) bytes: u64,
    pub(crate) upstream_ms: Option<f64>,
    pub(crate) log: Option<Box<LogCtx>>,
}

pub(crate) struct LogCtx {
    pub(crate) request_id: HeaderValue,
    pub(crate) app: String,
    pub(crate) process: String,
    pub(crate) method: Method,
    pub(crate) host: Option<String>,
    pub(crate) uri: Uri,
    pub(crate) client: IpAddr,
}

impl Exchange {
    pub(crate) fn new(start: Instant) -> Exchange {
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

    pub(crate) fn set_backend(&mut self, b: Arc<Backend>) {
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
    pub(crate) kind: Kind,
    pub(crate) done: bool,
    pub(crate) ex: Option<Exchange>,
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyBody")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

pub(crate) enum Kind {
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
