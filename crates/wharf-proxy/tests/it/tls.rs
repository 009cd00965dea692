//! TLS termination: the certificate by SNI, HTTP/2 and HTTP/1.1 by ALPN,
//! `X-Forwarded-Proto: https`, HSTS, the plain-HTTP redirect of TLS hosts,
//! ACME HTTP-01 answers, and bad handshakes that harm nothing else.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use wharf_proxy::{BackendSet, Certs, ProxyConfig, RouteOptions, RoutingTable};

use crate::support::*;

/// Self-signed certificates for some hosts, and ACME tokens.
#[derive(Debug)]
struct TestCerts {
    resolver: Arc<rustls::server::ResolvesServerCertUsingSni>,
    hosts: Vec<String>,
    tokens: HashMap<String, String>,
    roots: rustls::RootCertStore,
}

impl TestCerts {
    fn new(hosts: &[&str]) -> TestCerts {
        let provider = rustls::crypto::ring::default_provider();
        let mut resolver = rustls::server::ResolvesServerCertUsingSni::new();
        let mut roots = rustls::RootCertStore::empty();
        for host in hosts {
            let made = rcgen::generate_simple_self_signed(vec![(*host).to_owned()]).unwrap();
            let cert: CertificateDer<'static> = made.cert.der().clone();
            let key =
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
            let signing = provider.key_provider.load_private_key(key).unwrap();
            roots.add(cert.clone()).unwrap();
            resolver
                .add(host, rustls::sign::CertifiedKey::new(vec![cert], signing))
                .unwrap();
        }
        TestCerts {
            resolver: Arc::new(resolver),
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            tokens: HashMap::from([("tok-1".to_owned(), "tok-1.thumb".to_owned())]),
            roots,
        }
    }
}

impl Certs for TestCerts {
    fn resolver(&self) -> Arc<dyn rustls::server::ResolvesServerCert> {
        self.resolver.clone()
    }
    fn has(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host)
    }
    fn challenge(&self, token: &str) -> Option<String> {
        self.tokens.get(token).cloned()
    }
}

/// A proxy serving plain HTTP (the `TestProxy`) and HTTPS on another
/// port; routes: `app.test` (TLS, HSTS), `pending.test` (TLS, no
/// certificate yet), anything else plain.
async fn tls_proxy() -> (TestProxy, std::net::SocketAddr, Arc<TestCerts>, Origin) {
    let a = origin("a").run().await;
    let certs = Arc::new(TestCerts::new(&["app.test"]));
    let tls_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = tls_listener.local_addr().unwrap();
    let p = TestProxy::start(ProxyConfig {
        certs: Some(certs.clone()),
        https_port: Some(tls_addr.port()),
        ..test_config()
    })
    .await;
    let b = p.backend("a-1", a.addr, "app", 1);
    let mut app = route(
        "app",
        Some("app.test"),
        "/",
        BackendSet::single(1, vec![b.clone()]),
    );
    app.options = RouteOptions {
        tls: true,
        hsts: true,
        ..RouteOptions::default()
    };
    let mut pending = route(
        "app",
        Some("pending.test"),
        "/",
        BackendSet::single(1, vec![b.clone()]),
    );
    pending.options.tls = true;
    let plain = route("app", None, "/", BackendSet::single(1, vec![b]));
    p.proxy.swap(RoutingTable::new(vec![app, pending, plain]));
    tokio::spawn(
        p.proxy
            .clone()
            .serve_tls(tls_listener, std::future::pending()),
    );
    (p, tls_addr, certs, a)
}

async fn tls_connect(
    addr: std::net::SocketAddr,
    certs: &TestCerts,
    sni: &str,
    alpn: &[&[u8]],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(certs.roots.clone())
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    connector
        .connect(ServerName::try_from(sni.to_owned()).unwrap(), tcp)
        .await
}

#[tokio::test]
async fn https_by_sni_over_h2_and_http1_with_hsts() {
    let (_p, tls_addr, certs, _a) = tls_proxy().await;

    // HTTP/2, negotiated by ALPN.
    let io = tls_connect(tls_addr, &certs, "app.test", &[b"h2", b"http/1.1"])
        .await
        .unwrap();
    assert_eq!(io.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut tx, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    let req = hyper::Request::get("https://app.test/h2?x=1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let resp = tx.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("x-forwarded-proto: https"), "{body}");
    assert!(body.contains("host: app.test"), "{body}");
    assert!(body.contains("path=/h2"), "{body}");
    // Several streams on the one connection.
    let answers = futures_util::future::join_all((0..8).map(|i| {
        let mut tx = tx.clone();
        async move {
            let req = hyper::Request::get(format!("https://app.test/s{i}"))
                .body(Empty::<Bytes>::new())
                .unwrap();
            tx.send_request(req).await.unwrap().status()
        }
    }))
    .await;
    assert!(answers.iter().all(|s| *s == 200), "{answers:?}");

    // HTTP/1.1 over TLS.
    let mut io = tls_connect(tls_addr, &certs, "app.test", &[b"http/1.1"])
        .await
        .unwrap();
    io.write_all(b"GET /one HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    io.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("x-forwarded-proto: https"), "{out}");
}

#[tokio::test]
async fn bad_handshakes_harm_nothing_else() {
    let (_p, tls_addr, certs, _a) = tls_proxy().await;
    // A name nobody has a certificate for: the handshake fails cleanly.
    let err = tls_connect(tls_addr, &certs, "unknown.test", &[b"http/1.1"])
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    // Garbage instead of a ClientHello: the connection is closed.
    let mut raw = TcpStream::connect(tls_addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n\x00\xff garbage")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a garbage connection open");
    // A client that connects and says nothing does not block others.
    let _silent = TcpStream::connect(tls_addr).await.unwrap();
    let mut io = tls_connect(tls_addr, &certs, "app.test", &[b"http/1.1"])
        .await
        .unwrap();
    io.write_all(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    io.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
}

#[tokio::test]
async fn plain_http_of_a_tls_host_redirects_and_acme_challenges_are_answered() {
    let (p, tls_addr, _certs, _a) = tls_proxy().await;
    let c = client();
    let got = get_host(&c, &p.url("/cart?item=1"), "app.test").await;
    assert_eq!(got.status, 308, "{}", got.body);
    assert_eq!(
        got.header("location"),
        format!("https://app.test:{}/cart?item=1", tls_addr.port())
    );
    // No certificate yet: the host is served on plain HTTP meanwhile.
    let got = get_host(&c, &p.url("/cart"), "pending.test").await;
    assert_eq!((got.status, got.origin()), (200, "a"));
    // ACME's HTTP-01 check reaches the proxy itself, redirect or not.
    let got = get_host(&c, &p.url("/.well-known/acme-challenge/tok-1"), "app.test").await;
    assert_eq!((got.status, got.body.as_str()), (200, "tok-1.thumb"));
    assert!(got.header("content-type").starts_with("text/plain"));
    let got = get_host(&c, &p.url("/.well-known/acme-challenge/nope"), "other.test").await;
    assert_eq!(got.origin(), "a", "an unknown token is the app's business");
}
