//! Accepting connections: plain HTTP/1.1 (with upgrades) on one listener;
//! on another, TLS (rustls, the certificate picked by SNI) and then HTTP/2
//! or HTTP/1.1 as ALPN decided. Both stop accepting at shutdown and let
//! their connections finish (bounded by a grace period).
//!
//! A TLS handshake has the header read timeout to complete; a failed one
//! (garbage, an unknown SNI name, a client that gives up) ends that
//! connection only, logged at debug.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

use super::ConnCtx;
use crate::{Proxy, ProxyConfig};

/// At most this many concurrent HTTP/2 streams per client connection.
const MAX_H2_STREAMS: u32 = 256;

/// A TLS acceptor picking certificates with `resolver`, offering HTTP/2
/// and HTTP/1.1 by ALPN.
pub(crate) fn tls_acceptor(resolver: Arc<dyn rustls::server::ResolvesServerCert>) -> TlsAcceptor {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_no_client_auth().with_cert_resolver(resolver.clone()))
    .unwrap_or_else(|_| {
        // The ring provider supports the default versions; keep a working
        // config if that ever changes.
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(resolver)
    });
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    TlsAcceptor::from(Arc::new(config))
}

/// The connection builders, made once per listener.
struct Builders {
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

impl Builders {
    fn new(cfg: &ProxyConfig) -> Builders {
        let mut h1 = auto::Builder::new(TokioExecutor::new()).http1_only();
        h1.http1()
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(cfg.header_read_timeout)
            // hyper refuses buffers under 8 KiB; a head larger than the
            // buffer gets 431 from hyper itself.
            .max_buf_size(cfg.max_header_bytes.max(8192));
        let mut h2 = auto::Builder::new(TokioExecutor::new()).http2_only();
        h2.http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_H2_STREAMS)
            .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(Some(Duration::from_secs(30)));
        Builders { h1, h2 }
    }
}

/// Accepts connections until `shutdown`, then drains them (bounded by
/// `grace`). With `tls`, each connection is a TLS one first.
pub(crate) async fn serve(
    proxy: Arc<Proxy>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    let builders = Arc::new(Builders::new(&proxy.config));
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
        let (proxy, builders, watcher, tls) = (
            proxy.clone(),
            builders.clone(),
            graceful.watcher(),
            tls.clone(),
        );
        tokio::spawn(async move {
            let Some(acceptor) = tls else {
                let ctx = ConnCtx::new(proxy, peer.ip(), false);
                let conn = builders
                    .h1
                    .serve_connection_with_upgrades(TokioIo::new(stream), service(ctx));
                if let Err(e) = watcher.watch(conn.into_owned()).await {
                    tracing::debug!(error = %e, "client connection ended with an error");
                }
                return;
            };
            let timeout = proxy.config.header_read_timeout;
            let stream = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(client = %peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(client = %peer, "TLS handshake timed out");
                    return;
                }
            };
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            serve_tls_conn(stream, proxy, peer.ip(), &builders, h2, watcher).await;
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

async fn serve_tls_conn<I>(
    io: I,
    proxy: Arc<Proxy>,
    peer: IpAddr,
    builders: &Builders,
    h2: bool,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ctx = ConnCtx::new(proxy, peer, true);
    let builder = if h2 { &builders.h2 } else { &builders.h1 };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service(ctx));
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}

fn service(
    ctx: ConnCtx,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<super::ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<super::ProxyBody>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    let ctx = Arc::new(ctx);
    service_fn(move |req| {
        let ctx = ctx.clone();
        async move { Ok::<_, Infallible>(ctx.handle(req).await) }
    })
}
