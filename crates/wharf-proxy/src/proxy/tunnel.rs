//! Upgrade tunnels: WebSockets and any other `Connection: upgrade`.
//!
//! The handshake is an ordinary request to the instance chosen as for any
//! other (sticky cookie, release pinning, weights), sent on a connection of
//! its own with `Connection: upgrade` and `Upgrade` kept. It is the request
//! as far as metrics, live stats and canary analysis go: its status and
//! latency are recorded like any response's. On `101 Switching Protocols`
//! the client gets the instance's 101, and both upgraded connections are
//! spliced byte for byte until either side closes, nothing moves for the
//! idle timeout, or the instance's release is drained (the drain waits for
//! the tunnel up to its timeout, then closes it; a client that reconnects
//! reaches the release that serves then). A tunnel counts as in flight for
//! its backend while open, and is one access-log line at its end, with
//! the bytes both ways and its duration.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Uri};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::Backend;

/// Whether a request asks for a protocol upgrade: HTTP/1.1, an `Upgrade`
/// header, and `upgrade` among the `Connection` tokens.
pub(crate) fn is_upgrade(version: http::Version, h: &HeaderMap) -> bool {
    version == http::Version::HTTP_11
        && h.contains_key(header::UPGRADE)
        && h.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
            })
        })
}

/// Puts the upgrade headers back on a request head whose hop-by-hop
/// headers were stripped (they are the point of this one).
pub(crate) fn keep_upgrade(h: &mut HeaderMap, upgrade: HeaderValue) {
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, upgrade);
}

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    /// One side closed (or failed).
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// Its release was drained past the drain timeout.
    Drained,
}

impl End {
    fn as_str(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::Idle => "idle",
            End::Drained => "drained",
        }
    }
}

/// What the access-log line of a tunnel says besides its numbers.
#[derive(Debug)]
pub(crate) struct TunnelLog {
    pub request_id: String,
    pub app: String,
    pub process: String,
    pub method: Method,
    pub host: String,
    pub uri: Uri,
    pub client: std::net::IpAddr,
}

/// Splices the client's and the instance's upgraded connections in the
/// background, counted in flight for `backend` and in its open-tunnel
/// gauge until the end.
pub(crate) fn spawn(
    client: OnUpgrade,
    upstream: OnUpgrade,
    backend: Arc<Backend>,
    idle: Duration,
    log: Option<TunnelLog>,
) {
    backend.begin();
    backend.metrics.tunnels.inc();
    let drained = backend.tunnel_generation();
    tokio::spawn(async move {
        let started = Instant::now();
        let (up, down, end) = match tokio::join!(client, upstream) {
            (Ok(c), Ok(u)) => {
                splice(
                    TokioIo::new(c),
                    TokioIo::new(u),
                    idle,
                    backend.tunnel_closed(drained),
                )
                .await
            }
            (c, u) => {
                tracing::debug!(client = ?c.err(), upstream = ?u.err(), "upgrade did not complete");
                (0, 0, End::Closed)
            }
        };
        backend.metrics.tunnels.dec();
        backend.end();
        if let Some(l) = log {
            tracing::info!(
                target: "wharf::access",
                request_id = %l.request_id,
                app = %l.app,
                process = %l.process,
                release = backend.release,
                instance = %backend.id,
                method = %l.method,
                host = %l.host,
                path = l.uri.path(),
                status = 101,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                bytes_in = up,
                bytes_out = down,
                end = end.as_str(),
                client = %l.client,
            );
        }
    });
}

/// Copies both ways until both are done, either side fails, nothing moves
/// for `idle`, or `closed` resolves. Returns (client → instance bytes,
/// instance → client bytes, why it ended).
pub(crate) async fn splice<C, U>(
    client: C,
    upstream: U,
    idle: Duration,
    closed: impl std::future::Future<Output = ()>,
) -> (u64, u64, End)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut client = Counted::new(client, start, last.clone());
    let mut upstream = Counted::new(upstream, start, last.clone());
    let (up, down) = (client.read.clone(), upstream.read.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    let quiet = async {
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let quiet_until = since + idle;
            let now = start.elapsed();
            if now >= quiet_until {
                return;
            }
            tokio::time::sleep(quiet_until - now).await;
        }
    };
    let end = tokio::select! {
        _ = copy => End::Closed,
        () = quiet => End::Idle,
        () = closed => End::Drained,
    };
    (
        up.load(Ordering::Relaxed),
        down.load(Ordering::Relaxed),
        end,
    )
}

/// An upgraded connection that counts the bytes read from it and notes
/// the time of the last activity either way.
struct Counted<T> {
    inner: T,
    start: Instant,
    read: Arc<AtomicU64>,
    last: Arc<AtomicU64>,
}

impl<T> Counted<T> {
    fn new(inner: T, start: Instant, last: Arc<AtomicU64>) -> Self {
        Counted {
            inner,
            start,
            read: Arc::new(AtomicU64::new(0)),
            last,
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Counted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.read.fetch_add(n as u64, Ordering::Relaxed);
            self.touch();
        }
        poll
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Counted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll
            && *n > 0
        {
            self.touch();
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn upgrade_requests_are_recognised() {
        let h = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            h
        };
        let v11 = http::Version::HTTP_11;
        let ws = h(&[
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
        ]);
        assert!(is_upgrade(v11, &ws));
        assert!(!is_upgrade(http::Version::HTTP_10, &ws));
        assert!(!is_upgrade(http::Version::HTTP_2, &ws));
        assert!(!is_upgrade(v11, &h(&[("upgrade", "websocket")])));
        assert!(!is_upgrade(v11, &h(&[("connection", "upgrade")])));
        assert!(is_upgrade(
            v11,
            &h(&[
                ("connection", "close"),
                ("connection", "UPGRADE"),
                ("upgrade", "h2c")
            ])
        ));
    }

    #[tokio::test]
    async fn splice_counts_both_ways_and_ends_when_idle() {
        let (client, mut client_peer) = tokio::io::duplex(1024);
        let (upstream, mut upstream_peer) = tokio::io::duplex(1024);
        let task = tokio::spawn(splice(
            client,
            upstream,
            Duration::from_millis(300),
            std::future::pending(),
        ));
        client_peer.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        upstream_peer.read_exact(&mut buf).await.unwrap();
        upstream_peer.write_all(b"hi!").await.unwrap();
        let mut buf = [0u8; 3];
        client_peer.read_exact(&mut buf).await.unwrap();
        let (up, down, end) = task.await.unwrap();
        assert_eq!((up, down, end), (5, 3, End::Idle));
    }

    #[tokio::test]
    async fn splice_ends_when_drained_or_closed() {
        let (client, _c) = tokio::io::duplex(64);
        let (upstream, _u) = tokio::io::duplex(64);
        let (_, _, end) = splice(client, upstream, Duration::from_secs(60), async {}).await;
        assert_eq!(end, End::Drained);

        let (client, c) = tokio::io::duplex(64);
        let (upstream, u) = tokio::io::duplex(64);
        drop((c, u));
        let (_, _, end) = splice(
            client,
            upstream,
            Duration::from_secs(60),
            std::future::pending(),
        )
        .await;
        assert_eq!(end, End::Closed);
    }
}
