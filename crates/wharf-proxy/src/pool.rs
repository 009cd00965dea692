//! Upstream HTTP/1.1 keep-alive connections of one backend.
//!
//! Why not `hyper_util::client::legacy::Client`: we need (a) to know whether
//! a connection exists *before* sending, so a connect failure of a bodyless
//! request can be retried on another backend without cloning the request,
//! (b) to close every idle connection when a backend is drained, and (c) a
//! short hot path. hyper's `client::conn::http1` plus this small LIFO stack
//! gives all three: the request is handed to a connection that is already
//! up, and `try_send_request` hands it back if it could not be written.
//!
//! The stack is behind a `std::sync::Mutex` held for a push or a pop only
//! (never across an await); it is per backend, so contention is between
//! requests to the same instance at the same instant.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use http_body_util::Limited;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// The body we send upstream: the client's, with the size limit applied.
pub(crate) type UpstreamReqBody = Limited<Incoming>;
pub(crate) type Sender = SendRequest<UpstreamReqBody>;

/// More idle connections than this to one instance are closed on return.
const MAX_IDLE: usize = 1024;

#[derive(Debug)]
pub(crate) struct Pool {
    addr: SocketAddr,
    connect_timeout: Duration,
    idle_timeout: Duration,
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Oldest first: pushes happen in time order, so expiry is a prefix.
    idle: Mutex<Vec<Idle>>,
    /// Set by `close` (drain): returning connections are dropped.
    closed: AtomicBool,
    reaper: AtomicBool,
}

struct Idle {
    tx: Sender,
    since: Instant,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle")
            .field("since", &self.since)
            .finish_non_exhaustive()
    }
}

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection refused")]
    Refused,
    #[error("connect timed out after {0:?}")]
    Timeout(Duration),
    #[error("connect failed: {0}")]
    Io(std::io::Error),
    #[error("handshake failed: {0}")]
    Handshake(hyper::Error),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Vec<Idle>> {
        // A panic while holding this lock cannot leave the Vec inconsistent.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Pool {
    pub(crate) fn new(addr: SocketAddr, connect_timeout: Duration, idle_timeout: Duration) -> Pool {
        Pool {
            addr,
            connect_timeout,
            idle_timeout,
            shared: Arc::default(),
        }
    }

    /// The most recently used idle connection that is still open, if any.
    /// It may not be ready yet (its previous response just ended); see
    /// [`Pool::ready`].
    pub(crate) fn take(&self) -> Option<Sender> {
        // A backend that is selected again after a drain is back in use.
        if self.shared.closed.load(Ordering::Relaxed) {
            self.shared.closed.store(false, Ordering::Relaxed);
        }
        let mut idle = self.shared.lock();
        while let Some(i) = idle.pop() {
            if i.since.elapsed() >= self.idle_timeout {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            if !i.tx.is_closed() {
                return Some(i.tx);
            }
        }
        None
    }

    /// Returns a connection whose exchange is complete.
    pub(crate) fn put(&self, tx: Sender) {
        if self.shared.closed.load(Ordering::Relaxed) || tx.is_closed() {
            return;
        }
        let mut idle = self.shared.lock();
        if idle.len() >= MAX_IDLE {
            return;
        }
        idle.push(Idle {
            tx,
            since: Instant::now(),
        });
        drop(idle);
        if !self.shared.reaper.load(Ordering::Relaxed)
            && !self.shared.reaper.swap(true, Ordering::Relaxed)
        {
            self.spawn_reaper();
        }
    }

    /// Closes every idle connection and drops connections returned later
    /// (until the backend is selected again).
    pub(crate) fn close(&self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        let drained = std::mem::take(&mut *self.shared.lock());
        drop(drained); // dropping a `SendRequest` ends its idle connection
    }

    pub(crate) fn idle_count(&self) -> usize {
        self.shared.lock().len()
    }

    /// Waits (briefly) for a pooled connection to accept the next request.
    pub(crate) async fn ready(mut tx: Sender) -> Option<Sender> {
        if tx.is_ready() {
            return Some(tx);
        }
        match tokio::time::timeout(Duration::from_millis(50), tx.ready()).await {
            Ok(Ok(())) => Some(tx),
            _ => None,
        }
    }

    pub(crate) async fn connect(&self) -> Result<Sender, ConnectError> {
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.addr),
        )
        .await
        {
            Err(_) => return Err(ConnectError::Timeout(self.connect_timeout)),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                return Err(ConnectError::Refused);
            }
            Ok(Err(e)) => return Err(ConnectError::Io(e)),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        let (tx, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Handshake)?;
        // With upgrades: a `101 Switching Protocols` answer hands the
        // connection over to a tunnel (see `proxy::tunnel`).
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        Ok(tx)
    }

    /// Closes connections idle longer than the idle timeout, in the
    /// background, for as long as the pool exists.
    fn spawn_reaper(&self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.shared.reaper.store(false, Ordering::Relaxed);
            return;
        };
        let weak: Weak<Shared> = Arc::downgrade(&self.shared);
        let timeout = self.idle_timeout;
        let tick = (timeout / 2).clamp(Duration::from_millis(10), Duration::from_secs(5));
        rt.spawn(async move {
            loop {
                tokio::time::sleep(tick).await;
                let Some(shared) = weak.upgrade() else { return };
                let expired: Vec<Idle> = {
                    let mut idle = shared.lock();
                    let n = idle.partition_point(|i| i.since.elapsed() >= timeout);
                    idle.drain(..n).collect()
                };
                drop(expired);
            }
        });
    }
}
